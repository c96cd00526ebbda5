"""AUTH against a real auth server (a small HTTP server in the test) with pynsq and gnsq.

The auth server answers by secret: ``good`` may publish and subscribe on
``orders``; ``readonly`` may only subscribe; ``slow`` is answered only when the
test says so; anything else is 403.  It records every query it was asked.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import gnsq
import pytest

from tests.integration.conftest import Daemon
from tests.integration.test_pynsq import Publisher, Received, reader
from tests.integration.test_tls_compression import Certs, clients, tls_flags
from tests.integration.test_tls_compression import certs as certs  # the fixture

pytestmark = pytest.mark.integration

BOUND = 20.0

ANSWERS: dict[str, dict[str, Any]] = {
    "good": {
        "ttl": 3600,
        "identity": "alice",
        "identity_url": "https://auth.example/alice",
        "authorizations": [{"topic": "^orders$", "channels": [".*"], "permissions": ["subscribe", "publish"]}],
    },
    "readonly": {
        "ttl": 3600,
        "identity": "bob",
        "authorizations": [{"topic": ".*", "channels": [".*"], "permissions": ["subscribe"]}],
    },
}


class AuthServer:
    def __init__(self) -> None:
        self.queries: list[dict[str, list[str]]] = []
        self.release_slow = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query, keep_blank_values=True)
                outer.queries.append(query)
                secret = query.get("secret", [""])[0]
                if secret == "slow":
                    outer.release_slow.wait(BOUND)
                    secret = "good"
                doc = ANSWERS.get(secret)
                body = json.dumps(doc if doc is not None else {"message": "NOT_AUTHORIZED"}).encode()
                self.send_response(200 if doc is not None and parts.path == "/auth" else 403)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release_slow.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def auth_server() -> Iterator[AuthServer]:
    server = AuthServer()
    yield server
    server.close()


@pytest.fixture
def auth_nsqd(nsqd_factory: Callable[..., Daemon], auth_server: AuthServer) -> Daemon:
    return nsqd_factory(f"--auth-http-address={auth_server.address}")


def gnsq_conn(daemon: Daemon, **kw: Any) -> Any:
    host, port = daemon.tcp_address
    conn = gnsq.NsqdTCPClient(host, port, timeout=BOUND, **kw)
    conn.connect()
    return conn


def test_pynsq_with_the_right_secret_publishes_and_consumes(auth_nsqd: Daemon, auth_server: AuthServer) -> None:
    async def main() -> list[bytes]:
        got = Received()
        r = reader(auth_nsqd, "orders", "c", got.finish, auth_secret="good")
        await Publisher(auth_nsqd, auth_secret="good").pub("orders", b"paid")
        await got.until(lambda items: len(items) >= 1)
        (client,) = clients(auth_nsqd)
        r.close()
        assert client["authed"] is True
        assert client["auth_identity"] == "alice"
        assert client["auth_identity_url"] == "https://auth.example/alice"
        return got.bodies()

    assert asyncio.run(main()) == [b"paid"]
    assert {q["secret"][0] for q in auth_server.queries} == {"good"}
    assert all(q["remote_ip"] == ["127.0.0.1"] and q["tls"] == ["false"] for q in auth_server.queries)


def expect_error(conn: Any, kind: type[Exception], text: str) -> None:
    """The next frame is nsqd's error: gnsq names the code by class and keeps the text."""
    frame, err = conn.read_response()
    assert frame == gnsq.protocol.FRAME_TYPE_ERROR
    assert type(err) is kind and err.args == (text.encode(),), err


