"""A simulated producer: the client's ``ProducerCore`` publishing at a rate, and what it saw.

The application around the core draws arrivals (Poisson or fixed spacing),
message sizes and DPUB delays, and keeps at most ``max_outstanding``
publishes unanswered (a later one fails at once, as an application that
bounds its pipeline would fail it).  Everything else is the client's:
connecting, IDENTIFY, heartbeats and the read deadline, queueing publishes
while no connection is up, reconnecting, and failing the unanswered
publishes of a lost connection.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from broker.client.conn import NSQConnection
from broker.client.errors import NSQClientError
from broker.client.producer import ProducerCore
from nsqsim.clock import SimClock, SimTimer
from nsqsim.config import NSQD_TCP_PORT, ProducerConfig
from nsqsim.network import SimNetwork
from nsqsim.workload.process import ClientProcess, error_text, message_body

if TYPE_CHECKING:
    from nsqsim.history import History

__all__ = ["Producer"]


class Producer(ClientProcess):
    def __init__(
        self,
        host: str,
        nsqd: str,
        cfg: ProducerConfig,
        net: SimNetwork,
        clock: SimClock,
        rng: random.Random,
        history: History,
    ) -> None:
        super().__init__(host, net, clock)
        self.cfg = cfg
        self.nsqd = nsqd
        self.rng = rng
        self.history = history
        self.seq = 0
        self.outstanding = 0  # publishes handed to the core and not yet answered
        self.running = False
        self.core: ProducerCore | None = None
        self._next: SimTimer | None = None
        self._gap = cfg.batch / cfg.rate  # seconds between publishes (PUB, or MPUB of ``batch``)
        self._rate = 1.0 / self._gap
        self._poisson = cfg.arrival == "poisson"
        self._size = cfg.size.sampler(rng)
        self._config = self.client_config(
            heartbeat_interval=cfg.heartbeat_interval,
            read_timeout=cfg.read_timeout,
            reconnect_delay=cfg.reconnect_delay,
            max_reconnect_delay=cfg.max_reconnect_delay,
            max_queued_publishes=cfg.max_outstanding,
        )

    def start(self) -> None:
        self.running = True
        core = ProducerCore(
            [f"{self.nsqd}:{NSQD_TCP_PORT}"],
            self._config,
            clock=self.clock,
            network=self.network,
            on_disconnect=self._disconnected,
        )
        self.core = core
        core.start()
        self._schedule_next()

    def stop(self) -> None:
        """Stop publishing; the client collects the answers still due, then closes."""
        self.running = False
        if self._next is not None:
            self._next.cancel()
            self._next = None
        if self.core is not None:
            self.core.close()

    # -- publishing -------------------------------------------------------------------

    def _schedule_next(self) -> None:
        gap = self.rng.expovariate(self._rate) if self._poisson else self._gap
        self._next = self.clock.call_later(gap, self._publish)

    def _publish(self) -> None:
        self._next = None
        core = self.core
        if not self.running or core is None:
            return
        cfg = self.cfg
        now = self.clock.now()
        append = self.history.events.append  # record(), inlined: this runs per message
        host, nsqd, topic = self.host, self.nsqd, cfg.topic
        defer_ms = 0
        if cfg.batch == 1 and cfg.defer_fraction > 0 and self.rng.random() < cfg.defer_fraction:
            defer_ms = max(1, int(cfg.defer.sample(self.rng) * 1000))
        keys: list[str] = []
        bodies: list[bytes] = []
        for _ in range(cfg.batch):
            self.seq += 1
            key = f"{host}:{self.seq}"
            keys.append(key)
            append({"t": now, "type": "publish", "producer": host, "nsqd": nsqd, "topic": topic, "key": key, "defer_ms": defer_ms})
            bodies.append(message_body(key, int(self._size())))
        if self.outstanding >= cfg.max_outstanding:
            for key in keys:
                append({"t": now, "type": "publish_failed", "producer": host, "key": key, "error": "too many unanswered publishes"})
        else:
            self.outstanding += 1
            answered = _Answer(self, keys).answered
            if cfg.batch > 1:
                core.mpub(topic, bodies, answered)
            elif defer_ms:
                core.dpub(topic, defer_ms, bodies[0], answered)
            else:
                core.pub(topic, bodies[0], answered)
        self._schedule_next()

    def _disconnected(self, conn: NSQConnection, exc: BaseException | None) -> None:
        self.history.record("disconnected", who=self.host, nsqd=self.nsqd, error=error_text(exc))


class _Answer:
    """Hears nsqd's answer to one publish and records it for each of its messages."""

    __slots__ = ("keys", "producer")

    def __init__(self, producer: Producer, keys: list[str]) -> None:
        self.producer = producer
        self.keys = keys

    def answered(self, err: NSQClientError | None) -> None:
        producer = self.producer
        producer.outstanding -= 1
        append = producer.history.events.append
        t = producer.clock.now()
        host = producer.host
        if err is None:
            for key in self.keys:
                append({"t": t, "type": "publish_ok", "producer": host, "key": key})
        else:
            error = error_text(err)
            for key in self.keys:
                append({"t": t, "type": "publish_failed", "producer": host, "key": key, "error": error})
