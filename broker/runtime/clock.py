"""The Clock port on a real asyncio event loop.

``now()`` is the loop's own monotonic clock, so deadlines the core computes line
up exactly with the timers the loop fires.  Timers are plain
``loop.call_later`` handles: the port asks that calls due at the same instant
run in the order they were scheduled, and on Linux two successive readings of
the loop's nanosecond-resolution monotonic clock never compare equal, so a
later ``call_later`` with the same delay always lands strictly later in
asyncio's timer heap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from broker.ports import Timer

__all__ = ["AsyncioClock"]


class AsyncioClock:
    __slots__ = ("_loop",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def now(self) -> float:
        return self._loop.time()

    def wall_ns(self) -> int:
        return time.time_ns()

    def call_later(self, delay: float, fn: Callable[[], None]) -> Timer:
        return self._loop.call_later(delay, fn)
