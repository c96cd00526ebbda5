"""Replaying one run from its seed, and following one message through it.

A run is a pure function of its configuration and seed, so ``replay`` gives
back the very history ``nsqsim run`` printed a summary of.  Within it, the
life of one message is spread over three kinds of actor (its producer, its
nsqd, the consumers it reached) and is shaped by what happened to them while
it was in flight: a crash, a partition, a stalled handler.  ``message_events``
collects those events on one lane per actor, and ``plot_message_timeline``
draws them, with the spans during which an actor was down, cut off or stalled.

nsqd's message timeouts are not client-visible events: they are *inferred*
here, for a delivery that was not answered within the message timeout in
force before the message came back (or the run ended), and that no closed
connection or stopped node explains.  The verdict on one message is the
checkers' (``nsqsim.checkers``) on the history cut down to that message and
the events about nodes, consumers and connections, which are all the
checkers use to judge it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped,unused-ignore]
from matplotlib.figure import Figure

from nsqsim.analysis.figures import DataFrame, events_of, history_frame, message_outcomes
from nsqsim.analysis.plots import add_caption
from nsqsim.analysis.sweep import read_table, with_overrides
from nsqsim.checkers import Verdict, check
from nsqsim.cli import apply_faults
from nsqsim.cluster import RunResult
from nsqsim.cluster import run as run_cluster
from nsqsim.config import ClusterConfig, load_config, parse_config
from nsqsim.history import Event, load

__all__ = ["Replay", "message_events", "message_verdict", "pick_message", "plot_message_timeline", "replay"]

_KEY = re.compile(r"\b([\w.-]+-\d+:\d+)\b")  # a message key: <producer host>:<sequence>


@dataclass
class Replay:
    """One run: its configuration and seed, its history (as events and as a DataFrame), the checkers' verdict."""

    config: ClusterConfig
    seed: int
    result: RunResult
    events: list[Event]
    frame: DataFrame
    verdict: Verdict

    def msg_timeout(self, nsqd: str, consumer: str) -> float:
        """The message timeout nsqd applied to ``consumer``: its IDENTIFY msg_timeout, else nsqd's --msg-timeout."""
        for c in self.config.consumers:
            if consumer in c.hosts() and c.msg_timeout > 0:
                return c.msg_timeout
        index = self.config.nsqd.hosts().index(nsqd)
        return self.config.nsqd.options_for(index, []).msg_timeout


def replay(
    config: str | Path | dict[str, Any],
    seed: int,
    *,
    faults: str | None = None,
    overrides: dict[str, object] | None = None,
    history_path: str | Path | None = None,
) -> Replay:
    """Run ``config`` with ``seed`` again, as ``nsqsim run --config CONFIG --seed SEED [--faults FAULTS]`` does.

    With ``history_path``, the history is written there and read back with
    ``nsqsim.history.load``, the way a history from ``nsqsim run --history`` is.
    """
    if isinstance(config, dict):
        cfg = parse_config(with_overrides(config, overrides or {}))
    elif overrides:
        cfg = parse_config(with_overrides(read_table(config), overrides))
    else:
        cfg = load_config(str(config))  # the file's text names the run, as the CLI's digest does
    result = run_cluster(cfg, seed, faults=apply_faults(cfg.faults, faults))
    events = result.history.events
    if history_path is not None:
        result.history.write(str(history_path))
        frame = load(str(history_path))
    else:
        frame = history_frame(events)
    return Replay(cfg, seed, result, events, frame, check(events))


def message_verdict(events: list[Event], key: str) -> Verdict:
    """The checkers' verdict on one message: the history without the events of every other message."""
    return check(e for e in events if e.get("key", key) == key)


def pick_message(rp: Replay) -> str:
    """The message most worth following: one a violation names, else a lost one, else the one delivered most, across a node stop first."""
    named = [m.group(1) for v in rp.verdict.violations for m in [_KEY.search(v)] if m]
    if named:
        return named[0]
    o = message_outcomes(rp.frame, rp.verdict)
    if o.empty:
        raise ValueError("no message was published in this run")
    last = events_of(rp.frame, ["deliver"], ["key", "t"]).groupby("key")["t"].max()
    until = o["key"].map(last).fillna(rp.result.sim_seconds)
    score = o.groupby("key")["deliveries"].transform("sum").astype(float) + 100.0 * (o["outcome"] == "lost")
    for host, t in events_of(rp.frame, ["crash", "kill", "stop"], ["host", "t"]).itertuples(index=False):
        score += 10.0 * ((o["nsqd"] == host) & (o["sent"] <= t) & (t <= until))
    return str(o.loc[score.idxmax(), "key"])  # idxmax: the earliest sent of the best


