"""nsqsim's check on hand-written histories in nsqsim's own vocabulary: each guarantee
shown holding and shown broken, judged by model.checker through nsqsim.checkers."""

from __future__ import annotations

from typing import Any

import pytest

from nsqsim.checkers import check
from nsqsim.history import Event

# What nsqsim's ``run`` event says of a node, per durability mode.
MODES: dict[str, dict[str, Any]] = {
    "default": {"mem_queue_size": 10000, "durable_publish": False, "sync_every": 2500, "persistent": True},
    "disk-only": {"mem_queue_size": 0, "durable_publish": False, "sync_every": 2500, "persistent": True},
    "durable-publish": {"mem_queue_size": 0, "durable_publish": True, "sync_every": 2500, "persistent": True},
    "memory": {"mem_queue_size": 10000, "durable_publish": False, "sync_every": 2500, "persistent": False},
}


class H:
    """A small history builder: one producer p-0, one nsqd n, topic t."""

    def __init__(self, mode: str = "default") -> None:
        self.events: list[Event] = [{"t": 0.0, "type": "run", "nodes": {"n": MODES[mode]}}]

    def add(self, t: float, type: str, **fields: Any) -> H:
        self.events.append({"t": t, "type": type, **fields})
        return self

    def sub(self, t: float, channel: str = "c", consumer: str = "c-0") -> H:
        return self.add(t, "subscribed", consumer=consumer, nsqd="n", topic="t", channel=channel)

    def pub(self, t: float, key: str, ok: float | None = None, defer_ms: int = 0) -> H:
        self.add(t, "publish", producer="p-0", nsqd="n", topic="t", key=key, defer_ms=defer_ms)
        if ok is not None:
            self.add(ok, "publish_ok", producer="p-0", key=key)
        return self

    def deliver(self, t: float, key: str, attempts: int = 1, channel: str = "c", consumer: str = "c-0") -> H:
        return self.add(t, "deliver", consumer=consumer, nsqd="n", topic="t", channel=channel, key=key, id=f"id-{key}", attempts=attempts)

    def act(self, t: float, kind: str, key: str, consumer: str = "c-0", **extra: Any) -> H:
        return self.add(t, kind, consumer=consumer, nsqd="n", channel="c", key=key, id=f"id-{key}", **extra)


def kinds(violations: list[str]) -> list[str]:
    return [x.split(":")[0] for x in violations]


def test_a_clean_history_passes() -> None:
    h = H().sub(0.5).pub(1.0, "k1", ok=1.1).deliver(1.2, "k1").act(1.3, "fin", "k1")
    v = check(h.events)
    assert v.ok, v.violations
    assert (v.published, v.acknowledged, v.delivered, v.unique_delivered, v.expected) == (1, 1, 1, 1, 1)
    assert v.latencies == [1.2 - 1.0]
    assert v.ack_latencies == [pytest.approx(0.1)]


def test_phantom_and_misrouted_deliveries_are_violations() -> None:
    v = check(H().sub(0.5).deliver(1.0, "never-published").events)
    assert kinds(v.violations) == ["phantom"]
    h = H().sub(0.5).pub(1.0, "k", ok=1.1)
    h.events.append({"t": 1.2, "type": "deliver", "consumer": "c-0", "nsqd": "other", "topic": "t", "channel": "c", "key": "k", "id": "x", "attempts": 1})
    assert "misrouted" in kinds(check(h.events).violations)


def test_an_acknowledged_message_never_delivered_is_lost() -> None:
    v = check(H().sub(0.5).pub(1.0, "k", ok=1.1).events)
    assert kinds(v.violations) == ["lost"]


@pytest.mark.parametrize(
    ("mode", "stop", "rule"),
    [
        ("default", "crash", "memory_at_crash"),
        ("default", "kill", "memory_at_crash"),
        ("disk-only", "crash", "unsynced_at_power_loss"),
        ("disk-only", "kill", None),
        ("durable-publish", "crash", None),
        ("default", "stop", None),
        ("memory", "stop", "no_disk"),
    ],
)
def test_what_a_stop_may_lose_depends_on_the_nodes_mode(mode: str, stop: str, rule: str | None) -> None:
    # nsqsim's "crash" is kill -9 and a power loss, its "kill" kill -9 alone, "stop" a clean exit.
    v = check(H(mode).sub(0.5).pub(1.0, "k", ok=1.1).add(2.0, stop, host="n").add(3.0, "start", host="n").events)
    if rule is None:
        assert kinds(v.violations) == ["lost"]
    else:
        assert v.ok, v.violations
        assert v.lost_allowed == {rule: 1}


