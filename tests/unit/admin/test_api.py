"""nsqadmin's API driven without sockets: routes, figures, partial results, the guards.

A fake cluster answers each request the flows make (``run_sync``), so every
path, including nodes that refuse or time out, runs in microseconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from broker.admin.admin import NSQAdmin, basic_auth_user
from broker.admin.flow import Outcome, run_sync
from broker.admin.http_server import AdminRequest
from broker.admin.options import AdminOptions
from broker.client.http import HTTPFetch, HTTPRequest, HTTPResponse
from broker.ports import ConnectionHandler
from broker.wire.http import Response
from tests.fakes import FakeClock, RecordingLogger

LOOKUPD = "10.0.0.1:4161"
N1, N2 = "10.0.0.2:4151", "10.0.0.3:4151"


def nsqd_stats(topic_depth: int, messages: int, *, paused: bool = False, clients: list[dict[str, Any]] | None = None, p99: int | None = None) -> dict[str, Any]:
    e2e: dict[str, Any] = {"count": 0, "percentiles": None}
    if p99 is not None:
        e2e = {"count": 5, "percentiles": [{"quantile": 0.99, "value": p99}]}
    channel = {
        "channel_name": "c", "depth": 4, "backend_depth": 1, "in_flight_count": 1, "deferred_count": 0,
        "message_count": messages, "requeue_count": 2, "timeout_count": 0, "client_count": len(clients or []),
        "clients": clients or [], "paused": paused, "e2e_processing_latency": e2e,
    }
    return {"version": "1.3.0", "topics": [{"topic_name": "t", "channels": [channel], "depth": topic_depth, "backend_depth": 0, "message_count": messages, "message_bytes": 9, "paused": False, "e2e_processing_latency": e2e}]}


def producer(address: str, hostname: str, version: str = "1.3.0") -> dict[str, Any]:
    host, port = address.split(":")
    return {"remote_address": f"{host}:5000", "hostname": hostname, "broadcast_address": host, "tcp_port": 4150, "http_port": int(port), "version": version, "tombstones": [False], "topics": ["t"]}


CLIENT = {"client_id": "c1", "hostname": "h1", "version": "V2", "remote_address": "10.0.0.9:777", "state": 3, "ready_count": 7, "in_flight_count": 1, "message_count": 3, "finish_count": 2, "requeue_count": 0, "connect_ts": 1_795_835_000, "sample_rate": 0, "deflate": False, "snappy": True, "user_agent": "ua/1", "tls": False, "tls_cipher_suite": "", "tls_version": "", "tls_negotiated_protocol": "", "tls_negotiated_protocol_is_mutual": False}


class FakeCluster:
    """Answers as nsqlookupd and nsqd would; ``down`` nodes refuse, ``requests`` records every one."""

    def __init__(self) -> None:
        self.down: set[str] = set()
        self.requests: list[tuple[str, str, str]] = []
        self.stats = {N1: nsqd_stats(1, 10, clients=[CLIENT], p99=100), N2: nsqd_stats(2, 20, paused=True, p99=300)}
        self.nodes = [producer(N2, "b-host", "1.2.0"), producer(N1, "a-host")]

    def __call__(self, req: HTTPRequest) -> Outcome:
        address = f"{req.host}:{req.port}"
        self.requests.append((req.method, address, req.target))
        if address in self.down:
            return ConnectionRefusedError(111, "Connection refused")
        path = req.target.split("?")[0]
        if address == LOOKUPD:
            if path == "/nodes":
                return ok({"producers": self.nodes})
            if path == "/lookup":
                return ok({"channels": ["c"], "producers": [{k: v for k, v in p.items() if k not in ("topics", "tombstones")} for p in self.nodes]})
            if path == "/topics":
                return ok({"topics": ["t"]})
            return ok({})
        if path == "/stats":
            return ok(self.stats[address])
        if path == "/info":
            return ok({k: v for k, v in producer(address, "x").items() if k not in ("topics", "tombstones", "remote_address")})
        return ok(None)


def ok(obj: object) -> HTTPResponse:
    return HTTPResponse(200, (), json.dumps(obj).encode())


class RecordingNetwork:
    def __init__(self) -> None:
        self.handlers: list[ConnectionHandler] = []

    def connect(self, host: str, port: int, handler: ConnectionHandler) -> None:
        self.handlers.append(handler)


class Assets:
    def get(self, name: str) -> bytes | None:
        return {"index.html": b"<script>{{CONFIG}}</script><script src='{{BASE}}/static/app.js'>", "app.js": b"//"}.get(name)


def make_admin(**changes: Any) -> tuple[NSQAdmin, RecordingNetwork, RecordingLogger]:
    opts = AdminOptions(nsqlookupd_http_addresses=[LOOKUPD]).replace(**changes)
    network, logger = RecordingNetwork(), RecordingLogger()
    admin = NSQAdmin(opts, clock=FakeClock(), network=network, logger=logger, hostname="admin-host", assets=Assets())
    return admin, network, logger


def call(admin: NSQAdmin, cluster: Callable[[HTTPRequest], Outcome], method: str, target: str, body: object = None, **kw: Any) -> tuple[int, Any, Response]:
    raw = b"" if body is None else json.dumps(body).encode()
    response = run_sync(admin.api.route(AdminRequest.build(method, target, body=raw, **kw)), cluster)
    try:
        parsed = json.loads(response.body)
    except ValueError:
        parsed = response.body.decode()
    return response.status, parsed, response


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


def test_topic_sums_nodes_and_averages_latency(cluster: FakeCluster) -> None:
    admin, _, _ = make_admin()
    status, body, response = call(admin, cluster, "GET", "/api/topics/t")
    assert status == 200 and dict(response.headers)["X-NSQ-Content-Type"] == "nsq; version=1.0"
    assert (body["node"], body["depth"], body["message_count"], body["message"]) == ("*", 3, 30, "")
    (channel,) = body["channels"]
    assert (channel["depth"], channel["memory_depth"], channel["backend_depth"], channel["requeue_count"]) == (8, 6, 2, 4)
    assert channel["paused"] is True  # one node paused it
    assert [n["hostname"] for n in body["nodes"]] == ["a-host", "b-host"]  # sorted by hostname
    assert body["nodes"][0]["channels"][0]["node"] == N1  # per-node figures stay their own
    e2e = body["e2e_processing_latency"]
    assert (e2e["count"], e2e["host"], e2e["topic"]) == (10, "*", "t")
    # Go's running average over nodes; min is the last node's max, as Go computes it.
    assert e2e["percentiles"] == [{"average": 200.0, "count": 10.0, "max": 300.0, "min": 300.0, "quantile": 0.99}]
    per_node = body["nodes"][0]["e2e_processing_latency"]["percentiles"]
    assert per_node == [{"average": 100, "count": 5, "max": 100, "min": 100, "quantile": 0.99, "value": 100}]


def test_channel_lists_clients_with_node_and_age(cluster: FakeCluster) -> None:
    admin, _, _ = make_admin()
    status, body, _ = call(admin, cluster, "GET", "/api/topics/t/c")
    assert status == 200
    (client,) = body["clients"]
    assert (client["node"], client["user_agent"], client["ready_count"], client["snappy"]) == (N1, "ua/1", 7, True)
    assert "state" not in client and client["connected"] == (1_795_835_051 - 1_795_835_000) * 1_000_000_000
    assert call(admin, cluster, "GET", "/api/topics/t/none")[1] == {"message": ""}


def test_nodes_mark_the_old_version_and_search_by_http_address(cluster: FakeCluster) -> None:
    admin, _, _ = make_admin()
    _, body, _ = call(admin, cluster, "GET", "/api/nodes")
    nodes = body["nodes"]
    assert [(n["hostname"], n["out_of_date"]) for n in nodes] == [("a-host", False), ("b-host", True)]
    assert nodes[0]["remote_addresses"] == [f"{LOOKUPD}/10.0.0.2:5000"]
    status, body, _ = call(admin, cluster, "GET", f"/api/nodes/{N1}")
    assert (status, body["total_messages"], body["total_clients"]) == (200, 10, 1)
    assert call(admin, cluster, "GET", "/api/nodes/10.9.9.9:1")[:2] == (404, {"message": "NODE_NOT_FOUND"})


def test_a_refusing_node_gives_a_warning_beside_the_rest(cluster: FakeCluster) -> None:
    admin, _, logger = make_admin()
    cluster.down.add(N2)
    status, body, _ = call(admin, cluster, "GET", "/api/topics/t")
    assert status == 200 and body["message_count"] == 10
    want = f'WARNING: Get "http://{N2}/stats?format=json&topic=t&include_clients=false": dial tcp {N2}: connect: connection refused'
    assert body["message"] == want
    assert ("WARN", want.removeprefix("WARNING: ")) in logger.lines
    _, body, _ = call(admin, cluster, "GET", "/api/counter")
    assert list(body["stats"]) == [f"t:c:{N1}"] and body["message"].startswith("WARNING: ")


def test_no_node_answering_is_502(cluster: FakeCluster) -> None:
    admin, _, _ = make_admin()
    cluster.down.add(LOOKUPD)
    status, body, _ = call(admin, cluster, "GET", "/api/topics")
    assert status == 502
    assert body["message"] == f'UPSTREAM_ERROR: failed to query any nsqlookupd: Get "http://{LOOKUPD}/topics": dial tcp {LOOKUPD}: connect: connection refused'


def test_nsqd_mode_reads_info_and_stats(cluster: FakeCluster) -> None:
    admin, _, _ = make_admin(nsqlookupd_http_addresses=[], nsqd_http_addresses=[N1, N2])
    _, body, _ = call(admin, cluster, "GET", "/api/topics")
    assert body == {"topics": ["t"], "message": ""}
    _, body, _ = call(admin, cluster, "GET", "/api/nodes")
    assert [n["http_port"] for n in body["nodes"]] == [4151, 4151] and body["nodes"][0]["remote_addresses"] is None
    assert body["nodes"][0]["topics"] == [{"topic": "t", "tombstoned": False}]


def test_actions_post_to_every_producer(cluster: FakeCluster) -> None:
    admin, _, _ = make_admin()
    assert call(admin, cluster, "POST", "/api/topics/t/c", {"action": "pause"})[:2] == (200, {"message": ""})
    posts = [(a, t) for m, a, t in cluster.requests if m == "POST"]
    assert posts == [(N2, "/channel/pause?topic=t&channel=c"), (N1, "/channel/pause?topic=t&channel=c")]
    cluster.requests.clear()
    assert call(admin, cluster, "DELETE", "/api/topics/t")[:2] == (200, {"message": ""})
    posts = [(a, t) for m, a, t in cluster.requests if m == "POST"]
    assert posts == [(LOOKUPD, "/topic/delete?topic=t"), (N2, "/topic/delete?topic=t"), (N1, "/topic/delete?topic=t")]
    assert call(admin, cluster, "POST", "/api/topics/t", {"action": "nuke"})[:2] == (400, {"message": "INVALID_ACTION"})
    assert call(admin, cluster, "POST", "/api/topics/t", None)[:2] == (400, {"message": "EOF"})


def test_admin_users_guard_the_actions(cluster: FakeCluster) -> None:
    admin, _, _ = make_admin(admin_users=["alice"], acl_http_header="X-Auth-User")
    forbidden = (403, {"message": "FORBIDDEN"})
    assert call(admin, cluster, "POST", "/api/topics/t/c", {"action": "empty"})[:2] == forbidden
    assert call(admin, cluster, "POST", "/api/topics/t/c", {"action": "empty"}, headers=(("x-auth-user", "eve"),))[:2] == forbidden
    assert call(admin, cluster, "DELETE", f"/api/nodes/{N1}", {"topic": "t"})[:2] == forbidden
    assert call(admin, cluster, "POST", "/api/topics", {"topic": "t"})[:2] == forbidden
    assert not [r for r in cluster.requests if r[0] == "POST"]
    assert call(admin, cluster, "POST", "/api/topics/t/c", {"action": "empty"}, headers=(("x-auth-user", "alice"),))[0] == 200
    _, page, _ = call(admin, cluster, "GET", "/")
    assert '"isAdmin":false' in page


@pytest.mark.parametrize(("peer", "status"), [("127.0.0.1", 200), ("127.9.9.9", 200), ("::ffff:127.0.0.1", 200), ("10.1.1.1", 403), ("::1", 403), ("", 400)])
def test_config_answers_only_the_allowed_cidr(cluster: FakeCluster, peer: str, status: int) -> None:
    admin, _, _ = make_admin()
    assert call(admin, cluster, "GET", "/config/log_level", peer=(peer, 1))[0] == status


def test_config_put_swaps_the_options(cluster: FakeCluster) -> None:
    admin, _, _ = make_admin()
    status, body, _ = call(admin, cluster, "PUT", "/config/nsqlookupd_http_addresses", ["10.0.0.5:4161"])
    assert (status, body) == (200, ["10.0.0.5:4161"]) and admin.opts.nsqlookupd_http_addresses == ["10.0.0.5:4161"]
    assert call(admin, cluster, "PUT", "/config/log_level")[:2] == (413, {"message": "INVALID_VALUE"})
    assert call(admin, cluster, "GET", "/config/statsd_interval")[:2] == (200, 60_000_000_000)
    assert call(admin, cluster, "GET", "/config/verbose")[:2] == (400, {"message": "INVALID_OPTION"})


def test_routes_under_a_base_path(cluster: FakeCluster) -> None:
    admin, _, _ = make_admin(base_path="/nsq")
    assert call(admin, cluster, "GET", "/nsq/ping")[:2] == (200, "OK")
    assert call(admin, cluster, "GET", "/ping")[:2] == (404, {"message": "NOT_FOUND"})
    status, page, _ = call(admin, cluster, "GET", "/nsq/topics/t")
    assert status == 200 and "'/nsq/static/app.js'" in page and '"basePath":"/nsq"' in page
    _, _, moved = call(admin, cluster, "GET", "/nsq/api/topics/?x=1")
    assert moved.status == 301 and dict(moved.headers)["Location"] == "/nsq/api/topics?x=1"
    status, body, response = call(admin, cluster, "PATCH", "/nsq/api/topics/t")
    assert (status, body) == (405, {"message": "METHOD_NOT_ALLOWED"}) and dict(response.headers)["Allow"] == "GET, POST, DELETE"
    assert call(admin, cluster, "GET", "/nsq/static/nope.js")[:2] == (404, "NOT_FOUND")


def test_an_unreachable_address_is_a_failed_node_not_a_bug(cluster: FakeCluster) -> None:
    admin, _, logger = make_admin()

    def odd(req: HTTPRequest) -> Outcome:
        if req.target.startswith("/lookup"):
            return ok({"producers": [{"tcp_port": "not a number", "http_port": []}]})
        return cluster(req)

    status, body, _ = call(admin, odd, "GET", "/api/topics/t")
    # Odd types read as Go reads them (zero values): the node at ":0" cannot be asked.
    assert status == 502 and body["message"].startswith('UPSTREAM_ERROR: failed to query any nsqd: Get "http://:0/stats')
    assert not [line for line in logger.lines if "panic" in line[1]]


def test_a_handler_bug_is_a_500_not_a_crash(cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    admin, _, logger = make_admin()

    def broken(*args: object) -> None:
        raise KeyError("oops")

    monkeypatch.setattr(admin.ci, "lookupd_topics", broken)
    response = run_sync(admin._guarded(AdminRequest.build("GET", "/api/topics")), cluster)
    assert (response.status, json.loads(response.body)) == (500, {"message": "INTERNAL_ERROR"})
    assert ("ERROR", "panic in HTTP handler - KeyError: 'oops'") in logger.lines


def test_notifications_post_the_action(cluster: FakeCluster) -> None:
    admin, network, _ = make_admin(notification_http_endpoint="http://10.0.0.8:9000/hook")
    headers = (("host", "admin.example:4171"), ("user-agent", "curl/8"), ("authorization", "Basic Ym9iOnNlY3JldA=="))
    call(admin, cluster, "POST", "/api/topics/t/c", {"action": "pause"}, headers=headers, peer=("10.0.0.7", 555))
    (handler,) = network.handlers
    assert isinstance(handler, HTTPFetch)
    req = handler.request
    assert (req.method, req.host, req.port, req.target) == ("POST", "10.0.0.8", 9000, "/hook")
    event = json.loads(req.body)
    assert list(event) == ["action", "topic", "channel", "timestamp", "user", "remote_ip", "user_agent", "url", "via"]
    assert (event["action"], event["channel"], event["user"], event["remote_ip"]) == ("pause_channel", "c", "bob", "10.0.0.7:555")
    assert (event["url"], event["via"], event["timestamp"]) == ("http://admin.example:4171/api/topics/t/c", "admin-host", 1_795_835_051)


def test_basic_auth_user() -> None:
    assert basic_auth_user("Basic Ym9iOnNlY3JldA==") == "bob"
    assert basic_auth_user("Basic !!!") == ""
    assert basic_auth_user("Bearer x") == ""
