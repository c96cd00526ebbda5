"""Simulation speed: how much simulated time the reference cluster gets through per wall second.

Runs ``examples/reference-cluster.toml`` (3 nsqd, 2 nsqlookupd, 4 producers at
250 msgs/s, 2 channels of 2 consumers, faults on) for one seed and prints
simulated seconds per wall-clock second (the target is 30x real time or more)
and simpy events per second.  ``--profile`` runs it under cProfile and prints
where the time goes:

    python -m bench.bench_sim [--seed N] [--duration S] [--batch N] [--profile]

Wall time on a shared machine moves with the load of its neighbours; the CPU
time of this process is printed beside it for that reason.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from dataclasses import replace
from pathlib import Path

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
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--duration", type=float, help="seconds of load (and of drain); default: the config's")
    parser.add_argument("--batch", type=int, default=1, help="producers publish MPUBs of this many messages")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    cpu0 = time.process_time()
    result = bench(args.seed, args.duration, args.profile, args.batch)
    cpu = time.process_time() - cpu0
    verdict = check(result.history.events)
    wall = result.wall_seconds
    print(f"reference cluster, seed {result.seed}: {result.sim_seconds:.0f} simulated seconds in {wall:.2f} wall seconds ({cpu:.2f} CPU)")
    print(f"  speed:  {result.sim_seconds / wall:.1f}x real time ({result.sim_seconds / cpu:.1f}x per CPU second)")
    print(f"  events: {result.events} ({result.events / wall:,.0f} per second)")
    print(f"  published {verdict.published}, delivered {verdict.delivered}, history {len(result.history.events)} events")
    print(f"  violations: {len(verdict.violations)}")


if __name__ == "__main__":
    main()
