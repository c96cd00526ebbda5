"""The Clock port on a simpy environment, and the lives of simulated processes.

Simulated time is ``env.now`` in seconds.  ``wall_ns`` is a fixed epoch plus
that, so message timestamps and ids are the same in every run of a seed.

A timer is one simpy event whose only callback runs the function; simpy's heap
breaks ties by a sequence number, so timers due at the same instant run in the
order they were scheduled, as the port asks.  ``cancel`` only disarms the
event (as asyncio does with a cancelled handle): removing it from the middle of
the heap would cost more than letting it fire into nothing.

A ``Life`` is one incarnation of a simulated process.  Every timer and every
network callback of the process is tied to its life; when the process is
killed its life ends, and nothing it scheduled ever runs again, exactly as a
``kill -9`` leaves no code of the old process running.  A restart makes a new
life, hence a new ``SimClock`` view, around the same environment.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import simpy
from simpy.events import NORMAL

__all__ = ["EPOCH_NS", "Life", "SimClock", "SimTimer"]

# 2026-01-01T00:00:00Z: every simulation starts its wall clock here.
EPOCH_NS = 1_767_225_600_000_000_000


class Life:
    """One incarnation of a process; ``end()`` silences everything it scheduled."""

    __slots__ = ("alive", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.alive = True

    def end(self) -> None:
        self.alive = False

    def __repr__(self) -> str:
        return f"Life({self.name}, alive={self.alive})"


# Lives of the simulator itself (the network's kernel work, the nemesis): never end.
_FOREVER = Life("simulator")


class SimTimer(simpy.Event):
    """A scheduled call; the simpy event that carries it."""

    def __init__(self, env: simpy.Environment, delay: float, fn: Callable[[], None], life: Life) -> None:
        # Inlined simpy.Event.__init__ plus env.schedule: this runs once per timer.
        self.env = env
        self.callbacks: list[Callable[[Any], None]] = [self._fire]
        self._value = None
        self._ok = True
        self.fn: Callable[[], None] | None = fn
        self.life = life
        if delay > 0:
            now = env.now
            if now + delay <= now:
                # Too small to move a float this large: land on the next representable
                # instant, so a positive delay always means later (as on a real clock,
                # which moves on by itself) and a "wait for the rest" loop terminates.
                delay = math.nextafter(now, math.inf) - now
        else:
            delay = 0
        env.schedule(self, NORMAL, delay)

    def cancel(self) -> None:
        self.fn = None

    def _fire(self, _event: object) -> None:
        fn = self.fn
        if fn is not None and self.life.alive:
            self.fn = None
            fn()


class SimClock:
    """The Clock port for one process life (or, without one, for the simulator itself)."""

    __slots__ = ("env", "epoch_ns", "life")

    def __init__(self, env: simpy.Environment, life: Life | None = None, epoch_ns: int = EPOCH_NS) -> None:
        self.env = env
        self.life = life if life is not None else _FOREVER
        self.epoch_ns = epoch_ns

    def now(self) -> float:
        now: float = self.env.now
        return now

    def wall_ns(self) -> int:
        return self.epoch_ns + round(self.env.now * 1e9)

    def call_later(self, delay: float, fn: Callable[[], None]) -> SimTimer:
        return SimTimer(self.env, delay, fn, self.life)

    def for_life(self, life: Life) -> SimClock:
        """The same time, for another process life."""
        return SimClock(self.env, life, self.epoch_ns)
