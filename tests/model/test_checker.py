"""The history checker on hand-written histories whose verdicts are known."""

from __future__ import annotations

from typing import Any

import pytest

from model.checker import Verdict, check
from model.history import Event, NodeSettings, events

N = "nsqd-0"


def ev(t: float, type: str, **fields: Any) -> dict[str, Any]:
    fields.setdefault("nsqd", N)
    if type in ("subscribed", "deliver", "fin", "req", "touch", "channel_created", "channel_deleted", "channel_emptied", "publish", "final", "channel_options", "topic_options"):
        fields.setdefault("topic", "t")
    return {"t": t, "type": type, **fields}


SETTINGS: dict[str, dict[str, Any]] = {
    "default": {"mem_queue_size": 10000},
    "disk-only": {"mem_queue_size": 0},
    "durable-publish": {"mem_queue_size": 0, "durable_publish": True},
    "memory": {"persistent": False},
}


def node(mode: str) -> dict[str, Any]:
    return ev(0, "node", **SETTINGS[mode])


def pub(t: float, key: str, defer_ms: int = 0) -> list[dict[str, Any]]:
    return [ev(t, "publish", key=key, defer_ms=defer_ms), ev(t + 0.001, "publish_ok", key=key)]


def sub(t: float, channel: str = "c", consumer: str = "c-0", **extra: Any) -> dict[str, Any]:
    return ev(t, "subscribed", consumer=consumer, channel=channel, **extra)


def deliver(t: float, key: str, attempts: int = 1, channel: str = "c", consumer: str = "c-0") -> dict[str, Any]:
    return ev(t, "deliver", consumer=consumer, channel=channel, key=key, id=f"id-{key}", attempts=attempts)


def fin(t: float, key: str, channel: str = "c", consumer: str = "c-0") -> dict[str, Any]:
    return ev(t, "fin", consumer=consumer, channel=channel, key=key, id=f"id-{key}")


def req(t: float, key: str, delay_ms: int = 0, consumer: str = "c-0") -> dict[str, Any]:
    return ev(t, "req", consumer=consumer, channel="c", key=key, id=f"id-{key}", delay_ms=delay_ms)


def verdict(*parts: dict[str, Any] | list[dict[str, Any]]) -> Verdict:
    flat: list[dict[str, Any]] = []
    for p in parts:
        flat.extend(p if isinstance(p, list) else [p])
    return check(flat)


def test_a_delivered_and_finished_message() -> None:
    v = verdict(node("default"), sub(0), pub(1, "a"), deliver(1.1, "a"), fin(1.2, "a"))
    assert v.ok and v.published == 1 and v.acknowledged == 1
    o = v.outcome("c", "a")
    assert (o.status, o.deliveries, o.causes) == ("delivered", 1, [])


def test_duplicates_are_explained_by_timeout_requeue_and_a_consumer_gone() -> None:
    v = verdict(
        sub(0),
        sub(0, consumer="c-1"),
        pub(1, "a"),
        deliver(1.1, "a"),
        deliver(62, "a", attempts=2),  # no answer in time
        req(63, "a"),
        deliver(63.1, "a", attempts=3, consumer="c-1"),
        ev(64, "consumer_crash", consumer="c-1"),
        deliver(125, "a", attempts=4),
        fin(126, "a"),
    )
    assert v.ok, v.violations
    o = v.outcome("c", "a")
    assert (o.status, o.causes) == ("duplicated", ["timeout", "requeue", "consumer_gone"])
    assert v.duplicates_by_cause() == {"timeout": 1, "requeue": 1, "consumer_gone": 1}


def test_a_redelivery_after_an_accepted_fin_is_a_violation() -> None:
    v = verdict(sub(0), pub(1, "a"), deliver(1.1, "a"), fin(1.2, "a"), deliver(70, "a", attempts=2))
    assert not v.ok
    assert v.violations[0].startswith("redelivered_after_fin: a on nsqd-0/c")
    assert v.outcome("c", "a").status == "violation"


def test_a_fin_nsqd_refused_as_too_late_explains_the_redelivery() -> None:
    v = verdict(
        sub(0),
        pub(1, "a"),
        deliver(1.1, "a"),
        fin(61.5, "a"),
        ev(61.6, "error", consumer="c-0", error="E_FIN_FAILED FIN id-a failed ID not in flight"),
        deliver(61.7, "a", attempts=2),
    )
    assert v.ok, v.violations
    assert v.outcome("c", "a").causes == ["timeout"]


