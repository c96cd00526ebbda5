"""A simulated consumer: the client's ``ConsumerCore`` around a handler that may misbehave.

The core does what it does for any user: discovery (nsqlookupd's
``/lookup``, or a fixed list of nsqd), one connection per nsqd, IDENTIFY and
SUB, heartbeats and the read deadline, RDY over the connections, backoff,
giving up after ``max_attempts``, reconnecting.  The simulator supplies the
handler, which draws for each message what it will do: finish, requeue
(with a drawn delay, backing off or not), never answer (nsqd must time the
message out), or crash the whole consumer process; it answers after a
handling time drawn from ``handler_time``.  Handlers that finish within the
same ``handler_tick`` answer in one timer, so their FINs leave in one write,
as a busy consumer's do.  A stalled consumer's handlers stop returning until
it resumes.  A crashed process loses what it had not written yet (its FINs
of that tick), and comes back as a new process, with a new client, after
``restart_after``.

Every answer is recorded only if it is really sent: an answer for a
connection that has closed is dropped by the client and recorded by nobody,
so the checkers never credit a FIN that nsqd could not have seen.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from typing import TYPE_CHECKING

from broker.client.conn import ConnState, NSQConnection
from broker.client.consumer import ConsumerCore
from broker.client.errors import NSQError
from broker.client.message import Message
from broker.nsqd.deadletter import decode_envelope
from nsqsim.clock import EPOCH_NS, Life, SimClock
from nsqsim.config import NSQD_TCP_PORT, ConsumerConfig
from nsqsim.network import SimNetwork
from nsqsim.workload.process import ClientProcess, error_text, host_of, message_key

if TYPE_CHECKING:
    from nsqsim.history import History

__all__ = ["Consumer"]

_FINISH, _REQUEUE, _TIMEOUT, _CRASH = range(4)
# A message being handled: (action, message, the connection it came on, its nsqd host, process life, key, id text).
_Work = tuple[int, Message, NSQConnection, str, Life, str, str]


class Consumer(ClientProcess):
    def __init__(
        self,
        host: str,
        cfg: ConsumerConfig,
        nsqd_hosts: list[str],
        lookupd_addresses: list[str],
        net: SimNetwork,
        clock: SimClock,
        rng: random.Random,
        client_rng: random.Random,
        history: History,
        record_published: bool = False,
    ) -> None:
        super().__init__(host, net, clock)
        self.cfg = cfg
        # The topic has a TTL: each delivery says when nsqd stamped the message (run seconds).
        self.record_published = record_published
        self.nsqd_hosts = nsqd_hosts  # the fixed list, for direct discovery
        self.lookupd_addresses = lookupd_addresses  # "host:port" of each nsqlookupd's HTTP API
        self.rng = rng  # the handler's draws
        self.client_rng = client_rng  # the client core's (backoff, low-RDY rotation)
        self.history = history
        self.core: ConsumerCore | None = None
        self.running = False
        self.stalled = False
        self.crashed = False
        # nsqd address -> its subscribed connection, and the nsqd's host name
        self._conns: dict[str, tuple[NSQConnection, str]] = {}
        self._stalled_work: list[_Work] = []
        weights = cfg.behaviour.weights()
        total = sum(weights)
        self._cumulative = [w / total for w in itertools.accumulate(weights)]
        self._due: dict[float, list[_Work]] = {}  # handler completions by tick
        self._handler_time = cfg.handler_time.sampler(rng)
        self._config = self.client_config(
            max_in_flight=cfg.max_in_flight,
            max_attempts=cfg.max_attempts,
            heartbeat_interval=cfg.heartbeat_interval,
            # Two heartbeats missed, and a second of slack, and the connection is dead.
            read_timeout=2 * cfg.heartbeat_interval + 1.0,
            msg_timeout=cfg.msg_timeout if cfg.msg_timeout > 0 else None,
            lookupd_poll_interval=cfg.lookup_interval,
            lookupd_poll_timeout=cfg.lookup_timeout,
            reconnect_delay=cfg.reconnect_delay,
            max_reconnect_delay=cfg.max_reconnect_delay,
        )

    # -- life cycle -------------------------------------------------------------------

    def start(self) -> None:
        self.running = True
        self.crashed = False
        core = ConsumerCore(
            self.cfg.topic,
            self.cfg.channel,
            self._config,
            clock=self.clock,
            network=self.network,
            random=self.client_rng,
            on_message=self._message,
            on_give_up=self._give_up,
            on_ready=self._subscribed,
            on_disconnect=self._disconnected,
            on_error=self._error,
        )
        self.core = core
        if self.cfg.discovery == "direct":
            for host in self.nsqd_hosts:
                core.connect_to_nsqd(f"{host}:{NSQD_TCP_PORT}")
        else:
            for address in self.lookupd_addresses:
                core.connect_to_lookupd(address)

    def stop(self) -> None:
        """Stop consuming: drop every connection (nsqd times out what was in flight).

        Not the client's graceful ``stop``: a handler that never answers would
        keep its connection draining for ever.
        """
        self.running = False
        if self.core is not None:
            self.core.abort()

    def stall(self) -> None:
        """The handler stops returning: work already decided waits until ``unstall``."""
        if not self.stalled:
            self.stalled = True
            self.history.record("consumer_stall", consumer=self.host)

    def unstall(self) -> None:
        if not self.stalled:
            return
        self.stalled = False
        self.history.record("consumer_resume", consumer=self.host)
        work, self._stalled_work = self._stalled_work, []
        self._do(work)

    def crash(self) -> None:
        """The consumer process dies; it comes back after ``restart_after``."""
        if self.crashed:
            return
        self.crashed = True
        self.history.record("consumer_crash", consumer=self.host)
        self.net.kill(self.life)
        self.core = None
        self._conns.clear()
        self._due.clear()
        self._stalled_work.clear()
        self.stalled = False
        self.new_life()
        self.clock.call_later(self.cfg.restart_after, self._restart)

    def _restart(self) -> None:
        if not self.running:
            return
        self.history.record("consumer_restart", consumer=self.host)
        self.start()

    # -- what the client core reports ---------------------------------------------------

    def _subscribed(self, conn: NSQConnection) -> None:
        nsqd = host_of(conn.address)
        self._conns[conn.address] = (conn, nsqd)
        cfg = self.cfg
        self.history.record("subscribed", consumer=self.host, nsqd=nsqd, topic=cfg.topic, channel=cfg.channel)

    def _disconnected(self, conn: NSQConnection, exc: BaseException | None) -> None:
        sub = self._conns.get(conn.address)
        if sub is not None and sub[0] is conn:
            del self._conns[conn.address]
        self.history.record("disconnected", who=self.host, nsqd=host_of(conn.address), error=error_text(exc))

    def _error(self, conn: NSQConnection, err: NSQError) -> None:
        self.history.record("error", consumer=self.host, nsqd=host_of(conn.address), error=str(err))

    def _give_up(self, msg: Message) -> None:
        # The client finishes it without handling it (go-nsq's LogFailedMessage).
        _conn, nsqd, key, mid = self._delivered(msg)
        self.history.record("fin", consumer=self.host, nsqd=nsqd, channel=self.cfg.channel, key=key, id=mid, gave_up=True)

    def _delivered(self, msg: Message) -> tuple[NSQConnection, str, str, str]:
        """Record the delivery; the connection it came on, its nsqd, the message's key and id."""
        # A message arrives only on a subscribed connection, which _subscribed noted.
        conn, nsqd = self._conns[msg.nsqd_address]
        key = message_key(msg.body)
        mid = msg.id.decode("ascii", "replace")
        cfg = self.cfg
        event = {  # record(), inlined: this runs per delivery
            "t": self.clock.now(),
            "type": "deliver",
            "consumer": self.host,
            "nsqd": nsqd,
            "topic": cfg.topic,
            "channel": cfg.channel,
            "key": key,
            "id": mid,
            "attempts": msg.attempts,
        }
        if self.record_published:
            event["published"] = (msg.timestamp - EPOCH_NS) / 1e9
        self.history.events.append(event)
        return conn, nsqd, key, mid

    def _dead_letter(self, msg: Message) -> None:
        """An envelope from a dead-letter topic: say which message of which channel it carries."""
        _conn, nsqd = self._conns[msg.nsqd_address]
        try:
            letter = decode_envelope(msg.body)
        except ValueError as exc:
            self.history.record("error", consumer=self.host, nsqd=nsqd, error=f"dead letter: {exc}")
        else:
            self.history.record(
                "dead_letter", consumer=self.host, nsqd=nsqd, topic=letter.topic, channel=letter.channel,
                key=message_key(letter.body), id=letter.id.decode("ascii", "replace"), attempts=letter.attempts,
                reason=letter.reason,
            )
        msg.finish()

    # -- the handler --------------------------------------------------------------------

    def _message(self, msg: Message) -> None:
        if self.cfg.envelopes:
            return self._dead_letter(msg)
        conn, nsqd, key, mid = self._delivered(msg)
        cfg = self.cfg
        rng = self.rng
        action = bisect.bisect_right(self._cumulative, rng.random())
        if action > _CRASH:
            action = _CRASH  # rounding left the last cumulative weight a hair below 1
        work: _Work = (action, msg, conn, nsqd, self.life, key, mid)
        if self.stalled:
            self._stalled_work.append(work)
            return
        now = self.clock.now()
        when = now + self._handler_time()
        tick = cfg.handler_tick
        if tick > 0:
            when = math.ceil(when / tick) * tick
        batch = self._due.get(when)
        if batch is not None:
            batch.append(work)
            return
        self._due[when] = [work]
        self.clock.call_later(when - now, lambda: self._do(self._due.pop(when, [])))

    def _do(self, batch: list[_Work]) -> None:
        cfg = self.cfg
        host, channel = self.host, cfg.channel
        events = self.history.events
        now = self.clock.now()
        for work in batch:
            action, msg, conn, nsqd, life, key, mid = work
            if life is not self.life or conn.state is ConnState.CLOSED:
                continue  # an older process's, or the connection is gone: nothing can be sent
            if self.stalled:
                self._stalled_work.append(work)
                continue
            if action == _FINISH:
                events.append({"t": now, "type": "fin", "consumer": host, "nsqd": nsqd, "channel": channel, "key": key, "id": mid})
                msg.finish()
            elif action == _REQUEUE:
                delay_ms = int(cfg.requeue_delay.sample(self.rng) * 1000)
                self.history.record("req", consumer=host, nsqd=nsqd, channel=channel, key=key, id=mid, delay_ms=delay_ms)
                msg.requeue(delay_ms / 1000, backoff=cfg.requeue_backoff)
            elif action == _TIMEOUT:
                self.history.record("hold", consumer=host, nsqd=nsqd, channel=channel, key=key, id=mid)
            else:
                self.crash()
                return
