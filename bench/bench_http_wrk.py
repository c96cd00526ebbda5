"""HTTP publishing under a real load generator: wrk against nsqd and against a bare responder.

Setup: an nsqd subprocess (127.0.0.1, port 0) and ``bench/http_ceiling.py`` (a
bare asyncio HTTP/1.1 responder: the ceiling of Python HTTP serving here).
wrk (``apt-get install wrk``) drives each with ``--connections`` keep-alive
connections (4) from ``--threads`` threads (1) for ``--seconds`` (10), one
request at a time per connection, with a Lua script for
``POST /pub?topic=...`` (a 200-byte body) and ``POST /mpub?topic=...`` (200
such messages, newline-separated).  The topic is ephemeral and has no
channel, as in ``bench.bench_http``: what is measured is the HTTP path and the
publish into the topic.  For the ``/mpub`` target, the same nsqd also takes
TCP MPUBs of the same batches (one connection, 4 in flight) for the same time.

Printed per endpoint: requests/s and msgs/s for nsqd and for the ceiling, and
nsqd's same-run ratio to the ceiling and to ``--before`` (the requests/s this
command measured before the HTTP server was rewritten).  ``--profile`` runs
py-spy on nsqd during the ``/pub`` run and prints its top functions.
``--vary`` also runs ``/pub`` with twenty body lengths in turn, and with a
header that changes every request: the server reuses the parse of a head that
repeats the one before it, or differs from it only in Content-Length, and
wrk's one request would always hit; the second variant is parsed in full.  ``--parsers`` measures, without sockets, what parsing and answering one
``/pub`` request costs with h11, with httptools (when installed) and with
``broker.wire.http``.

Run: ``python -m bench.bench_http_wrk [--seconds 10] [--threads 1] [--connections 4] [--only pub|mpub] [--vary] [--profile] [--parsers]``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import cpu_count, start_daemon

MSG_SIZE = 200
BATCH = 200
TOPIC = "http_bench%23ephemeral"  # %23: '#', escaped in the query
# What this command measured at ad21004 (h11 server), with 4 connections and 1 thread:
# /pub 8.6k requests/s, /mpub 2.07k requests/s (413k msgs/s).
BEFORE = {"pub": 8600.0, "mpub": 2070.0}

# --vary: wrk builds each request in Lua (which costs wrk time: the ceiling is run the same way).
_VARIANTS = {
    "lengths": "20 body lengths in turn (heads differ in Content-Length)",
    "header": "an X-Seq header counting up (every head parsed in full)",
}
_LISTEN = re.compile(r"HTTP: listening on (\S+)")
_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_ERRORS = re.compile(r"Socket errors: .*")


def _lua(endpoint: str, vary: str = "") -> str:
    body = "m" * MSG_SIZE
    if endpoint == "mpub":
        body = "\\n".join([body] * BATCH)
    if vary == "lengths":
        # Twenty body lengths in turn: each head differs from the one before in its Content-Length.
        return (
            f'local bodies = {{}}\nfor i = 0, 19 do bodies[i] = "{body}" .. string.rep("m", i) end\n'
            "local n = 0\n"
            "request = function()\n  n = (n + 1) % 20\n  return wrk.format(\"POST\", nil, nil, bodies[n])\nend\n"
        )
    if vary == "header":
        # A header that changes every request: every head is parsed in full.
        return (
            "local n = 0\n"
            f'request = function()\n  n = n + 1\n  return wrk.format("POST", nil, {{["X-Seq"] = tostring(n)}}, "{body}")\nend\n'
        )
    return f'wrk.method = "POST"\nwrk.body = "{body}"\n'


def wrk(port: int, endpoint: str, seconds: float, threads: int, connections: int, scripts: Path, vary: str = "") -> float:
    """wrk's requests/s; raises if any answer was not 2xx."""
    script = scripts / f"{endpoint}{'-' + vary if vary else ''}.lua"
    script.write_text(_lua(endpoint, vary))
    url = f"http://127.0.0.1:{port}/{endpoint}?topic={TOPIC}"
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    bad = _NON_2XX.search(out)
    if bad:
        raise RuntimeError(f"{bad.group(1)} answers were not 2xx:\n{out}")
    errors = _ERRORS.search(out)
    if errors:
        print(f"  wrk: {errors.group(0)}")
    m = _RPS.search(out)
    if m is None:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{out}")
    return float(m.group(1))


