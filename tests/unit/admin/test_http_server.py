"""The nsqadmin HTTP connection: answers that come later, in order, bounded, dropped when the peer left."""

from __future__ import annotations

from broker.admin.http_server import AdminHTTPConnection, AdminRequest, Respond
from broker.wire.http import Response
from tests.fakes import FakeClock, FakeConnection


class LaterApp:
    """Holds each request until the test answers it."""

    def __init__(self) -> None:
        self.pending: list[tuple[AdminRequest, Respond]] = []

    def handle(self, request: AdminRequest, respond: Respond) -> None:
        self.pending.append((request, respond))


def connect(max_body: int = 1024) -> tuple[LaterApp, AdminHTTPConnection, FakeConnection]:
    app = LaterApp()
    handler = AdminHTTPConnection(app, FakeClock(), max_body=max_body)
    return app, handler, FakeConnection(handler, peer=("10.1.2.3", 4567))


def test_an_answer_can_come_later() -> None:
    app, handler, conn = connect()
    handler.data_received(b"GET /api/topics?inactive=true HTTP/1.1\r\nHost: x\r\nX-User: al\r\n\r\n")
    (request, respond), = app.pending
    assert (request.method, request.path, request.query, request.peer) == ("GET", "/api/topics", {"inactive": ["true"]}, ("10.1.2.3", 4567))
    assert request.header("X-USER") == "al" and request.header("missing") == ""
    assert conn.written == b""
    respond(Response(200, (("content-type", "application/json"),), b"{}"))
    out = bytes(conn.written)
    assert out.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Type: application/json\r\n" in out
    assert b"Content-Length: 2\r\n" in out and out.endswith(b"\r\n\r\n{}")
    assert not conn.closed


def test_pipelined_requests_wait_their_turn() -> None:
    app, handler, conn = connect()
    handler.data_received(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
    assert [r.path for r, _ in app.pending] == ["/a"]
    app.pending[0][1](Response(200, (), b"A"))
    assert [r.path for r, _ in app.pending] == ["/a", "/b"] and app.pending[1][0].body == b"abc"
    app.pending[0][1](Response(200, (), b"again"))  # a second answer to one request is dropped
    app.pending[1][1](Response(404, (), b"B"))
    out = bytes(conn.written)
    assert out.index(b"\r\n\r\nA") < out.index(b"HTTP/1.1 404 Not Found") and b"again" not in out


def test_an_answer_after_the_peer_left_is_dropped() -> None:
    app, handler, conn = connect()
    handler.data_received(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    conn.close()
    written = bytes(conn.written)
    app.pending[0][1](Response(200, (), b"late"))
    assert bytes(conn.written) == written


def test_connection_close_is_honoured() -> None:
    app, handler, conn = connect()
    handler.data_received(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    app.pending[0][1](Response(200, (), b"bye"))
    assert conn.closed and bytes(conn.written).endswith(b"bye")


def test_a_body_past_the_bound_is_refused() -> None:
    app, handler, conn = connect(max_body=4)
    handler.data_received(b"PUT /config/x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789")
    assert not app.pending and conn.closed
    assert bytes(conn.written).startswith(b"HTTP/1.1 413 Request Entity Too Large\r\n")


def test_garbage_is_a_400_and_a_close() -> None:
    app, handler, conn = connect()
    handler.data_received(b"NOT HTTP AT ALL\r\n\r\n")
    assert not app.pending and conn.closed and bytes(conn.written).startswith(b"HTTP/1.1 400 Bad Request\r\n")
