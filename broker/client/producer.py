"""A producer's logic, sans-IO: publish to one nsqd, fail over to the next.

``ProducerCore`` is given nsqd addresses in order of preference and publishes
through one connection at a time.  Each PUB, MPUB or DPUB is handed a callback
that hears nsqd's answer: None for ``OK``, the typed ``NSQError`` for an error
frame (``PubFailedError`` for ``E_PUB_FAILED``), ``ConnectionClosedError`` if
the connection went before the answer came (the publish may or may not have
happened: it is never resent behind the caller's back, which would make a
duplicate the caller cannot see).

Connecting: while no connection is up, publishes wait in a queue (at most
``max_queued_publishes``) and the addresses are tried in turn, starting after
the last one that failed.  When every address has failed once in a row, the
waiting publishes fail with ``NotConnectedError``; the next publish starts a
new round at once.  After ``start()`` the producer also stays connected on its
own, retrying after ``reconnect_delay``, doubling up to
``max_reconnect_delay``, between failed rounds.  A connection that drops while
in use is replaced by the next address straight away (failover).

``close()`` fails the queued publishes with ``ClosedError``, lets the
connection collect its outstanding answers, then closes it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

from broker.client.address import split_address
from broker.client.config import ClientConfig
from broker.client.conn import AckCallback, NSQConnection
from broker.client.errors import (
    ClosedError,
    NotConnectedError,
    NSQClientError,
    NSQError,
    QueueFullError,
)
from broker.client.message import Message
from broker.ports import Clock, Logger, Network, Timer
from broker.wire import v2
from broker.wire.names import is_valid_topic_name

__all__ = ["ProducerCore", "encode_dpub", "encode_mpub", "encode_pub"]


def _check_topic(topic: str) -> None:
    if not is_valid_topic_name(topic):
        raise ValueError(f"invalid topic name {topic!r}")


def encode_pub(topic: str, body: bytes) -> bytes:
    """PUB, validated here so a bad argument never costs the connection (nsqd closes on it)."""
    _check_topic(topic)
    return _pub(topic, body)


def encode_mpub(topic: str, bodies: Sequence[bytes]) -> bytes:
    _check_topic(topic)
    return _mpub(topic, bodies)


def encode_dpub(topic: str, delay_ms: int, body: bytes) -> bytes:
    _check_topic(topic)
    return _dpub(topic, delay_ms, body)


# The encoders after the topic check, which ProducerCore makes once per topic.


def _pub(topic: str, body: bytes) -> bytes:
    if not body:
        raise ValueError("a message body must not be empty")
    return v2.encode_pub(topic, body)


def _mpub(topic: str, bodies: Sequence[bytes]) -> bytes:
    if not bodies:
        raise ValueError("MPUB needs at least one message")
    if not all(bodies):
        raise ValueError("a message body must not be empty")
    return v2.encode_mpub(topic, list(bodies))


def _dpub(topic: str, delay_ms: int, body: bytes) -> bytes:
    if not body:
        raise ValueError("a message body must not be empty")
    if delay_ms < 0:
        raise ValueError("a DPUB delay must not be negative")
    return v2.encode_dpub(topic, delay_ms, body)


class ProducerCore:
    def __init__(
        self,
        addresses: Sequence[str],
        config: ClientConfig,
        *,
        clock: Clock,
        network: Network,
        logger: Logger | None = None,
        on_ready: Callable[[NSQConnection], None] | None = None,
        on_round_failed: Callable[[BaseException | None], None] | None = None,
        on_closed: Callable[[], None] | None = None,
        on_disconnect: Callable[[NSQConnection, BaseException | None], None] | None = None,
    ) -> None:
        if not addresses:
            raise ValueError("a producer needs at least one nsqd address")
        for address in addresses:
            split_address(address)
        self.addresses = list(addresses)
        self.config = config
        self._clock = clock
        self._network = network
        self._logger = logger
        self._on_ready = on_ready
        self._on_round_failed = on_round_failed
        self._on_closed = on_closed
        self._on_disconnect = on_disconnect
        self._index = 0
        self._conn: NSQConnection | None = None
        self._connecting: NSQConnection | None = None
        self._draining: set[NSQConnection] = set()
        self._queue: deque[tuple[bytes, AckCallback]] = deque()
        self._attempts = 0  # failed connects since the last success or full round
        self._rounds = 0  # full rounds failed in a row
        self._retry_timer: Timer | None = None
        self._eager = False
        self._closing = False
        self._closed_fired = False
        self._checked_topic = ""  # the last topic name found valid

    @property
    def connection(self) -> NSQConnection | None:
        """The connection publishes go to, when one is up."""
        return self._conn

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def closing(self) -> bool:
        return self._closing

    # -- commands -----------------------------------------------------------------------------

    def start(self) -> None:
        """Connect now and stay connected (instead of connecting on the first publish)."""
        self._eager = True
        self._ensure()

    def pub(self, topic: str, body: bytes, on_done: AckCallback) -> None:
        self._check_topic(topic)
        self.publish(_pub(topic, body), on_done)

    def mpub(self, topic: str, bodies: Sequence[bytes], on_done: AckCallback) -> None:
        self._check_topic(topic)
        self.publish(_mpub(topic, bodies), on_done)

    def dpub(self, topic: str, delay_ms: int, body: bytes, on_done: AckCallback) -> None:
        self._check_topic(topic)
        self.publish(_dpub(topic, delay_ms, body), on_done)

    def _check_topic(self, topic: str) -> None:
        # The name's regex costs more than encoding the PUB: check a topic once
        # while the producer keeps publishing to it.
        if topic != self._checked_topic:
            _check_topic(topic)
            self._checked_topic = topic

    def publish(self, command: bytes, on_done: AckCallback) -> None:
        """Send an encoded publish command; ``on_done`` hears nsqd's answer."""
        if self._closing:
            on_done(ClosedError("producer closed"))
            return
        conn = self._conn
        if conn is not None:
            conn.publish(command, on_done)
            return
        if len(self._queue) >= self.config.max_queued_publishes:
            on_done(QueueFullError(f"{len(self._queue)} publishes already wait for a connection"))
            return
        self._queue.append((command, on_done))
        if self._retry_timer is not None:
            # Someone is waiting: try now rather than at the end of the pause.
            self._retry_timer.cancel()
            self._retry_timer = None
        self._ensure()

    def close(self) -> None:
        """Stop; outstanding answers are still collected before the connection closes."""
        if self._closing:
            return
        self._closing = True
        if self._retry_timer is not None:
            self._retry_timer.cancel()
            self._retry_timer = None
        self._fail_queue(ClosedError("producer closed"))
        if self._connecting is not None:
            connecting, self._connecting = self._connecting, None
            self._draining.add(connecting)
            connecting.abort()
        if self._conn is not None:
            conn, self._conn = self._conn, None
            self._draining.add(conn)
            conn.close()
        self._maybe_closed()

    def abort(self) -> None:
        self.close()
        for conn in list(self._draining):
            conn.abort()

    # -- connecting ------------------------------------------------------------------------------

    def _ensure(self) -> None:
        if self._closing or self._conn is not None or self._connecting is not None or self._retry_timer is not None:
            return
        if not (self._eager or self._queue):
            return
        address = self.addresses[self._index]
        conn = NSQConnection(address, self.config, self, self._clock, logger=self._logger)
        self._connecting = conn
        conn.start(self._network)

    def _retry(self) -> None:
        self._retry_timer = None
        self._ensure()

    def _fail_queue(self, exc: NSQClientError) -> None:
        queue, self._queue = self._queue, deque()
        for _, on_done in queue:
            on_done(exc)

    def _maybe_closed(self) -> None:
        if self._closing and not self._draining and not self._closed_fired:
            self._closed_fired = True
            if self._on_closed is not None:
                self._on_closed()

    # -- ConnectionDelegate -----------------------------------------------------------------------

    def on_ready(self, conn: NSQConnection) -> None:
        if conn is not self._connecting:
            conn.close()
            return
        self._connecting = None
        self._conn = conn
        self._attempts = 0
        self._rounds = 0
        self._log("INFO", f"({conn.address}) connected")
        queue, self._queue = self._queue, deque()
        for command, on_done in queue:
            conn.publish(command, on_done)
        if self._on_ready is not None:
            self._on_ready(conn)

    def on_message(self, conn: NSQConnection, msg: Message) -> None:
        pass  # never subscribed: the connection refuses message frames itself

    def on_message_done(self, conn: NSQConnection, msg: Message, success: bool, backoff: bool) -> None:
        pass

    def on_error(self, conn: NSQConnection, err: NSQError) -> None:
        # The publish it answers has its callback and the connection logged it.  After
        # a fatal one nsqd closes the connection: move on now, not when the close lands.
        if err.fatal and conn is self._conn:
            self._conn = None
            self._draining.add(conn)
            self._index = (self._index + 1) % len(self.addresses)
            self._ensure()

    def on_close(self, conn: NSQConnection, exc: BaseException | None) -> None:
        n = len(self.addresses)
        if self._on_disconnect is not None:
            self._on_disconnect(conn, exc)
        if conn is self._conn:
            self._conn = None
            self._index = (self._index + 1) % n
            self._log("WARN", f"({conn.address}) lost; failing over to {self.addresses[self._index]}")
            self._ensure()
        elif conn is self._connecting:
            self._connecting = None
            self._index = (self._index + 1) % n
            self._attempts += 1
            if self._attempts < n:
                self._ensure()
            else:
                self._attempts = 0
                self._rounds += 1
                self._fail_queue(NotConnectedError(f"no nsqd of {self.addresses} could be reached; last error: {exc}"))
                if self._on_round_failed is not None:
                    self._on_round_failed(exc)
                if self._eager and not self._closing:
                    delay = self.config.reconnect_pause(self._rounds)
                    self._log("WARN", f"no nsqd reachable; retrying in {delay:g}s")
                    self._retry_timer = self._clock.call_later(delay, self._retry)
        self._draining.discard(conn)
        self._maybe_closed()

    def _log(self, level: str, msg: str) -> None:
        if self._logger is not None:
            self._logger.log(level, msg)
