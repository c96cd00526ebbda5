"""nsqd and nsqlookupd on Unix-domain sockets, and the client and utilities reaching them.

nsqd 1.3.0 listens on a socket file when ``--tcp-address`` or
``--http-address`` is a path; nsqlookupd, our client and the utilities do too
(beyond Go, which dials TCP only there).  Socket paths are kept short (a
``sun_path`` holds 107 bytes), so each test makes its own directory under
/tmp rather than under pytest's long ``tmp_path``.

No third-party client is exercised here: pynsq (and go-nsq) open TCP sockets
only, so the V2 protocol is spoken over the socket by hand, and by our client.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from broker.client.aio import Consumer, Message, Producer, fetch
from tests.integration.conftest import ROOT, Daemon, run_nsqd
from tests.integration.test_http_api import read_frame

pytestmark = pytest.mark.integration

BOUND = 30.0  # seconds anything awaited may take


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(dir="/tmp", prefix="nsq-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def is_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(path.lstat().st_mode)
    except FileNotFoundError:
        return False


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix socket: the standard library's client, its connect() replaced."""

    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=BOUND)
        self._path = str(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(BOUND)
        sock.connect(self._path)
        self.sock = sock


def unix_request(path: Path, method: str, target: str, body: bytes = b"") -> tuple[int, bytes]:
    conn = UnixHTTPConnection(path)
    try:
        conn.request(method, target, body=body)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def unix_json(path: Path, target: str) -> Any:
    status, body = unix_request(path, "GET", target)
    assert status == 200, body
    return json.loads(body)


def tool(name: str, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", f"broker.apps.{name}", *args],
        cwd=ROOT, input=input, capture_output=True, timeout=BOUND, check=False,
    )


@pytest.fixture
def unix_nsqd(nsqd_factory: Callable[..., Daemon], sock_dir: Path) -> Daemon:
    return nsqd_factory(f"--tcp-address={sock_dir}/nsqd.sock", f"--http-address={sock_dir}/http.sock")


# -- nsqd -------------------------------------------------------------------------------------------


def test_nsqd_listens_on_socket_files_and_says_so(unix_nsqd: Daemon, sock_dir: Path) -> None:
    assert unix_nsqd.tcp_address == (f"{sock_dir}/nsqd.sock", -1)
    assert unix_nsqd.http_address == (f"{sock_dir}/http.sock", -1)
    assert is_socket(sock_dir / "nsqd.sock") and is_socket(sock_dir / "http.sock")
    info = unix_json(sock_dir / "http.sock", "/info")
    assert (info["tcp_port"], info["http_port"]) == (-1, -1)  # Go nsqd's value for a Unix socket


def test_http_ping_and_pub_over_a_raw_unix_socket(unix_nsqd: Daemon, sock_dir: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(BOUND)
        s.connect(str(sock_dir / "http.sock"))
        s.sendall(b"GET /ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert body == b"OK"
    assert unix_request(sock_dir / "http.sock", "POST", "/pub?topic=t", b"hello") == (200, b"OK")
    [topic] = unix_json(sock_dir / "http.sock", "/stats?format=json&topic=t")["topics"]
    assert topic["message_count"] == 1


def test_the_v2_protocol_over_the_unix_socket(unix_nsqd: Daemon, sock_dir: Path) -> None:
    assert unix_request(sock_dir / "http.sock", "POST", "/pub?topic=t", b"over unix")[0] == 200
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(BOUND)
        s.connect(str(sock_dir / "nsqd.sock"))
        s.sendall(b"  V2SUB t c\n")
        assert read_frame(s) == (0, b"OK")
        stats = unix_json(sock_dir / "http.sock", "/stats?format=json&topic=t&channel=c&include_clients=true")
        [client] = stats["topics"][0]["channels"][0]["clients"]
        # Go's name for an unnamed Unix peer; no host part to name the client after until IDENTIFY
        assert (client["remote_address"], client["client_id"], client["hostname"]) == ("@", "", "")
        s.sendall(b"RDY 1\n")
        frame_type, data = read_frame(s)
        assert frame_type == 2
        attempts, msg_id, body = struct.unpack(">H", data[8:10])[0], data[10:26], data[26:]
        assert (attempts, body) == (1, b"over unix")
        s.sendall(b"FIN " + msg_id + b"\n")
        s.sendall(b"CLS\n")
        assert read_frame(s) == (0, b"CLOSE_WAIT")
    stats = unix_json(sock_dir / "http.sock", "/stats?format=json&topic=t&channel=c")
    channel = stats["topics"][0]["channels"][0]
    assert (channel["depth"], channel["in_flight_count"]) == (0, 0)


def test_our_client_produces_and_consumes_over_unix_sockets(unix_nsqd: Daemon, sock_dir: Path) -> None:
    tcp_path, http_path = f"{sock_dir}/nsqd.sock", f"{sock_dir}/http.sock"
    received: list[Message] = []
    got = asyncio.Event()

    def handle(msg: Message) -> None:
        received.append(msg)
        if len(received) == 3:
            got.set()

    async def main() -> None:
        async with Producer(tcp_path) as producer, Consumer("t", "c", handle, nsqd_tcp_addresses=[tcp_path]) as consumer:
            await consumer.wait_connections(1, BOUND)
            await producer.pub("t", b"one")
            await producer.mpub("t", [b"two", b"three"])
            await asyncio.wait_for(got.wait(), BOUND)
        resp = await fetch(f"http+unix://{quote(http_path, safe='')}/stats?format=json&topic=t")
        assert resp.status == 200
        stats: Any = resp.json()
        [topic] = stats["topics"]
        assert topic["message_count"] == 3

    asyncio.run(asyncio.wait_for(main(), BOUND * 2))
    assert sorted(m.body for m in received) == [b"one", b"three", b"two"]


def test_to_nsq_nsq_tail_and_nsq_stat_over_unix_sockets(unix_nsqd: Daemon, sock_dir: Path) -> None:
    tcp_path, http_path = f"{sock_dir}/nsqd.sock", f"{sock_dir}/http.sock"
    published = tool("to_nsq", "--topic=t", f"--nsqd-tcp-address={tcp_path}", input=b"a\nb\nc\n")
    assert published.returncode == 0, published.stderr.decode()
    tail = tool("nsq_tail", "--topic=t", "--channel=c", f"--nsqd-tcp-address={tcp_path}", "-n", "3")
    assert tail.returncode == 0, tail.stderr.decode()
    assert sorted(tail.stdout.splitlines()) == [b"a", b"b", b"c"]
    stat_run = tool("nsq_stat", "--topic=t", "--channel=c", f"--nsqd-http-address={http_path}", "--count=1", "--interval=100ms")
    assert stat_run.returncode == 0, stat_run.stderr.decode()
    assert "t/c - report 1 of 1" in stat_run.stdout.decode()


def test_sigterm_removes_the_socket_files(unix_nsqd: Daemon, sock_dir: Path) -> None:
    assert unix_nsqd.stop(signal.SIGTERM) == 0, unix_nsqd.stderr
    assert not (sock_dir / "nsqd.sock").exists()
    assert not (sock_dir / "http.sock").exists()
    assert f"TCP: closing {sock_dir}/nsqd.sock" in unix_nsqd.stderr


def _fatal(done: subprocess.CompletedProcess[str]) -> str:
    [line] = [ln for ln in done.stderr.splitlines() if " FATAL: " in ln]
    return line.split(" FATAL: ", 1)[1]


def test_a_stale_socket_file_is_left_alone_and_named(tmp_path: Path, sock_dir: Path, nsqd_factory: Callable[..., Daemon]) -> None:
    path = sock_dir / "nsqd.sock"
    crashed = nsqd_factory(f"--tcp-address={path}")
    crashed.stop(signal.SIGKILL)  # no clean exit: the file stays behind, as Go's would
    assert is_socket(path)
    done = run_nsqd(f"--tcp-address={path}", "--http-address=127.0.0.1:0", f"--data-path={tmp_path}")
    assert done.returncode == 1
    assert _fatal(done) == (
        f"failed to instantiate nsqd - listen ({path}) failed - listen unix {path}: bind: address already in use"
        " (a stale socket file, left by a process that did not exit cleanly: remove it and start again)"
    )
    assert is_socket(path)


def test_a_live_socket_and_a_plain_file_are_not_taken_over(
    tmp_path: Path, sock_dir: Path, unix_nsqd: Daemon
) -> None:
    live = sock_dir / "nsqd.sock"
    done = run_nsqd(f"--tcp-address={live}", "--http-address=127.0.0.1:0", f"--data-path={tmp_path}")
    assert done.returncode == 1
    assert _fatal(done).endswith("bind: address already in use (another process is listening on it)")
    assert unix_request(sock_dir / "http.sock", "GET", "/ping") == (200, b"OK")  # the first is unharmed

    plain = sock_dir / "plain"
    plain.write_text("not a socket")
    done = run_nsqd("--tcp-address=127.0.0.1:0", f"--http-address={plain}", f"--data-path={tmp_path}")
    assert done.returncode == 1
    assert _fatal(done) == (
        f"failed to instantiate nsqd - listen ({plain}) failed - listen unix {plain}: bind: address already in use"
        f" ({plain} exists and is not a socket; nothing was changed)"
    )
    assert plain.read_text() == "not a socket"


# -- nsqlookupd -------------------------------------------------------------------------------------


def test_nsqlookupd_on_unix_sockets_registers_an_nsqd_and_answers_lookups(
    nsqlookupd_factory: Callable[..., Daemon], nsqd_factory: Callable[..., Daemon], sock_dir: Path
) -> None:
    lookupd_tcp, lookupd_http = sock_dir / "lookupd.sock", sock_dir / "lookupd-http.sock"
    lookupd = nsqlookupd_factory(f"--tcp-address={lookupd_tcp}", f"--http-address={lookupd_http}")
    assert is_socket(lookupd_tcp) and is_socket(lookupd_http)
    assert unix_request(lookupd_http, "GET", "/ping") == (200, b"OK")

    nsqd = nsqd_factory(f"--lookupd-tcp-address={lookupd_tcp}", "--broadcast-address=127.0.0.1")
    host, port = nsqd.tcp_address
    assert tool("to_nsq", "--topic=t", f"--nsqd-tcp-address={host}:{port}", input=b"x\n").returncode == 0
    lookupd.wait_for_line(r"DB: client\(@\) REGISTER category:topic key:t")
    answer = unix_json(lookupd_http, "/lookup?topic=t")
    [producer] = answer["producers"]
    assert (producer["broadcast_address"], producer["tcp_port"]) == ("127.0.0.1", port)

    tail = tool("nsq_tail", "--topic=t", f"--lookupd-http-address={lookupd_http}", "-n", "1")
    assert tail.returncode == 0, tail.stderr.decode()
    assert tail.stdout.splitlines() == [b"x"]

    assert lookupd.stop(signal.SIGTERM) == 0
    assert not lookupd_tcp.exists() and not lookupd_http.exists()
    assert os.listdir(sock_dir) == []


@pytest.fixture
def background() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str, *args: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", f"broker.apps.{name}", *args],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


def test_nsq_to_http_posts_to_an_http_unix_url_and_nsq_to_nsq_relays_over_the_socket(
    unix_nsqd: Daemon, sock_dir: Path, background: Callable[..., subprocess.Popen[bytes]]
) -> None:
    tcp_path, http_path = f"{sock_dir}/nsqd.sock", sock_dir / "http.sock"
    bodies = [b"m%d" % i for i in range(5)]
    assert unix_request(http_path, "POST", "/mpub?topic=a", b"\n".join(bodies)) == (200, b"OK")
    to_http = background(
        "nsq_to_http", "--topic=a", "--channel=c", f"--nsqd-tcp-address={tcp_path}",
        f"--post=http+unix://{quote(str(http_path), safe='')}/pub?topic=b",
    )
    to_nsq = background(
        "nsq_to_nsq", "--topic=b", "--channel=c", f"--nsqd-tcp-address={tcp_path}",
        f"--destination-nsqd-tcp-address={tcp_path}", "--destination-topic=c",
    )
    tail = tool("nsq_tail", "--topic=c", f"--nsqd-tcp-address={tcp_path}", "-n", "5")
    assert tail.returncode == 0, tail.stderr.decode()
    assert sorted(tail.stdout.splitlines()) == bodies
    for proc in (to_http, to_nsq):
        proc.send_signal(signal.SIGINT)
        assert proc.wait(BOUND) == 0
