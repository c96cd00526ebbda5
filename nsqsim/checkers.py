"""What must hold of every run: ``model.checker``'s verdict on the history, and the figures
only a simulation has.

The guarantees, and which losses and duplicates they allow and why, are the
formal model's (``model/checker.py``, docs/guarantees.md): nsqsim writes its
history in the format ``model/history.py`` reads, and judges nothing itself.
What this adds is what the summary of a run prints beside the verdict:
delivery counts and the latencies from a publish being sent to its first
delivery and to its OK.

``check(events) -> Verdict``; the verdict keeps the names the summary and the
analysis notebooks read (``duplicates`` by cause, ``lost_allowed`` by rule,
``pending``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields

from model import checker as model_checker
from nsqsim.history import Event

__all__ = ["Verdict", "check"]


@dataclass
class Verdict(model_checker.Verdict):
    """The model's verdict, and what the summary counts beside it."""

    delivered: int = 0  # delivery events
    unique_delivered: int = 0  # distinct (nsqd, channel, message)
    latencies: list[float] = field(default_factory=list)  # publish sent -> first delivery, seconds
    ack_latencies: list[float] = field(default_factory=list)  # publish sent -> OK

    @property
    def duplicates(self) -> dict[str, int]:
        return self.duplicates_by_cause()

    @property
    def lost_allowed(self) -> dict[str, int]:
        return self.losses_by_rule()

    @property
    def pending(self) -> int:
        return self.count("pending")


def check(events: Iterable[Event]) -> Verdict:
    history = events if isinstance(events, list) else list(events)
    judged = model_checker.check(history)
    v = Verdict(**{f.name: getattr(judged, f.name) for f in fields(judged)})
    sent: dict[str, float] = {}
    first: set[tuple[str, str, str]] = set()
    for e in history:
        kind = e["type"]
        if kind == "deliver":
            v.delivered += 1
            where = (e["nsqd"], e["channel"], e["key"])
            if where not in first:
                first.add(where)
                if e["key"] in sent:
                    v.latencies.append(e["t"] - sent[e["key"]])
        elif kind == "publish":
            sent[e["key"]] = e["t"]
        elif kind == "publish_ok" and e["key"] in sent:
            v.ack_latencies.append(e["t"] - sent[e["key"]])
    v.unique_delivered = len(first)
    return v