@contextmanager
def ceiling() -> Iterator[int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.http_ceiling", "--http-address=127.0.0.1:0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline().decode()
        m = _LISTEN.search(line)
        if m is None:
            raise RuntimeError(f"http_ceiling did not start: {line!r}")
        yield int(m.group(1).rsplit(":", 1)[1])
    finally:
        proc.terminate()
        proc.wait(10)


async def _tcp_mpub(port: int, seconds: float, window: int = 4) -> int:
    """Messages acknowledged over one TCP connection sending MPUBs, ``window`` in flight."""
    body = b"m" * MSG_SIZE
    payload = struct.pack(">i", BATCH) + b"".join(struct.pack(">i", MSG_SIZE) + body for _ in range(BATCH))
    cmd = b"MPUB " + TOPIC.replace("%23", "#").encode() + b"\n" + struct.pack(">i", len(payload)) + payload
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"  V2")
    acked = 0
    deadline = time.monotonic() + seconds
    try:
        for _ in range(window):
            writer.write(cmd)
        while True:
            size, kind = struct.unpack(">ii", await reader.readexactly(8))
            data = await reader.readexactly(size - 4)
            if kind != 0 or data != b"OK":
                raise RuntimeError(f"nsqd answered {kind} {data!r}")
            acked += BATCH
            if time.monotonic() < deadline:
                writer.write(cmd)
            else:
                window -= 1
                if window == 0:
                    return acked
    finally:
        writer.close()
        await writer.wait_closed()


def tcp_mpub_rate(port: int, seconds: float) -> float:
    start = time.monotonic()
    acked = asyncio.run(_tcp_mpub(port, seconds))
    return acked / (time.monotonic() - start)


def profile(pid: int, seconds: float, top: int = 15) -> list[str]:
    """py-spy's top functions (own time) in ``pid`` over ``seconds``."""
    beside = Path(sys.executable).parent / "py-spy"  # pip puts it next to the interpreter
    pyspy = str(beside) if beside.exists() else shutil.which("py-spy")
    if pyspy is None:
        return ["(py-spy not installed: pip install py-spy)"]
    with tempfile.NamedTemporaryFile(suffix=".txt") as raw:
        subprocess.run(
            [pyspy, "record", "-d", str(int(seconds)), "-r", "200", "-f", "raw", "-o", raw.name, "--pid", str(pid)],
            capture_output=True,
            check=True,
        )
        own: Counter[str] = Counter()
        total = 0
        for line in Path(raw.name).read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            frame = re.sub(r":\d+\)$", ")", stack.rsplit(";", 1)[-1])
            own[frame] += int(count)
            total += int(count)
    return [f"{100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(top)]


def run(args: argparse.Namespace) -> None:
    endpoints = [e for e in ("pub", "mpub") if args.only in (None, e)]
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.seconds:g}s, keep-alive, one request at a time per connection; "
        f"{MSG_SIZE}-byte messages, /mpub batches of {BATCH}; Python {sys.version.split()[0]}, {cpu_count()} CPUs "
        "(wrk, server and this script share them)"
    )
    with tempfile.TemporaryDirectory(prefix="nsqsim-wrk-") as tmp:
        scripts = Path(tmp)
        ceiling_rps: dict[str, float] = {}
        with ceiling() as port:
            for endpoint in endpoints:
                ceiling_rps[endpoint] = wrk(port, endpoint, args.seconds, args.threads, args.connections, scripts)
            if args.vary and "pub" in endpoints:
                for vary in _VARIANTS:
                    ceiling_rps[f"pub-{vary}"] = wrk(port, "pub", args.seconds, args.threads, args.connections, scripts, vary)
        with start_daemon() as daemon:
            for endpoint in endpoints:
                lines: list[str] = []
                if args.profile and endpoint == "pub":
                    with ThreadPoolExecutor(1) as pool:
                        later = pool.submit(profile, daemon.proc.pid, max(1.0, args.seconds - 2))
                        rps = wrk(daemon.http_port, endpoint, args.seconds, args.threads, args.connections, scripts)
                        lines = later.result()
                else:
                    rps = wrk(daemon.http_port, endpoint, args.seconds, args.threads, args.connections, scripts)
                per = BATCH if endpoint == "mpub" else 1
                ceil = ceiling_rps[endpoint]
                print(
                    f"/{endpoint:<5} nsqd {rps:>9,.0f} req/s {rps * per:>10,.0f} msgs/s | ceiling {ceil:>9,.0f} req/s | "
                    f"nsqd/ceiling {rps / ceil:.2f} | vs before ({BEFORE[endpoint]:,.0f} req/s) {rps / BEFORE[endpoint]:.1f}x",
                    flush=True,
                )
                if endpoint == "mpub":
                    tcp = tcp_mpub_rate(daemon.tcp_port, args.seconds)
                    print(f"       TCP MPUB (1 connection, 4 in flight) {tcp:>10,.0f} msgs/s | HTTP/TCP {rps * per / tcp:.2f}", flush=True)
                if args.vary and endpoint == "pub":
                    for vary, label in _VARIANTS.items():
                        varied = wrk(daemon.http_port, endpoint, args.seconds, args.threads, args.connections, scripts, vary)
                        ceil_varied = ceiling_rps[f"pub-{vary}"]
                        print(
                            f"       {label}: nsqd {varied:>9,.0f} req/s | ceiling {ceil_varied:>9,.0f} req/s | "
                            f"nsqd/ceiling {varied / ceil_varied:.2f} | vs before {varied / BEFORE[endpoint]:.1f}x",
                            flush=True,
                        )
                for line in lines:
                    print(f"    {line}")