# -- one message's events -----------------------------------------------------------------

_MARGIN = 0.5  # seconds of context shown before and after the message's own events
_NODE_TYPES = ("crash", "kill", "stop", "start", "disk_fault", "disk_heal")
_CONSUMER_TYPES = ("consumer_crash", "consumer_restart", "consumer_stall", "consumer_resume")
_CONTEXT_TYPES = [*_NODE_TYPES, *_CONSUMER_TYPES, "disconnected", "partition", "heal"]


def message_events(rp: Replay, key: str) -> DataFrame:
    """The events of message ``key``, and of its producer, nsqd and consumers while it lived, one lane per actor.

    Columns: ``t``, ``lane`` (the actor's host), ``event``, ``detail``.
    Inferred timeouts are events ``timeout`` (see the module's docstring); a
    partition shows on the lanes of the actors it cut off from the message's nsqd.
    """
    producer, nsqd = _route(rp, key)
    own = [_present(e) for e in events_of(rp.frame, _OWN_TYPES, _OWN_COLUMNS).to_dict("records") if e["key"] == key]
    consumers = list(dict.fromkeys(str(e["consumer"]) for e in own if e["type"] == "deliver"))
    rows = [(e["t"], producer if e["type"].startswith("publish") else str(e["consumer"]), e["type"], _detail(e)) for e in own]
    rows += _timeouts(rp, own)
    answered = max(e["t"] for e in own if e["type"].startswith("publish"))
    lo, hi = min(r[0] for r in rows) - _MARGIN, max(r[0] for r in rows) + _MARGIN
    context = events_of(rp.frame, _CONTEXT_TYPES, _CONTEXT_COLUMNS)
    for e in map(_present, context[(context["t"] >= lo) & (context["t"] <= hi)].to_dict("records")):
        kind = e["type"]
        if kind in _NODE_TYPES and e.get("host") == nsqd:
            rows.append((e["t"], nsqd, kind, _detail(e)))
        elif kind in _CONSUMER_TYPES and e.get("consumer") in consumers:
            rows.append((e["t"], str(e["consumer"]), kind, ""))
        elif kind == "disconnected" and e.get("nsqd") == nsqd and (e.get("who") in consumers or (e.get("who") == producer and e["t"] <= answered)):
            rows.append((e["t"], str(e["who"]), kind, _detail(e)))
        elif kind in ("partition", "heal"):
            rows += [(e["t"], host, kind, str(e.get("kind", ""))) for host in _cut_off(e, nsqd, [producer, *consumers])]
    out = pd.DataFrame(rows, columns=["t", "lane", "event", "detail"])
    # A timeout placed at the redelivery it caused sorts before it.
    order = out.assign(after=out["event"] != "timeout").sort_values(["t", "after"], kind="stable")
    return order.drop(columns="after").reset_index(drop=True)


_OWN_TYPES = ["publish", "publish_ok", "publish_failed", "deliver", "fin", "req", "hold"]
_OWN_COLUMNS = ["t", "type", "key", "producer", "nsqd", "consumer", "channel", "attempts", "delay_ms", "error"]
_CONTEXT_COLUMNS = ["t", "type", "host", "consumer", "who", "nsqd", "error", "fault", "kind", "side_a", "side_b"]


def _present(e: dict[str, Any]) -> dict[str, Any]:
    """An event without the fields it does not have (NaN in a DataFrame's row)."""
    return {k: v for k, v in e.items() if not (isinstance(v, float) and math.isnan(v))}


def _cut_off(e: dict[str, Any], nsqd: str, others: list[str]) -> list[str]:
    """The message's actors that partition event ``e`` separates: the nsqd and those on the other side from it."""
    sides = [set(_as_list(e.get("side_a"))), set(_as_list(e.get("side_b")))]
    mine = next((side for side in sides if nsqd in side), None)
    if mine is None:
        return []
    far = [h for h in others if h not in mine and any(h in side for side in sides)]
    return [nsqd, *far] if far else []


