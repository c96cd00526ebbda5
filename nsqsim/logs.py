"""The Logger port for simulated processes: lines kept in memory, stamped with simulated time.

Every process keeps its last ``keep`` lines (a failing run prints them next to
the command that replays it) and counts lines per level; nothing is written
anywhere unless ``echo`` is set, which the CLI's ``--verbose`` uses.
"""

from __future__ import annotations

import sys
from collections import deque

from broker.ports import Clock

__all__ = ["SimLogger"]

_SEVERITY = {"DEBUG": 0, "INFO": 1, "WARN": 2, "WARNING": 2, "ERROR": 3, "FATAL": 4}


class SimLogger:
    __slots__ = ("_clock", "_min", "counts", "echo", "lines", "name")

    def __init__(self, name: str, clock: Clock, level: str = "INFO", keep: int = 200, echo: bool = False) -> None:
        self.name = name
        self._clock = clock
        self._min = _SEVERITY[level.upper()]
        self.lines: deque[tuple[float, str, str]] = deque(maxlen=keep)
        self.counts: dict[str, int] = {}
        self.echo = echo

    def log(self, level: str, msg: str) -> None:
        self.counts[level] = self.counts.get(level, 0) + 1
        if _SEVERITY.get(level, 4) < self._min:
            return
        t = self._clock.now()
        self.lines.append((t, level, msg))
        if self.echo:
            sys.stderr.write(f"[{t:12.6f}] {self.name} {level}: {msg}\n")
