"""``/stats`` as JSON (checked against what a real nsqd 1.3.0 returned) and as text."""

from __future__ import annotations

import re
from typing import Any

import pytest

from broker.nsqd.stats import MEMORY_KEYS, go_duration, python_memory_stats
from broker.wire import v2
from tests.fakes import FakeConnection
from tests.unit.http.helpers import Node, assert_shape, reference

NSQ_TAIL = {"client_id": "vm", "hostname": "vm", "user_agent": "nsq_tail/1.3.0 go-nsq/1.1.0", "feature_negotiation": True}


def consume(node: Node, topic: str = "test_topic", channel: str = "test_channel") -> FakeConnection:
    consumer = node.tcp(**NSQ_TAIL)
    consumer.send(f"SUB {topic} {channel}\nRDY 200\n".encode())
    assert consumer.frames() == [(v2.FRAME_RESPONSE, b"OK")]
    return consumer


def finish_all(node: Node, consumer: FakeConnection) -> None:
    node.clock.advance(1.0)  # past the output buffer timeout
    for kind, data in consumer.frames():
        assert kind == v2.FRAME_MESSAGE
        consumer.send(b"FIN " + v2.decode_message(data)[2] + b"\n")


def produce(node: Node, topic: str, *bodies: bytes) -> FakeConnection:
    producer = node.tcp(client_id="py-producer", hostname="py-host", user_agent="anchor-producer/0.1")
    for body in bodies:
        producer.send(v2.encode_pub(topic, body))
    assert producer.frames() == [(v2.FRAME_RESPONSE, b"OK")] * len(bodies)
    return producer


def stats(node: Node, query: str = "") -> Any:
    answer = node.request("GET", "/stats?format=json" + query)
    assert answer.status == 200
    return answer.json()


def test_json_has_nsqd_shape_with_a_consumer() -> None:
    node = Node()
    consumer = consume(node)
    for body in (b"a", b"bb", b"ccc"):
        node.request("POST", "/pub?topic=test_topic", body)
    finish_all(node, consumer)
    got = stats(node)
    assert_shape(reference("nsqd-1.3.0-stats.json"), got)
    assert got["producers"] is None  # HTTP publishers are not clients
    [topic] = got["topics"]
    assert (topic["topic_name"], topic["message_count"], topic["message_bytes"]) == ("test_topic", 3, 6)
    [channel] = topic["channels"]
    assert (channel["message_count"], channel["client_count"], channel["in_flight_count"]) == (3, 1, 0)
    [client] = channel["clients"]
    assert client["remote_address"] == "127.0.0.1:50001"
    assert {k: client[k] for k in ("client_id", "hostname", "user_agent", "state", "ready_count", "finish_count")} == {
        "client_id": "vm",
        "hostname": "vm",
        "user_agent": "nsq_tail/1.3.0 go-nsq/1.1.0",
        "state": 3,
        "ready_count": 200,
        "finish_count": 3,
    }


def test_json_has_nsqd_shape_with_a_producer() -> None:
    node = Node()
    consumer = consume(node)
    produce(node, "test_topic", b"one", b"two", b"three")
    finish_all(node, consumer)
    got = stats(node)
    assert_shape(reference("nsqd-1.3.0-stats-with-producer.json"), got)
    [producer] = got["producers"]
    assert producer["pub_counts"] == [{"topic": "test_topic", "count": 3}]
    assert (producer["client_id"], producer["state"], producer["user_agent"]) == ("py-producer", 0, "anchor-producer/0.1")
    assert "pub_counts" not in got["topics"][0]["channels"][0]["clients"][0]


def test_json_of_an_empty_node() -> None:
    got = stats(Node())
    assert got["topics"] == [] and got["producers"] is None
    assert got["version"] == "1.3.0" and got["health"] == "OK" and got["start_time"] == 1795835051


def test_health_is_reported() -> None:
    node = Node()
    node.nsqd.health = "NOK - disk full"
    assert stats(node)["health"] == "NOK - disk full"


def test_queue_counts() -> None:
    node = Node()
    consumer = node.tcp()
    consumer.send(b"SUB t c\nRDY 1\n")
    node.request("POST", "/pub?topic=t", b"in flight")
    node.request("POST", "/pub?topic=t", b"queued")
    node.request("POST", "/pub?topic=t&defer=5000", b"deferred")
    [channel] = stats(node)["topics"][0]["channels"]
    assert (channel["depth"], channel["in_flight_count"], channel["deferred_count"], channel["message_count"]) == (1, 1, 1, 3)
    assert channel["clients"][0]["in_flight_count"] == 1


