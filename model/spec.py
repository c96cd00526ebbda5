"""The specification: one nsqd as a state machine, ``enabled(cfg, s)`` and ``step(cfg, s, a)``.

What it models
--------------
One topic, its channels and their consumers, on one nsqd (nsqds share
nothing, so a cluster's guarantees are each node's).  A message is, in each
channel, queued in memory, queued on disk (a record, fsynced or not), in flight
to one consumer until a deadline, deferred until a due time, or finished.  The
actions are what clients, operators, timers and faults do: publish (PUB or
DPUB; under durable publishing it is acknowledged by the fsync it waits for),
subscribe, RDY, deliver (and ``read``: a deferred or stale record read on the
way), FIN, REQ (with or without a delay), TOUCH, a channel's timer (timeouts
and deferred messages falling due), a tick of time, an fsync (``sync``: data
and read position, the sync timer or --sync-every; ``commit``: data only, the
group commit of a durable publish), channel create / delete / empty / pause /
unpause, a consumer disconnecting, a crash (a process kill, which keeps every
byte written, or a power loss, which keeps only fsynced bytes and a prefix of
the rest) and a clean restart.

Beyond nsqd, off unless configured (``Config.max_attempts``, ``Config.ttl``):
a REQ or timeout of a message whose last delivery had max_attempts, or a
dispatch of one that already had them, dead-letters it (a disk-only channel
keeps its record as a ``Letter`` until the dead-letter topic's group commit,
``commit`` of ``Config.dead_letter_queue``); a dispatch drops (``expire``) a
message older than the TTL, counted in ticks since its publish (``State.ages``).

How closely
-----------
Closely enough to be checked against the broker step for step
(``tests/model/test_refinement.py``): memory queues are first in first out
and bounded by --mem-queue-size, past which a message goes to the disk queue
(``disklog.py``) or, for an ephemeral channel, is dropped; a disk-only channel
("held reads", ``broker/nsqd/channel.py``) keeps each message's one record
until the message is finished, whatever happens to the message in memory
(requeued, deferred by a REQ, timed out); a clean exit writes every message a
channel holds in memory to its disk queue, deferred ones with their due time,
and lets the older records go.  What the broker does in one go the model
does in one step too: a publish puts to every channel, a channel's timer
times out every expired message and puts back every due one; dispatching
happens before anything else, one message at a time to any ready consumer
(the broker's round robin is one of the orders allowed).

One rule goes beyond the broker as it is: when a crash leaves two records of
one message to be read again (``disklog.dedupe``: in default mode a message
read from disk, then timed out or requeued while the memory queue was full,
is written anew, and the older record comes back if the read position past
it was not fsynced), only the first is delivered.  Without it one message can
be in flight twice on one channel, or be delivered again after a FIN accepted
since the restart (the seeded bug ``no_reread_dedup``).

Ghost state (``state.Ghost``) records what clients were told and where each
message went, for ``invariants.py``; the broker has no counterpart of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import product

from model import transitions
from model.state import (
    Action,
    Config,
    State,
    aged,
    commit_point,
    durable,
    exhausted,
    holds,
    pending,
    ready,
)

__all__ = ["BUGS", "enabled", "holds", "initial", "is_fault", "next_source", "pending", "ready", "step"]

# Seeded bugs, each a one-line departure from the specification, for showing
# that the explorer catches what it claims to catch.
BUGS = frozenset(
    {
        "timeout_drops",  # a timed-out message is dropped instead of requeued
        "crash_loses_in_flight",  # a crash lets go of the records of in-flight messages (disk-only)
        "no_reread_dedup",  # every record read again after a crash is delivered (broker, default mode)
        "lost_wakeup",  # a channel's timer forgets due deferred messages: they wait forever
        "dead_letter_releases_early",  # a disk-only channel lets a dead letter's record go before its envelope's fsync
        "ttl_ignored",  # a dispatch delivers a message past the TTL
        "redeliver_exhausted",  # a dispatch delivers a message that had max_attempts (the broker before the fix)
        "dead_letter_one_early",  # a message is dead-lettered one attempt before max_attempts
    }
)

# Actions that are faults or operator interference: the liveness check looks
# for paths without them ("once faults stop").
_FAULTS = frozenset({"crash", "restart", "delete", "empty", "pause", "disconnect", "publish", "req", "touch"})


def initial(cfg: Config) -> State:
    return State.initial(cfg)


def is_fault(a: Action) -> bool:
    """Whether ``a`` is left out of the fair paths the liveness check looks for."""
    return a.kind in _FAULTS


# -- queries ------------------------------------------------------------------------


def next_source(cfg: Config, s: State, c: int) -> str:
    """What a dispatch of channel ``c`` would do next: "memory", "disk", "read", "expire",
    "dead_letter" or ""."""
    ch = s.channels[c]
    if not ch.exists or ch.paused:
        return ""
    if ch.memory:
        return _unless_spent(cfg, s, ch.memory[0].msg, ch.memory[0].attempts, "memory")
    if ch.log.read == len(ch.log.records):
        return ""
    rec = ch.log.records[ch.log.read]
    if rec.due > 0 or rec.stale:
        return "read"  # deferred: waits in memory; stale: let go
    return _unless_spent(cfg, s, rec.msg, rec.attempts, "disk")


def _unless_spent(cfg: Config, s: State, m: int, attempts: int, source: str) -> str:
    """Where it would have been delivered, a message past the TTL is dropped, and one that
    already had max_attempts (in flight at a clean exit) is dead-lettered."""
    if aged(cfg, s, m) and "ttl_ignored" not in cfg.bugs:
        return "expire"
    if exhausted(cfg, attempts + ("dead_letter_one_early" in cfg.bugs)) and "redeliver_exhausted" not in cfg.bugs:
        return "dead_letter"
    return source


def _urgent(s: State) -> bool:
    return any(any(f.deadline == 0 for f in ch.in_flight) or any(d.due == 0 for d in ch.deferred) for ch in s.channels)


# -- what may happen next -------------------------------------------------------------


def enabled(cfg: Config, s: State) -> list[Action]:
    return list(_enabled(cfg, s))


def _dispatches(cfg: Config, s: State) -> list[Action]:
    out = []
    for c in range(len(cfg.channels)):
        source = next_source(cfg, s, c)
        if not source:
            continue
        readers = [k for k in range(len(cfg.consumers)) if cfg.consumers[k] == c and ready(cfg, s, k)]
        if readers and source in ("read", "expire", "dead_letter"):
            out.append(Action(source, c))
        elif readers:
            out += [Action("deliver", c, k) for k in readers]
    return out


def _enabled(cfg: Config, s: State) -> Iterator[Action]:
    dispatches = _dispatches(cfg, s)
    if dispatches and cfg.eager:
        # nsqd hands a message to a ready consumer in the same turn of its event
        # loop that made it possible: nothing else happens in between.
        yield from dispatches
        return
    yield from dispatches
    g = s.ghost
    nc = len(cfg.channels)
    if g.published < cfg.messages:
        yield Action("publish", 0)
        for d in cfg.dpub_delays:
            yield Action("publish", d)
    for k, con in enumerate(s.consumers):
        if not con.subscribed:
            yield Action("subscribe", k)
            continue
        if cfg.rdy_changes:
            for n in sorted({0, cfg.rdy} - {con.rdy}):
                yield Action("rdy", k, n)
        if g.disconnects < cfg.disconnects:
            yield Action("disconnect", k)
    admin = g.admin < cfg.admin
    waiting = frozenset().union(*g.awaiting) if g.awaiting else frozenset()
    for c, ch in enumerate(s.channels):
        if not ch.exists:
            if cfg.create:
                yield Action("create", c)
            continue
        if any(f.deadline == 0 for f in ch.in_flight) or any(d.due == 0 for d in ch.deferred):
            yield Action("timer", c)
        for f in ch.in_flight:
            if f.holder >= 0:
                yield Action("fin", f.holder, f.msg)
                for d in cfg.req_delays:
                    yield Action("req", f.holder, f.msg, d)
                if cfg.touch and f.deadline < min(cfg.msg_timeout, cfg.max_msg_timeout - f.age):
                    yield Action("touch", f.holder, f.msg)
        if ch.paused:
            yield Action("unpause", c)
        elif admin:
            yield Action("pause", c)
        if admin:
            yield Action("delete", c)
            yield Action("empty", c)
        if durable(cfg, c):
            if cfg.fsync and ((ch.log.unsynced and ch.log.written) or commit_point(cfg, ch) > 0):
                yield Action("sync", c)
            if c in waiting:
                yield Action("commit", c)
    if cfg.fsync and s.topic.log.unsynced and s.topic.log.written:
        yield Action("sync", nc)
    if nc in waiting:
        yield Action("commit", nc)
    if any(ch.letters for ch in s.channels):
        # the dead-letter topic's group commit, on the next turn of nsqd's loop
        yield Action("commit", cfg.dead_letter_queue)
    if not _urgent(s):
        yield Action("tick")
    if g.crashes < cfg.crashes:
        for kind in cfg.crash_kinds:
            if kind == "kill":
                yield Action("crash", 0)
            else:
                logs = [s.topic.log, *(ch.log for ch in s.channels)]
                for keep in product(*(range(log.unsynced + 1) for log in logs)):
                    yield Action("crash", 1, keep=keep)
    if g.restarts < cfg.restarts:
        yield Action("restart")


# -- taking a step --------------------------------------------------------------------


def step(cfg: Config, s: State, a: Action) -> State:
    """The state after ``a``, which must be one of ``enabled(cfg, s)``."""
    return transitions.step(cfg, s, a)
