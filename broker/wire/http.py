"""A sans-IO HTTP/1.1 server connection for the daemons' HTTP APIs.

The runtime feeds bytes to ``HTTPServerConnection`` (a ``ConnectionHandler``);
it frames and parses them into a request head and a body, the application (an
``HTTPApp``) turns one whole ``Request`` into one ``Response``, and the answer
goes back to the ``Connection`` as bytes.  Handling is synchronous, so requests
are answered strictly in order, which is all HTTP/1.1 pipelining asks; the
answers to the requests of one read go out in one write.

Parsing follows Go's net/http server, since that is the server nsqd clients
talk to: the request line is ``METHOD SP target SP HTTP/1.x`` with a token for
a method (any token: routing decides between 404 and 405), header names are
tokens, values hold no control bytes but tab, lines may end in a bare LF,
obs-fold continuation lines are joined with a space, an HTTP/1.1 request needs
exactly one ``Host``, ``Content-Length`` is decimal digits (repeated only with
one value), ``Transfer-Encoding`` is ``chunked`` or answered 501 (and ignored
on HTTP/1.0), and chunk-size lines are hex with extensions ignored.  A
connection that repeats its head byte for byte (a client publishing same-size
messages) reuses the last parse, and one whose head differs from the last
fully parsed one only in the Content-Length digits reuses that parse with the
new length (see ``_length_template``).

It is a hand-written parser rather than h11 or httptools, measured with
``python -m bench.bench_http_wrk --parsers`` on one ``/pub`` request: h11
takes ~40 µs to parse and answer it, this server ~6 µs parsing it in full
(~2.6 µs when the head repeats), httptools ~1 µs to parse alone.  httptools would save a few µs of a
request's ~20, but llhttp refuses what Go accepts (a method it does not know,
which Go routes to 405 or 404; a lower-case one), raises on ``Upgrade`` and
``CONNECT``, and cannot stop between pipelined requests when the peer stops
reading; and it would be a compiled dependency of the core.

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

Everything is bounded: the request head (``max_header_bytes``), a chunk-size
line, the body (``body_limit`` capped by ``max_body_bytes``), the skipped
remainder, and the pipelined bytes held while the peer is not reading our
answers (``max_pending_bytes``: reading is paused when the transport's write
buffer is full, and a peer that keeps sending past that bound is cut off).

Answers are shaped like Go's net/http ones, so that a client sees the same
bytes from either daemon: header names in Go's canonical case, sorted, then a
``Date`` header when a clock is given, ``Content-Length`` for bodies up to 2048
bytes and chunked encoding past that (Go buffers 2 KiB before it must choose),
and the raw ``400 Bad Request`` (or 431, 501, 505) with ``Connection: close``
that Go writes for a request it cannot parse.  Two differences remain: the
status line is always ``HTTP/1.1``, and an HTTP/1.0 client never gets
keep-alive (its chunk-sized answers are sent unframed, then closed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import NamedTuple, Protocol

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


# Request, its head and the response are named tuples rather than frozen
# dataclasses: as immutable, and built in a quarter of the time (a frozen
# dataclass sets each field through object.__setattr__), three times a request.


class RequestHead(NamedTuple):
    method: str
    target: bytes  # the raw request-target, as sent
    header_block: bytes  # the header lines, as sent (each ending in LF)
    http_version: bytes
    content_length: int | None  # None when absent (no body, or chunked)
    peer: tuple[str, int]

    @property
    def headers(self) -> tuple[tuple[bytes, bytes], ...]:
        """(name lower-cased, value trimmed) pairs, in order; read from the block when asked."""
        return tuple((k.lower(), v) for k, v in _header_lines(self.header_block))

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower-case), or None."""
        for k, v in self.headers:
            if k == name:
                return v
        return None


class Request(NamedTuple):
    head: RequestHead
    body: bytes  # at most the application's body_limit bytes
    body_truncated: bool  # the body was longer than the limit (or announced so)


class Response(NamedTuple):
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


# Where the reader is in the current request.
_HEAD, _BODY, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _CLOSED = range(7)
_ENCODED_HEADER_SETS = 32
_MAX_CHUNK_LINE = 4096  # Go's maxLineLength for a chunk-size line
_FLUSH_BYTES = 64 << 10  # answers to pipelined requests are written in batches up to this

