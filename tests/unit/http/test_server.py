"""The generic sans-IO HTTP server (broker/wire/http.py), driven with a recording app."""

from __future__ import annotations

import datetime

import pytest

from broker.wire.http import (
    HTTPLimits,
    HTTPServerConnection,
    Request,
    RequestHead,
    Response,
    canonical_header_key,
    http_date,
    utc_fields,
)
from tests.fakes import FakeClock, FakeConnection
from tests.unit.http.helpers import HTTPClient, chunked, encode_request

BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request"


class RecordingApp:
    """Answers ``<METHOD> <target> <body length>[ truncated]`` and remembers every request."""

    def __init__(self, limit: int | None = None, body: bytes | None = None) -> None:
        self.limit = limit
        self.body = body
        self.heads: list[RequestHead] = []
        self.requests: list[Request] = []

    def body_limit(self, head: RequestHead) -> int | None:
        self.heads.append(head)
        return self.limit

    def handle(self, request: Request) -> Response:
        self.requests.append(request)
        head = request.head
        text = b"%s %s %d%s" % (head.method.encode(), head.target, len(request.body), b" truncated" if request.body_truncated else b"")
        return Response(200, (("content-type", "text/plain"),), text if self.body is None else self.body)


def reading(client: HTTPClient) -> bool:
    return client.conn.reading


def server(app: RecordingApp, **limits: int) -> HTTPClient:
    return HTTPClient(HTTPServerConnection(app, HTTPLimits(**limits), FakeClock(wall_ns=1_795_835_051_000_000_000)))


def test_one_request_gets_go_shaped_answer() -> None:
    app = RecordingApp()
    client = server(app)
    client.send(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
    assert bytes(client.conn.written) == (
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: text/plain\r\n"
        b"Date: Sat, 28 Nov 2026 03:04:11 GMT\r\n"
        b"Content-Length: 11\r\n"
        b"\r\n"
        b"GET /ping 0"
    )
    assert not client.closed
    [head] = app.heads
    assert (head.method, head.target, head.http_version, head.content_length, head.peer) == ("GET", b"/ping", b"1.1", None, ("127.0.0.1", 50000))
    assert head.header(b"host") == b"x"


def test_no_clock_no_date() -> None:
    client = HTTPClient(HTTPServerConnection(RecordingApp()))
    answer = client.request("GET", "/")
    assert answer.header("Date") is None
    assert answer.body == b"GET / 0"


PIPELINE = (
    encode_request("GET", "/a")
    + encode_request("POST", "/b", b"hello")
    + b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b"ab", b"cde")
    + encode_request("GET", "/d")
)
PIPELINE_BODIES = [b"GET /a 0", b"POST /b 5", b"POST /c 5", b"GET /d 0"]


def test_pipelined_requests_are_answered_in_order_on_one_connection() -> None:
    app = RecordingApp()
    client = server(app)
    client.send(PIPELINE)
    assert [a.body for a in client.answers()] == PIPELINE_BODIES
    assert [r.body for r in app.requests] == [b"", b"hello", b"abcde", b""]
    assert not client.closed


@pytest.mark.parametrize("cut", range(1, len(PIPELINE)))
def test_any_split_of_the_bytes_gives_the_same_answers(cut: int) -> None:
    app = RecordingApp()
    client = server(app)
    client.send(PIPELINE[:cut])
    client.send(PIPELINE[cut:])
    assert [a.body for a in client.answers()] == PIPELINE_BODIES


def test_byte_by_byte() -> None:
    client = server(RecordingApp())
    for i in range(len(PIPELINE)):
        client.send(PIPELINE[i : i + 1])
    assert [a.body for a in client.answers()] == PIPELINE_BODIES


def test_keep_alive_across_sends() -> None:
    client = server(RecordingApp())
    for i in range(3):
        assert client.request("GET", f"/{i}").body == f"GET /{i} 0".encode()
    assert not client.closed


