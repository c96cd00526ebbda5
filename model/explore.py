"""Bounded exhaustive exploration of the specification, checking every invariant.

Method
------
Breadth first from the initial state over every enabled action, so the first
violation found has a shortest trace.  States are hashed after a symmetry
reduction: consumers of the same channel are interchangeable, so they are
renumbered in a canonical order (by their own state and the positions of
what they hold in flight).  Two abstractions keep the space small without
changing what any invariant can see: a record that was read, is not held
and follows an earlier record of the same message is dropped (a restart
would let it go); once no crash or restart is left, what a restart would
read again and what is fsynced are forgotten.  The bounds are the
configuration's: messages, channels, consumers, crashes, restarts, operator
actions; time is relative (``state.py``), so the state space is finite
without a time horizon, attempts saturate at ``attempts_bound`` and ages
(with a TTL) at one tick past it.

Every new state is checked against the state invariants and every step,
including steps into states already seen, against the step invariants
(``invariants.py``).

Liveness is checked on the explored graph, once it is complete: from every
reachable state, some path of non-fault actions (deliver, read, FIN, timer,
tick, fsync, subscribe, RDY, unpause, create; no crash, restart, delete,
empty, pause, disconnect, publish, REQ or TOUCH) reaches a state where every
acknowledged message is finished or allowably lost on every channel that
existed when it was published (``invariants.goal``).  On a finite graph this
is the standard reading of at-least-once delivery under fairness once faults
stop: a scheduler that keeps taking the enabled fair actions cannot be kept
away from such a state forever.  It is computed backwards: the goal states,
then every state with a fair step into the set, until nothing is added.

``python -m model.explore`` explores the default configurations, reports
``states: N`` for each and in total on stdout, and exits 1 on a violation,
with its trace.  Only the ``__main__`` block prints (``model/`` does no I/O;
``main`` takes the reporting function, and logs when given none).
"""

from __future__ import annotations

import argparse
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from model.disklog import Log, Rec
from model.invariants import check_state, check_step, goal
from model.spec import enabled, initial, is_fault, step
from model.state import (
    NO_RECORD,
    PENDING,
    Action,
    Channel,
    Config,
    Consumer,
    Letter,
    Mode,
    State,
    copies,
    pending_messages,
)

__all__ = ["DEFAULT_CONFIGS", "Result", "Violation", "canonical", "describe", "explore", "main"]


@dataclass
class Violation:
    invariant: str
    detail: str
    trace: list[tuple[Action, State]]  # the steps from the initial state, with the state after each

    def render(self, cfg: Config) -> str:
        lines = [f"VIOLATION of {self.invariant}: {self.detail}", f"trace ({len(self.trace)} steps):"]
        for n, (a, s) in enumerate(self.trace, 1):
            lines.append(f"  {n:2d}. {a}")
            lines.append(f"      {describe(cfg, s)}")
        return "\n".join(lines)


@dataclass
class Result:
    config: Config
    states: int = 0
    steps: int = 0
    complete: bool = True  # False when max_states stopped the search
    violation: Violation | None = None
    goal_states: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.violation is None and self.complete


def explore(cfg: Config, *, max_states: int = 0, liveness: bool = True) -> Result:
    """Explore every state of ``cfg`` (up to ``max_states`` if not 0) and check it."""
    res = Result(cfg)
    start = canonical(cfg, initial(cfg))
    index: dict[State, int] = {start: 0}
    states: list[State] = [start]
    parent: list[tuple[int, Action | None]] = [(-1, None)]
    fair: list[list[int]] = []

    def trace(sid: int) -> list[tuple[Action, State]]:
        out: list[tuple[Action, State]] = []
        while sid > 0:
            p, a = parent[sid]
            assert a is not None
            out.append((a, states[sid]))
            sid = p
        out.reverse()
        return out

    bad = check_state(cfg, start)
    if bad is not None:
        res.violation = Violation(bad[0], bad[1], [])
        return res
    todo: deque[int] = deque([0])
    while todo:
        sid = todo.popleft()
        s = states[sid]
        out: list[int] = []
        for a in enabled(cfg, s):
            t = step(cfg, s, a)
            res.steps += 1
            bad = check_step(cfg, s, a, t)
            if bad is not None:
                res.violation = Violation(bad[0], bad[1], [*trace(sid), (a, t)])
                res.states = len(states)
                return res
            tc = canonical(cfg, t)
            tid = index.get(tc)
            if tid is None:
                tid = len(states)
                index[tc] = tid
                states.append(tc)
                parent.append((sid, a))
                bad = check_state(cfg, tc)
                if bad is not None:
                    res.violation = Violation(bad[0], bad[1], trace(tid))
                    res.states = len(states)
                    return res
                if max_states and len(states) >= max_states:
                    res.complete = False
                else:
                    todo.append(tid)
            if not is_fault(a):
                out.append(tid)
        fair.append(out)
    res.states = len(states)
    if liveness and res.complete:
        _check_liveness(cfg, states, fair, trace, res)
    return res


