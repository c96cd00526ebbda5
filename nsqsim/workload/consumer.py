"""A simulated consumer: discovery, one connection per nsqd, RDY, and a handler that may misbehave."""

from __future__ import annotations

import bisect
import itertools
import json
import math
import random
from typing import TYPE_CHECKING

from broker.ports import Timer
from broker.wire import v2
from nsqsim.clock import Life, SimClock
from nsqsim.config import NSQD_TCP_PORT, ConsumerConfig
from nsqsim.http_get import HTTPGet
from nsqsim.network import SimNetwork
from nsqsim.workload.wire import NOP, Client, Wire, error_text, identify, message_key

if TYPE_CHECKING:
    from nsqsim.history import History

__all__ = ["Consumer"]


class _Sub:
    """A consumer's connection to one nsqd."""

    __slots__ = ("rdy", "state", "wire")

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.state = "identifying"  # -> subscribing -> subscribed
        self.rdy = 0


_FINISH, _REQUEUE, _TIMEOUT, _CRASH = range(4)
# A message being handled: (action, connection, process life, key, id text, id bytes).
_Work = tuple[int, Wire, Life, str, str, bytes]


class Consumer(Client):
    def __init__(
        self,
        host: str,
        cfg: ConsumerConfig,
        nsqd_hosts: list[str],
        lookupd_hosts: list[tuple[str, int]],
        net: SimNetwork,
        clock: SimClock,
        rng: random.Random,
        history: History,
    ) -> None:
        super().__init__(host, net, clock, rng, history)
        self.cfg = cfg
        self.nsqd_hosts = nsqd_hosts  # the fixed list, for direct discovery
        self.lookupd_hosts = lookupd_hosts
        self.subs: dict[str, _Sub] = {}  # nsqd host -> connection, in the order they were made
        self.known: dict[str, None] = {}  # nsqd hosts discovery currently reports
        self.running = False
        self.stalled = False
        self.crashed = False
        self._stalled_work: list[_Work] = []
        weights = cfg.behaviour.weights()
        total = sum(weights)
        self._cumulative = [w / total for w in itertools.accumulate(weights)]
        self._due: dict[float, list[_Work]] = {}  # handler completions by tick
        self._poll: Timer | None = None

    # -- life cycle -------------------------------------------------------------------

    def start(self) -> None:
        self.running = True
        self.crashed = False
        if self.cfg.discovery == "direct":
            for host in self.nsqd_hosts:
                self.known[host] = None
                self._connect(host)
        else:
            self._lookup()

    def stop(self) -> None:
        """Stop consuming: close every connection (nsqd requeues what was in flight)."""
        self.running = False
        if self._poll is not None:
            self._poll.cancel()
            self._poll = None
        for sub in list(self.subs.values()):
            sub.wire.drop("consumer stopping")

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
        self.subs.clear()
        self.known.clear()
        self._due.clear()
        self._poll = None
        self._stalled_work.clear()
        self.stalled = False
        self.new_life()
        self.clock.call_later(self.cfg.restart_after, self._restart)

    def _restart(self) -> None:
        if not self.running:
            return
        self.history.record("consumer_restart", consumer=self.host)
        self.start()

    # -- discovery --------------------------------------------------------------------

    def _lookup(self) -> None:
        self._poll = None
        if not self.running:
            return
        pending = len(self.lookupd_hosts)
        found: dict[str, None] = {}
        life = self.life

        def answered(status: int | None, body: bytes) -> None:
            nonlocal pending
            if life is not self.life:
                return
            pending -= 1
            if status == 200:
                try:
                    doc = json.loads(body)
                    for p in doc.get("producers", []):
                        host = p.get("broadcast_address")
                        if isinstance(host, str) and host:
                            found[host] = None
                except (ValueError, AttributeError):
                    pass
            if pending == 0:
                self._discovered(found)

        for host, port in self.lookupd_hosts:
            target = f"/lookup?topic={self.cfg.topic}"
            self.dial_handler(HTTPGet(f"{host}:{port}", target, self.clock, answered), host, port)
        self._poll = self.clock.call_later(self.cfg.lookup_interval, self._lookup)

    def dial_handler(self, handler: HTTPGet, host: str, port: int) -> None:
        self.net.host(self.host, self.life).connect(host, port, handler)

    def _discovered(self, found: dict[str, None]) -> None:
        if not self.running:
            return
        # go-nsq adds what lookupd reports and keeps connections lookupd stopped reporting.
        for host in sorted(found):
            self.known[host] = None
            if host not in self.subs:
                self._connect(host)

    # -- connections ------------------------------------------------------------------

    def _connect(self, host: str) -> None:
        if not self.running or host in self.subs:
            return
        wire = Wire(self, host, 2 * self.cfg.heartbeat_interval + 1.0)
        self.subs[host] = _Sub(wire)
        self.dial(wire, host, NSQD_TCP_PORT)

    def wire_made(self, wire: Wire) -> None:
        cfg = self.cfg
        wire.write(identify(self.host, self.host, cfg.heartbeat_interval, cfg.msg_timeout))

    def wire_frame(self, wire: Wire, frame_type: int, data: bytes) -> None:
        sub = self.subs.get(wire.nsqd)
        if sub is None or sub.wire is not wire:
            return
        if frame_type == v2.FRAME_MESSAGE:
            self._message(sub, data)
        elif frame_type == v2.FRAME_RESPONSE:
            if data == v2.HEARTBEAT:
                wire.write(NOP)
            elif sub.state == "identifying":
                sub.state = "subscribing"
                wire.write(v2.encode_command(b"SUB", self.cfg.topic.encode(), self.cfg.channel.encode()))
            elif sub.state == "subscribing" and data == v2.OK:
                sub.state = "subscribed"
                self.history.record("subscribed", consumer=self.host, nsqd=wire.nsqd, topic=self.cfg.topic, channel=self.cfg.channel)
                self._spread_rdy()
        else:
            text = data.decode("utf-8", "replace")
            self.history.record("error", consumer=self.host, nsqd=wire.nsqd, error=text)
            if sub.state != "subscribed":
                wire.drop(f"setup failed: {text}")

    def wire_lost(self, wire: Wire, exc: Exception | None) -> None:
        sub = self.subs.get(wire.nsqd)
        if sub is None or sub.wire is not wire:
            return
        del self.subs[wire.nsqd]
        self.history.record("disconnected", who=self.host, nsqd=wire.nsqd, error=error_text(exc))
        self._spread_rdy()
        if self.running and self.cfg.discovery == "direct":
            self.clock.call_later(self.cfg.reconnect_delay, lambda: self._connect(wire.nsqd))
        # With lookupd, the next poll dials it again while lookupd still lists it.
        elif self.running:
            self.known.pop(wire.nsqd, None)

    def _spread_rdy(self) -> None:
        subscribed = [s for s in self.subs.values() if s.state == "subscribed"]
        if not subscribed:
            return
        share = max(1, self.cfg.max_in_flight // len(subscribed))
        for sub in subscribed:
            if sub.rdy != share:
                sub.rdy = share
                sub.wire.write(v2.encode_command(b"RDY", str(share).encode()))

    # -- handling messages ------------------------------------------------------------

    def _message(self, sub: _Sub, data: bytes) -> None:
        _ts, attempts, msg_id, body = v2.decode_message(data)
        key = message_key(body)
        cfg = self.cfg
        wire = sub.wire
        mid = msg_id.decode("ascii", "replace")
        self.history.record(
            "deliver", consumer=self.host, nsqd=wire.nsqd, topic=cfg.topic, channel=cfg.channel, key=key, id=mid, attempts=attempts
        )
        rng = self.rng
        action = min(bisect.bisect_right(self._cumulative, rng.random()), 3)
        delay = cfg.handler_time.sample(rng)
        work: _Work = (action, wire, self.life, key, mid, msg_id)
        if self.stalled:
            self._stalled_work.append(work)
            return
        # Handlers finishing in the same tick answer together, so their FINs share
        # one write (and one simulated packet), as a busy go-nsq consumer's do.
        when = self.clock.now() + delay
        tick = cfg.handler_tick
        if tick > 0:
            when = math.ceil(when / tick) * tick
        batch = self._due.get(when)
        if batch is not None:
            batch.append(work)
            return
        self._due[when] = [work]
        self.clock.call_later(when - self.clock.now(), lambda: self._finish_handlers(when))

    def _finish_handlers(self, when: float) -> None:
        self._do(self._due.pop(when, []))

    def _do(self, batch: list[_Work]) -> None:
        cfg = self.cfg
        record = self.history.record
        out: dict[Wire, bytearray] = {}
        for work in batch:
            action, wire, life, key, mid, msg_id = work
            if life is not self.life or wire.closed:
                continue
            if self.stalled:
                self._stalled_work.append(work)
                continue
            if action == _FINISH:
                record("fin", consumer=self.host, nsqd=wire.nsqd, channel=cfg.channel, key=key, id=mid)
                out.setdefault(wire, bytearray()).extend(b"FIN " + msg_id + b"\n")
            elif action == _REQUEUE:
                delay_ms = int(cfg.requeue_delay.sample(self.rng) * 1000)
                record("req", consumer=self.host, nsqd=wire.nsqd, channel=cfg.channel, key=key, id=mid, delay_ms=delay_ms)
                out.setdefault(wire, bytearray()).extend(v2.encode_command(b"REQ", msg_id, str(delay_ms).encode()))
            elif action == _TIMEOUT:
                record("hold", consumer=self.host, nsqd=wire.nsqd, channel=cfg.channel, key=key, id=mid)
            else:
                for w, data in out.items():
                    w.write(bytes(data))
                self.crash()
                return
        for w, data in out.items():
            w.write(bytes(data))
