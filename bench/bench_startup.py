"""Start-up time: from exec to the first ``200`` answer to ``GET /ping``.

Each run execs a daemon on 127.0.0.1 port 0 (a fresh data path), reads the
HTTP port from its ``HTTP: listening on`` line, and sends ``GET /ping`` until
one is answered 200; the time is from just before the exec to that answer.
Printed: the median and the range over ``--runs`` (10) for nsqd, and for
``bench/http_ceiling.py`` (an interpreter that imports asyncio, listens and
answers: the floor of any Python daemon here), with nsqd's same-run ratio to
the floor.  The target (issue #15) is 0.5 s for nsqd.

Run: ``python -m bench.bench_startup [--runs 10]``.
"""

from __future__ import annotations

import argparse
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

_LISTEN = re.compile(rb"HTTP: listening on (\S+)")
_PING = b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(_PING)
            return s.recv(64).startswith(b"HTTP/1.1 200 ")
    except OSError:
        return False


def time_to_ping(cmd: list[str]) -> float:
    """Seconds from exec to the first 200 answer to /ping."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        assert proc.stderr is not None
        port = 0
        while not port:
            line = proc.stderr.readline()
            if not line:
                raise RuntimeError(f"{cmd} exited before listening (status {proc.wait()})")
            m = _LISTEN.search(line)
            if m:
                port = int(m.group(1).rsplit(b":", 1)[1])
        while not _ping(port):
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd} exited (status {proc.returncode})")
        return time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(10)


def runs(cmd: list[str], n: int) -> list[float]:
    return [time_to_ping(cmd) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    print(f"exec -> first 200 to GET /ping, {args.runs} runs each, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="nsqsim-startup-") as data:
        nsqd = [sys.executable, "-m", "broker.apps.nsqd", "--tcp-address=127.0.0.1:0", "--http-address=127.0.0.1:0", f"--data-path={data}"]
        floor = [sys.executable, "-m", "bench.http_ceiling", "--http-address=127.0.0.1:0"]
        results = {"nsqd": runs(nsqd, args.runs), "floor (bare asyncio responder)": runs(floor, args.runs)}
    for name, times in results.items():
        print(f"{name:<32} median {statistics.median(times) * 1e3:6.0f} ms  (min {min(times) * 1e3:.0f}, max {max(times) * 1e3:.0f})")
    ratio = statistics.median(results["nsqd"]) / statistics.median(results["floor (bare asyncio responder)"])
    print(f"nsqd / floor {ratio:.2f}; target: nsqd within 500 ms")


if __name__ == "__main__":
    main()