# Go's http.StatusText where it differs from Python's (or Python lacks it).
_REASONS = {413: "Request Entity Too Large", 431: "Request Header Fields Too Large"}
# What Go's server adds to the status text of the raw answers it writes itself.
_RAW_DETAIL = {501: ": unsupported transfer encoding", 505: ": unsupported protocol version"}

_TOKEN = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Control bytes Go refuses in a request head (tab, CR and LF are judged line by line).
_HEAD_CTL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_HEX_DIGITS = b"0123456789abcdefABCDEF"
# The common shapes, matched in C; anything else goes through the line-by-line readers.
_REQUEST_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([^\x00-\x20\x7f]+) HTTP/1\.([01])\r?\n")
_HEADER_LINE = re.compile(rb"^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([^\x00-\x08\x0a-\x1f\x7f]*?)[ \t]*\r?\n", re.MULTILINE)


# A parsed head: the head, keep-alive, chunked, and whether to send 100 Continue.
_ParsedHead = tuple[RequestHead, bool, bool, bool]


class _BadRequest(Exception):
    """What Go's server answers itself, before any handler, then closes."""

    def __init__(self, status: int = 400) -> None:
        super().__init__(status)
        self.status = status


class HTTPServerConnection:
    """One HTTP connection: a ``ConnectionHandler`` that answers through an ``HTTPApp``."""

    def __init__(self, app: HTTPApp, limits: HTTPLimits | None = None, clock: Clock | None = None) -> None:
        self._app = app
        self._limits = limits or HTTPLimits()
        self._clock = clock
        self._conn: Connection | None = None
        self._peer: tuple[str, int] = ("", 0)
        self._phase = _HEAD
        self._buf: bytes | bytearray = b""  # received, not yet parsed
        self._scanned = 0  # how far into _buf the end of a head was already looked for
        self._out: list[bytes] = []  # answers not yet written
        self._out_bytes = 0
        # The request being read.
        self._head: RequestHead | None = None
        self._keep_alive = True
        self._http10 = False
        self._waiting_continue = False  # it asked for 100-continue and has sent no body yet
        self._remaining = 0  # bytes left of the Content-Length body, or of the current chunk
        self._body = bytearray()
        self._limit = 0
        self._received = 0  # body bytes of the current request seen so far
        self._kept = 0  # of which the application was given
        self._pending: Response | None = None  # answered, waiting for the body to be skipped
        self._writing_paused = False
        self._eof = False
        self._processing = False
        # Most answers reuse a few header sets and a Date for a whole second: encode each once,
        # and an answer that is the very same object as the last one, whole.
        self._encoded: dict[tuple[tuple[str, str], ...], tuple[bytes, bytes]] = {}
        self._date: tuple[int, bytes] = (-1, b"")
        self._last: tuple[Response | None, int, bytes] = (None, -1, b"")
        self._last_head: tuple[bytes, _ParsedHead] | None = None
        # The last fully parsed head cut around its Content-Length digits (see _length_template).
        self._template: tuple[bytes, bytes, int, _ParsedHead] | None = None

    # -- ConnectionHandler ----------------------------------------------------------

    def connection_made(self, conn: Connection) -> None:
        self._conn = conn
        self._peer = conn.peer_address

    def data_received(self, data: bytes) -> None:
        if self._phase == _CLOSED or not data:
            return
        if self._buf:
            if type(self._buf) is not bytearray:
                self._buf = bytearray(self._buf)
            self._buf += data
        else:
            self._buf = data
        if self._writing_paused:
            if len(self._buf) > self._limits.max_pending_bytes:
                self._abort()
            return
        self._process()

    def eof_received(self) -> None:
        if self._phase == _CLOSED:
            return
        self._eof = True
        self._process()
        if self._pending is not None and self._phase != _CLOSED:
            # The rest of a body we already answered will never come: answer, then stop.
            self._send_pending(close=True)
        self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._phase = _CLOSED
        self._conn = None
        self._buf = b""
        self._body = bytearray()
        self._out = []

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
            buf = self._buf
            try:
                pos = self._consume(buf)
            except _BadRequest as err:
                self._protocol_error(err.status)
                return
            if self._phase == _CLOSED:
                return
            # Keep what was not consumed.  self._buf may have grown meanwhile (data
            # received while the application was answering), always after buf's bytes.
            rest = self._buf
            if pos >= len(rest):
                self._buf = b""
                self._scanned = 0
            elif pos:
                self._scanned = max(0, self._scanned - pos)
                if type(rest) is bytearray:
                    del rest[:pos]
                else:
                    self._buf = rest[pos:]
            self._flush()
        finally:
            self._processing = False

    def _consume(self, buf: bytes | bytearray) -> int:
        """Parse and answer what ``buf`` holds; the offset of the first byte not consumed."""
        pos = 0
        n = len(buf)
        while pos < n and not self._writing_paused:
            phase = self._phase
            if phase == _HEAD:
                # Where the head ends: CRLF CRLF, or (as Go allows) a bare LF for either.
                scan = self._scanned - 2 if self._scanned - 2 > pos else pos
                end = buf.find(b"\n\r\n", scan)
                bare = buf.find(b"\n\n", scan, end + 1 if end >= 0 else n)
                if bare >= 0:
                    end, past = bare, bare + 2
                elif end >= 0:
                    past = end + 3
                else:
                    if n - pos > self._limits.max_header_bytes:
                        raise _BadRequest(431)
                    self._scanned = n
                    return pos
                self._scanned = 0
                if end - pos > self._limits.max_header_bytes:
                    raise _BadRequest(431)
                self._on_head(bytes(buf[pos : end + 1]))
                pos = past
            elif phase == _BODY:
                take = min(self._remaining, n - pos)
                if not self._body and take == self._remaining and self._pending is None:
                    # The whole body is here: no need to gather it.
                    self._received = take
                    self._phase = _HEAD
                    self._on_end(bytes(buf[pos : pos + take]))
                    pos += take
                    continue
                self._on_data(buf[pos : pos + take])
                pos += take
                self._remaining -= take
                if self._remaining == 0 and self._phase == _BODY:
                    self._phase = _HEAD
                    self._on_end(None)
            elif phase == _CHUNK_DATA:
                take = min(self._remaining, n - pos)
                self._on_data(buf[pos : pos + take])
                pos += take
                self._remaining -= take
                if self._remaining == 0 and self._phase == _CHUNK_DATA:
                    self._phase = _CHUNK_END
            elif phase in (_CHUNK_SIZE, _TRAILER):
                nl = buf.find(b"\n", pos)
                if nl < 0:
                    bound = _MAX_CHUNK_LINE if phase == _CHUNK_SIZE else self._limits.max_header_bytes
                    if n - pos > bound:
                        raise _BadRequest
                    return pos
                line = buf[pos:nl]
                pos = nl + 1
                if phase == _CHUNK_SIZE:
                    self._chunk_size(line)
                elif not line.rstrip(b"\r"):
                    self._phase = _HEAD
                    self._on_end(None)
            elif phase == _CHUNK_END:
                if n - pos < 2:
                    return pos
                if buf[pos : pos + 2] != b"\r\n":
                    raise _BadRequest
                pos += 2
                self._phase = _CHUNK_SIZE
            else:  # _CLOSED
                return n
        return pos

    def _chunk_size(self, line: bytes | bytearray) -> None:
        # Go: trailing whitespace trimmed, extensions after ';' ignored, then at most 16 hex digits.
        digits = line.rstrip(b" \t\r").split(b";", 1)[0]
        if not digits or len(digits) > 16 or digits.translate(None, _HEX_DIGITS):
            raise _BadRequest
        size = int(digits, 16)
        if size == 0:
            self._phase = _TRAILER
        else:
            self._phase = _CHUNK_DATA
            self._remaining = size

    def _on_head(self, text: bytes) -> None:
        """One request head (each line ending in LF, less the blank one): parse it, then start the body."""
        last = self._last_head
        parsed: _ParsedHead | None
        if last is not None and text == last[0]:
            # A keep-alive client repeats its head byte for byte (same-size messages): parse it once.
            parsed = last[1]
        else:
            parsed = self._reparse(text)
            if parsed is None:
                parsed = self._parse_head(text)
                self._template = _length_template(text, parsed)
            self._last_head = (text, parsed)
        head, keep_alive, chunked, expect = parsed
        length = head.content_length
        limit = self._app.body_limit(head)
        cap = self._limits.max_body_bytes
        self._head = head
        self._keep_alive = keep_alive
        self._http10 = head.http_version == b"1.0"
        self._limit = cap if limit is None else max(0, min(limit, cap))
        self._received = 0
        self._kept = 0
        self._waiting_continue = expect
        if chunked:
            self._phase = _CHUNK_SIZE
        elif length:
            self._phase = _BODY
            self._remaining = length
        else:
            self._on_end(b"")
            return
        if length is not None and length > self._limit:
            self._answer_early()
        elif expect:
            # The body is wanted, so ask for it (as Go does on the handler's first read).
            self._waiting_continue = False
            self._write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _reparse(self, text: bytes) -> _ParsedHead | None:
        """The last full parse, when ``text`` differs from its head only in the Content-Length digits."""
        template = self._template
        if template is None:
            return None
        prefix, suffix, block_start, parsed = template
        if not (text.startswith(prefix) and text.endswith(suffix)):
            return None
        digits = text[len(prefix) : len(text) - len(suffix)]
        if not digits.isdigit() or len(digits) > 18:
            return None
        old, keep_alive, _, _ = parsed
        block = text[block_start:]  # the request line is in the prefix: the block starts where it did
        return RequestHead(old.method, old.target, block, old.http_version, int(digits), old.peer), keep_alive, False, False

    def _parse_head(self, text: bytes) -> _ParsedHead:
        """A request head as Go's server reads it, or ``_BadRequest``."""
        m = _REQUEST_LINE.match(text)
        if m is not None:
            method, target, minor = m.groups()
            version = b"1.1" if minor == b"1" else b"1.0"
            block = text[m.end() :]
        else:
            if _HEAD_CTL.search(text) is not None:
                raise _BadRequest
            method, target, version = _request_line(text[: text.find(b"\n")])
            block = text[text.find(b"\n") + 1 :]
        # The fast patterns take no control bytes; what they leave is read line by line.  The
        # server needs only a few headers' values, and those compared without case: read
        # them from a lower-cased copy; the block as sent stays in the head.
        low = block.lower()
        pairs = _HEADER_LINE.findall(low)
        if len(pairs) != low.count(b"\n"):
            if _HEAD_CTL.search(block) is not None:
                raise _BadRequest
            pairs = [(k.lower(), v.lower()) for k, v in _header_lines(block)]  # obs-fold, or a line Go refuses
        keep_alive = version != b"1.0"
        fields = dict(pairs)
        if len(fields) == len(pairs):
            # No name twice: look the few that matter up.
            cl = fields.get(b"content-length")
            if cl is None:
                length = None
            elif cl.isdigit() and len(cl) < 19:
                length = int(cl)
            else:
                length = _content_length(cl)
            host = 1 if b"host" in fields else 0
            te = fields.get(b"transfer-encoding")
            tes = [] if te is None else [te]
            connection = fields.get(b"connection")
            if connection is not None and _has_token(connection, b"close"):
                keep_alive = False
            expect_value = fields.get(b"expect")
            expect = expect_value is not None and _has_token(expect_value, b"100-continue")
        else:
            length = None
            host = 0
            tes = []
            expect = False
            for name, value in pairs:
                if name == b"content-length":
                    n = _content_length(value)
                    if length is not None and n != length:
                        raise _BadRequest  # Go: several Content-Lengths must agree
                    length = n
                elif name == b"host":
                    host += 1
                elif name == b"transfer-encoding":
                    tes.append(value)
                elif name == b"connection":
                    if _has_token(value, b"close"):
                        keep_alive = False
                elif name == b"expect" and not expect:
                    expect = _has_token(value, b"100-continue")
        chunked = False
        if host > 1 or (host == 0 and version != b"1.0"):
            raise _BadRequest
        if tes and version != b"1.0":
            # Go serves only chunked, and then ignores a Content-Length.
            if len(tes) != 1 or tes[0] != b"chunked":
                raise _BadRequest(501)
            chunked = True
            length = None
        head = RequestHead(method.decode("ascii"), target, block, version, length, self._peer)
        # 100-continue is asked of HTTP/1.1 only, and only sent when a body is to come (Go).
        return head, keep_alive, chunked, expect and version != b"1.0" and (chunked or bool(length))

    def _on_data(self, data: bytes | bytearray) -> None:
        self._received += len(data)
        self._waiting_continue = False
        if self._pending is None:
            room = self._limit - len(self._body)
            if len(data) <= room:
                self._body += data
                return
            self._body += data[:room]
            self._answer_early()
        elif self._received - self._kept > self._limits.max_discard_bytes:
            self._send_pending(close=True)

    def _on_end(self, body: bytes | None) -> None:
        """The request's body is all read (``body``: all of it, when not gathered in ``_body``)."""
        if self._pending is not None:
            self._send_pending(close=False)
            return
        head = self._head
        assert head is not None
        if body is None:
            body = bytes(self._body)
            self._body = bytearray()
        self._send(self._app.handle(Request(head, body, False)), close=False)

    def _answer_early(self) -> None:
        """The application has seen all it wants; skip the rest of the body, then answer."""
        head = self._head
        assert head is not None
        body = bytes(self._body)
        self._body = bytearray()
        self._kept = len(body)
        self._pending = self._app.handle(Request(head, body, True))
        if self._waiting_continue:
            # The client has not sent the body and will not: Go closes in this case.
            self._send_pending(close=True)
            return
        unread = self._received - self._kept
        if head.content_length is not None:
            unread = head.content_length - self._kept
        if unread > self._limits.max_discard_bytes:
            self._send_pending(close=True)

    def _protocol_error(self, status: int) -> None:
        if self._pending is not None:
            # Unreadable rest of a body we already answered: answer, then stop.
            self._send_pending(close=True)
        elif not self._eof:
            text = f"{status} {_reason(status)}{_RAW_DETAIL.get(status, '')}"
            # Written raw, as Go's server writes it: no Date, no length, then close.
            self._write(f"HTTP/1.1 {text}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n{text}".encode())
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
        close = close or not self._keep_alive
        second = -1
        if self._clock is not None:
            second = self._clock.wall_ns() // 1_000_000_000
        last = self._last
        if response is last[0] and second == last[1] and not close and head.method != "HEAD":
            self._write(last[2])
            return
        out, close = self._encode(response, head, second, close)
        if not close and head.method != "HEAD":
            self._last = (response, second, out)
        self._write(out)
        if close:
            self._close()

    def _encode(self, response: Response, head: RequestHead, second: int, close: bool) -> tuple[bytes, bool]:
        """The answer's bytes, and whether the connection closes after it."""
        # Go writes the handler's headers sorted by name, then its own (Date,
        # Content-Length), then the framing ones it needs.
        status = response.status
        body = response.body
        encoded = self._encoded.get(response.headers)
        if encoded is None:
            encoded = _encode_headers(response.headers)
            if len(self._encoded) >= _ENCODED_HEADER_SETS:
                self._encoded.clear()
            self._encoded[response.headers] = encoded
        block, without_close = encoded
        trailing_close = close  # a Connection: close after the framing headers
        if without_close:
            if self._keep_alive:
                trailing_close = False  # the application's own stays where it is
            else:
                block = without_close
                trailing_close = True
            close = True
        parts = [_status_line(status), block]
        if second >= 0:
            if second != self._date[0]:
                self._date = (second, b"Date: %s\r\n" % http_date(second).encode())
            parts.append(self._date[1])
        bodiless = status in (204, 304)
        send_body = not bodiless and head.method != "HEAD"
        chunked = False
        if bodiless:
            pass
        elif len(body) <= self._limits.chunk_threshold:
            parts.append(b"Content-Length: %d\r\n" % len(body))
        elif self._http10:
            # An HTTP/1.0 client cannot read chunks: the body runs to the close.
            if head.method != "HEAD":
                close = trailing_close = True
        else:
            parts.append(b"Transfer-Encoding: chunked\r\n")
            chunked = True
        if trailing_close:
            parts.append(b"Connection: close\r\n")
        parts.append(b"\r\n")
        if send_body and body:
            if chunked:
                parts += (b"%x\r\n" % len(body), body, b"\r\n0\r\n\r\n")
            else:
                parts.append(body)
        return b"".join(parts), close

    def _write(self, data: bytes) -> None:
        if data and self._conn is not None and self._phase != _CLOSED:
            self._out.append(data)
            self._out_bytes += len(data)
            if self._out_bytes >= _FLUSH_BYTES:
                self._flush()

    def _flush(self) -> None:
        out = self._out
        if not out:
            return
        self._out = []
        self._out_bytes = 0
        if self._conn is not None:
            self._conn.write(out[0] if len(out) == 1 else b"".join(out))

    def _close(self) -> None:
        if self._phase == _CLOSED:
            return
        self._flush()
        self._phase = _CLOSED
        self._pending = None
        self._buf = b""
        if self._conn is not None:
            self._conn.close()

    def _abort(self) -> None:
        self._phase = _CLOSED
        self._out = []
        if self._conn is not None:
            self._conn.abort()


