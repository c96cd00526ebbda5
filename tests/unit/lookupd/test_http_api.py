"""nsqlookupd's HTTP API as pure functions: every endpoint, error and routing rule."""

from __future__ import annotations

import json
from typing import Any

import pytest

from broker.lookupd.lookupd import NSQLookupd
from broker.version import PACKAGE_VERSION
from tests.unit.lookupd.fakes import FakeClock, Peer, make_lookupd

NSQ_HEADER = ("X-NSQ-Content-Type", "nsq; version=1.0")
JSON_TYPE = "application/json; charset=utf-8"


@pytest.fixture
def lookupd() -> NSQLookupd:
    return make_lookupd()[0]


def call(lookupd: NSQLookupd, method: str, target: str) -> tuple[int, dict[str, str], bytes]:
    status, headers, body = lookupd.handle_http_target(method, target, b"")
    assert headers[NSQ_HEADER[0]] == NSQ_HEADER[1]
    return status, headers, body


def get_json(lookupd: NSQLookupd, target: str) -> Any:
    status, headers, body = call(lookupd, "GET", target)
    assert status == 200, body
    assert headers["Content-Type"] == JSON_TYPE
    return json.loads(body)


def post_ok(lookupd: NSQLookupd, target: str) -> None:
    assert call(lookupd, "POST", target) == (200, dict([NSQ_HEADER]), b"")


def error(lookupd: NSQLookupd, method: str, target: str) -> tuple[int, bytes]:
    status, headers, body = call(lookupd, method, target)
    assert headers["Content-Type"] == JSON_TYPE
    return status, body


def register(lookupd: NSQLookupd, addr: tuple[str, int], *lines: bytes, **fields: object) -> Peer:
    peer = Peer(lookupd, addr).connect_v1()
    peer.identify(**fields)
    for line in lines:
        assert peer.send(line + b"\n") == [b"OK"]
    return peer


# -- simple endpoints ---------------------------------------------------------


def test_ping(lookupd: NSQLookupd) -> None:
    assert call(lookupd, "GET", "/ping") == (
        200,
        {"Content-Type": "text/plain; charset=utf-8", NSQ_HEADER[0]: NSQ_HEADER[1]},
        b"OK",
    )


def test_info(lookupd: NSQLookupd) -> None:
    assert call(lookupd, "GET", "/info")[2] == b'{"version":"1.3.0","nsqsim_version":"%s"}' % PACKAGE_VERSION.encode()


def test_empty_lists_are_arrays(lookupd: NSQLookupd) -> None:
    assert call(lookupd, "GET", "/topics")[2] == b'{"topics":[]}'
    assert call(lookupd, "GET", "/channels?topic=t")[2] == b'{"channels":[]}'
    assert call(lookupd, "GET", "/nodes")[2] == b'{"producers":[]}'
    assert call(lookupd, "GET", "/debug")[2] == b"{}"


# -- /lookup --------------------------------------------------------------------


def test_lookup(lookupd: NSQLookupd) -> None:
    register(lookupd, ("10.0.0.1", 1), b"REGISTER t c1", b"REGISTER t c2")
    register(lookupd, ("10.0.0.2", 2), b"REGISTER t", broadcast_address="n2", tcp_port=5150, http_port=5151)
    assert call(lookupd, "GET", "/lookup?topic=t")[2] == (
        b'{"channels":["c1","c2"],"producers":['
        b'{"remote_address":"10.0.0.1:1","hostname":"nsqd-1.local","broadcast_address":"nsqd-1",'
        b'"tcp_port":4150,"http_port":4151,"version":"1.3.0"},'
        b'{"remote_address":"10.0.0.2:2","hostname":"nsqd-1.local","broadcast_address":"n2",'
        b'"tcp_port":5150,"http_port":5151,"version":"1.3.0"}]}'
    )


