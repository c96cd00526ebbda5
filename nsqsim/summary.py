"""The figures of one run, as a JSON-ready dict and as a rich table.

``summarize`` joins what the run measured (simulated and wall time, events)
with the verdict on its history (``nsqsim.checkers``, the formal model's
checker: messages, deliveries, duplicates by cause and allowed losses by the
rule that allows them, violations) and the latency percentiles, and names the
command that replays the run.
"""

from __future__ import annotations

import math
import shlex
from typing import Any

from rich.console import Console
from rich.table import Table

from nsqsim.checkers import Verdict
from nsqsim.cluster import RunResult

__all__ = ["percentile", "print_summary", "replay_command", "summarize"]


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def replay_command(config_path: str, seed: int, faults: str | None = None) -> str:
    cmd = ["nsqsim", "run", "--config", config_path, "--seed", str(seed)]
    if faults:
        cmd += ["--faults", faults]
    return shlex.join(cmd)


def _ms(x: float | None) -> float | None:
    return None if x is None else round(x * 1000, 3)


def summarize(result: RunResult, verdict: Verdict, replay: str) -> dict[str, Any]:
    wall = result.wall_seconds
    lat = verdict.latencies
    ack = verdict.ack_latencies
    return {
        "seed": result.seed,
        "config": result.config.name,
        "config_digest": result.config.digest(),
        "sim_seconds": result.sim_seconds,
        "wall_seconds": round(wall, 3),
        "speedup": round(result.sim_seconds / wall, 2) if wall > 0 else None,
        "events": result.events,
        "events_per_second": round(result.events / wall) if wall > 0 else None,
        "published": verdict.published,
        "acknowledged": verdict.acknowledged,
        "publish_failed": verdict.failed,
        "delivered": verdict.delivered,
        "unique_delivered": verdict.unique_delivered,
        "expected": verdict.expected,
        "duplicates": sum(verdict.duplicates.values()),
        "duplicates_by_cause": dict(sorted(verdict.duplicates.items())),
        "lost_allowed": sum(verdict.lost_allowed.values()),
        "lost_allowed_by_cause": dict(sorted(verdict.lost_allowed.items())),
        "pending": verdict.pending,
        "violations": len(verdict.violations),
        "violation_counts": verdict.violation_counts(),
        "violation_list": verdict.violations,
        "latency_ms": {
            "deliver_p50": _ms(percentile(lat, 50)),
            "deliver_p90": _ms(percentile(lat, 90)),
            "deliver_p99": _ms(percentile(lat, 99)),
            "deliver_max": _ms(max(lat) if lat else None),
            "ack_p50": _ms(percentile(ack, 50)),
            "ack_p99": _ms(percentile(ack, 99)),
        },
        "faults": [f.describe() for f in result.schedule],
        "history_digest": result.history.digest(),
        "replay": replay,
    }


def print_summary(summary: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"nsqsim run: {summary['config']} seed {summary['seed']}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("simulated / wall", f"{summary['sim_seconds']:.1f}s / {summary['wall_seconds']:.2f}s ({summary['speedup']}x)")
    table.add_row("events", f"{summary['events']} ({summary['events_per_second']}/s)")
    table.add_row("published / acknowledged / failed", f"{summary['published']} / {summary['acknowledged']} / {summary['publish_failed']}")
    table.add_row("deliveries (unique) / expected", f"{summary['delivered']} ({summary['unique_delivered']}) / {summary['expected']}")
    table.add_row("duplicates", _by_cause(summary["duplicates"], summary["duplicates_by_cause"]))
    table.add_row("losses allowed, by rule", _by_cause(summary["lost_allowed"], summary["lost_allowed_by_cause"]))
    table.add_row("pending at the end", str(summary["pending"]))
    lat = summary["latency_ms"]
    table.add_row(
        "publish -> delivery (ms)", f"p50 {lat['deliver_p50']}  p90 {lat['deliver_p90']}  p99 {lat['deliver_p99']}  max {lat['deliver_max']}"
    )
    table.add_row("publish -> OK (ms)", f"p50 {lat['ack_p50']}  p99 {lat['ack_p99']}")
    table.add_row("faults", str(len(summary["faults"])))
    style = "green" if summary["violations"] == 0 else "bold red"
    table.add_row("violations", f"[{style}]{summary['violations']}[/{style}]")
    console.print(table)
    for line in summary["violation_list"]:
        console.print(f"  [red]{line}[/red]")
    if summary["violations"]:
        console.print(f"replay: [bold]{summary['replay']}[/bold]")


def _by_cause(total: int, by_cause: dict[str, int]) -> str:
    if not by_cause:
        return str(total)
    return f"{total} (" + ", ".join(f"{k} {n}" for k, n in by_cause.items()) + ")"
