"""nsqlookupd as a process, alone and in a cluster with nsqd and pynsq.

Everything waits on events (a log line, an answer, a message) under a bound;
the only waits that take real time are nsqd's own 15-second PINGs, which is
when nsqd redials a lookupd that went away.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import signal
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nsq
import pytest

from broker.apps import version_string
from broker.version import PACKAGE_VERSION
from tests.integration.conftest import ROOT, Daemon, run_nsqlookupd, start_nsqlookupd

pytestmark = pytest.mark.integration

STAMP = r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{6}"
BOUND = 20.0  # seconds an answer or a delivery may take before the test fails


def require_nsqd_lookup() -> float:
    """Skip unless nsqd registers with nsqlookupd; the bound on a re-registration if it does."""
    from broker.nsqd.lookup import PING_INTERVAL
    from broker.nsqd.nsqd import NSQD

    if "network" not in inspect.signature(NSQD).parameters:
        pytest.skip("NSQD does not take a Network yet, so nsqd cannot register with nsqlookupd")
    return 2 * PING_INTERVAL + BOUND  # a redial waits for nsqd's next PING


def http_get(daemon: Daemon, target: str) -> tuple[int, dict[str, Any]]:
    host, port = daemon.http_address
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{target}", timeout=BOUND) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def producers(lookupd: Daemon, topic: str) -> list[tuple[str, int]]:
    status, body = http_get(lookupd, f"/lookup?topic={topic}")
    assert status == 200, body
    return sorted((p["broadcast_address"], p["tcp_port"]) for p in body["producers"])


def read_answer(sock: socket.socket) -> bytes:
    """One ``[int32 size][data]`` answer of nsqlookupd (or nsqd's ``[size][type][data]`` frame)."""
    size = int.from_bytes(recv_exactly(sock, 4), "big")
    return recv_exactly(sock, size)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data


def publish(nsqd: Daemon, topic: str, bodies: list[bytes]) -> None:
    """PUB each body over nsqd's TCP protocol, waiting for each OK."""
    with socket.create_connection(nsqd.tcp_address, timeout=BOUND) as sock:
        sock.sendall(b"  V2")
        for body in bodies:
            sock.sendall(f"PUB {topic}\n".encode() + len(body).to_bytes(4, "big") + body)
            assert read_answer(sock) == b"\x00\x00\x00\x00OK"


def registered(lookupd: Daemon, topic: str, count: int, bound: float = BOUND) -> None:
    """Wait until ``count`` nsqd have registered ``topic`` with this lookupd (its DB log lines)."""
    lookupd.wait_for_lines(rf"DB: client\(\S+\) REGISTER category:topic key:{re.escape(topic)} subkey:$", count, bound)


# -- the command line ---------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--version", "-version"])
def test_version_prints_and_exits_0(flag: str) -> None:
    done = run_nsqlookupd(flag)
    assert done.returncode == 0
    assert done.stdout == version_string("nsqlookupd") + "\n"
    assert re.fullmatch(r"nsqlookupd v1\.3\.0 \(built w/[a-z]+\d+\.\d+\.\d+\S*\)\n", done.stdout)
    assert done.stderr == ""


def test_help_lists_go_nsqlookupd_flags() -> None:
    done = run_nsqlookupd("--help")
    assert done.returncode == 0
    flags = re.findall(r"^  -(\S+)", done.stderr, re.M)
    assert flags == [
        "broadcast-address",
        "config",
        "http-address",
        "inactive-producer-timeout",
        "log-level",
        "log-prefix",
        "tcp-address",
        "tombstone-lifetime",
        "verbose",
        "version",
    ]
    assert '(default "0.0.0.0:4160")' in done.stderr
    assert "(default 5m0s)" in done.stderr
    assert "(default 45s)" in done.stderr


def test_bad_flag_prints_go_message_and_exits_2() -> None:
    done = run_nsqlookupd("--tombstone-lifetime=45")
    assert done.returncode == 2
    assert done.stderr.splitlines()[:2] == [
        'invalid value "45" for flag -tombstone-lifetime: parse error',
        "Usage of nsqlookupd:",
    ]


def test_port_in_use_is_fatal_exit_1() -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        done = run_nsqlookupd("--tcp-address=127.0.0.1:0", f"--http-address=127.0.0.1:{port}")
    assert done.returncode == 1
    [line] = [ln for ln in done.stderr.splitlines() if " FATAL: " in ln]
    assert re.fullmatch(
        rf"\[nsqlookupd\] {STAMP} FATAL: failed to instantiate nsqlookupd - listen \(127.0.0.1:{port}\) failed - "
        rf"listen tcp 127.0.0.1:{port}: bind: address already in use",
        line,
    ), line


def test_the_example_config_starts_nsqlookupd() -> None:
    daemon = start_nsqlookupd(f"--config={ROOT / 'deploy' / 'nsqlookupd.toml'}")
    try:
        assert "WARNING" not in daemon.stderr and "FATAL" not in daemon.stderr
        assert http_get(daemon, "/info") == (200, {"version": "1.3.0", "nsqsim_version": PACKAGE_VERSION})
    finally:
        daemon.close()


def test_config_file_applies_and_flags_win(tmp_path: Path) -> None:
    config = tmp_path / "nsqlookupd.toml"
    config.write_text('log_prefix = "[from-config] "\ntcp_address = "127.0.0.1:1"\nbroadcast_address = "cfg-host"\n')
    daemon = start_nsqlookupd(f"--config={config}", "--tcp-address=127.0.0.1:0")
    try:
        daemon.wait_for_line(r"^\[from-config\] .* INFO: TCP: listening on ")
        assert daemon.tcp_address[1] != 1  # the flag won over the config file
        status, info = http_get(daemon, "/info")
        assert (status, info) == (200, {"version": "1.3.0", "nsqsim_version": PACKAGE_VERSION})
        with socket.create_connection(daemon.tcp_address, timeout=BOUND) as sock:
            body = b'{"broadcast_address":"n","tcp_port":1,"http_port":2,"version":"1.3.0"}'
            sock.sendall(b"  V1IDENTIFY\n" + len(body).to_bytes(4, "big") + body)
            assert json.loads(read_answer(sock))["broadcast_address"] == "cfg-host"
    finally:
        daemon.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_it_gracefully_closing_open_connections(sig: signal.Signals) -> None:
    daemon = start_nsqlookupd()
    try:
        host, http_port = daemon.http_address
        with (
            socket.create_connection(daemon.tcp_address, timeout=BOUND) as tcp,
            socket.create_connection((host, http_port), timeout=BOUND) as http,
        ):
            tcp.sendall(b"  V1PING\n")
            assert read_answer(tcp) == b"OK"
            http.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            assert http.recv(4096).startswith(b"HTTP/1.1 200 OK\r\n")
            daemon.send_signal(sig)
            # Both connections are closed by the daemon, not left to a timeout.
            assert tcp.recv(1) == b""
            assert http.recv(1) == b""
        assert daemon.wait() == 0
        daemon.wait_for_line(r" INFO: TCP: closing 127\.0\.0\.1:\d+$")
        daemon.wait_for_line(r" INFO: HTTP: closing 127\.0\.0\.1:\d+$")
    finally:
        daemon.close()


# -- the TCP and HTTP ports over real sockets -----------------------------------------------


def test_garbage_on_the_tcp_port_gets_E_INVALID_and_a_close(nsqlookupd_factory: Callable[..., Daemon]) -> None:
    lookupd = nsqlookupd_factory()
    with socket.create_connection(lookupd.tcp_address, timeout=BOUND) as sock:
        sock.sendall(b"  V1HELLO there\n")
        assert read_answer(sock) == b"E_INVALID invalid command HELLO"
        assert sock.recv(1) == b""
    with socket.create_connection(lookupd.tcp_address, timeout=BOUND) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert read_answer(sock) == b"E_BAD_PROTOCOL"
        assert sock.recv(1) == b""
    # The daemon is unharmed.
    assert http_get(lookupd, "/topics") == (200, {"topics": []})


def test_http_api_over_a_real_socket(nsqlookupd_factory: Callable[..., Daemon]) -> None:
    lookupd = nsqlookupd_factory()
    host, port = lookupd.http_address
    req = urllib.request.Request(f"http://{host}:{port}/channel/create?topic=t&channel=c", data=b"ignored", method="POST")
    with urllib.request.urlopen(req, timeout=BOUND) as resp:
        assert resp.status == 200
        assert resp.headers["X-NSQ-Content-Type"] == "nsq; version=1.0"
    assert http_get(lookupd, "/channels?topic=t") == (200, {"channels": ["c"]})
    assert http_get(lookupd, "/lookup?topic=t") == (200, {"channels": ["c"], "producers": []})
    assert http_get(lookupd, "/lookup?topic=nope") == (404, {"message": "TOPIC_NOT_FOUND"})


# -- a cluster: two nsqlookupd, two nsqd, one pynsq Reader ------------------------------


async def consume(lookupds: list[Daemon], topic: str, expected: set[bytes]) -> set[bytes]:
    """What a pynsq Reader, given only the lookupds' HTTP addresses, receives of ``expected``."""
    got: set[bytes] = set()
    done = asyncio.Event()

    def handler(msg: Any) -> bool:
        got.add(bytes(msg.body))
        if got >= expected:
            done.set()
        return True

    addresses = [f"http://{d.http_address[0]}:{d.http_address[1]}" for d in lookupds]
    reader = nsq.Reader(
        topic=topic,
        channel="c",
        message_handler=handler,
        lookupd_http_addresses=addresses,
        lookupd_poll_interval=1,
        max_in_flight=10,
    )
    try:
        await asyncio.wait_for(done.wait(), BOUND)
    finally:
        nsqd_conns = sorted(f"{c.host}:{c.port}" for c in reader.conns.values())
        reader.close()
        reader.query_periodic.stop()
        reader.redist_periodic.stop()
    assert len(nsqd_conns) == 2, nsqd_conns  # it found both nsqd through lookupd
    return got


def test_cluster_discovery_failover_and_reregistration(
    nsqlookupd_factory: Callable[..., Daemon], nsqd_factory: Callable[..., Daemon]
) -> None:
    reregister_bound = require_nsqd_lookup()
    lookupd_a = nsqlookupd_factory()
    lookupd_b = nsqlookupd_factory()
    lookupd_flags = [f"--lookupd-tcp-address=127.0.0.1:{d.tcp_address[1]}" for d in (lookupd_a, lookupd_b)]
    nsqd_1 = nsqd_factory(*lookupd_flags, "--broadcast-address=127.0.0.1")
    nsqd_2 = nsqd_factory(*lookupd_flags, "--broadcast-address=127.0.0.1")
    both = sorted(("127.0.0.1", d.tcp_address[1]) for d in (nsqd_1, nsqd_2))

    bodies_1 = [b"from-1-%d" % i for i in range(20)]
    bodies_2 = [b"from-2-%d" % i for i in range(20)]
    publish(nsqd_1, "orders", bodies_1)
    publish(nsqd_2, "orders", bodies_2)
    for lookupd in (lookupd_a, lookupd_b):
        registered(lookupd, "orders", 2)
        assert producers(lookupd, "orders") == both

    # A consumer that knows only the lookupds gets every message from both nsqd.
    expected = set(bodies_1 + bodies_2)
    assert asyncio.run(consume([lookupd_a, lookupd_b], "orders", expected)) == expected

    # One lookupd dies; the other still knows both nsqd.
    tcp_port_a, http_port_a = lookupd_a.tcp_address[1], lookupd_a.http_address[1]
    lookupd_a.proc.kill()
    lookupd_a.wait()
    assert producers(lookupd_b, "orders") == both

    # It comes back on the same ports, empty; each nsqd re-registers on its next PING.
    lookupd_a2 = nsqlookupd_factory(f"--tcp-address=127.0.0.1:{tcp_port_a}", f"--http-address=127.0.0.1:{http_port_a}")
    assert http_get(lookupd_a2, "/topics") == (200, {"topics": []})
    registered(lookupd_a2, "orders", 2, reregister_bound)
    assert producers(lookupd_a2, "orders") == both
    status, channels = http_get(lookupd_a2, "/channels?topic=orders")
    assert (status, channels) == (200, {"channels": ["c"]})
    for nsqd in (nsqd_1, nsqd_2):
        nsqd.wait_for_line(rf"LOOKUPD\(127\.0\.0\.1:{tcp_port_a}\): REGISTER orders c$")
