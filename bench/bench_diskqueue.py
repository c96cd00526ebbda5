"""Disk queue throughput on the real file system: ``python -m bench.bench_diskqueue``.

Writes N messages, then reads them back, and prints messages/s and MB/s for
each phase, in three settings:

* nsqd's defaults (sync every 2500 operations, 100 MiB files);
* ``--sync-every=1``: an fsync and a metadata write for every message;
* durable publishing: one ``on_synced`` per message, group-committed every
  ``--batch`` messages (one fsync per batch, no metadata write).

The loop never yields to an event loop, so ``--sync-timeout`` never fires here,
as under sustained load in nsqd: syncs come from the operation count and from
rolling files.  Put the directory on the disk you care about (``--dir``): a
tmpfs makes fsync free.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

from broker.runtime.files import OSFileSystem
from broker.storage.diskqueue import DiskQueue


class _Timer:
    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn: Callable[[], None] | None = fn

    def cancel(self) -> None:
        self.fn = None


class _BenchClock:
    """Timers run only when ``run_now`` is called: the bench is the event loop."""

    def __init__(self) -> None:
        self._due: list[_Timer] = []

    def now(self) -> float:
        return time.monotonic()

    def wall_ns(self) -> int:
        return time.time_ns()

    def call_later(self, delay: float, fn: Callable[[], None]) -> _Timer:
        timer = _Timer(fn)
        if delay <= 0:
            self._due.append(timer)
        return timer

    def run_now(self) -> None:
        due, self._due = self._due, []
        for timer in due:
            if timer.fn is not None:
                timer.fn()


class _NoLog:
    def log(self, level: str, msg: str) -> None:
        pass


@dataclass
class Result:
    name: str
    count: int
    size: int
    write_s: float
    read_s: float

    def lines(self) -> list[str]:
        out = []
        for phase, secs in (("write", self.write_s), ("read", self.read_s)):
            rate = self.count / secs
            mb = rate * self.size / 1e6
            out.append(f"{self.name:<34} {phase:<5} {self.count:>8} msgs  {rate:>11,.0f} msgs/s  {mb:>8.1f} MB/s")
        return out


def run(name: str, directory: str, count: int, size: int, sync_every: int, batch: int = 0) -> Result:
    clock = _BenchClock()
    q = DiskQueue(
        "bench",
        directory,
        OSFileSystem(),
        clock,
        _NoLog(),
        max_bytes_per_file=100 * 1024 * 1024,
        sync_every=sync_every,
        sync_timeout=2.0,
        min_msg_size=1,
        max_msg_size=1024 * 1024,
    )
    payload = bytes(range(256)) * (size // 256 + 1)
    msgs = [payload[i % 256 : i % 256 + size] for i in range(256)]
    failures: list[Exception] = []

    def synced(err: Exception | None) -> None:
        if err is not None:
            failures.append(err)

    start = time.perf_counter()
    for i in range(count):
        q.put(msgs[i & 255])
        if batch:
            q.on_synced(synced)
            if (i + 1) % batch == 0:
                clock.run_now()
    clock.run_now()
    q.sync()
    write_s = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"{len(failures)} durable puts failed: {failures[0]}")

    start = time.perf_counter()
    n = 0
    while q.read() is not None:
        n += 1
    q.sync()
    read_s = time.perf_counter() - start
    if n != count:
        raise RuntimeError(f"read {n} messages, wrote {count}")
    q.delete()
    return Result(name, count, size, write_s, read_s)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200_000, help="messages at the default settings")
    parser.add_argument("--sync-count", type=int, default=2_000, help="messages with --sync-every=1")
    parser.add_argument("--size", type=int, default=200, help="message size in bytes")
    parser.add_argument("--batch", type=int, default=100, help="durable puts per group commit")
    parser.add_argument("--dir", default=None, help="where to put the files (default: a new temporary directory)")
    args = parser.parse_args(argv)

    parent = tempfile.mkdtemp(prefix="bench-diskqueue-", dir=args.dir)
    try:
        print(f"disk queue, {args.size}-byte messages, files in {parent}")
        results = [
            run("defaults (sync-every 2500)", f"{parent}/a", args.count, args.size, 2500),
            run("sync-every 1", f"{parent}/b", args.sync_count, args.size, 1),
            run(f"durable puts, group commit of {args.batch}", f"{parent}/c", args.sync_count * 10, args.size, 2500, args.batch),
        ]
        for result in results:
            for line in result.lines():
                print(line)
    finally:
        shutil.rmtree(parent, ignore_errors=True)


if __name__ == "__main__":
    main()
