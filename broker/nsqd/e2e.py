"""End-to-end processing latency: the time from publish to FIN, as percentiles over a window.

nsqd 1.3.0 (``--e2e-processing-latency-percentile``, repeatable, each in
(0, 1]) gives every channel a latency stream when percentiles are asked for;
each FIN inserts ``now - message timestamp``, and ``/stats`` and statsd
report the percentiles of what the window holds.  The window is nsqd's
(``internal/quantile``): two streams that each cover half of
``--e2e-processing-latency-window-time``; when the current half is over, the
other one is emptied and becomes current, so a query sees between half a
window and a whole window of FINs.  A topic's figures merge its channels'.

nsqd keeps each half in a ``bmizerany/perks`` targeted-quantile stream.  Here
each half is a histogram with logarithmic buckets (the scheme of DDSketch):
a latency of ``x`` nanoseconds (x >= 1) is counted in bucket
``i = ceil(log(x) / log(g))``, which holds (g**(i-1), g**i], with
``g = (1 + a) / (1 - a)``; a latency below 1 ns (a wall clock stepped back) is
counted as 0.  A percentile ``q`` of ``n`` latencies is reported as the
middle ``2 g**i / (g + 1)`` of the bucket holding the one of rank
``ceil(q * n)``, rounded to whole nanoseconds.  The error bound, for every
percentile and any input: the reported value is within a relative error of
``a`` = ``RELATIVE_ERROR`` (1%) of the exact one, the latency of that rank
(plus the half nanosecond of the rounding).  Memory is bounded whatever the
load: only buckets that were hit are kept, and latencies from 1 ns to Go's
largest duration (~292 years) span fewer than 2,200 buckets.  Unlike perks'
streams, histograms merge exactly, which is what a topic's figures need.

Time is the wall clock in nanoseconds, read once per FIN, for both the
latency and the window, as nsqd reads ``time.Now()``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from broker.ports import Clock

__all__ = ["RELATIVE_ERROR", "E2ELatency", "LatencyHistogram", "merged_result", "nanoseconds_to_human"]

RELATIVE_ERROR = 0.01
_GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
_LOG_GAMMA = math.log(_GAMMA)

Result = tuple[int, list[tuple[float, float]]]  # count, [(quantile, value ns)]


class LatencyHistogram:
    """Latencies in logarithmic buckets (see the module doc)."""

    __slots__ = ("buckets", "count", "zeros")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.zeros = 0
        self.count = 0

    def add(self, latency_ns: int) -> None:
        self.count += 1
        if latency_ns < 1:
            self.zeros += 1
            return
        i = math.ceil(math.log(latency_ns) / _LOG_GAMMA)
        buckets = self.buckets
        buckets[i] = buckets.get(i, 0) + 1

    def merge(self, other: LatencyHistogram) -> None:
        self.count += other.count
        self.zeros += other.zeros
        buckets = self.buckets
        for i, n in other.buckets.items():
            buckets[i] = buckets.get(i, 0) + n

    def clear(self) -> None:
        self.buckets.clear()
        self.zeros = 0
        self.count = 0

    def quantiles(self, qs: Iterable[float]) -> list[float]:
        """The value of each quantile in ``qs`` (0 for an empty histogram, as perks answers)."""
        wanted = list(qs)
        n = self.count
        if n == 0:
            return [0.0] * len(wanted)
        ranks = [max(1, math.ceil(q * n)) for q in wanted]
        order = sorted(range(len(wanted)), key=ranks.__getitem__)
        out = [0.0] * len(wanted)
        seen = self.zeros
        at = 0
        while at < len(order) and ranks[order[at]] <= seen:
            at += 1  # those ranks are latencies counted as 0
        for i in sorted(self.buckets):
            if at == len(order):
                break
            seen += self.buckets[i]
            value = float(round(2.0 * _GAMMA**i / (_GAMMA + 1.0)))
            while at < len(order) and ranks[order[at]] <= seen:
                out[order[at]] = value
                at += 1
        return out


class E2ELatency:
    """One channel's latency window (nsqd's ``quantile.Quantile``)."""

    __slots__ = ("_clock", "_current", "_half", "_halves", "_last_move", "percentiles")

    def __init__(self, window_ns: int, percentiles: list[float], clock: Clock) -> None:
        self.percentiles = percentiles
        self._clock = clock
        self._half = max(1, window_ns // 2)
        self._halves = (LatencyHistogram(), LatencyHistogram())
        self._current = 0
        self._last_move = clock.wall_ns()

    def insert(self, timestamp_ns: int) -> None:
        """A FIN, now, of a message published at ``timestamp_ns``."""
        now_ns = self._clock.wall_ns()
        if now_ns > self._last_move + self._half:
            self._rotate(now_ns)
        self._halves[self._current].add(now_ns - timestamp_ns)

    def window(self) -> tuple[LatencyHistogram, LatencyHistogram]:
        """Both halves, after moving the window on to now."""
        now_ns = self._clock.wall_ns()
        if now_ns > self._last_move + self._half:
            self._rotate(now_ns)
        return self._halves

    def result(self) -> Result:
        return merged_result([self])

    def _rotate(self, now_ns: int) -> None:
        # nsqd moves half a window at a time while the data is stale (now > last + half);
        # that many moves at once, with two or more emptying both halves.
        moves = -(-(now_ns - self._last_move) // self._half) - 1
        self._last_move += moves * self._half
        if moves >= 2:
            self._halves[0].clear()
            self._halves[1].clear()
        self._current ^= moves & 1
        self._halves[self._current].clear()


def merged_result(streams: list[E2ELatency]) -> Result:
    """Count and percentiles of several windows together (a topic's, of its channels')."""
    merged = LatencyHistogram()
    for stream in streams:
        for half in stream.window():
            merged.merge(half)
    percentiles = streams[0].percentiles
    return merged.count, list(zip(percentiles, merged.quantiles(percentiles), strict=True))


def nanoseconds_to_human(v: float) -> str:
    """nsqd's ``stringy.NanoSecondToHuman``: one decimal and the largest unit it passes."""
    if v > 1_000_000_000:
        return f"{v / 1_000_000_000:0.1f}s"
    if v > 1_000_000:
        return f"{v / 1_000_000:0.1f}ms"
    if v > 1000:
        return f"{v / 1000:0.1f}us"
    return f"{v:0.1f}ns"
