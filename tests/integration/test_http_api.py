"""nsqd's HTTP API on a real daemon: urllib and http.client against 127.0.0.1, a raw socket for TCP."""

from __future__ import annotations

import http.client
import json
import socket
import struct
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from broker.version import PACKAGE_VERSION
from tests.integration.conftest import Daemon

pytestmark = pytest.mark.integration

TIMEOUT = 10.0  # seconds any one loopback exchange may take before the test fails


def url(daemon: Daemon, path: str) -> str:
    host, port = daemon.http_address
    return f"http://{host}:{port}{path}"


def call(daemon: Daemon, method: str, path: str, body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body), for error statuses too."""
    request = urllib.request.Request(url(daemon, path), data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, dict(err.headers), err.read()
    except (ConnectionError, http.client.HTTPException) as exc:
        raise AssertionError(f"{method} {path}: {exc!r}; nsqd said:\n{daemon.stderr}") from exc


def stats(daemon: Daemon) -> Any:
    status, headers, body = call(daemon, "GET", "/stats?format=json")
    assert status == 200 and headers["Content-Type"] == "application/json; charset=utf-8"
    return json.loads(body)


def topic_stats(daemon: Daemon, name: str) -> Any:
    [topic] = [t for t in stats(daemon)["topics"] if t["topic_name"] == name]
    return topic


def test_ping(nsqd: Daemon) -> None:
    status, headers, body = call(nsqd, "GET", "/ping")
    assert (status, body) == (200, b"OK")
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["X-Nsq-Content-Type"] == "nsq; version=1.0"
    assert "Date" in headers


def test_info(nsqd: Daemon) -> None:
    status, _, body = call(nsqd, "GET", "/info")
    info = json.loads(body)
    assert status == 200
    assert (info["version"], info["tcp_port"], info["http_port"]) == ("1.3.0", nsqd.tcp_address[1], nsqd.http_address[1])
    assert info["nsqsim_version"] == PACKAGE_VERSION


def test_pub_shows_in_stats(nsqd: Daemon) -> None:
    assert call(nsqd, "POST", "/pub?topic=http_test", b"hello")[::2] == (200, b"OK")
    topic = topic_stats(nsqd, "http_test")
    assert (topic["depth"], topic["message_count"], topic["message_bytes"]) == (1, 1, 5)


def test_mpub_text_and_binary(nsqd: Daemon) -> None:
    assert call(nsqd, "POST", "/mpub?topic=m", b"one\ntwo\nthree\n")[::2] == (200, b"OK")
    binary = struct.pack(">i", 2) + struct.pack(">i", 3) + b"a\nb" + struct.pack(">i", 1) + b"c"
    assert call(nsqd, "POST", "/mpub?topic=m&binary=true", binary)[::2] == (200, b"OK")
    assert topic_stats(nsqd, "m")["depth"] == 5


def test_topic_and_channel_create_show_in_stats(nsqd: Daemon) -> None:
    assert call(nsqd, "POST", "/topic/create?topic=made")[:1] == (200,)
    assert call(nsqd, "POST", "/channel/create?topic=made&channel=ch")[:1] == (200,)
    topic = topic_stats(nsqd, "made")
    assert [c["channel_name"] for c in topic["channels"]] == ["ch"]
    text = call(nsqd, "GET", "/stats")[2].decode()
    assert "[made           ] depth: 0" in text and "[ch                       ] depth: 0" in text


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        ("GET", "/nope", 404, "NOT_FOUND"),
        ("POST", "/channel/create?topic=nope&channel=c", 404, "TOPIC_NOT_FOUND"),
        ("GET", "/pub?topic=t", 405, "METHOD_NOT_ALLOWED"),
        ("POST", "/ping", 405, "METHOD_NOT_ALLOWED"),
        ("POST", "/pub?topic=bad!", 400, "INVALID_TOPIC"),
        ("GET", "/config/nope", 400, "INVALID_OPTION"),
    ],
)
def test_error_answers(nsqd: Daemon, method: str, path: str, status: int, message: str) -> None:
    got_status, headers, body = call(nsqd, method, path, b"x" if method == "POST" else None)
    assert (got_status, json.loads(body)) == (status, {"message": message})
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    if status == 405:
        assert "OPTIONS" in headers["Allow"]


def test_keep_alive_and_an_oversize_body(nsqd_factory: Callable[..., Daemon]) -> None:
    daemon = nsqd_factory("--max-msg-size=100")
    conn = http.client.HTTPConnection(*daemon.http_address, timeout=TIMEOUT)
    try:
        for body, status in ((b"x" * 100, 200), (b"x" * 101, 413), (b"small", 200)):
            conn.request("POST", "/pub?topic=k", body)
            response = conn.getresponse()
            response.read()
            assert response.status == status
        conn.request("GET", "/ping")
        assert conn.getresponse().read() == b"OK"
    finally:
        conn.close()
    assert topic_stats(daemon, "k")["depth"] == 2


def read_frame(sock: socket.socket) -> tuple[int, bytes]:
    header = recv_exactly(sock, 8)
    size, kind = struct.unpack(">ii", header)
    return kind, recv_exactly(sock, size - 4)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "nsqd closed the connection"
        data += chunk
    return data


def test_publish_over_http_consume_over_tcp(nsqd: Daemon) -> None:
    with socket.create_connection(nsqd.tcp_address, timeout=TIMEOUT) as sock:
        sock.sendall(b"  V2SUB crossing ch\n")
        assert read_frame(sock) == (0, b"OK")
        sock.sendall(b"RDY 1\n")
        # Whether RDY or the publish lands first, the message is delivered.
        assert call(nsqd, "POST", "/pub?topic=crossing", b"over http")[::2] == (200, b"OK")
        kind, data = read_frame(sock)
        assert kind == 2
        attempts, msg_id, body = struct.unpack(">H", data[8:10])[0], data[10:26], data[26:]
        assert (attempts, body) == (1, b"over http")
        sock.sendall(b"FIN " + msg_id + b"\n")
    assert topic_stats(nsqd, "crossing")["message_count"] == 1
