"""``GET /metrics``: the Prometheus text format, parsed by prometheus_client's own parser."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from broker.nsqd.metrics import CONTENT_TYPE, METRICS
from tests.unit.http.helpers import Node
from tests.unit.http.test_stats import consume, finish_all, produce, stats

DOCS = Path(__file__).resolve().parents[3] / "docs" / "metrics.md"


def scrape(node: Node) -> dict[str, list[Sample]]:
    answer = node.request("GET", "/metrics")
    assert answer.status == 200
    assert answer.header("Content-Type") == CONTENT_TYPE
    families = list(text_string_to_metric_families(answer.body.decode()))
    out: dict[str, list[Sample]] = {}
    for family in families:
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
        want = METRICS[family.name + "_total" if family.type == "counter" else family.name][0]
        assert family.type == want, (family.name, family.type, want)
    return out


def value(samples: dict[str, list[Sample]], name: str, **labels: str) -> float:
    [s] = [s for s in samples[name] if all(s.labels.get(k) == v for k, v in labels.items())]
    return float(s.value)


def test_every_stats_figure_is_a_metric_with_its_labels() -> None:
    node = Node({"e2e_processing_latency_percentiles": [0.99, 0.5]})
    consumer = consume(node)
    produce(node, "test_topic", b"a", b"bb", b"ccc")
    finish_all(node, consumer)
    node.nsqd.get_topic("test_topic").get_channel("other")
    doc = stats(node)
    samples = scrape(node)

    [topic] = doc["topics"]
    t = {"topic": "test_topic"}
    assert value(samples, "nsq_topic_messages_total", **t) == topic["message_count"] == 3
    assert value(samples, "nsq_topic_message_bytes_total", **t) == 6
    assert value(samples, "nsq_topic_depth", **t) == topic["depth"]
    assert value(samples, "nsq_topic_channels", **t) == 2
    c = {**t, "channel": "test_channel"}
    channel = next(ch for ch in topic["channels"] if ch["channel_name"] == "test_channel")
    for metric, key in (
        ("nsq_channel_messages_total", "message_count"),
        ("nsq_channel_depth", "depth"),
        ("nsq_channel_in_flight", "in_flight_count"),
        ("nsq_channel_requeued_total", "requeue_count"),
        ("nsq_channel_timed_out_total", "timeout_count"),
        ("nsq_channel_clients", "client_count"),
        ("nsq_channel_deferred", "deferred_count"),
        ("nsq_channel_backend_depth", "backend_depth"),
    ):
        assert value(samples, metric, **c) == channel[key], metric
    assert value(samples, "nsq_channel_paused", **c) == 0
    assert value(samples, "nsq_channel_disk_unsynced", **c) == channel["disk"]["unsynced_count"]
    [client] = channel["clients"]
    k = {**c, "client_id": client["client_id"], "remote_address": client["remote_address"]}
    assert value(samples, "nsq_client_finished_total", **k) == client["finish_count"] == 3
    assert value(samples, "nsq_client_ready", **k) == client["ready_count"]
    assert value(samples, "nsq_producer_published_total", topic="test_topic", client_id="py-producer") == 3
    # the end-to-end percentiles, in seconds, per channel and per topic
    e2e = channel["e2e_processing_latency"]
    for p in e2e["percentiles"]:
        got = value(samples, "nsq_channel_e2e_processing_latency_seconds", **c, quantile=str(p["quantile"]))
        assert got == p["value"] / 1e9
    assert value(samples, "nsq_channel_e2e_processing_latency_samples", **c) == e2e["count"] == 3
    assert value(samples, "nsq_topic_e2e_processing_latency_samples", **t) == 3
    assert value(samples, "nsq_info", version="1.3.0") == 1
    assert value(samples, "nsq_healthy") == 1
    assert value(samples, "nsq_memory_gc_runs_total") == 0  # the fake node measures no process
    assert "process_cpu_seconds_total" not in samples


def test_labels_are_escaped_and_e2e_absent_when_not_asked_for() -> None:
    node = Node()
    producer = node.tcp(client_id='odd "id"\\\nx', hostname="h", user_agent="u")
    from broker.wire import v2

    producer.send(v2.encode_pub("t", b"x"))
    samples = scrape(node)
    [s] = samples["nsq_producer_published_total"]
    assert s.labels["client_id"] == 'odd "id"\\\nx'
    assert not any("e2e" in name for name in samples)


def test_a_node_without_topics_and_the_process_figures_of_a_runtime() -> None:
    node = Node()
    node.nsqd.process_stats = lambda: {"process_cpu_seconds_total": 1.5, "process_open_fds": 7}
    samples = scrape(node)
    assert value(samples, "process_cpu_seconds_total") == 1.5
    assert value(samples, "process_open_fds") == 7
    assert value(samples, "process_start_time_seconds") == node.nsqd.start_time
    assert not any(name.startswith("nsq_topic") for name in samples)


def test_every_metric_is_documented() -> None:
    docs = DOCS.read_text()
    missing = [name for name in METRICS if f"`{name}`" not in docs]
    assert not missing, f"not in docs/metrics.md: {missing}"


def test_nsqds_routing_applies_to_metrics() -> None:
    node = Node()
    assert node.request("POST", "/metrics").status == 405
    assert node.request("GET", "/metrics/").status == 301
