"""A consumer's logic, sans-IO: go-nsq's Consumer without goroutines.

``ConsumerCore`` keeps one ``NSQConnection`` per nsqd carrying the topic
(given directly, or discovered by polling nsqlookupd), hands every message to
``on_message``, and decides how many messages each connection may have in
flight.  It runs on the ports (Clock, Network, Random), so the asyncio
``Consumer`` and the simulator drive the same code; neither adds logic.

RDY distribution (``max_in_flight`` = M, ready connections = n):

* M >= n: each connection gets M // n; the M % n left over go one each to the
  connections that received a message most recently (ties: oldest connection
  first), so the total is exactly M and the spare capacity sits where the
  messages are.  go-nsq gives each ``max(1, M // n)`` and drops the remainder.
  Every change of n (a connection comes or goes) or of M redistributes at
  once, lowering counts before raising them so the sum never passes M.
* M < n: M connections hold RDY 1, the rest 0.  Every
  ``rdy_redistribute_interval`` a holder that has had no message for
  ``low_rdy_idle_timeout``, or has held its RDY for ``low_rdy_timeout``,
  gives it up, and free slots go to connections picked at random (one that
  just gave its slot up only if no other can take it), so every nsqd is
  drained in turn (go-nsq's rule, which may hand the slot straight back).

Backoff (go-nsq's, counted per consumer): a message requeued with ``backoff``
raises the backoff level (unless ``backoff_multiplier * 2**level`` would pass
``max_backoff_duration``; 0 disables backoff), sets RDY 0 everywhere and waits
``backoff_multiplier * 2**level`` (capped); then one random connection gets
RDY 1 to test the water.  A finished message lowers the level by one, and
either resumes full RDY (level 0) or backs off again for the shorter time.  A
requeue without backoff keeps the level.  Outcomes that arrive while the
consumer waits are ignored, so a burst of failures counts once.

A message delivered more than ``max_attempts`` times is passed to
``on_give_up`` and finished, not handled (go-nsq's ``LogFailedMessage``).

A lost connection is replaced: a direct nsqd address is redialled after
``reconnect_delay``, doubling up to ``max_reconnect_delay`` while it keeps
failing; with nsqlookupd, losing a working connection triggers a poll.
``stop()`` sends CLS on every connection and stops giving RDY; connections
close as nsqd answers CLOSE_WAIT and their in-flight messages are answered,
and ``on_closed`` fires when the last one is gone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from broker.client.address import split_address
from broker.client.config import ClientConfig, doubled
from broker.client.conn import NSQConnection
from broker.client.errors import ClosedError, NSQError
from broker.client.lookupd import LookupdPoller
from broker.client.message import Message
from broker.ports import Clock, Logger, Network, Random, Timer
from broker.wire.names import is_valid_channel_name, is_valid_topic_name

__all__ = ["ConsumerCore", "ConsumerStats", "distribute_rdy"]


@dataclass(frozen=True, slots=True)
class ConsumerStats:
    messages_received: int
    messages_finished: int
    messages_requeued: int
    messages_given_up: int
    connections: int


def distribute_rdy(max_in_flight: int, ranked: int) -> list[int]:
    """RDY per connection for ``ranked`` connections, most recently active first (M >= n)."""
    base, extra = divmod(max_in_flight, ranked)
    return [base + 1 if i < extra else base for i in range(ranked)]


class ConsumerCore:
    def __init__(
        self,
        topic: str,
        channel: str,
        config: ClientConfig,
        *,
        clock: Clock,
        network: Network,
        random: Random,
        on_message: Callable[[Message], None],
        on_give_up: Callable[[Message], None] | None = None,
        on_closed: Callable[[], None] | None = None,
        on_ready: Callable[[NSQConnection], None] | None = None,
        on_disconnect: Callable[[NSQConnection, BaseException | None], None] | None = None,
        on_error: Callable[[NSQConnection, NSQError], None] | None = None,
        logger: Logger | None = None,
    ) -> None:
        if not is_valid_topic_name(topic):
            raise ValueError(f"invalid topic name {topic!r}")
        if not is_valid_channel_name(channel):
            raise ValueError(f"invalid channel name {channel!r}")
        self.topic = topic
        self.channel = channel
        self.config = config
        self._clock = clock
        self._network = network
        self._random = random
        self._on_message = on_message
        self._on_give_up = on_give_up
        self._on_closed = on_closed
        self._on_ready = on_ready
        self._on_disconnect = on_disconnect
        self._on_error = on_error
        self._logger = logger
        self._max_in_flight = config.max_in_flight
        self._conns: dict[str, NSQConnection] = {}  # insertion order = connection order
        self._nsqd_addresses: list[str] = []
        self._reconnect_timers: dict[str, Timer] = {}
        self._failures: dict[str, int] = {}
        self._poller: LookupdPoller | None = None
        self._backoff_level = 0
        self._backoff_timer: Timer | None = None
        self._redistribute_timer: Timer | None = None
        self._stopping = False
        self._closed_fired = False
        self._received = 0
        self._finished = 0
        self._requeued = 0
        self._given_up = 0

    # -- what it is doing --------------------------------------------------------------------

    @property
    def connections(self) -> list[NSQConnection]:
        """The connections that are subscribed and taking messages (or draining)."""
        return [c for c in self._conns.values() if c.is_ready]

    @property
    def max_in_flight(self) -> int:
        return self._max_in_flight

    @property
    def backoff_level(self) -> int:
        return self._backoff_level

    @property
    def in_backoff(self) -> bool:
        return self._backoff_level > 0 or self._backoff_timer is not None

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def is_starved(self) -> bool:
        """Some connection has (nearly) as many messages in flight as its RDY allows."""
        return any(
            c.in_flight > 0 and c.in_flight >= int(c.rdy * 0.85) and not c.is_closing for c in self._conns.values()
        )

    def stats(self) -> ConsumerStats:
        return ConsumerStats(self._received, self._finished, self._requeued, self._given_up, len(self.connections))

    # -- commands -----------------------------------------------------------------------------

    def connect_to_nsqd(self, address: str) -> None:
        """Consume from the nsqd at ``host:port``, and keep reconnecting to it."""
        if self._stopping:
            raise ClosedError("consumer stopped")
        split_address(address)
        if address not in self._nsqd_addresses:
            self._nsqd_addresses.append(address)
        self._connect(address)

    def connect_to_lookupd(self, address: str) -> None:
        """Poll the nsqlookupd at this HTTP address for the topic's nsqd."""
        if self._stopping:
            raise ClosedError("consumer stopped")
        if self._poller is None:
            self._poller = LookupdPoller(
                self.topic,
                self.config,
                clock=self._clock,
                network=self._network,
                random=self._random,
                on_producers=self._on_producers,
                logger=self._logger,
            )
        self._poller.add(address)

    def disconnect_from_nsqd(self, address: str) -> None:
        if address in self._nsqd_addresses:
            self._nsqd_addresses.remove(address)
        timer = self._reconnect_timers.pop(address, None)
        if timer is not None:
            timer.cancel()
        conn = self._conns.get(address)
        if conn is not None:
            conn.close()

    def change_max_in_flight(self, max_in_flight: int) -> None:
        if max_in_flight < 0:
            raise ValueError("max_in_flight must not be negative")
        if max_in_flight != self._max_in_flight:
            self._max_in_flight = max_in_flight
            self._rebalance()

    def stop(self) -> None:
        """Stop taking messages (CLS everywhere); ``on_closed`` once every connection is gone."""
        if self._stopping:
            return
        self._stopping = True
        self._log("INFO", "stopping...")
        for timer in (self._backoff_timer, self._redistribute_timer, *self._reconnect_timers.values()):
            if timer is not None:
                timer.cancel()
        self._backoff_timer = self._redistribute_timer = None
        self._reconnect_timers.clear()
        if self._poller is not None:
            self._poller.stop()
        for conn in list(self._conns.values()):
            conn.close()
        self._maybe_closed()

    def abort(self) -> None:
        """Drop every connection now (nsqd redelivers their in-flight messages as they time out)."""
        self.stop()
        for conn in list(self._conns.values()):
            conn.abort()

    # -- discovery and reconnection ---------------------------------------------------------------

    def _connect(self, address: str) -> None:
        if address in self._conns or self._stopping:
            return
        conn = NSQConnection(
            address, self.config, self, self._clock, topic=self.topic, channel=self.channel, logger=self._logger
        )
        self._conns[address] = conn
        conn.start(self._network)

    def _on_producers(self, addresses: list[str]) -> None:
        for address in addresses:
            self._connect(address)

    def _reconnect(self, address: str) -> None:
        self._reconnect_timers.pop(address, None)
        if address in self._nsqd_addresses:
            self._connect(address)

    # -- ConnectionDelegate ----------------------------------------------------------------------------

    def on_ready(self, conn: NSQConnection) -> None:
        self._failures.pop(conn.address, None)
        if conn.max_rdy_count < self._max_in_flight:
            self._log(
                "WARN",
                f"({conn.address}) max RDY count {conn.max_rdy_count} < consumer max in flight {self._max_in_flight}, truncation possible",
            )
        if self._stopping:
            conn.close()
            return
        self._rebalance()
        if self._on_ready is not None:
            self._on_ready(conn)

    def on_message(self, conn: NSQConnection, msg: Message) -> None:
        self._received += 1
        max_attempts = self.config.max_attempts
        if max_attempts and msg.attempts > max_attempts:
            self._given_up += 1
            self._log("WARN", f"msg {msg.id.decode('ascii', 'replace')} attempted {msg.attempts} times, giving up")
            if self._on_give_up is not None:
                self._on_give_up(msg)
            msg.finish()
            return
        self._on_message(msg)

    def on_message_done(self, conn: NSQConnection, msg: Message, success: bool, backoff: bool) -> None:
        if success:
            self._finished += 1
            if self._backoff_level and not self._stopping:
                self._backoff_signal(-1)
            return
        self._requeued += 1
        if not self._stopping:
            self._backoff_signal(+1 if backoff else 0)

    def on_error(self, conn: NSQConnection, err: NSQError) -> None:
        # The connection logged it; a fatal one closes the connection and on_close follows.
        if self._on_error is not None:
            self._on_error(conn, err)

    def on_close(self, conn: NSQConnection, exc: BaseException | None) -> None:
        address = conn.address
        was_ready = conn.was_ready
        if self._conns.get(address) is conn:
            del self._conns[address]
        if self._on_disconnect is not None:
            self._on_disconnect(conn, exc)
        if self._stopping:
            self._maybe_closed()
            return
        self._log("WARN", f"there are {len(self.connections)} connections left alive")
        self._rebalance()
        if self._poller is not None:
            if was_ready:
                self._poller.query_now()
        elif address in self._nsqd_addresses and address not in self._reconnect_timers:
            failures = self._failures.get(address, 0)
            self._failures[address] = failures + 1
            delay = self.config.reconnect_pause(failures + 1)
            self._log("INFO", f"({address}) re-connecting in {delay:g}s")
            self._reconnect_timers[address] = self._clock.call_later(delay, lambda: self._reconnect(address))

    def _maybe_closed(self) -> None:
        if self._stopping and not self._conns and not self._closed_fired:
            self._closed_fired = True
            self._log("INFO", "stopped")
            if self._on_closed is not None:
                self._on_closed()

    # -- RDY ----------------------------------------------------------------------------------------

    def _rebalance(self) -> None:
        if self._stopping:
            return
        conns = self.connections
        if not conns:
            return
        if self.in_backoff:
            # Only the test RDY 1 flows in backoff; if its connection went, hand it on.
            if self._backoff_timer is None and not any(c.rdy for c in conns):
                conns[self._random.randrange(len(conns))].set_rdy(1)
            return
        if self._max_in_flight >= len(conns):
            self._cancel_redistribution()
            # sorted() is stable: equal activity keeps connection order.
            ranked = sorted(conns, key=lambda c: -c.last_message_time)
            targets = dict(zip(ranked, distribute_rdy(self._max_in_flight, len(ranked)), strict=True))
            self._apply(targets)
        else:
            self._low_rdy(conns, release_idle=False)
            if self._redistribute_timer is None:
                self._redistribute_timer = self._clock.call_later(
                    self.config.rdy_redistribute_interval, self._redistribute
                )

    def _apply(self, targets: dict[NSQConnection, int]) -> None:
        for conn, count in targets.items():
            if count < conn.rdy:
                conn.set_rdy(count)
        for conn, count in targets.items():
            if count > conn.rdy:
                conn.set_rdy(count)

    def _low_rdy(self, conns: list[NSQConnection], *, release_idle: bool) -> None:
        now = self._clock.now()
        released: list[NSQConnection] = []
        if release_idle:
            for c in conns:
                if c.rdy and (
                    now - c.last_message_time > self.config.low_rdy_idle_timeout
                    or now - c.last_rdy_time > self.config.low_rdy_timeout
                ):
                    self._log("DEBUG", f"({c.address}) idle connection, giving up RDY")
                    c.set_rdy(0)
                    released.append(c)
        holders = sorted((c for c in conns if c.rdy), key=lambda c: -c.last_message_time)
        for c in holders[self._max_in_flight :]:
            c.set_rdy(0)
        holders = holders[: self._max_in_flight]
        for c in holders:
            if c.rdy > 1:
                c.set_rdy(1)
        # A connection that just gave its slot up is picked only when no other can be.
        candidates = [c for c in conns if not c.rdy and c not in released]
        for _ in range(self._max_in_flight - len(holders)):
            if not candidates:
                candidates, released = released, []
                if not candidates:
                    break
            candidates.pop(self._random.randrange(len(candidates))).set_rdy(1)

    def _redistribute(self) -> None:
        self._redistribute_timer = None
        conns = self.connections
        if self._stopping or self.in_backoff or self._max_in_flight >= len(conns):
            return
        self._low_rdy(conns, release_idle=True)
        self._redistribute_timer = self._clock.call_later(self.config.rdy_redistribute_interval, self._redistribute)

    def _cancel_redistribution(self) -> None:
        if self._redistribute_timer is not None:
            self._redistribute_timer.cancel()
            self._redistribute_timer = None

    # -- backoff --------------------------------------------------------------------------------------

    def _backoff_signal(self, change: int) -> None:
        if self._backoff_timer is not None:
            return
        level = self._backoff_level
        updated = False
        if change < 0 and level > 0:
            level -= 1
            updated = True
        elif change > 0 and doubled(self.config.backoff_multiplier, level + 1) <= self.config.max_backoff_duration:
            level += 1
            updated = True
        self._backoff_level = level
        if level == 0 and updated:
            self._log("WARN", "exiting backoff, returning all to full RDY")
            self._rebalance()
        elif level > 0:
            duration = self.config.backoff_duration(level)
            self._log("WARN", f"backing off for {duration:g}s (backoff level {level}), setting all to RDY 0")
            self._cancel_redistribution()
            for c in self.connections:
                c.set_rdy(0)
            self._backoff_timer = self._clock.call_later(duration, self._resume)

    def _resume(self) -> None:
        self._backoff_timer = None
        if self._stopping:
            return
        conns = self.connections
        if not conns:
            self._log("WARN", "no connection available to resume; backing off for 1s")
            self._backoff_timer = self._clock.call_later(1.0, self._resume)
            return
        choice = conns[self._random.randrange(len(conns))]
        self._log("WARN", f"({choice.address}) backoff timeout expired, sending RDY 1")
        choice.set_rdy(1)

    def _log(self, level: str, msg: str) -> None:
        if self._logger is not None:
            self._logger.log(level, f"[{self.topic}/{self.channel}] {msg}")
