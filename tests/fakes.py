"""Fake ports for unit tests of the core: a clock moved by hand, a recording connection.

No sockets and no sleeps: a test advances ``FakeClock`` and reads what a
``FakeConnection`` was given.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from broker.ports import ConnectionHandler
from broker.wire import v2


class FakeTimer:
    def __init__(self, when: float, fn: Callable[[], None]) -> None:
        self.when = when
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Monotonic time that moves only when ``advance`` is called."""

    def __init__(self, start: float = 1000.0, wall_ns: int = 1_795_835_051_000_000_000) -> None:
        self.t = start
        self._wall0 = wall_ns
        self._start = start
        self._timers: list[tuple[float, int, FakeTimer]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self.t

    def wall_ns(self) -> int:
        return self._wall0 + int((self.t - self._start) * 1e9)

    def call_later(self, delay: float, fn: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(self.t + max(delay, 0.0), fn)
        heapq.heappush(self._timers, (timer.when, next(self._seq), timer))
        return timer

    def advance(self, seconds: float) -> None:
        """Move time forward, running every timer that falls due, in order."""
        end = self.t + seconds
        while self._timers and self._timers[0][0] <= end:
            when, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self.t = max(self.t, when)
            timer.fn()
        self.t = end

    def pending(self) -> int:
        return sum(1 for _, _, t in self._timers if not t.cancelled)


class FakeRandom:
    def __init__(self, values: list[float] | None = None) -> None:
        self._values = values or [0.0]
        self._i = 0

    def random(self) -> float:
        v = self._values[self._i % len(self._values)]
        self._i += 1
        return v

    def randrange(self, n: int) -> int:
        return int(self.random() * n)


@dataclass
class RecordingLogger:
    lines: list[tuple[str, str]] = field(default_factory=list)

    def log(self, level: str, msg: str) -> None:
        self.lines.append((level, msg))


class FakeConnection:
    """Records what the core writes; tells the handler it closed, as a runtime would."""

    def __init__(self, handler: ConnectionHandler, peer: tuple[str, int] = ("127.0.0.1", 50000)) -> None:
        self.handler = handler
        self.written = bytearray()
        self.closed = False
        self.aborted = False
        self.reading = True
        self.high_water = 65536
        self._peer = peer
        self._frames = v2.FrameParser()
        self._consumed = 0
        handler.connection_made(self)

    # Connection port
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self.closed:
            self.written += data

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.handler.connection_lost(None)

    def abort(self) -> None:
        self.aborted = True
        self.close()

    def write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int) -> None:
        self.high_water = high

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    @property
    def peer_address(self) -> tuple[str, int]:
        return self._peer

    @property
    def local_address(self) -> tuple[str, int]:
        return ("127.0.0.1", 4150)

    # test helpers
    def send(self, data: bytes) -> None:
        self.handler.data_received(data)

    def frames(self) -> list[tuple[int, bytes]]:
        """Frames written since the last call."""
        self._frames.feed(bytes(self.written[self._consumed :]))
        self._consumed = len(self.written)
        out = []
        while (f := self._frames.next_frame()) is not None:
            out.append(f)
        return out

    def disconnect(self) -> None:
        """The peer went away."""
        if not self.closed:
            self.closed = True
            self.handler.connection_lost(ConnectionResetError("peer reset"))