def test_lookup_errors(lookupd: NSQLookupd) -> None:
    assert error(lookupd, "GET", "/lookup") == (400, b'{"message":"MISSING_ARG_TOPIC"}')
    assert error(lookupd, "GET", "/lookup?topic=nope") == (404, b'{"message":"TOPIC_NOT_FOUND"}')
    assert error(lookupd, "GET", "/lookup?topic=%zz") == (400, b'{"message":"INVALID_REQUEST"}')
    assert error(lookupd, "GET", "/lookup?topic=t;x=1") == (400, b'{"message":"INVALID_REQUEST"}')


def test_lookup_of_created_topic_has_no_producers(lookupd: NSQLookupd) -> None:
    post_ok(lookupd, "/topic/create?topic=t")
    assert get_json(lookupd, "/lookup?topic=t") == {"channels": [], "producers": []}


def test_lookup_wildcard_matches_every_topic_as_go_does(lookupd: NSQLookupd) -> None:
    register(lookupd, ("10.0.0.1", 1), b"REGISTER a x", b"REGISTER b y")
    result = get_json(lookupd, "/lookup?topic=*")
    assert result["channels"] == ["x", "y"]
    assert [p["remote_address"] for p in result["producers"]] == ["10.0.0.1:1"]


def test_query_parameters_come_first_value_and_unescaped(lookupd: NSQLookupd) -> None:
    register(lookupd, ("10.0.0.1", 1), b"REGISTER a.b-c_d c")
    assert get_json(lookupd, "/channels?topic=a%2Eb-c_d&topic=other")["channels"] == ["c"]


# -- inactivity and tombstones ----------------------------------------------------


def test_inactive_producers_drop_out_of_lookup_and_nodes() -> None:
    lookupd, clock, _ = make_lookupd()
    register(lookupd, ("10.0.0.1", 1), b"REGISTER t")
    clock.advance(300.0)  # exactly the timeout: still active (Go compares with >)
    assert len(get_json(lookupd, "/lookup?topic=t")["producers"]) == 1
    assert len(get_json(lookupd, "/nodes")["producers"]) == 1
    clock.advance(0.001)
    assert get_json(lookupd, "/lookup?topic=t")["producers"] == []
    assert get_json(lookupd, "/nodes")["producers"] == []
    assert get_json(lookupd, "/topics")["topics"] == ["t"]  # still registered


def test_tombstone_hides_a_producer_for_its_lifetime() -> None:
    lookupd, clock, _ = make_lookupd(tombstone_lifetime=45.0)
    register(lookupd, ("10.0.0.1", 1), b"REGISTER t", b"REGISTER u", broadcast_address="n1", http_port=4151)
    register(lookupd, ("10.0.0.2", 2), b"REGISTER t", broadcast_address="n2", http_port=4151)
    post_ok(lookupd, "/topic/tombstone?topic=t&node=n1:4151")

    producers = get_json(lookupd, "/lookup?topic=t")["producers"]
    assert [p["broadcast_address"] for p in producers] == ["n2"]
    # Only topic t: the same node still produces u.
    assert len(get_json(lookupd, "/lookup?topic=u")["producers"]) == 1
    nodes = {n["broadcast_address"]: n for n in get_json(lookupd, "/nodes")["producers"]}
    assert nodes["n1"]["topics"] == ["t", "u"]
    assert nodes["n1"]["tombstones"] == [True, False]
    assert nodes["n2"]["tombstones"] == [False]

    debug = get_json(lookupd, "/debug")
    tombstoned = {e["broadcast_address"]: e for e in debug["topic:t:"]}
    assert isinstance(clock, FakeClock)
    assert tombstoned["n1"]["tombstoned"] is True
    assert tombstoned["n1"]["tombstoned_at"] == clock.wall_ns()
    assert tombstoned["n2"]["tombstoned_at"] == -6795364578871345152

    clock.advance(44.999)
    assert len(get_json(lookupd, "/lookup?topic=t")["producers"]) == 1
    clock.advance(0.001)  # the lifetime is over: back in the list
    assert len(get_json(lookupd, "/lookup?topic=t")["producers"]) == 2
    assert get_json(lookupd, "/nodes")["producers"][0]["tombstones"] == [False, False]
    assert get_json(lookupd, "/debug")["topic:t:"][0]["tombstoned"] is True  # Go never clears it