def test_connection_close_is_honoured() -> None:
    client = server(RecordingApp())
    answer = client.request("GET", "/", headers={"Connection": "close"})
    assert answer.header("Connection") == "close"
    assert client.closed


def test_http_1_0_is_answered_then_closed() -> None:
    app = RecordingApp()
    client = server(app)
    client.send(b"GET /old HTTP/1.0\r\n\r\n")
    [answer] = client.answers()
    assert answer.body == b"GET /old 0"
    assert app.heads[0].http_version == b"1.0"
    assert client.closed


@pytest.mark.parametrize(
    "garbage",
    [
        b"NOT HTTP AT ALL\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",  # no Host
        b"GET / HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # a TLS hello
    ],
)
def test_malformed_request_gets_go_400_and_close(garbage: bytes) -> None:
    app = RecordingApp()
    client = server(app)
    client.send(garbage)
    assert bytes(client.conn.written) == BAD_REQUEST
    assert client.closed
    assert app.requests == []


def test_malformed_request_after_a_good_one() -> None:
    client = server(RecordingApp())
    client.send(encode_request("GET", "/ok") + b"garbage\r\n\r\n")
    data = bytes(client.conn.written)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert data.endswith(BAD_REQUEST)
    assert client.closed


def test_oversize_header_block_is_431() -> None:
    client = server(RecordingApp(), max_header_bytes=1024)
    client.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2000)
    assert bytes(client.conn.written) == (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Connection: close\r\n\r\n431 Request Header Fields Too Large"
    )
    assert client.closed


def test_unsupported_transfer_encoding_is_501() -> None:
    client = server(RecordingApp())
    client.send(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n")
    assert bytes(client.conn.written).startswith(b"HTTP/1.1 501 Not Implemented: unsupported transfer encoding\r\n")
    assert client.closed


# -- bodies over the application's limit ---------------------------------------------------


def test_announced_oversize_body_is_not_read_before_the_app_answers() -> None:
    app = RecordingApp(limit=10)
    client = server(app)
    client.send(encode_request("POST", "/x", headers={"Content-Length": "100"}))
    # The app has answered; the answer waits until the 100 bytes are skipped.
    assert [(r.body, r.body_truncated) for r in app.requests] == [(b"", True)]
    assert client.answers() == []
    client.send(b"z" * 60)
    assert client.answers() == []
    client.send(b"z" * 40 + encode_request("GET", "/next"))
    assert [a.body for a in client.answers()] == [b"POST /x 0 truncated", b"GET /next 0"]
    assert not client.closed


def test_body_is_cut_at_the_limit() -> None:
    app = RecordingApp(limit=10)
    client = server(app)
    client.send(b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b"0123456", b"789abcdef") + encode_request("GET", "/n"))
    assert [(r.body, r.body_truncated) for r in app.requests] == [(b"0123456789", True), (b"", False)]
    assert [a.body for a in client.answers()] == [b"POST /x 10 truncated", b"GET /n 0"]


def test_body_exactly_at_the_limit_is_whole() -> None:
    app = RecordingApp(limit=5)
    client = server(app)
    client.request("POST", "/x", b"12345")
    assert [(r.body, r.body_truncated) for r in app.requests] == [(b"12345", False)]


def test_huge_announced_body_is_answered_at_once_and_the_connection_closed() -> None:
    app = RecordingApp(limit=10)
    client = server(app, max_discard_bytes=1000)
    client.send(encode_request("POST", "/x", headers={"Content-Length": str(10 << 30)}))
    [answer] = client.answers()
    assert answer.body == b"POST /x 0 truncated"
    assert answer.header("Connection") == "close"
    assert client.closed