def _check_liveness(
    cfg: Config,
    states: list[State],
    fair: list[list[int]],
    trace: Callable[[int], list[tuple[Action, State]]],
    res: Result,
) -> None:
    back: list[list[int]] = [[] for _ in states]
    for sid, outs in enumerate(fair):
        for tid in outs:
            back[tid].append(sid)
    good = [goal(cfg, s) for s in states]
    res.goal_states = sum(good)
    todo = deque(sid for sid, ok in enumerate(good) if ok)
    while todo:
        tid = todo.popleft()
        for sid in back[tid]:
            if not good[sid]:
                good[sid] = True
                todo.append(sid)
    stuck = next((sid for sid, ok in enumerate(good) if not ok), None)
    if stuck is not None:
        res.violation = Violation(
            "eventually_delivered",
            "from the last state no fair path without faults delivers and finishes every acknowledged message",
            trace(stuck),
        )


# -- symmetry reduction ------------------------------------------------------------------


def canonical(cfg: Config, s: State) -> State:
    """``s`` reduced: interchangeable consumers in a canonical order, and records
    that can no longer matter dropped (``_compact``, ``_after_last_fault``)."""
    g = s.ghost
    if g.crashes >= cfg.crashes and g.restarts >= cfg.restarts and PENDING not in g.ack:
        s = _after_last_fault(cfg, s)
    else:
        chans = tuple(_compact(ch) for ch in s.channels)
        if chans != s.channels:
            s = s._replace(channels=chans)
    channels = list(s.channels)
    consumers = list(s.consumers)
    for c, ch in enumerate(channels):
        if not cfg.touch and any(f.age for f in ch.in_flight):
            ch = ch._replace(in_flight=tuple(f._replace(age=0) for f in ch.in_flight))
        group = _groups(cfg)[c]
        if len(group) > 1:
            ch = _order_consumers(group, ch, consumers)
        channels[c] = ch
    return State(s.topic, tuple(channels), tuple(consumers), s.ghost, s.ages)


_GROUPS: dict[tuple[int, ...], list[tuple[int, ...]]] = {}


def _groups(cfg: Config) -> list[tuple[int, ...]]:
    """The consumers of each channel (interchangeable with each other)."""
    got = _GROUPS.get(cfg.consumers)
    if got is None:
        got = [tuple(k for k, ck in enumerate(cfg.consumers) if ck == c) for c in range(len(cfg.channels))]
        _GROUPS[cfg.consumers] = got
    return got


def _order_consumers(group: tuple[int, ...], ch: Channel, consumers: list[Consumer]) -> Channel:
    """Renumber ``group``'s consumers in a canonical order; ``consumers`` is changed in place.

    Only the numbers change: the order of the in-flight entries is the order of
    their timeouts, which is behaviour, so it stays.
    """

    def key(k: int) -> tuple[Consumer, tuple[int, ...]]:
        return consumers[k], tuple(n for n, f in enumerate(ch.in_flight) if f.holder == k)

    order = sorted(group, key=key)
    if order == list(group):
        return ch
    renumber = dict(zip(order, group, strict=True))
    old = [consumers[k] for k in order]
    for k, con in zip(group, old, strict=True):
        consumers[k] = con
    return ch._replace(in_flight=tuple(f._replace(holder=renumber[f.holder]) if f.holder in renumber else f for f in ch.in_flight))


def _after_last_fault(cfg: Config, s: State) -> State:
    """Once no crash or restart is left, what a restart would read again no longer matters.

    Records already read, which records copies came from, and what is fsynced
    are then invisible to every invariant (the durable-publish check looks at
    them while an answer is pending, so this waits until none is): forget them.
    """
    chans = []
    for ch in s.channels:
        log = ch.log
        if not ch.exists:
            chans.append(ch)
            continue
        if log.read or log.unsynced or any(x.ref != NO_RECORD for x in (*copies(ch), *ch.letters)):
            records = log.records[log.read :]
            ch = ch._replace(
                memory=tuple(h._replace(ref=NO_RECORD) for h in ch.memory),
                in_flight=tuple(f._replace(ref=NO_RECORD) for f in ch.in_flight),
                deferred=tuple(d._replace(ref=NO_RECORD) for d in ch.deferred),
                log=Log(records, 0, len(records)),
                letters=tuple(Letter(x.msg, NO_RECORD) for x in ch.letters),
            )
        chans.append(ch)
    topic = s.topic
    if topic.log.unsynced:
        topic = topic._replace(log=topic.log._replace(synced=len(topic.log.records)))
    ages = s.ages
    if ages:
        # A message no longer anywhere can come back only by a crash or a restart: its age is moot.
        top = cfg.ttl + 1
        held = {m for m, _ in topic.memory} | {r.msg for r in topic.log.unread}
        for ch in chans:
            held |= pending_messages(ch)
        ages = tuple(age if m in held or m >= s.ghost.published else top for m, age in enumerate(ages))
    return s._replace(topic=topic, channels=tuple(chans), ages=ages)


