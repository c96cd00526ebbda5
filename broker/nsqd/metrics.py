"""``GET /metrics``: every ``/stats`` figure in the Prometheus text exposition format (0.0.4).

Beyond nsqd, additively (nsqd has no ``/metrics``; nsqio/nsq#732 asks for it):
a Prometheus server scrapes the node directly, with no exporter polling
``/stats``.  The figures are taken from the same snapshot ``/stats?format=json``
makes, so the two never disagree; each becomes a metric named ``nsq_...``
with ``topic``/``channel`` labels (clients and producers add theirs), and
``METRICS`` lists every one with its type and help, which is what
``docs/metrics.md`` documents.  Counters are nsqd's running counts, so a
topic or channel deleted and made again starts them at 0, as Prometheus's
counter resets allow.  Percentiles of the end-to-end latency are gauges in
seconds with a ``quantile`` label.  Process figures (``process_*``, the names
every Prometheus client library uses) come from ``nsqd.process_stats`` when
the runtime set it, as memory figures come from ``nsqd.memory_stats``.

The text is written here by hand (``prometheus_client`` keeps a global
registry and reads ``/proc`` itself, neither of which the core may do); the
tests parse it with ``prometheus_client``'s own parser.  Families are written
whole and in ``METRICS`` order; label values are escaped as the format says
(backslash, double quote, newline), help texts too (backslash, newline).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from broker.nsqd.stats import StatsQuery, stats_json
from broker.wire.gojson import JSONValue, go_float

if TYPE_CHECKING:
    from broker.nsqd.nsqd import NSQD

__all__ = ["CONTENT_TYPE", "METRICS", "PROCESS_KEYS", "prometheus_text"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# name -> (type, help).  Order is the order of the exposition.
METRICS: dict[str, tuple[str, str]] = {
    "nsq_info": ("gauge", "Always 1; the version label is the nsqd version this node reproduces."),
    "nsq_healthy": ("gauge", "1 while /ping answers OK, 0 once a disk queue has failed."),
    "nsq_start_time_seconds": ("gauge", "When the node started, in Unix seconds (/stats start_time)."),
    "nsq_clients": ("gauge", "Open TCP client connections."),
    # topics
    "nsq_topic_depth": ("gauge", "Messages queued in the topic, in memory and on disk (/stats depth)."),
    "nsq_topic_backend_depth": ("gauge", "Messages of the topic queued on disk (/stats backend_depth)."),
    "nsq_topic_messages_total": ("counter", "Messages published to the topic (/stats message_count)."),
    "nsq_topic_message_bytes_total": ("counter", "Bytes of message bodies published to the topic (/stats message_bytes)."),
    "nsq_topic_paused": ("gauge", "1 while the topic is paused."),
    "nsq_topic_channels": ("gauge", "Channels of the topic."),
    "nsq_topic_e2e_processing_latency_seconds": ("gauge", "Percentiles of publish-to-FIN latency over the window, all channels (--e2e-processing-latency-percentile)."),
    "nsq_topic_e2e_processing_latency_samples": ("gauge", "FINs in the end-to-end latency window, all channels."),
    "nsq_topic_disk_unsynced": ("gauge", "Messages put to the topic's disk queue that no fsync covers yet."),
    "nsq_topic_disk_unsynced_reads": ("gauge", "Messages read from the topic's disk queue whose reading is not yet durable."),
    "nsq_topic_disk_corrupt_skipped_total": ("counter", "Corrupt regions of the topic's disk queue found and skipped."),
    "nsq_topic_disk_bad_files_total": ("counter", "Unreadable segments of the topic's disk queue renamed .bad."),
    "nsq_topic_dropped_total": ("counter", "Messages an ephemeral topic had no room for."),
    # channels
    "nsq_channel_depth": ("gauge", "Messages queued in the channel, in memory and on disk (/stats depth)."),
    "nsq_channel_backend_depth": ("gauge", "Messages of the channel queued on disk (/stats backend_depth)."),
    "nsq_channel_in_flight": ("gauge", "Messages sent to a consumer and not yet finished, requeued or timed out."),
    "nsq_channel_deferred": ("gauge", "Messages waiting for a requeue delay or a DPUB defer."),
    "nsq_channel_messages_total": ("counter", "Messages the channel received from its topic (/stats message_count)."),
    "nsq_channel_requeued_total": ("counter", "Messages requeued by REQ (/stats requeue_count)."),
    "nsq_channel_timed_out_total": ("counter", "Messages requeued because their msg_timeout passed (/stats timeout_count)."),
    "nsq_channel_clients": ("gauge", "Consumers subscribed to the channel."),
    "nsq_channel_paused": ("gauge", "1 while the channel is paused."),
    "nsq_channel_dead_lettered_total": ("counter", "Messages moved to the dead-letter topic after max_attempts (beyond nsqd; channels with max_attempts)."),
    "nsq_channel_expired_total": ("counter", "Messages dropped undelivered past the topic's TTL (beyond nsqd; topics with a ttl)."),
    "nsq_channel_e2e_processing_latency_seconds": ("gauge", "Percentiles of publish-to-FIN latency over the window (--e2e-processing-latency-percentile)."),
    "nsq_channel_e2e_processing_latency_samples": ("gauge", "FINs in the end-to-end latency window."),
    "nsq_channel_disk_unsynced": ("gauge", "Messages put to the channel's disk queue that no fsync covers yet."),
    "nsq_channel_disk_unsynced_reads": ("gauge", "Messages read from the channel's disk queue whose reading is not yet durable."),
    "nsq_channel_disk_corrupt_skipped_total": ("counter", "Corrupt regions of the channel's disk queue found and skipped."),
    "nsq_channel_disk_bad_files_total": ("counter", "Unreadable segments of the channel's disk queue renamed .bad."),
    "nsq_channel_dropped_total": ("counter", "Messages an ephemeral channel had no room for."),
    # consumers and producers
    "nsq_client_ready": ("gauge", "A consumer's RDY count."),
    "nsq_client_in_flight": ("gauge", "Messages in flight to a consumer."),
    "nsq_client_messages_total": ("counter", "Messages sent to a consumer."),
    "nsq_client_finished_total": ("counter", "Messages a consumer finished (FIN)."),
    "nsq_client_requeued_total": ("counter", "Messages a consumer requeued (REQ)."),
    "nsq_client_connect_time_seconds": ("gauge", "When the client connected, in Unix seconds."),
    "nsq_producer_published_total": ("counter", "Messages a TCP producer published, per topic (/stats pub_counts)."),
    # memory (/stats memory: Go's figures in this process's nearest equivalents)
    "nsq_memory_heap_objects": ("gauge", "Allocated blocks (Go: heap objects)."),
    "nsq_memory_heap_idle_bytes": ("gauge", "Go's idle heap spans; 0 here."),
    "nsq_memory_heap_in_use_bytes": ("gauge", "Resident set size (Go: heap spans in use)."),
    "nsq_memory_heap_released_bytes": ("gauge", "Go's heap released to the OS; 0 here."),
    "nsq_memory_gc_pause_usec_100": ("gauge", "Longest of the last 256 collector pauses, microseconds."),
    "nsq_memory_gc_pause_usec_99": ("gauge", "99th percentile of the last 256 collector pauses, microseconds."),
    "nsq_memory_gc_pause_usec_95": ("gauge", "95th percentile of the last 256 collector pauses, microseconds."),
    "nsq_memory_next_gc_bytes": ("gauge", "Go's heap goal of the next GC; 0 here."),
    "nsq_memory_gc_runs_total": ("counter", "Collections of every generation (Go: completed GC cycles)."),
    # the process
    "process_cpu_seconds_total": ("counter", "User and system CPU time spent, in seconds."),
    "process_resident_memory_bytes": ("gauge", "Resident memory size in bytes."),
    "process_virtual_memory_bytes": ("gauge", "Virtual memory size in bytes."),
    "process_open_fds": ("gauge", "Open file descriptors."),
    "process_max_fds": ("gauge", "The most file descriptors the process may open."),
    "process_start_time_seconds": ("gauge", "When the process started, in Unix seconds."),
}

# The figures a runtime's ``nsqd.process_stats`` may give, by metric name.
PROCESS_KEYS = (
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_max_fds",
)

_DISK = {  # /stats disk key -> metric suffix
    "unsynced_count": "disk_unsynced",
    "unsynced_read_count": "disk_unsynced_reads",
    "corrupt_skipped": "disk_corrupt_skipped_total",
    "bad_files": "disk_bad_files_total",
    "dropped_count": "dropped_total",
}
_CHANNEL = {  # /stats channel key -> metric suffix
    "depth": "depth",
    "backend_depth": "backend_depth",
    "in_flight_count": "in_flight",
    "deferred_count": "deferred",
    "message_count": "messages_total",
    "requeue_count": "requeued_total",
    "timeout_count": "timed_out_total",
    "client_count": "clients",
    "paused": "paused",
}
_CLIENT = {
    "ready_count": "nsq_client_ready",
    "in_flight_count": "nsq_client_in_flight",
    "message_count": "nsq_client_messages_total",
    "finish_count": "nsq_client_finished_total",
    "requeue_count": "nsq_client_requeued_total",
    "connect_ts": "nsq_client_connect_time_seconds",
}

_Labels = tuple[tuple[str, str], ...]


def prometheus_text(nsqd: NSQD) -> bytes:
    """The exposition of the node's figures now."""
    samples: dict[str, list[tuple[_Labels, float | int]]] = {name: [] for name in METRICS}

    def add(name: str, labels: _Labels, value: JSONValue) -> None:
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, int | float):
            samples[name].append((labels, value))

    stats = stats_json(nsqd, StatsQuery())
    add("nsq_info", (("version", str(stats["version"])),), 1)
    add("nsq_healthy", (), int(stats["health"] == "OK"))
    add("nsq_start_time_seconds", (), stats["start_time"])
    add("nsq_clients", (), len(nsqd.clients))
    for t in _objects(stats["topics"]):
        topic = str(t["topic_name"])
        tl = (("topic", topic),)
        add("nsq_topic_depth", tl, t["depth"])
        add("nsq_topic_backend_depth", tl, t["backend_depth"])
        add("nsq_topic_messages_total", tl, t["message_count"])
        add("nsq_topic_message_bytes_total", tl, t["message_bytes"])
        add("nsq_topic_paused", tl, t["paused"])
        channels = _objects(t["channels"])
        add("nsq_topic_channels", tl, len(channels))
        _e2e(add, "nsq_topic", tl, t["e2e_processing_latency"])
        _disk(add, "nsq_topic", tl, t.get("disk"))
        for c in channels:
            cl = (*tl, ("channel", str(c["channel_name"])))
            for key, suffix in _CHANNEL.items():
                add(f"nsq_channel_{suffix}", cl, c[key])
            if "dead_lettered_count" in c:
                add("nsq_channel_dead_lettered_total", cl, c["dead_lettered_count"])
            if "expired_count" in c:
                add("nsq_channel_expired_total", cl, c["expired_count"])
            _e2e(add, "nsq_channel", cl, c["e2e_processing_latency"])
            _disk(add, "nsq_channel", cl, c.get("disk"))
            for client in _objects(c["clients"]):
                kl = (*cl, *_client_labels(client))
                for key, name in _CLIENT.items():
                    add(name, kl, client[key])
    for p in _objects(stats["producers"]):
        pl = _client_labels(p)
        for count in _objects(p.get("pub_counts")):
            add("nsq_producer_published_total", (("topic", str(count["topic"])), *pl), count["count"])
    memory = stats.get("memory")
    if isinstance(memory, dict):
        for key, value in memory.items():
            add("nsq_memory_gc_runs_total" if key == "gc_total_runs" else f"nsq_memory_{key}", (), value)
    source: Callable[[], Mapping[str, float]] | None = nsqd.process_stats
    if source is not None:
        figures = source()
        for key in PROCESS_KEYS:
            if key in figures:
                add(key, (), figures[key])
        add("process_start_time_seconds", (), stats["start_time"])
    return _render(samples)


