"""The real daemon pushing to a real UDP listener: nsqd 1.3.0's statsd keys, types and packets."""

from __future__ import annotations

import re
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from tests.integration.conftest import Daemon

pytestmark = pytest.mark.integration

RECEIVE_BOUND = 30.0  # seconds the test waits for the pushes it needs before it fails

# Every stat and its type, as nsqd 1.3.0's statsdLoop sends them
# (github.com/nsqio/nsq, nsqd/statsd.go: client.Incr is "|c", client.Gauge is "|g").
NSQD_TOPIC_STATS = {
    "message_count": "c",
    "message_bytes": "c",
    "depth": "g",
    "backend_depth": "g",
}
NSQD_CHANNEL_STATS = {
    "message_count": "c",
    "depth": "g",
    "backend_depth": "g",
    "in_flight_count": "g",
    "deferred_count": "g",
    "requeue_count": "c",
    "timeout_count": "c",
    "clients": "g",
}
NSQD_MEM_STATS = {
    "heap_objects": "g",
    "heap_idle_bytes": "g",
    "heap_in_use_bytes": "g",
    "heap_released_bytes": "g",
    "gc_pause_usec_100": "g",
    "gc_pause_usec_99": "g",
    "gc_pause_usec_95": "g",
    "next_gc_bytes": "g",
    "gc_runs": "c",
}
LINE = re.compile(r"^(?P<key>[^:]+):(?P<value>-?\d+)\|(?P<type>[gc])$")


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock
    finally:
        sock.close()


def post(daemon: Daemon, path: str, body: bytes = b"") -> None:
    host, port = daemon.http_address
    with urllib.request.urlopen(urllib.request.Request(f"http://{host}:{port}{path}", data=body, method="POST")) as r:
        assert r.status == 200


def receive_until(sock: socket.socket, done: Callable[[list[bytes]], bool]) -> list[bytes]:
    """Datagrams as they arrive, until ``done`` says enough (under an overall bound)."""
    deadline = time.monotonic() + RECEIVE_BOUND
    got: list[bytes] = []
    while not done(got):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"not enough statsd datagrams within {RECEIVE_BOUND}s: {got!r}")
        sock.settimeout(left)
        got.append(sock.recv(65536))
    return got


def parse(datagrams: list[bytes]) -> list[tuple[str, int, str]]:
    out = []
    for data in datagrams:
        assert data.endswith(b"\n"), data
        for line in data.decode().splitlines():
            m = LINE.match(line)
            assert m, line
            out.append((m["key"], int(m["value"]), m["type"]))
    return out


def test_statsd_lines_have_nsqds_names_and_types(nsqd_factory: Callable[..., Daemon], listener: socket.socket) -> None:
    udp_port = listener.getsockname()[1]
    daemon = nsqd_factory(
        f"--statsd-address=127.0.0.1:{udp_port}",
        "--statsd-interval=1s",
        "--statsd-udp-packet-size=200",
        "--broadcast-address=stats.example",
    )
    for body in (b"one", b"two", b"three"):
        post(daemon, "/pub?topic=metrics", body)
    post(daemon, "/channel/create?topic=metrics&channel=ch")
    prefix = f"nsq.stats_example_{daemon.http_address[1]}."
    channel_key = f"{prefix}topic.metrics.channel.ch.clients".encode()
    last_key = f"{prefix}mem.gc_runs".encode()  # the last line of a push

    def one_push(got: list[bytes]) -> bool:
        at = next((i for i, d in enumerate(got) if channel_key in d), None)
        return at is not None and any(last_key in d for d in got[at:])

    datagrams = receive_until(listener, one_push)
    daemon.wait_for_line(rf"INFO: STATSD: pushing stats to 127\.0\.0\.1:{udp_port}$")
    assert all(len(d) <= 200 for d in datagrams)
    lines = parse(datagrams)
    types = {key: kind for key, _, kind in lines}
    expected = {f"{prefix}topic.metrics.{k}": v for k, v in NSQD_TOPIC_STATS.items()}
    expected |= {f"{prefix}topic.metrics.channel.ch.{k}": v for k, v in NSQD_CHANNEL_STATS.items()}
    expected |= {f"{prefix}mem.{k}": v for k, v in NSQD_MEM_STATS.items()}
    assert {k: types.get(k) for k in expected} == expected
    assert set(types) <= set(expected), set(types) - set(expected)

    # counters are deltas: summed over every push they give the totals
    datagrams = receive_until(listener, lambda got: sum(d.count(b"topic.metrics.message_count") for d in got) >= 1)
    totals: dict[str, int] = {}
    for key, value, kind in parse(datagrams) + lines:
        if kind == "c":
            totals[key] = totals.get(key, 0) + value
    assert totals[f"{prefix}topic.metrics.message_count"] == 3
    assert totals[f"{prefix}topic.metrics.message_bytes"] == len(b"onetwothree")
