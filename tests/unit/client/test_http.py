"""The sans-IO HTTP client: request bytes out, one answer or one error in."""

from __future__ import annotations

import pytest

from broker.client.http import HTTPError, HTTPRequest, HTTPResponse, fetch
from broker.client.lookupd import lookup_url, parse_lookup
from tests.fakes import FakeClock, FakeConnection
from tests.unit.client.fakes import FakeNetwork


def start(request: HTTPRequest, timeout: float = 5.0, max_body: int = 1 << 20) -> tuple[FakeNetwork, FakeClock, list[HTTPResponse | BaseException]]:
    net, clock = FakeNetwork(), FakeClock()
    results: list[HTTPResponse | BaseException] = []
    fetch(net, clock, request, results.append, timeout=timeout, max_body=max_body, user_agent="ua/1")
    return net, clock, results


def test_a_get_and_its_answer() -> None:
    net, _, results = start(HTTPRequest.from_url("127.0.0.1:4151/stats?format=json", headers=[("Accept", "x")]))
    attempt = net.take()
    assert (attempt.host, attempt.port) == ("127.0.0.1", 4151)
    conn = FakeConnection(attempt.handler)
    head = bytes(conn.written).decode()
    assert head.startswith("GET /stats?format=json HTTP/1.1\r\n")
    for line in ("host: 127.0.0.1:4151", "user-agent: ua/1", "connection: close", "accept: x"):
        assert line in head.lower()
    conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1")
    assert results == []
    conn.send(b"}")
    [resp] = results
    assert isinstance(resp, HTTPResponse)
    assert (resp.status, resp.body, resp.header("Content-Type")) == (200, b'{"a":1}', "application/json")
    assert resp.json() == {"a": 1}
    assert conn.closed


def test_a_post_carries_its_body_and_a_chunked_answer_is_joined() -> None:
    net, _, results = start(HTTPRequest.from_url("http://h:8080/p", "POST", [("Content-Type", "text/plain")], b"data"))
    conn = FakeConnection(net.take().handler)
    sent = bytes(conn.written)
    assert sent.startswith(b"POST /p HTTP/1.1\r\n") and sent.endswith(b"\r\n\r\ndata")
    assert b"content-length: 4" in sent.lower()
    conn.send(b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    [resp] = results
    assert isinstance(resp, HTTPResponse) and (resp.status, resp.body) == (201, b"abcde")


def test_an_answer_ended_by_close_is_complete() -> None:
    net, _, results = start(HTTPRequest.from_url("h:1/"))
    conn = FakeConnection(net.take().handler)
    conn.send(b"HTTP/1.1 200 OK\r\n\r\nall of it")
    conn.handler.eof_received()
    [resp] = results
    assert isinstance(resp, HTTPResponse) and resp.body == b"all of it"


def test_failures_are_reported_once() -> None:
    net, clock, results = start(HTTPRequest.from_url("h:1/"), timeout=2.0)
    net.refuse()
    clock.advance(5)
    assert [type(r) for r in results] == [ConnectionRefusedError]


def test_no_answer_in_time_is_a_timeout() -> None:
    net, clock, results = start(HTTPRequest.from_url("h:1/"), timeout=2.0)
    conn = FakeConnection(net.take().handler)
    clock.advance(1.9)
    assert results == []
    clock.advance(0.2)
    assert [type(r) for r in results] == [TimeoutError] and conn.aborted


def test_a_cut_answer_and_a_garbled_one_are_errors() -> None:
    net, _, results = start(HTTPRequest.from_url("h:1/"))
    conn = FakeConnection(net.take().handler)
    conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    conn.disconnect()
    net2, _, results2 = start(HTTPRequest.from_url("h:1/"))
    conn2 = FakeConnection(net2.take().handler)
    conn2.send(b"NOT HTTP AT ALL\r\n\r\n")
    assert [type(r) for r in results] == [ConnectionResetError]
    assert [type(r) for r in results2] == [HTTPError]


def test_an_answer_over_the_bound_is_refused() -> None:
    net, _, results = start(HTTPRequest.from_url("h:1/"), max_body=10)
    conn = FakeConnection(net.take().handler)
    conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 100)
    [err] = results
    assert isinstance(err, HTTPError) and "over 10 bytes" in str(err)


@pytest.mark.parametrize("url", ["https://h/", "http:///nohost", "h:notaport/"])
def test_urls_it_cannot_fetch_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        HTTPRequest.from_url(url)


def test_lookup_urls_and_answers() -> None:
    assert lookup_url("127.0.0.1:4161", "t") == "http://127.0.0.1:4161/lookup?topic=t"
    assert lookup_url("http://h:4161/", "a.b") == "http://h:4161/lookup?topic=a.b"
    assert lookup_url("http://h:4161/custom", "t") == "http://h:4161/custom?topic=t"
    answer = {"channels": [], "producers": [{"broadcast_address": "::1", "tcp_port": 4150}, {"broadcast_address": "a", "tcp_port": 1}]}
    assert parse_lookup(answer) == ["[::1]:4150", "a:1"]
    assert parse_lookup({"status_code": 200, "status_txt": "OK", "data": answer}) == ["[::1]:4150", "a:1"]
    assert parse_lookup({"channels": [], "producers": None}) == []
    bad_answers: list[object] = [[], {"producers": {}}, {"producers": [{"broadcast_address": "a"}]}]
    for bad in bad_answers:
        with pytest.raises(ValueError):
            parse_lookup(bad)
