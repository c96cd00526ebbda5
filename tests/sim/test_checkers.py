"""The checkers on hand-written histories: each guarantee shown holding and shown broken."""

from __future__ import annotations

from typing import Any

from nsqsim.checkers import check
from nsqsim.history import Event


class H:
    """A small history builder: one producer p-0, one nsqd n, topic t."""

    def __init__(self, crash_loses: bool = True) -> None:
        self.events: list[Event] = [
            {"t": 0.0, "type": "run", "nodes": {"n": {"crash_loses": crash_loses, "restart_loses": crash_loses}}}
        ]

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


def test_a_clean_history_passes() -> None:
    h = H().sub(0.5).pub(1.0, "k1", ok=1.1).deliver(1.2, "k1").act(1.3, "fin", "k1")
    v = check(h.events)
    assert v.ok, v.violations
    assert (v.published, v.acknowledged, v.delivered, v.expected) == (1, 1, 1, 1)
    assert v.latencies == [1.2 - 1.0]


def test_phantom_and_misrouted_deliveries_are_violations() -> None:
    v = check(H().sub(0.5).deliver(1.0, "never-published").events)
    assert [x.split(":")[0] for x in v.violations] == ["phantom"]
    h = H().sub(0.5).pub(1.0, "k", ok=1.1)
    h.events.append({"t": 1.2, "type": "deliver", "consumer": "c-0", "nsqd": "other", "topic": "t", "channel": "c", "key": "k", "id": "x", "attempts": 1})
    assert any(x.startswith("misrouted") for x in check(h.events).violations)


def test_an_acknowledged_message_never_delivered_is_lost() -> None:
    v = check(H().sub(0.5).pub(1.0, "k", ok=1.1).events)
    assert [x.split(":")[0] for x in v.violations] == ["lost"]


def test_loss_is_allowed_after_a_crash_that_may_lose_it() -> None:
    v = check(H(crash_loses=True).sub(0.5).pub(1.0, "k", ok=1.1).add(2.0, "crash", host="n").events)
    assert v.ok and v.lost_allowed == {"crash": 1}
    v = check(H(crash_loses=False).sub(0.5).pub(1.0, "k", ok=1.1).add(2.0, "crash", host="n").events)
    assert not v.ok


def test_unacknowledged_or_channel_less_messages_are_not_owed() -> None:
    h = H().pub(0.2, "early", ok=0.3).sub(0.5).pub(1.0, "failed").add(1.1, "publish_failed", producer="p-0", key="failed", error="E_PUB_FAILED")
    v = check(h.events)
    assert v.ok and v.expected == 0 and v.failed == 1


def test_channel_existence_ends_when_its_nsqd_stops() -> None:
    h = H().sub(0.5).add(1.0, "stop", host="n").add(2.0, "start", host="n").pub(3.0, "k", ok=3.1)
    assert check(h.events).expected == 0


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


def test_redelivery_after_an_accepted_fin_is_a_violation_but_a_late_fin_is_not() -> None:
    h = H().sub(0.5).pub(1.0, "k", ok=1.1).deliver(2.0, "k").act(2.1, "fin", "k").deliver(70.0, "k", attempts=2)
    assert any(x.startswith("redelivered_after_fin") for x in check(h.events).violations)
    h = H().sub(0.5).pub(1.0, "k", ok=1.1).deliver(2.0, "k").act(70.0, "fin", "k")
    h.add(70.1, "error", consumer="c-0", nsqd="n", error="E_FIN_FAILED FIN id-k failed ID not in flight")
    h.deliver(70.2, "k", attempts=2)
    v = check(h.events)
    assert v.ok and v.duplicates == {"timeout": 1}


def test_a_fin_that_nsqd_applied_to_the_redelivery_is_a_timeout_race() -> None:
    h = H().sub(0.5).pub(1.0, "k", ok=1.1).deliver(2.0, "k").act(5.1, "fin", "k").deliver(5.2, "k", attempts=2)
    h.act(5.3, "fin", "k").add(5.31, "error", consumer="c-0", nsqd="n", error="E_FIN_FAILED FIN id-k failed ID not in flight")
    v = check(h.events)
    assert v.ok, v.violations
    assert v.duplicates == {"timeout": 1}


def test_attempts_must_grow_unless_the_node_restarted() -> None:
    h = H().sub(0.5).pub(1.0, "k", ok=1.1).deliver(2.0, "k", attempts=2).act(2.1, "req", "k", delay_ms=0).deliver(2.2, "k", attempts=2)
    assert any(x.startswith("attempts") for x in check(h.events).violations)
    h = H().sub(0.5).pub(1.0, "k", ok=1.1).deliver(2.0, "k", attempts=2).add(3.0, "crash", host="n").deliver(9.0, "k", attempts=1)
    assert check(h.events).ok


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
    assert any(x.startswith("attempts") for x in check(history(heal=False).events).violations)


def test_deferred_and_requeue_delays_are_never_cut_short() -> None:
    early = H().sub(0.5).pub(1.0, "k", ok=1.1, defer_ms=1000).deliver(1.5, "k")
    assert any(x.startswith("early") for x in check(early.events).violations)
    on_time = H().sub(0.5).pub(1.0, "k", ok=1.1, defer_ms=1000).deliver(2.0, "k")
    assert check(on_time.events).ok
    req = H().sub(0.5).pub(1.0, "k", ok=1.1).deliver(1.2, "k").act(1.3, "req", "k", delay_ms=500)
    req.deliver(1.5, "k", attempts=2, consumer="c-1")
    assert any(x.startswith("early") for x in check(req.events).violations)
    # Back to the same consumer, whose FIN of it then succeeds: the REQ took this delivery.
    same = H().sub(0.5).pub(1.0, "k", ok=1.1).deliver(1.2, "k").act(1.3, "req", "k", delay_ms=500)
    same.deliver(1.5, "k", attempts=2).act(1.6, "fin", "k")
    assert any(x.startswith("early") for x in check(same.events).violations)


def test_a_requeue_nsqd_refused_explains_nothing_early() -> None:
    # The message timed out while the REQ was on its way (E_REQ_FAILED came back):
    # its redelivery is the timeout's, and owes nothing to the REQ's delay.
    h = H().sub(0.5).pub(1.0, "k", ok=1.1).deliver(1.2, "k").act(4.3, "req", "k", delay_ms=500)
    h.add(4.31, "error", consumer="c-0", nsqd="n", error="E_REQ_FAILED REQ id-k failed ID not in flight")
    h.deliver(4.32, "k", attempts=2).act(4.33, "fin", "k")
    v = check(h.events)
    assert v.ok, v.violations
    assert v.duplicates == {"timeout": 1}


def test_an_exception_is_a_violation() -> None:
    v = check(H().add(1.0, "exception", error="ZeroDivisionError()", traceback="...").events)
    assert v.violations == ["exception: ZeroDivisionError()"]


def test_many_violations_are_counted_but_not_all_listed() -> None:
    h = H().sub(0.5)
    for i in range(50):
        h.pub(1.0, f"k{i}", ok=1.1)
    v = check(h.events)
    assert v.violation_counts() == {"lost": 50}
    assert len(v.violations) == 21
