"""nsqadmin's HTTP port: a server connection whose answers may come later.

nsqd's and nsqlookupd's server (``broker.wire.http``) asks its application
for an answer synchronously, which suits them: every answer is in memory.
nsqadmin's answers are not: each waits for nsqlookupd and nsqd to answer
first.  So this connection hands each whole request to the application with
a ``respond`` callback and reads nothing more from the stream until it is
called (HTTP/1.1 answers go out in request order; pipelined requests wait in
h11's buffer).  ``respond`` is safe to call after the peer has gone: the
answer is dropped.

It is h11, the project's client-side HTTP library, on the server side; Go's
byte-exact framing matters less here than for nsqd, since nsqadmin's clients
are browsers and scripts reading JSON.  Bounds: the request head (Go's 1 MiB
plus 4 KiB) and the body (``max_body``, nsqadmin's 1 MiB + 1 read limit);
a larger body is answered 413 and the connection closed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import h11

from broker.ports import Clock, Connection
from broker.wire.http import Response, canonical_header_key, http_date

__all__ = ["AdminApp", "AdminHTTPConnection", "AdminRequest", "Respond"]

MAX_HEAD_BYTES = (1 << 20) + 4096
MAX_BODY_BYTES = (1 << 20) + 1


@dataclass(frozen=True, slots=True)
class AdminRequest:
    method: str
    target: str  # as sent: path and query
    path: str  # decoded
    query: dict[str, list[str]]
    headers: tuple[tuple[str, str], ...]  # (lower-case name, value), in order
    body: bytes
    peer: tuple[str, int]

    def header(self, name: str) -> str:
        """The first value of header ``name`` (any case), or ``""`` (Go's ``Header.Get``)."""
        lowered = name.lower()
        for k, v in self.headers:
            if k == lowered:
                return v
        return ""

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    @classmethod
    def build(cls, method: str, target: str, headers: tuple[tuple[str, str], ...] = (), body: bytes = b"", peer: tuple[str, int] = ("127.0.0.1", 0)) -> AdminRequest:
        parts = urlsplit(target)
        return cls(method, target, unquote(parts.path), parse_qs(parts.query, keep_blank_values=True), headers, body, peer)


Respond = Callable[[Response], None]


class AdminApp(Protocol):
    def handle(self, request: AdminRequest, respond: Respond) -> None:
        """Answer ``request`` by calling ``respond`` once, now or later."""
        ...


class AdminHTTPConnection:
    """One connection on nsqadmin's HTTP port (a ``ConnectionHandler``)."""

    def __init__(
        self,
        app: AdminApp,
        clock: Clock,
        *,
        on_open: Callable[[AdminHTTPConnection], None] = lambda c: None,
        on_close: Callable[[AdminHTTPConnection], None] = lambda c: None,
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        self._app = app
        self._clock = clock
        self._on_open = on_open
        self._on_close = on_close
        self._max_body = max_body
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self._conn: Connection | None = None
        self._peer: tuple[str, int] = ("", 0)
        self._head: h11.Request | None = None
        self._body = bytearray()
        self._waiting = False  # a request is with the application
        self._generation = 0  # which request a respond() belongs to

    # -- ConnectionHandler ----------------------------------------------------------------

    def connection_made(self, conn: Connection) -> None:
        self._conn = conn
        self._peer = conn.peer_address
        self._on_open(self)

    def data_received(self, data: bytes) -> None:
        if self._conn is None:
            return
        self._h11.receive_data(data)
        self._pump()

    def eof_received(self) -> None:
        if self._conn is None:
            return
        self._h11.receive_data(b"")
        self._pump()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._conn = None
            self._on_close(self)

    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        pass

    def close(self) -> None:
        """Close, letting what was already written go out first."""
        if self._conn is not None:
            self._conn.close()

    # -- reading ----------------------------------------------------------------------

    def _pump(self) -> None:
        while self._conn is not None and not self._waiting:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                self._refuse(exc.error_status_hint)
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                if event is h11.NEED_DATA and self._h11.their_state is h11.DONE and self._h11.our_state is h11.MUST_CLOSE:
                    self.close()
                return
            if isinstance(event, h11.Request):
                self._head = event
                self._body = bytearray()
            elif isinstance(event, h11.Data):
                self._body += event.data
                if len(self._body) > self._max_body:
                    self._refuse(413)
                    return
            elif isinstance(event, h11.EndOfMessage):
                self._dispatch()
            elif isinstance(event, h11.ConnectionClosed):
                self.close()
                return

    def _dispatch(self) -> None:
        head = self._head
        assert head is not None
        target = head.target.decode("latin-1")
        headers = tuple((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in head.headers)
        request = AdminRequest.build(head.method.decode("ascii"), target, headers, bytes(self._body), self._peer)
        self._body = bytearray()
        self._waiting = True
        self._generation += 1
        generation = self._generation

        def respond(response: Response) -> None:
            if generation == self._generation and self._waiting:
                self._send(response, request.method)

        self._app.handle(request, respond)

    # -- writing ----------------------------------------------------------------------

    def _send(self, response: Response, method: str) -> None:
        self._waiting = False
        if self._conn is None:
            return
        headers = [(canonical_header_key(k), v) for k, v in sorted(response.headers)]
        headers.append(("Date", http_date(self._clock.wall_ns() // 1_000_000_000)))
        headers.append(("Content-Length", str(len(response.body))))
        try:
            out = self._h11.send(h11.Response(status_code=response.status, headers=headers, reason=_reason(response.status))) or b""
            if response.body and method != "HEAD":
                out += self._h11.send(h11.Data(data=response.body)) or b""
            out += self._h11.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError:
            self._conn.abort()
            return
        self._conn.write(out)
        if self._h11.our_state is h11.MUST_CLOSE:
            self.close()
            return
        try:
            self._h11.start_next_cycle()
        except h11.LocalProtocolError:
            self.close()
            return
        self._pump()

    def _refuse(self, status: int) -> None:
        """What Go's server answers itself to a request it cannot read, then close."""
        if self._conn is None:
            return
        text = f"{status} {'Request Entity Too Large' if status == 413 else 'Bad Request'}".encode()
        if self._h11.our_state in (h11.IDLE, h11.SEND_RESPONSE) and not self._waiting:
            self._conn.write(
                b"HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n%s" % (text, text)
            )
        self.close()


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""