def _as_list(value: object) -> list[object]:
    return list(value) if isinstance(value, list | tuple) else []


def _detail(e: dict[str, Any]) -> str:
    kind = e["type"]
    if kind == "deliver":
        return f"attempt {int(e['attempts'])} ({e['channel']})"
    if kind == "req":
        return f"delay {int(e['delay_ms'])} ms"
    if kind in ("publish_failed", "disconnected"):
        return str(e.get("error", ""))
    if kind == "disk_fault":
        return str(e.get("fault", ""))
    return ""


def _timeouts(rp: Replay, own: list[dict[str, Any]]) -> list[tuple[float, str, str, str]]:
    """When nsqd timed out a delivery: one not answered in time, before the message came back or the run ended.

    nsqd's clock for a message starts when it sends it, which is before the
    consumer sees it (by the network's delay and nsqd's output buffering), so
    a timeout is placed at the earlier of the deadline counted from the
    delivery and the next delivery.
    """
    out: list[tuple[float, str, str, str]] = []
    deliveries = [e for e in own if e["type"] == "deliver"]
    # A connection that closes, or a node that stops, gives the message back at once: no timeout then.
    gone = events_of(rp.frame, ["disconnected", "consumer_crash", "crash", "kill", "stop"], ["t", "who", "consumer", "nsqd", "host"])
    for d in deliveries:
        nxt = next((x["t"] for x in deliveries if x["t"] > d["t"] and x["channel"] == d["channel"]), math.inf)
        timeout = rp.msg_timeout(d["nsqd"], d["consumer"])
        at = min(d["t"] + timeout, nxt)
        answer = next((a for a in own if a["type"] in ("fin", "req") and a["consumer"] == d["consumer"] and d["t"] <= a["t"] <= nxt), None)
        if (answer is not None and answer["t"] <= at) or at > rp.result.sim_seconds:
            continue
        between = gone[(gone["t"] >= d["t"]) & (gone["t"] <= at)]
        broke = (between["who"] == d["consumer"]) & (between["nsqd"] == d["nsqd"])
        broke |= (between["consumer"] == d["consumer"]) | (between["host"] == d["nsqd"])
        if not broke.any():
            out.append((at, d["consumer"], "timeout", f"--msg-timeout {timeout:g} s"))
    return out


# -- the plot -----------------------------------------------------------------------------

_MARKERS = {
    "publish": ("^", "C0", "PUB sent"),
    "publish_ok": ("P", "C2", "OK"),
    "publish_failed": ("x", "C3", "publish failed"),
    "deliver": ("o", "C0", "delivered"),
    "fin": ("s", "C2", "FIN"),
    "req": ("D", "C1", "REQ"),
    "hold": ("v", "0.4", "handler holds it"),
    "timeout": ("X", "C3", "timed out (inferred)"),
    "crash": ("*", "C3", "node stops"),
    "kill": ("*", "C3", "node stops"),
    "stop": ("*", "C3", "node stops"),
    "start": ("*", "C2", "node starts"),
    "consumer_crash": ("*", "C3", "consumer crashes"),
    "consumer_restart": ("*", "C2", "consumer restarts"),
    "disconnected": ("|", "C3", "connection lost"),
}
_ANSWERS = {"fin", "req", "hold"}  # drawn just above the delivery they answer
_SPANS = {  # lane state from one event to another: (start, end, colour, label)
    "down": ("crash kill stop", "start", "C3", "nsqd down"),
    "crashed": ("consumer_crash", "consumer_restart", "C3", "consumer down"),
    "stalled": ("consumer_stall", "consumer_resume", "C1", "handler stalled"),
    "cut": ("partition", "heal", "0.5", "partitioned"),
}


