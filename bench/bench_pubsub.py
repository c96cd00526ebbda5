"""Pub/sub throughput over loopback: our nsqd against a bare asyncio relay.

One producer connection sends MPUB batches (200 messages of 200 bytes, a few
batches outstanding), one consumer connection subscribes with RDY 2500 and
FINs everything; each runs in its own process, for ``--seconds`` (10 by
default).  Every message carries its send time (CLOCK_MONOTONIC is shared by
the processes), so the consumer measures end-to-end latency.

``--pub1``: PUB batch 1 instead: 8 producer connections (one process), each
sending one PUB of 200 bytes and waiting for its OK before the next, so every
message is a round trip; the relay answers each PUB at once (its echo) and
relays it to the consumer as it does MPUB's messages.

Printed: msgs/s in (acknowledged), msgs/s out (received), MB/s, p50/p99
latency, the server's peak RSS, and nsqd's figures as a fraction of the
relay's.  ``--nsqd`` runs one or more builds of nsqd in the same run, each
against the same relay run (see ``bench.common.NSQD_VARIANTS``: ``nsqd`` as
configured, ``asyncio``/``uvloop`` on pure Python, ``compiled``,
``compiled+uvloop``).

Run: ``python -m bench.bench_pubsub [--seconds 10] [--pub1] [--only nsqd|relay] [--nsqd nsqd,asyncio,...]``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import struct
import time
from dataclasses import dataclass
from multiprocessing.synchronize import Event

from bench.common import NSQD_VARIANTS, cpu_count, peak_rss_mb, percentile, start_daemon

MSG_SIZE = 200
BATCH = 200
WINDOW = 4  # MPUBs in flight at once
RDY = 2500
TOPIC = "bench"
PUB1_CONNECTIONS = 8

_INT32 = struct.Struct(">i")
_FRAME = struct.Struct(">ii")
_TS = struct.Struct(">q")


@dataclass
class Result:
    name: str
    seconds: float
    sent: int
    received: int
    p50_ms: float
    p99_ms: float
    peak_rss_mb: float
    runtime: str = ""

    @property
    def in_rate(self) -> float:
        return self.sent / self.seconds

    @property
    def out_rate(self) -> float:
        return self.received / self.seconds


def _mpub_batch() -> tuple[bytearray, list[int]]:
    """An MPUB command of BATCH messages and the offsets of their timestamps."""
    payload = bytearray(_INT32.pack(BATCH))
    offsets = []
    head = len(b"MPUB bench\n") + 4
    for _ in range(BATCH):
        payload += _INT32.pack(MSG_SIZE)
        offsets.append(head + len(payload))
        payload += b"x" * MSG_SIZE
    cmd = bytearray(b"MPUB " + TOPIC.encode() + b"\n" + _INT32.pack(len(payload))) + payload
    return cmd, offsets


async def _produce(port: int, seconds: float, start: Event, out: mp.Queue[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"  V2")
    cmd, offsets = _mpub_batch()
    start.wait()
    acked = 0
    outstanding = 0
    end = time.monotonic() + seconds
    buf = bytearray()
    while True:
        now = time.monotonic()
        if now < end:
            while outstanding < WINDOW:
                ts = time.monotonic_ns()
                for off in offsets:
                    _TS.pack_into(cmd, off, ts)
                writer.write(cmd)
                outstanding += 1
        elif outstanding == 0:
            break
        data = await reader.read(65536)
        if not data:
            break
        buf += data
        while len(buf) >= 8:
            size, kind = _FRAME.unpack_from(buf, 0)
            if len(buf) < 4 + size:
                break
            body = bytes(buf[8 : 4 + size])
            del buf[: 4 + size]
            if kind == 0 and body == b"OK":
                acked += BATCH
                outstanding -= 1
            elif kind == 1:
                raise RuntimeError(f"producer got error {body!r}")
    writer.close()
    out.put(acked)


class _RoundTrips(asyncio.Protocol):
    """One PUB connection of --pub1: a PUB, its OK, the next PUB."""

    def __init__(self, end: float, done: asyncio.Future[None]) -> None:
        self.end = end
        self.done = done
        self.acked = 0
        self.buf = bytearray()
        self.cmd = bytearray(b"PUB " + TOPIC.encode() + b"\n" + _INT32.pack(MSG_SIZE) + b"x" * MSG_SIZE)
        self.ts_at = len(self.cmd) - MSG_SIZE
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(b"  V2")  # type: ignore[attr-defined]

    def send(self) -> None:
        assert self.transport is not None
        _TS.pack_into(self.cmd, self.ts_at, time.monotonic_ns())
        self.transport.write(bytes(self.cmd))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while len(buf) >= 8:
            size, kind = _FRAME.unpack_from(buf, 0)
            if len(buf) < 4 + size:
                return
            body = bytes(buf[8 : 4 + size])
            del buf[: 4 + size]
            if kind == 1:
                raise RuntimeError(f"producer got error {body!r}")
            if body == b"OK":
                self.acked += 1
                if time.monotonic() < self.end:
                    self.send()
                elif not self.done.done():
                    self.done.set_result(None)


async def _produce_pub1(port: int, seconds: float, start: Event, out: mp.Queue[int]) -> None:
    loop = asyncio.get_running_loop()
    conns: list[_RoundTrips] = []
    dones = []
    for _ in range(PUB1_CONNECTIONS):
        done: asyncio.Future[None] = loop.create_future()
        _, proto = await loop.create_connection(lambda d=done: _RoundTrips(0.0, d), "127.0.0.1", port)  # type: ignore[misc]
        conns.append(proto)
        dones.append(done)
    start.wait()
    end = time.monotonic() + seconds
    for c in conns:
        c.end = end
        c.send()
    await asyncio.gather(*dones)
    for c in conns:
        assert c.transport is not None
        c.transport.close()
    out.put(sum(c.acked for c in conns))


async def _consume(port: int, seconds: float, ready: Event, start: Event, out: mp.Queue[tuple[int, list[float]]]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"  V2SUB " + TOPIC.encode() + b" ch\nRDY %d\n" % RDY)
    await writer.drain()
    ready.set()
    start.wait()
    received = 0
    latencies: list[float] = []
    buf = bytearray()
    end = time.monotonic() + seconds + 2  # let the tail arrive
    while time.monotonic() < end:
        try:
            data = await asyncio.wait_for(reader.read(262144), timeout=max(0.05, end - time.monotonic()))
        except TimeoutError:
            break
        if not data:
            break
        buf += data
        fins = []
        pos = 0
        n = len(buf)
        now = time.monotonic_ns()
        while n - pos >= 8:
            size, kind = _FRAME.unpack_from(buf, pos)
            if n - pos < 4 + size:
                break
            if kind == 2:
                fins.append(b"FIN " + bytes(buf[pos + 18 : pos + 34]) + b"\n")
                if received % 64 == 0:
                    sent = _TS.unpack_from(buf, pos + 34)[0]
                    latencies.append((now - sent) / 1e6)
                received += 1
            pos += 4 + size
        del buf[:pos]
        if fins:
            writer.write(b"".join(fins))
    writer.close()
    out.put((received, latencies))


def _producer_main(port: int, seconds: float, start: Event, out: mp.Queue[int], pub1: bool = False) -> None:
    asyncio.run((_produce_pub1 if pub1 else _produce)(port, seconds, start, out))


def _consumer_main(port: int, seconds: float, ready: Event, start: Event, out: mp.Queue[tuple[int, list[float]]]) -> None:
    asyncio.run(_consume(port, seconds, ready, start, out))


def run(name: str, module: str, seconds: float, *, pub1: bool = False, env: dict[str, str] | None = None) -> Result:
    ctx = mp.get_context("spawn")
    with start_daemon(module, env=env) as daemon:
        ready, start = ctx.Event(), ctx.Event()
        pq: mp.Queue[int] = ctx.Queue()
        cq: mp.Queue[tuple[int, list[float]]] = ctx.Queue()
        consumer = ctx.Process(target=_consumer_main, args=(daemon.tcp_port, seconds, ready, start, cq))
        producer = ctx.Process(target=_producer_main, args=(daemon.tcp_port, seconds, start, pq, pub1))
        consumer.start()
        ready.wait(30)
        producer.start()
        time.sleep(0.5)  # let the producer process import and connect before the clock starts
        start.set()
        sent = pq.get(timeout=seconds + 60)
        received, latencies = cq.get(timeout=seconds + 60)
        producer.join()
        consumer.join()
        rss = peak_rss_mb(daemon.proc.pid)
    latencies.sort()
    return Result(name, seconds, sent, received, percentile(latencies, 50), percentile(latencies, 99), rss, daemon.runtime)


def report(results: list[Result]) -> None:
    print(f"{'server':16} {'in msg/s':>10} {'out msg/s':>10} {'MB/s out':>9} {'p50 ms':>8} {'p99 ms':>8} {'peak RSS MiB':>13}  runs on")
    for r in results:
        mb = r.out_rate * MSG_SIZE / 1e6
        print(f"{r.name:16} {r.in_rate:10.0f} {r.out_rate:10.0f} {mb:9.1f} {r.p50_ms:8.1f} {r.p99_ms:8.1f} {r.peak_rss_mb:13.1f}  {r.runtime}")
    by = {r.name: r for r in results}
    relay = by.get("relay")
    if relay is None:
        return
    for n in results:
        if n is not relay:
            print(f"{n.name} / relay: in {n.in_rate / relay.in_rate:.0%}, out {n.out_rate / relay.out_rate:.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--only", choices=["nsqd", "relay"])
    parser.add_argument("--pub1", action="store_true", help=f"PUB batch 1: {PUB1_CONNECTIONS} connections, a round trip per message")
    parser.add_argument("--nsqd", default="nsqd", help=f"comma-separated builds of nsqd to run: {', '.join(NSQD_VARIANTS)}")
    args = parser.parse_args()
    variants = args.nsqd.split(",")
    for v in variants:
        if v not in NSQD_VARIANTS:
            parser.error(f"unknown --nsqd {v!r}")
    mode = f"PUB batch 1, {PUB1_CONNECTIONS} connections" if args.pub1 else f"MPUB {BATCH} x {MSG_SIZE} B, {WINDOW} in flight"
    print(f"setup: {mode}; one consumer RDY {RDY}; {args.seconds:g} s each; {cpu_count()} cores shared by server, producer and consumer")
    results = []
    if args.only in (None, "relay"):
        results.append(run("relay", "bench.relay", args.seconds, pub1=args.pub1))
    if args.only in (None, "nsqd"):
        for v in variants:
            results.append(run(v, "broker.apps.nsqd", args.seconds, pub1=args.pub1, env=NSQD_VARIANTS[v]))
    report(results)


if __name__ == "__main__":
    main()
