"""The ``nsqsim`` command: run one seed, or sweep a range of seeds across processes.

    nsqsim run --config FILE --seed N [--faults SPEC] [--history OUT.jsonl] [--summary-json OUT.json]
    nsqsim sweep --config FILE --seeds A..B [--faults SPEC] [--jobs J] [--summary-json OUT.json]

``--faults`` overrides the configuration's random faults: ``off``, ``on``, or
a comma-separated list of fault kinds to draw (``crash,partition_node``).
``run`` exits 1 when the check of its history (``model.checker``, through
``nsqsim.checkers``) finds a violation, ``sweep`` when any seed does; both
print the command that replays each failing seed.  A bad configuration,
``--seeds`` or an output path that cannot be written exits 2 with one line,
before anything runs.  ``nsqsim --version`` prints the project's version.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from broker.apps import runtime_token
from broker.version import NSQ_VERSION, PACKAGE_VERSION
from nsqsim import compiled
from nsqsim.checkers import check
from nsqsim.cluster import run as run_cluster
from nsqsim.config import ClusterConfig, ConfigError, load_config
from nsqsim.nemesis import FaultModel
from nsqsim.summary import print_summary, replay_command, summarize

__all__ = ["apply_faults", "check_output", "main", "parse_seeds", "run_one", "version_text"]


def apply_faults(model: FaultModel, spec: str | None) -> FaultModel:
    if spec is None:
        return model
    if spec == "off":
        return replace(model, enabled=False)
    if spec == "on":
        return replace(model, enabled=True)
    return model.only([k.strip() for k in spec.split(",") if k.strip()])


_SEEDS = re.compile(r"(\d+)(?:\.\.(\d+))?")


def parse_seeds(text: str) -> range:
    """``A..B`` (inclusive) or a single seed; ValueError says what is wrong with anything else."""
    m = _SEEDS.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"invalid --seeds {text!r}: expected a seed N or an inclusive range A..B (e.g. 1..100)")
    lo = int(m.group(1))
    hi = int(m.group(2)) if m.group(2) is not None else lo
    if hi < lo:
        raise ValueError(f"invalid --seeds {text!r}: the range is empty ({lo} > {hi}); write it low..high")
    return range(lo, hi + 1)


def check_output(flag: str, path: str) -> None:
    """Make sure ``path`` can be written before a run whose result would be lost; ValueError if not.

    Opening for append creates nothing that stays (a file made here is
    removed again) and truncates nothing.
    """
    if os.path.isdir(path):
        raise ValueError(f"cannot write {flag} {path}: it is a directory")
    existed = os.path.exists(path)
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise ValueError(f"cannot write {flag} {path}: {exc.strerror or exc}") from None
    if not existed:
        os.remove(path)


def version_text() -> str:
    """``nsqsim --version``: the project's version, the NSQ release its daemons match, the interpreter."""
    return f"nsqsim v{PACKAGE_VERSION} (NSQ v{NSQ_VERSION}, built w/{runtime_token()})"


def run_one(config_path: str, seed: int, faults: str | None, history_path: str | None = None) -> dict[str, Any]:
    """Run one seed and check it; the summary (also what a sweep worker returns)."""
    cfg = load_config(config_path)
    result = run_cluster(cfg, seed, faults=apply_faults(cfg.faults, faults))
    if history_path:
        result.history.write(history_path)
    verdict = check(result.history.events)
    summary = summarize(result, verdict, replay_command(config_path, seed, faults))
    if not verdict.ok:
        summary["logs"] = {host: [f"{t:.6f} {lvl}: {msg}" for t, lvl, msg in lines[-20:]] for host, lines in result.logs.items()}
    return summary


def _cmd_run(args: argparse.Namespace) -> int:
    console = Console(stderr=False)
    summary = run_one(args.config, args.seed, args.faults, args.history)
    print_summary(summary, console)
    if args.summary_json:
        _write_json(args.summary_json, summary)
    return 0 if summary["violations"] == 0 else 1


