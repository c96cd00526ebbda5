"""What one history says: per (message, channel) outcomes, loss and duplicate rates, latency.

A history (``nsqsim.history``) as a DataFrame, one row per event, becomes
one row per published message and channel of its topic on its nsqd
(``message_outcomes``):

* a pair is *expected* when the publish was acknowledged while a consumer was
  subscribed to that channel on that nsqd (the channel had been created and
  the node had not stopped since): what NSQ promises to deliver;
* *lost*: expected and never delivered, and not accounted for by what the
  ``final`` stats show still queued (*pending*);
* *duplicates*: deliveries after the first to the same channel;
* *latency*: publish sent to first delivery.

These are the judgements ``nsqsim.checkers`` makes, counted the same way (the
tests hold the two to the same numbers); the checker adds whether each loss
and duplicate was allowed, which a sweep's rows carry as ``violations``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped,unused-ignore]

from nsqsim.history import Event

__all__ = [
    "DataFrame",
    "channel_spans",
    "events_of",
    "history_frame",
    "latency_percentiles",
    "message_outcomes",
    "rediscovery_time",
    "run_figures",
]

DataFrame = Any  # pandas.DataFrame: pandas ships no type information


def history_frame(events: Iterable[Event]) -> DataFrame:
    """A history as a DataFrame, as ``nsqsim.history.load`` reads it from a file."""
    return pd.DataFrame.from_records(list(events))


def events_of(df: DataFrame, types: Sequence[str], columns: Sequence[str]) -> DataFrame:
    """The events of ``types`` with ``columns`` (NaN where an event lacks one)."""
    if "type" not in df.columns:
        return pd.DataFrame(columns=list(columns))
    sub = df[df["type"].isin(types)]
    return sub.reindex(columns=list(columns))


def channel_spans(df: DataFrame) -> dict[tuple[str, str, str], list[tuple[float, float]]]:
    """When each (nsqd, topic, channel) existed: from a consumer's SUB being answered until the node stopped.

    Open spans run past the end of the history.
    """
    events = events_of(df, ["subscribed", "crash", "kill", "stop", "end"], ["type", "t", "nsqd", "topic", "channel", "host"])
    opened: dict[tuple[str, str, str], float] = {}
    spans: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    end = float(df["t"].max()) if len(df) else 0.0
    for e in events.to_dict("records"):
        if e["type"] == "subscribed":
            opened.setdefault((e["nsqd"], e["topic"], e["channel"]), e["t"])
        elif e["type"] != "end":
            for key in [k for k in opened if k[0] == e["host"]]:
                spans.setdefault(key, []).append((opened.pop(key), e["t"]))
    for key, since in opened.items():
        spans.setdefault(key, []).append((since, end + 1.0))
    return dict(sorted(spans.items()))


_OUTCOME_COLUMNS = ["key", "producer", "nsqd", "topic", "channel", "sent", "acked", "expected", "deliveries", "first_delivery", "latency", "outcome"]


def message_outcomes(df: DataFrame) -> DataFrame:
    """One row per published message and channel of its topic on its nsqd, with what became of it.

    ``outcome`` is ``delivered`` (once), ``duplicated`` (more than once),
    ``lost`` (expected, never delivered), ``pending`` (expected, not delivered,
    and counted as still queued by the ``final`` stats: the newest such
    messages of the channel, since a queue gives out the oldest first),
    ``unacknowledged`` (the publish got no OK: NSQ promised nothing), or
    ``not_expected`` (acknowledged while no consumer was subscribed there).
    """
    pubs = events_of(df, ["publish"], ["key", "producer", "nsqd", "topic", "t"]).drop_duplicates("key").rename(columns={"t": "sent"})
    spans = channel_spans(df)
    if pubs.empty or not spans:
        return pd.DataFrame(columns=_OUTCOME_COLUMNS)
    chans = pd.DataFrame(list(spans), columns=["nsqd", "topic", "channel"])
    rows = pubs.merge(chans, on=["nsqd", "topic"])
    acked = events_of(df, ["publish_ok"], ["key", "t"]).groupby("key")["t"].min().rename("acked")
    rows = rows.merge(acked, left_on="key", right_index=True, how="left")
    got = events_of(df, ["deliver"], ["nsqd", "channel", "key", "t"]).groupby(["nsqd", "channel", "key"])["t"]
    delivered = got.agg(deliveries="size", first_delivery="min").reset_index()
    rows = rows.merge(delivered, on=["nsqd", "channel", "key"], how="left")
    rows["deliveries"] = rows["deliveries"].fillna(0).astype(int)
    open_at = np.zeros(len(rows), dtype=bool)
    for (nsqd, topic, channel), spans_of in spans.items():
        here = ((rows["nsqd"] == nsqd) & (rows["topic"] == topic) & (rows["channel"] == channel)).to_numpy()
        for start, stop in spans_of:
            open_at |= here & ((rows["sent"] >= start) & (rows["sent"] < stop)).to_numpy()
    rows["expected"] = rows["acked"].notna().to_numpy() & open_at
    rows["latency"] = rows["first_delivery"] - rows["sent"]
    n = rows["deliveries"]
    rows["outcome"] = np.select(
        [n > 1, n == 1, rows["expected"], rows["acked"].isna()],
        ["duplicated", "delivered", "lost", "unacknowledged"],
        default="not_expected",
    )
    _mark_pending(rows, df)
    return rows.reindex(columns=_OUTCOME_COLUMNS).sort_values(["sent", "channel"], kind="stable").reset_index(drop=True)


def _mark_pending(rows: DataFrame, df: DataFrame) -> None:
    final = events_of(df, ["final"], ["host", "topic", "channel", "depth", "in_flight", "deferred"])
    for f in final.to_dict("records"):
        left = int(f["depth"] + f["in_flight"] + f["deferred"])
        if left <= 0:
            continue
        lost = rows[(rows["outcome"] == "lost") & (rows["nsqd"] == f["host"]) & (rows["topic"] == f["topic"]) & (rows["channel"] == f["channel"])]
        newest = lost.sort_values("sent", kind="stable").index[-left:]
        rows.loc[newest, "outcome"] = "pending"


def latency_percentiles(latencies: Iterable[float], qs: Sequence[float] = (50, 90, 99)) -> dict[str, float]:
    """Nearest-rank percentiles in milliseconds (``p50``...), as ``nsqsim.summary.percentile``; NaN for none."""
    values = np.asarray([x for x in latencies if not math.isnan(x)], dtype=float)
    if values.size == 0:
        return {f"p{q:g}": math.nan for q in qs}
    found = np.percentile(values, list(qs), method="inverted_cdf")
    return {f"p{q:g}": float(v) * 1000 for q, v in zip(qs, found, strict=True)}


def run_figures(df: DataFrame) -> dict[str, float]:
    """The per-run figures of a history: counts, loss and duplicate rates, latency percentiles (ms)."""
    o = message_outcomes(df)
    got = o[o["deliveries"] > 0]
    expected = int(o["expected"].sum())
    unique = len(got)
    duplicates = int(got["deliveries"].sum()) - unique
    lost = int((o["outcome"] == "lost").sum())
    figures: dict[str, float] = {
        "published": int((df["type"] == "publish").sum()) if len(df) else 0,
        "acknowledged": int((df["type"] == "publish_ok").sum()) if len(df) else 0,
        "expected": expected,
        "unique_delivered": unique,
        "duplicates": duplicates,
        "lost": lost,
        "pending": int((o["outcome"] == "pending").sum()),
        "loss_rate": lost / expected if expected else math.nan,
        "duplicate_rate": duplicates / unique if unique else math.nan,
    }
    figures.update({f"latency_{k}_ms": v for k, v in latency_percentiles(got["latency"]).items()})
    return figures


def rediscovery_time(df: DataFrame) -> dict[str, float]:
    """After the last nsqlookupd partition heals, how long until consumers are subscribed again to every nsqd they lost meanwhile.

    A ``measure`` for ``sweep``: ``rediscovery_s`` is the longest wait, from
    the heal, over the (consumer, nsqd) connections lost while nsqlookupd was
    cut off (0 for one found again before the heal, infinite for one never
    found again, NaN when there was no such partition or no such loss).
    """
    cuts = events_of(df, ["partition", "heal"], ["type", "t", "kind"])
    cuts = cuts[cuts["kind"] == "partition_lookupd"]
    began, healed = cuts[cuts["type"] == "partition"]["t"], cuts[cuts["type"] == "heal"]["t"]
    if began.empty or healed.empty:
        return {"rediscovery_s": math.nan}
    cut, heal = float(began.iloc[-1]), float(healed.iloc[-1])
    subs = events_of(df, ["subscribed"], ["consumer", "nsqd", "t"])
    lost = events_of(df, ["disconnected"], ["who", "nsqd", "t"])
    # Producers' connections are reported too; they involve no discovery.
    lost = lost[(lost["t"] >= cut) & (lost["t"] <= heal) & lost["who"].isin(set(subs["consumer"]))]
    waits = []
    for who, nsqd, t in lost.itertuples(index=False):
        back = subs[(subs["consumer"] == who) & (subs["nsqd"] == nsqd) & (subs["t"] > t)]["t"]
        waits.append(max(0.0, float(back.min()) - heal) if not back.empty else math.inf)
    return {"rediscovery_s": max(waits) if waits else math.nan}