def _objects(value: JSONValue) -> list[dict[str, JSONValue]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _client_labels(client: dict[str, JSONValue]) -> _Labels:
    return (
        ("client_id", str(client["client_id"])),
        ("hostname", str(client["hostname"])),
        ("remote_address", str(client["remote_address"])),
    )


def _e2e(add: Callable[[str, _Labels, JSONValue], None], stem: str, labels: _Labels, e2e: JSONValue) -> None:
    if not isinstance(e2e, dict) or e2e.get("percentiles") is None:
        return  # no percentiles asked for: nothing to expose
    add(f"{stem}_e2e_processing_latency_samples", labels, e2e.get("count"))
    for p in _objects(e2e.get("percentiles")):
        q, v = p.get("quantile"), p.get("value")
        if isinstance(q, int | float) and isinstance(v, int | float):
            add(f"{stem}_e2e_processing_latency_seconds", (*labels, ("quantile", go_float(float(q)))), v / 1e9)


def _disk(add: Callable[[str, _Labels, JSONValue], None], stem: str, labels: _Labels, disk: JSONValue) -> None:
    if isinstance(disk, dict):
        for key, suffix in _DISK.items():
            add(f"{stem}_{suffix}", labels, disk.get(key))


def _render(samples: dict[str, list[tuple[_Labels, float | int]]]) -> bytes:
    out: list[str] = []
    for name, (kind, help_text) in METRICS.items():
        rows = samples[name]
        if not rows:
            continue
        out.append(f"# HELP {name} {_escape_help(help_text)}\n# TYPE {name} {kind}\n")
        for labels, value in rows:
            if labels:
                inner = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels)
                out.append(f"{name}{{{inner}}} {_number(value)}\n")
            else:
                out.append(f"{name} {_number(value)}\n")
    return "".join(out).encode("utf-8", "surrogateescape")


def _number(value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")
