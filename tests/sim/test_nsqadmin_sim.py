"""nsqadmin's core in the simulator: the same NSQAdmin, on a simulated host, over a running cluster.

The admin node asks nsqlookupd and every nsqd through the simulated network,
so a partition that cuts an nsqd off gives nsqadmin's partial answer (the
other nodes' figures and a warning), after its request timeout, never a hang.
"""

from __future__ import annotations

import json
from typing import Any

from broker.admin.admin import NSQAdmin
from broker.admin.options import AdminOptions
from broker.client.http import HTTPRequest, HTTPResponse, fetch
from nsqsim.clock import Life
from nsqsim.cluster import Cluster
from nsqsim.config import LOOKUPD_HTTP_PORT, parse_config
from nsqsim.logs import SimLogger

ADMIN_PORT = 4171


class NoAssets:
    def get(self, name: str) -> bytes | None:
        return None


def cluster_with_admin(faults: list[dict[str, Any]]) -> tuple[Cluster, dict[float, Any]]:
    cfg = parse_config(
        {
            "duration": 20.0,
            "drain": 4.0,
            "nsqd": {"count": 2},
            "lookupd": {"count": 1},
            "producers": [{"name": "p", "count": 2, "rate": 50.0, "topic": "orders", "nsqd": ["nsqd-0", "nsqd-1"]}],
            "consumers": [{"name": "c", "count": 1, "topic": "orders", "channel": "billing"}],
            "faults": {"schedule": faults},
        }
    )
    cluster = Cluster(cfg, 7)
    for host in ("admin-0", "viewer-0"):
        cluster.net.add_host(host)
    life = Life("admin-0")
    clock = cluster.clock.for_life(life)
    admin = NSQAdmin(
        AdminOptions(nsqlookupd_http_addresses=[f"lookupd-0:{LOOKUPD_HTTP_PORT}"], http_client_request_timeout=2.0),
        clock=clock,
        network=cluster.net.host("admin-0", life),
        logger=SimLogger("admin-0", clock),
        hostname="admin-0",
        assets=NoAssets(),
    )
    cluster.net.listen("admin-0", ADMIN_PORT, admin.http_handler, life)
    answers: dict[float, Any] = {}
    viewer = Life("viewer-0")
    vclock = cluster.clock.for_life(viewer)
    vnet = cluster.net.host("viewer-0", viewer)

    def ask(at: float, path: str) -> Any:
        yield cluster.env.timeout(at)

        def done(result: HTTPResponse | BaseException, at: float = at) -> None:
            answers[at] = (vclock.now(), result)

        fetch(vnet, vclock, HTTPRequest.from_url(f"http://admin-0:{ADMIN_PORT}{path}"), done, timeout=10.0)

    for at, path in ((6.0, "/api/topics/orders"), (9.0, "/api/topics/orders"), (9.5, "/api/nodes")):
        cluster.env.process(ask(at, path))
    return cluster, answers


def test_nsqadmin_aggregates_a_simulated_cluster_and_answers_partially_when_a_node_is_cut_off() -> None:
    cluster, answers = cluster_with_admin([{"at": 8.0, "kind": "partition_node", "target": "nsqd-1", "duration": 8.0}])
    cluster.run()
    whole_at, whole = answers[6.0]
    assert whole_at - 6.0 < 2.0  # every node answered: no timeout waited out
    assert isinstance(whole, HTTPResponse) and whole.status == 200, whole
    topic = json.loads(whole.body)
    assert topic["topic_name"] == "orders"
    assert sorted(n["hostname"] for n in topic["nodes"]) == ["nsqd-0", "nsqd-1"]
    assert topic["message_count"] > 0 and [c["channel_name"] for c in topic["channels"]] == ["billing"]
    assert "message" not in topic or not topic["message"]
    # nsqd-1 is black-holed: nsqadmin waits out its request timeout, then answers with what it has
    cut_at, cut = answers[9.0]
    assert isinstance(cut, HTTPResponse) and cut.status == 200, cut
    partial = json.loads(cut.body)
    assert [n["hostname"] for n in partial["nodes"]] == ["nsqd-0"]
    assert "nsqd-1" in partial["message"]
    assert 2.0 <= cut_at - 9.0 < 10.0
    _, nodes = answers[9.5]
    assert isinstance(nodes, HTTPResponse) and nodes.status == 200
    assert {n["hostname"] for n in json.loads(nodes.body)["nodes"]} == {"nsqd-0", "nsqd-1"}  # lookupd still lists both
