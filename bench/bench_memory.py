"""What nsqd's memory holds: bytes of RSS per message held in memory, and per idle connection.

* Held messages: nsqd runs with ``--mem-queue-size=1000000``, a channel is
  created (``/channel/create``, no consumer), and one connection publishes
  ``--messages`` (1,000,000) messages of 200 bytes in MPUB batches of 200.
  Printed: the daemon's RSS before and after, the difference per message, and
  its peak RSS.  A message of 200 bytes can take no less than its body.
* Idle connections: ``--connections`` (10,000) TCP connections are opened and
  each sends the V2 magic, then nothing; printed: the RSS before and after,
  the difference per connection.
* ``--core``: the same held messages in the core without sockets, measured
  with tracemalloc (deterministic; what each held message's Python objects
  cost, before the allocator's own overhead).

    python -m bench.bench_memory [--messages N] [--connections N] [--nsqd nsqd,asyncio,...] [--core]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import struct
import time
import tracemalloc
import urllib.request

from bench.common import NSQD_VARIANTS, start_daemon

MSG_SIZE = 200
BATCH = 200
WINDOW = 8
TOPIC = "bench"

_FRAME = struct.Struct(">ii")


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def hwm_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def _http(port: int, path: str, method: str = "POST") -> bytes:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=30) as resp:
        body: bytes = resp.read()
        return body


def _settle(pid: int) -> int:
    """RSS once it stops moving (the daemon has finished what it was handed)."""
    last = rss_bytes(pid)
    for _ in range(50):
        time.sleep(0.1)
        now = rss_bytes(pid)
        if now == last:
            return now
        last = now
    return last


def _mpub(count: int) -> bytes:
    body = b"".join(struct.pack(">i", MSG_SIZE) + b"m" * MSG_SIZE for _ in range(count))
    payload = struct.pack(">i", count) + body
    return b"MPUB " + TOPIC.encode() + b"\n" + struct.pack(">i", len(payload)) + payload


def publish(port: int, messages: int) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"  V2")
    cmd = _mpub(BATCH)
    batches = messages // BATCH
    sent = acked = 0
    buf = bytearray()
    while acked < batches:
        while sent < batches and sent - acked < WINDOW:
            sock.sendall(cmd)
            sent += 1
        data = sock.recv(65536)
        if not data:
            raise RuntimeError("nsqd closed the connection")
        buf += data
        while len(buf) >= 8:
            size, kind = _FRAME.unpack_from(buf, 0)
            if len(buf) < 4 + size:
                break
            body = bytes(buf[8 : 4 + size])
            del buf[: 4 + size]
            if kind != 0 or body != b"OK":
                raise RuntimeError(f"MPUB answered {body!r}")
            acked += 1
    sock.close()


def held(variant: str, messages: int) -> None:
    with start_daemon(args=["--mem-queue-size=1000000"], env=NSQD_VARIANTS[variant]) as d:
        _http(d.http_port, f"/topic/create?topic={TOPIC}")
        _http(d.http_port, f"/channel/create?topic={TOPIC}&channel=held")
        before = _settle(d.proc.pid)
        start = time.perf_counter()
        publish(d.tcp_port, messages)
        took = time.perf_counter() - start
        after = _settle(d.proc.pid)
        stats = json.loads(_http(d.http_port, f"/stats?format=json&topic={TOPIC}", "GET"))
        depth = stats["topics"][0]["channels"][0]["depth"]
        per = (after - before) / depth
        print(
            f"{variant:16} held {depth:,} x {MSG_SIZE} B: RSS {before / 2**20:.1f} -> {after / 2**20:.1f} MiB,"
            f" {per:.0f} B/message ({per / MSG_SIZE:.2f}x the body), peak {hwm_bytes(d.proc.pid) / 2**20:.1f} MiB;"
            f" published at {messages / took:,.0f} msgs/s  [{d.runtime}]"
        )


def idle(variant: str, connections: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < connections + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, connections + 100), hard))
    with start_daemon(env=NSQD_VARIANTS[variant]) as d:
        before = _settle(d.proc.pid)
        socks = []
        try:
            for _ in range(connections):
                s = socket.create_connection(("127.0.0.1", d.tcp_port))
                s.sendall(b"  V2")
                socks.append(s)
            deadline = time.monotonic() + 60
            while _accepted(d.proc.pid) < connections and time.monotonic() < deadline:
                time.sleep(0.1)  # every connection accepted
            after = _settle(d.proc.pid)
            per = (after - before) / connections
            print(
                f"{variant:16} {connections:,} idle connections: RSS {before / 2**20:.1f} -> {after / 2**20:.1f} MiB,"
                f" {per / 1024:.1f} KiB/connection  [{d.runtime}]"
            )
        finally:
            for s in socks:
                s.close()


def _accepted(pid: int) -> int:
    """Sockets the daemon holds (listeners and datagram sender included)."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n


def core(messages: int) -> None:
    """tracemalloc's bytes per held message in the core, no sockets."""
    from bench.bench_core import _Clock, _Conn, _Log, _Rand
    from broker.nsqd.nsqd import NSQD
    from broker.nsqd.options import Options
    from broker.wire import v2

    nsqd = NSQD(Options(node_id=1, mem_queue_size=messages), clock=_Clock(), rand=_Rand(), logger=_Log(), hostname="bench")
    producer = _Conn(nsqd.tcp_handler())
    producer.handler.data_received(v2.MAGIC_V2)
    nsqd.get_topic(TOPIC).get_channel("held")
    mpub = v2.encode_mpub(TOPIC, [b"m" * MSG_SIZE] * BATCH)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for _ in range(messages // BATCH):
        producer.handler.data_received(mpub)
        producer.out.clear()
    used = tracemalloc.get_traced_memory()[0] - base
    snapshot = tracemalloc.take_snapshot()
    tracemalloc.stop()
    depth = nsqd.get_topic(TOPIC).get_channel("held").depth()
    print(f"core: {depth:,} held messages of {MSG_SIZE} B: {used / depth:.0f} B/message traced by tracemalloc; by line:")
    for stat in snapshot.statistics("lineno")[:6]:
        print(f"  {stat.size / depth:7.1f} B/message  {stat.traceback[0].filename.rsplit('/', 2)[-1]}:{stat.traceback[0].lineno}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--nsqd", default="nsqd", help=f"comma-separated builds of nsqd: {', '.join(NSQD_VARIANTS)}")
    parser.add_argument("--core", action="store_true", help="only the core's held messages, under tracemalloc")
    args = parser.parse_args()
    if args.core:
        core(args.messages)
        return
    for v in args.nsqd.split(","):
        if v not in NSQD_VARIANTS:
            parser.error(f"unknown --nsqd {v!r}")
        if args.messages:
            held(v, args.messages)
        if args.connections:
            idle(v, args.connections)


if __name__ == "__main__":
    main()
