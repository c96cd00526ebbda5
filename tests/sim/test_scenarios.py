"""Scenarios: a cluster of the real broker under one explicit fault, and what clients then see."""

from __future__ import annotations

from typing import Any

from nsqsim.checkers import check
from nsqsim.cluster import RunResult, run
from nsqsim.config import parse_config
from nsqsim.history import Event


def _cluster(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "scenario",
        "duration": 8.0,
        "drain": 12.0,
        "warmup": 1.0,
        "nsqd": {"count": 1, "options": {"msg_timeout": "2s"}},
        "lookupd": {"count": 0},
        "producers": [{"name": "p", "count": 1, "rate": 40.0, "nsqd": ["nsqd-0"]}],
        "consumers": [
            {"name": "c", "channel": "work", "count": 2, "max_in_flight": 10, "discovery": "direct", "heartbeat_interval": 1.0}
        ],
    }
    base.update(over)
    return base


def _of(events: list[Event], type: str, **match: Any) -> list[Event]:
    return [e for e in events if e["type"] == type and all(e.get(k) == v for k, v in match.items())]


def _run(table: dict[str, Any], seed: int = 1) -> RunResult:
    result = run(parse_config(table), seed)
    verdict = check(result.history.events)
    assert verdict.ok, "\n".join(verdict.violations)
    return result


def test_partitioned_consumers_in_flight_messages_time_out_and_go_to_another_consumer() -> None:
    start = 4.0
    slow = [{"name": "c", "channel": "work", "count": 2, "max_in_flight": 10, "discovery": "direct", "heartbeat_interval": 1.0, "handler_time": 0.3}]
    result = _run(
        _cluster(consumers=slow, faults={"schedule": [{"at": start, "kind": "partition_node", "target": "c-0", "duration": 6.0}]})
    )
    events = result.history.events
    before = {e["key"] for e in _of(events, "deliver", consumer="c-0") if start - 0.5 < e["t"] < start}
    after_on_c1 = [e for e in _of(events, "deliver", consumer="c-1") if e["t"] > start and e["key"] in before]
    assert after_on_c1, "no message in flight to the partitioned consumer was redelivered"
    for e in after_on_c1:
        assert e["attempts"] >= 2
        assert e["t"] >= start + 2.0 - 0.5  # not before nsqd's 2 s msg timeout could pass
    final = _of(events, "final", channel="work")
    assert final and final[0]["timeouts"] >= len(after_on_c1)


def test_nsqd_crash_loses_only_what_the_fault_model_allows() -> None:
    crash_at, down_for = 4.0, 2.0
    result = _run(_cluster(faults={"schedule": [{"at": crash_at, "kind": "crash", "target": "nsqd-0", "duration": down_for}]}))
    events = result.history.events
    verdict = check(events)
    assert _of(events, "run")[0]["nodes"]["nsqd-0"]["crash_loses"]
    assert _of(events, "crash", host="nsqd-0") and _of(events, "start", host="nsqd-0")
    # Everything acknowledged after the node came back and consumers re-subscribed is delivered.
    resub = min(e["t"] for e in _of(events, "subscribed") if e["t"] > crash_at)
    sent = {e["key"]: e["t"] for e in _of(events, "publish")}
    acked_after = {e["key"] for e in _of(events, "publish_ok") if sent[e["key"]] > resub}
    delivered = {e["key"] for e in _of(events, "deliver")}
    assert acked_after and acked_after <= delivered
    # Whatever was not delivered was lost to the crash, and the checkers said so.
    assert set(verdict.lost_allowed) <= {"memory_at_crash"}
    # While it was down, publishes failed at the producer rather than vanishing silently:
    # the client tried to connect for each one and was refused (or lost the answer to
    # one in flight at the crash).
    down = [e for e in _of(events, "publish_failed") if crash_at <= e["t"] <= crash_at + down_for]
    assert down and all(e["error"].startswith(("NotConnectedError", "ConnectionClosedError")) for e in down)
    assert any("Connection refused" in e["error"] for e in down)
    assert _of(events, "disconnected", who="p-0")[0]["error"].startswith("ConnectionResetError")


def test_a_power_loss_on_a_disk_only_node_may_take_only_records_never_fsynced() -> None:
    # Before the crash the cluster writes which records no power loss can take
    # (fsync events); the checker then excuses the loss of none of them.
    crash_at = 4.0
    nsqd = {"count": 1, "options": {"msg_timeout": "2s", "mem_queue_size": 0, "sync_every": 50}}
    result = _run(_cluster(nsqd=nsqd, faults={"schedule": [{"at": crash_at, "kind": "crash", "target": "nsqd-0", "duration": 1.0}]}))
    events = result.history.events
    fsynced = {k for e in _of(events, "fsync", host="nsqd-0", topic="events", channel="work") for k in e["keys"]}
    sent = {e["key"] for e in _of(events, "publish") if e["t"] < crash_at}
    assert fsynced and fsynced <= sent
    assert all(e["t"] <= crash_at for e in _of(events, "fsync"))
    delivered = {e["key"] for e in _of(events, "deliver")}
    assert fsynced <= delivered


