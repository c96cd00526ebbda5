"""A sans-IO HTTP/1.1 server connection, built on h11, for the daemons' HTTP APIs.

The runtime feeds bytes to ``HTTPServerConnection`` (a ``ConnectionHandler``);
h11 turns them into a request head and body chunks; the application (an
``HTTPApp``) turns one whole ``Request`` into one ``Response``; h11 turns that
back into bytes for the ``Connection``.  Handling is synchronous, so requests
are answered strictly in order, which is all HTTP/1.1 pipelining asks.

The application says, when a request's head arrives, how much of its body it
wants to see (``body_limit``).  The body is buffered up to that many bytes and
no further: a longer body reaches the application cut at the limit and marked
``body_truncated``, which is how nsqd's "read at most max+1 bytes, then
complain" checks are reproduced without ever holding a huge body.  A body
announced (Content-Length) as longer than the limit is not read at all before
the application is asked.

What is left of a body the application did not read is skipped before the
answer goes out, as Go's net/http does: up to ``max_discard_bytes`` (Go's
256 KiB) is read and thrown away and the connection stays open; past that the
answer carries ``Connection: close`` and the connection is closed.

Everything is bounded: the request head (``max_header_bytes``, h11's
``max_incomplete_event_size``), the body (``body_limit`` capped by
``max_body_bytes``), the skipped remainder, and the pipelined bytes held while
the peer is not reading our answers (``max_pending_bytes``: reading is paused
when the transport's write buffer is full, and a peer that keeps sending past
that bound is cut off).

Answers are shaped like Go's net/http ones, so that a client sees the same
bytes from either daemon: header names in Go's canonical case, a ``Date``
header when a clock is given, ``Content-Length`` for bodies up to 2048 bytes
and chunked encoding past that (Go buffers 2 KiB before it must choose), and
the raw ``400 Bad Request`` (or 431, 501, 505) with ``Connection: close`` that
Go writes for a request it cannot parse.  Two differences remain, both h11's:
the status line is always ``HTTP/1.1``, and an HTTP/1.0 client never gets
keep-alive.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Protocol

import h11

from broker.ports import Clock, Connection

__all__ = [
    "HTTPApp",
    "HTTPLimits",
    "HTTPServerConnection",
    "Request",
    "RequestHead",
    "Response",
    "canonical_header_key",
    "http_date",
    "utc_fields",
]


@dataclass(frozen=True, slots=True)
class RequestHead:
    method: str
    target: bytes  # the raw request-target, as sent
    headers: tuple[tuple[bytes, bytes], ...]  # names lower-cased by h11
    http_version: bytes
    content_length: int | None  # None when absent (no body, or chunked)
    peer: tuple[str, int]

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower-case), or None."""
        for k, v in self.headers:
            if k == name:
                return v
        return None


@dataclass(frozen=True, slots=True)
class Request:
    head: RequestHead
    body: bytes  # at most the application's body_limit bytes
    body_truncated: bool  # the body was longer than the limit (or announced so)


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


class HTTPApp(Protocol):
    def body_limit(self, head: RequestHead) -> int | None:
        """How many body bytes to buffer for this request (None: ``max_body_bytes``)."""
        ...

    def handle(self, request: Request) -> Response:
        """The answer to one request; called once per request, in order."""
        ...


@dataclass(frozen=True, slots=True)
class HTTPLimits:
    # Go's http.DefaultMaxHeaderBytes plus the 4096 bytes of slack its server adds.
    max_header_bytes: int = (1 << 20) + 4096
    max_body_bytes: int = 5 * 1024 * 1024 + 1
    # Go's maxPostHandlerReadBytes: how much unread body is skipped to keep a connection.
    max_discard_bytes: int = 256 << 10
    max_pending_bytes: int = 1 << 20
    # Go's bufferBeforeChunkingSize: bodies longer than this are sent chunked.
    chunk_threshold: int = 2048


_IDLE, _BODY, _DRAIN, _CLOSED = range(4)
_ENCODED_HEADER_SETS = 32

# Go's http.StatusText where it differs from Python's (or Python lacks it).
_REASONS = {413: "Request Entity Too Large", 431: "Request Header Fields Too Large"}