def test_a_requeue_delay_cut_short_is_a_violation() -> None:
    v = verdict(sub(0), pub(1, "a"), deliver(1.1, "a"), req(1.2, "a", delay_ms=5000), deliver(2, "a", attempts=2), fin(2.1, "a"))
    assert [x.split(":")[0] for x in v.violations] == ["early"]


def test_a_dpub_delivered_before_its_delay_is_a_violation_even_after_a_crash() -> None:
    v = verdict(node("disk-only"), sub(0), pub(1, "a", defer_ms=10_000), ev(2, "crash", kind="kill"), deliver(3, "a"))
    assert [x.split(":")[0] for x in v.violations] == ["early"]


def test_a_message_never_published_is_a_phantom() -> None:
    v = verdict(sub(0), deliver(1, "ghost"))
    assert v.violations == ["phantom: ghost delivered on nsqd-0/c but never published"]


def test_attempts_must_grow_except_across_a_crash() -> None:
    same = verdict(sub(0), pub(1, "a"), deliver(1.1, "a"), deliver(62, "a", attempts=1))
    assert [x.split(":")[0] for x in same.violations] == ["attempts"]
    crashed = verdict(node("disk-only"), sub(0), pub(1, "a"), deliver(1.1, "a"), ev(2, "crash", kind="kill"), deliver(3, "a", attempts=1))
    assert crashed.ok, crashed.violations
    assert crashed.outcome("c", "a").causes == ["crash_redelivery"]


@pytest.mark.parametrize(
    ("mode", "kind", "want"),
    [
        ("default", "kill", "memory_at_crash"),
        ("default", "power", "memory_at_crash"),
        ("disk-only", "power", "unsynced_at_power_loss"),
        ("disk-only", "kill", None),
        ("durable-publish", "power", None),
        ("durable-publish", "kill", None),
        ("memory", "kill", "no_disk"),
    ],
)
def test_what_a_crash_may_lose_depends_on_the_mode(mode: str, kind: str, want: str | None) -> None:
    v = verdict(node(mode), sub(0), pub(1, "a"), ev(2, "crash", kind=kind))
    o = v.outcome("c", "a")
    if want is None:
        assert o.status == "violation" and v.violations[0].startswith("lost: a acknowledged by nsqd-0")
    else:
        assert v.ok and (o.status, o.rule) == ("lost_allowed", want)


def test_a_known_fsync_rules_out_a_power_loss_as_the_reason() -> None:
    v = verdict(node("disk-only"), sub(0), pub(1, "a"), ev(1.5, "fsync", topic="t", channel="c", keys=["a"]), ev(2, "crash", kind="power"))
    assert [x.split(":")[0] for x in v.violations] == ["lost"]


def test_a_clean_stop_on_a_failing_disk_may_undo_a_fin_and_attempts() -> None:
    # ci-sweep-nemesis seed 40: fsyncs failed from before a clean stop until after it; the
    # stop could not make the read position durable, and the next life read the older record.
    steps: list[Any] = [sub(0), pub(1, "a"), deliver(1.1, "a", attempts=3), fin(1.2, "a")]
    failing = [ev(1.5, "disk_fault", host="nsqd-0", fault="fsync"), ev(2, "stop"), ev(3, "disk_heal", host="nsqd-0"), ev(3, "start")]
    v = verdict(node("default"), *steps, *failing, deliver(4, "a", attempts=2))
    assert v.ok, v.violations
    assert v.outcome("c", "a").causes == ["restart_redelivery"]
    # a disk fault that had ended before the stop excuses nothing
    healed = [ev(1.5, "disk_fault", host="nsqd-0", fault="fsync"), ev(1.8, "disk_heal", host="nsqd-0"), ev(2, "stop"), ev(3, "start")]
    v = verdict(node("default"), *steps, *healed, deliver(4, "a", attempts=4))
    assert [x.split(":")[0] for x in v.violations] == ["fin_undone_by_clean_restart"]


