"""End-to-end latency: the histogram's stated error bound, nsqd's window, and /stats and statsd shapes."""

from __future__ import annotations

import json
import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.nsqd.e2e import (
    RELATIVE_ERROR,
    E2ELatency,
    LatencyHistogram,
    merged_result,
    nanoseconds_to_human,
)
from broker.wire import v2
from broker.wire.gojson import dumps
from tests.fakes import FakeClock, FakeConnection
from tests.unit.http.helpers import Node

QUANTILES = [0.5, 0.9, 0.95, 0.99, 0.999, 1.0]


def exact(sample: list[int], q: float) -> int:
    """The latency of rank ceil(q * n), the value the histogram's bound is stated against."""
    ordered = sorted(sample)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def within_bound(got: float, want: int) -> bool:
    if want < 1:
        return got == 0
    return abs(got - want) <= RELATIVE_ERROR * want * (1 + 1e-9) + 0.5  # + the rounding to whole ns


def test_lognormal_latencies_within_the_stated_error() -> None:
    rng = random.Random(1729)
    sample = [int(rng.lognormvariate(math.log(5e6), 1.2)) for _ in range(100_000)]  # ~5 ms median, long tail
    h = LatencyHistogram()
    for x in sample:
        h.add(x)
    got = h.quantiles(QUANTILES)
    for q, v in zip(QUANTILES, got, strict=True):
        assert within_bound(v, exact(sample, q)), (q, v, exact(sample, q))
    assert len(h.buckets) < 2200 and h.count == len(sample)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=-1000, max_value=2**63 - 1), min_size=1, max_size=300),
    st.lists(st.floats(min_value=1e-6, max_value=1.0), min_size=1, max_size=5),
)
def test_any_sample_any_quantile_within_the_stated_error(sample: list[int], qs: list[float]) -> None:
    h = LatencyHistogram()
    for x in sample:
        h.add(x)
    for q, v in zip(qs, h.quantiles(qs), strict=True):
        assert within_bound(v, exact(sample, q)), (q, v, exact(sample, q))


def test_an_empty_histogram_answers_zero_as_perks_does() -> None:
    assert LatencyHistogram().quantiles([0.5, 0.99]) == [0.0, 0.0]


def test_merging_is_exact() -> None:
    rng = random.Random(7)
    a, b, both = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for i in range(5000):
        x = rng.randrange(1, 10**9)
        (a if i % 3 else b).add(x)
        both.add(x)
    a.merge(b)
    assert (a.buckets, a.count, a.zeros) == (both.buckets, both.count, both.zeros)


def test_the_window_rotates_half_a_window_at_a_time() -> None:
    clock = FakeClock()
    window = E2ELatency(10_000_000_000, [0.5], clock)  # 10 s: halves of 5 s
    t0 = clock.wall_ns()
    window.insert(t0 - 1_000_000)  # 1 ms
    clock.advance(4.0)
    window.insert(clock.wall_ns() - 2_000_000)  # still the first half
    assert window.result()[0] == 2
    clock.advance(2.0)  # 6 s: the second half begins; the first is kept
    window.insert(clock.wall_ns() - 3_000_000)
    assert window.result()[0] == 3
    clock.advance(5.0)  # 11 s: the first half is emptied and current again
    count, [(q, v)] = window.result()
    assert (count, q) == (1, 0.5) and within_bound(v, 3_000_000)
    clock.advance(100.0)  # long idle: everything is gone
    assert window.result() == (0, [(0.5, 0.0)])
    window.insert(clock.wall_ns() - 4_000_000)
    assert window.result()[0] == 1


def test_a_topic_merges_its_channels() -> None:
    clock = FakeClock()
    a, b = E2ELatency(600_000_000_000, [0.5, 1.0], clock), E2ELatency(600_000_000_000, [0.5, 1.0], clock)
    now = clock.wall_ns()
    for ms in (1, 2, 3):
        a.insert(now - ms * 1_000_000)
    b.insert(now - 100_000_000)
    count, [(_, p50), (_, p100)] = merged_result([a, b])
    assert count == 4 and within_bound(p50, 2_000_000) and within_bound(p100, 100_000_000)


def test_nanoseconds_to_human_is_nsqds() -> None:
    assert [nanoseconds_to_human(v) for v in (999.0, 1500.0, 2_345_678.0, 3_000_000_001.0, 1_000_000_000.0)] == [
        "999.0ns",
        "1.5us",
        "2.3ms",
        "3.0s",
        "1000.0ms",
    ]


