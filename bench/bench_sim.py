"""Simulation speed: how much simulated time the reference cluster gets through per wall second.

Runs ``examples/reference-cluster.toml`` (3 nsqd, 2 nsqlookupd, 4 producers at
250 msgs/s, 2 channels of 2 consumers, faults on) for one seed and prints
simulated seconds per wall-clock second (the target is 30x real time or more)
and simpy events per second.  ``--profile`` runs it under cProfile and prints
where the time goes, by function and by package (cProfile's own overhead
inflates code that makes many small calls; ``py-spy record`` samples without
it):

    python -m bench.bench_sim [--seed N] [--duration S] [--batch N] [--repeat N] [--profile] [--compiled]

``--compiled`` runs it on the hot modules compiled with mypyc
(``nsqsim.compiled``, built first if the sources changed): the same history,
byte for byte, in less time.

Wall time on a shared machine moves with the load of its neighbours; the CPU
time of this process is printed beside it for that reason, and ``--repeat``
keeps the fastest of several runs (each run builds its cluster afresh; the
history is the same every time).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from dataclasses import replace
from pathlib import Path

from nsqsim import compiled
from nsqsim.checkers import check
from nsqsim.cluster import RunResult, run
from nsqsim.config import load_config

REFERENCE = Path(__file__).resolve().parents[1] / "examples" / "reference-cluster.toml"


def bench(seed: int, duration: float | None, profile: bool, batch: int = 1) -> RunResult:
    cfg = load_config(str(REFERENCE))
    if duration is not None:
        cfg = replace(cfg, duration=duration, drain=duration)
    if batch > 1:
        cfg = replace(cfg, producers=tuple(replace(p, batch=batch, defer_fraction=0.0) for p in cfg.producers))
    if not profile:
        return run(cfg, seed)
    prof = cProfile.Profile()
    result = prof.runcall(run, cfg, seed)
    stats = pstats.Stats(prof).sort_stats("tottime")
    stats.print_stats(25)
    print_packages(stats)
    return result


PACKAGES = ("broker/nsqd", "broker/wire", "broker/client", "broker/lookupd", "broker/storage", "nsqsim/workload", "nsqsim", "simpy")


def print_packages(stats: pstats.Stats) -> None:
    """Own time by package: the broker against the simulator, at a glance."""
    own: dict[str, float] = {}
    for (path, _line, _name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if path == "~":
            package = "built-ins (heapq, struct, ...), charged to no package"
        else:
            package = next((p for p in PACKAGES if f"/{p}/" in path), "other Python (stdlib, h11, ...)")
        own[package] = own.get(package, 0.0) + tottime
    total = sum(own.values()) or 1.0
    print("own time by package:")
    for package, seconds in sorted(own.items(), key=lambda kv: -kv[1]):
        print(f"  {100 * seconds / total:5.1f}%  {package}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--duration", type=float, help="seconds of load (and of drain); default: the config's")
    parser.add_argument("--batch", type=int, default=1, help="producers publish MPUBs of this many messages")
    parser.add_argument("--repeat", type=int, default=1, help="run this many times and report the fastest")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--compiled", action="store_true", help="run on the mypyc-compiled hot modules (nsqsim.compiled)")
    args = parser.parse_args()
    if args.compiled and not compiled.running_compiled():
        compiled.exec_compiled("bench.bench_sim", [a for a in sys.argv[1:] if a != "--compiled"])
    best: tuple[RunResult, float] | None = None
    for _ in range(max(1, args.repeat)):
        cpu0 = time.process_time()
        result = bench(args.seed, args.duration, args.profile, args.batch)
        cpu = time.process_time() - cpu0
        if best is None or result.wall_seconds < best[0].wall_seconds:
            best = (result, cpu)
    assert best is not None
    result, cpu = best
    verdict = check(result.history.events)
    wall = result.wall_seconds
    build = "compiled hot modules (mypyc)" if compiled.running_compiled() else "pure Python"
    print(f"reference cluster, seed {result.seed}, {build}: {result.sim_seconds:.0f} simulated seconds in {wall:.2f} wall seconds ({cpu:.2f} CPU)")
    print(f"  speed:  {result.sim_seconds / wall:.1f}x real time ({result.sim_seconds / cpu:.1f}x per CPU second)")
    print(f"  events: {result.events} ({result.events / wall:,.0f} per second)")
    print(f"  published {verdict.published}, delivered {verdict.delivered}, history {len(result.history.events)} events")
    print(f"  violations: {len(verdict.violations)}")


if __name__ == "__main__":
    main()