def test_clean_restart_loses_nothing() -> None:
    result = _run(_cluster(faults={"schedule": [{"at": 4.0, "kind": "restart", "target": "nsqd-0", "duration": 1.5}]}))
    events = result.history.events
    assert _of(events, "stop", host="nsqd-0") and _of(events, "start", host="nsqd-0")
    # nsqd keeps its queues on the simulated disk: a clean exit may lose nothing.
    assert _of(events, "run")[0]["nodes"]["nsqd-0"]["restart_loses"] is False
    verdict = check(events)
    assert verdict.lost_allowed == {} and verdict.expected > 0
    disconnects = [e for e in _of(events, "disconnected") if e["t"] >= 4.0]
    assert disconnects and all(e["error"] == "EOF" for e in disconnects[:3])


def test_lookupd_partition_heals_and_discovery_recovers() -> None:
    heal_at = 7.0
    result = _run(
        _cluster(
            lookupd={"count": 1},
            consumers=[{"name": "c", "channel": "work", "count": 2, "lookup_interval": 0.5, "heartbeat_interval": 1.0}],
            faults={"schedule": [{"at": 0.0, "kind": "partition_lookupd", "duration": heal_at}]},
            drain=30.0,
        )
    )
    events = result.history.events
    assert _of(events, "partition") and _of(events, "heal")
    subscribed = _of(events, "subscribed")
    assert subscribed, "consumers never found the nsqd through lookupd"
    assert min(e["t"] for e in subscribed) > heal_at
    acked = {e["key"] for e in _of(events, "publish_ok")}
    delivered = {e["key"] for e in _of(events, "deliver")}
    assert acked and acked <= delivered


def test_consumer_stall_sends_its_messages_elsewhere_and_late_fins_fail() -> None:
    result = _run(_cluster(faults={"schedule": [{"at": 4.0, "kind": "consumer_stall", "target": "c-0", "duration": 5.0}]}))
    events = result.history.events
    assert _of(events, "consumer_stall") and _of(events, "consumer_resume")
    assert any(e["error"].startswith("E_FIN_FAILED") for e in _of(events, "error", consumer="c-0"))
    assert check(events).duplicates.get("timeout", 0) > 0


def test_reset_partition_and_slow_link_and_disk_faults_run_clean() -> None:
    schedule = [
        {"at": 2.0, "kind": "partition_node", "target": "nsqd-0", "duration": 1.0, "mode": "reset"},
        {"at": 4.0, "kind": "slow_link", "target": "nsqd-0", "duration": 2.0},
        {"at": 6.5, "kind": "disk", "target": "nsqd-0", "duration": 1.0, "disk": "full"},
        {"at": 7.0, "kind": "one_way", "target": "nsqd-0", "duration": 1.0},
    ]
    result = _run(_cluster(faults={"schedule": schedule, "max_concurrent": 4}))
    kinds = [e["type"] for e in result.history.events]
    for kind in ("partition", "heal", "slow_link", "slow_link_end", "disk_fault", "disk_heal"):
        assert kind in kinds


def test_kill_loses_at_most_what_was_in_memory() -> None:
    result = _run(_cluster(faults={"schedule": [{"at": 4.0, "kind": "kill", "target": "nsqd-0", "duration": 1.0}]}))
    events = result.history.events
    assert _of(events, "kill", host="nsqd-0") and _of(events, "start", host="nsqd-0")
    assert _of(events, "run")[0]["nodes"]["nsqd-0"]["kill_loses"]  # --mem-queue-size 10000
    assert set(check(events).lost_allowed) <= {"memory_at_crash"}


def test_an_nsqd_killed_and_restarted_at_once_starts_a_process_start_later() -> None:
    # A fault of no duration still leaves the node down for PROCESS_START: a
    # successor in the same pseudo-millisecond of the wall clock would give out
    # message ids its predecessor already used (see nsqsim.nodes).
    from nsqsim.nodes import PROCESS_START

    at = 4.0
    nsqd = {"count": 1, "options": {"msg_timeout": "2s", "mem_queue_size": 0}}
    result = _run(_cluster(nsqd=nsqd, faults={"schedule": [{"at": at, "kind": "kill", "target": "nsqd-0", "duration": 0.0}]}))
    events = result.history.events
    [kill] = _of(events, "kill", host="nsqd-0")
    starts = [e["t"] for e in _of(events, "start", host="nsqd-0") if e["t"] >= kill["t"]]
    assert starts == [kill["t"] + PROCESS_START]