def test_a_clean_restart_loses_nothing_and_undoes_no_fin() -> None:
    lost = verdict(node("default"), sub(0), pub(1, "a"), ev(2, "stop"), ev(3, "start"))
    assert [x.split(":")[0] for x in lost.violations] == ["lost"]
    undone = verdict(node("default"), sub(0), pub(1, "a"), deliver(1.1, "a"), fin(1.2, "a"), ev(2, "stop"), ev(3, "start"), deliver(4, "a", attempts=2))
    assert [x.split(":")[0] for x in undone.violations] == ["fin_undone_by_clean_restart"]
    in_flight = verdict(node("default"), sub(0), pub(1, "a"), deliver(1.1, "a"), ev(2, "stop"), ev(3, "start"), deliver(4, "a", attempts=2), fin(5, "a"))
    assert in_flight.ok and in_flight.outcome("c", "a").causes == ["restart_redelivery"]


def test_only_channels_that_existed_at_publish_are_owed_the_message() -> None:
    v = verdict(sub(0, channel="early"), pub(1, "a"), sub(2, channel="late", consumer="c-1"), deliver(2.5, "a", channel="early"))
    assert v.ok
    assert [(o.channel, o.status) for o in v.outcomes] == [("early", "delivered")]


def test_a_topic_without_channels_owes_its_messages_to_the_first_channel() -> None:
    v = verdict(pub(1, "a"), sub(2, channel="first"), sub(3, channel="second", consumer="c-1"))
    assert [(o.channel, o.status) for o in v.outcomes] == [("first", "violation")]


@pytest.mark.parametrize(
    ("events_after", "rule"),
    [
        ([ev(2, "channel_deleted", channel="c")], "channel_deleted"),
        ([ev(2, "channel_emptied", channel="c")], "channel_emptied"),
    ],
)
def test_operators_may_drop_messages(events_after: list[dict[str, Any]], rule: str) -> None:
    v = verdict(sub(0), pub(1, "a"), events_after)
    assert v.ok and v.losses_by_rule() == {rule: 1}


def test_ephemeral_and_sampled_channels_may_drop_messages() -> None:
    v = verdict(sub(0, channel="e#ephemeral"), sub(0, channel="s", consumer="c-1", sample_rate=50), pub(1, "a"))
    assert v.ok and v.losses_by_rule() == {"ephemeral": 1, "sampled_out": 1}


def test_a_flipped_bit_may_cost_messages_and_an_exception_is_always_a_violation() -> None:
    v = verdict(sub(0), pub(1, "a"), ev(2, "disk_fault", fault="bitflip"), ev(3, "exception", error="KeyError: b'id'"))
    assert v.losses_by_rule() == {"disk_corruption": 1}
    assert v.violations == ["exception: KeyError: b'id'"]


def test_messages_still_queued_at_the_end_are_pending() -> None:
    v = verdict(sub(0), pub(1, "a"), pub(2, "b"), ev(3, "final", channel="c", depth=1, in_flight=0, deferred=0))
    assert v.count("pending") == 1 and v.count("violation") == 1


def test_an_unacknowledged_publish_is_owed_to_no_one() -> None:
    v = verdict(sub(0), ev(1, "publish", key="a", defer_ms=0), ev(2, "publish_failed", key="a", error="E_PUB_FAILED"))
    assert v.ok and v.outcomes == [] and v.failed == 1


def test_nsqsim_histories_are_read_as_they_are_written() -> None:
    raw: list[dict[str, Any]] = [
        {"t": 0.0, "type": "run", "nodes": {"nsqd-0": {"crash_loses": True, "restart_loses": True}}},
        {"t": 0.5, "type": "subscribed", "consumer": "c-0", "nsqd": "nsqd-0", "topic": "t", "channel": "c"},
        {"t": 1.0, "type": "publish", "producer": "p-0", "nsqd": "nsqd-0", "topic": "t", "key": "p-0:1", "defer_ms": 0},
        {"t": 1.1, "type": "publish_ok", "producer": "p-0", "key": "p-0:1"},
        {"t": 2.0, "type": "crash", "host": "nsqd-0"},
        {"t": 3.0, "type": "disconnected", "who": "c-0", "nsqd": "nsqd-0", "error": "reset"},
    ]
    [e0, _, _, _, crash, gone] = events(raw)
    assert isinstance(crash, Event) and crash.nsqd == "nsqd-0" and gone.consumer == "c-0"
    assert NodeSettings.from_mapping(e0.extra["nodes"]["nsqd-0"]).mode == "memory"
    v = check(raw)
    assert v.ok and v.losses_by_rule() == {"no_disk": 1}
    # nsqsim's "kill" is a crash that keeps what was written; Events read it so.
    [kill] = events([{"t": 2.0, "type": "kill", "host": "nsqd-0"}])
    assert (kill.type, kill.kind, kill.nsqd) == ("crash", "kill", "nsqd-0")
    assert check([kill]).ok and Event.from_dict(kill.to_dict()) == kill


