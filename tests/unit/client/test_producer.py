"""The producer core: queueing, failover, reconnect backoff, typed errors, close."""

from __future__ import annotations

import pytest

from broker.client.config import ClientConfig
from broker.client.errors import (
    BadMessageError,
    ClosedError,
    ConnectionClosedError,
    NotConnectedError,
    NSQClientError,
    PubFailedError,
    QueueFullError,
)
from broker.client.producer import ProducerCore
from broker.wire import v2
from tests.fakes import FakeClock
from tests.unit.client.fakes import FakeNetwork, FakeNSQD

CONFIG = ClientConfig(client_id="cid", hostname="h", reconnect_delay=1.0, max_reconnect_delay=8.0)


class Harness:
    def __init__(self, addresses: list[str], config: ClientConfig = CONFIG) -> None:
        self.clock = FakeClock()
        self.net = FakeNetwork()
        self.results: list[NSQClientError | None] = []
        self.closed = 0
        self.core = ProducerCore(addresses, config, clock=self.clock, network=self.net, on_closed=self._closed)

    def _closed(self) -> None:
        self.closed += 1

    def pub(self, body: bytes) -> None:
        self.core.pub("t", body, self.results.append)

    def accept(self) -> FakeNSQD:
        peer = self.net.accept(self.clock)
        peer.handshake(subscribe=False)
        return peer

    def kinds(self) -> list[object]:
        return [None if r is None else type(r) for r in self.results]


def test_publishes_wait_for_the_first_connection_then_go_in_order() -> None:
    h = Harness(["127.0.0.1:4150"])
    h.pub(b"a")
    h.core.mpub("t", [b"b", b"c"], h.results.append)
    h.core.dpub("t", 500, b"d", h.results.append)
    assert h.core.queued == 3
    peer = h.accept()
    assert peer.commands() == [v2.Pub("t", b"a"), v2.Mpub("t", [b"b", b"c"]), v2.Dpub("t", 500, b"d")]
    peer.ok()
    peer.ok()
    assert h.results == [None, None]
    peer.error("E_PUB_FAILED DPUB failed exiting")
    assert h.kinds() == [None, None, PubFailedError]


def test_a_refused_address_fails_over_to_the_next_at_once() -> None:
    h = Harness(["127.0.0.1:4150", "127.0.0.1:4151"])
    h.pub(b"a")
    assert h.net.refuse().address == "127.0.0.1:4150"
    peer = h.net.accept(h.clock)
    assert peer.conn.peer_address == ("127.0.0.1", 4151)
    peer.handshake(subscribe=False)
    assert peer.commands() == [v2.Pub("t", b"a")]


def test_when_every_address_fails_the_waiting_publishes_fail() -> None:
    h = Harness(["127.0.0.1:4150", "127.0.0.1:4151"])
    h.pub(b"a")
    h.pub(b"b")
    h.net.refuse()
    h.net.refuse()
    assert h.kinds() == [NotConnectedError, NotConnectedError]
    assert "connection refused" in str(h.results[0])
    assert h.net.attempts == []  # a lazy producer waits for the next publish
    h.pub(b"c")
    assert len(h.net.attempts) == 1


def test_a_connection_lost_in_use_fails_its_outstanding_publish_and_fails_over() -> None:
    h = Harness(["127.0.0.1:4150", "127.0.0.1:4151"])
    h.core.start()
    first = h.accept()
    h.pub(b"a")
    first.commands()
    first.conn.disconnect()
    assert h.kinds() == [ConnectionClosedError]
    second = h.accept()  # an eager producer reconnects, to the next address, straight away
    assert second.conn.peer_address == ("127.0.0.1", 4151)
    h.pub(b"b")
    assert second.commands() == [v2.Pub("t", b"b")]


def test_a_lazy_producer_reconnects_on_the_next_publish() -> None:
    h = Harness(["127.0.0.1:4150", "127.0.0.1:4151"])
    h.pub(b"a")
    h.accept().conn.disconnect()
    assert h.net.attempts == []
    h.pub(b"b")
    assert h.net.attempts[0].address == "127.0.0.1:4151"


def test_a_fatal_error_closes_the_connection_and_the_next_publish_uses_another() -> None:
    h = Harness(["127.0.0.1:4150", "127.0.0.1:4151"])
    h.pub(b"a")
    first = h.accept()
    first.commands()
    first.error("E_PUB_FAILED PUB failed exiting")
    assert h.kinds() == [PubFailedError] and first.closed()
    assert isinstance(h.results[0], PubFailedError) and h.results[0].desc == "PUB failed exiting"
    h.pub(b"b")
    assert h.net.attempts[0].address == "127.0.0.1:4151"


def test_a_publish_right_after_a_fatal_error_goes_to_a_new_connection() -> None:
    h = Harness(["127.0.0.1:4150"])
    h.pub(b"a")
    first = h.accept()
    first.commands()
    # As asyncio does, the runtime reports the close a moment after it was asked for.
    first.conn.close = lambda: setattr(first.conn, "closed", True)  # type: ignore[method-assign]
    first.error("E_BAD_MESSAGE PUB message too big 200 > 100")
    h.pub(b"b")  # connection_lost has not been reported yet
    second = h.accept()
    assert second.commands() == [v2.Pub("t", b"b")]
    first.conn.handler.connection_lost(None)
    assert h.kinds() == [BadMessageError]


