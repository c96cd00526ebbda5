"""A simulated producer: one connection to its nsqd, publishing at its rate."""

from __future__ import annotations

import random
from collections import deque
from typing import TYPE_CHECKING

from broker.ports import Timer
from broker.wire import v2
from nsqsim.clock import SimClock, SimTimer
from nsqsim.config import NSQD_TCP_PORT, ProducerConfig
from nsqsim.network import SimNetwork
from nsqsim.workload.wire import NOP, PADDING, Client, Wire, error_text, identify

if TYPE_CHECKING:
    from nsqsim.history import History

__all__ = ["Producer"]


class Producer(Client):
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
        super().__init__(host, net, clock, rng, history)
        self.cfg = cfg
        self.nsqd = nsqd
        self.seq = 0
        self.wire: Wire | None = None
        self.ready = False
        self.outstanding: deque[list[str]] = deque()  # the keys of each unanswered PUB/MPUB
        self.running = False
        self._next: SimTimer | None = None
        self._redial: Timer | None = None

    def start(self) -> None:
        self.running = True
        self._connect()
        self._schedule_next()

    def stop(self) -> None:
        """Stop publishing; the connection stays for the answers still due."""
        self.running = False
        if self._next is not None:
            self._next.cancel()
            self._next = None

    # -- publishing -------------------------------------------------------------------

    def _schedule_next(self) -> None:
        cfg = self.cfg
        rate = cfg.rate / cfg.batch  # publishes (PUB, or MPUB of ``batch``) per second
        gap = self.rng.expovariate(rate) if cfg.arrival == "poisson" else 1.0 / rate
        self._next = self.clock.call_later(gap, self._publish)

    def _publish(self) -> None:
        self._next = None
        if not self.running:
            return
        cfg = self.cfg
        rng = self.rng
        record = self.history.record
        wire = self.wire
        if wire is None or not self.ready:
            error = "not connected"
        elif len(self.outstanding) >= cfg.max_outstanding:
            error = "too many unanswered publishes"
        else:
            error = ""
        keys: list[str] = []
        bodies: list[bytes] = []
        defer_ms = 0
        if cfg.batch == 1 and cfg.defer_fraction > 0 and rng.random() < cfg.defer_fraction:
            defer_ms = max(1, int(cfg.defer.sample(rng) * 1000))
        for _ in range(cfg.batch):
            self.seq += 1
            key = f"{self.host}:{self.seq}"
            keys.append(key)
            record("publish", producer=self.host, nsqd=self.nsqd, topic=cfg.topic, key=key, defer_ms=defer_ms)
            size = max(int(cfg.size.sample(rng)), len(key) + 1)
            if not error:
                head = key.encode() + b"|"
                pad = size - len(head)
                bodies.append(head + (PADDING[:pad] if pad <= len(PADDING) else b"x" * pad))
        if error:
            for key in keys:
                record("publish_failed", producer=self.host, key=key, error=error)
        else:
            assert wire is not None
            if cfg.batch > 1:
                cmd = v2.encode_mpub(cfg.topic, bodies)
            elif defer_ms:
                cmd = v2.encode_dpub(cfg.topic, defer_ms, bodies[0])
            else:
                cmd = v2.encode_pub(cfg.topic, bodies[0])
            self.outstanding.append(keys)
            wire.write(cmd)
        self._schedule_next()

    # -- the connection ----------------------------------------------------------------

    def _connect(self) -> None:
        self._redial = None
        if self.wire is not None:
            return
        self.wire = Wire(self, self.nsqd, self.cfg.read_timeout)
        self.dial(self.wire, self.nsqd, NSQD_TCP_PORT)

    def wire_made(self, wire: Wire) -> None:
        wire.write(identify(self.host, self.host, self.cfg.heartbeat_interval))

    def wire_frame(self, wire: Wire, frame_type: int, data: bytes) -> None:
        if frame_type == v2.FRAME_RESPONSE and data == v2.HEARTBEAT:
            wire.write(NOP)
            return
        if not self.ready:
            if frame_type == v2.FRAME_RESPONSE:
                self.ready = True  # IDENTIFY's answer
            else:
                wire.drop(f"IDENTIFY failed: {data.decode('utf-8', 'replace')}")
            return
        if not self.outstanding:
            return
        keys = self.outstanding.popleft()
        if frame_type == v2.FRAME_RESPONSE and data == v2.OK:
            for key in keys:
                self.history.record("publish_ok", producer=self.host, key=key)
        else:
            error = data.decode("utf-8", "replace")
            for key in keys:
                self.history.record("publish_failed", producer=self.host, key=key, error=error)

    def wire_lost(self, wire: Wire, exc: Exception | None) -> None:
        if wire is not self.wire:
            return
        self.wire = None
        self.ready = False
        error = f"connection lost ({error_text(exc)})"
        self.history.record("disconnected", who=self.host, nsqd=self.nsqd, error=error_text(exc))
        while self.outstanding:
            for key in self.outstanding.popleft():
                self.history.record("publish_failed", producer=self.host, key=key, error=error)
        if self.running and self._redial is None:
            self._redial = self.clock.call_later(self.cfg.reconnect_delay, self._connect)