def test_a_stop_after_the_publish_was_sent_may_lose_it_though_its_ok_came_later() -> None:
    # nsqd took the message and died while its OK was still on the way.
    v = check(H().sub(0.5).pub(1.0, "k").add(1.05, "crash", host="n").add(1.1, "publish_ok", producer="p-0", key="k").events)
    assert v.ok and v.lost_allowed == {"memory_at_crash": 1}


def test_unacknowledged_messages_are_owed_to_no_one() -> None:
    h = H().sub(0.5).pub(1.0, "failed").add(1.1, "publish_failed", producer="p-0", key="failed", error="E_PUB_FAILED")
    v = check(h.events)
    assert v.ok and v.expected == 0 and v.failed == 1


def test_a_topic_without_channels_keeps_its_messages_for_the_first_channel() -> None:
    # nsqd holds what a channel-less topic is sent and hands it to the first channel created.
    h = H().pub(0.2, "early", ok=0.3).sub(0.5).sub(0.6, channel="second", consumer="c-1")
    v = check(h.events)
    assert v.expected == 1 and kinds(v.violations) == ["lost"] and "channel c" in v.violations[0]
    assert check(h.deliver(0.7, "early").events).ok
    # Held in the topic's memory, it dies with the process (nsqsim seed 2 of ci-sweep).
    crashed = H().pub(0.2, "early", ok=0.3).add(1.0, "crash", host="n").add(2.0, "start", host="n").sub(2.5)
    assert check(crashed.events).lost_allowed == {"memory_at_crash": 1}


@pytest.mark.parametrize(("mode", "expected"), [("default", 1), ("disk-only", 1), ("memory", 0)])
def test_a_channel_outlives_a_restart_when_its_nsqd_has_a_data_path(mode: str, expected: int) -> None:
    # nsqd lists its channels in its metadata file and restores them at start; without
    # a data path they are gone with the process, and the topic holds the message.
    h = H(mode).sub(0.5).add(1.0, "stop", host="n").add(2.0, "start", host="n").pub(3.0, "k", ok=3.1)
    v = check(h.events)
    assert v.expected == expected
    assert kinds(v.violations) == ["lost"] * expected


def test_an_ephemeral_channel_ends_with_its_node_and_may_drop_messages() -> None:
    h = H().sub(0.5, channel="e#ephemeral").pub(1.0, "a", ok=1.1).add(2.0, "stop", host="n").add(3.0, "start", host="n")
    v = check(h.pub(4.0, "b", ok=4.1).events)
    assert v.ok and v.expected == 1 and v.lost_allowed == {"ephemeral": 1}


def test_pending_messages_at_the_end_are_not_lost() -> None:
    h = H().sub(0.5).pub(1.0, "k", ok=1.1)
    h.add(9.0, "final", host="n", topic="t", channel="c", depth=1, in_flight=0, deferred=0, timeouts=0, requeues=0, messages=1)
    v = check(h.events)
    assert v.ok and v.pending == 1


def test_duplicates_are_counted_by_cause() -> None:
    h = H().sub(0.5).pub(1.0, "a", ok=1.1).pub(1.0, "b", ok=1.1).pub(1.0, "c", ok=1.1)
    h.deliver(2.0, "a").act(2.1, "req", "a", delay_ms=0).deliver(2.2, "a", attempts=2)
    h.deliver(2.0, "b").act(2.1, "hold", "b").deliver(62.0, "b", attempts=2, consumer="c-1")
    h.deliver(2.0, "c").add(2.5, "consumer_crash", consumer="c-0").deliver(62.0, "c", attempts=2, consumer="c-1")
    v = check(h.events)
    assert v.ok, v.violations
    assert v.duplicates == {"requeue": 1, "timeout": 1, "consumer_gone": 1}
    assert (v.delivered, v.unique_delivered) == (6, 3)


def test_redelivery_after_an_accepted_fin_is_a_violation_but_a_late_fin_is_not() -> None:
    h = H().sub(0.5).pub(1.0, "k", ok=1.1).deliver(2.0, "k").act(2.1, "fin", "k").deliver(70.0, "k", attempts=2)
    assert "redelivered_after_fin" in kinds(check(h.events).violations)
    h = H().sub(0.5).pub(1.0, "k", ok=1.1).deliver(2.0, "k").act(70.0, "fin", "k")
    h.add(70.1, "error", consumer="c-0", nsqd="n", error="E_FIN_FAILED FIN id-k failed ID not in flight")
    h.deliver(70.2, "k", attempts=2)
    v = check(h.events)
    assert v.ok and v.duplicates == {"timeout": 1}