def test_huge_chunked_body_is_never_buffered() -> None:
    app = RecordingApp(limit=100)
    client = server(app, max_discard_bytes=256 << 10)
    client.send(b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (64 << 10, b"q" * (64 << 10))
    sent = 0
    while not client.closed:
        client.send(chunk)
        sent += 64 << 10
        assert sent <= 512 << 10, "the server kept reading a body it does not want"
    assert [len(r.body) for r in app.requests] == [100]
    [answer] = client.answers()
    assert answer.header("Connection") == "close"


def test_expect_100_continue_is_answered_when_the_body_is_wanted() -> None:
    app = RecordingApp(limit=100)
    client = server(app)
    client.send(b"POST /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    assert bytes(client.conn.written) == b"HTTP/1.1 100 Continue\r\n\r\n"
    client.conn.written.clear()
    client.send(b"hello")
    assert [a.body for a in client.answers()] == [b"POST /x 5"]


def test_expect_100_continue_refused_body_closes() -> None:
    app = RecordingApp(limit=1)
    client = server(app)
    client.send(b"POST /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    [answer] = client.answers()
    assert answer.status == 200 and answer.header("Connection") == "close"
    assert b"100 Continue" not in bytes(client.conn.written)
    assert client.closed


# -- answers -----------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "chunked_answer"), [(0, False), (2048, False), (2049, True), (100_000, True)])
def test_long_answers_are_chunked_as_go_does(size: int, chunked_answer: bool) -> None:
    client = server(RecordingApp(body=b"x" * size))
    answer = client.request("GET", "/")
    assert answer.body == b"x" * size
    assert (answer.header("Transfer-Encoding") == "chunked") is chunked_answer
    assert (answer.header("Content-Length") is None) is chunked_answer


def test_head_answer_has_length_but_no_body() -> None:
    client = server(RecordingApp(body=b"abc"))
    client.send(encode_request("HEAD", "/") + encode_request("GET", "/"))
    head, get = client.answers([True, False])
    assert head.header("Content-Length") == "3" and head.body == b""
    assert get.body == b"abc"


@pytest.mark.parametrize(
    ("given", "canonical"),
    [("x-nsq-content-type", "X-Nsq-Content-Type"), ("CONTENT-TYPE", "Content-Type"), ("allow", "Allow"), ("a b", "a b")],
)
def test_header_names_go_out_in_go_canonical_case(given: str, canonical: str) -> None:
    assert canonical_header_key(given) == canonical


# -- flow control and end of input -------------------------------------------------------


def test_paused_writing_stops_answering_until_resumed() -> None:
    app = RecordingApp()
    client = server(app)
    handler = client.conn.handler
    handler.pause_writing()
    assert reading(client) is False
    client.send(encode_request("GET", "/1") + encode_request("GET", "/2"))
    assert client.answers() == []
    handler.resume_writing()
    assert reading(client) is True
    assert [a.body for a in client.answers()] == [b"GET /1 0", b"GET /2 0"]


def test_a_peer_that_sends_without_reading_is_cut_off() -> None:
    client = server(RecordingApp(), max_pending_bytes=10_000)
    client.conn.handler.pause_writing()
    request = encode_request("GET", "/")
    while not client.closed:
        client.send(request * 100)
    assert client.conn.aborted


def test_eof_after_whole_requests_answers_them_then_closes() -> None:
    client = server(RecordingApp())
    client.send(encode_request("GET", "/1") + encode_request("GET", "/2"))
    client.conn.written.clear()
    client.send(encode_request("GET", "/3"))
    client.conn.handler.eof_received()
    assert [a.body for a in client.answers()] == [b"GET /3 0"]
    assert client.closed


def test_eof_inside_a_request_closes_without_answer() -> None:
    app = RecordingApp()
    client = server(app)
    client.send(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    client.conn.handler.eof_received()
    assert bytes(client.conn.written) == b""
    assert client.closed
    assert app.requests == []


def test_data_after_close_is_ignored() -> None:
    app = RecordingApp()
    client = server(app)
    client.send(b"junk\r\n\r\n")
    assert client.closed
    client.conn.handler.data_received(encode_request("GET", "/"))
    assert app.requests == []


# -- dates -------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [0, 951782400, 1795835051, 4102444800, 253402300799, 68256000, -1, -86400 * 365])
def test_utc_fields_match_the_calendar(seconds: int) -> None:
    d = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(seconds=seconds)
    assert utc_fields(seconds) == (d.year, d.month, d.day, d.hour, d.minute, d.second, d.weekday())


def test_http_date() -> None:
    assert http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT"
    assert http_date(1136214245) == "Mon, 02 Jan 2006 15:04:05 GMT"


# -- parsing as Go's server parses ---------------------------------------------------------


def raw_answer(status: int, detail: str = "") -> bytes:
    reason = {400: "Bad Request", 431: "Request Header Fields Too Large", 501: "Not Implemented", 505: "HTTP Version Not Supported"}[status]
    text = f"{status} {reason}{detail}"
    return f"HTTP/1.1 {text}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n{text}".encode()


@pytest.mark.parametrize("method", ["FOO", "get", "M-SEARCH", "X"])
def test_any_token_is_a_method_for_the_app_to_route(method: str) -> None:
    app = RecordingApp()
    client = server(app)
    assert client.request(method, "/x").body == f"{method} /x 0".encode()
    assert not client.closed


@pytest.mark.parametrize(
    ("garbage", "status", "detail"),
    [
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, ": unsupported protocol version"),
        (b"GET / HTTP/1\r\nHost: x\r\n\r\n", 400, ""),
        (b"GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n", 400, ""),
        (b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400, ""),  # empty target
        (b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, ""),  # not a token
        (b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400, ""),
        (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400, ""),
        (b"GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400, ""),  # a continuation with nothing to continue
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x7fb\r\n\r\n", 400, ""),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", 400, ""),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400, ""),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, ""),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", 400, ""),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, ": unsupported transfer encoding"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 501, ": unsupported transfer encoding"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, ""),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXX", 400, ""),
    ],
)
def test_what_go_refuses_gets_its_raw_answer(garbage: bytes, status: int, detail: str) -> None:
    app = RecordingApp()
    client = server(app)
    client.send(garbage)
    assert bytes(client.conn.written) == raw_answer(status, detail)
    assert client.closed
    assert app.requests == []


