"""The broker core's hot path without sockets: publish in, messages out, FIN back.

Two patterns, both through in-memory connections to one NSQD:

* bulk (the default): a producer sends MPUB batches of 200 messages of 200
  bytes and one consumer (RDY 2500) FINs every message it receives: the
  per-message cost when reads carry many commands.
* ``--small``: what the simulator's reference cluster does to each nsqd.  Every
  read carries one PUB (500 bytes), the topic has two channels with two
  consumers each (RDY 33, output_buffer_timeout 250 ms as go-nsq sends it),
  and each consumer answers what it receives with FINs a few to a read.  A
  simulated clock advances 3 ms per PUB (one nsqd's share of the reference
  cluster's 1000 msgs/s) and fires the flush and channel timers as they fall
  due.  Here per-call overhead dominates, not per-message bulk cost.

    python -m bench.bench_core [--small] [--messages N] [--profile]

Wall time on a shared machine moves with its neighbours; instruction counts do
not.  To count the instructions one published message costs, run callgrind at
two message counts (20000 and 2000, say) and divide the difference of the two
totals by 18000, which cancels start-up; PYTHONHASHSEED=0 makes the count
repeat to the instruction:

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \\
        python -m bench.bench_core --small --messages 20000
"""

from __future__ import annotations

import argparse
import cProfile
import heapq
import pstats
import struct
import time
from collections.abc import Callable

from broker.nsqd.nsqd import NSQD
from broker.nsqd.options import Options
from broker.ports import ConnectionHandler
from broker.wire import v2

_FRAME = struct.Struct(">ii")


class _Clock:
    """Real time, for the bulk mode: its timers never fire (the loop flushes by RDY)."""

    def now(self) -> float:
        return time.monotonic()

    def wall_ns(self) -> int:
        return time.time_ns()

    def call_later(self, delay: float, fn: object) -> _Clock:
        return self

    def cancel(self) -> None:
        pass


class _Timer:
    __slots__ = ("cancelled", "fn")

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _StepClock:
    """Simulated time, for the small mode: timers run when the loop moves the clock past them."""

    def __init__(self) -> None:
        self.t = 0.0
        self._seq = 0
        self._timers: list[tuple[float, int, _Timer]] = []

    def now(self) -> float:
        return self.t

    def wall_ns(self) -> int:
        return 1_700_000_000_000_000_000 + int(self.t * 1e9)

    def call_later(self, delay: float, fn: Callable[[], None]) -> _Timer:
        timer = _Timer(fn)
        self._seq += 1
        heapq.heappush(self._timers, (self.t + max(delay, 0.0), self._seq, timer))
        return timer

    def advance(self, dt: float) -> None:
        until = self.t + dt
        timers = self._timers
        while timers and timers[0][0] <= until:
            at, _, timer = heapq.heappop(timers)
            if not timer.cancelled:
                self.t = at
                timer.fn()
        self.t = until


class _Rand:
    def random(self) -> float:
        return 0.0

    def randrange(self, n: int) -> int:
        return 0


class _Log:
    def log(self, level: str, msg: str) -> None:
        pass


class _Conn:
    def __init__(self, handler: ConnectionHandler) -> None:
        self.handler = handler
        self.out = bytearray()
        handler.connection_made(self)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.out += data

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    @property
    def peer_address(self) -> tuple[str, int]:
        return ("127.0.0.1", 1)

    @property
    def local_address(self) -> tuple[str, int]:
        return ("127.0.0.1", 4150)


def _fin_lines(out: bytearray) -> list[bytes]:
    """A FIN command for every message frame in ``out``."""
    fins = []
    pos = 0
    n = len(out)
    while n - pos >= 8:
        size, kind = _FRAME.unpack_from(out, pos)
        if kind == v2.FRAME_MESSAGE:
            fins.append(b"FIN " + bytes(out[pos + 18 : pos + 34]) + b"\n")
        pos += 4 + size
    return fins


def run(messages: int) -> float:
    """Bulk mode: messages/s through MPUB -> deliver -> FIN."""
    nsqd = NSQD(Options(node_id=1), clock=_Clock(), rand=_Rand(), logger=_Log(), hostname="bench")
    producer = _Conn(nsqd.tcp_handler())
    consumer = _Conn(nsqd.tcp_handler())
    producer.handler.data_received(v2.MAGIC_V2)
    consumer.handler.data_received(v2.MAGIC_V2 + b"SUB bench ch\nRDY 2500\n")
    consumer.out.clear()
    mpub = v2.encode_mpub("bench", [b"x" * 200] * 200)
    delivered = 0
    start = time.perf_counter()
    while delivered < messages:
        producer.handler.data_received(mpub)
        producer.out.clear()
        fins = _fin_lines(consumer.out)
        consumer.out.clear()
        delivered += len(fins)
        if fins:
            consumer.handler.data_received(b"".join(fins))
    return delivered / (time.perf_counter() - start)


def run_small(messages: int, *, rdy: int = 33, consumers: int = 2, fin_group: int = 3, interval: float = 0.003) -> float:
    """Small mode: published messages/s, one PUB per read, fanned out to two channels."""
    clock = _StepClock()
    nsqd = NSQD(Options(node_id=1), clock=clock, rand=_Rand(), logger=_Log(), hostname="bench")
    producer = _Conn(nsqd.tcp_handler())
    producer.handler.data_received(v2.MAGIC_V2)
    identify = v2.encode_identify({"feature_negotiation": True, "output_buffer_timeout": 250})
    subscribers = []
    for channel in ("archive", "index"):
        for _ in range(consumers):
            conn = _Conn(nsqd.tcp_handler())
            conn.handler.data_received(v2.MAGIC_V2 + identify)
            conn.handler.data_received(f"SUB bench {channel}\nRDY {rdy}\n".encode())
            conn.out.clear()
            subscribers.append(conn)
    pub = v2.encode_pub("bench", b"x" * 500)
    start = time.perf_counter()
    for _ in range(messages):
        producer.handler.data_received(pub)
        producer.out.clear()
        clock.advance(interval)
        for conn in subscribers:
            if not conn.out:
                continue
            fins = _fin_lines(conn.out)
            conn.out.clear()
            handle = conn.handler.data_received
            for i in range(0, len(fins), fin_group):
                handle(b"".join(fins[i : i + fin_group]))
    return messages / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="one PUB per read, two channels, RDY 33, FINs a few per read")
    parser.add_argument("--messages", type=int, default=None, help="messages to publish (default 500000 bulk, 100000 small)")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    messages = args.messages if args.messages is not None else (100_000 if args.small else 500_000)
    bench = run_small if args.small else run
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        rate = bench(messages)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    else:
        rate = bench(messages)
    if args.small:
        print(f"core: {rate:,.0f} msgs/s published through single PUBs -> 2 channels x 2 consumers -> FIN (one process, no sockets)")
    else:
        print(f"core: {rate:,.0f} msgs/s through MPUB -> deliver -> FIN (one process, no sockets)")


if __name__ == "__main__":
    main()