class HTTPServerConnection:
    """One HTTP connection: a ``ConnectionHandler`` that answers through an ``HTTPApp``."""

    def __init__(self, app: HTTPApp, limits: HTTPLimits | None = None, clock: Clock | None = None) -> None:
        self._app = app
        self._limits = limits or HTTPLimits()
        self._clock = clock
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=self._limits.max_header_bytes)
        self._conn: Connection | None = None
        self._peer: tuple[str, int] = ("", 0)
        self._phase = _IDLE
        self._head: RequestHead | None = None
        self._body = bytearray()
        self._limit = 0
        self._received = 0  # body bytes of the current request seen so far
        self._kept = 0  # of which the application was given
        self._pending: Response | None = None  # answered, waiting for the body to be skipped
        self._writing_paused = False
        self._eof = False
        self._processing = False
        # Most answers reuse a few header sets and a Date for a whole second: encode each once.
        self._encoded: dict[tuple[tuple[str, str], ...], list[tuple[bytes, bytes]]] = {}
        self._date: tuple[int, bytes] = (-1, b"")

    # -- ConnectionHandler ----------------------------------------------------------

    def connection_made(self, conn: Connection) -> None:
        self._conn = conn
        self._peer = conn.peer_address

    def data_received(self, data: bytes) -> None:
        if self._phase == _CLOSED or not data:  # h11 would take b"" for end of input
            return
        try:
            self._h11.receive_data(data)
        except RuntimeError:  # data after EOF: the runtime never does this
            self._close()
            return
        if self._writing_paused:
            if len(self._h11.trailing_data[0]) > self._limits.max_pending_bytes:
                self._abort()
            return
        self._process()

    def eof_received(self) -> None:
        if self._phase == _CLOSED:
            return
        self._eof = True
        self._h11.receive_data(b"")
        self._process()
        self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._phase = _CLOSED
        self._conn = None
        self._body = bytearray()

    def pause_writing(self) -> None:
        self._writing_paused = True
        if self._conn is not None:
            self._conn.pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._conn is not None and self._phase != _CLOSED:
            self._conn.resume_reading()
            self._process()

    # -- reading --------------------------------------------------------------------

    def _process(self) -> None:
        if self._processing:
            return
        self._processing = True
        try:
            self._process_events()
        finally:
            self._processing = False

    def _process_events(self) -> None:
        h = self._h11
        while self._phase != _CLOSED and not self._writing_paused:
            try:
                event = h.next_event()
            except h11.RemoteProtocolError as exc:
                self._protocol_error(exc)
                return
            if event is h11.NEED_DATA:
                return
            if event is h11.PAUSED:
                if h.our_state is h11.DONE and h.their_state is h11.DONE:
                    h.start_next_cycle()
                    continue
                return
            if isinstance(event, h11.Request):
                self._on_head(event)
            elif isinstance(event, h11.Data):
                self._on_data(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._on_end()
            elif isinstance(event, h11.ConnectionClosed):
                self._close()
                return

    def _on_head(self, event: h11.Request) -> None:
        headers = tuple((k, v) for k, v in event.headers)
        length: int | None = None
        for k, v in headers:
            if k == b"content-length":
                length = int(v)  # h11 has validated it
        head = RequestHead(event.method.decode("ascii"), event.target, headers, event.http_version, length, self._peer)
        limit = self._app.body_limit(head)
        cap = self._limits.max_body_bytes
        self._head = head
        self._limit = cap if limit is None else max(0, min(limit, cap))
        self._body = bytearray()
        self._received = 0
        self._phase = _BODY
        if length is not None and length > self._limit:
            self._answer_early()
        elif self._h11.they_are_waiting_for_100_continue:
            # The body is wanted, so ask for it (as Go does on the handler's first read).
            self._write(self._h11.send(h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")))

    def _on_data(self, data: bytes) -> None:
        self._received += len(data)
        if self._phase == _BODY:
            room = self._limit - len(self._body)
            if len(data) <= room:
                self._body += data
                return
            self._body += data[:room]
            self._answer_early()
        elif self._phase == _DRAIN and self._received - self._kept > self._limits.max_discard_bytes:
            self._send_pending(close=True)

    def _on_end(self) -> None:
        if self._phase == _BODY:
            head = self._head
            assert head is not None
            body = bytes(self._body)
            self._body = bytearray()
            self._send(self._app.handle(Request(head, body, False)), close=False)
        elif self._phase == _DRAIN:
            self._send_pending(close=False)

    def _answer_early(self) -> None:
        """The application has seen all it wants; skip the rest of the body, then answer."""
        head = self._head
        assert head is not None
        body = bytes(self._body)
        self._body = bytearray()
        self._kept = len(body)
        self._pending = self._app.handle(Request(head, body, True))
        self._phase = _DRAIN
        if self._h11.they_are_waiting_for_100_continue:
            # The client has not sent the body and will not: Go closes in this case.
            self._send_pending(close=True)
            return
        unread = self._received - self._kept
        if head.content_length is not None:
            unread = head.content_length - self._kept
        if unread > self._limits.max_discard_bytes:
            self._send_pending(close=True)

    def _protocol_error(self, exc: h11.RemoteProtocolError) -> None:
        if self._pending is not None:
            # Unreadable rest of a body we already answered: answer, then stop.
            self._send_pending(close=True)
        elif not self._eof and self._h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            status = exc.error_status_hint
            text = f"{status} {_reason(status)}"
            if status == 501:
                text += ": unsupported transfer encoding"
            # Written raw, as Go's server writes it: no Date, no length, then close.
            self._write(
                f"HTTP/1.1 {text}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n{text}".encode()
            )
        self._close()

    # -- writing --------------------------------------------------------------------

    def _send_pending(self, close: bool) -> None:
        response = self._pending
        assert response is not None
        self._pending = None
        self._send(response, close)

    def _send(self, response: Response, close: bool) -> None:
        head = self._head
        assert head is not None
        self._head = None
        self._phase = _IDLE
        h = self._h11
        status = response.status
        body = response.body
        headers = self._headers(response, close)
        bodiless = status in (204, 304) or head.method == "HEAD"
        out = h.send(h11.Response(status_code=status, headers=headers, reason=_reason(status).encode()))
        if body and not bodiless:
            out += h.send(h11.Data(data=body))
        out += h.send(h11.EndOfMessage())
        self._write(out)
        if h.our_state is h11.MUST_CLOSE:
            self._close()

    def _headers(self, response: Response, close: bool) -> list[tuple[bytes, bytes]]:
        # Go writes the handler's headers sorted by name, then its own (Date,
        # Content-Length); h11 appends the framing ones it needs.
        encoded = self._encoded.get(response.headers)
        if encoded is None:
            given = sorted((canonical_header_key(k), v) for k, v in response.headers)
            encoded = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in given if k not in ("Content-Length", "Date")]
            if len(self._encoded) >= _ENCODED_HEADER_SETS:
                self._encoded.clear()
            self._encoded[response.headers] = encoded
        headers = list(encoded)
        if self._clock is not None:
            second = self._clock.wall_ns() // 1_000_000_000
            if second != self._date[0]:
                self._date = (second, http_date(second).encode())
            headers.append((b"Date", self._date[1]))
        status = response.status
        if status not in (204, 304) and len(response.body) <= self._limits.chunk_threshold:
            headers.append((b"Content-Length", str(len(response.body)).encode()))
        if close and not any(k == b"Connection" for k, _ in headers):
            headers.append((b"Connection", b"close"))
        return headers

    def _write(self, data: bytes | None) -> None:
        if data and self._conn is not None and self._phase != _CLOSED:
            self._conn.write(data)

    def _close(self) -> None:
        if self._phase == _CLOSED:
            return
        self._phase = _CLOSED
        self._pending = None
        if self._conn is not None:
            self._conn.close()

    def _abort(self) -> None:
        self._phase = _CLOSED
        if self._conn is not None:
            self._conn.abort()


def _reason(status: int) -> str:
    reason = _REASONS.get(status)
    if reason is not None:
        return reason
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def canonical_header_key(name: str) -> str:
    """Go's ``textproto.CanonicalMIMEHeaderKey``: ``x-nsq-content-type`` -> ``X-Nsq-Content-Type``."""
    if not name or any(not (c.isascii() and (c.isalnum() or c == "-")) for c in name):
        return name  # Go leaves keys with other characters as they are
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def utc_fields(unix_seconds: int) -> tuple[int, int, int, int, int, int, int]:
    """(year, month, day, hour, minute, second, weekday 0=Monday) in UTC, from arithmetic alone."""
    days, rem = divmod(unix_seconds, 86400)
    hour, rem = divmod(rem, 3600)
    minute, second = divmod(rem, 60)
    # Howard Hinnant's days_from_civil, inverted.
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday
    return year, month, day, hour, minute, second, weekday


def http_date(unix_seconds: int) -> str:
    """``Mon, 02 Jan 2006 15:04:05 GMT``, the form Go's server puts in ``Date``."""
    y, mo, d, h, mi, s, wd = utc_fields(unix_seconds)
    return f"{_DAYS[wd]}, {d:02d} {_MONTHS[mo - 1]} {y:04d} {h:02d}:{mi:02d}:{s:02d} GMT"
