"""Plots of sweeps, each saying under its axes what produced it.

Figures are made with ``matplotlib.figure.Figure`` directly, not pyplot, so
nothing here depends on a backend or leaves global state behind; a notebook
shows a returned Figure as it shows any value.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from nsqsim.analysis.sweep import Sweep

__all__ = ["add_caption", "plot_loss", "plot_percentiles", "plot_rate"]


def add_caption(fig: Figure, text: str) -> None:
    """Say under the axes what produced the figure (configuration, what varied, seeds)."""
    fig.text(0.01, 0.005, text, fontsize=7, color="0.3", ha="left", va="bottom", wrap=True)
    fig.subplots_adjust(bottom=max(fig.subplotpars.bottom, 0.2))


def _axes(ax: Axes | None, size: tuple[float, float] = (7.0, 4.5)) -> Axes:
    if ax is not None:
        return ax
    return Figure(figsize=size).subplots()


def _figure_of(ax: Axes) -> Figure:
    fig = ax.get_figure(root=True)
    assert isinstance(fig, Figure)
    return fig


def plot_rate(
    sweep: Sweep,
    x: str,
    y: str,
    hue: str | None = None,
    *,
    ax: Axes | None = None,
    title: str = "",
    xlabel: str | None = None,
    ylabel: str | None = None,
    percent: bool = False,
    logx: bool = False,
) -> Axes:
    """``y`` against ``x``, one line per value of ``hue``: the mean over seeds, each seed a faint dot.

    Drawn on a new figure, with the sweep's caption, unless ``ax`` is given.
    """
    own = ax is None
    ax = _axes(ax)
    runs = sweep.runs
    scale = 100.0 if percent else 1.0
    groups = [(None, runs)] if hue is None else list(runs.groupby(hue, sort=False))
    # Lines that coincide (two modes that both lose nothing) stay told apart by marker and dash.
    for (value, g), marker, dash in zip(groups, itertools.cycle("os^D"), itertools.cycle(["-", "--", ":", "-."])):
        mean = g.groupby(x, sort=True)[y].mean() * scale
        (line,) = ax.plot(mean.index, mean.to_numpy(), dash, marker=marker, label=None if value is None else str(value))
        ax.scatter(g[x], g[y] * scale, s=10, alpha=0.35, color=line.get_color(), linewidths=0)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel((ylabel or y) + (" (%)" if percent else ""))
    if title:
        ax.set_title(title)
    if hue is not None:
        ax.legend(title=hue, fontsize=8, title_fontsize=8)
    ax.grid(True, alpha=0.3)
    if own:
        add_caption(_figure_of(ax), sweep.caption())
    return ax


def plot_percentiles(
    sweep: Sweep,
    x: str,
    hue: str | None = None,
    qs: Sequence[float] = (50, 90, 99),
    *,
    ax: Axes | None = None,
    title: str = "",
    xlabel: str | None = None,
) -> Axes:
    """Latency percentiles (the median over seeds of each run's percentile) against ``x``, on log axes.

    Drawn on a new figure, with the sweep's caption, unless ``ax`` is given.
    """
    own = ax is None
    ax = _axes(ax)
    runs = sweep.runs
    groups = [(None, runs)] if hue is None else list(runs.groupby(hue, sort=False))
    styles = ["-", "--", ":", "-."]
    for i, (value, g) in enumerate(groups):
        color = f"C{i}"
        for q, style in zip(qs, itertools.cycle(styles)):
            med = g.groupby(x, sort=True)[f"latency_p{q:g}_ms"].median()
            label = f"p{q:g}" if value is None else f"{value}, p{q:g}"
            ax.plot(med.index, med.to_numpy(), style, marker="o", color=color, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel("publish -> first delivery (ms)")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7, title=hue, title_fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    if own:
        add_caption(_figure_of(ax), sweep.caption())
    return ax


def plot_loss(sweep: Sweep) -> Figure:
    """The loss plot of the README: loss rate against stop rate per durability mode, one panel per kind of stop."""
    kinds = list(dict.fromkeys(sweep.runs["stop"]))
    fig = Figure(figsize=(5.0 * len(kinds), 4.8))
    panels = fig.subplots(1, len(kinds), squeeze=False, sharey=True)[0]
    for ax, kind in zip(panels, kinds, strict=True):
        part = replace(sweep, runs=sweep.runs[sweep.runs["stop"] == kind])
        plot_rate(part, "per_minute", "loss_rate", "mode", ax=ax, percent=True, title=_STOP_TITLES.get(kind, kind),
                  xlabel="nsqd stops per minute (mean)", ylabel="acknowledged messages lost")
    bad = int((sweep.runs["violations"] > 0).sum())
    note = f"; {bad} of {len(sweep.runs)} runs had checker violations" if bad else ""
    add_caption(fig, "loss = acknowledged (message, channel) pairs never delivered / pairs expected; " + sweep.caption() + note)
    return fig


_STOP_TITLES = {"kill": "kill -9 (the OS keeps what was written)", "crash": "power loss (only fsynced bytes survive)"}
