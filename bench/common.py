"""What the benchmarks share: starting a daemon, reading its peak memory, percentiles."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["NSQD_VARIANTS", "Daemon", "peak_rss_mb", "percentile", "start_daemon"]

_LISTEN = re.compile(r"(TCP|HTTP): listening on (\S+)")
_RUNNING = re.compile(r"INFO: running on (.+)$")


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    tcp_port: int
    http_port: int
    data_path: str
    runtime: str = ""  # nsqd's "running on ..." line: its event loop and core build


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


@contextmanager
def start_daemon(module: str = "broker.apps.nsqd", args: Sequence[str] = (), env: Mapping[str, str] | None = None) -> Iterator[Daemon]:
    """Run a daemon on 127.0.0.1 free ports for the duration of the block (``env``: added to the environment)."""
    with tempfile.TemporaryDirectory(prefix="nsqsim-bench-") as data_path:
        # NSQSIM_BENCH_PROFILE=FILE runs the daemon under cProfile, written to FILE at exit.
        profile = os.environ.get("NSQSIM_BENCH_PROFILE")
        prefix = ["-m", "cProfile", "-o", profile] if profile else []
        cmd = [sys.executable, *prefix, "-m", module, "--tcp-address=127.0.0.1:0", "--http-address=127.0.0.1:0", f"--data-path={data_path}", *args]
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env={**os.environ, **(env or {})})
        try:
            ports: dict[str, int] = {}
            runtime = ""
            assert proc.stderr is not None
            deadline = time.monotonic() + 20
            while len(ports) < 2:
                line = proc.stderr.readline().decode(errors="replace")
                if not line:
                    raise RuntimeError(f"{module} exited before listening (status {proc.wait()})")
                r = _RUNNING.search(line.rstrip())
                if r:
                    runtime = r.group(1)
                m = _LISTEN.search(line)
                if m:
                    ports[m.group(1)] = _port(m.group(2))
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{module} did not report its ports in time")
            # Keep draining stderr so the daemon never blocks on a full pipe.
            drain = subprocess.Popen(["cat"], stdin=proc.stderr, stdout=subprocess.DEVNULL)
            try:
                yield Daemon(proc, ports["TCP"], ports["HTTP"], data_path, runtime)
            finally:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                drain.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size so far (Linux VmHWM), in MiB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def percentile(sorted_values: Sequence[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


# The nsqd builds a benchmark can run side by side (--nsqd): the environment each is started with.
NSQD_VARIANTS: dict[str, dict[str, str]] = {
    "nsqd": {},  # as configured: uvloop if installed, the compiled build if current
    "asyncio": {"NSQD_EVENT_LOOP": "asyncio", "NSQD_COMPILED": "0"},
    "uvloop": {"NSQD_EVENT_LOOP": "uvloop", "NSQD_COMPILED": "0"},
    "compiled": {"NSQD_EVENT_LOOP": "asyncio", "NSQD_COMPILED": "1"},
    "compiled+uvloop": {"NSQD_EVENT_LOOP": "uvloop", "NSQD_COMPILED": "1"},
}


def cpu_count() -> int:
    return os.cpu_count() or 1