def test_topics_and_channels_are_sorted_by_name() -> None:
    node = Node()
    for topic in ("b", "a", "c"):
        node.request("POST", f"/topic/create?topic={topic}")
    for channel in ("z", "x", "y"):
        node.request("POST", f"/channel/create?topic=b&channel={channel}")
    got = stats(node)
    assert [t["topic_name"] for t in got["topics"]] == ["a", "b", "c"]
    assert [c["channel_name"] for c in got["topics"][1]["channels"]] == ["x", "y", "z"]


def test_include_clients_false() -> None:
    node = Node()
    consume(node)
    produce(node, "test_topic", b"x")
    for value in ("false", "0"):
        got = stats(node, f"&include_clients={value}")
        channel = got["topics"][0]["channels"][0]
        assert channel["clients"] is None and channel["client_count"] == 1
        assert got["producers"] is None
    for value in ("true", "1", "nonsense", ""):
        assert stats(node, f"&include_clients={value}")["producers"] is not None


def test_include_mem_false_leaves_memory_out() -> None:
    node = Node()
    assert "memory" not in stats(node, "&include_mem=false")
    assert list(stats(node, "&include_mem=true")["memory"]) == list(MEMORY_KEYS)


def test_memory_comes_from_the_runtime() -> None:
    node = Node()
    assert set(stats(node)["memory"].values()) == {0}
    node.nsqd.memory_stats = lambda: {"heap_objects": 12, "gc_total_runs": 3}
    memory = stats(node)["memory"]
    assert (memory["heap_objects"], memory["gc_total_runs"], memory["next_gc_bytes"]) == (12, 3, 0)
    figures = python_memory_stats()
    assert set(figures) <= set(MEMORY_KEYS) and all(isinstance(v, int) and v >= 0 for v in figures.values())


def test_topic_and_channel_filters() -> None:
    node = Node()
    for topic, channel in (("t1", "c1"), ("t1", "c2"), ("t2", "c1"), ("t3", "c3")):
        node.request("POST", f"/topic/create?topic={topic}")
        node.request("POST", f"/channel/create?topic={topic}&channel={channel}")
    produce(node, "t1", b"x")

    got = stats(node, "&topic=t1")
    assert [t["topic_name"] for t in got["topics"]] == ["t1"]
    assert [c["channel_name"] for c in got["topics"][0]["channels"]] == ["c1", "c2"]

    got = stats(node, "&topic=t1&channel=c2")
    assert [c["channel_name"] for c in got["topics"][0]["channels"]] == ["c2"]

    got = stats(node, "&channel=c1")  # across topics; topics without it are left out
    assert [(t["topic_name"], [c["channel_name"] for c in t["channels"]]) for t in got["topics"]] == [("t1", ["c1"]), ("t2", ["c1"])]

    assert stats(node, "&channel=nope")["topics"] == []
    got = stats(node, "&topic=nope")
    assert got["topics"] is None and got["producers"] is None  # nsqd's zero Stats


def test_producer_pub_counts_follow_the_topic_filter() -> None:
    node = Node()
    producer = produce(node, "b", b"1", b"2")
    producer.send(v2.encode_pub("a", b"3"))
    node.request("POST", "/topic/create?topic=c")
    [p] = stats(node)["producers"]
    assert p["pub_counts"] == [{"topic": "a", "count": 1}, {"topic": "b", "count": 2}]
    [p] = stats(node, "&topic=b")["producers"]
    assert p["pub_counts"] == [{"topic": "b", "count": 2}]
    [p] = stats(node, "&topic=c")["producers"]
    assert "pub_counts" not in p  # still a producer, with nothing for this topic


def test_a_connection_that_neither_published_nor_subscribed_is_not_listed() -> None:
    node = Node()
    node.tcp(client_id="idle")
    assert stats(node)["producers"] is None


def test_paused_flags() -> None:
    node = Node()
    node.request("POST", "/topic/create?topic=t")
    node.request("POST", "/channel/create?topic=t&channel=c")
    node.request("POST", "/channel/pause?topic=t&channel=c")
    topic = stats(node)["topics"][0]
    assert (topic["paused"], topic["channels"][0]["paused"]) == (False, True)


def test_stats_errors() -> None:
    node = Node()
    answer = node.request("GET", "/stats?format=json&topic=%zz")
    assert (answer.status, answer.message) == (400, "INVALID_REQUEST")


# -- text ------------------------------------------------------------------------------