def _cmd_sweep(args: argparse.Namespace) -> int:
    console = Console()
    seeds = parse_seeds(args.seeds)
    jobs = args.jobs or os.cpu_count() or 1
    failures: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    columns = (TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[failed]} failed"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("seeds", total=len(seeds), failed=0)
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(run_one, args.config, seed, args.faults): seed for seed in seeds}
            for fut in as_completed(futures):
                summary = fut.result()
                results.append(summary)
                if summary["violations"]:
                    failures.append(summary)
                progress.update(task, advance=1, failed=len(failures))
    results.sort(key=lambda s: s["seed"])
    failures.sort(key=lambda s: s["seed"])
    sim = sum(s["sim_seconds"] for s in results)
    wall = sum(s["wall_seconds"] for s in results)
    console.print(
        f"{len(results)} seeds, {sum(s['published'] for s in results)} messages published, "
        f"{sum(s['duplicates'] for s in results)} duplicates, {sum(s['lost_allowed'] for s in results)} allowed losses, "
        f"{sim:.0f} simulated seconds in {wall:.1f} CPU seconds"
    )
    for s in failures:
        console.print(f"[red]seed {s['seed']}: {s['violations']} violations[/red]  {s['violation_list'][0]}")
        console.print(f"  replay: [bold]{s['replay']}[/bold]")
    if args.summary_json:
        _write_json(args.summary_json, {"seeds": len(results), "failed": [s["seed"] for s in failures], "runs": results})
    if not failures:
        console.print("[green]no violations[/green]")
    return 1 if failures else 0


def _write_json(path: str, doc: object) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2, sort_keys=True)
        f.write("\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nsqsim", description="deterministic simulation of an NSQ cluster running the real broker code")
    parser.add_argument("--version", action="version", version=version_text())
    sub = parser.add_subparsers(dest="command", required=True)
    faults_help = "override random faults: off, on, or fault kinds to draw (crash,partition_node,...)"
    compiled_help = "run on the mypyc-compiled hot modules (nsqsim.compiled; built first if stale): same history, faster"

    run_p = sub.add_parser("run", help="run one seed and check it")
    run_p.add_argument("--config", required=True)
    run_p.add_argument("--seed", type=int, required=True)
    run_p.add_argument("--faults", help=faults_help)
    run_p.add_argument("--history", help="write the history here (JSON lines)")
    run_p.add_argument("--summary-json", help="write the summary here")
    run_p.add_argument("--compiled", action="store_true", help=compiled_help)
    run_p.set_defaults(fn=_cmd_run)

    sweep_p = sub.add_parser("sweep", help="run a range of seeds across processes")
    sweep_p.add_argument("--config", required=True)
    sweep_p.add_argument("--seeds", required=True, help="A..B, inclusive")
    sweep_p.add_argument("--faults", help=faults_help)
    sweep_p.add_argument("--jobs", type=int, default=0, help="worker processes (default: one per CPU)")
    sweep_p.add_argument("--summary-json", help="write every run's summary here")
    sweep_p.add_argument("--compiled", action="store_true", help=compiled_help)
    sweep_p.set_defaults(fn=_cmd_sweep)
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if args.compiled and not compiled.running_compiled():
        compiled.exec_compiled("nsqsim.cli", [a for a in argv if a != "--compiled"])
    try:
        # Fail on a bad configuration before any process is started.
        cfg: ClusterConfig = load_config(args.config)
        apply_faults(cfg.faults, args.faults)
        if args.command == "sweep":
            parse_seeds(args.seeds)
        # Fail on an output that cannot be written before the run, not after it.
        if getattr(args, "history", None):
            check_output("--history", args.history)
        if args.summary_json:
            check_output("--summary-json", args.summary_json)
    except (ConfigError, ValueError) as exc:
        print(f"nsqsim: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.exit(args.fn(args))


if __name__ == "__main__":
    main()