def _compact(ch: Channel) -> Channel:
    """Drop the records that were read, are not held, and follow an earlier record of the same message.

    A restart would re-read such a record only to let it go (``disklog.dedupe``),
    so the states with and without it have the same futures as far as any
    invariant can tell; without dropping them a message cycling through
    requeues would grow a disk-only queue's log (and the state space) forever.
    """
    log = ch.log
    if log.read < 2:
        return ch
    refs = {x.ref for x in (*copies(ch), *ch.letters) if x.ref >= 0}
    seen: set[int] = set()
    drop: set[int] = set()
    for j, r in enumerate(log.records):
        if j < log.read and j not in refs and r.msg in seen:
            drop.add(j)
        seen.add(r.msg)
    if not drop:
        return ch
    new_index: dict[int, int] = {}
    records: list[Rec] = []
    for j, r in enumerate(log.records):
        if j not in drop:
            new_index[j] = len(records)
            records.append(r)
    read = sum(1 for j in range(log.read) if j not in drop)
    synced = sum(1 for j in range(log.synced) if j not in drop)

    def moved(ref: int) -> int:
        return new_index[ref] if ref >= 0 else ref

    return ch._replace(
        memory=tuple(h._replace(ref=moved(h.ref)) for h in ch.memory),
        in_flight=tuple(f._replace(ref=moved(f.ref)) for f in ch.in_flight),
        deferred=tuple(d._replace(ref=moved(d.ref)) for d in ch.deferred),
        log=Log(tuple(records), read, synced, log.written),
        letters=tuple(Letter(x.msg, moved(x.ref)) for x in ch.letters),
    )


# -- reporting ---------------------------------------------------------------------------


def describe(cfg: Config, s: State) -> str:
    """One line: what the topic, each channel and each consumer hold."""

    def ref(r: int) -> str:
        return f"^{r}" if r >= 0 else ("" if r == -1 else "^synced-read")

    parts = []
    t = s.topic
    if t.exists and (t.memory or t.log.records):
        mem = " ".join(f"m{m}" + (f"+{d}" if d else "") for m, d in t.memory)
        parts.append(f"topic[mem {mem} | disk {_log(t.log)}]")
    for c, ch in enumerate(s.channels):
        if not ch.exists:
            continue
        items = [f"m{h.msg}#{h.attempts}{ref(h.ref)}" for h in ch.memory]
        fl = [f"m{f.msg}#{f.attempts}{ref(f.ref)}->k{f.holder} t-{f.deadline}" for f in ch.in_flight]
        de = [f"m{d.msg}#{d.attempts}{ref(d.ref)} due {d.due}" for d in ch.deferred]
        name = cfg.channels[c] + (" (paused)" if ch.paused else "")
        letters = f" | letters {' '.join(f'm{x.msg}{ref(x.ref)}' for x in ch.letters)}" if ch.letters else ""
        parts.append(f"{name}[mem {' '.join(items)} | flight {', '.join(fl)} | deferred {', '.join(de)} | disk {_log(ch.log)}{letters}]")
    subs = [f"k{k}:rdy{con.rdy}" for k, con in enumerate(s.consumers) if con.subscribed]
    parts.append("subscribed " + (" ".join(subs) or "none"))
    if cfg.ttl:
        parts.append("ages " + " ".join(f"m{m}:{age}" for m, age in enumerate(s.ages[: s.ghost.published])))
    return "  ".join(parts)


def _log(log: Log) -> str:
    """Records as m<msg>#<attempts>[+due]; "|" marks the read position, "~" an unsynced record."""
    recs = []
    for n, r in enumerate(log.records):
        mark = ("|" if n == log.read else "") + ("" if n < log.synced else "~")
        recs.append(f"{mark}m{r.msg}#{r.attempts}" + (f"+{r.due}" if r.due else ""))
    if log.read == len(log.records):
        recs.append("|")
    return " ".join(recs)


