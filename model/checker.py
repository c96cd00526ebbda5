"""Judging a history: every message on every channel is delivered, duplicated (and why),
lost under a rule that allows it, still pending, or a violation.

``check(history) -> Verdict``.  The history is a list of dicts or ``Event``s
(``history.py`` documents the format).  The rules are the specification's
guarantees (docs/guarantees.md), seen from the clients:

* **Nothing made up.**  A delivered message was published, to that nsqd and
  topic (``phantom``, ``misrouted``); an OK answers a publish that was sent
  (``phantom_ack``).
* **At least once.**  An acknowledged message is delivered to every channel
  of its topic that existed on its nsqd when it was sent (or, if the topic
  had none, to the first one created after: whichever of them got it, since
  SUB answers close together may arrive in another order than nsqd made the
  channels).  A channel exists from its first SUB answer (or an operator's
  create) until it is deleted; nsqd keeps the list in its metadata file, so
  it outlives restarts and crashes, except an ``#ephemeral`` channel or any
  channel of a node without a data path, which end when the node stops.  A
  bit flipped in ``nsqd.dat`` excuses nothing: nsqd keeps a checksummed second
  copy and recovers the list from its disk queues, so a start that forgets a
  channel is a violation (it once was allowed, and hid a loss: reference
  cluster, seed 16).  The loss is allowed by these rules:

  ====================  ===============================================================
  channel_deleted       the channel was deleted after the publish
  channel_emptied       the channel was emptied after the publish
  ephemeral             an ephemeral channel (overflow past --mem-queue-size, or gone)
  sampled_out           a consumer on the channel set a sample_rate
  memory_at_crash       default mode: the node crashed or was killed after the publish
                        (memory queue, in-flight and deferred messages die with the
                        process; so does a message read from disk once the read is
                        synced, nsqio/nsq#1142)
  unsynced_at_power_    disk-only mode: a power loss after the publish, and no ``fsync``
  loss                  event shows its record was fsynced
  no_disk               the node keeps messages only in memory: any stop loses them
  disk_corruption       a bit flipped on the node's disk after the publish
  expired               the topic has a TTL (beyond nsqd): an undelivered message may
                        have outlived it
  ====================  ===============================================================

  A stop counts from the publish being *sent*: nsqd may have taken the message
  and died before its OK arrived.  With --durable-publish no crash may lose an
  acknowledged message; in disk-only mode a process kill may not; a clean
  restart never may.  A message still queued at the end (the ``final``
  events' depth, in-flight and deferred counts) is ``pending``, and so is
  every undelivered one when an ``exception`` cut the run short.
* **Duplicates have a cause**, found from the delivery before:

  ====================  ===============================================================
  requeue               its consumer sent REQ, and nsqd took it
  timeout               no answer in time (none, a ``hold``, or a FIN/REQ nsqd refused as
                        too late); or an answer meant for the delivery before that nsqd
                        applied to this one, sent to the same consumer (FIN and REQ name
                        an id, not a delivery; the consumer's answer to this one then
                        fails); or a delivery with fewer attempts to a consumer whose
                        link to nsqd was cut and has healed since the publish: it was
                        sent first, held at the cut while nsqd timed it out and sent the
                        later one (seen in reverse); or a FIN sent before a cut between
                        consumer and nsqd healed: held there, it arrived late
  consumer_gone         its consumer crashed, or its connection to that nsqd ended, while
                        it held the message; or after its FIN, which may then never have
                        arrived (a cut holds it until the connection gives up)
  crash_redelivery      the node crashed or was killed in between: records read again,
                        FINs, REQ delays and attempts may be undone
  restart_redelivery    the node restarted cleanly in between: what was held is written
                        again and read again
  ====================  ===============================================================

  The node is taken to have restarted between two deliveries when a stop,
  crash or start lies between their receipts, or between the SUBs of the
  connections they came on: a connection belongs to the life that answered
  its SUB, and what that life sent can arrive after it died, even after the
  next start (a black-holed link delivers what it held when it heals).  A
  redelivery after a FIN nsqd accepted (no error came back, the connection
  outlived it), with none of these, is ``redelivered_after_fin``.  Across a
  clean restart it is ``fin_undone_by_clean_restart`` if the FIN reached
  nsqd before the stop: the stop's ``held`` list says so (the message was
  no longer held); without one, a FIN counts as arrived unless its
  connection ended after it (a stop ends every connection, and a FIN still
  on the wire is lost with it).  A clean stop made while a disk fault was in
  force on the node excuses both (and attempts not growing): it could not
  make its read positions durable, so the next life reads older records again.
* **Attempts grow.**  Each delivery of a message to a channel has more
  attempts than the one before, unless the node crashed in between (an older
  record was read again) or the delivery was held at a cut (above); a clean
  restart keeps them.
* **Deferred is not early.**  A DPUB is not delivered before its delay has
  passed since it was sent, even across crashes; a REQ's delay is kept,
  across a clean restart too (if the REQ arrived, as for a FIN: the stop
  held the message as deferred), unless a crash undid it.  Within one life
  of the node the delay runs on its monotonic clock, whatever its wall clock
  does.  Across a restart the only clock a due time can be kept on is the
  wall clock (nothing else survives a reboot; Go's nsqd keeps no due time at
  all and delivers a deferred message as soon as it starts again): if that
  clock gained on true time between the send and the delivery (``clock_jump``,
  ``clock_skew``), a message whose life ended in between may come early by
  at most what it gained (``Timeline.wall_gain``).
* **Beyond nsqd: dead letters.**  On a channel with server-side max attempts
  N (``channel_options``) no delivery has more than N attempts
  (``over_attempts``, excused only by a disk fault on the node, after which a
  refused envelope requeues the message); a ``dead_letter`` names a message
  message published to that nsqd (``dead_letter_phantom``; its deliveries
  may all have been lost on the way: it then counts as delivered) after N attempts
  (``dead_letter_early``); and a message whose last delivery had N attempts
  and was not finished (REQ, no answer, a refused FIN) reaches the
  dead-letter topic's reader (``dead_letter_lost``) unless it is still
  queued there at the end, or a crash of a default-mode node, a disk fault
  or a bit flip came after that delivery.
* **Beyond nsqd: TTL.**  On a topic with a TTL (``topic_options``) no
  delivery arrives later than ``_TTL_SLACK`` after the message's timestamp
  plus the TTL (``late``), unless a cut between consumer and nsqd healed in
  between (it may have held the delivery).
* **Every node comes back.**  In a simulated run (one with ``load_end``,
  after which every fault ends), an nsqd that ended and never started again
  is ``node_down``: what its disk holds would otherwise pass for a crash's loss.
* **Timeouts fire.**  In a simulated run whose nodes say how long a message
  may stay in flight (``timeout_bound``), a delivery before ``load_end`` that
  its consumer never answered (FIN, REQ or TOUCH) must be followed by another
  unless its node ended since it was sent (since its connection's SUB), or
  its channel was deleted or emptied since; if the
  run went on for twice the bound after it and none came, nsqd never timed it
  out: ``stuck``.  Without this rule such a message is merely ``pending``.
* **Nothing escapes.**  An ``exception`` event is a violation.

Each kind of violation is listed ``_MAX_LISTED`` times and then only counted
(``Verdict.violation_counts``): a broken run can have thousands.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from model.history import Answer, At, Delivery, Event, Life, Publish, Timeline, between

__all__ = ["Outcome", "Verdict", "check"]

_EPS = 1e-9
_MAX_LISTED = 20
_TTL_SLACK = 1.0  # seconds a delivery may spend in the network (latency and queueing; cuts aside)


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
    violations: list[str] = field(default_factory=list)  # each kind listed up to _MAX_LISTED times
    published: int = 0
    acknowledged: int = 0
    failed: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # violations by kind, all of them

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def expected(self) -> int:
        """(message, channel) pairs that had to be delivered."""
        return sum(1 for o in self.outcomes if o.expected)

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

    def violation_counts(self) -> dict[str, int]:
        return dict(self.counts)

    def outcome(self, channel: str, key: str, nsqd: str | None = None) -> Outcome:
        """The outcome of ``key`` on ``channel`` (KeyError if there is none)."""
        for o in self.outcomes:
            if o.channel == channel and o.key == key and (nsqd is None or o.nsqd == nsqd):
                return o
        raise KeyError((channel, key))

    def violate(self, text: str) -> None:
        """Record the violation ``kind: detail``."""
        kind = text.split(":", 1)[0]
        n = self.counts.get(kind, 0) + 1
        self.counts[kind] = n
        if n <= _MAX_LISTED:
            self.violations.append(text)
        elif n == _MAX_LISTED + 1:
            self.violations.append(f"{kind}: ... (more not listed)")


def check(history: Iterable[Mapping[str, Any] | Event]) -> Verdict:
    return _Judge(Timeline(history)).run()


@dataclass(slots=True)
class _Story:
    """One message on one channel, as its redeliveries are judged."""

    nsqd: str
    channel: str  # "<topic>/<channel>", as a stop's ``held`` names it
    what: str  # how violations name it
    sent: At
    answers: list[Answer]
    deliveries: list[Delivery] = field(default_factory=list)


def _early(req: Answer, d: Delivery) -> bool:
    """Whether ``d`` came before the delay of the REQ ``req`` had passed."""
    return bool(req.delay_ms) and d.at[0] + _EPS < req.at[0] + req.delay_ms / 1000


def _next_answer(answers: list[Answer], d: Delivery) -> Answer | None:
    """The consumer's first answer about the message since it got ``d``."""
    return next((a for a in answers if a.at >= d.at and a.consumer == d.consumer), None)