def test_a_consumer_gone_at_its_fin_explains_a_redelivery_across_a_clean_restart() -> None:
    # The FIN may never have left: the consumer died at the instant it wrote it.
    v = verdict(
        node("default"),
        sub(0),
        pub(1, "a"),
        deliver(1.1, "a"),
        fin(1.2, "a"),
        ev(1.2, "consumer_crash", consumer="c-0"),
        ev(2, "stop"),
        ev(3, "start"),
        deliver(4, "a", attempts=2, consumer="c-1"),
    )
    assert v.ok, v.violations
    assert v.outcome("c", "a").causes == ["restart_redelivery"]


@pytest.mark.parametrize(("held", "ok"), [({"t/c": {}}, False), ({"t/c": {"id-a": "in_flight"}}, True)])
def test_what_a_clean_stop_held_settles_whether_a_fin_had_arrived(held: dict[str, dict[str, str]], ok: bool) -> None:
    v = verdict(
        node("default"),
        sub(0),
        pub(1, "a"),
        deliver(1.1, "a"),
        fin(1.2, "a"),
        ev(2, "stop", held=held),
        ev(2.01, "disconnected", who="c-0"),
        ev(3, "start"),
        deliver(4, "a", attempts=2),
    )
    assert v.ok is ok
    assert v.outcome("c", "a").rule == ("" if ok else "fin_undone_by_clean_restart")


def test_a_requeue_delay_survives_a_clean_restart() -> None:
    v = verdict(
        node("disk-only"),
        sub(0),
        pub(1, "a"),
        deliver(1.1, "a"),
        req(1.2, "a", delay_ms=5000),
        ev(2, "stop"),
        ev(3, "start"),
        deliver(4, "a", attempts=2),
    )
    assert [x.split(":")[0] for x in v.violations] == ["early"]


def test_a_delivery_the_old_life_sent_may_arrive_after_the_new_one_started() -> None:
    # Held at a black-holed link while the node was killed and started again; the
    # new life's delivery came on a new connection, with the attempts read from disk.
    v = verdict(
        node("disk-only"),
        sub(0),
        pub(1, "a"),
        ev(1.5, "kill"),
        ev(2, "start"),
        ev(2.1, "heal", side_a=["nsqd-0"], side_b=["c-0"]),
        deliver(2.1, "a", attempts=1),
        sub(2.2),
        deliver(2.3, "a", attempts=1),
        fin(2.4, "a"),
    )
    assert v.ok, v.violations
    assert v.outcome("c", "a").causes == ["crash_redelivery"]
    # On one connection, both came from one life: attempts must grow.
    same = verdict(node("disk-only"), sub(0), pub(1, "a"), ev(1.5, "kill"), ev(2, "start"), deliver(2.1, "a"), deliver(2.3, "a"))
    assert [x.split(":")[0] for x in same.violations] == ["attempts"]


def test_a_lower_attempt_held_at_a_healed_cut_is_a_timeout_seen_in_reverse() -> None:
    def history(heal: bool) -> Verdict:
        healed = [ev(12.5, "heal", side_a=["c-1"], side_b=["c-0", N])] if heal else []
        return verdict(sub(0), sub(0, consumer="c-1"), pub(1, "a"), deliver(12, "a", attempts=2), fin(12.1, "a"), healed, deliver(12.6, "a", consumer="c-1"))

    assert history(heal=True).ok and history(heal=True).outcome("c", "a").causes == ["timeout"]
    assert [x.split(":")[0] for x in history(heal=False).violations] == ["attempts"]


