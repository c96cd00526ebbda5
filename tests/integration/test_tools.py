"""The NSQ utilities run as a user runs them: their console scripts, against real daemons.

Each tool is started from the script pip installed beside this Python
(``.venv/bin/nsq_tail``, ...), its output read as it comes.  Tests wait on what
the tools print (a log line, a table, a line of data) or on what an HTTP
server received, each under ``BOUND``; every process a test starts is
stopped (killed if it will not stop) when the test ends.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO

import pytest

from tests.integration.conftest import Daemon

pytestmark = pytest.mark.integration

BOUND = 30.0  # seconds anything awaited may take
TOOLS = ("to_nsq", "nsq_tail", "nsq_stat", "nsq_to_file", "nsq_to_nsq", "nsq_to_http")
SHORT_HOST = socket.gethostname().split(".")[0]


def script(name: str) -> str:
    path = Path(sys.executable).parent / name
    assert path.exists(), f"{path} is not installed: pip install -e . installs the console scripts"
    return str(path)


def tcp(daemon: Daemon) -> str:
    host, port = daemon.tcp_address
    return f"{host}:{port}"


def http(daemon: Daemon) -> str:
    host, port = daemon.http_address
    return f"{host}:{port}"


def run_tool(name: str, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([script(name), *args], input=input, capture_output=True, timeout=BOUND, check=False)


class Tool:
    """A running tool; its stdout (bytes) and stderr (text) collected line by line."""

    def __init__(self, name: str, *args: str, stdin: bool = False) -> None:
        self.proc = subprocess.Popen(
            [script(name), *args],
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.out: list[bytes] = []
        self.err: list[str] = []
        self._changed = threading.Condition()
        self._ended = 0  # pipes at end of file
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out, False), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err, True), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, pipe: IO[bytes], into: list[bytes] | list[str], text: bool) -> None:
        for line in pipe:
            with self._changed:
                into.append(line.decode(errors="replace").rstrip("\n") if text else line.rstrip(b"\n"))  # type: ignore[arg-type]
                self._changed.notify_all()
        with self._changed:
            self._ended += 1
            self._changed.notify_all()

    def wait_until(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + BOUND
        with self._changed:
            while not done():
                if self._ended == 2:
                    raise AssertionError(f"exited ({self.proc.wait()}) before {what}:\n" + "\n".join(self.err))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {what} within {BOUND}s:\n" + "\n".join(self.err))
                self._changed.wait(left)

    def wait_err(self, pattern: str) -> None:
        regex = re.compile(pattern)
        self.wait_until(lambda: any(regex.search(line) for line in self.err), repr(pattern))

    def wait_out(self, pattern: bytes, count: int = 1) -> None:
        regex = re.compile(pattern)
        self.wait_until(lambda: sum(1 for line in self.out if regex.search(line)) >= count, f"{count} x {pattern!r}")

    def stop(self, sig: int = signal.SIGINT) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(BOUND)
        for reader in self._readers:
            reader.join(BOUND)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def tools() -> Iterator[Callable[..., Tool]]:
    started: list[Tool] = []

    def start(name: str, *args: str, stdin: bool = False) -> Tool:
        tool = Tool(name, *args, stdin=stdin)
        started.append(tool)
        return tool

    yield start
    for tool in started:
        tool.kill()


def post(daemon: Daemon, path: str, body: bytes = b"") -> bytes:
    with urllib.request.urlopen(f"http://{http(daemon)}{path}", data=body, timeout=BOUND) as resp:
        data: bytes = resp.read()
        return data


def channel_stats(daemon: Daemon, topic: str, channel: str) -> dict[str, int]:
    with urllib.request.urlopen(f"http://{http(daemon)}/stats?format=json&topic={topic}&channel={channel}", timeout=BOUND) as resp:
        [t] = json.load(resp)["topics"]
    [c] = t["channels"]
    return c  # type: ignore[no-any-return]


def topic_message_count(daemon: Daemon, topic: str) -> int:
    with urllib.request.urlopen(f"http://{http(daemon)}/stats?format=json&topic={topic}", timeout=BOUND) as resp:
        [t] = json.load(resp)["topics"]
    count: int = t["message_count"]
    return count


# -- basics ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TOOLS)
def test_version_and_bad_flags(name: str) -> None:
    version = run_tool(name, "--version")
    assert version.returncode == 0
    assert version.stdout.decode() == f"{name} v1.3.0\n"  # as the Go tools print it, with the NSQ version matched
    bad = run_tool(name, "--no-such-flag")
    assert bad.returncode == 2
    assert b"flag provided but not defined: -no-such-flag" in bad.stderr
    assert f"Usage of {name}:".encode() in bad.stderr


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("to_nsq", ["--nsqd-tcp-address=127.0.0.1:1"], "--topic required"),
        ("to_nsq", ["--topic=t", "--delimiter=ab", "--nsqd-tcp-address=127.0.0.1:1"], "--delimiter must be a single byte"),
        ("nsq_tail", ["--topic=t"], "--nsqd-tcp-address or --lookupd-http-address required"),
        ("nsq_stat", ["--topic=t", "--nsqd-http-address=127.0.0.1:1"], "--topic and --channel are required"),
        ("nsq_to_file", ["--nsqd-tcp-address=127.0.0.1:1"], "--topic or --topic-pattern required"),
        ("nsq_to_file", ["--topic=t", "--nsqd-tcp-address=127.0.0.1:1", "--gzip", "--filename-format=<TOPIC>.log"], "missing <REV>"),
        ("nsq_to_nsq", ["--topic=t", "--nsqd-tcp-address=127.0.0.1:1"], "--destination-nsqd-tcp-address required"),
        ("nsq_to_http", ["--topic=t", "--nsqd-tcp-address=127.0.0.1:1"], "--get or --post required"),
        ("nsq_to_http", ["--topic=t", "--nsqd-tcp-address=127.0.0.1:1", "--get=http://h/"], "must be a printf string"),
    ],
)
def test_bad_settings_are_fatal(name: str, args: list[str], message: str) -> None:
    result = run_tool(name, *args)
    assert result.returncode == 1
    assert message in result.stderr.decode()


# -- to_nsq and nsq_tail ----------------------------------------------------------------------------


def test_to_nsq_lines_come_out_of_nsq_tail(nsqd: Daemon) -> None:
    lines = [b"line %d" % i for i in range(200)]
    published = run_tool("to_nsq", "--topic=t", f"--nsqd-tcp-address={tcp(nsqd)}", input=b"\n".join([*lines[:100], b"", *lines[100:]]))
    assert published.returncode == 0, published.stderr.decode()
    tail = run_tool("nsq_tail", "--topic=t", f"--nsqd-tcp-address={tcp(nsqd)}", "-n", "200")
    assert tail.returncode == 0, tail.stderr.decode()
    assert sorted(tail.stdout.splitlines()) == sorted(lines)  # the empty line was skipped, the last one kept


def test_to_nsq_splits_on_the_delimiter_and_feeds_every_nsqd(nsqd_factory: Callable[..., Daemon]) -> None:
    a, b = nsqd_factory(), nsqd_factory()
    result = run_tool(
        "to_nsq", "--topic=t", "--delimiter=,", f"--nsqd-tcp-address={tcp(a)}", f"--nsqd-tcp-address={tcp(b)}",
        "--rate=1000", input=b"one,two,,three",
    )
    assert result.returncode == 0, result.stderr.decode()
    assert topic_message_count(a, "t") == topic_message_count(b, "t") == 3
    tail = run_tool("nsq_tail", "--topic=t", f"--nsqd-tcp-address={tcp(b)}", "-n", "3", "--print-topic")
    assert sorted(tail.stdout.splitlines()) == [b"t | one", b"t | three", b"t | two"]


# -- nsq_to_file ---------------------------------------------------------------------------------------


def publish(daemon: Daemon, topic: str, bodies: list[bytes]) -> None:
    post(daemon, f"/mpub?topic={topic}", b"\n".join(bodies))


def run_to_file(tools: Callable[..., Tool], nsqd: Daemon, out: Path, count: int, *flags: str) -> None:
    tool = tools("nsq_to_file", "--topic=t", f"--nsqd-tcp-address={tcp(nsqd)}", f"--output-dir={out}", "--log-level=debug", *flags)
    flushed = re.compile(r"flushed (\d+) records")
    tool.wait_until(lambda: sum(int(m.group(1)) for line in tool.err if (m := flushed.search(line))) >= count, f"{count} records flushed")
    assert tool.stop() == 0, "\n".join(tool.err)
    stats = channel_stats(nsqd, "t", "nsq_to_file")
    assert (stats["depth"], stats["in_flight_count"], stats["message_count"]) == (0, 0, count)


def test_nsq_to_file_writes_every_message_to_the_default_file_name(nsqd: Daemon, tools: Callable[..., Tool], tmp_path: Path) -> None:
    bodies = [b"message %d" % i for i in range(100)]
    publish(nsqd, "t", bodies)
    run_to_file(tools, nsqd, tmp_path / "out", 100)
    [path] = (tmp_path / "out").iterdir()
    assert re.fullmatch(rf"t\.{re.escape(SHORT_HOST)}\.\d{{4}}-\d\d-\d\d_\d\d\.log", path.name)
    assert sorted(path.read_bytes().splitlines()) == sorted(bodies)


def test_nsq_to_file_gzips(nsqd: Daemon, tools: Callable[..., Tool], tmp_path: Path) -> None:
    bodies = [b"zipped %d" % i for i in range(100)]
    publish(nsqd, "t", bodies)
    run_to_file(tools, nsqd, tmp_path / "out", 100, "--gzip")
    [path] = (tmp_path / "out").iterdir()
    assert re.fullmatch(rf"t\.{re.escape(SHORT_HOST)}-000000\.\d{{4}}-\d\d-\d\d_\d\d\.log\.gz", path.name)
    with gzip.open(path) as f:
        assert sorted(f.read().splitlines()) == sorted(bodies)


def test_nsq_to_file_rotates_by_size_through_a_work_dir(nsqd: Daemon, tools: Callable[..., Tool], tmp_path: Path) -> None:
    bodies = [b"%03d" % i + b"x" * 96 for i in range(50)]  # 100 bytes a line
    publish(nsqd, "t", bodies)
    out, work = tmp_path / "out", tmp_path / "work"
    run_to_file(tools, nsqd, out, 50, "--rotate-size=1000", f"--work-dir={work}")
    files = sorted(out.iterdir())
    assert len(files) >= 5  # no file grows past 1000 bytes by more than one line
    assert [p for p in work.iterdir()] == []  # every finished file was moved out
    for path in files:
        assert re.fullmatch(rf"t\.{re.escape(SHORT_HOST)}-\d{{6}}\.\d{{4}}-\d\d-\d\d_\d\d\.log", path.name)
        assert path.stat().st_size <= 1100
    assert sorted(line for p in files for line in p.read_bytes().splitlines()) == sorted(bodies)


def _unwritable_dir(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        d = tmp_path / "read-only"
        d.mkdir(mode=0o500)
        return d
    if not Path("/sys/kernel").is_dir():  # root writes anywhere but sysfs
        pytest.skip("root, and no /sys/kernel to stand for an unwritable directory")
    return Path("/sys/kernel")


def test_nsq_to_file_exits_with_a_fatal_line_when_it_cannot_write_the_output_dir(nsqd: Daemon, tmp_path: Path) -> None:
    publish(nsqd, "t", [b"one"])
    out = _unwritable_dir(tmp_path)
    result = run_tool("nsq_to_file", "--topic=t", f"--nsqd-tcp-address={tcp(nsqd)}", f"--output-dir={out}")
    assert result.returncode == 1
    [line] = [ln for ln in result.stderr.decode().splitlines() if "FATAL" in ln]
    # Go's FileLogger: "[topic/channel] unable to open <file>: open <file>: <why>", then exit 1
    assert re.fullmatch(
        rf"\[nsq_to_file\] \S+ \S+ FATAL: \[t/nsq_to_file\] unable to open ({re.escape(str(out))}/t\.\S+\.log): open \1: permission denied",
        line,
    ), line
    publish(nsqd, "t", [b"two"])  # the first stays in flight, for its msg-timeout, as in nsqd
    result = run_tool("nsq_to_file", "--topic=t", f"--nsqd-tcp-address={tcp(nsqd)}", f"--output-dir={out}/sub")
    assert result.returncode == 1
    assert f"FATAL: [t/nsq_to_file] unable to create dir: mkdir {out}/sub: " in result.stderr.decode()


# -- nsq_to_nsq -----------------------------------------------------------------------------------------


def test_nsq_to_nsq_copies_a_topic_between_daemons(nsqd_factory: Callable[..., Daemon], tools: Callable[..., Tool]) -> None:
    src, dst = nsqd_factory(), nsqd_factory()
    bodies = [b"copy %d" % i for i in range(60)]
    publish(src, "t", bodies)
    relay = tools(
        "nsq_to_nsq", "--topic=t", f"--nsqd-tcp-address={tcp(src)}", f"--destination-nsqd-tcp-address={tcp(dst)}",
        "--destination-topic=copied",
    )
    tail = run_tool("nsq_tail", "--topic=copied", f"--nsqd-tcp-address={tcp(dst)}", "-n", "60")
    assert sorted(tail.stdout.splitlines()) == sorted(bodies)
    assert relay.stop() == 0, "\n".join(relay.err)
    stats = channel_stats(src, "t", "nsq_to_nsq")
    assert (stats["depth"], stats["in_flight_count"], stats["message_count"]) == (0, 0, 60)


def test_nsq_to_nsq_logs_a_body_it_drops_as_not_json(nsqd_factory: Callable[..., Daemon], tools: Callable[..., Tool]) -> None:
    src, dst = nsqd_factory(), nsqd_factory()
    publish(src, "t", [b"not json", b'{"ok":1}'])
    relay = tools(
        "nsq_to_nsq", "--topic=t", f"--nsqd-tcp-address={tcp(src)}", f"--destination-nsqd-tcp-address={tcp(dst)}",
        "--require-json-field=ok",
    )
    relay.wait_err(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d ERROR: Unable to decode json: not json$")  # Go's log.Printf line
    tail = run_tool("nsq_tail", "--topic=t", f"--nsqd-tcp-address={tcp(dst)}", "-n", "1")
    assert tail.stdout == b'{"ok":1}\n'
    assert relay.stop() == 0, "\n".join(relay.err)
    stats = channel_stats(src, "t", "nsq_to_nsq")
    assert (stats["depth"], stats["in_flight_count"], stats["requeue_count"]) == (0, 0, 0)  # dropped: finished


# -- nsq_to_http ------------------------------------------------------------------------------------------


class Receiver(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 that records requests; ``fail`` bodies get one 500 first."""

    def __init__(self, fail: set[bytes]) -> None:
        self.requests: list[tuple[str, str, bytes, int]] = []  # method, path, body, status
        self.fail = set(fail)
        self.changed = threading.Condition()
        super().__init__(("127.0.0.1", 0), _Handler)

    def record(self, method: str, path: str, body: bytes, key: bytes) -> int:
        with self.changed:
            status = 500 if key in self.fail else 200
            self.fail.discard(key)
            self.requests.append((method, path, body, status))
            self.changed.notify_all()
            return status

    def wait(self, done: Callable[[], bool]) -> None:
        with self.changed:
            assert self.changed.wait_for(done, BOUND), self.requests

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self._answer(self.server.record("POST", self.path, body, body) if self.headers["X-Test"] == "yes" else 400)

    def do_GET(self) -> None:
        key = self.path.split("data=", 1)[-1].encode()
        self._answer(self.server.record("GET", self.path, b"", key))

    def _answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver({b"flaky", b"flaky+one"})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(BOUND)