def _length_template(text: bytes, parsed: _ParsedHead) -> tuple[bytes, bytes, int, _ParsedHead] | None:
    """``text`` cut before and after its Content-Length digits, when they alone decide the length.

    A client publishing messages of different sizes sends heads that differ in
    those digits only; such a head is then read by comparing the two pieces
    (``_reparse``) instead of parsing it again.  Only for a head with one
    Content-Length, no Transfer-Encoding and no Expect, whose other fields do
    not depend on the length.
    """
    head, _, chunked, _ = parsed
    if head.content_length is None or chunked:
        return None
    low = text.lower()
    at = low.find(b"\ncontent-length:")
    if at < 0 or low.find(b"\ncontent-length:", at + 1) >= 0 or b"\nexpect:" in low or b"\ntransfer-encoding:" in low:
        return None
    start = at + len(b"\ncontent-length:")
    while text[start : start + 1] in (b" ", b"\t"):
        start += 1
    end = start
    while text[end : end + 1].isdigit():
        end += 1
    if end == start or int(text[start:end]) != head.content_length:
        return None
    return text[:start], text[end:], len(text) - len(head.header_block), parsed


def _content_length(value: bytes) -> int:
    """``strconv.ParseUint(v, 10, 63)``, as Go reads Content-Length."""
    if not value or value.translate(None, b"0123456789") or len(value) > 19 or int(value) >= 1 << 63:
        raise _BadRequest
    return int(value)


