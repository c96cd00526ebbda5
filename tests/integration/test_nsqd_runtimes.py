"""nsqd on each runtime it can have: asyncio's loop or uvloop, the pure-Python core or the compiled build.

Each daemon is checked the same way: its start-up line says what it runs on,
and a PUB reaches a subscriber as a message frame that a FIN then finishes.
The compiled build takes about a minute to make, so those tests are slow
(CI runs them); the fall-backs (no build, a stale one, ``NSQD_COMPILED=0``)
need no compiler.
"""

from __future__ import annotations

import importlib.util
import re
import socket
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from nsqsim import compiled
from tests.integration.conftest import Daemon

HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None
BOUND = 10.0


def _read_frame(sock: socket.socket) -> tuple[int, bytes]:
    head = _read_exactly(sock, 8)
    size, kind = struct.unpack(">ii", head)
    return kind, _read_exactly(sock, size - 4)


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        assert chunk, "nsqd closed the connection"
        buf += chunk
    return buf


def assert_pub_sub_fin(daemon: Daemon) -> None:
    with socket.create_connection(daemon.tcp_address, timeout=BOUND) as sub, socket.create_connection(daemon.tcp_address, timeout=BOUND) as pub:
        sub.sendall(b"  V2SUB rt ch\n")
        assert _read_frame(sub) == (0, b"OK")
        sub.sendall(b"RDY 1\n")
        pub.sendall(b"  V2PUB rt\n" + struct.pack(">i", 5) + b"hello")
        assert _read_frame(pub) == (0, b"OK")
        kind, body = _read_frame(sub)
        assert kind == 2
        assert body[26:] == b"hello"
        sub.sendall(b"FIN " + body[10:26] + b"\n")
        sub.sendall(b"NOP\n")  # a FIN is not answered: an error would come before the next PUB's message
        pub.sendall(b"PUB rt\n" + struct.pack(">i", 3) + b"two")
        assert _read_frame(pub) == (0, b"OK")
        sub.sendall(b"RDY 1\n")
        kind, body = _read_frame(sub)
        assert (kind, body[26:]) == (2, b"two")


def runs_on(daemon: Daemon) -> str:
    return daemon.wait_for_line(re.compile(r"INFO: running on (.+)$")).group(1)


def test_nsqd_runs_on_asyncio_when_told(nsqd_factory: Callable[..., Daemon], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NSQD_EVENT_LOOP", "asyncio")
    monkeypatch.setenv("NSQD_COMPILED", "0")
    daemon = nsqd_factory()
    assert runs_on(daemon) == "asyncio, pure Python core"
    assert_pub_sub_fin(daemon)


@pytest.mark.skipif(not HAS_UVLOOP, reason="uvloop is not installed (pip install nsqsim[fast])")
def test_nsqd_runs_on_uvloop_when_installed(nsqd_factory: Callable[..., Daemon], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NSQD_EVENT_LOOP", raising=False)  # auto
    monkeypatch.setenv("NSQD_COMPILED", "0")
    daemon = nsqd_factory()
    assert runs_on(daemon) == "uvloop, pure Python core"
    assert_pub_sub_fin(daemon)


def test_an_unknown_event_loop_is_fatal(nsqd_factory: Callable[..., Daemon], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tests.integration.conftest import run_nsqd

    monkeypatch.setenv("NSQD_EVENT_LOOP", "tokio")
    done = run_nsqd(f"--data-path={tmp_path}", "--tcp-address=127.0.0.1:0", "--http-address=127.0.0.1:0")
    assert done.returncode == 1
    assert "FATAL: failed to instantiate nsqd - NSQD_EVENT_LOOP='tokio': expected one of auto, asyncio, uvloop" in done.stderr


def test_without_a_build_nsqd_runs_on_pure_python(nsqd_factory: Callable[..., Daemon], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NSQD_COMPILED_DIR", str(tmp_path / "no-build"))
    daemon = nsqd_factory()
    assert runs_on(daemon).endswith(", pure Python core")
    assert_pub_sub_fin(daemon)


def test_a_stale_build_is_never_run(nsqd_factory: Callable[..., Daemon], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    stale = tmp_path / "stale"
    (stale / "broker").mkdir(parents=True)
    (stale / "broker" / "__init__.py").write_text("raise SystemExit('the stale build ran')\n")
    (stale / compiled.STAMP).write_text("0" * 64)
    monkeypatch.setenv("NSQD_COMPILED_DIR", str(stale))
    daemon = nsqd_factory()
    assert runs_on(daemon).endswith(", pure Python core")


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compiled.build(build_dir=tmp_path_factory.mktemp("compiled") / "tree", quiet=True)


@pytest.mark.slow
def test_a_current_build_runs_and_carries_messages(build: Path, nsqd_factory: Callable[..., Daemon], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NSQD_COMPILED_DIR", str(build))
    monkeypatch.delenv("NSQD_COMPILED", raising=False)  # auto
    daemon = nsqd_factory()
    assert runs_on(daemon).endswith(", compiled core")
    assert_pub_sub_fin(daemon)


@pytest.mark.slow
def test_nsqd_compiled_0_keeps_pure_python_beside_a_current_build(build: Path, nsqd_factory: Callable[..., Daemon], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NSQD_COMPILED_DIR", str(build))
    monkeypatch.setenv("NSQD_COMPILED", "0")
    daemon = nsqd_factory()
    assert runs_on(daemon).endswith(", pure Python core")