def test_a_fin_nsqd_applied_to_a_redelivery_to_the_same_consumer_is_a_timeout() -> None:
    v = verdict(
        sub(0),
        pub(1, "a"),
        deliver(1.1, "a"),
        fin(4.1, "a"),
        deliver(4.2, "a", attempts=2),
        fin(4.3, "a"),
        ev(4.31, "error", consumer="c-0", error="E_FIN_FAILED FIN id-a failed ID not in flight"),
    )
    assert v.ok, v.violations
    assert v.outcome("c", "a").causes == ["timeout"]


def test_only_the_connection_to_that_nsqd_ending_excuses_a_redelivery_after_a_fin() -> None:
    def history(nsqd: str) -> Verdict:
        return verdict(sub(0), pub(1, "a"), deliver(1.1, "a"), fin(1.2, "a"), ev(1.3, "disconnected", who="c-0", nsqd=nsqd), deliver(5, "a", attempts=2, consumer="c-1"))

    assert history(N).ok and history(N).outcome("c", "a").causes == ["consumer_gone"]
    assert [x.split(":")[0] for x in history("nsqd-1").violations] == ["redelivered_after_fin"]


def test_a_hold_is_answered_by_a_timeout() -> None:
    v = verdict(sub(0), pub(1, "a"), deliver(1.1, "a"), ev(1.2, "hold", consumer="c-0", channel="c", key="a"), deliver(62, "a", attempts=2), fin(63, "a"))
    assert v.ok and v.outcome("c", "a").causes == ["timeout"]


def test_any_of_the_channels_made_after_a_channel_less_publish_may_be_the_first() -> None:
    # SUB answers arrive a little after nsqd made the channel: close together, their
    # order need not be nsqd's.
    v = verdict(pub(1, "a"), sub(2, channel="first"), sub(2.001, channel="second", consumer="c-1"), deliver(2.01, "a", channel="second", consumer="c-1"))
    assert v.ok and [(o.channel, o.status, o.expected) for o in v.outcomes] == [("second", "delivered", True)]


def test_a_bit_flipped_in_nsqd_dat_excuses_no_forgotten_channel() -> None:
    # nsqd keeps a checksummed second copy and recovers channels from their disk
    # queues: wherever the bit flips, b is owed m (this excuse once hid a loss).
    for where in ("/data/nsqd-0/nsqd.dat", "/data/nsqd-0/t.diskqueue.000000.dat"):
        flip = ev(2, "disk_fault", fault="bitflip", where=[where, 27])
        v = verdict(node("default"), sub(0, channel="a"), sub(0, channel="b", consumer="c-1"), flip, ev(3, "kill"), ev(4, "start"), pub(5, "m"), sub(6, channel="a"), deliver(6.1, "m", channel="a"))
        assert [x.split(":")[0] for x in v.violations] == ["lost"] and v.outcome("b", "m").status == "violation"


def test_many_violations_of_a_kind_are_counted_and_twenty_listed() -> None:
    v = verdict(sub(0), *[pub(1 + i, f"m{i}") for i in range(30)])
    assert v.violation_counts() == {"lost": 30} and len(v.violations) == 21
    assert v.violations[-1] == "lost: ... (more not listed)"


def test_a_node_still_down_after_the_load_ended_is_a_violation() -> None:
    # A simulated run ends every fault at load_end and restarts every node; a torn
    # write's crash once never restarted, and default mode excused what its disk held.
    down = verdict(node("default"), sub(0), ev(1, "crash"), ev(2, "load_end"))
    assert [x.split(":")[0] for x in down.violations] == ["node_down"]
    up = verdict(node("default"), sub(0), ev(1, "crash"), ev(1.5, "start"), ev(2, "load_end"))
    assert up.ok, up.violations
    # a hand-written history with no load_end says nothing about the end
    assert verdict(node("default"), sub(0), ev(1, "crash")).ok


# -- beyond nsqd: dead letters and TTL -------------------------------------------------


def options(max_attempts: int = 2) -> list[dict[str, Any]]:
    return [
        ev(0.1, "channel_created", channel="c"),
        ev(0.1, "channel_options", channel="c", max_attempts=max_attempts, dead_letter_topic="dead"),
        sub(0.2, channel="r", consumer="dead-0", topic="dead"),
    ]


def letter(t: float, key: str, attempts: int = 2) -> dict[str, Any]:
    return ev(t, "dead_letter", consumer="dead-0", topic="t", channel="c", key=key, id=f"id-{key}", attempts=attempts, reason="requeued")


