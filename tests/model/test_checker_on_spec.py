"""The checker accepts every history the specification can produce, and agrees with it.

A walk through the specification (``model.spec``) is written down as the
history a recorder would have written (publishes and their answers,
deliveries, FIN/REQ/TOUCH, crashes, restarts, operators' actions, fsyncs);
the checker must find no violation in it, and its verdict on each message
must match what the specification's ghost state says became of it.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from model.checker import check
from model.spec import enabled, initial, step
from model.state import ACKED, FAILED, Action, Config, Mode, State, pending_messages

CONSUMERS = (0, 0, 1)


def config(mode: Mode) -> Config:
    return Config(
        mode,
        mem_queue_size=1,
        messages=3,
        channels=("a", "b#ephemeral") if mode is Mode.DEFAULT else ("a", "b"),
        consumers=CONSUMERS,
        rdy=2,
        rdy_changes=True,
        msg_timeout=2,
        max_msg_timeout=3,
        dpub_delays=(2,),
        req_delays=(0, 2),
        crashes=2,
        restarts=1,
        admin=2,
        disconnects=2,
        attempts_bound=1000,
    )


class Recorder:
    """Writes down, as history events, what each step of the specification showed."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.t = 0
        settings_by_mode = {
            Mode.DEFAULT: {"mem_queue_size": 1},
            Mode.DISK_ONLY: {"mem_queue_size": 0},
            Mode.DURABLE: {"mem_queue_size": 0, "durable_publish": True},
        }
        self.events: list[dict[str, Any]] = [self.ev("node", **settings_by_mode[cfg.mode])]

    def ev(self, type: str, **fields: Any) -> dict[str, Any]:
        return {"t": float(self.t), "type": type, "nsqd": "n", "topic": "t", **fields}

    def add(self, type: str, **fields: Any) -> None:
        self.events.append(self.ev(type, **fields))

    def channel(self, c: int) -> str:
        return self.cfg.channels[c]

    def record(self, s: State, a: Action, t: State) -> None:
        cfg = self.cfg
        kind = a.kind
        if kind == "publish":
            m = s.ghost.published
            self.add("publish", key=f"m{m}", defer_ms=a.a * 1000)
        elif kind == "subscribe":
            self.add("subscribed", consumer=f"k{a.a}", channel=self.channel(cfg.consumers[a.a]))
        elif kind == "create":
            self.add("channel_created", channel=self.channel(a.a))
        elif kind in ("delete", "empty"):
            self.add(f"channel_{kind}d" if kind == "delete" else "channel_emptied", channel=self.channel(a.a))
        elif kind == "deliver":
            c, k = a.a, a.b
            f = next(f for f in reversed(t.channels[c].in_flight) if f.holder == k)
            self.add("deliver", consumer=f"k{k}", channel=self.channel(c), key=f"m{f.msg}", id=f"m{f.msg}", attempts=f.attempts)
        elif kind in ("fin", "req", "touch"):
            extra = {"delay_ms": a.c * 1000} if kind == "req" else {}
            self.add(kind, consumer=f"k{a.a}", channel=self.channel(cfg.consumers[a.a]), key=f"m{a.b}", id=f"m{a.b}", **extra)
        elif kind == "disconnect":
            self.add("disconnected", who=f"k{a.a}")
        elif kind == "crash":
            self.add("crash", kind="power" if a.a == 1 else "kill")
        elif kind == "restart":
            self.add("stop")
            self.add("start")
        elif kind in ("sync", "commit"):
            q = a.a
            log = t.topic.log if q == len(cfg.channels) else t.channels[q].log
            keys = [f"m{r.msg}" for r in log.records[: log.synced] if not r.stale]
            self.add("fsync", channel="" if q == len(cfg.channels) else self.channel(q), keys=keys)
        elif kind == "tick":
            self.t += 1
        for m in range(t.ghost.published):
            if t.ghost.ack[m] == ACKED and (m >= s.ghost.published or s.ghost.ack[m] != ACKED):
                self.add("publish_ok", key=f"m{m}")
            elif t.ghost.ack[m] == FAILED and (m >= s.ghost.published or s.ghost.ack[m] != FAILED):
                self.add("publish_failed", key=f"m{m}", error="connection lost")

    def finish(self, s: State) -> None:
        for c, ch in enumerate(s.channels):
            if ch.exists:
                self.add("final", channel=self.channel(c), depth=len(pending_messages(ch)), in_flight=0, deferred=0)


@settings(max_examples=150, deadline=None)
@given(mode=st.sampled_from(list(Mode)), data=st.data())
def test_every_history_of_the_specification_passes_the_checker(mode: Mode, data: st.DataObject) -> None:
    cfg = config(mode)
    rec = Recorder(cfg)
    s = initial(cfg)
    for _ in range(data.draw(st.integers(0, 60), label="steps")):
        acts = enabled(cfg, s)
        a = data.draw(st.sampled_from(acts), label="action")
        t = step(cfg, s, a)
        rec.record(s, a, t)
        s = t
    rec.finish(s)
    v = check(rec.events)
    assert v.ok, "\n".join(v.violations)
    g = s.ghost
    nc = len(cfg.channels)
    for o in v.outcomes:
        m, c = int(o.key[1:]), cfg.channels.index(o.channel)
        i = m * nc + c
        if o.status == "lost_allowed":
            # allowed to be lost: the specification lost it, or (the rules being coarser
            # than the specification) it was never owed, or it is still queued
            assert g.lost[i] or not g.expected[i] or m in pending_messages(s.channels[c]), (o, g.lost[i])
        elif o.status == "pending":
            assert m in pending_messages(s.channels[c])
        if g.finished[i] and g.ack[m] == ACKED:
            assert o.status in ("delivered", "duplicated"), o