def test_text_page() -> None:
    node = Node()
    consumer = consume(node, "test_topic", "test_channel")
    produce(node, "test_topic", b"x", b"yy")
    node.request("POST", "/topic/create?topic=a_topic_with_a_long_name")
    node.request("POST", "/channel/create?topic=a_topic_with_a_long_name&channel=ch")
    node.request("POST", "/channel/pause?topic=a_topic_with_a_long_name&channel=ch")
    node.request("POST", "/topic/pause?topic=a_topic_with_a_long_name")
    finish_all(node, consumer)
    node.clock.advance(20.5)  # (under the heartbeat timeouts that would close the clients)
    answer = node.request("GET", "/stats")
    assert answer.header("Content-Type") == "text/plain; charset=utf-8"
    lines = answer.body.decode().split("\n")
    assert re.fullmatch(r"nsqd v1\.3\.0 \(built w/[a-z]+\d+\.\d+\.\d+\S*\)", lines[0])  # as --version
    assert answer.body.decode().split("\n", 1)[1] == (
        "start_time 2026-11-28T03:04:11Z\n"
        "uptime 21.5s\n"
        "\n"
        "Health: OK\n"
        "\n"
        "Memory:\n"
        "   heap_objects             \t0\n"
        "   heap_idle_bytes          \t0\n"
        "   heap_in_use_bytes        \t0\n"
        "   heap_released_bytes      \t0\n"
        "   gc_pause_usec_100        \t0\n"
        "   gc_pause_usec_99         \t0\n"
        "   gc_pause_usec_95         \t0\n"
        "   next_gc_bytes            \t0\n"
        "   gc_total_runs            \t0\n"
        "\n"
        "Topics:\n"
        "*P [a_topic_with_a_long_name] depth: 0     be-depth: 0     msgs: 0        e2e%: \n"
        "   *P [ch                       ] depth: 0     be-depth: 0     inflt: 0    def: 0    re-q: 0     timeout: 0     msgs: 0        e2e%: \n"
        "\n"
        "   [test_topic     ] depth: 0     be-depth: 0     msgs: 2        e2e%: \n"
        "      [test_channel             ] depth: 0     be-depth: 0     inflt: 0    def: 0    re-q: 0     timeout: 0     msgs: 2        e2e%: \n"
        "        [V2 vm:50001 nsq_tail/1.3.0 go-nsq/1.1.0] state: 3 inflt: 0    rdy: 200  fin: 2        re-q: 0        msgs: 2        connected: 21s\n"
        "\n"
        "Producers:\n"
        "   [V2 py-host:50002 anchor-producer/0.1] msgs: 2        topics: test_topic=2 connected: 21s\n"
    )


def test_text_page_of_an_empty_node_without_memory() -> None:
    body = Node().request("GET", "/stats?include_mem=0&format=text").body.decode()
    assert body.split("\n", 1)[1] == "start_time 2026-11-28T03:04:11Z\nuptime 0s\n\nHealth: OK\n\nTopics: None\n\nProducers: None\n"


def test_text_client_line_pads_short_names() -> None:
    node = Node()
    consumer = node.tcp(hostname="h", user_agent="ua")
    consumer.send(b"SUB t c\n")
    body = node.request("GET", "/stats?include_mem=false").body.decode()
    assert "        [V2 h:50001 ua           ] state: 3 inflt: 0    rdy: 0    fin: 0        re-q: 0        msgs: 0        connected: 0s\n" in body


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (999, "999ns"),
        (1_500, "1.5\u00b5s"),
        (95_007, "95.007\u00b5s"),
        (2_000_000, "2ms"),
        (1_500_000_000, "1.5s"),
        (60_000_000_000, "1m0s"),
        (3_723_000_000_000, "1h2m3s"),
        (2_123_102_243, "2.123102243s"),
        (-1_500_000_000, "-1.5s"),
    ],
)
def test_go_duration(ns: int, text: str) -> None:
    assert go_duration(ns) == text


@pytest.mark.parametrize(
    ("ref", "got"),
    [
        ({"a": 1, "b": 2}, {"a": 1}),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}),
        ({"a": 1}, {"a": True}),
        ({"a": False}, {"a": 0}),
        ({"a": None}, {"a": []}),
        ({"a": [{"x": "s"}]}, {"a": []}),
        ({"a": [{"x": "s"}]}, {"a": [{"x": 1}]}),
        ({"a": {"x": 1}}, {"a": None}),
        ({"a": 1, "b": 2}, {"a": 1, "extra": 0, "b": 2}),
    ],
)
def test_shape_check_can_fail(ref: Any, got: Any) -> None:
    with pytest.raises(AssertionError):
        assert_shape(ref, got)