def plot_message_timeline(rp: Replay, key: str) -> Figure:
    """The life of message ``key``: its publish, deliveries, answers and timeouts, and what befell its actors meanwhile."""
    ev = message_events(rp, key)
    producer, nsqd = _route(rp, key)
    lanes = list(dict.fromkeys([producer, nsqd, *ev["lane"]]))
    y = {lane: len(lanes) - 1 - i for i, lane in enumerate(lanes)}  # first lane on top
    fig = Figure(figsize=(10.0, 1.4 + 0.7 * len(lanes)))
    ax = fig.subplots()
    lo, hi = float(ev["t"].min()), float(ev["t"].max())
    pad = max(hi - lo, 1.0) * 0.03
    labelled: set[str] = set()
    noted: dict[str, list[float]] = {}

    def label(text: str) -> str | None:
        if text in labelled:
            return None
        labelled.add(text)
        return text

    for lane in lanes:
        for name, (starts, ends, colour, text) in _SPANS.items():
            for a, b in _lane_spans(ev[ev["lane"] == lane], starts.split(), ends, lo - pad, hi + pad):
                ax.axvspan(a, b, ymin=(y[lane] + 0.1) / len(lanes), ymax=(y[lane] + 0.9) / len(lanes), color=colour,
                           alpha=0.18, hatch="//" if name == "cut" else None, label=label(text))
    for e in ev.itertuples(index=False):
        if e.event not in _MARKERS:
            continue  # drawn as the edge of a span
        marker, colour, text = _MARKERS[e.event]
        at = y[e.lane] + (0.2 if e.event in _ANSWERS else 0.0)
        if e.event in ("deliver", "publish"):
            ax.plot([e.t, e.t], [y[nsqd], y[e.lane]], color="C0", alpha=0.3, linewidth=1)
        ax.scatter([e.t], [at], marker=marker, color=colour, s=55, zorder=3, label=label(text))
        if e.event in ("deliver", "req"):
            # Labels of events close in time on one lane are stacked rather than drawn over each other.
            near = [t for t in noted.get(e.lane, []) if abs(t - e.t) < (hi - lo + 2 * pad) * 0.06]
            noted.setdefault(e.lane, []).append(e.t)
            dy = 8 + 9 * len(near) if e.event == "req" else -14 - 9 * len(near)
            ax.annotate(e.detail, (e.t, at), textcoords="offset points", xytext=(0, dy), fontsize=7, ha="center")
    ax.set_yticks([y[lane] for lane in lanes], lanes)
    ax.set_ylim(-0.5, len(lanes) - 0.5)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_xlabel("simulated time (s)")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.set_title(f"message {key}: {_verdict_text(message_verdict(rp.events, key))}", fontsize=10)
    fig.subplots_adjust(left=0.1, right=0.8)
    add_caption(fig, f"config {rp.config.name} ({rp.config.digest()}), seed {rp.seed}; timeouts inferred from the message timeout in force")
    return fig


def _route(rp: Replay, key: str) -> tuple[str, str]:
    """The producer and the nsqd of message ``key``."""
    pubs = events_of(rp.frame, ["publish"], ["key", "producer", "nsqd"])
    pub = pubs[pubs["key"] == key]
    if pub.empty:
        raise KeyError(f"no message {key!r} in this history")
    return str(pub["producer"].iloc[0]), str(pub["nsqd"].iloc[0])


def _lane_spans(ev: DataFrame, starts: list[str], end: str, first: float, until: float) -> list[tuple[float, float]]:
    """Spans from a start event to the next end event; an end before any start closes a span begun before the window."""
    spans: list[tuple[float, float]] = []
    since: float | None = None
    for e in ev[ev["event"].isin([*starts, end])].itertuples(index=False):
        if e.event in starts:
            since = e.t if since is None else since
        elif since is not None or not spans:
            spans.append((first if since is None else since, e.t))
            since = None
    if since is not None:
        spans.append((since, until))
    return spans


def _verdict_text(v: Verdict) -> str:
    parts = []
    if v.violations:
        parts.append(f"{len(v.violations)} violation(s)")
    if v.lost_allowed:
        parts.append("lost, allowed: " + ", ".join(v.lost_allowed))
    if v.duplicates:
        parts.append("duplicates: " + ", ".join(f"{k} {n}" for k, n in v.duplicates.items()))
    if v.pending:
        parts.append("still queued at the end")
    if not parts:
        parts.append("delivered once" if v.unique_delivered else "not delivered, nothing promised")
    return "; ".join(parts)
