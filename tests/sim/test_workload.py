"""The simulated clients are the project's client core: what it does shows in the history."""

from __future__ import annotations

from typing import Any

from broker.client.consumer import ConsumerCore
from broker.client.producer import ProducerCore
from nsqsim.checkers import check
from nsqsim.cluster import Cluster
from nsqsim.config import parse_config
from nsqsim.history import Event


def _cluster(consumer: dict[str, Any], **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "workload",
        "duration": 6.0,
        "drain": 10.0,
        "warmup": 1.0,
        "nsqd": {"count": 1, "options": {"msg_timeout": "1s"}},
        "lookupd": {"count": 0},
        "producers": [{"name": "p", "count": 1, "rate": 40.0, "nsqd": ["nsqd-0"]}],
        "consumers": [{"name": "c", "channel": "work", "count": 1, "discovery": "direct", "heartbeat_interval": 1.0, **consumer}],
    }
    base.update(over)
    return base


def _run(table: dict[str, Any], seed: int = 1) -> tuple[Cluster, list[Event]]:
    cluster = Cluster(parse_config(table), seed)
    events = cluster.run().history.events
    verdict = check(events)
    assert verdict.ok, "\n".join(verdict.violations)
    return cluster, events


def _of(events: list[Event], type: str, **match: Any) -> list[Event]:
    return [e for e in events if e["type"] == type and all(e.get(k) == v for k, v in match.items())]


def test_clients_are_the_client_cores_and_spread_rdy_as_the_client_does() -> None:
    # max_in_flight 5 over 2 nsqd: the client gives 3 and 2 (go-nsq would give 2 and 2).
    cluster, events = _run(
        _cluster(
            {"max_in_flight": 5},
            nsqd={"count": 2, "options": {"msg_timeout": "1s"}},
            producers=[{"name": "p", "count": 2, "rate": 40.0, "nsqd": ["nsqd-0", "nsqd-1"]}],
        )
    )
    assert all(isinstance(p.core, ProducerCore) for p in cluster.producers)
    [consumer] = cluster.consumers
    assert isinstance(consumer.core, ConsumerCore)
    assert sorted(c.rdy for c in consumer.core.connections) == [2, 3]
    assert {e["nsqd"] for e in _of(events, "subscribed")} == {"nsqd-0", "nsqd-1"}
    assert len(_of(events, "publish_ok")) == len(_of(events, "publish")) > 0


def test_the_client_gives_a_message_up_after_max_attempts() -> None:
    # A handler that never answers: nsqd times each message out after 1 s and
    # redelivers it; the third delivery is past max_attempts, and the client
    # finishes it unhandled.
    _, events = _run(_cluster({"behaviour": {"timeout": 1.0}, "max_attempts": 2}))
    given_up = _of(events, "fin", gave_up=True)
    assert given_up
    assert max(e["attempts"] for e in _of(events, "deliver")) == 3
    for fin in given_up:
        deliveries = _of(events, "deliver", key=fin["key"])
        assert [d["attempts"] for d in deliveries] == [1, 2, 3]
        assert deliveries[-1]["t"] == fin["t"]  # finished as it arrived, never handled
        assert len(_of(events, "hold", key=fin["key"])) == 2


def test_requeues_with_backoff_slow_the_consumer_down() -> None:
    plain = _cluster({"behaviour": {"requeue": 1.0}, "requeue_delay": 0.05})
    backing_off = _cluster({"behaviour": {"requeue": 1.0}, "requeue_delay": 0.05, "requeue_backoff": True})
    _, fast = _run(plain)
    _, slow = _run(backing_off)
    assert len(_of(slow, "deliver")) * 5 < len(_of(fast, "deliver"))
    # After the first failure the client holds RDY 0 for 2 s (backoff_multiplier 1 s * 2**1),
    # then lets one message through at a time.
    times = [e["t"] for e in _of(slow, "deliver")]
    first_req = _of(slow, "req")[0]["t"]
    later = [t for t in times if t > first_req]
    assert later and later[0] - first_req >= 2.0


def test_a_crashed_consumer_comes_back_as_a_new_process_with_a_new_client() -> None:
    cluster, events = _run(_cluster({"behaviour": {"finish": 0.95, "crash": 0.05}, "restart_after": 0.5}))
    crashes = _of(events, "consumer_crash", consumer="c-0")
    restarts = _of(events, "consumer_restart", consumer="c-0")
    assert crashes and len(restarts) >= len(crashes) - 1
    resubscribed = [e for e in _of(events, "subscribed", consumer="c-0") if e["t"] > crashes[0]["t"]]
    assert resubscribed and resubscribed[0]["t"] >= crashes[0]["t"] + 0.5
    assert cluster.consumers[0].incarnation == len(crashes)


def test_publishes_past_max_outstanding_fail_at_once() -> None:
    # nsqd is cut off (black hole) for 2 s: answers stop, and once 3 publishes
    # wait for one, the producer application fails the next ones itself.
    _, events = _run(
        _cluster(
            {},
            producers=[{"name": "p", "count": 1, "rate": 40.0, "nsqd": ["nsqd-0"], "max_outstanding": 3}],
            faults={"schedule": [{"at": 3.0, "kind": "partition_node", "target": "nsqd-0", "duration": 2.0}]},
        )
    )
    refused = [e for e in _of(events, "publish_failed") if e["error"] == "too many unanswered publishes"]
    assert refused and all(3.0 <= e["t"] <= 5.1 for e in refused)
