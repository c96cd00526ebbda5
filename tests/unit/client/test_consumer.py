"""The consumer core: RDY distribution, backoff, max attempts, reconnects, lookupd, stop."""

from __future__ import annotations

import json

import h11
import pytest

from broker.client.config import ClientConfig
from broker.client.consumer import ConsumerCore, distribute_rdy
from broker.client.message import Message
from broker.wire import v2
from tests.fakes import FakeClock, FakeConnection, FakeRandom, RecordingLogger
from tests.unit.client.fakes import FakeNetwork, FakeNSQD, msg_id

CONFIG = ClientConfig(client_id="cid", hostname="h")


class Harness:
    def __init__(self, config: ClientConfig = CONFIG, random: FakeRandom | None = None) -> None:
        self.clock = FakeClock()
        self.net = FakeNetwork()
        self.log = RecordingLogger()
        self.handled: list[Message] = []
        self.given_up: list[Message] = []
        self.closed = 0
        self.core = ConsumerCore(
            "t",
            "c",
            config,
            clock=self.clock,
            network=self.net,
            random=random or FakeRandom([0.0]),
            on_message=self.handled.append,
            on_give_up=self.given_up.append,
            on_closed=self._closed,
            logger=self.log,
        )

    def _closed(self) -> None:
        self.closed += 1

    def nsqd(self, address: str) -> FakeNSQD:
        """Connect to ``address`` and complete the handshake."""
        self.core.connect_to_nsqd(address)
        peer = self.net.accept(self.clock)
        peer.handshake()
        return peer

    def rdy(self, *peers: FakeNSQD) -> list[int]:
        """Each peer's RDY, as it last heard it."""
        out = []
        for peer in peers:
            rdys = [c for c in peer.commands() if isinstance(c, v2.Rdy)]
            if rdys:
                peer.last_rdy = int(rdys[-1].raw_count or b"1")  # type: ignore[attr-defined]
            out.append(getattr(peer, "last_rdy", 0))
        return out


def test_distribution_hands_the_remainder_to_the_first_ranked() -> None:
    assert distribute_rdy(10, 3) == [4, 3, 3]
    assert distribute_rdy(6, 3) == [2, 2, 2]
    assert distribute_rdy(2, 2) == [1, 1]
    assert sum(distribute_rdy(2500, 7)) == 2500


def test_one_connection_gets_all_of_max_in_flight() -> None:
    h = Harness(CONFIG.replace(max_in_flight=10))
    a = h.nsqd("127.0.0.1:4150")
    assert h.rdy(a) == [10]


def test_max_in_flight_is_split_and_redistributed_as_connections_come_and_go() -> None:
    h = Harness(CONFIG.replace(max_in_flight=5))
    a = h.nsqd("127.0.0.1:4150")
    assert h.rdy(a) == [5]
    b = h.nsqd("127.0.0.1:4151")
    assert h.rdy(a, b) == [3, 2]
    # b has the most recent message and c is new, so a has least claim to a spare slot
    h.clock.advance(1)
    b.message(msg_id(1), b"x")
    c = h.nsqd("127.0.0.1:4152")
    assert h.rdy(a, b, c) == [1, 2, 2]
    c.conn.disconnect()
    assert h.rdy(a, b) == [2, 3]
    b.conn.disconnect()
    assert h.rdy(a) == [5]


def test_fewer_slots_than_connections_hold_rdy_one_and_rotate_when_idle() -> None:
    config = CONFIG.replace(max_in_flight=1, low_rdy_idle_timeout=10, rdy_redistribute_interval=5)
    h = Harness(config, FakeRandom([0.0, 0.99, 0.5]))
    peers = [h.nsqd(f"127.0.0.1:{4150 + i}") for i in range(3)]
    first = h.rdy(*peers)
    assert sorted(first) == [0, 0, 1]
    holder = first.index(1)
    h.clock.advance(5)  # not idle long enough yet
    assert h.rdy(*peers) == first
    h.clock.advance(10)
    now = h.rdy(*peers)
    assert sum(now) == 1 and now.index(1) != holder


def test_a_busy_low_rdy_holder_keeps_its_slot() -> None:
    config = CONFIG.replace(max_in_flight=1, low_rdy_idle_timeout=10, low_rdy_timeout=60, rdy_redistribute_interval=5)
    h = Harness(config)
    peers = [h.nsqd(f"127.0.0.1:{4150 + i}") for i in range(2)]
    first = h.rdy(*peers)
    holder = peers[first.index(1)]
    for i in range(6):
        h.clock.advance(5)
        holder.message(msg_id(i), b"x")
        h.handled[-1].finish()
    assert h.rdy(*peers) == first


