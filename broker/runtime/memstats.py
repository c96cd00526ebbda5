"""This process's nearest equivalents of Go's runtime memory figures, for /stats and statsd.

nsqd reports ``runtime.ReadMemStats``; CPython has no such heap, so each key
is mapped to the closest thing it does have (docs/metrics.md has the table):

* ``heap_objects``: ``sys.getallocatedblocks()``, the blocks pymalloc holds;
* ``heap_in_use_bytes``: the resident set size (``/proc/self/statm``);
* ``gc_pause_usec_100``/``_99``/``_95``: percentiles of the last 256 pauses of
  the cyclic collector, timed from ``gc.callbacks``'s start to its stop, with
  nsqd's percentile rule (Go keeps the last 256 pauses too);
* ``gc_total_runs``: collections of every generation (``gc.get_stats()``);
* ``heap_idle_bytes``, ``heap_released_bytes``, ``next_gc_bytes``: 0, since
  CPython neither keeps idle heap spans apart nor starts collections at a byte
  count (its thresholds count objects).

``process_stats`` gives ``/metrics`` its ``process_*`` figures, under the names
every Prometheus client library uses, read from ``/proc`` and ``getrusage``.
"""

from __future__ import annotations

import gc
import math
import os
import resource
import time
from collections import deque
from typing import Any

from broker.nsqd.stats import python_memory_stats

__all__ = ["GCPauses", "ProcessMemoryStats", "go_percentile", "process_stats"]

GC_PAUSES_KEPT = 256  # len(runtime.MemStats.PauseNs)


def go_percentile(perc: float, values: list[int]) -> int:
    """nsqd's ``percentile``: the element at floor(perc/100 * n + 0.5) of sorted ``values``."""
    n = len(values)
    if n == 0:
        return 0
    i = math.floor(perc / 100.0 * n + 0.5)
    return values[min(i, n - 1)]


class GCPauses:
    """The durations of the collector's last pauses, in nanoseconds, from ``gc.callbacks``."""

    def __init__(self, kept: int = GC_PAUSES_KEPT) -> None:
        self.pauses: deque[int] = deque(maxlen=kept)
        self._started = 0

    def install(self) -> None:
        gc.callbacks.append(self._callback)

    def uninstall(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter_ns()
        elif self._started:
            self.pauses.append(time.perf_counter_ns() - self._started)
            self._started = 0


class ProcessMemoryStats:
    """A ``nsqd.memory_stats`` source: call it for the figures of the moment."""

    def __init__(self, pauses: GCPauses | None = None) -> None:
        self.pauses = pauses

    def __call__(self) -> dict[str, int]:
        figures = python_memory_stats()
        try:
            with open("/proc/self/statm") as f:
                figures["heap_in_use_bytes"] = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            pass
        if self.pauses is not None:
            ordered = sorted(self.pauses.pauses)
            for perc in (100, 99, 95):
                figures[f"gc_pause_usec_{perc}"] = go_percentile(float(perc), ordered) // 1000
        return figures


def process_stats() -> dict[str, float]:
    """CPU time, memory and file descriptors of this process, as ``nsqd.process_stats``."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    figures: dict[str, float] = {"process_cpu_seconds_total": usage.ru_utime + usage.ru_stime}
    try:
        with open("/proc/self/statm") as f:
            size, resident = (int(x) for x in f.read().split()[:2])
        page = os.sysconf("SC_PAGE_SIZE")
        figures["process_virtual_memory_bytes"] = size * page
        figures["process_resident_memory_bytes"] = resident * page
        figures["process_open_fds"] = len(os.listdir("/proc/self/fd"))
    except (OSError, ValueError):
        pass
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY:
        figures["process_max_fds"] = soft
    return figures
