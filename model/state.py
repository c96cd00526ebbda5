"""The model's configuration, its state, and its actions: plain immutable data.

Everything here is a ``NamedTuple`` (or a frozen dataclass for the
configuration), so a state hashes and compares by value and the explorer can
keep sets of them.  Time is abstract ticks; every time in the state is
relative to now (ticks until a deadline or due time), which makes the state
space finite without a horizon.

Indices, not names: channel ``c`` is ``Config.channels[c]``, consumer ``k``
is ``Config.consumers[k]`` (and subscribes to channel ``Config.consumers[k]``),
message ``m`` is the m-th publish.  Per-(message, channel) facts of the ghost
state live in flat tuples at ``m * channels + c``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from model.disklog import Log

__all__ = [
    "ACKED",
    "FAILED",
    "LETTER_SYNCED",
    "LETTER_WRITTEN",
    "NO_RECORD",
    "PENDING",
    "READ_SYNCED",
    "UNPUBLISHED",
    "Action",
    "Channel",
    "Config",
    "Consumer",
    "Deferred",
    "Ghost",
    "Held",
    "InFlight",
    "Letter",
    "Mode",
    "State",
    "Topic",
    "aged",
    "commit_point",
    "copies",
    "durable",
    "exhausted",
    "holds",
    "pending",
    "pending_messages",
    "ready",
]


class Mode(StrEnum):
    """The three durability modes of nsqd (see docs/guarantees.md)."""

    DEFAULT = "default"  # --mem-queue-size > 0: memory first, disk past it
    DISK_ONLY = "disk-only"  # --mem-queue-size=0: held reads
    DURABLE = "durable-publish"  # --durable-publish: disk-only, acknowledged after the fsync


@dataclass(frozen=True)
class Config:
    """One bounded configuration of one nsqd with one topic.

    A cluster of nsqds shares nothing (no replication): each node's guarantees
    are its own, so one node is what the model explores.
    """

    mode: Mode = Mode.DEFAULT
    mem_queue_size: int = 1  # default mode only: the disk modes keep nothing in memory queues
    messages: int = 2  # publishes, at most
    channels: tuple[str, ...] = ("a", "b")  # a "#ephemeral" suffix makes one ephemeral
    consumers: tuple[int, ...] = (0, 1)  # the channel each consumer subscribes to
    rdy: int = 1  # the RDY count a consumer sends
    rdy_changes: bool = False  # consumers may change RDY (between 0 and ``rdy``) while subscribed
    msg_timeout: int = 2
    max_msg_timeout: int = 3
    dpub_delays: tuple[int, ...] = (2,)  # DPUB delays a publish may use (PUB is always possible)
    req_delays: tuple[int, ...] = (0, 1)
    touch: bool = True
    create: bool = True  # channels created by an operator, before any consumer subscribes
    crashes: int = 1
    crash_kinds: tuple[str, ...] = ("kill", "power")
    restarts: int = 0  # clean restarts
    admin: int = 0  # channel delete / empty / pause actions, in all
    disconnects: int = 0  # consumers closing their connection
    sync_always: bool = False  # --sync-every=1: every queue operation is fsynced at once
    fsync: bool = True  # whether the explorer may fsync (sync timer, --sync-every) at any time
    attempts_bound: int = 3  # attempts saturate here, to keep the state space finite
    # Beyond nsqd (README "Dead letters and message TTL"), both 0: off.
    max_attempts: int = 0  # a REQ or timeout after this many deliveries dead-letters the message
    ttl: int = 0  # ticks: a message older than this since its publish is dropped, never delivered
    eager: bool = True  # dispatch before anything else, as nsqd does; False: any interleaving
    bugs: frozenset[str] = frozenset()  # seeded bugs (spec.BUGS), to show the checks can fail

    def __post_init__(self) -> None:
        nc = len(self.channels)
        if not all(0 <= c < nc for c in self.consumers):
            raise ValueError("a consumer names a channel that is not configured")
        if any(c not in self.consumers for c in range(nc)):
            raise ValueError("every channel needs a consumer, or nothing could ever be delivered on it")
        if self.mode is Mode.DEFAULT and self.mem_queue_size < 1:
            raise ValueError("default mode has mem_queue_size >= 1; 0 is Mode.DISK_ONLY")
        if self.mem_size == 0 and any(self.ephemeral(c) for c in range(nc)):
            # nsqd's unbuffered ephemeral channel (handed over only to a consumer
            # ready at that instant) is not modelled.
            raise ValueError("ephemeral channels are modelled with mem_queue_size >= 1 only")
        if not 0 < self.msg_timeout <= self.max_msg_timeout:
            raise ValueError("need 0 < msg_timeout <= max_msg_timeout")
        if any(k not in ("kill", "power") for k in self.crash_kinds):
            raise ValueError("crash kinds are 'kill' and 'power'")
        if self.max_attempts < 0 or self.ttl < 0:
            raise ValueError("max_attempts and ttl are 0 (off) or positive")
        if self.max_attempts and self.attempts_bound <= self.max_attempts:
            # one more than max_attempts must be countable, or a delivery past it could not be seen
            raise ValueError("attempts_bound must be above max_attempts")

    @property
    def mem_size(self) -> int:
        return self.mem_queue_size if self.mode is Mode.DEFAULT else 0

    @property
    def tracked(self) -> bool:
        """Durable channels hold reads (keep every message on disk until FIN)."""
        return self.mode is not Mode.DEFAULT

    def ephemeral(self, c: int) -> bool:
        return self.channels[c].endswith("#ephemeral")

    @property
    def dead_letter_queue(self) -> int:
        """The queue index (``Action.a`` of ``commit``) of the dead-letter topic's disk queue."""
        return len(self.channels) + 1


