"""The Clock port on a simpy environment, and the lives of simulated processes.

Simulated time is ``env.now`` in seconds.  ``wall_ns`` is a fixed epoch plus
that, so message timestamps and ids are the same in every run of a seed.

Each process has two clocks, as on a real host.  ``now`` (and so every timer)
is CLOCK_MONOTONIC: the true simulated time on every host, never stepped,
never skewed (a kernel keeps it monotonic whatever NTP or an operator does to
the wall clock; the rate error of a real oscillator, parts per million, is
too small to matter over a run).  ``wall_ns`` is CLOCK_REALTIME: the epoch
plus true time plus the offset of the host's ``WallClock``, which the
nemesis steps (``clock_jump``) or makes run fast or slow (``clock_skew``)
and which is zero otherwise.  The ``WallClock`` belongs to the host, not the
process: a restarted process reads the same wrong clock.

A timer is one entry in simpy's event queue whose only callback runs the
function; simpy's heap breaks ties by a sequence number, so timers due at the
same instant run in the order they were scheduled, as the port asks.
``cancel`` only disarms the event (as asyncio does with a cancelled handle):
removing it from the middle of the heap would cost more than letting it fire
into nothing.  ``run_until`` is the loop a cluster runs on: simpy's
``run(until=...)`` with the same order and less work per event.

A ``Life`` is one incarnation of a simulated process.  Every timer and every
network callback of the process is tied to its life; when the process is
killed its life ends, and nothing it scheduled ever runs again, exactly as a
``kill -9`` leaves no code of the old process running.  A restart makes a new
life, hence a new ``SimClock`` view, around the same environment.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any

import simpy
from simpy.events import NORMAL

__all__ = ["EPOCH_NS", "Life", "SimClock", "SimTimer", "WallClock", "fire_late", "run_until"]

# 2026-01-01T00:00:00Z: every simulation starts its wall clock here.
EPOCH_NS = 1_767_225_600_000_000_000


class Life:
    """One incarnation of a process; ``end()`` silences everything it scheduled.

    A life can also be stalled (SIGSTOP, a long GC pause): while ``stalled``,
    nothing of the process runs.  Its timers that come due wait in ``timers``
    and the network's calls into it (a connection made or lost, room to write
    again) in ``deferred``; ``SimNetwork.resume`` runs them when it goes on.
    """

    __slots__ = ("alive", "deferred", "name", "stalled", "timers")

    def __init__(self, name: str) -> None:
        self.name = name
        self.alive = True
        self.stalled = False
        self.timers: list[SimTimer] = []  # came due while stalled, in the order they did
        self.deferred: list[Callable[[], None]] = []  # the kernel's news for the process, while stalled

    def end(self) -> None:
        self.alive = False
        self.stalled = False
        self.timers.clear()
        self.deferred.clear()

    def call(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` (a call into the process) now, or when it resumes if stalled; never once it ended."""
        if not self.alive:
            return
        if self.stalled:
            self.deferred.append(fn)
        else:
            fn()

    def __repr__(self) -> str:
        return f"Life({self.name}, alive={self.alive})"


# Lives of the simulator itself (the network's kernel work, the nemesis): never end.
_FOREVER = Life("simulator")


class SimTimer:
    """A scheduled call, and the event that carries it in simpy's queue.

    Not a ``simpy.Event``: it has just what ``Environment.step`` touches
    (``callbacks``, ``_ok``, ``_value``) in slots, so building one per timer
    costs no instance dict and no bound method, and simpy still runs it.
    """

    __slots__ = ("callbacks", "fn", "life")
    _ok = True  # read by simpy, never changed: a timer cannot fail
    _value = None

    def __init__(self, env: simpy.Environment, delay: float, fn: Callable[[], None], life: Life) -> None:
        self.callbacks: tuple[Callable[[Any], None], ...] | None = _FIRE
        self.fn: Callable[[], None] | None = fn
        self.life = life
        now: float = env._now
        if delay > 0:
            at = now + delay
            if at <= now:
                # Too small to move a float this large: land on the next representable
                # instant, so a positive delay always means later (as on a real clock,
                # which moves on by itself) and a "wait for the rest" loop terminates.
                at = math.nextafter(now, math.inf)
        else:
            at = now
        # env.schedule, inlined: this runs once per timer.
        queue: list[Any] = env._queue
        heappush(queue, (at, NORMAL, next(env._eid), self))

    def cancel(self) -> None:
        self.fn = None