FAST_RETRY = ("--consumer-opt=default_requeue_delay,0s", "--consumer-opt=backoff_multiplier,10ms")


def test_nsq_to_http_posts_and_retries_a_failure(nsqd: Daemon, tools: Callable[..., Tool], receiver: Receiver) -> None:
    bodies = [b"flaky", *(b"post %d" % i for i in range(20))]
    publish(nsqd, "t", bodies)
    tool = tools(
        "nsq_to_http", "--topic=t", f"--nsqd-tcp-address={tcp(nsqd)}", f"--post={receiver.url}/in",
        "--header=X-Test: yes", "--content-type=text/plain", *FAST_RETRY,
    )
    receiver.wait(lambda: sorted(b for _, _, b, s in receiver.requests if s == 200) == sorted(bodies))
    assert tool.stop() == 0, "\n".join(tool.err)
    assert [(m, p, s) for m, p, b, s in receiver.requests if b == b"flaky"] == [("POST", "/in", 500), ("POST", "/in", 200)]
    stats = channel_stats(nsqd, "t", "nsq_to_http")
    assert (stats["depth"], stats["in_flight_count"], stats["requeue_count"]) == (0, 0, 1)


def test_nsq_to_http_gets_with_the_body_in_the_url(nsqd: Daemon, tools: Callable[..., Tool], receiver: Receiver) -> None:
    publish(nsqd, "t", [b"flaky one", b"a&b=c"])
    tool = tools("nsq_to_http", "--topic=t", f"--nsqd-tcp-address={tcp(nsqd)}", f"--get={receiver.url}/q?data=%s", *FAST_RETRY)
    receiver.wait(lambda: sum(1 for *_, s in receiver.requests if s == 200) == 2)
    assert tool.stop() == 0
    paths = sorted(p for _, p, _, s in receiver.requests if s == 200)
    assert paths == ["/q?data=a%26b%3Dc", "/q?data=flaky+one"]


