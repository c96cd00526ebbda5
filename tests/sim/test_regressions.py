"""Every failing seed the simulator found, pinned with its seed, and what was wrong.

Each of these failed once; each now runs clean.  They are plain tests, so a
regression names the seed to replay with ``nsqsim run``.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest
import simpy

from nsqsim.checkers import check
from nsqsim.clock import SimClock
from nsqsim.cluster import run
from nsqsim.config import load_config, parse_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CI_SWEEP = str(EXAMPLES / "ci-sweep.toml")
DISK_ONLY = str(EXAMPLES / "ci-sweep-disk-only.toml")


@pytest.mark.parametrize("seed", [90, 110])
def test_ok_in_flight_when_the_nsqd_crashed_is_an_allowed_loss(seed: int) -> None:
    # nsqd crashed after sending OK and before it arrived: the checker counted the
    # loss as a violation because it compared the crash with the OK's arrival
    # rather than with the PUB's sending.  Replay: nsqsim run --config examples/ci-sweep.toml --seed 90
    result = run(load_config(CI_SWEEP), seed)
    verdict = check(result.history.events)
    assert verdict.ok, verdict.violations
    assert verdict.lost_allowed.get("crash", 0) > 0


def test_requeue_refused_after_a_timeout_is_not_an_early_delivery() -> None:
    # c-0 was stalled past the 3 s msg timeout; on resuming it sent REQ (227 ms)
    # for a message nsqd had already timed out and was about to redeliver to it.
    # nsqd answered E_REQ_FAILED, yet the checker took the REQ as the cause of the
    # redelivery 7 ms later and reported it early.
    # Replay: nsqsim run --config examples/ci-sweep.toml --seed 596
    verdict = check(run(load_config(CI_SWEEP), 596).history.events)
    assert verdict.ok, verdict.violations


def test_fin_that_raced_a_timeout_to_the_same_consumer_is_not_a_violation() -> None:
    # c-1 resumed from a stall and sent FIN for delivery 2 just after nsqd had timed
    # it out and sent delivery 3 to c-1 itself (held 138 ms in nsqd's output
    # buffer).  FIN names an id, so nsqd applied it to delivery 3, and c-1's FIN of
    # delivery 3 then failed: correct NSQ behaviour that the checker called
    # "redelivered after an accepted FIN".
    # Replay: nsqsim run --config examples/ci-sweep.toml --seed 38
    verdict = check(run(load_config(CI_SWEEP), 38).history.events)
    assert verdict.ok, verdict.violations


def test_a_tiny_positive_delay_still_moves_time_forward() -> None:
    # A read-deadline loop computed "time left" as timeout - (now - last_read),
    # which came out as 4.4e-16 at a time a float cannot add that to: the timer
    # landed on the same instant forever (found by the partitioned-consumer
    # scenario, seed 1).  A positive delay must always mean later.
    env = simpy.Environment()
    clock = SimClock(env)
    last_read, timeout = 1.3699, 3.0
    fired: list[float] = []

    def check_deadline() -> None:
        left = timeout - (clock.now() - last_read)
        if left > 0:
            clock.call_later(left, check_deadline)
        else:
            fired.append(clock.now())

    clock.call_later(last_read + timeout, check_deadline)
    assert 4.3698999999999995 + (timeout - (4.3698999999999995 - last_read)) == 4.3698999999999995
    env.run(until=10.0)
    assert len(fired) == 1 and fired[0] > 4.3698999999999995


def test_disk_only_channel_replaying_requeued_copies_after_a_restart() -> None:
    # Found by the sweep (fixed in broker/nsqd/channel.py): with
    # --mem-queue-size=0 a deferred REQ appends the message to the channel's disk
    # queue again, and after a restart the queue replays from the oldest
    # unfinished record, which still covers the earlier one: two copies of one
    # id went in flight, a FIN finished one and the timer raised KeyError on the
    # other.  Now a second record of a held message is let go.
    # Replay: nsqsim run --config examples/ci-sweep-disk-only.toml --seed 27
    verdict = check(run(load_config(DISK_ONLY), 27).history.events)
    assert verdict.ok, verdict.violations


@pytest.mark.parametrize("seed", [1, 19])
def test_disk_only_crash_forgets_message_state_not_messages(seed: int) -> None:
    # Found by the notebooks' sweeps: a REQ with a delay in a disk-only channel
    # wrote the message again, so after a kill the replay met older generations
    # of it (delivered "early", attempts going back, again after a FIN). Now a
    # message has one record and a crash forgets only its state in memory (seed
    # 1). Seed 19: a delivery sent before a crash and received just after it,
    # then the new life's delivery with attempts reset, is one life apart, not a
    # violation.
    verdict = check(run(load_config(DISK_ONLY), seed).history.events)
    assert verdict.ok, verdict.violations


def test_a_long_nsqd_outage_under_load_keeps_the_producers_pause_finite() -> None:
    # Found when the workloads moved onto broker/client (reference cluster, seed 1):
    # each publish while its nsqd is down starts a connect round, every round is
    # refused, and ProducerCore's pause, reconnect_delay * 2**(rounds - 1), raised
    # OverflowError out of connection_lost past ~1,000 rounds.  Fixed in
    # broker/client (the doubling is bounded).
    # Replay: nsqsim run --config examples/reference-cluster.toml --seed 1
    table = {
        "name": "outage",
        "duration": 6.0,
        "drain": 5.0,
        "nsqd": {"count": 1},
        "lookupd": {"count": 0},
        "producers": [{"name": "p", "count": 1, "rate": 1000.0, "nsqd": ["nsqd-0"]}],
        "consumers": [{"name": "c", "count": 1, "discovery": "direct"}],
        "faults": {"schedule": [{"at": 1.5, "kind": "crash", "target": "nsqd-0", "duration": 4.0}]},
    }
    events = run(parse_config(table), 1).history.events
    verdict = check(events)
    assert verdict.ok, verdict.violations
    refused = [e for e in events if e["type"] == "publish_failed" and "Connection refused" in e["error"]]
    assert len(refused) > 2000


def test_a_delivery_held_at_a_partition_may_arrive_after_its_redelivery() -> None:
    # Found by sweeping the reference cluster (seed 6): nsqd sent a message to
    # index-1 just before a black-hole partition cut them apart; it timed the
    # message out and redelivered it (attempts 2) to index-0, and when the
    # partition healed the held first delivery (attempts 1) reached index-1.
    # Arrival order shows attempts 2 then 1; the checker called that a
    # violation.  Here: c-0's link to nsqd is cut for 3 s, longer than the 2 s
    # message timeout and shorter than either side's read deadline.
    # Replay: nsqsim run --config examples/reference-cluster.toml --seed 6
    table = {
        "name": "held",
        "duration": 6.0,
        "drain": 8.0,
        "nsqd": {"count": 1, "options": {"msg_timeout": "2s"}},
        "lookupd": {"count": 0},
        "producers": [{"name": "p", "count": 1, "rate": 50.0, "nsqd": ["nsqd-0"]}],
        "consumers": [
            {"name": "c", "count": 2, "discovery": "direct", "max_in_flight": 20, "heartbeat_interval": 2.0, "handler_time": 0.05}
        ],
        "faults": {"schedule": [{"at": 3.0, "kind": "partition_node", "target": "c-0", "duration": 3.0}]},
    }
    events = run(parse_config(table), 1).history.events
    deliveries: dict[str, list[tuple[str, int]]] = {}
    for e in events:
        if e["type"] == "deliver":
            deliveries.setdefault(e["key"], []).append((e["consumer"], e["attempts"]))
    reversed_ = [d for d in deliveries.values() if any(a > b for (_, a), (_, b) in pairwise(d))]
    assert reversed_, "no held delivery arrived after its redelivery: the scenario no longer reproduces"
    verdict = check(events)
    assert verdict.ok, verdict.violations
    assert verdict.duplicates.get("timeout", 0) >= len(reversed_)
