"""TLS, compression and AUTH in the simulator (nsqsim.security): really negotiated, and replayable.

Each run here is the real nsqd and the real client with their real TLS layer
(``ssl.SSLObject`` over memory) on the simulated network; the auth server is a
simulated host that partitions can cut off.
"""

from __future__ import annotations

from typing import Any

import pytest

from nsqsim.checkers import check
from nsqsim.cluster import Cluster, run
from nsqsim.config import ConfigError, parse_config


def table(**security: Any) -> dict[str, Any]:
    return {
        "duration": 8.0,
        "drain": 6.0,
        "nsqd": {"count": 2, "options": {"msg_timeout": "5s"}},
        "lookupd": {"count": 1},
        "producers": [{"name": "p", "count": 2, "rate": 100.0}],
        "consumers": [{"name": "c", "count": 2, "channel": "archive", "max_in_flight": 20}],
        "security": {"tls": True, "compression": "snappy", "auth": True, "auth_ttl": 2.0} | security,
    }


@pytest.mark.parametrize("compression", ["snappy", "deflate", "none"])
def test_every_connection_is_tls_compressed_and_authed_and_nothing_is_lost(compression: str) -> None:
    cluster = Cluster(parse_config(table(compression=compression)), 3)
    seen: list[tuple[bool, bool, bool, bool]] = []

    # look at nsqd's clients part way through the load, when every consumer is connected
    def look() -> Any:
        yield cluster.env.timeout(6.0)
        for node in cluster.nsqd_nodes.values():
            assert node.nsqd is not None
            seen.extend((c.tls, c.snappy, c.deflate, c.authed) for c in node.nsqd.clients.values())

    cluster.env.process(look())
    result = cluster.run()
    assert len(seen) >= 4  # two consumers on each of two nsqd, and the producers
    assert set(seen) == {(True, compression == "snappy", compression == "deflate", True)}
    # nsqd asked again as answers expired (a 2 s TTL over the 16 s run)
    assert cluster.auth_nodes[0].app.queries > len(seen)
    verdict = check(result.history.events)
    assert verdict.ok, verdict.violations
    assert sum(1 for e in result.history.events if e["type"] == "deliver") > 1000


def test_a_seed_replays_the_same_history_with_tls_on() -> None:
    cfg = parse_config(table() | {"faults": {"enabled": True, "start": 2.0, "mean_interval": 3.0}})
    one, two = run(cfg, 11), run(cfg, 11)
    assert one.history.events == two.history.events
    assert one.history.events != run(cfg, 12).history.events


def test_an_auth_server_cut_off_fails_auth_and_the_clients_come_back_when_it_heals() -> None:
    cfg = parse_config(
        table()
        | {"faults": {"schedule": [{"at": 3.0, "kind": "partition_node", "target": "auth-0", "duration": 3.0, "mode": "reset"}]}}
    )
    result = run(cfg, 5, log_level="WARN")
    logs = [msg for lines in result.logs.values() for _, _, msg in lines]
    assert any("AUTH failed failed to auth against auth-0:4181" in m for m in logs), logs[:20]
    events = result.history.events
    heal = 6.0
    assert any(e["type"] == "deliver" and e["t"] > heal + 1 for e in events)
    verdict = check(events)
    assert verdict.ok, verdict.violations


@pytest.mark.parametrize(
    ("security", "message"),
    [
        ({"compression": "lz4"}, "compression"),
        ({"tls": False, "tls_required": True}, "tls_required needs tls"),
        ({"auth_ttl": 0.5}, "auth_ttl"),
    ],
)
def test_bad_security_settings_say_why(security: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(table(**security))
