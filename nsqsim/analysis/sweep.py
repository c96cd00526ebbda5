"""Sweeps: one base configuration run at every point of a grid and every seed, one row of figures per run.

A grid point is a set of *overrides*: dotted paths into the configuration's
TOML table (``"nsqd.options.msg_timeout"``, ``"consumers.0.behaviour"``) and
the value to put there, so a sweep varies exactly what it names and the rest
of each run is the base file.  Each axis of a grid maps the value that goes in
the results' column (a crash rate, a mode's name) to its overrides.

Runs are independent and deterministic, so they spread over processes
(``jobs``); the rows come back in grid order whatever the order they finish.
"""

from __future__ import annotations

import itertools
import json
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped,unused-ignore]

from nsqsim.analysis.figures import DataFrame, history_frame, run_figures
from nsqsim.checkers import check
from nsqsim.cluster import run as run_cluster
from nsqsim.config import parse_config

__all__ = [
    "DURABILITY_MODES",
    "Measure",
    "Point",
    "Sweep",
    "crash_faults",
    "grid",
    "loss_sweep",
    "read_table",
    "seeds_text",
    "stall_faults",
    "sweep",
    "with_overrides",
]

Table = dict[str, Any]
Measure = Callable[[DataFrame], Mapping[str, float]]

# The durability modes of the README's table, as nsqd options.
DURABILITY_MODES: Mapping[str, Mapping[str, object]] = {
    "default (--mem-queue-size=10000)": {"nsqd.options.mem_queue_size": 10000},
    "disk-only (--mem-queue-size=0)": {"nsqd.options.mem_queue_size": 0},
    "--durable-publish": {"nsqd.options.durable_publish": True},
}


# -- configurations and grids -----------------------------------------------------------


def read_table(path: str | Path) -> Table:
    """A configuration file as a plain TOML table, to be overridden and parsed."""
    with open(path, "rb") as f:
        return tomllib.load(f)


def with_overrides(table: Mapping[str, Any], overrides: Mapping[str, object]) -> Table:
    """A copy of ``table`` with each dotted path set to its value (a whole subtable when the value is one).

    A number in a path indexes an array of tables: ``"consumers.0.behaviour"``.
    """
    out: Table = json.loads(json.dumps(table))
    for path, value in overrides.items():
        node: Any = out
        *parents, leaf = path.split(".")
        for name in parents:
            if isinstance(node, list):
                node = node[int(name)]
                continue
            child = node.get(name)
            if not isinstance(child, dict | list):
                child = node[name] = {}
            node = child
        copied = json.loads(json.dumps(value))
        if isinstance(node, list):
            node[int(leaf)] = copied
        else:
            node[leaf] = copied
    return out


@dataclass(frozen=True)
class Point:
    """One point of a grid: the values of the axes (result columns) and the overrides they mean."""

    params: Mapping[str, object]
    overrides: Mapping[str, object]


def grid(**axes: Mapping[Any, Mapping[str, object]]) -> list[Point]:
    """The cartesian product of the axes, first axis slowest."""
    points = []
    for combo in itertools.product(*(list(a.items()) for a in axes.values())):
        params = {name: value for name, (value, _) in zip(axes, combo, strict=True)}
        overrides: dict[str, object] = {}
        for _, over in combo:
            overrides.update(over)
        points.append(Point(params, overrides))
    return points


def crash_faults(per_minute: float, kind: str = "crash", down: tuple[float, float] = (0.5, 2.0)) -> dict[str, object]:
    """Overrides drawing nsqd stops of ``kind`` (crash, kill, restart) at a mean rate, each down for ``down`` seconds."""
    return _random_faults(kind, per_minute, down)


def stall_faults(per_minute: float, stalled: tuple[float, float] = (0.5, 6.0)) -> dict[str, object]:
    """Overrides drawing consumer stalls at a mean rate, each lasting ``stalled`` seconds."""
    return _random_faults("consumer_stall", per_minute, stalled)


def _random_faults(kind: str, per_minute: float, lasting: tuple[float, float]) -> dict[str, object]:
    return {
        "faults": {
            "enabled": per_minute > 0,
            "start": 1.0,
            "mean_interval": 60.0 / per_minute if per_minute > 0 else 60.0,
            "duration": {"kind": "uniform", "low": lasting[0], "high": lasting[1]},
            "max_concurrent": 2,
            "weights": {kind: 1.0},
        }
    }