# -- the default bounds --------------------------------------------------------------------

def _small(mode: Mode, **kw: object) -> Config:
    """A configuration small enough to explore in seconds: a message times out one tick
    after delivery (TOUCH can stretch that to two), DPUB and REQ delays are one tick,
    attempts saturate at 2, channels are created by subscribing."""
    base: dict[str, object] = {"msg_timeout": 1, "max_msg_timeout": 2, "attempts_bound": 2, "create": False, "dpub_delays": (1,)}
    base.update(kw)
    return Config(mode, **base)  # type: ignore[arg-type]


# Each aims at a part of the guarantees; together they take every action and
# check every invariant.
DEFAULT_CONFIGS: dict[str, Config] = {
    # memory first, disk past one message: what each crash kind loses (nsqd#1142
    # included), REQ, TOUCH, DPUB, two messages in flight to one consumer
    "default": _small(Mode.DEFAULT, channels=("a",), consumers=(0,), rdy=2),
    # two consumers of one channel, RDY changing under them
    "competing": _small(Mode.DEFAULT, channels=("a",), consumers=(0, 0), crashes=0, rdy_changes=True),
    # held reads under both crash kinds, two consumers
    "disk-only": _small(Mode.DISK_ONLY, channels=("a",), consumers=(0, 0)),
    # answers after the fsync; a crash between a publish and its answer
    "durable-publish": _small(Mode.DURABLE, channels=("a",), consumers=(0,)),
    # 2 messages x 2 channels x 2 consumers x 1 crash: fan-out, a topic holding
    # messages for its first channel, a channel created after a publish
    "fan-out": _small(Mode.DISK_ONLY, channels=("a", "b"), consumers=(0, 1), dpub_delays=(), req_delays=(), touch=False),
    # an operator's delete / empty / pause, and channels created by hand
    "operators": _small(Mode.DISK_ONLY, channels=("a", "b"), consumers=(0, 1), dpub_delays=(), req_delays=(), touch=False, crashes=0, admin=1, create=True),
    # an ephemeral channel beside a durable one: overflow, and gone with its consumer
    "ephemeral": _small(Mode.DEFAULT, channels=("a", "e#ephemeral"), consumers=(0, 1), dpub_delays=(), req_delays=(), touch=False, crashes=0, disconnects=1),
    # clean restarts: nothing lost or repeated, attempts and deferred times kept
    "restart-default": _small(Mode.DEFAULT, channels=("a",), consumers=(0,), touch=False, crashes=0, restarts=1),
    "restart-disk-only": _small(Mode.DISK_ONLY, channels=("a",), consumers=(0,), touch=False, crashes=0, restarts=1),
    # beyond nsqd: dead letters after one attempt (REQ, timeout, and a message in flight at
    # a clean exit), the disk modes' wait for the envelope's fsync, under a crash and a restart
    **{
        f"dead-letter-{mode.value}": _small(mode, channels=("a",), consumers=(0,), rdy=2, max_attempts=1, attempts_bound=2, restarts=1)
        for mode in Mode
    },
    # an operator's delete or empty while a dead letter waits for its envelope's fsync
    "dead-letter-operators": _small(
        Mode.DISK_ONLY, channels=("a",), consumers=(0,), dpub_delays=(), touch=False, admin=1, create=True, max_attempts=1, attempts_bound=2
    ),
    # beyond nsqd: a one-tick TTL through DPUB, REQ delays, timeouts and a crash
    **{f"ttl-{mode.value}": _small(mode, channels=("a",), consumers=(0,), req_delays=(1,), touch=False, ttl=1) for mode in Mode},
}


def main(argv: Sequence[str] | None = None, report: Callable[[str], None] | None = None) -> int:
    """Explore the default configurations (or one); 0 when every check passes."""
    parser = argparse.ArgumentParser(prog="python -m model.explore", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", choices=sorted(DEFAULT_CONFIGS), action="append", help="explore only these")
    parser.add_argument("--max-states", type=int, default=0, help="stop after this many states (0: no bound)")
    args = parser.parse_args(argv)
    say = report or logging.getLogger("model.explore").info
    failed = False
    total = 0
    for name in args.config or list(DEFAULT_CONFIGS):
        cfg = DEFAULT_CONFIGS[name]
        res = explore(cfg, max_states=args.max_states)
        total += res.states
        say(f"{name}: states: {res.states} steps: {res.steps}" + ("" if res.complete else " (bound reached)"))
        if res.violation is not None:
            say(res.violation.render(cfg))
            failed = True
        elif not res.complete:
            failed = True
    say(f"states: {total}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(report=print))