def test_tombstone_of_unknown_node_or_topic_is_ok(lookupd: NSQLookupd) -> None:
    register(lookupd, ("10.0.0.1", 1), b"REGISTER t")
    post_ok(lookupd, "/topic/tombstone?topic=t&node=elsewhere:1")
    post_ok(lookupd, "/topic/tombstone?topic=nope&node=nsqd-1:4151")
    assert len(get_json(lookupd, "/lookup?topic=t")["producers"]) == 1


def test_tombstone_errors(lookupd: NSQLookupd) -> None:
    assert error(lookupd, "POST", "/topic/tombstone?node=n:1") == (400, b'{"message":"MISSING_ARG_TOPIC"}')
    assert error(lookupd, "POST", "/topic/tombstone?topic=t") == (400, b'{"message":"MISSING_ARG_NODE"}')
    assert error(lookupd, "POST", "/topic/tombstone?topic=%") == (400, b'{"message":"INVALID_REQUEST"}')


# -- /nodes and /debug ------------------------------------------------------------


def test_nodes(lookupd: NSQLookupd) -> None:
    register(lookupd, ("10.0.0.1", 1), b"REGISTER t c", b"REGISTER u")
    register(lookupd, ("10.0.0.2", 2))
    assert call(lookupd, "GET", "/nodes")[2] == (
        b'{"producers":['
        b'{"remote_address":"10.0.0.1:1","hostname":"nsqd-1.local","broadcast_address":"nsqd-1",'
        b'"tcp_port":4150,"http_port":4151,"version":"1.3.0","tombstones":[false,false],"topics":["t","u"]},'
        b'{"remote_address":"10.0.0.2:2","hostname":"nsqd-1.local","broadcast_address":"nsqd-1",'
        b'"tcp_port":4150,"http_port":4151,"version":"1.3.0","tombstones":[],"topics":[]}]}'
    )


def test_debug_lists_registrations_with_producers_sorted(lookupd: NSQLookupd) -> None:
    post_ok(lookupd, "/topic/create?topic=empty")
    register(lookupd, ("10.0.0.1", 1), b"REGISTER t c")
    debug = get_json(lookupd, "/debug")
    assert list(debug) == ["channel:t:c", "client::", "topic:t:"]
    [entry] = debug["topic:t:"]
    assert list(entry) == [
        "broadcast_address",
        "hostname",
        "http_port",
        "id",
        "last_update",
        "tcp_port",
        "tombstoned",
        "tombstoned_at",
        "version",
    ]
    assert entry["id"] == "10.0.0.1:1"
    assert entry["tombstoned"] is False


# -- topic and channel management --------------------------------------------------


def test_topic_create_and_delete(lookupd: NSQLookupd) -> None:
    post_ok(lookupd, "/topic/create?topic=t")
    post_ok(lookupd, "/topic/create?topic=t")
    post_ok(lookupd, "/channel/create?topic=t&channel=c")
    post_ok(lookupd, "/channel/create?topic=t2&channel=c")  # creates the topic too
    assert get_json(lookupd, "/topics")["topics"] == ["t", "t2"]
    post_ok(lookupd, "/topic/delete?topic=t")
    assert get_json(lookupd, "/topics")["topics"] == ["t2"]
    assert get_json(lookupd, "/channels?topic=t")["channels"] == []
    post_ok(lookupd, "/topic/delete?topic=never-existed")


