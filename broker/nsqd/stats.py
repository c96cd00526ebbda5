"""nsqd's ``/stats``: the node's topics, channels and clients, as nsqd 1.3.0 reports them.

A snapshot is taken the way nsqd's ``GetStats(topic, channel, includeClients)``
takes it, then rendered as JSON (``stats_json``, what nsqadmin, nsq_stat and the
exporters read) or as the text page (``stats_text``, the default format).

The JSON keeps nsqd's field names, order, nesting and types, including its
``null``s: ``producers`` is null when no connection has published (or clients
were not asked for), a channel's ``clients`` is null when clients were not
asked for, and ``topics`` is null when the topic asked for does not exist (but
``[]`` when the channel asked for exists in no topic).  Topics and channels are
sorted by name; clients come in connection order, where nsqd's come in Go map
order.  ``e2e_processing_latency`` is ``{"count":0,"percentiles":null}`` when
no ``--e2e-processing-latency-percentile`` is set (and for a topic none of
whose channels has a window), else ``{"count":N,"percentiles":[{"quantile":q,
"value":ns},...]}`` in the order the percentiles were given; a topic's merges
all its channels' (``broker/nsqd/e2e.py``).

Two knowing differences: nsqd lists only one (randomly chosen) topic in a
producer's ``pub_counts`` because its loop stops after the first, where this
lists every topic, sorted; and the text page gives ``start_time`` in UTC where
nsqd uses the host's time zone, since the core has no time zone.

The ``memory`` object holds Go runtime figures in nsqd.  The core cannot measure
a process, so the figures come from ``nsqd.memory_stats`` when the runtime set
it (a callable returning some of ``MEMORY_KEYS``; ``python_memory_stats`` is
one) and are 0 otherwise.
"""

from __future__ import annotations

import gc
import platform
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from broker.nsqd.backend import durability_stats
from broker.nsqd.e2e import merged_result, nanoseconds_to_human
from broker.nsqd.protocol_v2 import ClientV2
from broker.wire.goduration import go_duration
from broker.wire.gojson import JSONValue
from broker.wire.http import utc_fields

if TYPE_CHECKING:
    from broker.nsqd.channel import Channel
    from broker.nsqd.nsqd import NSQD
    from broker.nsqd.topic import Topic

__all__ = ["MEMORY_KEYS", "StatsQuery", "go_duration", "python_memory_stats", "stats_json", "stats_text"]

# The keys of nsqd's memory object, in its order.
MEMORY_KEYS = (
    "heap_objects",
    "heap_idle_bytes",
    "heap_in_use_bytes",
    "heap_released_bytes",
    "gc_pause_usec_100",
    "gc_pause_usec_99",
    "gc_pause_usec_95",
    "next_gc_bytes",
    "gc_total_runs",
)


class StatsQuery:
    """The ``/stats`` parameters, with nsqd's defaults."""

    __slots__ = ("channel", "include_clients", "include_mem", "topic")

    def __init__(self, topic: str = "", channel: str = "", include_clients: bool = True, include_mem: bool = True) -> None:
        self.topic = topic
        self.channel = channel
        self.include_clients = include_clients
        self.include_mem = include_mem


_ChannelSnap = tuple["Channel", list[ClientV2] | None]
_TopicSnap = tuple["Topic", list[_ChannelSnap]]


class _Snapshot:
    __slots__ = ("producers", "topics")

    def __init__(self, topics: list[_TopicSnap] | None, producers: list[ClientV2] | None) -> None:
        self.topics = topics
        self.producers = producers


def _snapshot(nsqd: NSQD, q: StatsQuery) -> _Snapshot:
    if q.topic:
        topic = nsqd.topics.get(q.topic)
        if topic is None:
            return _Snapshot(None, None)  # nsqd returns its zero Stats: no topics, no producers
        topics = [topic]
    else:
        topics = [nsqd.topics[name] for name in sorted(nsqd.topics)]
    snaps: list[_TopicSnap] = []
    for t in topics:
        if q.channel:
            c = t.channels.get(q.channel)
            if c is None:
                continue
            channels = [c]
        else:
            channels = [t.channels[name] for name in sorted(t.channels)]
        snaps.append((t, [(c, _consumers(c) if q.include_clients else None) for c in channels]))
    producers = None
    if q.include_clients:
        producers = [c for c in nsqd.clients.values() if c.pub_counts] or None
    return _Snapshot(snaps, producers)


def _consumers(channel: Channel) -> list[ClientV2]:
    return [c for c in channel.clients.values() if isinstance(c, ClientV2)]


# -- JSON -------------------------------------------------------------------------