def test_a_failed_message_backs_off_then_tests_with_rdy_one_then_resumes() -> None:
    h = Harness(CONFIG.replace(max_in_flight=10, backoff_multiplier=1.0))
    a = h.nsqd("127.0.0.1:4150")
    assert h.rdy(a) == [10]
    a.message(msg_id(1), b"x")
    h.handled[0].requeue()
    assert h.core.backoff_level == 1
    assert h.rdy(a) == [0]
    h.clock.advance(1.9)
    assert h.rdy(a) == [0]
    h.clock.advance(0.1)  # 1s * 2**1
    assert h.rdy(a) == [1]
    a.message(msg_id(2), b"x")
    h.handled[1].finish()
    assert h.core.backoff_level == 0
    assert h.rdy(a) == [10]


def test_backoff_deepens_with_each_failure_and_is_capped() -> None:
    h = Harness(CONFIG.replace(max_in_flight=4, backoff_multiplier=1.0, max_backoff_duration=4.0))
    a = h.nsqd("127.0.0.1:4150")
    waits = []
    for i in range(4):
        a.message(msg_id(i), b"x")
        h.handled[-1].requeue()
        before = h.clock.now()
        while h.rdy(a) != [1]:
            h.clock.advance(0.5)
        waits.append(h.clock.now() - before)
    assert waits == [2.0, 4.0, 4.0, 4.0]  # 2s, 4s, then the cap (8s > 4s is not a new level)
    assert h.core.backoff_level == 2


def test_outcomes_during_a_backoff_wait_are_ignored() -> None:
    h = Harness(CONFIG.replace(max_in_flight=5))
    a = h.nsqd("127.0.0.1:4150")
    for i in range(3):
        a.message(msg_id(i), b"x")
    for msg in h.handled:
        msg.requeue()
    assert h.core.backoff_level == 1


def test_requeue_without_backoff_does_not_back_off() -> None:
    h = Harness(CONFIG.replace(max_in_flight=5))
    a = h.nsqd("127.0.0.1:4150")
    a.message(msg_id(1), b"x")
    h.handled[0].requeue(backoff=False)
    assert h.core.backoff_level == 0 and h.rdy(a) == [5]


def test_zero_max_backoff_disables_backoff() -> None:
    h = Harness(CONFIG.replace(max_in_flight=5, max_backoff_duration=0))
    a = h.nsqd("127.0.0.1:4150")
    a.message(msg_id(1), b"x")
    h.handled[0].requeue()
    assert h.core.backoff_level == 0 and h.rdy(a) == [5]


def test_messages_past_max_attempts_are_given_up_and_finished() -> None:
    h = Harness(CONFIG.replace(max_attempts=5))
    a = h.nsqd("127.0.0.1:4150")
    a.commands()
    a.message(msg_id(1), b"x", attempts=5)
    a.message(msg_id(2), b"y", attempts=6)
    assert [m.id for m in h.handled] == [msg_id(1)]
    assert [m.id for m in h.given_up] == [msg_id(2)]
    assert a.commands() == [v2.Fin(msg_id(2))]
    assert h.core.stats().messages_given_up == 1


def test_error_frames_reach_on_error_and_a_non_fatal_one_keeps_the_connection() -> None:
    # The simulator's checkers need E_FIN_FAILED with its message id, as nsqd sent it.
    errors: list[tuple[str, str]] = []
    h = Harness()
    h.core = ConsumerCore(
        "t",
        "c",
        CONFIG,
        clock=h.clock,
        network=h.net,
        random=FakeRandom([0.0]),
        on_message=h.handled.append,
        on_error=lambda conn, err: errors.append((conn.address, str(err))),
    )
    a = h.nsqd("127.0.0.1:4150")
    a.error("E_FIN_FAILED FIN 0000000000000001 failed")
    assert errors == [("127.0.0.1:4150", "E_FIN_FAILED FIN 0000000000000001 failed")]
    assert not a.closed() and len(h.core.connections) == 1


def test_a_lost_direct_nsqd_is_redialled_with_doubling_delays() -> None:
    h = Harness(CONFIG.replace(reconnect_delay=1.0, max_reconnect_delay=4.0))
    a = h.nsqd("127.0.0.1:4150")
    a.conn.disconnect()
    delays = []
    for _ in range(4):
        start = h.clock.now()
        while not h.net.attempts:
            h.clock.advance(0.5)
        delays.append(h.clock.now() - start)
        h.net.refuse()
    assert delays == [1.0, 2.0, 4.0, 4.0]
    h.clock.advance(4)
    h.net.accept(h.clock).handshake()
    assert len(h.core.connections) == 1


def test_a_direct_nsqd_refused_for_ever_is_redialled_at_the_cap() -> None:
    h = Harness(CONFIG.replace(reconnect_delay=1.0, max_reconnect_delay=4.0))
    h.core.connect_to_nsqd("127.0.0.1:4150")
    for _ in range(1200):  # 2**1200 is past what a float holds
        h.net.refuse()
        h.clock.advance(4.0)
    assert len(h.net.attempts) == 1