def test_topic_delete_drops_producers_too(lookupd: NSQLookupd) -> None:
    peer = register(lookupd, ("10.0.0.1", 1), b"REGISTER t c")
    post_ok(lookupd, "/topic/delete?topic=t")
    assert error(lookupd, "GET", "/lookup?topic=t") == (404, b'{"message":"TOPIC_NOT_FOUND"}')
    assert get_json(lookupd, "/nodes")["producers"][0]["topics"] == []
    assert peer.send(b"REGISTER t\n") == [b"OK"]  # nsqd re-registers on its next change
    assert get_json(lookupd, "/topics")["topics"] == ["t"]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("/topic/create", "MISSING_ARG_TOPIC"),
        ("/topic/create?topic=", "INVALID_ARG_TOPIC"),
        ("/topic/create?topic=a%20b", "INVALID_ARG_TOPIC"),
        ("/topic/create?topic=" + "x" * 65, "INVALID_ARG_TOPIC"),
        ("/topic/delete", "MISSING_ARG_TOPIC"),
        ("/channel/create?channel=c", "MISSING_ARG_TOPIC"),
        ("/channel/create?topic=bad!&channel=c", "INVALID_ARG_TOPIC"),
        ("/channel/create?topic=t", "MISSING_ARG_CHANNEL"),
        ("/channel/create?topic=t&channel=", "INVALID_ARG_CHANNEL"),
        ("/channel/delete?topic=t", "MISSING_ARG_CHANNEL"),
        ("/channel/delete?topic=t&channel=c%23nope", "INVALID_ARG_CHANNEL"),
        ("/channel/delete?topic=t&channel=c&x=%", "INVALID_REQUEST"),
    ],
)
def test_management_argument_errors(lookupd: NSQLookupd, target: str, message: str) -> None:
    assert error(lookupd, "POST", target) == (400, json.dumps({"message": message}).replace(" ", "").encode())


def test_channel_delete(lookupd: NSQLookupd) -> None:
    assert error(lookupd, "POST", "/channel/delete?topic=t&channel=c") == (
        404,
        b'{"message":"CHANNEL_NOT_FOUND"}',
    )
    post_ok(lookupd, "/channel/create?topic=t&channel=c")
    post_ok(lookupd, "/channel/create?topic=t&channel=d#ephemeral")
    post_ok(lookupd, "/channel/delete?topic=t&channel=c")
    assert get_json(lookupd, "/channels?topic=t")["channels"] == ["d#ephemeral"]
    assert get_json(lookupd, "/topics")["topics"] == ["t"]


def test_channels_errors(lookupd: NSQLookupd) -> None:
    assert error(lookupd, "GET", "/channels") == (400, b'{"message":"MISSING_ARG_TOPIC"}')
    assert error(lookupd, "GET", "/channels?topic=%g0") == (400, b'{"message":"INVALID_REQUEST"}')


def test_endpoints_without_parameters_ignore_a_bad_query(lookupd: NSQLookupd) -> None:
    assert call(lookupd, "GET", "/topics?%zz")[0] == 200
    assert call(lookupd, "GET", "/ping?;")[2] == b"OK"


# -- routing ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "target", "allow"),
    [
        ("GET", "/topic/create?topic=t", "OPTIONS, POST"),
        ("GET", "/topic/delete", "OPTIONS, POST"),
        ("GET", "/topic/tombstone", "OPTIONS, POST"),
        ("GET", "/channel/create", "OPTIONS, POST"),
        ("GET", "/channel/delete", "OPTIONS, POST"),
        ("POST", "/ping", "GET, OPTIONS"),
        ("POST", "/lookup?topic=t", "GET, OPTIONS"),
        ("PUT", "/topics", "GET, OPTIONS"),
        ("HEAD", "/info", "GET, OPTIONS"),
        ("DELETE", "/nodes", "GET, OPTIONS"),
    ],
)
def test_wrong_method_is_405_with_allow(lookupd: NSQLookupd, method: str, target: str, allow: str) -> None:
    status, headers, body = call(lookupd, method, target)
    assert (status, body) == (405, b'{"message":"METHOD_NOT_ALLOWED"}')
    assert headers["Allow"] == allow
    assert get_json(lookupd, "/topics")["topics"] == []  # and nothing happened