class _Judge:
    def __init__(self, h: Timeline) -> None:
        self.h = h
        self.v = Verdict(published=h.published, acknowledged=h.acknowledged, failed=h.failed)
        self.channels = self.existence()

    def run(self) -> Verdict:
        for key in self.h.phantom_acks:
            self.v.violate(f"phantom_ack: {key} acknowledged, never sent")
        for error in self.h.exceptions:
            self.v.violate(f"exception: {error}")
        if self.h.load_end is not None:
            # After the load every fault ends and every node is up again: one still down
            # would hide what its disk holds (a torn write's crash once never restarted).
            for nsqd, ends in sorted(self.h.faults.items()):
                last_start = max(self.h.starts.get(nsqd, []), default=None)
                if last_start is None or ends[-1][0] > last_start:
                    self.v.violate(f"node_down: {nsqd} ended at {ends[-1][0][0]:.6f} and never started again")
            self.stuck(self.h.load_end)
        self.judge()
        self.judge_dead_letters()
        return self.v

    def stuck(self, load_end: At) -> None:
        """Unanswered deliveries that nsqd never timed out (see "Timeouts fire")."""
        h = self.h
        for (nsqd, channel, key), ds in h.deliveries.items():
            bound = h.node(nsqd).timeout_bound
            last = ds[-1]
            if bound <= 0 or last.at >= load_end or last.at[0] + 2 * bound >= h.end[0] or channel.endswith("#ephemeral"):
                continue
            if any(a.at >= last.at and a.consumer == last.consumer and a.kind != "hold" for a in h.answers.get((nsqd, channel, key), ())):
                continue
            if any(d.attempts >= last.attempts for d in ds[:-1]):
                continue  # sent before a later attempt, held at a cut, seen in reverse: nsqd is done with it
            answers = h.answers.get((nsqd, channel, key), [])
            first = self.first_on_connection(nsqd, ds)
            if any(a.at >= first and a.consumer == last.consumer and a.kind == "fin" and not h.was_refused(nsqd, answers, a, last) for a in answers):
                # An accepted FIN from this connection ended the message: it was read after
                # this delivery was sent (held at a cut, reference-beyond seed 18) and finished it.
                continue
            # The life that sent it is the one that answered its connection's SUB: a
            # delivery held at a cut can arrive after that life ended.
            subs = h.subscribed.get((last.consumer, nsqd), [])
            i = bisect.bisect_right(subs, last.at)
            sent_since = subs[i - 1] if i else (0.0, 0)
            if any(at >= sent_since for at, _ in h.faults.get(nsqd, ())):
                continue
            topic = h.delivery_topic.get((nsqd, channel, key), "")
            if self.after(nsqd, topic, channel, "deleted", last.at) or self.after(nsqd, topic, channel, "emptied", last.at):
                continue
            # beyond nsqd: its timeout dead-lettered it instead, or its TTL dropped it
            limit = h.max_attempts.get((nsqd, topic, channel), (0, ""))[0]
            if (limit and last.attempts >= limit) or h.dead_letters.get((nsqd, channel, key)) or h.ttl.get((nsqd, topic)):
                continue
            self.v.violate(f"stuck: {key} delivered by {nsqd} on {channel} at {last.at[0]:.6f}, never answered, never delivered again")

    # -- channels -----------------------------------------------------------------------

    def existence(self) -> dict[tuple[str, str], list[tuple[str, list[tuple[At, At]], list[At]]]]:
        """Per (nsqd, topic): each channel, the spans in which it existed, and when it was made."""
        h = self.h
        never: At = (float("inf"), 0)
        by_topic: dict[tuple[str, str], list[tuple[str, list[tuple[At, At]], list[At]]]] = defaultdict(list)
        for (nsqd, topic, channel), log in sorted(h.channel_log.items()):
            changes = list(log)
            if channel.endswith("#ephemeral") or not h.node(nsqd).persistent:
                changes += [(at, "deleted") for at, _ in h.faults.get(nsqd, [])]
            changes.sort()
            spans: list[tuple[At, At]] = []
            since: At | None = None
            for at, what in changes:
                if what == "created" and since is None:
                    since = at
                elif what == "deleted" and since is not None:
                    spans.append((since, at))
                    since = None
            if since is not None:
                spans.append((since, never))
            by_topic[(nsqd, topic)].append((channel, spans, [at for at, what in log if what == "created"]))
        return dict(by_topic)

    def owed(self, p: Publish) -> list[str]:
        """The channels that must get an acknowledged publish ``p``."""
        chans = self.channels.get((p.nsqd, p.topic), [])
        now = [c for c, spans, _ in chans if any(s <= p.at < e for s, e in spans)]
        if now:
            return now
        # A topic without channels keeps what it is sent for the first one.  Which one
        # nsqd made first the history does not tell exactly: a SUB's answer arrives some
        # time after the channel was made, so answers close together may have come in
        # either order.  The message must reach one of them: the first that it did.
        later = sorted((min(w for w in made if w >= p.at), c) for c, _, made in chans if made and made[-1] >= p.at)
        key = p.key
        got = next((c for _, c in later if (p.nsqd, c, key) in self.h.deliveries), None)
        return [got or later[0][1]] if later else []

    def after(self, nsqd: str, topic: str, channel: str, what: str, at: At) -> bool:
        return any(w >= at and x == what for w, x in self.h.channel_log.get((nsqd, topic, channel), []))

    # -- judging ----------------------------------------------------------------------

    def judge(self) -> None:
        owed: dict[tuple[str, str, str], Publish] = {}
        for key, p in self.h.pubs.items():
            if p.acked is not None:
                for c in self.owed(p):
                    owed[(p.nsqd, c, key)] = p
        for where, ds in self.h.deliveries.items():
            self.judge_deliveries(*where, ds, where in owed)
        missing = [(where, p) for where, p in owed.items() if where not in self.h.deliveries]
        # Dead-lettered with no delivery seen (both attempts lost on the way): it reached the channel.
        for where, p in [(w, p) for w, p in missing if w in self.h.dead_letters]:
            self.v.outcomes.append(Outcome(where[0], p.topic, where[1], where[2], "delivered", rule="dead_lettered"))
        missing = [(where, p) for where, p in missing if where not in self.h.dead_letters]
        unexplained: dict[tuple[str, str, str], list[Outcome]] = defaultdict(list)
        for (nsqd, channel, key), p in missing:
            o = Outcome(nsqd, p.topic, channel, key, "lost_allowed", rule=self.loss_rule(p, channel, key))
            if o.rule:
                self.v.outcomes.append(o)
            else:
                unexplained[(nsqd, p.topic, channel)].append(o)
        for where, os in unexplained.items():
            # A queue gives out its oldest first: what is still there is the newest.  A
            # run an exception stopped had no time to drain: nothing is known lost.
            left = len(os) if self.h.exceptions else self.h.final.get(where, 0)
            for i, o in enumerate(os):
                if i >= len(os) - left:
                    o.status = "pending"
                    self.v.outcomes.append(o)
                else:
                    p = self.h.pubs[o.key]
                    acked = p.acked[0] if p.acked else 0.0
                    self.outcome(o, f"lost: {o.key} acknowledged by {o.nsqd} at {acked:.6f}, never delivered to channel {o.channel}")

    def outcome(self, o: Outcome, violation: str = "") -> None:
        if violation:
            o.status = "violation"
            o.rule = o.rule or violation.split(":")[0]
            self.v.violate(violation)
        self.v.outcomes.append(o)

    def judge_deliveries(self, nsqd: str, channel: str, key: str, ds: list[Delivery], expected: bool) -> None:
        p = self.h.pubs.get(key)
        topic = p.topic if p else self.h.delivery_topic.get((nsqd, channel, key), "")
        o = Outcome(nsqd, topic, channel, key, "delivered" if len(ds) == 1 else "duplicated", len(ds), expected=expected)
        if p is None:
            return self.outcome(o, f"phantom: {key} delivered on {nsqd}/{channel} but never published")
        if p.nsqd != nsqd:
            return self.outcome(o, f"misrouted: {key} published to {p.nsqd}, delivered from {nsqd}")
        sent, first = p.at[0], ds[0].at[0]
        if p.defer_ms and first + _EPS < sent + p.defer_ms / 1000 and not self.wall_early(nsqd, p.at, ds[0].at, sent + p.defer_ms / 1000 - first):
            return self.outcome(o, f"early: {key} deferred {p.defer_ms}ms at {sent:.6f}, delivered at {first:.6f}")
        problem = self.beyond_nsqd(nsqd, topic, channel, key, ds)
        if problem:
            return self.outcome(o, problem)
        story = _Story(nsqd, f"{topic}/{channel}", f"{key} on {nsqd}/{channel}", p.at, self.h.answers.get((nsqd, channel, key), []), ds)
        for prev, cur in pairwise(ds):
            cause, problem = self.redelivery(story, prev, cur)
            o.causes.append(cause)
            if problem:
                break
        self.outcome(o, problem)

    def beyond_nsqd(self, nsqd: str, topic: str, channel: str, key: str, ds: list[Delivery]) -> str:
        """A violation of max attempts or TTL by these deliveries, or ""."""
        h = self.h
        limit = h.max_attempts.get((nsqd, topic, channel))
        if limit is not None and limit[0]:
            over = next((d for d in ds if d.attempts > limit[0]), None)
            if over is not None and not any(at <= over.at for at in h.disk_faults.get(nsqd, [])):
                return f"over_attempts: {key} on {nsqd}/{channel} delivered with attempts {over.attempts} at {over.at[0]:.6f}, max_attempts {limit[0]}"
        ttl = h.ttl.get((nsqd, topic))
        if ttl:
            for d in ds:
                if d.published is None:
                    continue
                expiry = d.published + ttl
                if d.at[0] > expiry + _TTL_SLACK and not between(h.heals.get((d.consumer, nsqd), []), (expiry, 0), d.at):
                    return f"late: {key} on {nsqd}/{channel} stamped {d.published:.6f}, ttl {ttl}s, delivered at {d.at[0]:.6f}"
        return ""

    def judge_dead_letters(self) -> None:
        h = self.h
        for (nsqd, channel, key), letters in sorted(h.dead_letters.items()):
            p = h.pubs.get(key)
            topic = p.topic if p else h.delivery_topic.get((nsqd, channel, key), "")
            limit = h.max_attempts.get((nsqd, topic, channel), (0, ""))[0]
            first = letters[0]
            # Not "never delivered": deliveries can be lost on the way (or arrive after the
            # dead letter they led to, held at a cut); the envelope names a published message.
            if p is None or p.nsqd != nsqd:
                self.v.violate(f"dead_letter_phantom: {key} of {nsqd}/{channel} dead-lettered at {first.at[0]:.6f}, never published there")
            elif any(letter.attempts < limit for letter in letters):
                self.v.violate(f"dead_letter_early: {key} of {nsqd}/{channel} dead-lettered after {min(x.attempts for x in letters)} attempts, max_attempts {limit}")
        for (nsqd, topic, channel), (limit, target) in sorted(h.max_attempts.items()):
            if not limit or not self.channels.get((nsqd, target)):
                continue  # no reader of the dead-letter topic on this node: nothing to see
            waiting = sum(left for (n, t, _), left in h.final.items() if n == nsqd and t == target)
            owed: list[tuple[At, str, Delivery]] = []
            for (n, c, key), ds in h.deliveries.items():
                if n != nsqd or c != channel or h.delivery_topic.get((n, c, key), topic) != topic or h.dead_letters.get((n, c, key)):
                    continue
                last = ds[-1]
                if last.attempts >= limit and self.dead_letter_owed(nsqd, channel, key, ds) and not self.dead_letter_excused(nsqd, last):
                    owed.append((last.at, key, last))
            # Still held at the end, by the channel (in flight, its timeout not reached) or
            # by the dead-letter topic's readers: the newest ones are pending, as for losses.
            owed.sort()
            left = h.final.get((nsqd, topic, channel), 0) + waiting
            for _, key, last in owed[: max(0, len(owed) - left)]:
                self.v.violate(
                    f"dead_letter_lost: {key} on {nsqd}/{channel} delivered with attempts {last.attempts} at {last.at[0]:.6f},"
                    f" not finished, never reached {target}"
                )

    def dead_letter_owed(self, nsqd: str, channel: str, key: str, ds: list[Delivery]) -> bool:
        """Whether nsqd took the last delivery back (REQ, timeout): a FIN that may have landed owes nothing.

        Any FIN its consumer sent since the delivery before, and nsqd did not refuse, may
        have finished it: nsqd applies a FIN to the message in flight to that consumer,
        whichever delivery the consumer meant (after a stall or a cut it answers every
        delivery it held at once, in any order).  And a FIN it accepted from that
        consumer's connection ends the message, so if one came after the connection's
        first delivery of it, a later delivery on that connection is the one it finished
        (reference-beyond seed 47: attempts 2 and 3, held at a cut, arrived together and
        the FIN meant for attempt 2 was read after attempt 3 was sent)."""
        last = ds[-1]
        since = min(ds[-2].at if len(ds) > 1 else last.at, self.first_on_connection(nsqd, ds))
        if between(self.h.heals.get((last.consumer, nsqd), []), last.at, self.h.end):
            since = ds[0].at  # a cut that healed since may have held any earlier FIN until now
        answers = self.h.answers.get((nsqd, channel, key), [])
        after = [a for a in answers if a.at >= since and a.consumer == last.consumer and a.kind == "fin"]
        return not any(not self.h.was_refused(nsqd, answers, a, last) for a in after)

    def first_on_connection(self, nsqd: str, ds: list[Delivery]) -> At:
        """The first delivery of the message on the connection the last one came on."""
        last = ds[-1]
        sub = self.h.connected(last.consumer, nsqd, last.at)
        return min(d.at for d in ds if d.consumer == last.consumer and (sub is None or d.at >= sub))

    def dead_letter_excused(self, nsqd: str, last: Delivery) -> bool:
        h = self.h
        # From when it may have been sent: its connection's SUB (a cut can hold a delivery
        # and hand it over after the life that sent it died).
        sub = h.connected(last.consumer, nsqd, last.at)
        since = min(sub, last.at) if sub is not None else last.at
        if any(at >= since for at in h.disk_faults.get(nsqd, [])):
            return True
        mode = h.node(nsqd).mode
        return mode in ("default", "memory") and any(at >= since and what != "stop" for at, what in h.faults.get(nsqd, []))

    def redelivery(self, m: _Story, prev: Delivery, cur: Delivery) -> tuple[str, str]:
        """(cause, violation or "") for the delivery ``cur`` after ``prev``."""
        nsqd, what, answers = m.nsqd, m.what, m.answers
        lives = self.h.lives_between(nsqd, prev, cur)
        if lives:
            return self.across_restart(m, prev, cur, lives)
        if (
            cur.attempts < prev.attempts
            and cur.consumer != prev.consumer
            and between(self.h.heals.get((cur.consumer, nsqd), []), m.sent, cur.at)
        ):
            return "timeout", ""  # sent before prev, held at the cut (see the module doc)
        if cur.attempts <= prev.attempts:
            return "timeout", f"attempts: {what} attempts {prev.attempts} then {cur.attempts}"
        answer = next((a for a in answers if prev.at <= a.at <= cur.at and a.consumer == prev.consumer and a.kind != "touch"), None)
        if answer is None:
            return ("consumer_gone" if self.h.gone(prev.consumer, nsqd, prev.at, cur.at) else "timeout"), ""
        if answer.kind == "hold":
            return "timeout", ""
        if answer.kind == "req":
            if self.h.was_refused(nsqd, answers, answer, prev):
                return "timeout", ""  # too late: nsqd had already timed it out
            if _early(answer, cur) and between(self.h.heals.get((prev.consumer, nsqd), []), answer.at, self.h.end):
                return "timeout", ""  # a cut held the REQ; nsqd timed the message out meanwhile
            if _early(answer, cur) and not self.req_took(nsqd, answers, prev, cur):
                return "requeue", f"early: {what} requeued for {answer.delay_ms}ms at {answer.at[0]:.6f}, delivered at {cur.at[0]:.6f}"
            return "requeue", ""
        if self.h.was_refused(nsqd, answers, answer, prev) or self.fin_took(nsqd, answers, prev, cur, m.deliveries):
            return "timeout", ""  # the FIN came after the timeout
        if self.h.gone(prev.consumer, nsqd, answer.at, self.h.end):
            return "consumer_gone", ""  # the FIN may never have reached nsqd
        if between(self.h.heals.get((prev.consumer, nsqd), []), answer.at, self.h.end):
            return "timeout", ""  # a cut held the FIN, which arrived after the timeout (or took a later delivery)
        return "timeout", f"redelivered_after_fin: {what} FIN at {answer.at[0]:.6f} accepted, delivered again at {cur.at[0]:.6f}"

    def across_restart(self, m: _Story, prev: Delivery, cur: Delivery, lives: list[Life]) -> tuple[str, str]:
        if any(life.crash for life in lives):
            return "crash_redelivery", ""  # records read again: FINs, REQs and attempts may be undone
        what = m.what
        stop = next((life.at for life in lives if not life.start), None)
        if stop is not None and self.h.disk_fault_in_force(m.nsqd, stop):
            # A clean exit whose disk was failing (fsyncs refused, or full) could not make its
            # queues' read positions durable: the next life reads again from an older one.
            return "restart_redelivery", ""
        if stop is not None:  # else prev came from the old life after it ended: it could not answer
            answer = next((a for a in m.answers if prev.at <= a.at <= stop and a.consumer == prev.consumer and a.kind in ("fin", "req")), None)
            if answer is not None and not self.h.was_refused(m.nsqd, m.answers, answer, prev):
                held = self.h.held.get((m.nsqd, stop))
                if held is not None:
                    # What nsqd held at the stop settles whether the answer had arrived.
                    state = held.get(m.channel, {}).get(answer.id or prev.id)
                    arrived = state is None if answer.kind == "fin" else state == "deferred"
                else:
                    # Without it, an answer the connection did not outlive may have been lost.
                    arrived = not self.h.gone(prev.consumer, m.nsqd, answer.at, self.h.end)
                if arrived and answer.kind == "fin":
                    return "restart_redelivery", f"fin_undone_by_clean_restart: {what} finished at {answer.at[0]:.6f}, delivered again"
                if arrived and _early(answer, cur) and not self.wall_early(m.nsqd, answer.at, cur.at, answer.at[0] + answer.delay_ms / 1000 - cur.at[0]):
                    return "restart_redelivery", (
                        f"early: {what} requeued for {answer.delay_ms}ms at {answer.at[0]:.6f}, "
                        f"delivered at {cur.at[0]:.6f} after a clean restart"
                    )
        if cur.attempts <= prev.attempts:
            return "restart_redelivery", f"attempts: {what} attempts {prev.attempts} then {cur.attempts} across a clean restart"
        return "restart_redelivery", ""

    def wall_early(self, nsqd: str, since: At, delivered: At, early_by: float) -> bool:
        """Whether a due time kept across a restart on a wall clock that gained explains
        a delivery ``early_by`` seconds early (see "Deferred is not early")."""
        found = self.h.lives.get(nsqd)
        if found is None or not between(found[0], since, delivered):
            return False
        return early_by <= self.h.wall_gain(nsqd, since[0], delivered[0]) + _EPS

    def fin_took(self, nsqd: str, answers: list[Answer], prev: Delivery, cur: Delivery, ds: list[Delivery]) -> bool:
        """Whether a FIN meant for ``prev`` finished ``cur``: nsqd had timed ``prev`` out and
        sent ``cur`` to the same consumer, and the consumer's answer to ``cur`` failed; or the
        consumer never answered ``cur`` and nsqd never sent it again (a timeout would have)."""
        if cur.consumer != prev.consumer:
            return False
        later = _next_answer(answers, cur)
        if later is not None and later.kind == "hold":
            return not any(d.at > cur.at for d in ds)
        return later is not None and self.h.was_refused(nsqd, answers, later, cur)

    def req_took(self, nsqd: str, answers: list[Answer], prev: Delivery, cur: Delivery) -> bool:
        """Whether a REQ meant for ``prev`` may have requeued ``cur`` instead (as ``fin_took``),
        which is so unless the consumer's answer to ``cur`` succeeded."""
        if cur.consumer != prev.consumer:
            return False  # nsqd takes an answer only from the consumer that holds the message
        later = _next_answer(answers, cur)
        return later is None or later.kind == "hold" or self.h.was_refused(nsqd, answers, later, cur)

    def loss_rule(self, p: Publish, channel: str, key: str) -> str:
        """The rule that allows ``key`` never to reach ``channel``, or ""."""
        if self.after(p.nsqd, p.topic, channel, "deleted", p.at):
            return "channel_deleted"
        if self.after(p.nsqd, p.topic, channel, "emptied", p.at):
            return "channel_emptied"
        if channel.endswith("#ephemeral"):
            return "ephemeral"
        if (p.nsqd, p.topic, channel) in self.h.sampled:
            return "sampled_out"
        if any(at >= p.at for at in self.h.flips.get(p.nsqd, [])):
            return "disk_corruption"
        if self.h.ttl.get((p.nsqd, p.topic)):
            return "expired"
        node = self.h.node(p.nsqd)
        for at, what in self.h.faults.get(p.nsqd, []):
            if at < p.at:
                continue
            if node.mode == "memory":
                return "no_disk"
            if what == "stop":
                continue  # a clean exit writes everything to disk
            if node.mode == "default":
                # Memory first: and even a record known to be fsynced may have been read
                # into memory (a deferred one) with the read position synced past it.
                return "memory_at_crash"
            if node.mode == "disk-only" and what == "power" and node.sync_every != 1:
                known = [self.h.fsynced.get((p.nsqd, p.topic, c, key)) for c in (channel, "")]
                if not any(k is not None and k <= at for k in known):
                    return "unsynced_at_power_loss"
        return ""
