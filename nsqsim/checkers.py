"""What must hold of every run: checks of a history, history in, verdict out.

The guarantees checked are NSQ's, as seen from its clients:

* **No phantom messages.** Every delivery is of a message some producer
  published, on the nsqd and topic it was published to.
* **At least once, unless the fault model allows the loss.** A message whose
  publish was acknowledged is delivered at least once to every channel of its
  topic that existed on its nsqd when it was published (a consumer's SUB had
  been answered, and the nsqd had not stopped since).  Allowed losses, counted
  by cause, as the ``run`` event says each nsqd's settings allow them (the
  README's durability table): ``crash`` (kill -9 and power loss after the
  publish, unless ``--durable-publish``), ``kill`` (kill -9 alone, while
  ``--mem-queue-size`` is above 0), ``restart`` (a clean exit, only for an
  nsqd without a file system), ``ephemeral`` (an ``#ephemeral`` channel),
  ``disk_corruption`` (a bit flipped on that nsqd's disk).  Messages
  still queued or in flight at the end (the ``final`` stats) are ``pending``,
  not lost.
* **Duplicates have a cause.** A second delivery to the same channel follows
  a REQ (``requeue``), a handler that never answered or answered too late
  (``timeout``), a consumer that went away holding it, or whose connection
  broke after it sent FIN (``consumer_gone``: the FIN may never have
  arrived), or an nsqd restart (``node_restart``).  A redelivery after a FIN
  that nsqd must have accepted (no ``E_FIN_FAILED`` came back, the connection
  stayed up to the end, the nsqd did not restart) is a violation.
* **Attempts only grow.** Each delivery of a message to a channel has a
  higher ``attempts`` than the one before, unless its nsqd restarted between,
  or the lower one went to another consumer whose link to the nsqd was
  black-holed and healed since the publish: that delivery was sent first and
  held at the cut until nsqd had timed it out and redelivered it (a
  ``timeout`` duplicate, seen in reverse).
* **Deferred means not early.** A DPUB'd message is not delivered before its
  delay has passed since it was sent; a message requeued with a delay is not
  delivered again before that delay has passed since the REQ was sent.
* **Nothing escapes.** An exception out of the broker or the simulator is a
  violation; it stops the run, so the other checks are then skipped.

Deliberately small interface: ``check(events) -> Verdict``.  A later formal
model replaces the judgement, not the shape.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise

from nsqsim.history import Event

__all__ = ["Verdict", "check"]

_EPS = 1e-9
_MAX_LISTED = 20  # violations of one kind spelled out before they are only counted


@dataclass
class Verdict:
    violations: list[str] = field(default_factory=list)
    published: int = 0
    acknowledged: int = 0
    failed: int = 0
    delivered: int = 0  # delivery events
    unique_delivered: int = 0  # distinct (nsqd, channel, message)
    expected: int = 0  # (message, channel) pairs that had to be delivered
    duplicates: dict[str, int] = field(default_factory=dict)
    lost_allowed: dict[str, int] = field(default_factory=dict)
    pending: int = 0
    latencies: list[float] = field(default_factory=list)  # publish sent -> first delivery, seconds
    ack_latencies: list[float] = field(default_factory=list)  # publish sent -> OK
    _counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations

    def violate(self, kind: str, detail: str) -> None:
        n = self._counts.get(kind, 0) + 1
        self._counts[kind] = n
        if n <= _MAX_LISTED:
            self.violations.append(f"{kind}: {detail}")
        elif n == _MAX_LISTED + 1:
            self.violations.append(f"{kind}: ... (more not listed)")

    def violation_counts(self) -> dict[str, int]:
        return dict(self._counts)


@dataclass
class _Publish:
    producer: str
    nsqd: str
    topic: str
    sent: float
    defer_ms: int
    acked: float | None = None


@dataclass
class _Delivery:
    t: float
    attempts: int
    id: str
    consumer: str


def check(events: Iterable[Event]) -> Verdict:
    v = Verdict()
    publishes: dict[str, _Publish] = {}
    nodes: dict[str, dict[str, bool]] = {}
    stops: dict[str, list[tuple[float, str]]] = defaultdict(list)  # nsqd -> (t, "crash"|"kill"|"restart")
    starts: dict[str, list[float]] = defaultdict(list)  # nsqd -> times it started again
    flips: dict[str, list[float]] = defaultdict(list)
    channel_open: dict[tuple[str, str, str], float] = {}  # (nsqd, topic, channel) -> since
    channel_spans: dict[tuple[str, str, str], list[tuple[float, float]]] = defaultdict(list)
    deliveries: dict[tuple[str, str, str], list[_Delivery]] = defaultdict(list)  # (nsqd, channel, key)
    acts: dict[tuple[str, str, str], list[tuple[float, str, str, int]]] = defaultdict(list)  # (t, kind, consumer, delay_ms)
    failures: dict[tuple[str, str, str], list[float]] = defaultdict(list)  # (consumer, id, FIN|REQ) -> times
    gone: dict[str, list[float]] = defaultdict(list)  # consumer -> crash times
    disconnects: dict[tuple[str, str], list[float]] = defaultdict(list)  # (consumer, nsqd) -> times
    heals: dict[tuple[str, str], list[float]] = defaultdict(list)  # (host, host) cut, then healed -> times
    pending: dict[tuple[str, str, str], int] = {}
    end = 0.0

    for e in events:
        t = e["t"]
        kind = e["type"]
        end = max(end, t)
        if kind == "publish":
            publishes[e["key"]] = _Publish(e["producer"], e["nsqd"], e["topic"], t, e["defer_ms"])
            v.published += 1
        elif kind == "publish_ok":
            p = publishes.get(e["key"])
            if p is None:
                v.violate("phantom_ack", f"OK for {e['key']}, never sent")
                continue
            p.acked = t
            v.acknowledged += 1
            v.ack_latencies.append(t - p.sent)
        elif kind == "publish_failed":
            v.failed += 1
        elif kind == "deliver":
            deliveries[(e["nsqd"], e["channel"], e["key"])].append(_Delivery(t, e["attempts"], e["id"], e["consumer"]))
            v.delivered += 1
        elif kind in ("fin", "req", "hold"):
            acts[(e["nsqd"], e["channel"], e["key"])].append((t, kind, e["consumer"], e.get("delay_ms", 0)))
        elif kind == "error":
            parts = e["error"].split()
            if len(parts) >= 3 and parts[0] in ("E_FIN_FAILED", "E_REQ_FAILED"):
                failures[(e["consumer"], parts[2], parts[1])].append(t)
        elif kind == "subscribed":
            key = (e["nsqd"], e["topic"], e["channel"])
            channel_open.setdefault(key, t)
        elif kind == "start" and t > 0:
            # A new life of the node: what a client receives after it was sent by
            # this life, even if bytes of the old one were still in the network
            # when the old one stopped.
            starts[e["host"]].append(t)
        elif kind in ("crash", "kill", "stop"):
            host = e["host"]
            stops[host].append((t, "restart" if kind == "stop" else kind))
            for key in [k for k in channel_open if k[0] == host]:
                channel_spans[key].append((channel_open.pop(key), t))
        elif kind == "disk_fault" and e.get("fault") == "bitflip" and e.get("where"):
            flips[e["host"]].append(t)
        elif kind == "consumer_crash":
            gone[e["consumer"]].append(t)
        elif kind == "disconnected" and "nsqd" in e:
            disconnects[(e["who"], e["nsqd"])].append(t)
        elif kind == "heal":
            for a in e["side_a"]:
                for b in e["side_b"]:
                    heals[(a, b)].append(t)
                    heals[(b, a)].append(t)
        elif kind == "final":
            pending[(e["host"], e["topic"], e["channel"])] = e["depth"] + e["in_flight"] + e["deferred"]
        elif kind == "run":
            nodes = e.get("nodes", {})
        elif kind == "exception":
            v.violate("exception", e["error"])
    for key, since in channel_open.items():
        channel_spans[key].append((since, end + 1.0))
    if v.violations:
        # An exception stopped the run before faults ended and the cluster drained:
        # every other check would report the cut, not the broker.
        return v

    _check_deliveries(v, publishes, deliveries)
    _check_redeliveries(v, publishes, deliveries, acts, stops, starts, failures, gone, disconnects, heals, end)
    _check_losses(v, publishes, deliveries, channel_spans, stops, flips, nodes, pending)
    v.unique_delivered = len(deliveries)
    return v


def _between(times: list[float], lo: float, hi: float) -> bool:
    """Whether some time in the sorted ``times`` falls in [lo, hi]."""
    i = bisect.bisect_left(times, lo)
    return i < len(times) and times[i] <= hi


def _check_deliveries(v: Verdict, publishes: dict[str, _Publish], deliveries: dict[tuple[str, str, str], list[_Delivery]]) -> None:
    for (nsqd, channel, key), ds in deliveries.items():
        p = publishes.get(key)
        if p is None:
            v.violate("phantom", f"{key} delivered on {nsqd}/{channel} but never published")
            continue
        if p.nsqd != nsqd:
            v.violate("misrouted", f"{key} published to {p.nsqd}, delivered from {nsqd}")
        first = ds[0]
        v.latencies.append(first.t - p.sent)
        if p.defer_ms and first.t + _EPS < p.sent + p.defer_ms / 1000:
            v.violate("early", f"{key} deferred {p.defer_ms}ms, sent at {p.sent:.6f}, delivered at {first.t:.6f}")


def _check_redeliveries(
    v: Verdict,
    publishes: dict[str, _Publish],
    deliveries: dict[tuple[str, str, str], list[_Delivery]],
    acts: dict[tuple[str, str, str], list[tuple[float, str, str, int]]],
    stops: dict[str, list[tuple[float, str]]],
    starts: dict[str, list[float]],
    failures: dict[tuple[str, str, str], list[float]],
    gone: dict[str, list[float]],
    disconnects: dict[tuple[str, str], list[float]],
    heals: dict[tuple[str, str], list[float]],
    end: float,
) -> None:
    stop_times = {host: sorted([t for t, _ in s] + starts.get(host, [])) for host, s in stops.items()}
    for (nsqd, channel, key), ds in deliveries.items():
        if len(ds) < 2:
            continue
        key_acts = acts.get((nsqd, channel, key), [])
        restarts = stop_times.get(nsqd, [])
        p = publishes.get(key)
        sent = p.sent if p is not None else 0.0
        for prev, cur in pairwise(ds):
            restarted = _between(restarts, prev.t, cur.t)
            if restarted:
                pass
            elif (
                cur.attempts < prev.attempts
                and cur.consumer != prev.consumer
                and _between(heals.get((cur.consumer, nsqd), []), sent, cur.t)
            ):
                # cur was sent before prev and held at the cut; nsqd timed it out and sent prev.
                v.duplicates["timeout"] = v.duplicates.get("timeout", 0) + 1
                continue
            elif cur.attempts <= prev.attempts:
                v.violate("attempts", f"{key} on {nsqd}/{channel}: attempts {prev.attempts} then {cur.attempts}")
            answer = next((a for a in key_acts if prev.t <= a[0] <= cur.t and a[2] == prev.consumer), None)
            consumer_gone = _between(gone.get(prev.consumer, []), prev.t, cur.t) or _between(
                disconnects.get((prev.consumer, nsqd), []), prev.t, cur.t
            )
            if restarted:
                cause = "node_restart"
            elif answer is None:
                cause = "consumer_gone" if consumer_gone else "timeout"
            elif answer[1] == "req" and _failed(failures, key_acts, answer, prev.id, "REQ", end):
                cause = "timeout"  # the REQ came too late: nsqd had already timed it out
            elif answer[1] == "req":
                cause = "requeue"
                # A REQ that nsqd took applied to this delivery (a consumer can only
                # requeue what it holds), unless the message had already timed out
                # and come back to the same consumer: then its answer to that
                # redelivery fails, because the REQ took the redelivery instead.
                early = answer[3] and cur.t + _EPS < answer[0] + answer[3] / 1000
                if early and cur.consumer == prev.consumer:
                    later = next((a for a in key_acts if a[0] >= cur.t and a[2] == cur.consumer), None)
                    early = later is not None and later[1] != "hold" and not _took_redelivery(failures, key_acts, prev, cur, end)
                if early:
                    v.violate("early", f"{key} requeued for {answer[3]}ms at {answer[0]:.6f}, delivered at {cur.t:.6f}")
            elif answer[1] == "hold":
                cause = "timeout"
            elif _failed(failures, key_acts, answer, prev.id, "FIN", end) or _took_redelivery(
                failures, key_acts, prev, cur, end
            ):
                # The FIN came too late: nsqd had timed the message out, and either
                # refused the FIN or, when the redelivery went to the same consumer
                # and was still on its way, applied the FIN to the redelivery (FIN
                # names an id, not a delivery), so the answer to that one failed.
                cause = "timeout"  # the FIN came too late: nsqd had already timed it out
            elif _between(gone.get(prev.consumer, []), answer[0], end) or _between(
                disconnects.get((prev.consumer, nsqd), []), answer[0], end
            ):
                # The connection broke after the FIN was sent: it may never have arrived
                # (a partition holds it until the consumer gives up on the connection).
                cause = "consumer_gone"
            else:
                v.violate("redelivered_after_fin", f"{key} on {nsqd}/{channel}: FIN at {answer[0]:.6f} accepted, redelivered at {cur.t:.6f}")
                cause = "after_fin"
            v.duplicates[cause] = v.duplicates.get(cause, 0) + 1


def _failed(
    failures: dict[tuple[str, str, str], list[float]],
    key_acts: list[tuple[float, str, str, int]],
    act: tuple[float, str, str, int],
    msg_id: str,
    command: str,
    end: float,
) -> bool:
    """Whether nsqd refused ``act`` (FIN or REQ): an error for it came back before the consumer's next answer."""
    t, _, consumer, _ = act
    following = next((a[0] for a in key_acts if a[0] > t and a[2] == consumer), end)
    return _between(failures.get((consumer, msg_id, command), []), t, following)