def test_a_delivery_past_max_attempts_is_a_violation() -> None:
    v = verdict(node("default"), options(2), sub(0.5), pub(1, "k"), deliver(1.1, "k"), req(1.2, "k"), deliver(1.3, "k", 2), req(1.4, "k"), deliver(1.5, "k", 3), fin(1.6, "k"))
    assert v.violation_counts() == {"over_attempts": 1}, v.violations


def test_a_message_requeued_on_its_last_attempt_must_reach_the_dead_letter_topic() -> None:
    base = [node("disk-only"), *options(2), sub(0.5), *pub(1, "k"), deliver(1.1, "k"), req(1.2, "k"), deliver(1.3, "k", 2), req(1.4, "k")]
    assert verdict(base, letter(1.5, "k")).ok
    assert verdict(base).violation_counts() == {"dead_letter_lost": 1}
    # still queued in the dead-letter topic at the end: pending, not lost
    assert verdict(base, ev(9, "final", topic="dead", channel="r", depth=1, in_flight=0, deferred=0)).ok
    # a default-mode crash after the last delivery may take the envelope from memory;
    # in disk-only mode the envelope is fsynced before the message is let go
    crash = [ev(2, "crash", kind="power"), ev(2.5, "start")]
    assert verdict(node("default"), base[1:], crash).ok
    assert verdict(base, crash).violation_counts() == {"dead_letter_lost": 1}
    # a FIN of the last delivery owes nothing
    assert verdict(base[:-1], fin(1.4, "k")).ok


def test_a_dead_letter_must_follow_max_attempts_deliveries_of_the_channel() -> None:
    # deliveries lost on the way: the dead letter shows it reached the channel
    assert verdict(node("default"), options(2), sub(0.5), pub(1, "k"), letter(1.5, "k")).ok
    phantom = verdict(node("default"), options(2), sub(0.5), letter(1.5, "k"))
    assert phantom.violation_counts() == {"dead_letter_phantom": 1}
    early = verdict(node("default"), options(2), sub(0.5), pub(1, "k"), deliver(1.1, "k"), req(1.2, "k"), letter(1.5, "k", attempts=1))
    assert early.violation_counts() == {"dead_letter_early": 1}


def test_a_delivery_later_than_the_ttl_is_a_violation_unless_a_cut_held_it() -> None:
    ttl = [node("default"), ev(0.1, "topic_options", ttl=2.0), sub(0.5), *pub(1, "k")]
    on_time = ev(3.9, "deliver", consumer="c-0", channel="c", key="k", id="id-k", attempts=1, published=1.0)
    late = ev(4.5, "deliver", consumer="c-0", channel="c", key="k", id="id-k", attempts=1, published=1.0)
    assert verdict(ttl, on_time).ok
    assert verdict(ttl, late).violation_counts() == {"late": 1}
    assert verdict(ttl, ev(4.4, "heal", side_a=["c-0"], side_b=[N]), late).ok
    # an undelivered message of a TTL topic may have expired
    v = verdict(ttl)
    assert v.ok and v.losses_by_rule() == {"expired": 1}


def test_an_unanswered_delivery_never_timed_out_is_stuck_in_a_simulated_run() -> None:
    # nsqd must time out what a consumer never answers; without this rule a broker
    # whose timeouts never fire only left messages pending (nsqsim.mutants found it).
    bound = ev(0, "node", mem_queue_size=10000, timeout_bound=10.0)
    held: list[dict[str, Any] | list[dict[str, Any]]] = [
        sub(0), pub(1, "a"), deliver(1.1, "a"), ev(1.2, "hold", consumer="c-0", channel="c", key="a"), ev(2, "load_end"),
    ]
    stuck = verdict(bound, *held, ev(40, "end"))
    assert [x.split(":")[0] for x in stuck.violations] == ["stuck"]
    assert verdict(bound, *held, deliver(11.2, "a", attempts=2, consumer="c-0"), fin(11.3, "a"), ev(40, "end")).ok
    # not yet twice the bound after it; or a node without one; or its node ended since it was sent
    assert verdict(bound, *held, ev(15, "end")).ok
    assert verdict(ev(0, "node", mem_queue_size=10000), *held, ev(40, "end")).ok
    assert verdict(bound, *held[:3], ev(1.15, "kill"), ev(1.3, "start"), *held[3:], ev(40, "end")).ok
    # answered: not stuck, whatever came of the answer
    assert verdict(bound, *held[:3], fin(1.2, "a"), ev(2, "load_end"), ev(40, "end")).ok


