"""nsqadmin as a process, against a real cluster of ours: two nsqd and one nsqlookupd.

Every endpoint of the API is checked for its shape (the keys, in Go's
order) and its figures (against what each nsqd's own ``/stats`` says), then
with a node down: stopped (connection refused, in ``--nsqd-http-address``
mode) and hung (SIGSTOP: still registered with nsqlookupd, but not
answering), where the answer must come within the request timeout, hold the
other node's figures and say what failed.  The actions (pause, unpause,
empty, delete, tombstone) are checked by what nsqd and nsqlookupd then say.
Waits are on events (a log line, an answer) under a bound, never a sleep.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import ROOT, Daemon

pytestmark = pytest.mark.integration

BOUND = 20.0

TOPIC_KEYS = ["node", "hostname", "topic_name", "depth", "memory_depth", "backend_depth", "message_count", "nodes", "channels", "paused", "e2e_processing_latency"]
CHANNEL_KEYS = ["node", "hostname", "topic_name", "channel_name", "depth", "memory_depth", "backend_depth", "in_flight_count", "deferred_count", "requeue_count", "timeout_count", "message_count", "client_count", "nodes", "clients", "paused", "e2e_processing_latency"]
CLIENT_KEYS = ["node", "remote_address", "version", "client_id", "hostname", "user_agent", "connect_ts", "connected", "in_flight_count", "ready_count", "finish_count", "requeue_count", "message_count", "sample_rate", "deflate", "snappy", "authed", "auth_identity", "auth_identity_url", "tls", "tls_cipher_suite", "tls_version", "tls_negotiated_protocol", "tls_negotiated_protocol_is_mutual"]
PRODUCER_KEYS = ["remote_addresses", "remote_address", "hostname", "broadcast_address", "tcp_port", "http_port", "version", "topics", "out_of_date"]
E2E_KEYS = ["count", "percentiles", "topic", "channel", "host"]


# -- helpers ------------------------------------------------------------------------------


def addr(daemon: Daemon, proto: str = "HTTP") -> str:
    host, port = daemon.addresses[proto]
    return f"{host}:{port}"


def request(address: str, method: str, target: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(f"http://{address}{target}", data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=BOUND) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as err:
        raw, status = err.read(), err.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


def get(address: str, target: str) -> tuple[int, Any]:
    return request(address, "GET", target)


def ok(address: str, target: str) -> Any:
    status, body = get(address, target)
    assert status == 200, (target, status, body)
    return body


def post_json(address: str, target: str, obj: object, method: str = "POST", headers: dict[str, str] | None = None) -> tuple[int, Any]:
    return request(address, method, target, json.dumps(obj).encode(), headers)


def wait_until(done: Callable[[], bool], what: str, bound: float = BOUND) -> None:
    deadline = time.monotonic() + bound
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {bound}s: {what}")
        time.sleep(0.05)


def nsqadmin_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "broker.apps.nsqadmin", *args]


def start_nsqadmin(*args: str) -> Daemon:
    daemon = Daemon(nsqadmin_command("--http-address=127.0.0.1:0", *args))
    try:
        daemon.wait_listening(("HTTP",))
    except BaseException:
        daemon.close()
        raise
    return daemon


def nsqd_stats(nsqd: Daemon, topic: str = "") -> dict[str, Any]:
    return ok(addr(nsqd), "/stats?format=json" + (f"&topic={topic}" if topic else ""))  # type: ignore[no-any-return]


def channel_of(stats: dict[str, Any], topic: str, channel: str) -> dict[str, Any] | None:
    for t in stats["topics"]:
        if t["topic_name"] == topic:
            for c in t["channels"]:
                if c["channel_name"] == channel:
                    return c  # type: ignore[no-any-return]
    return None


class Consumer:
    """A V2 consumer on a raw socket: IDENTIFY (with a user agent), SUB, RDY."""

    def __init__(self, nsqd: Daemon, topic: str, channel: str, user_agent: str = "admin-test/1.0", rdy: int = 1) -> None:
        self.sock = socket.create_connection(nsqd.tcp_address, timeout=BOUND)
        self.sock.sendall(b"  V2")
        ident = json.dumps({"client_id": "admin-test", "hostname": "admin-test-host", "user_agent": user_agent}).encode()
        self.sock.sendall(b"IDENTIFY\n" + len(ident).to_bytes(4, "big") + ident)
        self._frame()
        self.sock.sendall(f"SUB {topic} {channel}\n".encode())
        assert self._frame() == b"OK"
        self.sock.sendall(f"RDY {rdy}\n".encode())
        host, port = self.sock.getsockname()[:2]
        self.local = f"{host}:{port}"

    def _frame(self) -> bytes:
        size = int.from_bytes(self._read(4), "big")
        return self._read(size)[4:]

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            assert chunk, "nsqd closed the consumer"
            data += chunk
        return data

    def close(self) -> None:
        self.sock.close()


@dataclass
class Cluster:
    lookupd: Daemon
    nsqds: list[Daemon]
    admin: Daemon

    @property
    def api(self) -> str:
        return addr(self.admin)


def pub(nsqd: Daemon, topic: str, body: bytes = b"hello") -> None:
    status, answer = request(addr(nsqd), "POST", f"/pub?topic={topic}", body)
    assert status == 200, answer


def create(nsqd: Daemon, topic: str, channel: str) -> None:
    for target in (f"/topic/create?topic={topic}", f"/channel/create?topic={topic}&channel={channel}"):
        status, answer = request(addr(nsqd), "POST", target)
        assert status == 200, (target, answer)


def registered(lookupd: Daemon, topic: str, count: int) -> Callable[[], bool]:
    def check() -> bool:
        status, body = get(addr(lookupd), f"/lookup?topic={topic}")
        return status == 200 and len(body["producers"]) == count

    return check


@pytest.fixture
def cluster(nsqlookupd_factory: Callable[..., Daemon], nsqd_factory: Callable[..., Daemon]) -> Iterator[Cluster]:
    """One nsqlookupd, two nsqd registered with it, and nsqadmin watching through the lookupd."""
    lookupd = nsqlookupd_factory()
    nsqds = [nsqd_factory(f"--lookupd-tcp-address={addr(lookupd, 'TCP')}", "--broadcast-address=127.0.0.1") for _ in range(2)]
    admin = start_nsqadmin(f"--lookupd-http-address={addr(lookupd)}", "--http-client-request-timeout=2s")
    try:
        yield Cluster(lookupd, nsqds, admin)
    finally:
        admin.close()


def fill(cluster: Cluster) -> None:
    """Topic ``orders`` on both nodes (2 + 3 messages), channel ``billing`` on both, ``audit`` on the first."""
    n1, n2 = cluster.nsqds
    for node in (n1, n2):
        create(node, "orders", "billing")
    create(n1, "orders", "audit")
    for _ in range(2):
        pub(n1, "orders")
    for _ in range(3):
        pub(n2, "orders")
    wait_until(registered(cluster.lookupd, "orders", 2), "both nsqd registered orders")


# -- the API, all up -------------------------------------------------------------------------


def test_topics_lists_every_topic_of_every_node(cluster: Cluster) -> None:
    fill(cluster)
    pub(cluster.nsqds[1], "zebra")
    wait_until(registered(cluster.lookupd, "zebra", 1), "zebra registered")
    assert ok(cluster.api, "/api/topics") == {"topics": ["orders", "zebra"], "message": ""}
    # inactive=true: topics nobody produces any more (none here) as a map of their channels.
    assert ok(cluster.api, "/api/topics?inactive=true") == {"topics": {}, "message": ""}


def test_topic_sums_the_nodes_and_keeps_each(cluster: Cluster) -> None:
    fill(cluster)
    n1, n2 = cluster.nsqds
    body = ok(cluster.api, "/api/topics/orders")
    assert list(body) == [*TOPIC_KEYS, "message"]
    assert body["message"] == ""
    assert (body["node"], body["topic_name"], body["message_count"]) == ("*", "orders", 5)
    # Each channel holds every message of its node's topic: billing 5 (2 + 3), audit 2.
    assert [list(c) for c in body["channels"]] == [CHANNEL_KEYS, CHANNEL_KEYS]
    channels = {c["channel_name"]: c for c in body["channels"]}
    assert channels["billing"]["depth"] == 5 and channels["billing"]["memory_depth"] == 5
    assert channels["audit"]["depth"] == 2 and channels["billing"]["node"] == "*"
    assert sorted(n["node"] for n in channels["billing"]["nodes"]) == sorted([addr(n1), addr(n2)])
    per_node = {n["node"]: n for n in body["nodes"]}
    assert set(per_node) == {addr(n1), addr(n2)}
    for node in (n1, n2):
        theirs = nsqd_stats(node, "orders")["topics"][0]
        mine = per_node[addr(node)]
        assert list(mine) == TOPIC_KEYS
        assert (mine["message_count"], mine["depth"], mine["backend_depth"]) == (theirs["message_count"], theirs["depth"], theirs["backend_depth"])
        assert mine["memory_depth"] == theirs["depth"] - theirs["backend_depth"]
        assert mine["nodes"] is None and list(mine["e2e_processing_latency"]) == E2E_KEYS
    assert body["e2e_processing_latency"] == {"count": 0, "percentiles": None, "topic": "orders", "channel": "", "host": "*"}


def test_channel_shows_its_clients(cluster: Cluster) -> None:
    fill(cluster)
    n1, _ = cluster.nsqds
    consumer = Consumer(n1, "orders", "billing", user_agent="admin-test/1.0")
    try:
        def has_client() -> bool:
            return bool(ok(cluster.api, "/api/topics/orders/billing")["clients"])

        wait_until(has_client, "the consumer listed")
        body = ok(cluster.api, "/api/topics/orders/billing")
        assert list(body) == [*CHANNEL_KEYS, "message"]
        assert (body["node"], body["channel_name"], body["client_count"]) == ("*", "billing", 1)
        (client,) = body["clients"]
        assert list(client) == CLIENT_KEYS
        assert client["node"] == addr(n1)
        assert client["remote_address"] == consumer.local
        assert (client["user_agent"], client["client_id"], client["hostname"]) == ("admin-test/1.0", "admin-test", "admin-test-host")
        assert (client["ready_count"], client["tls"], client["snappy"], client["deflate"]) == (1, False, False, False)
        assert client["connected"] >= 0 and client["connected"] % 1_000_000_000 == 0
        # The consumer took one message (RDY 1): in flight on its node.
        wait_until(lambda: ok(cluster.api, "/api/topics/orders/billing")["in_flight_count"] == 1, "one in flight")
    finally:
        consumer.close()
    # A channel nobody has: Go's embedded nil leaves the message alone.
    assert ok(cluster.api, "/api/topics/orders/nope") == {"message": ""}


def test_nodes_and_node(cluster: Cluster) -> None:
    fill(cluster)
    n1, n2 = cluster.nsqds
    body = ok(cluster.api, "/api/nodes")
    assert list(body) == ["nodes", "message"] and body["message"] == ""
    nodes = {f"{p['broadcast_address']}:{p['http_port']}": p for p in body["nodes"]}
    assert set(nodes) == {addr(n1), addr(n2)}
    for node in (n1, n2):
        p = nodes[addr(node)]
        assert list(p) == PRODUCER_KEYS
        assert p["tcp_port"] == node.tcp_address[1] and p["version"] == "1.3.0" and not p["out_of_date"]
        assert p["remote_addresses"] == [f"{addr(cluster.lookupd)}/{p['remote_address']}"]
        assert {"topic": "orders", "tombstoned": False} in p["topics"]

    body = ok(cluster.api, f"/api/nodes/{addr(n2)}")
    assert list(body) == ["node", "topics", "total_messages", "total_clients", "message"]
    assert (body["node"], body["total_messages"], body["total_clients"]) == (addr(n2), 3, 0)
    assert [t["topic_name"] for t in body["topics"]] == ["orders"]
    assert body["topics"][0]["node"] == addr(n2)
    assert get(cluster.api, "/api/nodes/127.0.0.1:1") == (404, {"message": "NODE_NOT_FOUND"})


def test_counter_counts_each_channel_on_each_node(cluster: Cluster) -> None:
    fill(cluster)
    n1, n2 = cluster.nsqds
    body = ok(cluster.api, "/api/counter")
    assert body["message"] == ""
    stats = body["stats"]
    assert stats == {
        f"orders:audit:{addr(n1)}": {"node": addr(n1), "topic_name": "orders", "channel_name": "audit", "message_count": 2},
        f"orders:billing:{addr(n1)}": {"node": addr(n1), "topic_name": "orders", "channel_name": "billing", "message_count": 2},
        f"orders:billing:{addr(n2)}": {"node": addr(n2), "topic_name": "orders", "channel_name": "billing", "message_count": 3},
    }
    assert list(stats) == sorted(stats)


def test_graphite_without_graphite_and_the_other_endpoints(cluster: Cluster) -> None:
    assert get(cluster.api, "/api/graphite?metric=rate&target=x") == (500, {"message": "INTERNAL_ERROR"})
    assert get(cluster.api, "/api/graphite?metric=depth&target=x") == (400, {"message": "INVALID_ARG_METRIC"})
    assert get(cluster.api, "/api/graphite?metric=rate") == (400, {"message": "INVALID_ARG_TARGET"})
    assert get(cluster.api, "/ping") == (200, "OK")
    assert get(cluster.api, "/api/nope") == (404, {"message": "NOT_FOUND"})
    assert request(cluster.api, "PUT", "/api/topics", b"") == (405, {"message": "METHOD_NOT_ALLOWED"})
    assert get(cluster.api, "/config/nsqlookupd_http_addresses") == (200, [addr(cluster.lookupd)])
    assert get(cluster.api, "/config/http_client_request_timeout") == (200, 2_000_000_000)
    status, page = get(cluster.api, "/topics/orders")
    assert status == 200 and "/static/app.js" in page
    status, script = get(cluster.api, "/static/app.js")
    assert status == 200 and "syncRows" in script


def test_unknown_topic_is_an_upstream_error(cluster: Cluster) -> None:
    status, body = get(cluster.api, "/api/topics/nothere")
    assert status == 502
    assert body["message"].startswith("UPSTREAM_ERROR: failed to query any nsqlookupd: got response 404 Not Found")


# -- actions ------------------------------------------------------------------------------------


def test_pause_unpause_empty_delete_channel(cluster: Cluster) -> None:
    fill(cluster)
    n1, n2 = cluster.nsqds
    assert post_json(cluster.api, "/api/topics/orders/billing", {"action": "pause"}) == (200, {"message": ""})
    for node in (n1, n2):
        channel = channel_of(nsqd_stats(node), "orders", "billing")
        assert channel is not None and channel["paused"] is True
    assert ok(cluster.api, "/api/topics/orders/billing")["paused"] is True
    assert post_json(cluster.api, "/api/topics/orders/billing", {"action": "unpause"}) == (200, {"message": ""})
    assert channel_of(nsqd_stats(n2), "orders", "billing")["paused"] is False  # type: ignore[index]
    assert post_json(cluster.api, "/api/topics/orders/billing", {"action": "empty"}) == (200, {"message": ""})
    assert ok(cluster.api, "/api/topics/orders/billing")["depth"] == 0
    assert post_json(cluster.api, "/api/topics/orders/billing", {"action": "shred"}) == (400, {"message": "INVALID_ACTION"})
    assert request(cluster.api, "DELETE", "/api/topics/orders/billing") == (200, {"message": ""})
    for node in (n1, n2):
        assert channel_of(nsqd_stats(node), "orders", "billing") is None


def test_pause_and_delete_topic(cluster: Cluster) -> None:
    fill(cluster)
    n1, n2 = cluster.nsqds
    assert post_json(cluster.api, "/api/topics/orders", {"action": "pause"}) == (200, {"message": ""})
    assert all(nsqd_stats(n, "orders")["topics"][0]["paused"] for n in (n1, n2))
    assert post_json(cluster.api, "/api/topics/orders", {"action": "unpause"}) == (200, {"message": ""})
    assert not any(nsqd_stats(n, "orders")["topics"][0]["paused"] for n in (n1, n2))
    assert request(cluster.api, "DELETE", "/api/topics/orders") == (200, {"message": ""})
    assert all(nsqd_stats(n)["topics"] == [] for n in (n1, n2))
    assert ok(addr(cluster.lookupd), "/topics")["topics"] == []


def test_tombstone_a_node_for_a_topic(cluster: Cluster) -> None:
    fill(cluster)
    n1, n2 = cluster.nsqds
    status, body = post_json(cluster.api, f"/api/nodes/{addr(n1)}", {"topic": "orders"}, method="DELETE")
    assert (status, body) == (200, {"message": ""})
    assert nsqd_stats(n1)["topics"] == []
    assert nsqd_stats(n2, "orders")["topics"][0]["topic_name"] == "orders"
    assert post_json(cluster.api, f"/api/nodes/{addr(n1)}", {"topic": "bad topic!"}, method="DELETE") == (400, {"message": "INVALID_TOPIC"})


def test_create_topic_and_channel_at_the_lookupd(cluster: Cluster) -> None:
    assert post_json(cluster.api, "/api/topics", {"topic": "fresh", "channel": "c"}) == (200, {"message": ""})
    assert ok(addr(cluster.lookupd), "/topics")["topics"] == ["fresh"]
    assert ok(addr(cluster.lookupd), "/channels?topic=fresh")["channels"] == ["c"]
    assert post_json(cluster.api, "/api/topics", {"topic": ""}) == (400, {"message": "INVALID_TOPIC"})


# -- a node down --------------------------------------------------------------------------------


def test_a_stopped_nsqd_gives_partial_results(nsqd_factory: Callable[..., Daemon]) -> None:
    n1, n2 = nsqd_factory("--broadcast-address=127.0.0.1"), nsqd_factory("--broadcast-address=127.0.0.1")
    for node, count in ((n1, 2), (n2, 3)):
        create(node, "orders", "billing")
        for _ in range(count):
            pub(node, "orders")
    admin = start_nsqadmin(f"--nsqd-http-address={addr(n1)}", f"--nsqd-http-address={addr(n2)}")
    try:
        assert ok(addr(admin), "/api/topics/orders")["message_count"] == 5
        n2.stop()
        refused = f'Get "http://{addr(n2)}/stats?format=json&topic=orders&include_clients=false": dial tcp {addr(n2)}: connect: connection refused'
        body = ok(addr(admin), "/api/topics/orders")
        assert body["message"] == f"WARNING: {refused}"
        assert (body["message_count"], [n["node"] for n in body["nodes"]]) == (2, [addr(n1)])
        body = ok(addr(admin), "/api/topics")
        assert body["topics"] == ["orders"] and body["message"].startswith(f'WARNING: Get "http://{addr(n2)}/stats?format=json"')
        body = ok(addr(admin), "/api/topics/orders/billing")
        assert body["message_count"] == 2 and "connection refused" in body["message"]
        body = ok(addr(admin), "/api/nodes")
        assert [n["http_port"] for n in body["nodes"]] == [n1.http_address[1]] and "connection refused" in body["message"]
        body = ok(addr(admin), "/api/counter")
        assert list(body["stats"]) == [f"orders:billing:{addr(n1)}"] and "connection refused" in body["message"]
        # An action reaches the node that answers, and says which did not.
        status, body = post_json(addr(admin), "/api/topics/orders/billing", {"action": "pause"})
        assert status == 200 and "connection refused" in body["message"]
        assert channel_of(nsqd_stats(n1), "orders", "billing")["paused"] is True  # type: ignore[index]
        n1.stop()
        status, body = get(addr(admin), "/api/topics/orders")
        assert status == 502 and body["message"].startswith("UPSTREAM_ERROR: failed to query any nsqd: ")
        admin.wait_for_line(r" WARNING: Get ")
    finally:
        admin.close()


def test_a_hung_nsqd_costs_one_timeout_not_a_hang(cluster: Cluster) -> None:
    fill(cluster)
    n1, n2 = cluster.nsqds
    n2.send_signal(signal.SIGSTOP)  # still registered with nsqlookupd, answering nothing
    try:
        started = time.monotonic()
        body = ok(cluster.api, "/api/topics/orders")
        took = time.monotonic() - started
        assert body["message"].startswith(f'WARNING: Get "http://{addr(n2)}/stats?format=json&topic=orders&include_clients=false": context deadline exceeded')
        assert body["message_count"] == 2 and [n["node"] for n in body["nodes"]] == [addr(n1)]
        assert took < BOUND, "the answer must come after the request timeout (2s), not hang"
    finally:
        n2.send_signal(signal.SIGCONT)


# -- the command line ---------------------------------------------------------------------------


def run_nsqadmin(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(nsqadmin_command(*args), cwd=ROOT, capture_output=True, text=True, timeout=BOUND, check=False)


def test_version_and_required_addresses() -> None:
    done = run_nsqadmin("--version")
    assert done.returncode == 0 and done.stdout.startswith("nsqadmin v1.3.0 (built w/")
    done = run_nsqadmin("--http-address=127.0.0.1:0")
    assert done.returncode == 1
    assert "FATAL: failed to instantiate nsqadmin - --nsqd-http-address or --lookupd-http-address required" in done.stderr
    done = run_nsqadmin("--nsqd-http-address=127.0.0.1:4151", "--lookupd-http-address=127.0.0.1:4161")
    assert done.returncode == 1 and "use --nsqd-http-address or --lookupd-http-address not both" in done.stderr
    done = run_nsqadmin("--nsqd-http-address=127.0.0.1:4151", "--http-client-tls-cert=/x.pem")
    assert done.returncode == 1 and "--http-client-tls-key must be specified with --http-client-tls-cert" in done.stderr
    done = run_nsqadmin("--nsqd-http-address=127.0.0.1:4151", "--allow-config-from-cidr=nope")
    assert done.returncode == 1 and "failed to parse --allow-config-from-cidr (nope)" in done.stderr
    done = run_nsqadmin("--bogus")
    assert done.returncode == 2 and "flag provided but not defined: -bogus" in done.stderr


def test_every_go_flag_is_accepted_and_the_idle_ones_warn(tmp_path: Path) -> None:
    config = tmp_path / "nsqadmin.cfg"
    config.write_text('nsqd_http_addresses = ["127.0.0.1:1"]\nadmin_users = ["alice"]\n')
    admin = start_nsqadmin(
        f"--config={config}", "--log-level=debug", "--log-prefix=[nsqadmin] ", "--verbose", "--base-path=/admin",
        f"--dev-static-dir={ROOT / 'broker' / 'admin' / 'static'}", "--graphite-url=http://127.0.0.1:1", "--proxy-graphite",
        "--statsd-counter-format=c.%s", "--statsd-gauge-format=g.%s", "--statsd-prefix=p.%s", "--statsd-interval=30s",
        "--notification-http-endpoint=http://127.0.0.1:1/notify", "--http-client-connect-timeout=1s",
        "--http-client-request-timeout=1s", "--http-client-tls-insecure-skip-verify", "--allow-config-from-cidr=10.0.0.0/8",
        "--acl-http-header=X-User",
    )
    try:
        for flag in ("verbose", "statsd-counter-format", "statsd-gauge-format", "statsd-prefix", "http-client-tls-insecure-skip-verify"):
            admin.wait_for_line(rf" WARNING: --{flag}=\S* has no effect")
        api = addr(admin)
        # --base-path: everything moves under it.
        assert get(api, "/admin/ping") == (200, "OK")
        assert get(api, "/ping") == (404, {"message": "NOT_FOUND"})
        # --admin-user with --acl-http-header: only alice may act.
        assert post_json(api, "/admin/api/topics/t", {"action": "pause"}) == (403, {"message": "FORBIDDEN"})
        assert post_json(api, "/admin/api/topics/t", {"action": "pause"}, headers={"X-User": "bob"}) == (403, {"message": "FORBIDDEN"})
        status, _ = post_json(api, "/admin/api/topics/t", {"action": "pause"}, headers={"X-User": "alice"})
        assert status == 502  # allowed, and the only nsqd (port 1) is down
        assert request(api, "DELETE", "/admin/api/topics/t", headers={"X-User": "mallory"}) == (403, {"message": "FORBIDDEN"})
        # --allow-config-from-cidr: 127.0.0.1 is outside 10.0.0.0/8.
        assert get(api, "/admin/config/log_level") == (403, {"message": "FORBIDDEN"})
        assert request(api, "PUT", "/admin/config/log_level", b"error") == (403, {"message": "FORBIDDEN"})
        status, page = get(api, "/admin/topics")
        assert status == 200 and '"isAdmin":false' in page and "/admin/static/app.js" in page
    finally:
        admin.close()


def test_config_endpoint_from_an_allowed_peer(nsqd: Daemon) -> None:
    admin = start_nsqadmin(f"--nsqd-http-address={addr(nsqd)}")
    try:
        api = addr(admin)
        assert get(api, "/config/log_level") == (200, 2)
        assert request(api, "PUT", "/config/log_level", b"warn") == (200, 3)
        assert request(api, "PUT", "/config/log_level", b"loud") == (400, {"message": "INVALID_VALUE"})
        assert request(api, "PUT", "/config/nsqd_http_addresses", b"[]") == (400, {"message": "INVALID_OPTION"})
        assert get(api, "/config/nope") == (400, {"message": "INVALID_OPTION"})
        assert get(api, "/config/allow_config_from_cidr") == (200, "127.0.0.1/8")
    finally:
        admin.close()