def _took_redelivery(
    failures: dict[tuple[str, str, str], list[float]],
    key_acts: list[tuple[float, str, str, int]],
    prev: _Delivery,
    cur: _Delivery,
    end: float,
) -> bool:
    """Whether an answer meant for ``prev`` was applied to ``cur`` instead (same consumer, same id)."""
    if cur.consumer != prev.consumer:
        return False
    later = next((a for a in key_acts if a[0] >= cur.t and a[2] == cur.consumer), None)
    return later is not None and later[1] != "hold" and _failed(failures, key_acts, later, cur.id, later[1].upper(), end)


def _check_losses(
    v: Verdict,
    publishes: dict[str, _Publish],
    deliveries: dict[tuple[str, str, str], list[_Delivery]],
    channel_spans: dict[tuple[str, str, str], list[tuple[float, float]]],
    stops: dict[str, list[tuple[float, str]]],
    flips: dict[str, list[float]],
    nodes: dict[str, dict[str, bool]],
    pending: dict[tuple[str, str, str], int],
) -> None:
    by_topic: dict[tuple[str, str], list[tuple[str, list[tuple[float, float]]]]] = defaultdict(list)
    for (nsqd, topic, channel), spans in sorted(channel_spans.items()):
        by_topic[(nsqd, topic)].append((channel, spans))
    pending_left = dict(pending)
    for key, p in publishes.items():
        if p.acked is None:
            continue
        for channel, spans in by_topic.get((p.nsqd, p.topic), []):
            if not any(start <= p.sent < stop for start, stop in spans):
                continue
            v.expected += 1
            if (p.nsqd, channel, key) in deliveries:
                continue
            cause = _allowed_loss(p, channel, stops.get(p.nsqd, []), flips.get(p.nsqd, []), nodes.get(p.nsqd, {}))
            if cause is not None:
                v.lost_allowed[cause] = v.lost_allowed.get(cause, 0) + 1
                continue
            left = pending_left.get((p.nsqd, p.topic, channel), 0)
            if left > 0:
                pending_left[(p.nsqd, p.topic, channel)] = left - 1
                v.pending += 1
                continue
            v.violate("lost", f"{key} acknowledged by {p.nsqd} at {p.acked:.6f}, never delivered to channel {channel}")


def _allowed_loss(p: _Publish, channel: str, stops: list[tuple[float, str]], flips: list[float], node: dict[str, bool]) -> str | None:
    # nsqd took the message somewhere between the PUB being sent and the OK
    # arriving: a stop after the send may have come after it was taken (the OK
    # can still be on its way when the node dies).
    for t, kind in stops:
        if t >= p.sent:
            if kind == "crash" and node.get("crash_loses", True):
                return "crash"
            if kind == "kill" and node.get("kill_loses", True):
                return "kill"
            if kind == "restart" and node.get("restart_loses", True):
                return "restart"
    if channel.endswith("#ephemeral"):
        return "ephemeral"
    if any(t >= p.sent for t in flips):
        return "disk_corruption"
    return None