def test_a_fin_before_the_connection_to_that_nsqd_broke_may_not_have_arrived() -> None:
    def history(nsqd: str) -> H:
        h = H().sub(0.5).pub(1.0, "k", ok=1.1).deliver(2.0, "k").act(2.1, "fin", "k")
        return h.add(2.2, "disconnected", who="c-0", nsqd=nsqd, error="EOF").deliver(5.0, "k", attempts=2, consumer="c-1")

    v = check(history("n").events)
    assert v.ok and v.duplicates == {"consumer_gone": 1}
    # Its connection to another nsqd says nothing of this one.
    assert "redelivered_after_fin" in kinds(check(history("other").events).violations)


def test_a_fin_that_nsqd_applied_to_the_redelivery_is_a_timeout_race() -> None:
    h = H().sub(0.5).pub(1.0, "k", ok=1.1).deliver(2.0, "k").act(5.1, "fin", "k").deliver(5.2, "k", attempts=2)
    h.act(5.3, "fin", "k").add(5.31, "error", consumer="c-0", nsqd="n", error="E_FIN_FAILED FIN id-k failed ID not in flight")
    v = check(h.events)
    assert v.ok, v.violations
    assert v.duplicates == {"timeout": 1}


def test_attempts_must_grow_unless_the_node_crashed() -> None:
    h = H().sub(0.5).pub(1.0, "k", ok=1.1).deliver(2.0, "k", attempts=2).act(2.1, "req", "k", delay_ms=0).deliver(2.2, "k", attempts=2)
    assert "attempts" in kinds(check(h.events).violations)
    h = H().sub(0.5).pub(1.0, "k", ok=1.1).deliver(2.0, "k", attempts=2).add(3.0, "crash", host="n").deliver(9.0, "k", attempts=1)
    v = check(h.events)
    assert v.ok and v.duplicates == {"crash_redelivery": 1}
    # A clean restart writes the attempts down with the message.
    h = H().sub(0.5).pub(1.0, "k", ok=1.1).deliver(2.0, "k", attempts=2).add(3.0, "stop", host="n").add(4.0, "start", host="n")
    assert "attempts" in kinds(check(h.deliver(9.0, "k", attempts=1).events).violations)


def test_what_the_old_life_sent_may_arrive_until_the_new_one_starts() -> None:
    # Attempts 2 was sent before the kill and received after it (on the wire when the
    # process died); the next life delivers the message again from its disk with
    # attempts reset.  Between those two receipts lies only the start.
    h = H().sub(0.5).pub(1.0, "k", ok=1.1).deliver(1.5, "k").act(1.6, "req", "k", delay_ms=0)
    h.add(1.9, "kill", host="n").deliver(1.91, "k", attempts=2).add(3.0, "start", host="n").deliver(3.5, "k", attempts=1)
    v = check(h.act(3.6, "fin", "k").events)
    assert v.ok, v.violations
    assert v.duplicates == {"crash_redelivery": 2}


def test_a_clean_restart_undoes_no_fin_that_reached_nsqd() -> None:
    # A stop ends every connection, so whether a FIN sent before it had arrived only
    # nsqd knows: the stop event's list of what it still held tells.
    def history(**stop: Any) -> H:
        h = H().sub(0.5).pub(1.0, "k", ok=1.1).deliver(1.5, "k").act(1.6, "fin", "k")
        h.add(2.0, "stop", host="n", **stop).add(2.002, "disconnected", who="c-0", nsqd="n", error="EOF")
        return h.add(3.0, "start", host="n").deliver(3.5, "k", attempts=2, consumer="c-1")

    assert kinds(check(history(held={"t/c": {}}).events).violations) == ["fin_undone_by_clean_restart"]
    on_its_way = check(history(held={"t/c": {"id-k": "in_flight"}}).events)
    assert on_its_way.ok and on_its_way.duplicates == {"restart_redelivery": 1}
    # Without that, a FIN whose connection ended after it may have been lost with it.
    assert check(history().events).ok


def test_a_consumer_that_died_as_it_sent_its_fin_explains_a_redelivery_after_a_clean_restart() -> None:
    # ci-sweep seed 8: c-0 crashed at the instant of its FIN, then nsqd-1 restarted cleanly.
    def history(crash: bool) -> H:
        h = H().sub(0.5).pub(1.0, "k", ok=1.1).deliver(1.5, "k").act(1.6, "fin", "k")
        if crash:
            h.add(1.6, "consumer_crash", consumer="c-0")
        h.add(2.0, "stop", host="n").add(3.0, "start", host="n")
        return h.deliver(3.5, "k", attempts=2, consumer="c-1")

    v = check(history(crash=True).events)
    assert v.ok, v.violations
    assert v.duplicates == {"restart_redelivery": 1}
    assert kinds(check(history(crash=False).events).violations) == ["fin_undone_by_clean_restart"]