# Held.ref when the copy stands for no record a crash would bring back:
NO_RECORD = -1  # it never came from disk
READ_SYNCED = -2  # it came from disk and that reading is durable (nsqio/nsq#1142)


class Held(NamedTuple):
    """A message queued in a channel's memory.

    ``ref`` is the index in the channel's log of the record this copy was read
    from, while a crash would bring that record back; else NO_RECORD or READ_SYNCED.
    """

    msg: int
    attempts: int
    ref: int = NO_RECORD


class InFlight(NamedTuple):
    msg: int
    attempts: int
    ref: int
    holder: int  # the consumer, or -1 once its connection is gone
    deadline: int  # ticks until it times out
    age: int  # ticks since delivery (TOUCH never extends past max_msg_timeout)


class Deferred(NamedTuple):
    msg: int
    attempts: int
    ref: int
    due: int  # ticks until due


class Letter(NamedTuple):
    """A dead-lettered message whose disk-only channel still holds its record.

    The record is let go once the envelope is fsynced in the dead-letter
    topic (the ``commit`` of queue ``Config.dead_letter_queue``), so that no
    crash loses both.
    """

    msg: int
    ref: int


class Channel(NamedTuple):
    exists: bool = False
    paused: bool = False
    memory: tuple[Held, ...] = ()  # first in, first out
    in_flight: tuple[InFlight, ...] = ()  # in the order their timeouts were set (the timer's order)
    deferred: tuple[Deferred, ...] = ()  # in the order they were deferred
    log: Log = Log()  # its disk queue (always empty for an ephemeral channel)
    letters: tuple[Letter, ...] = ()  # dead letters waiting for their envelope's fsync (disk modes)


class Topic(NamedTuple):
    """What the topic holds while it has no channel."""

    exists: bool = False
    memory: tuple[tuple[int, int], ...] = ()  # (msg, DPUB delay, counted from the hand-off)
    log: Log = Log()


class Consumer(NamedTuple):
    subscribed: bool = False
    rdy: int = 0


UNPUBLISHED, PENDING, ACKED, FAILED = 0, 1, 2, 3  # Ghost.ack
LETTER_WRITTEN, LETTER_SYNCED = 1, 2  # Ghost.dead (0: not dead-lettered)


class Ghost(NamedTuple):
    """What clients were told and what happened to each message: for the invariants, not the broker.

    Per message (index m): ``ack``, ``awaiting``, ``dpub_wait``, ``topic_held``,
    ``topic_lost``.  Per (message, channel) (index m * channels + c):
    ``expected`` (the channel existed at publish, or was the first channel of a
    topic that held the message), ``finished`` (a FIN was accepted and no crash
    undid it), ``lost`` (the rule that allowed a loss, or ""), ``attempts``
    (of the last delivery, 0 before the first), ``reread`` (a restart re-read a
    record of it since that delivery), ``req_wait`` (ticks a REQ's delay has
    left).
    """

    published: int
    ack: tuple[int, ...]
    awaiting: tuple[frozenset[int], ...]  # durable publish: queues whose fsync the answer waits for
    dpub_wait: tuple[int, ...]
    topic_held: tuple[bool, ...]
    topic_lost: tuple[str, ...]
    expected: tuple[bool, ...]
    finished: tuple[bool, ...]
    lost: tuple[str, ...]
    attempts: tuple[int, ...]
    reread: tuple[bool, ...]
    req_wait: tuple[int, ...]
    dead: tuple[int, ...] = ()
    expired: tuple[bool, ...] = ()
    crashes: int = 0
    restarts: int = 0
    admin: int = 0
    disconnects: int = 0

    @classmethod
    def initial(cls, cfg: Config) -> Ghost:
        m, mc = cfg.messages, cfg.messages * len(cfg.channels)
        return cls(
            published=0,
            ack=(UNPUBLISHED,) * m,
            awaiting=(frozenset(),) * m,
            dpub_wait=(0,) * m,
            topic_held=(False,) * m,
            topic_lost=("",) * m,
            expected=(False,) * mc,
            finished=(False,) * mc,
            lost=("",) * mc,
            attempts=(0,) * mc,
            reread=(False,) * mc,
            req_wait=(0,) * mc,
            dead=(0,) * mc,
            expired=(False,) * mc,
        )