def test_http_1_x_past_1_1_is_served() -> None:
    app = RecordingApp()
    client = server(app)
    client.send(b"GET /v HTTP/1.2\r\nHost: x\r\n\r\n")
    [answer] = client.answers()
    assert answer.body == b"GET /v 0" and app.heads[0].http_version == b"1.2"
    assert not client.closed


def test_bare_lf_line_ends_are_read() -> None:
    app = RecordingApp()
    client = server(app)
    client.send(b"POST /lf HTTP/1.1\nHost: x\nContent-Length: 3\n\nabc" + b"GET /mixed HTTP/1.1\r\nHost: x\n\r\n")
    assert [a.body for a in client.answers()] == [b"POST /lf 3", b"GET /mixed 0"]


def test_obs_fold_continues_the_value_before_it() -> None:
    app = RecordingApp()
    client = server(app)
    client.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: one\r\n  two\r\n\tthree\r\n\r\n")
    [answer] = client.answers()
    assert answer.status == 200
    assert app.heads[0].header(b"x-long") == b"one two three"


def test_headers_keep_their_values_and_lose_their_names_case() -> None:
    app = RecordingApp()
    client = server(app)
    client.send(b"GET / HTTP/1.1\r\nHost: Example.COM\r\nX-Thing:  Mixed Case \t\r\n\r\n")
    client.answers()
    assert app.heads[0].headers == ((b"host", b"Example.COM"), (b"x-thing", b"Mixed Case"))


def test_repeated_content_length_with_one_value_is_one() -> None:
    app = RecordingApp()
    client = server(app)
    client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab")
    assert [a.body for a in client.answers()] == [b"POST / 2"]