def stats_json(nsqd: NSQD, q: StatsQuery) -> dict[str, JSONValue]:
    snap = _snapshot(nsqd, q)
    topics: JSONValue = None
    if snap.topics is not None:
        topics = [_topic_json(t, channels, q.topic) for t, channels in snap.topics]
    out: dict[str, JSONValue] = {
        "version": nsqd.version,
        "health": nsqd.health,
        "start_time": nsqd.start_time,
        "topics": topics,
    }
    if q.include_mem:
        out["memory"] = _memory(nsqd)
    producers: JSONValue = None
    if snap.producers is not None:
        producers = [_client_json(c, q.topic) for c in snap.producers]
    out["producers"] = producers
    return out


def _topic_json(t: Topic, channels: list[_ChannelSnap], topic_filter: str) -> dict[str, JSONValue]:
    out: dict[str, JSONValue] = {
        "topic_name": t.name,
        "channels": [_channel_json(c, clients, topic_filter) for c, clients in channels],
        "depth": t.depth(),
        "backend_depth": t.backend.depth(),
        "message_count": t.message_count,
        "message_bytes": t.message_bytes,
        "paused": t.paused,
        "e2e_processing_latency": _e2e_json(_topic_e2e(t)),
        "disk": {k: v for k, v in durability_stats(t.backend).items()},  # beyond nsqd: additive
    }
    expired = t.expired_count()
    if t.ttl_ns or expired:  # beyond nsqd, only where it is used: a Go deployment sees nsqd's shape
        out["ttl_ms"] = t.ttl_ns // 1_000_000
        out["expired_count"] = expired
    return out


def _channel_json(c: Channel, clients: list[ClientV2] | None, topic_filter: str) -> dict[str, JSONValue]:
    clients_json: JSONValue = None
    if clients is not None:
        clients_json = [_client_json(client, topic_filter) for client in clients]
    out: dict[str, JSONValue] = {
        "channel_name": c.name,
        "depth": c.depth(),
        "backend_depth": c.backend.depth(),
        "in_flight_count": len(c.in_flight),
        "deferred_count": c.deferred_count(),
        "message_count": c.message_count,
        "requeue_count": c.requeue_count,
        "timeout_count": c.timeout_count,
        "client_count": len(c.clients),
        "clients": clients_json,
        "paused": c.paused,
        "e2e_processing_latency": _e2e_json(_channel_e2e(c)),
        "disk": {k: v for k, v in durability_stats(c.backend).items()},  # beyond nsqd: additive
    }
    # beyond nsqd, only where it is used (see _topic_json)
    if c.max_attempts or c.dead_lettered_count:
        out["max_attempts"] = c.max_attempts
        out["dead_letter_topic"] = c.dead_letter_topic
        out["dead_lettered_count"] = c.dead_lettered_count
    if c.ttl_ns or c.expired_count:
        out["expired_count"] = c.expired_count
    return out


def _client_json(c: ClientV2, topic_filter: str) -> dict[str, JSONValue]:
    out: dict[str, JSONValue] = {
        "client_id": c.client_id,
        "hostname": c.hostname,
        "version": "V2",
        "remote_address": c.remote_address,
        "state": c.state,
        "ready_count": c.ready_count,
        "in_flight_count": c.in_flight_count,
        "message_count": c.message_count,
        "finish_count": c.finish_count,
        "requeue_count": c.requeue_count,
        "connect_ts": c.connect_ts,
        "sample_rate": c.sample_rate,
        "deflate": c.deflate,
        "snappy": c.snappy,
        "user_agent": c.user_agent,
    }
    # nsqd omits these when empty; they fill in once AUTH is supported.
    identity = str(getattr(c, "auth_identity", ""))
    identity_url = str(getattr(c, "auth_identity_url", ""))
    if getattr(c, "authed", False):
        out["authed"] = True
    if identity:
        out["auth_identity"] = identity
    if identity_url:
        out["auth_identity_url"] = identity_url
    pub_counts = _pub_counts(c, topic_filter)
    if pub_counts:
        out["pub_counts"] = [{"topic": topic, "count": count} for topic, count in pub_counts]
    tls = getattr(c, "tls_layer", None)
    out["tls"] = tls is not None
    out["tls_cipher_suite"] = tls.cipher_suite() if tls is not None else ""
    out["tls_version"] = tls.version() if tls is not None else ""
    out["tls_negotiated_protocol"] = tls.negotiated_protocol() if tls is not None else ""
    # Go reports NegotiatedProtocolIsMutual, which is true for every TLS 1.3 session and any without ALPN.
    out["tls_negotiated_protocol_is_mutual"] = tls is not None
    return out


def _pub_counts(c: ClientV2, topic_filter: str) -> list[tuple[str, int]]:
    return [(t, c.pub_counts[t]) for t in sorted(c.pub_counts) if not topic_filter or t == topic_filter]


_E2EResult = tuple[int, list[tuple[float, float]]] | None  # None: no window, nsqd's nil Quantile


def _channel_e2e(c: Channel) -> _E2EResult:
    e2e = c.e2e
    return None if e2e is None else e2e.result()