# -- nsq_stat ------------------------------------------------------------------------------------------------


def test_nsq_stat_prints_count_reports_then_exits(nsqd: Daemon) -> None:
    post(nsqd, "/topic/create?topic=t")
    post(nsqd, "/channel/create?topic=t&channel=c")
    publish(nsqd, "t", [b"a", b"b", b"c"])
    result = run_tool("nsq_stat", "--topic=t", "--channel=c", f"--nsqd-http-address={http(nsqd)}", "--count=2", "--interval=100ms")
    assert result.returncode == 0, result.stderr.decode()
    text = result.stdout.decode()
    assert "t/c - report 1 of 2" in text and "t/c - report 2 of 2" in text and "report 3" not in text
    [row] = [line for line in text.splitlines() if http(nsqd) in line][:1]
    cells = row.replace("│", " ").split()
    assert cells[0] == http(nsqd)
    # ingress, egress, then depth 3 (all in memory), in flight 0, ..., messages 3, clients 0
    assert cells[3:] == ["3", "3", "0", "0", "0", "0", "0", "3", "0"]


# -- stopping --------------------------------------------------------------------------------------------------


def test_every_tool_exits_0_on_sigint(nsqd: Daemon, tools: Callable[..., Tool], tmp_path: Path) -> None:
    post(nsqd, "/topic/create?topic=t")
    post(nsqd, "/channel/create?topic=t&channel=c")
    running = {
        "to_nsq": tools("to_nsq", "--topic=t", f"--nsqd-tcp-address={tcp(nsqd)}", stdin=True),
        "nsq_tail": tools("nsq_tail", "--topic=t", f"--nsqd-tcp-address={tcp(nsqd)}"),
        "nsq_to_file": tools("nsq_to_file", "--topic=t", f"--nsqd-tcp-address={tcp(nsqd)}", f"--output-dir={tmp_path / 'out'}"),
        "nsq_to_nsq": tools("nsq_to_nsq", "--topic=t", f"--nsqd-tcp-address={tcp(nsqd)}", f"--destination-nsqd-tcp-address={tcp(nsqd)}", "--destination-topic=u"),
        "nsq_to_http": tools("nsq_to_http", "--topic=t", f"--nsqd-tcp-address={tcp(nsqd)}", "--post=http://127.0.0.1:9/"),
        "nsq_stat": tools("nsq_stat", "--topic=t", "--channel=c", f"--nsqd-http-address={http(nsqd)}", "--interval=100ms"),
    }
    for name, tool in running.items():
        if name == "nsq_stat":
            tool.wait_out(rb"report 1\b")
        else:
            tool.wait_err(r"connected|connecting to nsqd")
    for name, tool in running.items():
        assert tool.stop() == 0, f"{name}:\n" + "\n".join(tool.err)