def test_transfer_encoding_wins_over_content_length_and_is_ignored_on_http_1_0() -> None:
    app = RecordingApp()
    client = server(app)
    client.send(b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\nContent-Length: 100\r\n\r\n" + chunked(b"abc"))
    assert [a.body for a in client.answers()] == [b"POST /a 3"]
    assert app.heads[0].content_length is None
    client = server(app)
    client.send(b"POST /b HTTP/1.0\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\nab")
    assert [a.body for a in client.answers()] == [b"POST /b 2"]


def test_chunk_extensions_and_trailers_are_skipped() -> None:
    app = RecordingApp()
    client = server(app)
    client.send(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;name=v\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n" + encode_request("GET", "/n"))
    assert [a.body for a in client.answers()] == [b"POST / 3", b"GET /n 0"]
    assert app.requests[0].body == b"abc"


def test_a_complete_head_over_the_limit_is_431() -> None:
    client = server(RecordingApp(), max_header_bytes=1024)
    client.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n")
    assert bytes(client.conn.written) == raw_answer(431)


def test_an_endless_chunk_size_line_is_refused() -> None:
    client = server(RecordingApp())
    client.send(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + b"0" * 5000)
    assert bytes(client.conn.written) == raw_answer(400)


def test_no_100_continue_for_an_empty_body() -> None:
    client = server(RecordingApp(limit=100))
    client.send(b"POST /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n")
    assert not bytes(client.conn.written).startswith(b"HTTP/1.1 100")
    assert [a.body for a in client.answers()] == [b"POST /x 0"]


def test_a_request_cut_short_by_eof_is_not_answered() -> None:
    client = server(RecordingApp())
    client.send(encode_request("GET", "/1") + b"GET /2 HTT")
    client.conn.handler.eof_received()
    assert [a.body for a in client.answers()] == [b"GET /1 0"]
    assert client.closed


def test_a_repeated_head_and_one_that_differs_only_in_length_are_both_read_right() -> None:
    app = RecordingApp()
    client = server(app)
    for body in (b"abc", b"abc", b"abcdef", b"abc"):
        assert client.request("POST", "/p", body).body == b"POST /p %d" % len(body)
    assert [r.body for r in app.requests] == [b"abc", b"abc", b"abcdef", b"abc"]


class CountingConnection(FakeConnection):
    def __init__(self, handler: HTTPServerConnection) -> None:
        self.writes = 0
        super().__init__(handler)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes += 1
        super().write(data)


def test_the_answers_to_one_read_go_out_in_one_write() -> None:
    conn = CountingConnection(HTTPServerConnection(RecordingApp()))
    conn.send(PIPELINE)
    assert conn.writes == 1
    assert bytes(conn.written).count(b"HTTP/1.1 200 OK") == 4


def test_a_head_read_again_from_the_last_one_has_its_own_length_and_block() -> None:
    app = RecordingApp()
    client = server(app)
    client.send(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nX-A: 1\r\n\r\nabc")
    client.send(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\nX-A: 1\r\n\r\nabcdefghijkl")
    client.send(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nX-A: 1\r\n\r\n")
    client.send(b"POST /q HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nX-A: 1\r\n\r\nab")
    assert [a.body for a in client.answers()] == [b"POST /p 3", b"POST /p 12", b"POST /p 0", b"POST /q 2"]
    assert [h.content_length for h in app.heads] == [3, 12, 0, 2]
    assert app.heads[1].header(b"content-length") == b"12"
    assert app.heads[1].headers == ((b"host", b"x"), (b"content-length", b"12"), (b"x-a", b"1"))


@pytest.mark.parametrize("length", [b"1x", b"+1", b"", b"99999999999999999999"])
def test_a_bad_length_in_an_otherwise_repeated_head_is_still_refused(length: bytes) -> None:
    client = server(RecordingApp())
    client.send(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
    client.send(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\n")
    assert bytes(client.conn.written).endswith(raw_answer(400))
    assert client.closed


def test_100_continue_follows_each_heads_own_length() -> None:
    client = server(RecordingApp(limit=100))
    client.send(b"POST /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n")
    client.send(b"POST /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    assert bytes(client.conn.written).endswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    client.send(b"hello")
    assert [a.status for a in client.answers()] == [200, 100, 200]
