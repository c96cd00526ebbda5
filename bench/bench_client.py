"""Pub/sub throughput through our asyncio Producer and Consumer, beside the raw-socket figures.

The same run as ``bench.bench_pubsub`` (200-byte messages, MPUB batches of
200 with 4 outstanding, one consumer connection at RDY 2500, ``--seconds``
long, each side in its own process, send time carried in each body for the
latency), but published with ``Producer.mpub`` and consumed by a
``Consumer`` whose plain handler lets the consumer FIN each message.  The
raw-socket run of ``bench_pubsub`` against nsqd is made first, on its own
daemon, so the client's overhead is the difference between the two rows.

Run: ``python -m bench.bench_client [--seconds 10] [--only client|raw]``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import struct
import time
from multiprocessing.synchronize import Event

from bench import bench_pubsub
from bench.bench_pubsub import BATCH, MSG_SIZE, RDY, TOPIC, WINDOW, Result
from bench.common import peak_rss_mb, percentile, start_daemon
from broker.client.aio import Consumer, Message, Producer

_TS = struct.Struct(">q")
_PAD = b"x" * (MSG_SIZE - _TS.size)


class _Quiet:
    def log(self, level: str, msg: str) -> None:
        if level in ("ERROR", "FATAL"):
            print(f"{level}: {msg}")


async def _produce(port: int, seconds: float, start: Event, out: mp.Queue[int]) -> None:
    producer = Producer(f"127.0.0.1:{port}", logger=_Quiet())
    await producer.connect()
    start.wait()
    acked = 0
    pending: set[asyncio.Future[None]] = set()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        while len(pending) < WINDOW:
            body = _TS.pack(time.monotonic_ns()) + _PAD
            pending.add(producer.mpub(TOPIC, [body] * BATCH))
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for fut in done:
            fut.result()
            acked += BATCH
    for fut in pending:
        await fut
        acked += BATCH
    await producer.close()
    out.put(acked)


async def _consume(port: int, seconds: float, ready: Event, start: Event, out: mp.Queue[tuple[int, list[float]]]) -> None:
    received = 0
    latencies: list[float] = []

    def handle(msg: Message) -> None:
        nonlocal received
        if received % 64 == 0:
            latencies.append((time.monotonic_ns() - _TS.unpack_from(msg.body)[0]) / 1e6)
        received += 1

    consumer = Consumer(TOPIC, "ch", handle, nsqd_tcp_addresses=[f"127.0.0.1:{port}"], max_in_flight=RDY, logger=_Quiet())
    await consumer.start()
    await consumer.wait_connections(1)
    ready.set()
    start.wait()
    await asyncio.sleep(seconds + 2)  # the measured window, and the tail arriving
    await consumer.stop()
    out.put((received, latencies))


def _producer_main(port: int, seconds: float, start: Event, out: mp.Queue[int]) -> None:
    asyncio.run(_produce(port, seconds, start, out))


def _consumer_main(port: int, seconds: float, ready: Event, start: Event, out: mp.Queue[tuple[int, list[float]]]) -> None:
    asyncio.run(_consume(port, seconds, ready, start, out))


def run_client(seconds: float) -> Result:
    ctx = mp.get_context("spawn")
    with start_daemon("broker.apps.nsqd") as daemon:
        ready, start = ctx.Event(), ctx.Event()
        pq: mp.Queue[int] = ctx.Queue()
        cq: mp.Queue[tuple[int, list[float]]] = ctx.Queue()
        consumer = ctx.Process(target=_consumer_main, args=(daemon.tcp_port, seconds, ready, start, cq))
        producer = ctx.Process(target=_producer_main, args=(daemon.tcp_port, seconds, start, pq))
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
    return Result("client", seconds, sent, received, percentile(latencies, 50), percentile(latencies, 99), rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--only", choices=["client", "raw"])
    args = parser.parse_args()
    results = []
    if args.only in (None, "raw"):
        results.append(bench_pubsub.run("raw", "broker.apps.nsqd", args.seconds))
    if args.only in (None, "client"):
        results.append(run_client(args.seconds))
    bench_pubsub.report(results)
    by = {r.name: r for r in results}
    if "raw" in by and "client" in by:
        c, r = by["client"], by["raw"]
        print(f"client / raw sockets: in {c.in_rate / r.in_rate:.0%}, out {c.out_rate / r.out_rate:.0%}")


if __name__ == "__main__":
    main()