class State(NamedTuple):
    topic: Topic
    channels: tuple[Channel, ...]
    consumers: tuple[Consumer, ...]
    ghost: Ghost
    # With a TTL: each message's age, ticks since its publish (its timestamp), saturating
    # at ttl + 1, past which nothing tells them apart; () without one.
    ages: tuple[int, ...] = ()

    @classmethod
    def initial(cls, cfg: Config) -> State:
        return cls(
            Topic(),
            (Channel(),) * len(cfg.channels),
            (Consumer(),) * len(cfg.consumers),
            Ghost.initial(cfg),
            (0,) * cfg.messages if cfg.ttl else (),
        )


class Action(NamedTuple):
    """One step: its kind, and up to three indices or amounts (``a``, ``b``, ``c``):

    publish(delay; 0 is PUB) · create(c) · subscribe(k) · rdy(k, n) ·
    deliver(c, k) · read(c) · fin(k, m) · req(k, m, delay) · touch(k, m) ·
    timer(c) · tick · sync(q) · commit(q) · crash(0 kill | 1
    power; ``keep``: how many unsynced records survive in each queue) · restart ·
    delete(c) · empty(c) · pause(c) · unpause(c) · disconnect(k).

    Beyond nsqd: expire(c) (the next message of ``c`` is past the TTL: dropped)
    · dead_letter(c) (it already had max_attempts: dead-lettered, not delivered).

    A queue ``q`` is a channel index, ``len(Config.channels)`` for the topic, or
    ``Config.dead_letter_queue`` for the dead-letter topic's (``commit`` only).
    """

    kind: str
    a: int = -1
    b: int = -1
    c: int = -1
    keep: tuple[int, ...] = ()

    def __str__(self) -> str:
        args = [str(x) for x in (self.a, self.b, self.c) if x != -1]
        if self.keep:
            args.append("keep=" + "/".join(map(str, self.keep)))
        return f"{self.kind}({', '.join(args)})"


# -- questions about a state ------------------------------------------------------------


def durable(cfg: Config, c: int) -> bool:
    """Whether channel ``c`` has a disk queue (ephemeral channels drop what memory cannot hold)."""
    return not cfg.ephemeral(c)


def ready(cfg: Config, s: State, k: int) -> bool:
    """Whether consumer ``k`` may be sent a message: subscribed, and fewer in flight than its RDY."""
    con = s.consumers[k]
    if not con.subscribed:
        return False
    c = cfg.consumers[k]
    return sum(1 for f in s.channels[c].in_flight if f.holder == k) < con.rdy


def holds(ch: Channel, m: int) -> bool:
    """Whether the channel holds a copy of ``m`` in memory (queued, in flight or deferred)."""
    return any(h.msg == m for h in ch.memory) or any(f.msg == m for f in ch.in_flight) or any(d.msg == m for d in ch.deferred)


def pending(s: State, m: int, c: int) -> bool:
    """Whether channel ``c`` still has ``m`` to deliver or see finished."""
    ch = s.channels[c]
    return holds(ch, m) or ch.log.holds(m)


def pending_messages(ch: Channel) -> set[int]:
    """Every message the channel still has to deliver or see finished."""
    out = {h.msg for h in ch.memory}
    out.update(f.msg for f in ch.in_flight)
    out.update(d.msg for d in ch.deferred)
    out.update(r.msg for r in ch.log.records[ch.log.read :] if not r.stale)
    return out


def copies(ch: Channel) -> list[Held | InFlight | Deferred]:
    """What the channel holds in memory: queued, in flight and deferred."""
    return [*ch.memory, *ch.in_flight, *ch.deferred]


def commit_point(cfg: Config, ch: Channel) -> int:
    """Where the channel's durable read position moves at its next sync.

    A disk-only channel holds it at the oldest record a message it holds (or a
    dead letter waiting for its envelope's fsync) came from; otherwise it is
    the read position.
    """
    if cfg.tracked:
        refs = [x.ref for x in copies(ch) if x.ref >= 0] + [x.ref for x in ch.letters if x.ref >= 0]
        if refs:
            return min(refs)
    return ch.log.read


def aged(cfg: Config, s: State, m: int) -> bool:
    """Whether message ``m`` is past the TTL: older than ``Config.ttl`` ticks since its publish."""
    return bool(cfg.ttl) and s.ages[m] > cfg.ttl


def exhausted(cfg: Config, attempts: int) -> bool:
    """Whether a message with ``attempts`` deliveries may not be delivered again (max_attempts)."""
    return bool(cfg.max_attempts) and attempts >= cfg.max_attempts