def test_a_clean_restart_keeps_a_requeue_delay_and_a_crash_may_not() -> None:
    def history(stop: str, **held: Any) -> H:
        h = H().sub(0.5).pub(1.0, "k", ok=1.1).deliver(1.5, "k").act(1.6, "req", "k", delay_ms=5000)
        return h.add(2.0, stop, host="n", **held).add(3.0, "start", host="n").deliver(3.5, "k", attempts=2)

    assert kinds(check(history("stop", held={"t/c": {"id-k": "deferred"}}).events).violations) == ["early"]
    # Still in flight at the stop: the REQ had not arrived, and the delay was never set.
    assert check(history("stop", held={"t/c": {"id-k": "in_flight"}}).events).ok
    assert check(history("crash").events).ok


def test_a_lower_attempt_may_arrive_late_only_from_behind_a_healed_partition() -> None:
    # c-1 got attempts 1 first, held at a cut; nsqd timed it out and sent attempts 2
    # to c-0, which finished it; the heal let attempts 1 through to c-1 afterwards.
    def history(heal: bool) -> H:
        h = H().sub(0.5).sub(0.5, consumer="c-1").pub(1.0, "k", ok=1.1)
        h.deliver(12.0, "k", attempts=2).act(12.1, "fin", "k")
        if heal:
            h.add(12.5, "heal", kind="partition_node", side_a=["c-1"], side_b=["c-0", "n", "p-0"])
        return h.deliver(12.6, "k", attempts=1, consumer="c-1")

    v = check(history(heal=True).events)
    assert v.ok, v.violations
    assert v.duplicates == {"timeout": 1}
    assert "attempts" in kinds(check(history(heal=False).events).violations)


def test_deferred_and_requeue_delays_are_never_cut_short() -> None:
    early = H().sub(0.5).pub(1.0, "k", ok=1.1, defer_ms=1000).deliver(1.5, "k")
    assert "early" in kinds(check(early.events).violations)
    on_time = H().sub(0.5).pub(1.0, "k", ok=1.1, defer_ms=1000).deliver(2.0, "k")
    assert check(on_time.events).ok
    req = H().sub(0.5).pub(1.0, "k", ok=1.1).deliver(1.2, "k").act(1.3, "req", "k", delay_ms=500)
    req.deliver(1.5, "k", attempts=2, consumer="c-1")
    assert "early" in kinds(check(req.events).violations)
    # Back to the same consumer, whose FIN of it then succeeds: the REQ took this delivery.
    same = H().sub(0.5).pub(1.0, "k", ok=1.1).deliver(1.2, "k").act(1.3, "req", "k", delay_ms=500)
    same.deliver(1.5, "k", attempts=2).act(1.6, "fin", "k")
    assert "early" in kinds(check(same.events).violations)


def test_a_requeue_nsqd_refused_explains_nothing_early() -> None:
    # The message timed out while the REQ was on its way (E_REQ_FAILED came back):
    # its redelivery is the timeout's, and owes nothing to the REQ's delay.
    h = H().sub(0.5).pub(1.0, "k", ok=1.1).deliver(1.2, "k").act(4.3, "req", "k", delay_ms=500)
    h.add(4.31, "error", consumer="c-0", nsqd="n", error="E_REQ_FAILED REQ id-k failed ID not in flight")
    h.deliver(4.32, "k", attempts=2).act(4.33, "fin", "k")
    v = check(h.events)
    assert v.ok, v.violations
    assert v.duplicates == {"timeout": 1}


def test_a_flipped_bit_may_cost_what_was_on_disk_and_a_flip_with_nothing_to_flip_nothing() -> None:
    h = H().sub(0.5).pub(1.0, "k", ok=1.1)
    assert check(h.add(2.0, "disk_fault", host="n", fault="bitflip", where=["/data/n/t.diskqueue.000000.dat", 9]).events).lost_allowed == {
        "disk_corruption": 1
    }
    h = H().sub(0.5).pub(1.0, "k", ok=1.1)
    assert kinds(check(h.add(2.0, "disk_fault", host="n", fault="bitflip", where=None).events).violations) == ["lost"]


def test_an_exception_is_a_violation_and_leaves_the_rest_pending() -> None:
    v = check(H().add(1.0, "exception", error="ZeroDivisionError()", traceback="...").events)
    assert v.violations == ["exception: ZeroDivisionError()"]
    # The run stopped there, before anything could drain.
    v = check(H().sub(0.5).pub(1.0, "k", ok=1.1).add(1.2, "exception", error="KeyError()", traceback="...").events)
    assert v.violations == ["exception: KeyError()"] and v.pending == 1


def test_many_violations_are_counted_but_not_all_listed() -> None:
    h = H().sub(0.5)
    for i in range(50):
        h.pub(1.0, f"k{i}", ok=1.1)
    v = check(h.events)
    assert v.violation_counts() == {"lost": 50}
    assert len(v.violations) == 21