@pytest.mark.parametrize("target", ["/", "/nope", "/lookup/x", "/debug/pprof", "/topic", "/%E2%82%AC"])
def test_unknown_path_is_404(lookupd: NSQLookupd, target: str) -> None:
    assert error(lookupd, "GET", target) == (404, b'{"message":"NOT_FOUND"}')


def test_options(lookupd: NSQLookupd) -> None:
    assert call(lookupd, "OPTIONS", "/lookup") == (200, {"Allow": "GET, OPTIONS", NSQ_HEADER[0]: NSQ_HEADER[1]}, b"")
    assert call(lookupd, "OPTIONS", "/topic/create")[1]["Allow"] == "OPTIONS, POST"
    assert call(lookupd, "OPTIONS", "*")[1]["Allow"] == "GET, OPTIONS, POST"
    assert error(lookupd, "OPTIONS", "/nope") == (404, b'{"message":"NOT_FOUND"}')


@pytest.mark.parametrize(
    ("method", "target", "status", "location"),
    [
        ("GET", "/ping/", 301, "/ping"),
        ("GET", "/PING", 301, "/ping"),
        ("GET", "/Lookup/?topic=a&b=c", 301, "/lookup?topic=a&b=c"),
        ("GET", "//nodes", 301, "/nodes"),
        ("GET", "/x/../topics", 301, "/topics"),
        ("POST", "/topic/create/?topic=t", 307, "/topic/create?topic=t"),
        ("POST", "/Channel/Delete", 307, "/channel/delete"),
    ],
)
def test_redirects(lookupd: NSQLookupd, method: str, target: str, status: int, location: str) -> None:
    got_status, headers, body = call(lookupd, method, target)
    assert (got_status, headers["Location"]) == (status, location)
    if method == "GET":
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        href = location.replace("&", "&amp;")
        assert body == f'<a href="{href}">Moved Permanently</a>.\n\n'.encode()
    else:
        assert body == b""
    assert get_json(lookupd, "/topics")["topics"] == []


def test_bad_request_targets_are_400(lookupd: NSQLookupd) -> None:
    for target in (b"/ping%zz", b"ping", b"/ping\x01"):
        status, headers, body = lookupd.handle_http_target("GET", target, b"")
        assert (status, body) == (400, b"400 Bad Request")
        assert headers["Connection"] == "close"


def test_absolute_form_target(lookupd: NSQLookupd) -> None:
    assert call(lookupd, "GET", "http://lookupd:4161/ping")[2] == b"OK"


def test_handle_with_a_parsed_query(lookupd: NSQLookupd) -> None:
    status, headers, body = lookupd.handle_http("POST", "/topic/create", {"topic": ["t"]}, b"")
    assert (status, body) == (200, b"")
    assert headers == dict([NSQ_HEADER])
    status, _, body = lookupd.handle_http("GET", "/channels", {}, b"")
    assert (status, body) == (400, b'{"message":"MISSING_ARG_TOPIC"}')
    status, headers, _ = lookupd.handle_http("GET", "/Topics", {"a": ["1 2"]}, b"")
    assert (status, headers["Location"]) == (301, "/topics?a=1+2")


def test_json_is_escaped_as_go_does(lookupd: NSQLookupd) -> None:
    register(lookupd, ("10.0.0.1", 1), b"REGISTER t", hostname="<a&b>\u2028\x01\u00e9")
    body = call(lookupd, "GET", "/lookup?topic=t")[2]
    assert b'"hostname":"\\u003ca\\u0026b\\u003e\\u2028\\u0001\xc3\xa9"' in body