def _has_token(value: bytes, token: bytes) -> bool:
    """Whether the comma-separated, lower-cased ``value`` lists ``token``."""
    if value == token:
        return True
    return token in [t.strip(b" \t") for t in value.split(b",")]


def _request_line(line: bytes) -> tuple[bytes, bytes, bytes]:
    """``METHOD SP target SP HTTP/x.y`` as Go splits and checks it: (method, target, version)."""
    if line[-1:] == b"\r":
        line = line[:-1]
    method, _, rest = line.partition(b" ")
    target, sp, proto = rest.partition(b" ")
    if not sp or not method or method.translate(None, _TOKEN) or not target or b"\r" in line or b"\t" in target:
        raise _BadRequest
    if proto == b"HTTP/1.1":
        return method, target, b"1.1"
    if proto == b"HTTP/1.0":
        return method, target, b"1.0"
    if len(proto) == 8 and proto[:5] == b"HTTP/" and proto[6:7] == b"." and proto[5:6].isdigit() and proto[7:8].isdigit():
        if proto[5:6] != b"1":
            raise _BadRequest(505)
        return method, target, proto[5:]
    raise _BadRequest


def _header_lines(block: bytes) -> list[tuple[bytes, bytes]]:
    """Header lines one by one, as textproto reads them: (name, trimmed value) pairs."""
    headers: list[tuple[bytes, bytes]] = []
    for raw in block.split(b"\n")[:-1]:
        if raw[-1:] == b"\r":
            raw = raw[:-1]
        if b"\r" in raw:
            raise _BadRequest
        if raw[:1] in (b" ", b"\t"):
            # obs-fold: a continuation of the previous value (Go joins it with a space).
            if not headers:
                raise _BadRequest
            name, value = headers[-1]
            headers[-1] = (name, (value + b" " + raw.strip(b" \t")).strip(b" \t"))
            continue
        name, colon, value = raw.partition(b":")
        if not colon or not name or name.translate(None, _TOKEN):
            raise _BadRequest
        headers.append((name, value.strip(b" \t")))
    return headers


