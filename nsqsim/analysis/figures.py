"""What one history says: per (message, channel) outcomes, loss and duplicate rates, latency.

A history (``nsqsim.history``) as a DataFrame, one row per event, becomes
one row per published message and channel of its topic on its nsqd
(``message_outcomes``).  What became of each such pair is the model
checker's judgement (``model.checker.check``, docs/guarantees.md): which
channels are owed a message (every channel the topic had when it was sent,
and channels outlive restarts where nsqd keeps them in ``nsqd.dat``; a topic
with none owes it to its first), whether a loss is allowed and by which
rule, what is still queued at the end, and the cause of every duplicate.
Nothing is judged here twice: the figures are the checker's numbers, only
arranged per run, with the times (latency, first delivery) that the checker
does not keep.

The checker reads the history as the recorder wrote it; a DataFrame's rows
carry NaN for the fields an event lacks, so ``history_events`` gives the
events back without them first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped,unused-ignore]

from model import checker
from nsqsim.history import Event

__all__ = [
    "DataFrame",
    "events_of",
    "history_events",
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


# Integer fields of the history format that a column with gaps turns into floats: given
# back as ints, so that what the checker says of them reads as it does from the events.
_INT_FIELDS = frozenset({"attempts", "defer_ms", "delay_ms", "sample_rate", "depth", "in_flight", "deferred", "mem_queue_size", "sync_every"})


def history_events(df: DataFrame) -> list[Event]:
    """The events of a history's DataFrame as the recorder wrote them: without the fields an event lacks.

    A field that was null goes the same way, except a ``disk_fault``'s
    ``where``: nsqsim always writes it, null when a bit flip found no file to
    hit, and the checker reads a fault without one as one that may have hit
    any file, ``nsqd.dat`` included.
    """
    events: list[Event] = [{} for _ in range(len(df))]
    for name in df.columns:
        column = df[name]
        present = np.flatnonzero(column.notna().to_numpy())
        values = column.tolist()
        whole = name in _INT_FIELDS and column.dtype.kind == "f"
        for i in present:
            events[i][name] = int(values[i]) if whole else values[i]
    if "where" in df.columns:
        for i in np.flatnonzero((df["type"] == "disk_fault").to_numpy()):
            events[i].setdefault("where", None)
    return events


_OUTCOME_COLUMNS = ["key", "producer", "nsqd", "topic", "channel", "sent", "acked", "expected", "deliveries", "first_delivery", "latency", "outcome", "allowed", "rule", "causes"]
_JUDGED = ["nsqd", "channel", "key", "status", "judged_deliveries", "causes", "rule", "expected"]


def message_outcomes(df: DataFrame, verdict: checker.Verdict | None = None) -> DataFrame:
    """One row per published message and channel of its topic on its nsqd, with what became of it.

    ``verdict`` is the checker's on this history (``nsqsim.checkers.check``
    of its events, as a sweep and a ``Replay`` have it); without one it is
    checked here.  Columns, besides the message's and the channel's:

    * ``expected``: the checker owed the pair a delivery (the publish was
      acknowledged, and the channel was one the message had to reach);
    * ``outcome``: ``delivered`` (once), ``duplicated`` (more than once),
      ``lost`` (expected and never delivered: whether a rule allows it or it
      is a violation, ``allowed`` tells), ``pending`` (expected, not
      delivered, and still queued at the end as the ``final`` stats count),
      ``unacknowledged`` (never delivered, and the publish got no OK: NSQ
      promised nothing), or ``not_expected`` (acknowledged, never delivered,
      and not owed: the channel was made after the publish and was not the
      topic's first, or it had been deleted);
    * ``allowed``: False for a pair the checker found a violation in (a loss
      no rule allows, a redelivery after a FIN nsqd accepted, an early or
      out-of-order delivery), True for everything else;
    * ``rule``: the rule that allowed a loss (``memory_at_crash``, ...) or
      the kind of violation (``lost``, ``early``, ...), else empty;
    * ``causes``: why each delivery after the first happened, comma-separated;
    * ``latency``: publish sent to first delivery, in seconds.

    Deliveries of a message no one published, or from an nsqd it was not
    published to, have no row: they are violations of the verdict only.
    """
    pubs = events_of(df, ["publish"], ["key", "producer", "nsqd", "topic", "t"])
    # The checker reads a key published twice as its last publish.
    pubs = pubs.drop_duplicates("key", keep="last").rename(columns={"t": "sent"})
    if pubs.empty:
        return pd.DataFrame(columns=_OUTCOME_COLUMNS)
    if verdict is None:
        verdict = checker.check(history_events(df))
    judged = pd.DataFrame.from_records(
        [(o.nsqd, o.channel, o.key, o.status, o.deliveries, ", ".join(o.causes), o.rule, o.expected) for o in verdict.outcomes],
        columns=_JUDGED,
    )
    made = events_of(df, ["subscribed", "channel_created"], ["nsqd", "host", "topic", "channel"])
    made = made.assign(nsqd=made["nsqd"].fillna(made["host"])).drop(columns="host")  # either names the node
    seen = pd.DataFrame.from_records([(o.nsqd, o.topic, o.channel) for o in verdict.outcomes], columns=["nsqd", "topic", "channel"])
    chans = pd.concat([made, seen]).dropna().drop_duplicates()
    rows = pubs.merge(chans, on=["nsqd", "topic"])
    if rows.empty:
        return pd.DataFrame(columns=_OUTCOME_COLUMNS)
    acked = events_of(df, ["publish_ok"], ["key", "t"]).groupby("key")["t"].max().rename("acked")
    rows = rows.merge(acked, left_on="key", right_index=True, how="left")
    first = events_of(df, ["deliver"], ["nsqd", "channel", "key", "t"]).groupby(["nsqd", "channel", "key"])["t"].min().rename("first_delivery")
    rows = rows.merge(first, left_on=["nsqd", "channel", "key"], right_index=True, how="left")
    rows = rows.merge(judged, on=["nsqd", "channel", "key"], how="left")
    rows["deliveries"] = rows["judged_deliveries"].fillna(0).astype(int)
    rows["expected"] = rows["expected"].astype(object).fillna(False).astype(bool)
    rows["status"] = rows["status"].fillna("")
    rows["rule"] = rows["rule"].fillna("")
    rows["causes"] = rows["causes"].fillna("")
    rows["allowed"] = (rows["status"] != "violation").to_numpy()
    rows["latency"] = rows["first_delivery"] - rows["sent"]
    n, status = rows["deliveries"], rows["status"]
    rows["outcome"] = np.select(
        [n > 1, n == 1, status == "pending", status.isin(["lost_allowed", "violation"]), rows["acked"].isna()],
        ["duplicated", "delivered", "pending", "lost", "unacknowledged"],
        default="not_expected",
    )
    return rows.reindex(columns=_OUTCOME_COLUMNS).sort_values(["sent", "channel"], kind="stable").reset_index(drop=True)


def latency_percentiles(latencies: Iterable[float], qs: Sequence[float] = (50, 90, 99)) -> dict[str, float]:
    """Nearest-rank percentiles in milliseconds (``p50``...), as ``nsqsim.summary.percentile``; NaN for none."""
    values = np.asarray([x for x in latencies if not math.isnan(x)], dtype=float)
    if values.size == 0:
        return {f"p{q:g}": math.nan for q in qs}
    found = np.percentile(values, list(qs), method="inverted_cdf")
    return {f"p{q:g}": float(v) * 1000 for q, v in zip(qs, found, strict=True)}


def run_figures(df: DataFrame, verdict: checker.Verdict | None = None) -> dict[str, float]:
    """The per-run figures of a history: counts, loss and duplicate rates, latency percentiles (ms).

    From ``message_outcomes`` (``verdict`` as there): ``lost`` counts every
    expected pair never delivered, ``lost_allowed`` those a rule allows (the
    rest are violations); ``duplicates`` is deliveries after the first, and
    ``loss_rate`` and ``duplicate_rate`` are per expected and per delivered pair.
    """
    o = message_outcomes(df, verdict)
    got = o[o["deliveries"] > 0]
    expected = int(o["expected"].sum())
    unique = len(got)
    duplicates = int(got["deliveries"].sum()) - unique
    lost = o["outcome"] == "lost"
    figures: dict[str, float] = {
        "published": int((df["type"] == "publish").sum()) if len(df) else 0,
        "acknowledged": int((df["type"] == "publish_ok").sum()) if len(df) else 0,
        "expected": expected,
        "unique_delivered": unique,
        "duplicates": duplicates,
        "lost": int(lost.sum()),
        "lost_allowed": int((lost & o["allowed"]).sum()),
        "pending": int((o["outcome"] == "pending").sum()),
        "loss_rate": int(lost.sum()) / expected if expected else math.nan,
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
