"""HTTP publishing throughput: ``/pub`` and ``/mpub`` over keep-alive connections.

An nsqd subprocess on 127.0.0.1; ``--connections`` client connections (4 by
default) each send requests back to back for ``--seconds`` (5), waiting for
each answer before the next (``--pipeline N`` sends N at a time instead).
Messages are 200 bytes; ``/mpub`` carries batches of 200, newline-separated.
The topic is ephemeral and has no channel, so past ``--mem-queue-size`` its
messages are dropped: what is measured is the HTTP path and the publish into
the topic, not delivery or a disk.

Printed per endpoint: requests/s, msgs/s, MB/s of message bodies, p50/p99
request latency, and the daemon's peak RSS.  Run:
``python -m bench.bench_http [--seconds 5] [--connections 4] [--pipeline 1] [--only pub|mpub]``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass

from bench.common import peak_rss_mb, percentile, start_daemon

MSG_SIZE = 200
BATCH = 200
TOPIC = "http_bench%23ephemeral"  # %23: '#', escaped in the query


@dataclass
class Result:
    endpoint: str
    seconds: float
    requests: int
    messages: int
    latencies: list[float]
    peak_rss_mb: float

    def line(self) -> str:
        lat = sorted(self.latencies)
        return (
            f"{self.endpoint:>5}: {self.requests / self.seconds:>9,.0f} req/s "
            f"{self.messages / self.seconds:>11,.0f} msgs/s "
            f"{self.messages * MSG_SIZE / self.seconds / 1e6:>7.1f} MB/s   "
            f"p50 {percentile(lat, 50) * 1e3:.3f} ms  p99 {percentile(lat, 99) * 1e3:.3f} ms   "
            f"nsqd peak RSS {self.peak_rss_mb:.0f} MiB"
        )


def _request(endpoint: str) -> tuple[bytes, int]:
    """The request bytes for ``endpoint`` and the number of messages it carries."""
    body = b"m" * MSG_SIZE
    if endpoint == "mpub":
        body = b"\n".join([body] * BATCH)
        count = BATCH
    else:
        count = 1
    head = f"POST /{endpoint}?topic={TOPIC} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body, count


async def _read_answer(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in lines:
        name, _, value = line.partition(":")
        if name.lower() == "content-length":
            length = int(value)
    body = await reader.readexactly(length)
    if not status_line.startswith("HTTP/1.1 200 "):
        raise RuntimeError(f"nsqd answered {status_line!r}: {body!r}")


async def _connection(port: int, request: bytes, pipeline: int, deadline: float, latencies: list[float]) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    batch = request * pipeline
    sent = 0
    try:
        while time.monotonic() < deadline:
            start = time.perf_counter()
            writer.write(batch)
            for _ in range(pipeline):
                await _read_answer(reader)
            latencies.append((time.perf_counter() - start) / pipeline)
            sent += pipeline
    finally:
        writer.close()
        await writer.wait_closed()
    return sent


async def _run(port: int, endpoint: str, seconds: float, connections: int, pipeline: int) -> tuple[float, int, int, list[float]]:
    request, per_request = _request(endpoint)
    latencies: list[float] = []
    start = time.monotonic()
    counts = await asyncio.gather(
        *(_connection(port, request, pipeline, start + seconds, latencies) for _ in range(connections))
    )
    elapsed = time.monotonic() - start
    total = sum(counts)
    return elapsed, total, total * per_request, latencies


def bench(endpoint: str, seconds: float, connections: int, pipeline: int) -> Result:
    with start_daemon() as daemon:
        elapsed, requests, messages, latencies = asyncio.run(_run(daemon.http_port, endpoint, seconds, connections, pipeline))
        rss = peak_rss_mb(daemon.proc.pid)
    return Result(endpoint, elapsed, requests, messages, latencies, rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--pipeline", type=int, default=1, help="requests sent before reading their answers")
    parser.add_argument("--only", choices=("pub", "mpub"))
    args = parser.parse_args()
    print(f"{args.connections} keep-alive connections, pipeline {args.pipeline}, {MSG_SIZE}-byte messages, mpub batches of {BATCH}")
    for endpoint in ("pub", "mpub"):
        if args.only in (None, endpoint):
            print(bench(endpoint, args.seconds, args.connections, args.pipeline).line(), flush=True)


if __name__ == "__main__":
    main()