def _topic_e2e(t: Topic) -> _E2EResult:
    # every channel of the topic, whatever /stats' channel filter (AggregateChannelE2eProcessingLatency)
    streams = [c.e2e for c in t.channels.values() if c.e2e is not None]
    if not streams:
        return None
    return merged_result(streams)


def _e2e_json(result: _E2EResult) -> dict[str, JSONValue]:
    if result is None:
        return {"count": 0, "percentiles": None}
    count, percentiles = result
    return {"count": count, "percentiles": [{"quantile": q, "value": v} for q, v in percentiles]}


def _e2e_text(result: _E2EResult) -> str:
    return "" if result is None else ", ".join(nanoseconds_to_human(v) for _, v in result[1])


def _memory(nsqd: NSQD) -> dict[str, JSONValue]:
    source: Callable[[], Mapping[str, int]] | None = getattr(nsqd, "memory_stats", None)
    figures: Mapping[str, int] = source() if source is not None else {}
    return {key: int(figures.get(key, 0)) for key in MEMORY_KEYS}


def python_memory_stats() -> dict[str, int]:
    """This interpreter's nearest equivalents of Go's figures, for ``nsqd.memory_stats``.

    Allocated blocks stand for heap objects and collections of every generation
    for GC runs; a runtime that can measure more (RSS, GC pauses) adds to this.
    Not called by the core itself: the figures change from run to run.
    """
    return {
        "heap_objects": sys.getallocatedblocks(),
        "gc_total_runs": sum(int(s.get("collections", 0)) for s in gc.get_stats()),
    }


# -- text -------------------------------------------------------------------------


def stats_text(nsqd: NSQD, q: StatsQuery) -> bytes:
    snap = _snapshot(nsqd, q)
    now_ns = nsqd.clock.wall_ns()
    start = nsqd.start_time
    runtime = f"{platform.python_implementation().lower()}{platform.python_version()}"  # as --version
    y, mo, d, h, mi, s, _ = utc_fields(start)
    out = [
        f"nsqd v{nsqd.version} (built w/{runtime})\n",
        f"start_time {y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}Z\n",
        f"uptime {go_duration(now_ns - start * 1_000_000_000)}\n",
        f"\nHealth: {nsqd.health}\n",
    ]
    if q.include_mem:
        out.append("\nMemory:\n")
        for key, value in _memory(nsqd).items():
            out.append(f"   {key:<25}\t{value}\n")
    topics = snap.topics or []
    out.append("\nTopics:" if topics else "\nTopics: None\n")
    for t, channels in topics:
        out.append(
            f"\n{'*P ' if t.paused else '   '}[{t.name:<15}] depth: {t.depth():<5} "
            f"be-depth: {t.backend.depth():<5} msgs: {t.message_count:<8} e2e%: {_e2e_text(_topic_e2e(t))}\n"
        )
        for c, clients in channels:
            out.append(
                f"{'   *P ' if c.paused else '      '}[{c.name:<25}] depth: {c.depth():<5} "
                f"be-depth: {c.backend.depth():<5} inflt: {len(c.in_flight):<4} def: {c.deferred_count():<4} "
                f"re-q: {c.requeue_count:<5} timeout: {c.timeout_count:<5} msgs: {c.message_count:<8} e2e%: {_e2e_text(_channel_e2e(c))}\n"
            )
            for client in clients or []:
                out.append(f"        {_client_text(client, q.topic, now_ns)}\n")
    if not snap.producers:
        out.append("\nProducers: None\n")
    else:
        out.append("\nProducers:\n")
        for client in snap.producers:
            out.append(f"   {_client_text(client, q.topic, now_ns)}\n")
    return "".join(out).encode("utf-8", "surrogateescape")


def _client_text(c: ClientV2, topic_filter: str, now_ns: int) -> str:
    connected = go_duration((now_ns - c.connect_ts * 1_000_000_000) // 1_000_000_000 * 1_000_000_000)
    ident = f"{c.hostname}:{_port(c.remote_address)} {c.user_agent}"
    pub_counts = _pub_counts(c, topic_filter)
    if pub_counts:
        total = sum(n for _, n in pub_counts)
        topics = ",".join(f"{t}={n}" for t, n in pub_counts)
        return f"[V2 {ident:<21}] msgs: {total:<8} topics: {topics} connected: {connected}"
    return (
        f"[V2 {ident:<21}] state: {c.state} inflt: {c.in_flight_count:<4} rdy: {c.ready_count:<4} "
        f"fin: {c.finish_count:<8} re-q: {c.requeue_count:<8} msgs: {c.message_count:<8} connected: {connected}"
    )


def _port(address: str) -> str:
    # net.SplitHostPort: the text after the last colon (brackets around IPv6 hosts).
    _, sep, port = address.rpartition(":")
    return port if sep else ""

