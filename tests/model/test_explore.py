"""The explorer: every guarantee holds on the default bounds, and a seeded bug is caught."""

from __future__ import annotations

from dataclasses import replace

import pytest

from model.explore import DEFAULT_CONFIGS, canonical, explore, main
from model.invariants import check_state, check_step
from model.spec import BUGS, enabled, initial, step
from model.state import Action, Config, Mode


def test_the_default_bounds_hold_every_guarantee() -> None:
    lines: list[str] = []
    assert main([], report=lines.append) == 0, "\n".join(lines)
    per_config = {line.split(":")[0]: int(line.split()[2]) for line in lines[:-1]}
    assert set(per_config) == set(DEFAULT_CONFIGS)
    assert all(n > 1000 for n in per_config.values()), per_config
    assert lines[-1] == f"states: {sum(per_config.values())}"


@pytest.mark.parametrize(
    ("config", "bug", "invariant"),
    [
        ("default", "timeout_drops", "every_message_accounted_for"),
        ("disk-only", "crash_loses_in_flight", "crash_loses_only_what_the_mode_allows"),
        ("durable-publish", "crash_loses_in_flight", "crash_loses_only_what_the_mode_allows"),
        ("default", "no_reread_dedup", "at_most_one_holder"),
        ("restart-default", "lost_wakeup", "eventually_delivered"),
    ],
)
def test_a_seeded_bug_is_caught_with_a_trace_that_replays(config: str, bug: str, invariant: str) -> None:
    cfg = replace(DEFAULT_CONFIGS[config], bugs=frozenset({bug}))
    res = explore(cfg)
    assert res.violation is not None
    assert res.violation.invariant == invariant
    # The trace is a path of the specification: each step is enabled where it is taken.
    s = canonical(cfg, initial(cfg))
    for a, t in res.violation.trace:
        assert a in enabled(cfg, s)
        after = step(cfg, s, a)
        assert canonical(cfg, after) == t
        last = (s, a, after)
        s = t
    if invariant != "eventually_delivered":
        before, a, after = last
        broken = check_step(cfg, before, a, after) or check_state(cfg, canonical(cfg, after))
        assert broken is not None and broken[0] == invariant
    assert res.violation.render(cfg).startswith(f"VIOLATION of {invariant}")


def test_every_seeded_bug_is_covered() -> None:
    assert {"timeout_drops", "crash_loses_in_flight", "no_reread_dedup", "lost_wakeup"} == BUGS


def test_the_search_can_be_bounded() -> None:
    res = explore(DEFAULT_CONFIGS["default"], max_states=500)
    assert not res.complete and not res.ok
    assert res.violation is None


def test_interchangeable_consumers_are_one_state() -> None:
    cfg = Config(Mode.DEFAULT, channels=("a",), consumers=(0, 0))
    s = initial(cfg)
    for a in [Action("subscribe", 0), Action("subscribe", 1), Action("publish", 0)]:
        s = step(cfg, s, a)
    to_k0 = step(cfg, s, Action("deliver", 0, 0))
    to_k1 = step(cfg, s, Action("deliver", 0, 1))
    assert to_k0 != to_k1
    assert canonical(cfg, to_k0) == canonical(cfg, to_k1)


def test_a_process_kill_keeps_unsynced_records_and_a_power_loss_may_not() -> None:
    cfg = Config(Mode.DISK_ONLY, channels=("a",), consumers=(0,))
    s = initial(cfg)
    for a in [Action("subscribe", 0), Action("publish", 0)]:
        s = step(cfg, s, a)
    s = step(cfg, s, Action("deliver", 0, 0))  # in flight, its record held
    crashes = [a for a in enabled(cfg, s) if a.kind == "crash"]
    assert Action("crash", 0) in crashes
    assert {a.keep for a in crashes if a.a == 1} == {(0, 0), (0, 1)}  # the unsynced record: gone or kept
    killed = step(cfg, s, Action("crash", 0))
    assert [r.msg for r in killed.channels[0].log.unread] == [0]
    lost = step(cfg, s, Action("crash", 1, keep=(0, 0)))
    assert lost.channels[0].log.unread == ()
    assert lost.ghost.lost[0] == "crash"
    assert check_step(cfg, s, Action("crash", 1, keep=(0, 0)), lost) is None  # allowed: never fsynced