def parsers(n: int = 20000) -> None:
    """What one /pub request costs to parse (and answer) without sockets, per parser."""
    body = b"m" * MSG_SIZE
    request = (
        f"POST /pub?topic={TOPIC} HTTP/1.1\r\nHost: 127.0.0.1:4151\r\nUser-Agent: wrk\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    print(f"one /pub request ({len(request)} bytes), {n} times; µs per request:")

    import h11

    conn = h11.Connection(h11.SERVER)

    def h11_cycle() -> None:
        conn.receive_data(request)
        while conn.next_event() is not h11.NEED_DATA and conn.their_state is not h11.DONE:
            pass
        conn.send(h11.Response(status_code=200, headers=[(b"Content-Length", b"2")]))
        conn.send(h11.Data(data=b"OK"))
        conn.send(h11.EndOfMessage())
        conn.start_next_cycle()

    _time("h11: parse and answer", h11_cycle, n)

    try:
        # Optional and untyped: imported by name so mypy --strict passes where it is absent.
        httptools: Any = importlib.import_module("httptools")
    except ImportError:
        print("  httptools: not installed (pip install httptools)")
    else:

        class _Callbacks:
            def __init__(self) -> None:
                self.headers: list[tuple[bytes, bytes]] = []
                self.url = b""
                self.body = b""

            def on_url(self, url: bytes) -> None:
                self.url = url

            def on_header(self, name: bytes, value: bytes) -> None:
                self.headers.append((name.lower(), value))

            def on_body(self, data: bytes) -> None:
                self.body = data

            def on_message_complete(self) -> None:
                self.headers = []

        parser = httptools.HttpRequestParser(_Callbacks())
        _time("httptools: parse only (no answer)", lambda: parser.feed_data(request), n)

    from broker.wire.http import HTTPServerConnection, Request, RequestHead, Response

    ok = Response(200, (("Content-Type", "text/plain; charset=utf-8"),), b"OK")

    class _App:
        def body_limit(self, head: RequestHead) -> int | None:
            return None

        def handle(self, request: Request) -> Response:
            return ok

    class _Null:
        peer_address = ("127.0.0.1", 1)
        local_address = ("127.0.0.1", 2)

        def write(self, data: bytes | bytearray | memoryview) -> None:
            pass

        def close(self) -> None:
            pass

        def abort(self) -> None:
            pass

        def write_buffer_size(self) -> int:
            return 0

        def set_write_buffer_limits(self, high: int) -> None:
            pass

        def pause_reading(self) -> None:
            pass

        def resume_reading(self) -> None:
            pass

    server = HTTPServerConnection(_App())
    server.connection_made(_Null())
    _time("broker.wire.http: parse and answer", lambda: server.data_received(request), n)
    # Two heads in turn: no request repeats the head before it, so none reuses its parse.
    other = request.replace(b"Content-Length: 200", b"Content-Length: 201") + b"m"
    pair = [request, other]

    def alternating() -> None:
        pair.reverse()
        server.data_received(pair[0])

    _time("  the same, heads alternating", alternating, n)


def _time(name: str, fn: object, n: int) -> None:
    assert callable(fn)
    for _ in range(200):
        fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    print(f"  {name:<40} {(time.perf_counter() - start) / n * 1e6:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--only", choices=("pub", "mpub"))
    parser.add_argument("--profile", action="store_true", help="py-spy on nsqd during the /pub run")
    parser.add_argument("--vary", action="store_true", help="also /pub with 20 body lengths in turn, and with a header changing every request")
    parser.add_argument("--parsers", action="store_true", help="only the parser comparison, no sockets")
    args = parser.parse_args()
    if args.parsers:
        parsers()
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    run(args)


if __name__ == "__main__":
    main()