def test_stop_sends_cls_everywhere_and_closes_when_drained() -> None:
    h = Harness(CONFIG.replace(max_in_flight=4))
    a = h.nsqd("127.0.0.1:4150")
    b = h.nsqd("127.0.0.1:4151")
    a.commands()
    b.commands()
    a.message(msg_id(1), b"x")
    h.core.stop()
    assert a.commands() == [v2.Cls()] and b.commands() == [v2.Cls()]
    a.close_wait()
    b.close_wait()
    assert b.closed() and not a.closed() and h.closed == 0
    h.handled[0].finish()
    assert a.closed() and h.closed == 1
    h.clock.advance(120)  # and nothing reconnects
    assert h.net.attempts == []


def test_stop_with_no_connections_is_immediate() -> None:
    h = Harness()
    h.core.stop()
    assert h.closed == 1


def test_invalid_names_are_refused() -> None:
    with pytest.raises(ValueError, match="topic"):
        ConsumerCore("bad topic", "c", CONFIG, clock=FakeClock(), network=FakeNetwork(), random=FakeRandom(), on_message=print)
    with pytest.raises(ValueError, match="channel"):
        ConsumerCore("t", "", CONFIG, clock=FakeClock(), network=FakeNetwork(), random=FakeRandom(), on_message=print)


# -- nsqlookupd ---------------------------------------------------------------------------------


def answer_lookup(net: FakeNetwork, producers: list[tuple[str, int]], status: int = 200) -> bytes:
    """Accept the HTTP connection the poller opened and answer its request; the request head."""
    attempt = net.take()
    conn = FakeConnection(attempt.handler, (attempt.host, attempt.port))
    request = bytes(conn.written)
    body = json.dumps(
        {"channels": ["c"], "producers": [{"broadcast_address": h, "tcp_port": p, "http_port": p + 1} for h, p in producers]}
    ).encode()
    server = h11.Connection(h11.SERVER)
    server.receive_data(request)
    assert isinstance(server.next_event(), h11.Request)
    out = server.send(h11.Response(status_code=status, headers=[("Content-Length", str(len(body)))]))
    out = (out or b"") + (server.send(h11.Data(data=body)) or b"")
    conn.send(out)
    return request


def test_lookupd_is_polled_and_its_producers_are_consumed() -> None:
    config = CONFIG.replace(lookupd_poll_interval=60, lookupd_poll_jitter=0.5)
    h = Harness(config, FakeRandom([0.5]))
    h.core.connect_to_lookupd("127.0.0.1:4161")
    request = answer_lookup(h.net, [("10.0.0.1", 4150), ("10.0.0.2", 4150)])
    assert request.startswith(b"GET /lookup?topic=t HTTP/1.1\r\n")
    assert b"accept: application/vnd.nsq; version=1.0" in request.lower()
    assert [a.address for a in h.net.attempts] == ["10.0.0.1:4150", "10.0.0.2:4150"]
    h.net.attempts.clear()
    h.clock.advance(15)  # the jitter: 0.5 * 0.5 * 60s
    assert [(a.host, a.port) for a in h.net.attempts] == [("127.0.0.1", 4161)]
    answer_lookup(h.net, [("10.0.0.1", 4150), ("10.0.0.3", 4150)])
    assert [a.address for a in h.net.attempts] == ["10.0.0.3:4150"]  # the others are connecting already
    h.net.attempts.clear()
    h.clock.advance(59.9)
    assert h.net.attempts == []
    h.clock.advance(0.1)
    assert len(h.net.attempts) == 1


def test_a_failed_poll_tries_the_next_lookupd() -> None:
    h = Harness(CONFIG)
    h.core.connect_to_lookupd("127.0.0.1:4161")
    h.core.connect_to_lookupd("http://127.0.0.1:4171/")
    h.net.refuse()  # the first poll went to 4161
    assert [(a.host, a.port) for a in h.net.attempts] == [("127.0.0.1", 4171)]
    answer_lookup(h.net, [("10.0.0.9", 4150)])
    assert [a.address for a in h.net.attempts] == ["10.0.0.9:4150"]
    assert any("error querying nsqlookupd" in msg for _, msg in h.log.lines)


def test_losing_a_discovered_nsqd_polls_lookupd_again() -> None:
    h = Harness(CONFIG)
    h.core.connect_to_lookupd("127.0.0.1:4161")
    answer_lookup(h.net, [("10.0.0.1", 4150)])
    peer = h.net.accept(h.clock)
    peer.handshake()
    peer.conn.disconnect()
    assert [(a.host, a.port) for a in h.net.attempts] == [("127.0.0.1", 4161)]
