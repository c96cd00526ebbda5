"""nsqsim.analysis: grids and overrides, the figures of a history (against the checkers), sweeps, plots, replays."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.figure import Figure

from nsqsim import analysis as an
from nsqsim.analysis.__main__ import main as analysis_main
from nsqsim.checkers import Verdict, check
from nsqsim.cli import run_one
from nsqsim.history import Event, load
from nsqsim.summary import percentile

ROOT = Path(__file__).resolve().parents[2]
CI_SWEEP = ROOT / "examples" / "ci-sweep.toml"
DISK_ONLY = ROOT / "examples" / "ci-sweep-disk-only.toml"


def ev(t: float, type: str, **fields: Any) -> Event:
    return {"t": t, "type": type, **fields}


def _pub(t: float, key: str, **fields: Any) -> Event:
    return ev(t, "publish", key=key, producer="p-0", nsqd="nsqd-0", topic="t", defer_ms=0, **fields)


def _deliver(t: float, key: str, attempts: int = 1) -> Event:
    return ev(t, "deliver", key=key, consumer="c-0", nsqd="nsqd-0", topic="t", channel="ch", id=f"id-{key}", attempts=attempts)


# A small history with one message of each outcome on channel ch:
#   d published before the topic had a channel: owed to its first one (ch), delivered;
#   a delivered once; b delivered twice (its first delivery held, then timed out);
#   c never acknowledged;
#   e acknowledged, then the node lost power before delivering it (default mode: allowed);
#   f acknowledged after the restart, while no consumer was subscribed: ch is in
#     nsqd.dat, so it outlived the crash and f was owed, and never came (a violation);
#   g acknowledged and still queued at the end.
# An operator then creates channel late, which none of them was owed.
NODES = {"nsqd-0": {"mem_queue_size": 10000, "durable_publish": False, "sync_every": 2500, "persistent": True}}
HISTORY: list[Event] = [
    ev(0.0, "run", seed=1, config="hand", config_digest="x", nodes=NODES, faults=[]),
    _pub(0.2, "d"),
    ev(0.21, "publish_ok", producer="p-0", key="d"),
    ev(0.5, "subscribed", consumer="c-0", nsqd="nsqd-0", topic="t", channel="ch"),
    _deliver(0.6, "d"),
    ev(0.61, "fin", consumer="c-0", nsqd="nsqd-0", channel="ch", key="d", id="id-d"),
    _pub(1.0, "a"),
    ev(1.01, "publish_ok", producer="p-0", key="a"),
    _deliver(1.1, "a"),
    ev(1.11, "fin", consumer="c-0", nsqd="nsqd-0", channel="ch", key="a", id="id-a"),
    _pub(1.2, "b"),
    ev(1.21, "publish_ok", producer="p-0", key="b"),
    _deliver(1.3, "b"),
    ev(1.31, "hold", consumer="c-0", nsqd="nsqd-0", channel="ch", key="b", id="id-b"),
    _pub(1.4, "c"),
    ev(1.45, "publish_failed", producer="p-0", key="c", error="E_PUB_FAILED"),
    _pub(2.0, "e"),
    ev(2.01, "publish_ok", producer="p-0", key="e"),
    _deliver(2.3, "b", attempts=2),
    ev(2.31, "fin", consumer="c-0", nsqd="nsqd-0", channel="ch", key="b", id="id-b"),
    ev(2.5, "crash", host="nsqd-0"),
    ev(3.0, "start", host="nsqd-0"),
    _pub(3.2, "f"),
    ev(3.21, "publish_ok", producer="p-0", key="f"),
    ev(3.5, "subscribed", consumer="c-0", nsqd="nsqd-0", topic="t", channel="ch"),
    _pub(3.6, "g"),
    ev(3.61, "publish_ok", producer="p-0", key="g"),
    ev(3.7, "channel_created", nsqd="nsqd-0", topic="t", channel="late"),
    ev(9.0, "load_end"),
    ev(10.0, "final", host="nsqd-0", topic="t", channel="ch", depth=1, in_flight=0, deferred=0, timeouts=1, requeues=0, messages=3),
    ev(10.0, "final", host="nsqd-0", topic="t", channel="late", depth=0, in_flight=0, deferred=0, timeouts=0, requeues=0, messages=0),
    ev(10.0, "end"),
]


# -- overrides and grids --------------------------------------------------------------------


def test_with_overrides_sets_dotted_paths_and_leaves_the_base_alone() -> None:
    base = {"nsqd": {"count": 2, "options": {"msg_timeout": "3s"}}, "consumers": [{"name": "c"}, {"name": "audit"}]}
    out = an.with_overrides(
        base,
        {"nsqd.options.mem_queue_size": 0, "consumers.1.behaviour": {"finish": 1.0}, "faults": {"enabled": False}, "network.latency": 0.01},
    )
    assert out["nsqd"] == {"count": 2, "options": {"msg_timeout": "3s", "mem_queue_size": 0}}
    assert out["consumers"] == [{"name": "c"}, {"name": "audit", "behaviour": {"finish": 1.0}}]
    assert out["faults"] == {"enabled": False}
    assert out["network"] == {"latency": 0.01}
    assert base == {"nsqd": {"count": 2, "options": {"msg_timeout": "3s"}}, "consumers": [{"name": "c"}, {"name": "audit"}]}


def test_an_override_of_a_table_replaces_it_whole() -> None:
    out = an.with_overrides({"faults": {"enabled": True, "start": 1.0}}, {"faults": {"enabled": False}})
    assert out["faults"] == {"enabled": False}


def test_grid_is_the_product_of_its_axes_first_axis_slowest() -> None:
    points = an.grid(mode={"a": {"x": 1}, "b": {"x": 2}}, rate={0: {"y": 0}, 5: {"y": 5, "x": 9}})
    assert [p.params for p in points] == [
        {"mode": "a", "rate": 0},
        {"mode": "a", "rate": 5},
        {"mode": "b", "rate": 0},
        {"mode": "b", "rate": 5},
    ]
    assert [p.overrides for p in points] == [{"x": 1, "y": 0}, {"x": 9, "y": 5}, {"x": 2, "y": 0}, {"x": 9, "y": 5}]


def test_fault_overrides_draw_one_kind_at_the_mean_rate() -> None:
    faults = an.crash_faults(12, "kill")["faults"]
    assert isinstance(faults, dict)
    assert faults["enabled"] is True and faults["mean_interval"] == 5.0 and faults["weights"] == {"kill": 1.0}
    off = an.stall_faults(0)["faults"]
    assert isinstance(off, dict) and off["enabled"] is False and off["weights"] == {"consumer_stall": 1.0}


def test_seeds_text() -> None:
    assert an.seeds_text([1, 2, 3, 4]) == "1..4"
    assert an.seeds_text([1, 2]) == "1, 2"
    assert an.seeds_text([3, 7, 9]) == "3, 7, 9"


# -- the figures of a history ------------------------------------------------------------------


def test_message_outcomes_are_the_checkers_judgements() -> None:
    o = an.message_outcomes(an.history_frame(HISTORY))
    ch = o[o["channel"] == "ch"].set_index("key")
    assert list(ch.index) == ["d", "a", "b", "c", "e", "f", "g"]  # in the order sent
    assert dict(ch["outcome"]) == {
        "d": "delivered",
        "a": "delivered",
        "b": "duplicated",
        "c": "unacknowledged",
        "e": "lost",
        "f": "lost",
        "g": "pending",
    }
    assert list(ch.index[ch["expected"]]) == ["d", "a", "b", "e", "f", "g"]
    assert list(ch.index[~ch["allowed"]]) == ["f"]
    assert (ch.loc["e", "rule"], ch.loc["f", "rule"]) == ("memory_at_crash", "lost")
    assert ch.loc["b", "deliveries"] == 2 and ch.loc["b", "causes"] == "timeout"
    assert ch.loc["a", "latency"] == pytest.approx(0.1)
    assert math.isnan(ch.loc["e", "latency"])
    late = o[o["channel"] == "late"].set_index("key")
    assert dict(late["outcome"]) == {**dict.fromkeys("dabefg", "not_expected"), "c": "unacknowledged"}
    assert not late["expected"].any() and late["allowed"].all()


def test_message_outcomes_take_a_verdict_given_and_read_a_history_file_alike(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in HISTORY))
    o = an.message_outcomes(an.history_frame(HISTORY))
    assert o.equals(an.message_outcomes(an.history_frame(HISTORY), check(HISTORY)))
    assert o.equals(an.message_outcomes(load(str(path))))


def test_history_events_give_back_what_the_recorder_wrote() -> None:
    history = [
        ev(0.0, "deliver", consumer="c-0", nsqd="n", topic="t", channel="ch", key="k", id="i", attempts=3),
        ev(1.0, "req", consumer="c-0", nsqd="n", channel="ch", key="k", delay_ms=250),
        ev(2.0, "disk_fault", host="n", fault="bitflip", where=None),  # no file to flip
        ev(3.0, "end"),
    ]
    back = an.history_events(an.history_frame(history))
    assert back == history
    assert [type(e["attempts"]) for e in back if "attempts" in e] == [int]


def test_run_figures_of_a_history() -> None:
    fig = an.run_figures(an.history_frame(HISTORY))
    counts = ("published", "acknowledged", "expected", "unique_delivered", "duplicates", "lost", "lost_allowed", "pending")
    assert {k: fig[k] for k in counts} == {
        "published": 7,
        "acknowledged": 6,
        "expected": 6,
        "unique_delivered": 3,
        "duplicates": 1,
        "lost": 2,
        "lost_allowed": 1,
        "pending": 1,
    }
    assert fig["loss_rate"] == pytest.approx(2 / 6)
    assert fig["duplicate_rate"] == pytest.approx(1 / 3)
    assert fig["latency_p50_ms"] == pytest.approx(100.0)


def test_the_figures_of_a_history_are_the_checkers_counts() -> None:
    v = check(HISTORY)
    fig = an.run_figures(an.history_frame(HISTORY))
    assert (fig["expected"], fig["lost_allowed"], fig["pending"]) == (v.expected, sum(v.lost_allowed.values()), v.pending)
    assert fig["lost"] - fig["lost_allowed"] == v.violation_counts()["lost"]
    assert v.lost_allowed == {"memory_at_crash": 1} and v.duplicates == {"timeout": 1}


def test_an_empty_history_has_no_outcomes_and_nan_rates() -> None:
    df = an.history_frame([ev(0.0, "run", nodes={}), ev(1.0, "end")])
    assert an.message_outcomes(df).empty
    fig = an.run_figures(df)
    assert fig["expected"] == 0 and math.isnan(fig["loss_rate"]) and math.isnan(fig["latency_p99_ms"])


@pytest.mark.parametrize(
    "values",
    [[0.005], [0.3, 0.1, 0.2], [float(i) / 1000 for i in range(1, 101)], [0.001, 0.001, 0.5, 0.002, 0.25, 0.003, 0.004]],
)
def test_latency_percentiles_are_nearest_rank_as_the_summary_has_them(values: list[float]) -> None:
    got = an.latency_percentiles(values, (50, 90, 99, 100))
    for q in (50, 90, 99, 100):
        expected = percentile(values, q)
        assert expected is not None
        assert got[f"p{q}"] == pytest.approx(expected * 1000)


DISK_FAULTS = {
    "faults": {
        "enabled": True,
        "start": 1.0,
        "mean_interval": 1.5,
        "duration": {"kind": "uniform", "low": 0.5, "high": 2.0},
        "max_concurrent": 2,
        "weights": {"disk": 3.0, "kill": 1.0},
    }
}


@pytest.mark.parametrize(
    ("config", "seed", "overrides"),
    [
        (CI_SWEEP, 1, {}),
        (CI_SWEEP, 5, {}),
        (CI_SWEEP, 2, an.crash_faults(24, "crash")),
        (CI_SWEEP, 3, {**an.crash_faults(24, "kill"), "nsqd.options.mem_queue_size": 0}),
        (DISK_ONLY, 3, {}),
        (CI_SWEEP, 4, DISK_FAULTS),  # bits flipped in nsqd.dat: channels forgotten, records lost
    ],
)
def test_figures_of_real_runs_agree_with_the_checkers(config: Path, seed: int, overrides: dict[str, object]) -> None:
    rp = an.replay(config, seed, overrides=overrides)
    v = rp.verdict
    fig = an.run_figures(rp.frame)
    # Checked again from the DataFrame, the history judges as it did from the recorder's events.
    assert an.message_outcomes(rp.frame).equals(an.message_outcomes(rp.frame, v))
    assert fig["expected"] == v.expected
    assert fig["lost_allowed"] == sum(v.lost_allowed.values())
    assert fig["lost"] == fig["lost_allowed"] + v.violation_counts().get("lost", 0)
    assert fig["pending"] == v.pending
    assert fig["duplicates"] == sum(v.duplicates.values())
    assert fig["unique_delivered"] == v.unique_delivered
    p99 = percentile(v.latencies, 99)
    assert p99 is not None and fig["latency_p99_ms"] == pytest.approx(p99 * 1000)


def test_rediscovery_time_is_the_longest_wait_after_the_heal() -> None:
    base = [
        ev(1.0, "subscribed", consumer="c-0", nsqd="nsqd-1", topic="t", channel="ch"),
        ev(1.0, "subscribed", consumer="c-1", nsqd="nsqd-1", topic="t", channel="ch"),
        ev(5.0, "partition", kind="partition_lookupd", side_a=["lookupd-0"], side_b=["c-0", "c-1", "nsqd-1", "p-0"]),
        ev(5.5, "disconnected", who="c-0", nsqd="nsqd-1", error="EOF"),
        ev(5.5, "disconnected", who="p-0", nsqd="nsqd-1", error="EOF"),  # a producer: no discovery involved
        ev(5.6, "disconnected", who="c-1", nsqd="nsqd-1", error="EOF"),
        ev(9.0, "heal", kind="partition_lookupd", side_a=["lookupd-0"], side_b=["c-0", "c-1", "nsqd-1", "p-0"]),
        ev(10.0, "subscribed", consumer="c-0", nsqd="nsqd-1", topic="t", channel="ch"),
    ]
    assert an.rediscovery_time(an.history_frame([*base, ev(12.5, "subscribed", consumer="c-1", nsqd="nsqd-1", topic="t", channel="ch")])) == {
        "rediscovery_s": pytest.approx(3.5)
    }
    assert an.rediscovery_time(an.history_frame(base)) == {"rediscovery_s": math.inf}  # c-1 never came back
    assert math.isnan(an.rediscovery_time(an.history_frame(base[:2]))["rediscovery_s"])  # no partition


# -- sweeps --------------------------------------------------------------------------------------

SHORT = {"duration": 2.0, "drain": 6.0}


def test_sweep_gives_one_row_per_point_and_seed_in_grid_order() -> None:
    points = an.grid(mode={"default": {}, "disk-only": {"nsqd.options.mem_queue_size": 0}}, stalls={0: {}, 30: an.stall_faults(30)})
    s = an.sweep(CI_SWEEP, points, [1, 2], overrides=SHORT)
    assert list(zip(s.runs["mode"], s.runs["stalls"], s.runs["seed"], s.runs["point"], strict=True)) == [
        (m, r, seed, i) for i, (m, r) in enumerate([("default", 0), ("default", 30), ("disk-only", 0), ("disk-only", 30)]) for seed in (1, 2)
    ]
    assert (s.runs["published"] > 0).all() and (s.runs["expected"] > 0).all()
    assert s.axes == ("mode", "stalls") and s.seeds == (1, 2)
    assert s.overrides_of(7) == {**SHORT, "nsqd.options.mem_queue_size": 0, **an.stall_faults(30)}
    caption = s.caption()
    assert "ci-sweep.toml" in caption and "varied: mode, stalls" in caption and "seeds 1, 2" in caption


def test_a_sweep_row_replays_to_the_same_figures() -> None:
    s = an.sweep(CI_SWEEP, an.grid(rate={12: an.crash_faults(12)}), [4], overrides=SHORT)
    rp = an.replay(CI_SWEEP, 4, overrides=s.overrides_of(0))
    again = an.run_figures(rp.frame)
    assert {k: again[k] for k in ("published", "expected", "lost", "duplicates")} == {
        k: s.runs[k].iloc[0] for k in ("published", "expected", "lost", "duplicates")
    }


def test_a_sweep_over_processes_gives_the_same_rows() -> None:
    points = an.grid(timeout={1: {"nsqd.options.msg_timeout": "1s"}, 5: {"nsqd.options.msg_timeout": "5s"}})
    one = an.sweep(CI_SWEEP, points, [1, 2], overrides=SHORT, measure=an.rediscovery_time).runs.drop(columns="wall_seconds")
    two = an.sweep(CI_SWEEP, points, [1, 2], overrides=SHORT, measure=an.rediscovery_time, jobs=2).runs.drop(columns="wall_seconds")
    assert one.equals(two)
    assert "rediscovery_s" in one.columns


# -- plots ------------------------------------------------------------------------------------------


def _texts(fig: Figure) -> str:
    return " ".join(t.get_text() for t in fig.texts)


def _loss_sweep() -> an.Sweep:
    return an.loss_sweep(CI_SWEEP, [0, 30], [1], duration=2.0)


def test_plot_loss_has_a_panel_per_kind_of_stop_and_a_line_per_mode() -> None:
    s = _loss_sweep()
    fig = an.plot_loss(s)
    panels = fig.get_axes()
    assert [ax.get_title() for ax in panels] == ["kill -9 (the OS keeps what was written)", "power loss (only fsynced bytes survive)"]
    for ax in panels:
        legend = ax.get_legend()
        assert legend is not None and [t.get_text() for t in legend.get_texts()] == list(an.DURABILITY_MODES)
    assert "ci-sweep.toml" in _texts(fig) and "seeds 1" in _texts(fig)


def test_plot_rate_draws_the_mean_over_seeds_with_the_caption() -> None:
    s = an.sweep(CI_SWEEP, an.grid(timeout={1: {"nsqd.options.msg_timeout": "1s"}, 5: {"nsqd.options.msg_timeout": "5s"}}), [1, 2], overrides=SHORT)
    ax = an.plot_rate(s, "timeout", "duplicate_rate")
    (line,) = ax.get_lines()
    assert np.asarray(line.get_xdata()).tolist() == [1, 5]
    assert np.asarray(line.get_ydata()).tolist() == pytest.approx(list(s.runs.groupby("timeout")["duplicate_rate"].mean()))
    fig = ax.get_figure(root=True)
    assert isinstance(fig, Figure) and "seeds 1, 2" in _texts(fig)


def test_plot_percentiles_draws_one_line_per_percentile_and_hue() -> None:
    s = an.sweep(CI_SWEEP, an.grid(flight={2: {"consumers.0.max_in_flight": 2}, 8: {}}, delay={1: {"network.latency": 0.001}}), [1], overrides=SHORT)
    ax = an.plot_percentiles(s, "delay", "flight")
    assert [ln.get_label() for ln in ax.get_lines()] == ["2, p50", "2, p90", "2, p99", "8, p50", "8, p90", "8, p99"]


def test_plot_loss_command_writes_a_png(tmp_path: Path) -> None:
    out = tmp_path / "loss.png"
    code = analysis_main(["plot-loss", str(out), "--config", str(CI_SWEEP), "--seeds", "1", "--rates", "0,30", "--duration", "2", "--jobs", "1"])
    assert code == 0
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


# -- replays and one message --------------------------------------------------------------------------

STALL: dict[str, Any] = {
    "name": "stall",
    "duration": 8.0,
    "drain": 12.0,
    "warmup": 1.0,
    "nsqd": {"count": 1, "options": {"msg_timeout": "2s"}},
    "lookupd": {"count": 0},
    "producers": [{"name": "p", "count": 1, "rate": 20.0, "nsqd": ["nsqd-0"]}],
    "consumers": [{"name": "c", "channel": "work", "count": 2, "max_in_flight": 4, "discovery": "direct", "heartbeat_interval": 1.0}],
    "faults": {"schedule": [{"at": 4.0, "kind": "consumer_stall", "target": "c-0", "duration": 5.0}]},
}


@pytest.fixture(scope="module")
def stalled() -> an.Replay:
    return an.replay(STALL, 1)


def test_replay_of_a_file_is_the_run_the_cli_makes(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    rp = an.replay(CI_SWEEP, 3, history_path=path)
    assert rp.result.history.digest() == run_one(str(CI_SWEEP), 3, None)["history_digest"]
    assert len(rp.frame) == len(rp.events) and list(rp.frame["type"][:1]) == ["run"]  # read back from the file


def test_replay_applies_the_faults_override() -> None:
    rp = an.replay(CI_SWEEP, 3, faults="off")
    assert rp.result.schedule == [] and not rp.frame["type"].isin(["crash", "kill", "partition"]).any()


def test_msg_timeout_is_the_consumers_or_nsqds() -> None:
    rp = an.replay(an.with_overrides(STALL, {"consumers.0.msg_timeout": 3.5, "duration": 1.0, "faults": {}}), 1)
    assert rp.msg_timeout("nsqd-0", "c-1") == 3.5
    rp = an.replay(an.with_overrides(STALL, {"duration": 1.0, "faults": {}}), 1)
    assert rp.msg_timeout("nsqd-0", "c-1") == 2.0


def test_inferred_timeouts_are_the_duplicates_the_checkers_blame_on_timeouts(stalled: an.Replay) -> None:
    o = an.message_outcomes(stalled.frame)
    redelivered = list(o.loc[o["outcome"] == "duplicated", "key"])
    assert redelivered, "the stall made no message time out"
    for key in redelivered:
        events = an.message_events(stalled, key)
        timeouts = events[events["event"] == "timeout"]
        assert len(timeouts) == an.message_verdict(stalled.events, key).duplicates.get("timeout", 0)
        deliveries = list(events.loc[events["event"] == "deliver", "t"])
        for t in timeouts["t"]:
            assert any(d < t for d in deliveries) and any(d >= t for d in deliveries)  # between two deliveries


def test_message_events_put_each_event_on_its_actors_lane(stalled: an.Replay) -> None:
    o = an.message_outcomes(stalled.frame)
    key = o.loc[o["outcome"] == "duplicated", "key"].iloc[0]
    events = an.message_events(stalled, key)
    lanes = {e: set(events.loc[events["event"] == e, "lane"]) for e in ("publish", "publish_ok", "deliver", "consumer_stall")}
    assert lanes["publish"] == lanes["publish_ok"] == {"p-0"}
    assert lanes["deliver"] <= {"c-0", "c-1"}
    assert lanes["consumer_stall"] == {"c-0"}
    assert list(events["t"]) == sorted(events["t"])
    with pytest.raises(KeyError):
        an.message_events(stalled, "nobody:1")


def test_message_verdict_judges_one_message() -> None:
    # Without the crash, nothing allows e's loss (nor, without the final stats, is anything left queued).
    lost = [e for e in HISTORY if e["type"] not in ("crash", "final")]
    assert an.message_verdict(lost, "e").violations == [
        "lost: e acknowledged by nsqd-0 at 2.010000, never delivered to channel ch"
    ]
    assert an.message_verdict(lost, "a").ok
    assert an.message_verdict(HISTORY, "b").duplicates == {"timeout": 1}


def test_pick_message_prefers_a_violation_then_the_most_delivered(stalled: an.Replay) -> None:
    named = replace(stalled, verdict=Verdict(violations=["redelivered_after_fin: p-0:7 on nsqd-0/work: FIN at 1.0 accepted"]))
    assert an.pick_message(named) == "p-0:7"
    o = an.message_outcomes(stalled.frame)
    picked = an.pick_message(stalled)
    assert o.loc[o["key"] == picked, "deliveries"].sum() == o.groupby("key")["deliveries"].sum().max()


def test_pick_message_prefers_a_lost_message() -> None:
    crash = an.with_overrides(STALL, {"faults": {"schedule": [{"at": 4.0, "kind": "crash", "target": "nsqd-0", "duration": 1.0}]}})
    rp = an.replay(crash, 1)
    o = an.message_outcomes(rp.frame)
    assert (o["outcome"] == "lost").any(), "the crash lost nothing"
    assert o.loc[o["key"] == an.pick_message(rp), "outcome"].iloc[0] == "lost"


def test_the_timeline_has_a_lane_per_actor_and_says_what_produced_it(stalled: an.Replay) -> None:
    o = an.message_outcomes(stalled.frame)
    key = o.loc[o["outcome"] == "duplicated", "key"].iloc[0]
    fig = an.plot_message_timeline(stalled, key)
    ax = fig.get_axes()[0]
    lanes = [t.get_text() for t in ax.get_yticklabels()]
    assert lanes[:2] == ["p-0", "nsqd-0"] and set(lanes[2:]) <= {"c-0", "c-1"}
    assert key in ax.get_title() and "timeout" in ax.get_title()
    assert "seed 1" in _texts(fig) and "stall" in _texts(fig)