def _fire(timer: SimTimer) -> None:
    fn = timer.fn
    if fn is not None:
        life = timer.life
        if life.alive:
            if life.stalled:
                life.timers.append(timer)  # runs when the process resumes
                return
            timer.fn = None
            fn()


def fire_late(timer: SimTimer) -> None:
    """Run a timer that came due while its process was stalled (unless cancelled since)."""
    _fire(timer)


# Shared by every timer: simpy only reads an event's callbacks and then sets them to None.
_FIRE: tuple[Callable[[Any], None], ...] = (_fire,)


def run_until(env: simpy.Environment, end: float) -> None:
    """``env.run(until=end)`` without simpy's per-event overhead: what the cluster runs on.

    The same order (simpy's heap: time, priority, then scheduling order) and the
    same end: events due at ``end`` itself stay queued, as ``run(until=end)``
    leaves them behind its own urgent stop event.  An exception from a callback
    propagates with its event already consumed, as from ``Environment.step``.
    Only callback events are run: nsqsim schedules no simpy processes.
    """
    queue: list[Any] = env._queue
    pop = heappop
    while queue:
        item = pop(queue)
        now = item[0]
        if now >= end:
            heappush(queue, item)  # popping and pushing back once beats peeking every time
            break
        env._now = now
        event = item[3]
        callbacks, event.callbacks = event.callbacks, None
        for callback in callbacks:
            callback(event)
        if not event._ok:
            raise event._value
    if env._now < end:
        env._now = end


class WallClock:
    """How far a host's wall clock is from true time: stepped, or drifting at a rate.

    ``offset_ns(now)`` is the offset at monotonic time ``now``: ``base_ns``,
    plus ``rate`` seconds gained per second since ``since`` while skewed.
    """

    __slots__ = ("base_ns", "rate", "since")

    def __init__(self) -> None:
        self.base_ns = 0
        self.rate = 0.0
        self.since = 0.0

    def offset_ns(self, now: float) -> int:
        if self.rate:
            return self.base_ns + round((now - self.since) * self.rate * 1e9)
        return self.base_ns

    def step(self, now: float, by: float) -> None:
        """The clock jumps by ``by`` seconds (forward if positive)."""
        self.base_ns = self.offset_ns(now) + round(by * 1e9)
        self.since = now

    def skew(self, now: float, rate: float) -> None:
        """From now on the clock gains ``rate`` seconds per second (loses, if negative; rate > -1)."""
        self.base_ns = self.offset_ns(now)
        self.rate = rate
        self.since = now

    def reset(self, now: float) -> float:
        """NTP steps the clock back to true time; how far it was off, in seconds."""
        off = self.offset_ns(now)
        self.base_ns = 0
        self.rate = 0.0
        self.since = now
        return off / 1e9


class SimClock:
    """The Clock port for one process life (or, without one, for the simulator itself)."""

    __slots__ = ("env", "epoch_ns", "life", "wall")

    def __init__(
        self, env: simpy.Environment, life: Life | None = None, epoch_ns: int = EPOCH_NS, wall: WallClock | None = None
    ) -> None:
        self.env = env
        self.life = life if life is not None else _FOREVER
        self.epoch_ns = epoch_ns
        self.wall = wall  # the host's wall clock; None: true time

    def now(self) -> float:
        now: float = self.env._now
        return now

    def wall_ns(self) -> int:
        now: float = self.env._now
        wall = self.wall
        if wall is None:
            return self.epoch_ns + round(now * 1e9)
        return self.epoch_ns + round(now * 1e9) + wall.offset_ns(now)

    def call_later(self, delay: float, fn: Callable[[], None]) -> SimTimer:
        return SimTimer(self.env, delay, fn, self.life)

    def for_life(self, life: Life, wall: WallClock | None = None) -> SimClock:
        """The same time, for another process life (on a host with the wall clock ``wall``)."""
        return SimClock(self.env, life, self.epoch_ns, wall if wall is not None else self.wall)
