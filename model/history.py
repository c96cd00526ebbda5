"""The history format the checker reads: what clients saw, what faults happened.

A history is a list of events in the order they happened.  Each is a plain
dict (a JSON object per line in a file, as ``nsqsim/history.py`` writes them)
or an ``Event``; ``events(raw)`` turns either into ``Event`` objects.  Every
event has ``t`` (seconds, any clock that only moves forward) and ``type``.
Unknown types and unknown keys are ignored, so a recorder may add its own.
The checker reads the dicts as they are (``Event.to_dict`` for the others):
a simulation's history has thousands of events, and one object each would
cost more than the judging.

Nodes and messages
------------------
``nsqd`` names the node (``host`` is accepted for it, as nsqsim writes node
events).  A message is named by its ``key``: whatever the producer put in
the body to recognise it (nsqsim: ``<producer>:<seq>``), since nsqd's answer
to PUB carries no id; ``id`` is nsqd's message id where known.  A FIN, REQ or
TOUCH may give the ``id`` alone: the key is then that of the delivery with
that id.  A client is named by ``consumer`` (``who`` is accepted for it in
``disconnected``, as nsqsim writes it).

Types and their fields
----------------------
=====================  ======================================================
``node``               nsqd, mem_queue_size (int), durable_publish (bool),
                       sync_every (int), persistent (bool: has a data path):
                       the durability settings of one nsqd.  Without one a
                       node is taken to be in default mode with a data path.
                       (nsqsim's ``run`` event, with ``nodes: {name: {...}}``
                       holding the same keys, is read the same way.)
``publish``            nsqd, topic, key, defer_ms (0: PUB): a producer sent it
``publish_ok``         key: nsqd acknowledged it
``publish_failed``     key, error: refused, or the outcome is unknown
``subscribed``         consumer, nsqd, topic, channel, sample_rate (optional):
                       SUB answered; what then comes on that connection was
                       sent by the life of nsqd that answered
``channel_created``,   nsqd, topic, channel: an operator created, deleted or
``channel_deleted``,   emptied a channel (HTTP or nsqadmin)
``channel_emptied``
``deliver``            consumer, nsqd, topic, channel, key, id, attempts
``fin``, ``req``,      consumer, nsqd, channel, key or id; ``req`` has delay_ms
``touch``
``hold``               consumer, nsqd, channel, key or id: the consumer will
                       never answer this delivery (nsqd must time it out)
``error``              consumer, nsqd, error (nsqd's text, e.g.
                       ``E_FIN_FAILED FIN <id> failed ...``)
``timeout``            nsqd, channel, key: nsqd timed it out (broker side;
                       informational: a redelivery with no answer is a timeout)
``disconnected``       who, nsqd: a client's connection to that nsqd ended
``consumer_crash``     consumer: its process died, with every connection
``crash``              nsqd, kind: ``kill`` (the process died; the OS keeps
                       what it wrote) or ``power`` (only fsynced bytes
                       survive; the default, as nsqsim's crash is both)
``kill``               nsqd: a ``crash`` of kind ``kill`` (nsqsim's word)
``stop``, ``start``    nsqd: a clean exit; a start after a stop or crash.  A
                       ``stop`` may say what nsqd still held, as ``held``:
                       ``{"<topic>/<channel>": {id: "in_flight" | "deferred"
                       | "queued"}}``, every message the channel had
                       delivered and not finished (in memory or, requeued
                       past --mem-queue-size, on disk); that tells whether a
                       FIN or REQ sent just before reached it
``restart``            nsqd: a clean exit and start in one event
``partition``          informational: where the network was cut
``heal``               side_a, side_b (lists of nodes and clients): the cut
                       between them is mended; what it held arrives now
``disk_fault``         nsqd, fault, where ([file, bit]): with ``fault`` =
                       ``bitflip`` the disk rotted (records may be lost:
                       checksums catch it; a flip in ``nsqd.dat`` must cost
                       nothing), unless ``where`` is given as null (no file
                       to flip)
``exception``          error: something escaped the broker (always a
                       violation; the run stopped there)
``fsync``              nsqd, topic, channel ("" for the topic's own queue),
                       keys: these messages' records are known to be fsynced
                       in that queue (optional; tightens the loss rules)
``final``              nsqd, topic, channel, depth, in_flight, deferred: the
                       channel at the end, as /stats shows it
``channel_options``    nsqd, topic, channel, max_attempts, dead_letter_topic:
                       the channel's server-side max attempts (beyond nsqd)
``topic_options``      nsqd, topic, ttl (seconds): the topic's message TTL
                       (beyond nsqd); its ``deliver`` events then carry
                       ``published``, nsqd's timestamp of the message (seconds
                       on the history's clock)
``dead_letter``        consumer, nsqd, topic, channel, key, id, attempts,
                       reason: a consumer of a dead-letter topic read the
                       envelope of message ``key`` of ``topic/channel``
``disk_fault``         (any ``fault``) the node's disk failed writes or fsyncs
``clock_jump``         nsqd, by (seconds): the node's wall clock stepped by
                       ``by`` (forward if positive); its monotonic clock did not
``clock_skew``         nsqd, rate: from now the node's wall clock gains
                       ``rate`` seconds per second (loses, if negative)
``clock_heal``         nsqd, by: the node's wall clock was stepped back to true
                       time (by ``by`` seconds); the skew ends
``stall``,             nsqd (or a consumer's host): the process stopped
``stall_end``          (SIGSTOP, a GC pause) and went on; informational (nsqsim
                       writes a ``heal`` between it and every other host at the
                       end: its kernel held what came meanwhile)
``net_delay``          informational: one connection held the bytes one way
                       (nsqsim writes a ``heal`` when it lets them go)
``net_cut``            informational: one connection was cut mid-write, and
                       reset at both ends (each side's ``disconnected`` follows)
``end``                the last event
=====================  ======================================================
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Answer", "At", "DeadLetter", "Delivery", "Event", "Life", "NodeSettings", "Publish", "Timeline", "between", "events"]


@dataclass(frozen=True)
class Event:
    t: float
    type: str
    nsqd: str = ""
    topic: str = ""
    channel: str = ""
    key: str = ""
    id: str = ""
    consumer: str = ""
    attempts: int = 0
    defer_ms: int = 0
    delay_ms: int = 0
    kind: str = ""
    error: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Event:
        known = {k: raw[k] for k in _FIELDS if k in raw and raw[k] is not None}
        if "nsqd" not in known and isinstance(raw.get("host"), str):
            known["nsqd"] = raw["host"]
        if "consumer" not in known and raw.get("type") == "disconnected" and isinstance(raw.get("who"), str):
            known["consumer"] = raw["who"]
        if raw.get("type") == "kill":
            return cls(t=float(raw["t"]), type="crash", **{**known, "kind": "kill"}, extra=_extra(raw))
        return cls(t=float(raw["t"]), type=str(raw["type"]), **known, extra=_extra(raw))

    def to_dict(self) -> dict[str, Any]:
        """The event as the plain dict a recorder writes (fields left at their defaults omitted)."""
        out: dict[str, Any] = dict(self.extra)
        out["t"] = self.t
        out["type"] = self.type
        for name in _FIELDS:
            value = getattr(self, name)
            if value:
                out[name] = value
        return out


def _extra(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if k not in _FIELDS}


_FIELDS = ("nsqd", "topic", "channel", "key", "id", "consumer", "attempts", "defer_ms", "delay_ms", "kind", "error")


@dataclass(frozen=True)
class NodeSettings:
    """What decides an nsqd's loss window (see docs/guarantees.md)."""

    mem_queue_size: int = 10000
    durable_publish: bool = False
    sync_every: int = 2500
    persistent: bool = True
    # The longest nsqd may leave a message in flight unanswered (its --msg-timeout, or
    # a longer one a consumer asked for in IDENTIFY), if the history says: 0, unknown.
    timeout_bound: float = 0.0

    @property
    def mode(self) -> str:
        if not self.persistent:
            return "memory"
        if self.durable_publish:
            return "durable-publish"
        return "disk-only" if self.mem_queue_size == 0 else "default"

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> NodeSettings:
        kw: dict[str, Any] = {}
        fields: tuple[tuple[str, type], ...] = (
            ("mem_queue_size", int), ("durable_publish", bool), ("sync_every", int), ("persistent", bool), ("timeout_bound", float),
        )
        for name, kind in fields:
            if name in raw:
                kw[name] = kind(raw[name])
        # Older nsqsim histories say only what each kind of stop may lose (crash_loses,
        # kill_loses, restart_loses); those words imply the mode.
        if "persistent" not in kw and raw.get("crash_loses") is True and raw.get("restart_loses") is True:
            kw["persistent"] = False
        if "durable_publish" not in kw and raw.get("crash_loses") is False:
            kw["durable_publish"] = True
        if "mem_queue_size" not in kw and raw.get("kill_loses") is False and raw.get("restart_loses") is False:
            kw["mem_queue_size"] = 0
        return cls(**kw)