def test_an_old_attempt_held_at_a_cut_and_seen_last_is_not_stuck() -> None:
    # reference cluster seed 6: attempt 1 arrived after attempt 2 was finished, and no one answered it
    v = verdict(
        node("default"), ev(0, "node", timeout_bound=10.0), sub(0.5), sub(0.5, consumer="c-1"), pub(1, "k"),
        deliver(12, "k", 2), fin(12.1, "k"), ev(13, "heal", side_a=["c-1"], side_b=[N]), deliver(13.1, "k", 1, consumer="c-1"),
        ev(20, "load_end"), ev(60, "end"),
    )
    assert "stuck" not in v.violation_counts(), v.violations


def test_a_requeue_held_at_a_cut_is_not_early_when_the_timeout_redelivers() -> None:
    # reference-beyond seed 22: the consumer's REQ (delay 2983ms) went into a one-way black hole
    # towards nsqd; nsqd timed the message out after 1 s and delivered it again, "early"
    def history(heal: bool) -> Verdict:
        healed = [ev(30, "heal", side_a=["c-0"], side_b=[N])] if heal else []
        return verdict(node("default"), sub(0.5), pub(1, "k"), deliver(1.1, "k"), req(1.2, "k", delay_ms=2983), deliver(2.1, "k", 2), fin(2.2, "k"), healed, ev(40, "end"))

    assert history(heal=True).ok, history(heal=True).violations
    assert history(heal=True).outcome("c", "k").causes == ["timeout"]
    assert [x.split(":")[0] for x in history(heal=False).violations] == ["early"]


def test_a_fin_read_after_a_later_attempt_was_sent_finished_it_and_owes_no_dead_letter() -> None:
    # reference-beyond seed 47: attempts 2 and 3 to c-0, held at a cut, arrive together; c-0
    # FINs attempt 2 and REQs attempt 3, but nsqd reads the FIN with attempt 3 in flight to c-0
    held = [node("disk-only"), *options(3), sub(0.5), sub(0.5, consumer="c-1"), *pub(1, "k")]
    arrive = [deliver(9.0, "k", 2), fin(9.01, "k"), deliver(9.02, "k", 1, consumer="c-1"), deliver(9.03, "k", 3), req(9.04, "k"), fin(9.05, "k", consumer="c-1")]
    v = verdict(held, ev(8.9, "heal", side_a=["c-0", "c-1"], side_b=[N]), arrive, ev(30, "end"))
    assert "dead_letter_lost" not in v.violation_counts(), v.violations
    # without the FIN from c-0, the REQ of the last attempt owes a dead letter
    arrive_no_fin = [a for a in arrive if not (a["type"] == "fin" and a["consumer"] == "c-0")]
    v = verdict(held, ev(8.9, "heal", side_a=["c-0", "c-1"], side_b=[N]), arrive_no_fin, ev(30, "end"))
    assert "dead_letter_lost" in v.violation_counts(), v.violations


def test_a_fin_held_at_a_cut_that_finished_the_next_attempt_leaves_nothing_stuck() -> None:
    # reference-beyond seed 18: c-0's FIN of attempt 1 was held at a cut; nsqd timed the message
    # out, sent attempt 2 into the cut too, and read the FIN after the heal, with attempt 2 in flight
    bound = ev(0, "node", timeout_bound=2.0)
    base = [bound, sub(0.5), *pub(1, "k"), deliver(1.1, "k"), fin(1.2, "k"), ev(3.9, "heal", side_a=["c-0"], side_b=[N]), deliver(4.0, "k", 2)]
    v = verdict(*base, ev(4.05, "hold", consumer="c-0", channel="c", key="k", id="id-k"), ev(20, "load_end"), ev(60, "end"))
    assert "stuck" not in v.violation_counts(), v.violations
    # the same without the FIN: attempt 2 was never answered and never timed out
    v = verdict(*[e for e in base if e.get("type") != "fin"], ev(4.05, "hold", consumer="c-0", channel="c", key="k", id="id-k"), ev(20, "load_end"), ev(60, "end"))
    assert "stuck" in v.violation_counts(), v.violations
