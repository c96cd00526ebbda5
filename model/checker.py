"""Judging a history: every message on every channel is delivered, duplicated (and why),
lost under a rule that allows it, still pending, or a violation.

``check(history) -> Verdict``.  The history is a list of dicts or ``Event``s
(``history.py`` documents the format).  The rules are the specification's
guarantees (docs/guarantees.md), seen from the clients:

* **Nothing made up.**  A delivered message was published, to that nsqd and
  topic (``phantom``, ``misrouted``).
* **At least once.**  An acknowledged message is delivered to every channel
  of its topic that existed on its nsqd when it was sent (or, if the topic
  had none, to the first one created after), unless a rule allows its loss:

  ====================  ===============================================================
  channel_deleted       the channel was deleted after the publish
  channel_emptied       the channel was emptied after the publish
  ephemeral             an ephemeral channel (overflow past --mem-queue-size, or gone)
  sampled_out           a consumer on the channel set a sample_rate
  memory_at_crash       default mode: the node crashed after the publish (memory queue,
                        in-flight and deferred messages die with the process; so does a
                        message read from disk once the read is synced, nsqio/nsq#1142)
  unsynced_at_power_    disk-only mode: a power loss after the publish, and no ``fsync``
  loss                  event shows its record was fsynced
  no_disk               the node keeps messages only in memory: any stop loses them
  disk_corruption       a bit flipped on the node's disk after the publish
  ====================  ===============================================================

  With --durable-publish no crash may lose an acknowledged message; in
  disk-only mode a process kill may not.  A message still queued at the end
  (the ``final`` events' depth, in-flight and deferred counts) is ``pending``.
* **Duplicates have a cause**: ``requeue`` (a REQ), ``timeout`` (no answer in
  time, or a FIN/REQ nsqd refused as too late), ``consumer_gone`` (its
  consumer crashed or disconnected holding it, or after a FIN that may not
  have arrived), ``crash_redelivery`` (a crash between: records read again,
  FINs undone), ``restart_redelivery`` (a clean restart between, disk modes:
  held reads read again).  A redelivery after a FIN nsqd accepted, with none
  of these, is ``redelivered_after_fin``; after a default-mode clean restart
  it is ``fin_undone_by_clean_restart``.
* **Attempts grow.**  Each delivery of a message to a channel has more
  attempts than the one before, unless the node restarted in between (a record
  written earlier was read again); a default-mode clean restart keeps them.
* **Deferred is not early.**  A DPUB is not delivered before its delay has
  passed since it was sent, even across crashes; a REQ's delay is kept
  unless the node restarted in between.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from model.history import Event, NodeSettings, events

__all__ = ["Outcome", "Verdict", "check"]

_EPS = 1e-9


@dataclass
class Outcome:
    """What became of one message on one channel."""

    nsqd: str
    topic: str
    channel: str
    key: str
    status: str  # delivered | duplicated | lost_allowed | pending | violation
    deliveries: int = 0
    causes: list[str] = field(default_factory=list)  # why each delivery after the first happened
    rule: str = ""  # lost_allowed: the rule that allowed it; violation: what broke
    expected: bool = True  # the channel had to get it (False: delivered, but not owed)


@dataclass
class Verdict:
    outcomes: list[Outcome] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    published: int = 0
    acknowledged: int = 0
    failed: int = 0

    @property
    def ok(self) -> bool:
        return not self.violations

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    def duplicates_by_cause(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.outcomes:
            for cause in o.causes:
                out[cause] = out.get(cause, 0) + 1
        return out

    def losses_by_rule(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.outcomes:
            if o.status == "lost_allowed":
                out[o.rule] = out.get(o.rule, 0) + 1
        return out

    def outcome(self, channel: str, key: str, nsqd: str | None = None) -> Outcome:
        """The outcome of ``key`` on ``channel`` (KeyError if there is none)."""
        for o in self.outcomes:
            if o.channel == channel and o.key == key and (nsqd is None or o.nsqd == nsqd):
                return o
        raise KeyError((channel, key))


# A point in the history: its time, and its position among events of equal time.
At = tuple[float, int]


@dataclass
class _Pub:
    nsqd: str
    topic: str
    at: At
    defer_ms: int
    acked: At | None = None


@dataclass
class _Delivery:
    at: At
    consumer: str
    attempts: int
    id: str


@dataclass
class _Act:
    at: At
    kind: str  # fin | req | touch
    consumer: str
    delay_ms: int
    id: str


def check(history: Iterable[Mapping[str, Any] | Event]) -> Verdict:
    return _Checker(events(history)).run()


def _between(points: list[At], lo: At, hi: At) -> bool:
    """Whether some point of the sorted ``points`` lies in [lo, hi]."""
    i = bisect.bisect_left(points, lo)
    return i < len(points) and points[i] <= hi


class _Checker:
    def __init__(self, evs: list[Event]) -> None:
        self.evs = evs
        self.v = Verdict()
        self.settings: dict[str, NodeSettings] = {}
        self.pubs: dict[str, _Pub] = {}
        self.channel_log: dict[tuple[str, str, str], list[tuple[At, str]]] = defaultdict(list)
        self.sampled: set[tuple[str, str, str]] = set()
        self.deliveries: dict[tuple[str, str, str], list[_Delivery]] = defaultdict(list)
        self.delivery_topic: dict[tuple[str, str, str], str] = {}
        self.acts: dict[tuple[str, str, str], list[_Act]] = defaultdict(list)
        self.refused: dict[tuple[str, str, str], list[At]] = defaultdict(list)  # (consumer, id, FIN|REQ)
        self.faults: dict[str, list[tuple[At, str, str]]] = defaultdict(list)  # nsqd -> (at, crash|stop, kind)
        self.gone: dict[str, list[At]] = defaultdict(list)  # consumer -> when it crashed or disconnected
        self.fsynced: dict[tuple[str, str, str, str], At] = {}
        self.pending_left: dict[tuple[str, str, str], int] = {}
        self.act_points: dict[str, list[At]] = defaultdict(list)  # consumer -> its FIN/REQ/TOUCH
        self.flips: dict[str, list[At]] = defaultdict(list)  # nsqd -> bits flipped on its disk
        self.end: At = (0.0, 0)

    # -- reading ----------------------------------------------------------------------

    def run(self) -> Verdict:
        id_key: dict[str, str] = {}
        for n, e in enumerate(self.evs):
            at = (e.t, n)
            self.end = max(self.end, at)
            kind = e.type
            if kind == "node":
                self.settings[e.nsqd] = NodeSettings.from_mapping(e.extra)
            elif kind == "run":
                for name, raw in dict(e.extra.get("nodes", {})).items():
                    self.settings.setdefault(name, NodeSettings.from_mapping(raw))
            elif kind == "publish":
                self.pubs[e.key] = _Pub(e.nsqd, e.topic, at, e.defer_ms)
                self.v.published += 1
            elif kind == "publish_ok":
                p = self.pubs.get(e.key)
                if p is None:
                    self.v.violations.append(f"phantom_ack: {e.key} acknowledged, never sent")
                else:
                    p.acked = at
                    self.v.acknowledged += 1
            elif kind == "publish_failed":
                self.v.failed += 1
            elif kind in ("subscribed", "channel_created"):
                self.channel_log[(e.nsqd, e.topic, e.channel)].append((at, "created"))
                if int(e.extra.get("sample_rate", 0) or 0) > 0:
                    self.sampled.add((e.nsqd, e.topic, e.channel))
            elif kind in ("channel_deleted", "channel_emptied"):
                self.channel_log[(e.nsqd, e.topic, e.channel)].append((at, kind.split("_")[1]))
            elif kind == "deliver":
                key = e.key or e.id
                id_key[e.id] = key
                self.deliveries[(e.nsqd, e.channel, key)].append(_Delivery(at, e.consumer, e.attempts, e.id))
                if e.topic:
                    self.delivery_topic[(e.nsqd, e.channel, key)] = e.topic
            elif kind in ("fin", "req", "touch"):
                key = e.key or id_key.get(e.id, e.id)
                self.acts[(e.nsqd, e.channel, key)].append(_Act(at, kind, e.consumer, e.delay_ms, e.id or self.last_id(e.nsqd, e.channel, key)))
                self.act_points[e.consumer].append(at)
            elif kind == "error":
                parts = e.error.split()
                if len(parts) >= 3 and parts[0] in ("E_FIN_FAILED", "E_REQ_FAILED"):
                    self.refused[(e.consumer, parts[2], parts[1])].append(at)
            elif kind in ("consumer_crash", "disconnected") and e.consumer:
                self.gone[e.consumer].append(at)
            elif kind == "crash":
                self.faults[e.nsqd].append((at, "crash", e.kind or "power"))
            elif kind in ("stop", "restart"):
                self.faults[e.nsqd].append((at, "stop", ""))
            elif kind == "fsync":
                for key in e.extra.get("keys", ()):
                    self.fsynced.setdefault((e.nsqd, e.topic, e.channel, str(key)), at)
            elif kind == "disk_fault" and e.extra.get("fault") == "bitflip":
                self.flips[e.nsqd].append(at)
            elif kind == "exception":
                self.v.violations.append(f"exception: {e.error}")
            elif kind == "final":
                left = int(e.extra.get("depth", 0)) + int(e.extra.get("in_flight", 0)) + int(e.extra.get("deferred", 0))
                self.pending_left[(e.nsqd, e.topic, e.channel)] = left
        self.judge()
        return self.v

    def last_id(self, nsqd: str, channel: str, key: str) -> str:
        ds = self.deliveries.get((nsqd, channel, key))
        return ds[-1].id if ds else ""

    def node(self, nsqd: str) -> NodeSettings:
        return self.settings.get(nsqd, NodeSettings())

    # -- channels ---------------------------------------------------------------------

    def alive(self, nsqd: str, topic: str, channel: str, at: At) -> bool:
        """Whether the channel existed at ``at``."""
        state = False
        ephemeral = channel.endswith("#ephemeral") or not self.node(nsqd).persistent
        stops = [f[0] for f in self.faults.get(nsqd, [])] if ephemeral else []
        log = sorted(self.channel_log.get((nsqd, topic, channel), []) + [(s, "gone") for s in stops])
        for when, what in log:
            if when > at:
                break
            if what == "created":
                state = True
            elif what in ("deleted", "gone"):
                state = False
        return state

    def owed(self, p: _Pub) -> list[str]:
        """The channels that must get an acknowledged publish ``p``."""
        names = sorted({c for (n, tp, c) in self.channel_log if n == p.nsqd and tp == p.topic})
        now = [c for c in names if self.alive(p.nsqd, p.topic, c, p.at)]
        if now:
            return now
        later = [
            (min(w for w, what in self.channel_log[(p.nsqd, p.topic, c)] if what == "created" and w >= p.at), c)
            for c in names
            if any(what == "created" and w >= p.at for w, what in self.channel_log[(p.nsqd, p.topic, c)])
        ]
        return [min(later)[1]] if later else []

    def after(self, nsqd: str, topic: str, channel: str, what: str, at: At) -> bool:
        return any(w >= at and x == what for w, x in self.channel_log.get((nsqd, topic, channel), []))

    # -- judging ----------------------------------------------------------------------

    def judge(self) -> None:
        owed: dict[tuple[str, str, str], _Pub] = {}
        for key, p in self.pubs.items():
            if p.acked is None:
                continue
            for c in self.owed(p):
                owed[(p.nsqd, c, key)] = p
        seen: set[tuple[str, str, str]] = set()
        for (nsqd, channel, key), ds in self.deliveries.items():
            seen.add((nsqd, channel, key))
            self.judge_deliveries(nsqd, channel, key, ds, (nsqd, channel, key) in owed)
        for (nsqd, channel, key), p in sorted(owed.items()):
            if (nsqd, channel, key) not in seen:
                self.judge_missing(p, channel, key)

    def outcome(self, o: Outcome, violation: str = "") -> None:
        if violation:
            o.status = "violation"
            o.rule = o.rule or violation.split(":")[0]
            self.v.violations.append(violation)
        self.v.outcomes.append(o)

    def judge_deliveries(self, nsqd: str, channel: str, key: str, ds: list[_Delivery], expected: bool) -> None:
        p = self.pubs.get(key)
        topic = p.topic if p else self.delivery_topic.get((nsqd, channel, key), "")
        o = Outcome(nsqd, topic, channel, key, "delivered" if len(ds) == 1 else "duplicated", len(ds), expected=expected)
        if p is None:
            return self.outcome(o, f"phantom: {key} delivered on {nsqd}/{channel} but never published")
        if p.nsqd != nsqd:
            return self.outcome(o, f"misrouted: {key} published to {p.nsqd}, delivered from {nsqd}")
        sent, first = p.at[0], ds[0].at[0]
        if p.defer_ms and first + _EPS < sent + p.defer_ms / 1000:
            return self.outcome(o, f"early: {key} deferred {p.defer_ms}ms at {sent:.6f}, delivered at {first:.6f}")
        problem = ""
        for prev, cur in pairwise(ds):
            cause, problem = self.redelivery(nsqd, channel, key, prev, cur)
            o.causes.append(cause)
            if problem:
                break
        self.outcome(o, problem)

    def redelivery(self, nsqd: str, channel: str, key: str, prev: _Delivery, cur: _Delivery) -> tuple[str, str]:
        """(cause, violation or "") for the delivery ``cur`` after ``prev``."""
        what = f"{key} on {nsqd}/{channel}"
        mode = self.node(nsqd).mode
        restarts = [f for f in self.faults.get(nsqd, []) if prev.at <= f[0] <= cur.at]
        acts = [a for a in self.acts.get((nsqd, channel, key), []) if prev.at <= a.at <= cur.at and a.consumer == prev.consumer]
        answer = next((a for a in acts if a.kind in ("fin", "req")), None)
        if restarts:
            crashed = any(kind == "crash" for _, kind, _ in restarts)
            if crashed:
                return "crash_redelivery", ""  # records read again: FINs, REQs and attempts may be undone
            fin_before = answer is not None and answer.kind == "fin" and answer.at < restarts[0][0] and mode != "memory"
            if fin_before and answer is not None and not self.was_refused(answer, prev, "FIN"):
                return "restart_redelivery", f"fin_undone_by_clean_restart: {what} finished at {answer.at[0]:.6f}, delivered again"
            if cur.attempts <= prev.attempts:
                return "restart_redelivery", f"attempts: {what} attempts {prev.attempts} then {cur.attempts} across a clean restart"
            return "restart_redelivery", ""
        if cur.attempts <= prev.attempts:
            return "timeout", f"attempts: {what} attempts {prev.attempts} then {cur.attempts}"
        gone = _between(sorted(self.gone.get(prev.consumer, [])), prev.at, cur.at)
        if answer is None:
            return ("consumer_gone" if gone else "timeout"), ""
        if answer.kind == "req":
            if self.was_refused(answer, prev, "REQ"):
                return "timeout", ""  # too late: nsqd had already timed it out
            early = answer.delay_ms and cur.at[0] + _EPS < answer.at[0] + answer.delay_ms / 1000
            if early and not self.req_took_redelivery(nsqd, channel, key, cur):
                return "requeue", f"early: {what} requeued for {answer.delay_ms}ms at {answer.at[0]:.6f}, delivered at {cur.at[0]:.6f}"
            return "requeue", ""
        if self.was_refused(answer, prev, "FIN"):
            return "timeout", ""  # the FIN came after the timeout
        if _between(sorted(self.gone.get(prev.consumer, [])), answer.at, self.end):
            return "consumer_gone", ""  # the FIN may never have reached nsqd
        return "timeout", f"redelivered_after_fin: {what} FIN at {answer.at[0]:.6f} accepted, delivered again at {cur.at[0]:.6f}"

    def was_refused(self, act: _Act, d: _Delivery, command: str) -> bool:
        """Whether nsqd answered ``act`` with E_FIN_FAILED / E_REQ_FAILED (before the consumer's next act)."""
        points = self.act_points.get(act.consumer, [])
        i = bisect.bisect_right(points, act.at)
        until = points[i] if i < len(points) else self.end
        return _between(sorted(self.refused.get((act.consumer, act.id or d.id, command), [])), act.at, until)

    def req_took_redelivery(self, nsqd: str, channel: str, key: str, cur: _Delivery) -> bool:
        """A REQ that arrived after nsqd had timed the message out and sent it to the same
        consumer again applies to that redelivery: the consumer's answer to it then fails."""
        later = [a for a in self.acts.get((nsqd, channel, key), []) if a.at >= cur.at and a.consumer == cur.consumer]
        return bool(later) and (later[0].kind == "touch" or self.was_refused(later[0], cur, later[0].kind.upper()))

    def judge_missing(self, p: _Pub, channel: str, key: str) -> None:
        o = Outcome(p.nsqd, p.topic, channel, key, "lost_allowed")
        rule = self.loss_rule(p, channel, key)
        if rule:
            o.rule = rule
            return self.outcome(o)
        left = self.pending_left.get((p.nsqd, p.topic, channel), 0)
        if left > 0:
            self.pending_left[(p.nsqd, p.topic, channel)] = left - 1
            o.status = "pending"
            return self.outcome(o)
        acked = p.acked[0] if p.acked else 0.0
        self.outcome(o, f"lost: {key} acknowledged by {p.nsqd} at {acked:.6f}, never delivered to channel {channel}")

    def loss_rule(self, p: _Pub, channel: str, key: str) -> str:
        """The rule that allows ``key`` never to reach ``channel``, or ""."""
        if self.after(p.nsqd, p.topic, channel, "deleted", p.at):
            return "channel_deleted"
        if self.after(p.nsqd, p.topic, channel, "emptied", p.at):
            return "channel_emptied"
        if channel.endswith("#ephemeral"):
            return "ephemeral"
        if (p.nsqd, p.topic, channel) in self.sampled:
            return "sampled_out"
        if any(at >= p.at for at in self.flips.get(p.nsqd, [])):
            return "disk_corruption"
        node = self.node(p.nsqd)
        for at, what, kind in self.faults.get(p.nsqd, []):
            if at < p.at:
                continue
            if node.mode == "memory":
                return "no_disk"
            if what != "crash":
                continue  # a clean exit writes everything to disk
            if node.mode == "default":
                # Memory first: and even a record known to be fsynced may have been read
                # into memory (a deferred one) with the read position synced past it.
                return "memory_at_crash"
            if node.mode == "disk-only" and kind == "power" and node.sync_every != 1:
                known = [self.fsynced.get((p.nsqd, p.topic, c, key)) for c in (channel, "")]
                synced = any(k is not None and k <= at for k in known)
                if not synced:
                    return "unsynced_at_power_loss"
        return ""