def _encode_headers(headers: tuple[tuple[str, str], ...]) -> tuple[bytes, bytes]:
    """An application's headers as Go writes them: as given, and without a ``Connection: close``.

    The second is empty when the headers do not say ``Connection: close``.  An
    application's ``Connection: close`` keeps its sorted place, unless the
    request itself ended keep-alive: then it goes last, with the framing.
    """
    given = sorted((canonical_header_key(k), v) for k, v in headers)
    lines: list[bytes] = []
    others: list[bytes] = []
    close = False
    for k, v in given:
        if k in ("Content-Length", "Date", "Transfer-Encoding"):
            continue  # the server's own
        line = b"%s: %s\r\n" % (k.encode("latin-1"), v.encode("latin-1"))
        lines.append(line)
        if k == "Connection" and "close" in [t.strip().lower() for t in v.split(",")]:
            close = True
        else:
            others.append(line)
    return b"".join(lines), b"".join(others) if close else b""


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        line = b"HTTP/1.1 %d %s\r\n" % (status, _reason(status).encode())
    return line


def _reason(status: int) -> str:
    reason = _REASONS.get(status)
    if reason is not None:
        return reason
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


_STATUS_LINES = {int(s): b"HTTP/1.1 %d %s\r\n" % (s, _reason(s).encode()) for s in HTTPStatus}


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
