"""nsqlookupd's HTTP port: raw HTTP/1.1 bytes in, the HTTP API's answers out."""

from __future__ import annotations

import json

import h11

from broker.lookupd.lookupd import NSQLookupd
from broker.ports import ConnectionHandler
from tests.unit.lookupd.fakes import FakeConnection, Peer, make_lookupd


def open_http(lookupd: NSQLookupd, port: int = 50001) -> tuple[ConnectionHandler, FakeConnection]:
    conn = FakeConnection(("10.0.0.9", port))
    handler = lookupd.http_handler()
    handler.connection_made(conn)
    return handler, conn


def responses(data: bytes) -> list[tuple[int, dict[bytes, bytes], bytes]]:
    """Parse what the server wrote, as a client would."""
    client = h11.Connection(h11.CLIENT)
    out: list[tuple[int, dict[bytes, bytes], bytes]] = []
    client.receive_data(data)
    while True:
        client.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
        client.send(h11.EndOfMessage())
        head = client.next_event()
        if head is h11.NEED_DATA:
            return out
        assert isinstance(head, h11.Response)
        body = b""
        while isinstance(event := client.next_event(), h11.Data):
            body += event.data
        assert isinstance(event, h11.EndOfMessage)
        out.append((head.status_code, dict(head.headers), body))
        if client.our_state is h11.MUST_CLOSE or client.their_state is h11.MUST_CLOSE:
            return out
        client.start_next_cycle()


def test_lookup_is_answered_with_the_registered_producers() -> None:
    lookupd, _, _ = make_lookupd()
    peer = Peer(lookupd).connect_v1()
    peer.identify()
    assert peer.send(b"REGISTER t c\n") == [b"OK"]

    handler, conn = open_http(lookupd)
    handler.data_received(b"GET /lookup?topic=t HTTP/1.1\r\nHost: x\r\n\r\n")
    [(status, headers, body)] = responses(bytes(conn.sent))
    assert status == 200
    assert headers[b"content-type"] == b"application/json; charset=utf-8"
    assert headers[b"x-nsq-content-type"] == b"nsq; version=1.0"
    assert headers[b"date"].endswith(b" GMT")
    doc = json.loads(body)
    assert doc["channels"] == ["c"]
    assert [(p["broadcast_address"], p["tcp_port"]) for p in doc["producers"]] == [("nsqd-1", 4150)]
    assert not conn.closed


def test_a_body_is_skipped_and_the_connection_kept() -> None:
    lookupd, _, _ = make_lookupd()
    handler, conn = open_http(lookupd)
    handler.data_received(
        b"POST /topic/create?topic=t HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        b"GET /topics HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    [(s1, _, b1), (s2, _, b2)] = responses(bytes(conn.sent))
    assert (s1, b1) == (200, b"")
    assert (s2, json.loads(b2)) == (200, {"topics": ["t"]})
    assert not conn.closed


def test_errors_and_routing_come_from_the_api() -> None:
    lookupd, _, _ = make_lookupd()
    handler, conn = open_http(lookupd)
    handler.data_received(b"GET /lookup?topic=nope HTTP/1.1\r\nHost: x\r\n\r\nPOST /ping HTTP/1.1\r\nHost: x\r\n\r\n")
    [(s1, _, b1), (s2, h2, b2)] = responses(bytes(conn.sent))
    assert (s1, json.loads(b1)) == (404, {"message": "TOPIC_NOT_FOUND"})
    assert (s2, json.loads(b2), h2[b"allow"]) == (405, {"message": "METHOD_NOT_ALLOWED"}, b"GET, OPTIONS")


def test_close_closes_open_http_connections_too() -> None:
    lookupd, _, _ = make_lookupd()
    _, idle_conn = open_http(lookupd)
    peer = Peer(lookupd).connect_v1()

    lookupd.close()
    assert idle_conn.closed
    assert peer.conn.closed