def test_an_eager_producer_retries_rounds_with_doubling_pauses() -> None:
    h = Harness(["127.0.0.1:4150"])
    h.core.start()
    pauses = []
    for _ in range(5):
        h.net.refuse()
        start = h.clock.now()
        while not h.net.attempts:
            h.clock.advance(0.5)
        pauses.append(h.clock.now() - start)
    assert pauses == [1.0, 2.0, 4.0, 8.0, 8.0]
    h.accept()
    assert h.core.connection is not None


def test_a_publish_during_a_retry_pause_tries_at_once() -> None:
    h = Harness(["127.0.0.1:4150"])
    h.core.start()
    h.net.refuse()
    assert h.net.attempts == []
    h.pub(b"a")
    assert len(h.net.attempts) == 1


def test_a_long_outage_keeps_the_pause_at_its_cap() -> None:
    # Found by nsqsim (reference cluster, seed 1): each publish during an outage
    # starts a round, and after ~1,000 failed rounds 2**rounds no longer fit a
    # float, so the OverflowError escaped from connection_lost.
    h = Harness(["127.0.0.1:4150"])
    h.core.start()
    for _ in range(1500):
        h.net.refuse()
        h.pub(b"a")
    h.net.refuse()
    assert h.net.attempts == []
    h.clock.advance(7.9)
    assert h.net.attempts == []
    h.clock.advance(0.1)
    assert len(h.net.attempts) == 1


def test_the_waiting_queue_is_bounded() -> None:
    h = Harness(["127.0.0.1:4150"], CONFIG.replace(max_queued_publishes=2))
    for body in (b"a", b"b", b"c"):
        h.pub(body)
    assert h.kinds() == [QueueFullError]
    assert h.core.queued == 2


def test_close_fails_the_queue_and_waits_for_outstanding_answers() -> None:
    h = Harness(["127.0.0.1:4150"])
    h.pub(b"a")
    peer = h.accept()
    peer.commands()
    h.core.close()
    h.pub(b"after close")
    assert h.kinds() == [ClosedError]
    assert not peer.closed() and h.closed == 0
    peer.ok()
    assert h.kinds() == [ClosedError, None]
    assert peer.closed() and h.closed == 1


def test_close_while_connecting_aborts_the_attempt() -> None:
    h = Harness(["127.0.0.1:4150"])
    h.pub(b"a")
    peer = h.net.accept(h.clock)
    h.core.close()
    assert h.kinds() == [ClosedError]
    assert peer.aborted() and h.closed == 1


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda p, cb: p.pub("t", b"", cb), "empty"),
        (lambda p, cb: p.pub("bad topic!", b"x", cb), "topic"),
        (lambda p, cb: p.mpub("t", [], cb), "at least one"),
        (lambda p, cb: p.mpub("t", [b"x", b""], cb), "empty"),
        (lambda p, cb: p.dpub("t", -1, b"x", cb), "negative"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_sent(call: object, match: str) -> None:
    h = Harness(["127.0.0.1:4150"])
    with pytest.raises(ValueError, match=match):
        call(h.core, h.results.append)  # type: ignore[operator]
    assert h.net.attempts == [] and h.results == []


def test_a_topic_checked_once_does_not_let_a_bad_one_through() -> None:
    # ProducerCore checks a topic name once while it stays the same.
    h = Harness(["127.0.0.1:4150"])
    h.pub(b"a")
    for bad in ("bad topic!", "", "x" * 65):
        with pytest.raises(ValueError, match="topic"):
            h.core.pub(bad, b"x", h.results.append)
        with pytest.raises(ValueError, match="topic"):
            h.core.dpub(bad, 5, b"x", h.results.append)
    h.pub(b"b")
    assert h.accept().commands() == [v2.Pub("t", b"a"), v2.Pub("t", b"b")]


def test_addresses_are_checked_up_front() -> None:
    with pytest.raises(ValueError):
        ProducerCore(["localhost"], CONFIG, clock=FakeClock(), network=FakeNetwork())
    with pytest.raises(ValueError):
        ProducerCore([], CONFIG, clock=FakeClock(), network=FakeNetwork())


def test_every_closed_connection_is_reported_with_its_reason() -> None:
    # The simulator records each producer disconnect; failed connects count too.
    gone: list[tuple[str, str]] = []
    h = Harness(["127.0.0.1:4150"])
    h.core = ProducerCore(
        ["127.0.0.1:4150"],
        CONFIG,
        clock=h.clock,
        network=h.net,
        on_disconnect=lambda conn, exc: gone.append((conn.address, type(exc).__name__)),
    )
    h.core.start()
    h.net.refuse()
    assert gone == [("127.0.0.1:4150", "ConnectionRefusedError")]
    h.clock.advance(1.0)
    peer = h.accept()
    peer.conn.handler.connection_lost(ConnectionResetError("reset"))
    assert gone[1:] == [("127.0.0.1:4150", "ConnectionResetError")]
