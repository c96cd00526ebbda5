"""AUTH in the core: the auth server's answer, nsqd's checks, and a client waiting on a query.

The auth server is played by the test over a fake network (``FakeNetwork``):
each query is an HTTP request the test reads and answers, so the order of
events (a command waiting, another client going on, a TTL running out on the
fake clock) is exact.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from broker.nsqd.auth import AuthError, auth_url, parse_state
from broker.wire import v2
from tests.fakes import FakeConnection
from tests.unit.client.fakes import FakeNetwork
from tests.unit.nsqd.harness import Client, Node

GOOD: dict[str, Any] = {
    "ttl": 60,
    "identity": "alice",
    "identity_url": "https://auth.example/alice",
    "authorizations": [
        {"topic": "^orders$", "channels": [".*"], "permissions": ["publish", "subscribe"]},
        {"topic": "^audit", "channels": ["^archive$"], "permissions": ["subscribe"]},
    ],
}


def answer(conn: FakeConnection, status: int, body: bytes) -> None:
    conn.send(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % (status, len(body)) + body)


def request_of(conn: FakeConnection) -> tuple[str, str, dict[str, list[str]]]:
    head = bytes(conn.written).split(b"\r\n\r\n", 1)[0].decode()
    method, target, _ = head.split("\r\n", 1)[0].split(" ")
    parts = urlsplit(target)
    return method, parts.path, parse_qs(parts.query, keep_blank_values=True)


def node_with_auth(**opts: Any) -> tuple[Node, FakeNetwork]:
    net = FakeNetwork()
    opts.setdefault("auth_http_addresses", ["auth-a:4181"])
    return Node(network=net, **opts), net


def serve(net: FakeNetwork, status: int = 200, doc: object = GOOD) -> tuple[str, str, dict[str, list[str]]]:
    attempt = net.take()
    conn = FakeConnection(attempt.handler, (attempt.host, attempt.port))
    req = request_of(conn)
    answer(conn, status, json.dumps(doc).encode())
    return req


def auth_cmd(secret: bytes) -> bytes:
    return b"AUTH\n" + len(secret).to_bytes(4, "big") + secret


# -- the answer -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"ttl": 0, "authorizations": []}, "invalid TTL 0 (must be >0)"),
        ({"ttl": 5, "authorizations": [{"topic": "t", "channels": [".*"], "permissions": ["admin"]}]}, "unknown permission admin"),
        ({"ttl": 5, "authorizations": [{"topic": "(", "channels": [], "permissions": []}]}, 'unable to compile topic "("'),
        ({"ttl": 5, "authorizations": [{"topic": "t", "channels": ["["], "permissions": []}]}, 'unable to compile channel "["'),
        ({"ttl": "5"}, "ttl"),
        ([1, 2], "not an object"),
    ],
)
def test_an_answer_nsqd_would_refuse_is_an_error(doc: object, message: str) -> None:
    with pytest.raises(AuthError, match=re.escape(message)):
        parse_state(json.dumps(doc).encode(), 0.0)


def test_permissions_follow_nsqds_rules() -> None:
    state = parse_state(json.dumps(GOOD).encode(), 100.0)
    assert state.expires == 160.0 and not state.is_expired(159.9) and state.is_expired(160.0)
    assert state.is_allowed("orders", "")  # publish: "" must match a channel pattern, and ".*" does
    assert state.is_allowed("orders", "billing")
    assert not state.is_allowed("orders2", "")  # anchored topic pattern
    assert state.is_allowed("audit-log", "archive") and not state.is_allowed("audit-log", "other")
    assert not state.is_allowed("audit-log", "")  # subscribe only
    only_publish = parse_state(b'{"ttl": 1, "authorizations": [{"topic": ".*", "channels": [], "permissions": ["publish"]}]}', 0)
    assert not only_publish.is_allowed("t", "")  # no channel pattern at all: nothing matches, as in nsqd


def test_the_query_is_nsqds() -> None:
    assert auth_url("a:4181", "10.0.0.1", False, "s e/cret", "") == (
        "http://a:4181/auth?common_name=&remote_ip=10.0.0.1&secret=s+e%2Fcret&tls=false"
    )
    assert auth_url("https://auth.example/check", "", True, "x", "cn").startswith("https://auth.example/check?common_name=cn&")


# -- a client --------------------------------------------------------------------------------


def test_identify_says_auth_is_required_and_a_publish_before_auth_is_fatal() -> None:
    node, _ = node_with_auth()
    c = node.client()
    assert json.loads(c.identify(feature_negotiation=True)[0][1])["auth_required"] is True
    assert c.send(v2.encode_pub("orders", b"x")) == [(v2.FRAME_ERROR, b"E_AUTH_FIRST AUTH required before PUB")]
    assert c.closed


def test_auth_asks_the_server_and_commands_behind_it_wait_for_the_answer() -> None:
    node, net = node_with_auth()
    c = node.client()
    # AUTH and a PUB in one write: the PUB must not run before the answer
    assert c.send(auth_cmd(b"s3cret") + v2.encode_pub("orders", b"first")) == []
    assert node.nsqd.topics.get("orders") is None
    method, path, query = serve(net)
    assert (method, path) == ("GET", "/auth")
    assert query == {"common_name": [""], "remote_ip": ["127.0.0.1"], "secret": ["s3cret"], "tls": ["false"]}
    (kind, data), published = c.frames()
    assert published == (v2.FRAME_RESPONSE, v2.OK)
    assert (kind, json.loads(data)) == (
        v2.FRAME_RESPONSE,
        {"identity": "alice", "identity_url": "https://auth.example/alice", "permission_count": 2},
    )
    assert node.nsqd.topics["orders"].message_count == 1
    assert c.send(b"SUB audit-log other\n") == [
        (v2.FRAME_ERROR, b'E_UNAUTHORIZED AUTH failed for SUB on "audit-log" "other"')
    ]
    assert c.closed


def test_an_expired_authorization_is_asked_again_before_the_next_publish() -> None:
    node, net = node_with_auth()
    c = node.client()
    c.send(auth_cmd(b"s3cret"))
    serve(net, doc=GOOD | {"ttl": 5})
    c.frames()
    assert c.send(v2.encode_pub("orders", b"a")) == [(v2.FRAME_RESPONSE, v2.OK)]
    node.clock.advance(5.0)
    assert c.send(v2.encode_pub("orders", b"b")) == []  # waiting on the second query
    serve(net, doc=GOOD | {"authorizations": GOOD["authorizations"][1:]})  # orders no longer allowed
    assert c.frames() == [(v2.FRAME_ERROR, b'E_UNAUTHORIZED AUTH failed for PUB on "orders" ""')]
    assert node.nsqd.topics["orders"].message_count == 1


def test_every_server_failing_is_auth_failed_and_the_reasons_go_to_the_log_only() -> None:
    node, net = node_with_auth(auth_http_addresses=["auth-a:4181", "auth-b:4181"])
    c = node.client()
    c.send(auth_cmd(b"wrong"))
    first = net.refuse()
    status_doc = serve(net, status=403, doc={"message": "denied"})
    assert status_doc[1] == "/auth"
    assert c.frames() == [(v2.FRAME_ERROR, b"E_AUTH_FAILED AUTH failed")]
    assert c.closed
    warn = [m for level, m in node.logger.lines if level == "WARN" and "AUTH failed" in m]
    assert len(warn) == 1
    assert f"failed to auth against {first.host}:4181 - connection refused" in warn[0]
    assert "got response 403" in warn[0]


def test_no_authorizations_is_unauthorized() -> None:
    node, net = node_with_auth()
    c = node.client()
    c.send(auth_cmd(b"nobody"))
    serve(net, doc={"ttl": 60, "authorizations": []})
    assert c.frames() == [(v2.FRAME_ERROR, b"E_UNAUTHORIZED AUTH no authorizations found")]


def test_a_client_waiting_on_its_auth_server_does_not_hold_up_another() -> None:
    node, net = node_with_auth()
    slow: Client = node.client()
    slow.send(auth_cmd(b"slow"))
    slow_query = net.take()  # never answered yet
    fast = node.client()
    fast.send(auth_cmd(b"fast"))
    serve(net)
    fast.frames()
    assert fast.send(v2.encode_pub("orders", b"m")) == [(v2.FRAME_RESPONSE, v2.OK)]
    # the slow server's answer never comes: the request timeout ends it
    conn = FakeConnection(slow_query.handler)
    node.clock.advance(node.opts.http_client_request_timeout)
    assert conn.aborted
    assert slow.frames() == [(v2.FRAME_ERROR, b"E_AUTH_FAILED AUTH failed")]


def test_a_client_that_leaves_while_waiting_cancels_its_query() -> None:
    node, net = node_with_auth()
    c = node.client()
    c.send(auth_cmd(b"s"))
    attempt = net.take()
    conn = FakeConnection(attempt.handler)
    c.conn.close()
    assert conn.aborted


def test_auth_without_auth_servers_is_disabled() -> None:
    node = Node()
    c = node.client()
    assert c.send(auth_cmd(b"s")) == [(v2.FRAME_ERROR, b"E_AUTH_DISABLED AUTH disabled")]


def test_post_sends_the_parameters_as_a_form() -> None:
    node, net = node_with_auth(auth_http_request_method="post")
    c = node.client()
    c.send(auth_cmd(b"s3cret"))
    attempt = net.take()
    conn = FakeConnection(attempt.handler)
    head, body = bytes(conn.written).split(b"\r\n\r\n", 1)
    assert head.startswith(b"POST /auth HTTP/1.1")
    assert b"content-type: application/x-www-form-urlencoded" in head.lower()
    assert parse_qs(body.decode(), keep_blank_values=True)["secret"] == ["s3cret"]
