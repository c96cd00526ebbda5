"""``python -m nsqsim.analysis plot-loss OUT.png``: regenerate the README's plot of loss against nsqd stop rate.

    python -m nsqsim.analysis plot-loss docs/images/loss_vs_crash_rate.png [--seeds 1..10]
        [--rates 0,3,6,12,24] [--duration 20] [--config examples/ci-sweep.toml] [--jobs N]

The defaults are the ones the committed image was drawn with.
"""

from __future__ import annotations

import argparse
import os
import sys

from nsqsim.analysis.plots import plot_loss
from nsqsim.analysis.sweep import loss_sweep
from nsqsim.cli import parse_seeds

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nsqsim.analysis", description="plots of nsqsim's delivery guarantees")
    sub = parser.add_subparsers(dest="command", required=True)
    loss = sub.add_parser("plot-loss", help="loss rate against nsqd kill -9 and power-loss rate, per durability mode")
    loss.add_argument("out", help="the PNG to write")
    loss.add_argument("--config", default="examples/ci-sweep.toml", help="the base configuration (its faults are replaced)")
    loss.add_argument("--seeds", default="1..10", help="A..B, inclusive")
    loss.add_argument("--rates", default="0,3,6,12,24", help="mean nsqd stops per minute, comma-separated")
    loss.add_argument("--duration", type=float, default=20.0, help="seconds of load per run")
    loss.add_argument("--jobs", type=int, default=0, help="worker processes (default: one per CPU)")
    args = parser.parse_args(argv)
    try:
        seeds = parse_seeds(args.seeds)
        rates = [float(r) for r in args.rates.split(",") if r.strip()]
    except ValueError as exc:
        parser.error(str(exc))
    result = loss_sweep(args.config, rates, seeds, duration=args.duration, jobs=args.jobs or os.cpu_count() or 1)
    plot_loss(result).savefig(args.out, dpi=120)
    print(f"wrote {args.out}: {len(result.runs)} runs, {int((result.runs['violations'] > 0).sum())} with checker violations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
