"""What durability costs: publish throughput per mode and concurrency, and memory with a deep disk queue.

1. Publishers (1, 8 and 64 connections, each PUB then wait for OK, 200-byte
   messages) against nsqd in default mode and with --durable-publish (every OK
   waits for the fsync; concurrent publishers share fsyncs), each for
   ``--seconds``; then one consumer (RDY 2500) reads the backlog back from disk.
2. nsqd's peak RSS while ``--messages`` (1,000,000 by default) 200-byte
   messages sit in a disk-backed channel with --mem-queue-size=10000, beside
   what holding them in memory would take.

Run: ``python -m bench.bench_durability [--seconds 5] [--messages 1000000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import time

from bench.common import peak_rss_mb, start_daemon
from broker.wire import v2

BODY = b"x" * 200
_FRAME = struct.Struct(">ii")


async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(v2.MAGIC_V2)
    return reader, writer


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    while True:
        header = await reader.readexactly(8)
        size, kind = _FRAME.unpack(header)
        data = await reader.readexactly(size - 4)
        if (kind, data) != (v2.FRAME_RESPONSE, v2.HEARTBEAT):
            return kind, data


async def _publisher(port: int, end: float, counts: list[int]) -> None:
    reader, writer = await _open(port)
    cmd = v2.encode_pub("bench", BODY)
    n = 0
    while time.monotonic() < end:
        writer.write(cmd)
        kind, data = await _read_frame(reader)
        if kind != v2.FRAME_RESPONSE:
            raise RuntimeError(f"publish failed: {data!r}")
        n += 1
    counts.append(n)
    writer.close()


async def _publish(port: int, publishers: int, seconds: float) -> float:
    # a channel exists, so every message lands in a channel's queue
    reader, writer = await _open(port)
    writer.write(b"SUB bench ch\n")
    await _read_frame(reader)
    writer.close()
    counts: list[int] = []
    end = time.monotonic() + seconds
    await asyncio.gather(*(_publisher(port, end, counts) for _ in range(publishers)))
    return sum(counts) / seconds


async def _consume_all(port: int, expected: int) -> float:
    reader, writer = await _open(port)
    writer.write(b"SUB bench ch\nRDY 2500\n")
    start = time.monotonic()
    got = 0
    while got < expected:
        kind, data = await _read_frame(reader)
        if kind == v2.FRAME_MESSAGE:
            writer.write(b"FIN " + data[10:26] + b"\n")
            got += 1
    writer.close()
    return got / (time.monotonic() - start)


def throughput(seconds: float) -> None:
    print(f"{'mode':16} {'publishers':>10} {'PUB msgs/s':>11} {'MB/s':>6} {'read back msgs/s':>17}")
    for mode, flags in (("default", ["--mem-queue-size=0"]), ("durable-publish", ["--durable-publish"])):
        for publishers in (1, 8, 64):
            with start_daemon(args=flags) as daemon:
                rate = asyncio.run(_publish(daemon.tcp_port, publishers, seconds))
                back = asyncio.run(_consume_all(daemon.tcp_port, int(rate * seconds)))
            print(f"{mode:16} {publishers:>10} {rate:11.0f} {rate * len(BODY) / 1e6:6.2f} {back:17.0f}")


async def _fill(port: int, messages: int) -> None:
    reader, writer = await _open(port)
    writer.write(b"SUB bench ch\n")
    await _read_frame(reader)
    batch = v2.encode_mpub("bench", [BODY] * 1000)
    for _ in range(messages // 1000):
        writer.write(batch)
        kind, data = await _read_frame(reader)
        if kind != v2.FRAME_RESPONSE:
            raise RuntimeError(f"publish failed: {data!r}")
    writer.close()


def deep_queue(messages: int) -> None:
    with start_daemon(args=["--mem-queue-size=10000"]) as daemon:
        start = time.monotonic()
        asyncio.run(_fill(daemon.tcp_port, messages))
        took = time.monotonic() - start
        rss = peak_rss_mb(daemon.proc.pid)
    # a message held in memory costs at least its body, a Message object and an id
    in_memory = messages * (len(BODY) + 33 + 16 + 120) / 2**20
    print(f"{messages:,} messages of {len(BODY)} B in a disk-backed channel (--mem-queue-size=10000): "
          f"published in {took:.1f} s, nsqd peak RSS {rss:.0f} MiB (holding them in memory: >= {in_memory:.0f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--messages", type=int, default=1_000_000)
    args = parser.parse_args()
    throughput(args.seconds)
    deep_queue(args.messages)


if __name__ == "__main__":
    main()