# -- sweeps ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sweep:
    """The rows of a sweep, one per (point, seed), and what produced them."""

    runs: DataFrame  # the axes' values, seed, point (its index in points), then the figures
    base: str
    seeds: tuple[int, ...]
    axes: tuple[str, ...]
    overrides: Mapping[str, object] = field(default_factory=dict)
    points: tuple[Point, ...] = ()

    def overrides_of(self, row: int) -> dict[str, object]:
        """Everything a run of row ``row`` changed in the base: what ``replay`` needs, with its seed, to run it again."""
        return {**self.overrides, **self.points[int(self.runs["point"].iloc[row])].overrides}

    def caption(self) -> str:
        common = ", ".join(f"{k}={_compact(v)}" for k, v in self.overrides.items())
        return (
            f"config {self.base}" + (f" with {common}" if common else "")
            + f"; varied: {', '.join(self.axes)}; seeds {seeds_text(self.seeds)}"
        )


def sweep(
    base: str | Path | Mapping[str, Any],
    points: Sequence[Point],
    seeds: Iterable[int],
    *,
    overrides: Mapping[str, object] | None = None,
    measure: Measure | None = None,
    jobs: int = 1,
) -> Sweep:
    """Run every point of ``points`` with every seed, on ``jobs`` processes.

    ``base`` is a configuration file or table; ``overrides`` apply to every
    point before the point's own.  ``measure`` (a module-level function when
    ``jobs`` > 1) adds figures of its own from each run's history.
    """
    if isinstance(base, Mapping):
        table, name = dict(base), str(base.get("name", "cluster"))
    else:
        table, name = read_table(base), Path(base).name
    common = dict(overrides or {})
    seed_list = tuple(seeds)
    tasks = [(with_overrides(table, {**common, **p.overrides}), seed, measure) for p in points for seed in seed_list]
    labels = [(p.params, i, seed) for i, p in enumerate(points) for seed in seed_list]
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            figures = list(pool.map(_run_task, tasks))
    else:
        figures = [_run_task(t) for t in tasks]
    rows = [{**params, "seed": seed, "point": i, **fig} for (params, i, seed), fig in zip(labels, figures, strict=True)]
    axes = tuple(points[0].params) if points else ()
    return Sweep(pd.DataFrame.from_records(rows), name, seed_list, axes, common, tuple(points))


def _run_task(task: tuple[Table, int, Measure | None]) -> dict[str, object]:
    table, seed, measure = task
    result = run_cluster(parse_config(table), seed)
    events = result.history.events
    verdict = check(events)
    df = history_frame(events)
    figures: dict[str, object] = dict(run_figures(df, verdict))
    figures.update(
        violations=sum(verdict.violation_counts().values()),  # the verdict lists only the first few of each kind
        nsqd_stops=int(df.type.isin(["crash", "kill", "stop"]).sum()),
        wall_seconds=result.wall_seconds,
    )
    if measure is not None:
        figures.update(measure(df))
    return figures


def seeds_text(seeds: Sequence[int]) -> str:
    """``1..10`` for a run of three or more, else the seeds listed."""
    s = sorted(seeds)
    if s and s == list(range(s[0], s[-1] + 1)) and len(s) > 2:
        return f"{s[0]}..{s[-1]}"
    return ", ".join(map(str, s))


def _compact(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= 60 else text[:57] + "..."


def loss_sweep(base: str | Path, rates: Sequence[float], seeds: Iterable[int], *, duration: float | None = None, jobs: int = 1) -> Sweep:
    """Loss under nsqd stops: each durability mode under kill -9 and under power loss, at each mean rate per minute."""
    points = [
        Point({"stop": kind, "mode": mode, "per_minute": rate}, {**options, **crash_faults(rate, kind)})
        for kind in ("kill", "crash")
        for mode, options in DURABILITY_MODES.items()
        for rate in rates
    ]
    overrides: dict[str, object] = {} if duration is None else {"duration": duration}
    return sweep(base, points, seeds, overrides=overrides, jobs=jobs)