# -- /stats and statsd ---------------------------------------------------------------


def consume_and_finish(node: Node, latency_s: float, count: int) -> None:
    consumer = node.tcp(client_id="c", hostname="h", feature_negotiation=True)
    consumer.send(b"SUB t c\nRDY 100\n")
    consumer.frames()
    producer = node.tcp()
    for i in range(count):
        producer.send(v2.encode_pub("t", b"m%d" % i))
    node.clock.advance(latency_s)
    fin(consumer)


def fin(consumer: FakeConnection) -> None:
    for kind, data in consumer.frames():
        if kind == v2.FRAME_RESPONSE:
            continue  # the SUB's OK
        assert kind == v2.FRAME_MESSAGE
        consumer.send(b"FIN " + v2.decode_message(data)[2] + b"\n")


def test_stats_json_and_text_in_nsqds_shape() -> None:
    node = Node({"e2e_processing_latency_percentiles": [0.99, 0.5]})
    node.nsqd.get_topic("t").get_channel("idle")
    consume_and_finish(node, 0.25, 10)
    doc = node.request("GET", "/stats?format=json").json()
    [topic] = doc["topics"]
    channels = {c["channel_name"]: c for c in topic["channels"]}
    for e2e, count in ((topic["e2e_processing_latency"], 10), (channels["c"]["e2e_processing_latency"], 10)):
        assert e2e["count"] == count
        assert [p["quantile"] for p in e2e["percentiles"]] == [0.99, 0.5]
        assert all(list(p) == ["quantile", "value"] and within_bound(p["value"], 250_000_000) for p in e2e["percentiles"])
    assert channels["idle"]["e2e_processing_latency"] == {"count": 0, "percentiles": [{"quantile": 0.99, "value": 0}, {"quantile": 0.5, "value": 0}]}
    body = node.request("GET", "/stats?format=json&channel=c").body
    assert b'"e2e_processing_latency":{"count":10,"percentiles":[{"quantile":0.99,"value":' in body
    text = node.request("GET", "/stats").body.decode()
    line = next(line for line in text.splitlines() if "[c " in line)
    assert line.rstrip().endswith("e2e%: " + ", ".join(nanoseconds_to_human(p["value"]) for p in channels["c"]["e2e_processing_latency"]["percentiles"]))


def test_disabled_shape_is_nsqds_nil_quantile_byte_for_byte() -> None:
    node = Node()
    consume_and_finish(node, 0.25, 3)
    doc = node.request("GET", "/stats?format=json").json()
    [topic] = doc["topics"]
    assert dumps(topic["e2e_processing_latency"]) == b'{"count":0,"percentiles":null}'
    assert dumps(topic["channels"][0]["e2e_processing_latency"]) == b'{"count":0,"percentiles":null}'
    assert node.nsqd.topics["t"].channels["c"].e2e is None
    text = node.request("GET", "/stats").body.decode()
    assert all(line.endswith("e2e%: ") for line in text.splitlines() if "e2e%" in line)
    assert json.loads(dumps(topic))["e2e_processing_latency"]["percentiles"] is None


def test_statsd_gauges_the_percentiles() -> None:
    from tests.unit.nsqd.test_statsd import Node as StatsdNode

    node = StatsdNode(statsd_interval=10.0, e2e_processing_latency_percentiles=[0.99, 0.995, 1.0])
    consumer = node.tcp()
    consumer.send(b"SUB t c\nRDY 10\n")
    producer = node.tcp()
    producer.send(v2.encode_pub("t", b"x"))
    node.clock.advance(0.5)
    fin(consumer)
    node.clock.advance(20.0)
    got = {line.split(":")[0]: line.split(":")[1] for line in node.datagrams.lines()}
    p = "nsq.test_host_4151."
    for key in (f"{p}topic.t.e2e_processing_latency_99", f"{p}topic.t.channel.c.e2e_processing_latency_100"):
        value, kind = got[key].split("|")
        assert kind == "g" and within_bound(int(value), 500_000_000)
    assert f"{p}topic.t.e2e_processing_latency_99" in got and f"{p}topic.t.channel.c.e2e_processing_latency_100" in got
    # 0.995 * 100 is 99.49999999999999 in binary: Go's "%.0f" and Python's both give 99
    assert sum(1 for k in got if k.endswith("e2e_processing_latency_99")) == 2