def test_gnsq_gets_nsqds_answers_for_each_refusal(auth_nsqd: Daemon) -> None:
    conn = gnsq_conn(auth_nsqd)
    try:
        assert conn.identify()["auth_required"] is True
        conn.publish("orders", b"x")
        expect_error(conn, gnsq.errors.NSQErrorCode, "AUTH required before PUB")  # E_AUTH_FIRST: no class of its own
    finally:
        conn.close_stream()

    conn = gnsq_conn(auth_nsqd, auth_secret=b"wrong")
    try:
        with pytest.raises(gnsq.errors.NSQAuthFailed, match="AUTH failed"):
            conn.identify()  # gnsq sends AUTH as soon as IDENTIFY says it is required
    finally:
        conn.close_stream()
    auth_nsqd.wait_for_line(r"WARNING: PROTOCOL\(V2\): \[127\.0\.0\.1:\d+\] AUTH failed failed to auth against .* got response 403 Forbidden ")

    conn = gnsq_conn(auth_nsqd, auth_secret=b"readonly")
    answers: list[dict[str, Any]] = []
    conn.on_auth.connect(lambda _conn, response: answers.append(response), weak=False)
    try:
        conn.identify()
        assert answers == [{"identity": "bob", "identity_url": "", "permission_count": 1}]
        conn.publish("orders", b"x")
        expect_error(conn, gnsq.errors.NSQUnauthorized, 'AUTH failed for PUB on "orders" ""')
    finally:
        conn.close_stream()


def test_a_slow_auth_server_holds_up_only_the_client_it_is_answering(auth_nsqd: Daemon, auth_server: AuthServer) -> None:
    slow = gnsq_conn(auth_nsqd)
    fast = gnsq_conn(auth_nsqd, auth_secret=b"good")
    try:
        slow.identify()
        slow.send(gnsq.protocol.auth(b"slow"))  # and do not wait for the answer yet
        slow.publish("orders", b"after the slow auth")
        fast.identify()
        fast.publish("orders", b"while the other waits")
        assert fast.read_response() == (gnsq.protocol.FRAME_TYPE_RESPONSE, b"OK")
        auth_server.release_slow.set()
        frame, data = slow.read_response()
        assert frame == gnsq.protocol.FRAME_TYPE_RESPONSE
        assert json.loads(data)["identity"] == "alice"
        assert slow.read_response() == (gnsq.protocol.FRAME_TYPE_RESPONSE, b"OK")
    finally:
        slow.close_stream()
        fast.close_stream()


def test_an_auth_server_that_is_down_refuses_the_client_and_nsqd_goes_on(nsqd_factory: Callable[..., Daemon]) -> None:
    daemon = nsqd_factory("--auth-http-address=127.0.0.1:1", "--http-client-connect-timeout=1s")
    for _ in range(2):
        conn = gnsq_conn(daemon, auth_secret=b"good")
        try:
            with pytest.raises(gnsq.errors.NSQAuthFailed, match="AUTH failed"):
                conn.identify()
        finally:
            conn.close_stream()
    daemon.wait_for_line(r"AUTH failed failed to auth against 127\.0\.0\.1:1 - ")


def test_over_tls_the_auth_server_is_told_so_with_the_client_certificates_common_name(
    nsqd_factory: Callable[..., Daemon], auth_server: AuthServer, certs: Certs
) -> None:
    daemon = nsqd_factory(
        *tls_flags(certs, "--tls-client-auth-policy=require-verify", f"--tls-root-ca-file={certs.ca}"),
        f"--auth-http-address={auth_server.address}",
        protocols=("TCP", "HTTP", "HTTPS"),
    )
    tls = {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": str(certs.ca), "certfile": str(certs.client), "keyfile": str(certs.client)}
    conn = gnsq_conn(daemon, tls_v1=True, tls_options=tls, auth_secret=b"good")
    try:
        conn.identify()
        conn.publish("orders", b"signed")
        assert conn.read_response() == (gnsq.protocol.FRAME_TYPE_RESPONSE, b"OK")
    finally:
        conn.close_stream()
    (query,) = auth_server.queries
    assert (query["tls"], query["common_name"], query["secret"]) == (["true"], ["client-1"], ["good"])
