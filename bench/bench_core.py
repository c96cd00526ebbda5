"""The broker core's hot path without sockets: MPUB in, messages out, FIN back.

A producer and a consumer (RDY 2500) talk to one NSQD through in-memory
connections; the loop publishes MPUB batches of 200 messages of 200 bytes and
FINs every message the consumer receives.  This is the part of the pub/sub
benchmark that is ours to make fast, and the one to profile:

    python -m bench.bench_core [--messages N] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import struct
import time

from broker.nsqd.nsqd import NSQD
from broker.nsqd.options import Options
from broker.ports import ConnectionHandler
from broker.wire import v2

_FRAME = struct.Struct(">ii")


class _Clock:
    def now(self) -> float:
        return time.monotonic()

    def wall_ns(self) -> int:
        return time.time_ns()

    def call_later(self, delay: float, fn: object) -> _Clock:
        return self

    def cancel(self) -> None:
        pass


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


def _fins(out: bytearray) -> tuple[bytes, int]:
    """FIN commands for every message frame in ``out``."""
    fins = []
    pos = 0
    n = len(out)
    while n - pos >= 8:
        size, kind = _FRAME.unpack_from(out, pos)
        if kind == v2.FRAME_MESSAGE:
            fins.append(b"FIN " + bytes(out[pos + 18 : pos + 34]) + b"\n")
        pos += 4 + size
    return b"".join(fins), len(fins)


def run(messages: int) -> float:
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
        fins, n = _fins(consumer.out)
        consumer.out.clear()
        delivered += n
        if fins:
            consumer.handler.data_received(fins)
    return delivered / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=500_000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        rate = run(args.messages)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    else:
        rate = run(args.messages)
    print(f"core: {rate:,.0f} msgs/s through MPUB -> deliver -> FIN (one process, no sockets)")


if __name__ == "__main__":
    main()
