"""Starting the real daemons as subprocesses, for every integration test.

``start_nsqd(data_path, *flags)`` runs ``python -m broker.apps.nsqd`` on
127.0.0.1 with port 0 for TCP and HTTP, reads the real ports from its
``TCP: listening on`` / ``HTTP: listening on`` log lines (waiting on the lines
themselves, under an overall bound), and returns a ``Daemon``.  The ``nsqd``
fixture gives one started daemon; ``nsqd_factory`` starts as many as a test
asks for.  Either way every process is stopped when the test ends, killed if
it will not stop.  ``run_nsqd(*args)`` runs one that is expected to exit by
itself (``--version``, a bad flag).

``start_nsqlookupd(*flags)``, the ``nsqlookupd_factory`` fixture and
``run_nsqlookupd(*args)`` do the same for nsqlookupd.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Every daemon a test starts runs on the pure-Python tree unless the test asks for the
# compiled build (tests/integration/test_nsqd_runtimes.py): whether a build happens to
# exist in the checkout (tests/sim/test_compiled.py makes one) must not change the suite.
os.environ.setdefault("NSQD_COMPILED", "0")
START_BOUND = 30.0  # seconds a daemon may take to report its ports before the test fails
EXIT_BOUND = 30.0  # seconds a daemon may take to exit after a signal before it is killed


def nsqd_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "broker.apps.nsqd", *args]


def nsqlookupd_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "broker.apps.nsqlookupd", *args]


class Daemon:
    """A running daemon subprocess, its stderr collected line by line as it comes."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.addresses: dict[str, tuple[str, int]] = {}
        self._eof = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    @property
    def tcp_address(self) -> tuple[str, int]:
        return self.addresses["TCP"]

    @property
    def http_address(self) -> tuple[str, int]:
        return self.addresses["HTTP"]

    @property
    def stderr(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for_line(self, pattern: str | re.Pattern[str], bound: float = START_BOUND) -> re.Match[str]:
        """The first stderr line matching ``pattern``, waiting for it to be written."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + bound
        seen = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    m = regex.search(line)
                    if m:
                        return m
                seen = len(self.lines)
                if self._eof:
                    raise AssertionError(f"nsqd exited ({self.proc.wait()}) before {regex.pattern!r}:\n{self.stderr}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {regex.pattern!r} within {bound}s:\n{self.stderr}")
                self._changed.wait(left)

    def wait_for_lines(self, pattern: str | re.Pattern[str], count: int, bound: float = START_BOUND) -> list[str]:
        """The first ``count`` stderr lines matching ``pattern``, waiting until there are that many."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + bound
        with self._changed:
            while True:
                found = [line for line in self.lines if regex.search(line)]
                if len(found) >= count:
                    return found[:count]
                if self._eof:
                    raise AssertionError(f"exited ({self.proc.wait()}) with {len(found)} of {count} {regex.pattern!r}:\n{self.stderr}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(found)} of {count} {regex.pattern!r} within {bound}s:\n{self.stderr}")
                self._changed.wait(left)

    def wait_listening(self, protocols: tuple[str, ...] = ("TCP", "HTTP")) -> None:
        for proto in protocols:
            m = self.wait_for_line(rf" INFO: {proto}: listening on (\S+)$")
            if m.group(1).startswith(("/", "@")):  # a Unix socket (broker.wire.netaddr)
                self.addresses[proto] = (m.group(1), -1)
                continue
            host, port = m.group(1).rsplit(":", 1)
            self.addresses[proto] = (host.strip("[]"), int(port))

    def send_signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, bound: float = EXIT_BOUND) -> int:
        """The exit status, once the process has exited and its stderr is read."""
        code = self.proc.wait(bound)
        self._reader.join(bound)
        return code

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal, wait, and kill if it does not exit; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.wait()
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.wait()

    def close(self) -> None:
        self.stop()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def start_nsqd(data_path: Path, *args: str, protocols: tuple[str, ...] = ("TCP", "HTTP")) -> Daemon:
    """A started nsqd on 127.0.0.1 (ports chosen by the OS); ``args`` may override any flag."""
    data_path.mkdir(parents=True, exist_ok=True)
    daemon = Daemon(
        nsqd_command(
            "--tcp-address=127.0.0.1:0",
            "--http-address=127.0.0.1:0",
            f"--data-path={data_path}",
            *args,
        )
    )
    try:
        daemon.wait_listening(protocols)
    except BaseException:
        daemon.close()
        raise
    return daemon


def run_nsqd(*args: str, bound: float = EXIT_BOUND) -> subprocess.CompletedProcess[str]:
    """Run nsqd to completion (for runs that exit by themselves)."""
    return subprocess.run(
        nsqd_command(*args),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=bound,
        check=False,
    )


def start_nsqlookupd(*args: str) -> Daemon:
    """A started nsqlookupd on 127.0.0.1 (ports chosen by the OS unless ``args`` say otherwise)."""
    daemon = Daemon(nsqlookupd_command("--tcp-address=127.0.0.1:0", "--http-address=127.0.0.1:0", *args))
    try:
        daemon.wait_listening()
    except BaseException:
        daemon.close()
        raise
    return daemon


def run_nsqlookupd(*args: str, bound: float = EXIT_BOUND) -> subprocess.CompletedProcess[str]:
    """Run nsqlookupd to completion (for runs that exit by themselves)."""
    return subprocess.run(
        nsqlookupd_command(*args),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=bound,
        check=False,
    )


@pytest.fixture
def nsqlookupd_factory() -> Iterator[Callable[..., Daemon]]:
    """``start(*flags)``; every nsqlookupd started is stopped after the test."""
    started: list[Daemon] = []

    def start(*args: str) -> Daemon:
        daemon = start_nsqlookupd(*args)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.close()


@pytest.fixture
def nsqd_factory(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """``start(*flags, data_path=..., protocols=...)``; all started daemons are stopped after the test."""
    started: list[Daemon] = []

    def start(*args: str, data_path: Path | None = None, protocols: tuple[str, ...] = ("TCP", "HTTP")) -> Daemon:
        path = data_path if data_path is not None else tmp_path / f"nsqd-{len(started)}"
        daemon = start_nsqd(path, *args, protocols=protocols)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.close()


@pytest.fixture
def nsqd(nsqd_factory: Callable[..., Daemon]) -> Daemon:
    """One started nsqd with default flags (and a fresh data path)."""
    return nsqd_factory()
