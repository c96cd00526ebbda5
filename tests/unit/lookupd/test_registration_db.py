"""The registration database on its own: keys, wildcards, producers and activity."""

from __future__ import annotations

import pytest

from broker.lookupd.registration_db import (
    CHANNEL,
    CLIENT,
    GO_ZERO_TIME_UNIX_NANO,
    TOPIC,
    PeerInfo,
    Producer,
    Registration,
    RegistrationDB,
    filter_by_active,
)


def peer(peer_id: str, last_update: float = 0.0) -> PeerInfo:
    return PeerInfo(
        id=peer_id,
        remote_address=peer_id,
        hostname="h",
        broadcast_address="b",
        tcp_port=4150,
        http_port=4151,
        version="1.3.0",
        last_update=last_update,
        last_update_ns=0,
    )


@pytest.fixture
def db() -> RegistrationDB:
    db = RegistrationDB()
    a, b = peer("a"), peer("b")
    db.add_producer(Registration(CLIENT, "", ""), Producer(a))
    db.add_producer(Registration(CLIENT, "", ""), Producer(b))
    db.add_producer(Registration(TOPIC, "t1", ""), Producer(a))
    db.add_producer(Registration(CHANNEL, "t1", "c1"), Producer(a))
    db.add_producer(Registration(TOPIC, "t2", ""), Producer(b))
    db.add_producer(Registration(CHANNEL, "t2", "c1"), Producer(b))
    db.add_producer(Registration(CHANNEL, "t2", "c2"), Producer(a))
    return db


def test_registration_match_and_wildcards() -> None:
    k = Registration(CHANNEL, "t", "c")
    assert k.is_match(CHANNEL, "t", "c")
    assert k.is_match(CHANNEL, "*", "c")
    assert k.is_match(CHANNEL, "t", "*")
    assert not k.is_match(TOPIC, "*", "*")
    assert not k.is_match(CHANNEL, "t", "")


def test_add_producer_once_per_peer(db: RegistrationDB) -> None:
    k = Registration(TOPIC, "t1", "")
    assert not db.add_producer(k, Producer(peer("a")))
    assert [p.peer_info.id for p in db.find_producers(TOPIC, "t1", "")] == ["a"]


def test_find_registrations(db: RegistrationDB) -> None:
    assert db.find_registrations(TOPIC, "*", "") == [Registration(TOPIC, "t1", ""), Registration(TOPIC, "t2", "")]
    assert [r.subkey for r in db.find_registrations(CHANNEL, "t2", "*")] == ["c1", "c2"]
    assert [r.key for r in db.find_registrations(CHANNEL, "*", "c1")] == ["t1", "t2"]
    assert db.find_registrations(TOPIC, "nope", "") == []


def test_find_producers_deduplicates_peers(db: RegistrationDB) -> None:
    assert [p.peer_info.id for p in db.find_producers(CHANNEL, "*", "*")] == ["a", "b"]
    assert [p.peer_info.id for p in db.find_producers(CHANNEL, "t2", "*")] == ["b", "a"]
    assert db.find_producers(TOPIC, "nope", "") == []


def test_producers_are_per_registration_but_share_peer_info(db: RegistrationDB) -> None:
    [in_t1] = db.find_producers(TOPIC, "t1", "")
    [in_c1] = db.find_producers(CHANNEL, "t1", "c1")
    assert in_t1 is not in_c1
    assert in_t1.peer_info is in_c1.peer_info


def test_remove_producer_leaves_the_key(db: RegistrationDB) -> None:
    k = Registration(TOPIC, "t1", "")
    assert db.remove_producer(k, "a") == (True, 0)
    assert db.remove_producer(k, "a") == (False, 0)
    assert db.find_registrations(TOPIC, "t1", "") == [k]
    assert db.remove_producer(Registration(TOPIC, "nope", ""), "a") == (False, 0)
    assert db.remove_producer(Registration(CLIENT, "", ""), "a") == (True, 1)


def test_lookup_registrations_follows_every_change(db: RegistrationDB) -> None:
    assert db.lookup_registrations("a") == [
        Registration(CLIENT, "", ""),
        Registration(TOPIC, "t1", ""),
        Registration(CHANNEL, "t1", "c1"),
        Registration(CHANNEL, "t2", "c2"),
    ]
    db.remove_registration(Registration(CHANNEL, "t2", "c2"))
    db.remove_producer(Registration(TOPIC, "t1", ""), "a")
    assert db.lookup_registrations("a") == [Registration(CLIENT, "", ""), Registration(CHANNEL, "t1", "c1")]
    for r in db.lookup_registrations("a"):
        db.remove_producer(r, "a")
    assert db.lookup_registrations("a") == []
    assert db.lookup_registrations("unknown") == []


def test_add_registration_without_producers(db: RegistrationDB) -> None:
    k = Registration(TOPIC, "empty", "")
    db.add_registration(k)
    db.add_registration(k)
    assert k in db.find_registrations(TOPIC, "*", "")
    assert dict(db.items())[k] == []


def test_filter_by_active_boundaries() -> None:
    fresh, stale = Producer(peer("fresh", last_update=100.0)), Producer(peer("stale", last_update=40.0))
    assert filter_by_active([fresh, stale], 60.0, 45.0, now=100.0) == [fresh, stale]
    assert filter_by_active([fresh, stale], 60.0, 45.0, now=100.001) == [fresh]
    fresh.tombstone(now=100.0, wall_ns=7)
    assert fresh.tombstoned_at_ns == 7
    assert filter_by_active([fresh], 60.0, 45.0, now=144.9) == []
    assert filter_by_active([fresh], 60.0, 45.0, now=145.0) == [fresh]
    assert filter_by_active([fresh], 60.0, 0.0, now=100.0) == [fresh]  # /nodes ignores tombstones


def test_never_tombstoned_shows_gos_zero_time() -> None:
    p = Producer(peer("a"))
    assert (p.tombstoned, p.tombstoned_at_ns) == (False, GO_ZERO_TIME_UNIX_NANO)
    assert not p.is_tombstoned(45.0, now=0.0)