def events(raw: Iterable[Mapping[str, Any] | Event]) -> list[Event]:
    """The history as ``Event`` objects, in the order given."""
    return [e if isinstance(e, Event) else Event.from_dict(e) for e in raw]


# -- a history read once, for look-ups by message, node, connection and time ----------

# A point in the history: its time, and its position among events of equal time.
At = tuple[float, int]

_ANSWERS = frozenset({"fin", "req", "touch", "hold"})
_REFUSALS = {"E_FIN_FAILED": "fin", "E_REQ_FAILED": "req", "E_TOUCH_FAILED": "touch"}


@dataclass(slots=True)
class Publish:
    key: str
    nsqd: str
    topic: str
    at: At  # when it was sent
    defer_ms: int
    acked: At | None = None


@dataclass(slots=True)
class Delivery:
    at: At  # when the consumer got it
    consumer: str
    attempts: int
    id: str
    published: float | None = None  # nsqd's timestamp of the message, where the topic has a TTL


@dataclass(slots=True)
class DeadLetter:
    """A consumer of a dead-letter topic read the envelope of one message."""

    at: At
    attempts: int
    reason: str


@dataclass(slots=True)
class Answer:
    """A consumer's FIN, REQ or TOUCH for a delivery, or its ``hold`` (no answer, ever)."""

    at: At
    kind: str  # fin | req | touch | hold
    consumer: str
    delay_ms: int
    id: str


@dataclass(slots=True)
class Life:
    """Where one life of a node ends (a stop or crash) or the next begins (a start)."""

    at: At
    crash: bool  # the life ended by a crash or kill, not a clean exit
    start: bool


def between(points: list[At], lo: At, hi: At) -> bool:
    """Whether some point of the sorted ``points`` lies in [lo, hi]."""
    i = bisect.bisect_left(points, lo)
    return i < len(points) and points[i] <= hi


class Timeline:
    """What a history says happened, read in one pass (the dicts as they are: a
    simulation's history has thousands of events, and the checker must stay cheap
    beside the run) and kept in lists sorted by ``At`` for look-ups by time."""

    def __init__(self, history: Iterable[Mapping[str, Any] | Event]) -> None:
        self.settings: dict[str, NodeSettings] = {}
        self.pubs: dict[str, Publish] = {}
        self.published = self.acknowledged = self.failed = 0
        self.phantom_acks: list[str] = []  # keys acknowledged but never sent
        self.exceptions: list[str] = []  # what escaped the broker; the run stopped there
        self.deliveries: dict[tuple[str, str, str], list[Delivery]] = defaultdict(list)  # (nsqd, channel, key)
        self.delivery_topic: dict[tuple[str, str, str], str] = {}
        self.answers: dict[tuple[str, str, str], list[Answer]] = defaultdict(list)  # (nsqd, channel, key)
        self.refused: dict[tuple[str, str, str, str], list[At]] = defaultdict(list)  # (consumer, nsqd, id, fin|req|touch)
        self.channel_log: dict[tuple[str, str, str], list[tuple[At, str]]] = defaultdict(list)  # created|deleted|emptied
        self.sampled: set[tuple[str, str, str]] = set()
        self.subscribed: dict[tuple[str, str], list[At]] = defaultdict(list)  # (consumer, nsqd) -> SUB answered
        self.crashed: dict[str, list[At]] = defaultdict(list)  # consumer -> its process died
        self.disconnects: dict[tuple[str, str], list[At]] = defaultdict(list)  # (consumer, nsqd) -> connection ended
        self.heals: dict[tuple[str, str], list[At]] = defaultdict(list)  # (a, b) -> a cut between them mended
        self.faults: dict[str, list[tuple[At, str]]] = defaultdict(list)  # nsqd -> (at, stop | kill | power)
        self.starts: dict[str, list[At]] = defaultdict(list)
        self.held: dict[tuple[str, At], Mapping[str, Mapping[str, str]]] = {}  # (nsqd, stop) -> what it held
        self.fsynced: dict[tuple[str, str, str, str], At] = {}  # (nsqd, topic, channel, key) -> first known
        self.flips: dict[str, list[At]] = defaultdict(list)  # nsqd -> bits flipped on its disk
        self.final: dict[tuple[str, str, str], int] = {}  # (nsqd, topic, channel) -> messages left at the end
        # beyond nsqd: (nsqd, topic, channel) -> (max attempts, dead-letter topic); (nsqd, topic) -> TTL
        self.max_attempts: dict[tuple[str, str, str], tuple[int, str]] = {}
        self.ttl: dict[tuple[str, str], float] = {}
        self.dead_letters: dict[tuple[str, str, str], list[DeadLetter]] = defaultdict(list)  # (nsqd, channel, key)
        self.disk_faults: dict[str, list[At]] = defaultdict(list)  # nsqd -> any disk fault
        self.disk_heals: dict[str, list[At]] = defaultdict(list)  # nsqd -> the ends of its disk faults
        # nsqd -> changes of its wall clock: (at, "jump" | "skew" | "heal", seconds or rate)
        self.clock_changes: dict[str, list[tuple[At, str, float]]] = defaultdict(list)
        self.end: At = (0.0, 0)
        self._refused_answers: dict[tuple[str, str, str, str, int], set[int]] = {}  # was_refused's matching
        self.load_end: At | None = None  # a simulated run's quiesce: every fault ends, every node restarts
        self._read(history)
        self.lives: dict[str, tuple[list[At], list[Life]]] = {nsqd: self._lives(nsqd) for nsqd in {*self.faults, *self.starts}}

    def _read(self, history: Iterable[Mapping[str, Any] | Event]) -> None:
        id_key: dict[str, str] = {}
        at: At = (0.0, 0)
        for n, raw in enumerate(history):
            e = raw.to_dict() if isinstance(raw, Event) else raw
            kind = e["type"]
            at = (e["t"], n)
            if kind == "load_end":
                self.load_end = at
            if kind == "deliver":
                mid = e.get("id", "")
                key = e.get("key") or mid
                id_key[mid] = key
                where = (e["nsqd"], e["channel"], key)
                self.deliveries[where].append(Delivery(at, e["consumer"], e.get("attempts", 0), mid, e.get("published")))
                if e.get("topic"):
                    self.delivery_topic[where] = e["topic"]
            elif kind in _ANSWERS:
                mid = e.get("id", "")
                key = e.get("key") or id_key.get(mid, mid)
                where = (e["nsqd"], e.get("channel", ""), key)
                if not mid:
                    ds = self.deliveries.get(where)
                    mid = ds[-1].id if ds else ""
                self.answers[where].append(Answer(at, kind, e["consumer"], e.get("delay_ms", 0) or 0, mid))
            elif kind == "publish":
                self.pubs[e["key"]] = Publish(e["key"], e["nsqd"], e["topic"], at, e.get("defer_ms", 0) or 0)
                self.published += 1
            elif kind == "publish_ok":
                p = self.pubs.get(e["key"])
                if p is None:
                    self.phantom_acks.append(e["key"])
                else:
                    p.acked = at
                    self.acknowledged += 1
            elif kind == "publish_failed":
                self.failed += 1
            elif kind == "error":
                parts = str(e.get("error", "")).split()
                if len(parts) >= 3 and parts[0] in _REFUSALS:
                    self.refused[(e.get("consumer", ""), e.get("nsqd", ""), parts[2], _REFUSALS[parts[0]])].append(at)
            else:
                self._read_rare(kind, e, at)
        self.end = at

    def _read_rare(self, kind: str, e: Mapping[str, Any], at: At) -> None:
        """Events that come a few times a run (the ones above come per message)."""
        nsqd = e.get("nsqd") or e.get("host", "")
        if kind in ("subscribed", "channel_created"):
            self.channel_log[(nsqd, e["topic"], e["channel"])].append((at, "created"))
            if kind == "subscribed":
                self.subscribed[(e["consumer"], nsqd)].append(at)
            if int(e.get("sample_rate", 0) or 0) > 0:
                self.sampled.add((nsqd, e["topic"], e["channel"]))
        elif kind in ("channel_deleted", "channel_emptied"):
            self.channel_log[(nsqd, e["topic"], e["channel"])].append((at, kind.removeprefix("channel_")))
        elif kind == "disconnected":
            self.disconnects[(e.get("consumer") or e.get("who", ""), nsqd)].append(at)
        elif kind == "consumer_crash":
            self.crashed[e["consumer"]].append(at)
        elif kind in ("crash", "kill", "stop", "restart"):
            what = "stop" if kind in ("stop", "restart") else "kill" if kind == "kill" else e.get("kind") or "power"
            self.faults[nsqd].append((at, what))
            if "held" in e:
                self.held[(nsqd, at)] = e["held"]
            if kind == "restart":
                self.starts[nsqd].append(at)
        elif kind == "start":
            self.starts[nsqd].append(at)
        elif kind == "heal":
            for a in e.get("side_a", ()):
                for b in e.get("side_b", ()):
                    self.heals[(a, b)].append(at)
                    self.heals[(b, a)].append(at)
        elif kind == "fsync":
            for key in e.get("keys", ()):
                self.fsynced.setdefault((nsqd, e.get("topic", ""), e.get("channel", ""), str(key)), at)
        elif kind == "disk_heal":
            self.disk_heals[nsqd].append(at)
        elif kind == "disk_fault":
            self.disk_faults[nsqd].append(at)
            if e.get("fault") == "bitflip" and e.get("where", ()) is not None:
                self.flips[nsqd].append(at)
        elif kind == "channel_options":
            self.max_attempts[(nsqd, e["topic"], e["channel"])] = (int(e.get("max_attempts", 0)), str(e.get("dead_letter_topic", "")))
        elif kind == "topic_options":
            self.ttl[(nsqd, e["topic"])] = float(e.get("ttl", 0))
        elif kind == "dead_letter":
            letter = DeadLetter(at, int(e.get("attempts", 0)), str(e.get("reason", "")))
            self.dead_letters[(nsqd, e["channel"], e["key"])].append(letter)
        elif kind in ("clock_jump", "clock_skew", "clock_heal"):
            value = float(e.get("rate" if kind == "clock_skew" else "by", 0.0) or 0.0)
            self.clock_changes[nsqd].append((at, kind.removeprefix("clock_"), value))
        elif kind == "exception":
            self.exceptions.append(str(e.get("error", "")))
        elif kind == "final":
            self.final[(nsqd, e["topic"], e["channel"])] = int(e.get("depth", 0)) + int(e.get("in_flight", 0)) + int(e.get("deferred", 0))
        elif kind == "node":
            self.settings[nsqd] = NodeSettings.from_mapping(e)
        elif kind == "run":
            for name, raw_node in dict(e.get("nodes", {})).items():
                self.settings.setdefault(name, NodeSettings.from_mapping(raw_node))

    def _lives(self, nsqd: str) -> tuple[list[At], list[Life]]:
        marks = [Life(at, what != "stop", False) for at, what in self.faults.get(nsqd, [])]
        ends = [m.at for m in marks]
        for s in self.starts.get(nsqd, []):
            i = bisect.bisect_right(ends, s)
            if i:  # a start with no stop before it begins no new life
                marks.append(Life(s, marks[i - 1].crash, True))
        marks.sort(key=lambda m: m.at)
        return [m.at for m in marks], marks

    def node(self, nsqd: str) -> NodeSettings:
        return self.settings.get(nsqd, NodeSettings())

    # -- look-ups -----------------------------------------------------------------------

    def wall_gain(self, nsqd: str, lo: float, hi: float) -> float:
        """How far the node's wall clock may have moved ahead of true time from one moment
        in [lo, hi] to a later one: the most a due time kept on that clock can come early."""
        changes = self.clock_changes.get(nsqd)
        if not changes:
            return 0.0
        off = rate = since = 0.0
        points: list[float] = []  # the offset at lo, at each change in [lo, hi] (before and after), at hi
        added_lo = False
        for (t, _), what, value in changes:
            if not added_lo and t >= lo:
                points.append(off + rate * (lo - since))
                added_lo = True
            if t > hi:
                break
            off += rate * (t - since)
            since = t
            if t >= lo:
                points.append(off)
            if what == "jump":
                off += value
            elif what == "skew":
                rate = value
            else:
                off = rate = 0.0
            if t >= lo:
                points.append(off)
        if not added_lo:
            points.append(off + rate * (lo - since))
        points.append(off + rate * (hi - since))
        best, low = 0.0, float("inf")
        for o in points:
            low = min(low, o)
            best = max(best, o - low)
        return best

    def lives_between(self, nsqd: str, prev: Delivery, cur: Delivery) -> list[Life]:
        """The ends and starts of the node's lives between the ones that sent ``prev`` and ``cur``.

        Those between the two receipts; and those between the SUBs that made the
        connections they came on, since a connection belongs to the life that
        answered its SUB and what that life sent can arrive after its end, even
        after the next start (a black-holed link delivers what it held when it heals)."""
        found = self.lives.get(nsqd)
        if found is None:
            return []
        ats, marks = found
        lo = prev.at
        made = [self.connected(d.consumer, nsqd, d.at) for d in (prev, cur)]
        if made[0] is not None and made[1] is not None and made[0] != made[1]:
            first, last = min(made[0], made[1]), max(made[0], made[1])
            if between(ats, first, last):
                lo = first
        return marks[bisect.bisect_left(ats, lo) : bisect.bisect_right(ats, cur.at)]

    def connected(self, consumer: str, nsqd: str, at: At) -> At | None:
        """When the consumer's connection to ``nsqd`` that was up at ``at`` subscribed."""
        subs = self.subscribed.get((consumer, nsqd), [])
        i = bisect.bisect_right(subs, at)
        return subs[i - 1] if i else None

    def disk_fault_in_force(self, nsqd: str, at: At) -> bool:
        """Whether a disk fault of ``nsqd`` began at or before ``at`` and had not ended by then."""
        began = [f for f in self.disk_faults.get(nsqd, []) if f <= at]
        if not began:
            return False
        ended = [e for e in self.disk_heals.get(nsqd, []) if began[-1] <= e <= at]
        return not ended

    def gone(self, consumer: str, nsqd: str, lo: At, hi: At) -> bool:
        """Whether the consumer's connection to ``nsqd`` ended in [lo, hi]."""
        return between(self.crashed.get(consumer, []), lo, hi) or between(self.disconnects.get((consumer, nsqd), []), lo, hi)

    def was_refused(self, nsqd: str, answers: list[Answer], a: Answer, d: Delivery) -> bool:
        """Whether nsqd refused ``a`` (E_FIN_FAILED ...).

        Errors come back in the order of the answers they refuse (one connection), and
        an error reaches the consumer before anything nsqd sent after it, so each error
        belongs to the latest answer of its kind and id sent before it that no later
        error took: matched from the last error back.  (The error often arrives after
        the consumer's next answer: two deliveries of one message to one consumer,
        answered together after a stall or a cut.)"""
        mid = a.id or d.id
        group = (a.consumer, nsqd, mid, a.kind, id(answers))
        refused = self._refused_answers.get(group)
        if refused is None:
            sent = [b for b in answers if b.consumer == a.consumer and b.kind == a.kind and (b.id or d.id) == mid]
            refused = set()
            j = len(sent) - 1
            for e in reversed(self.refused.get((a.consumer, nsqd, mid, a.kind), [])):
                while j >= 0 and sent[j].at > e:
                    j -= 1
                if j < 0:
                    break
                refused.add(id(sent[j]))
                j -= 1
            self._refused_answers[group] = refused
        return id(a) in refused
