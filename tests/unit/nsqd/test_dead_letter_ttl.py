"""Beyond nsqd: a channel's max attempts with a dead-letter topic, and a topic's message TTL.

Both are off by default (a Go deployment sees nsqd's behaviour and /stats
shape); both are set over HTTP, kept in nsqd.dat, and shown in /stats.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from broker.nsqd.deadletter import DeadLetter, decode_envelope, encode_envelope
from broker.storage.memfs import MemoryFileSystem
from broker.wire import v2
from tests.unit.http.helpers import HTTPClient
from tests.unit.nsqd.harness import Client, Node


def post(node: Node, target: str, body: bytes = b"") -> tuple[int, str]:
    answer = HTTPClient(node.nsqd.http_handler()).request("POST", target, body)
    return answer.status, answer.body.decode()


def stats(node: Node, topic: str = "t") -> dict[str, Any]:
    answer = HTTPClient(node.nsqd.http_handler()).request("GET", f"/stats?format=json&topic={topic}")
    doc: dict[str, Any] = answer.json()["topics"][0]
    return doc


def channel_stats(node: Node, channel: str = "c", topic: str = "t") -> dict[str, Any]:
    return next(c for c in stats(node, topic)["channels"] if c["channel_name"] == channel)


def dead_letter_node(max_attempts: int = 2, **opts: Any) -> Node:
    node = Node(MemoryFileSystem(), **opts)
    assert post(node, "/topic/create?topic=t")[0] == 200
    assert post(node, f"/channel/create?topic=t&channel=c&max_attempts={max_attempts}&dead_letter_topic=dead")[0] == 200
    return node


def envelopes(reader: Client) -> list[DeadLetter]:
    out = []
    for _, _, msg_id, body in reader.messages():
        out.append(decode_envelope(body))
        reader.fin(msg_id)
    return out


def test_the_envelope_round_trips() -> None:
    letter = DeadLetter("t", "c", b"0123456789abcdef", 5, 1_700_000_000_000_000_000, "timed_out", b"\x00\xffbody")
    raw = encode_envelope(letter)
    assert list(json.loads(raw)) == ["topic", "channel", "id", "attempts", "timestamp", "reason", "body"]
    assert decode_envelope(raw) == letter
    with pytest.raises(ValueError, match="not a dead-letter envelope"):
        decode_envelope(b'{"topic": "t"}')


def test_a_message_requeued_after_max_attempts_moves_to_the_dead_letter_topic() -> None:
    node = dead_letter_node(max_attempts=2)
    reader = node.consumer("dead", "r", rdy=10)
    c = node.consumer("t", "c", rdy=1)
    node.publish("t", b"poison")
    node.clock.advance(0.3)  # the 250 ms output buffer flushes
    got = c.messages()
    for attempt in (1, 2):
        [(_, attempts, msg_id, body)] = got
        assert (attempts, body) == (attempt, b"poison")
        got = c.messages(c.send(b"REQ " + msg_id + b" 0\n"))
        node.clock.advance(0.3)
        got += c.messages()
    assert got == []  # not delivered a third time
    [letter] = envelopes(reader)
    assert (letter.topic, letter.channel, letter.attempts, letter.reason, letter.body) == ("t", "c", 2, "requeued", b"poison")
    counts = channel_stats(node)
    assert (counts["depth"], counts["in_flight_count"], counts["dead_lettered_count"]) == (0, 0, 1)
    assert (counts["max_attempts"], counts["dead_letter_topic"]) == (2, "dead")


def test_a_message_that_times_out_after_max_attempts_moves_too() -> None:
    node = dead_letter_node(max_attempts=1, msg_timeout=5.0)
    c = node.consumer("t", "c", rdy=1)
    node.publish("t", b"slow")
    node.clock.advance(0.3)
    assert [m[3] for m in c.messages()] == [b"slow"]
    node.clock.advance(6)  # no answer: timed out
    assert c.messages() == []
    reader = node.consumer("dead", "r", rdy=10)  # the topic buffered it for its first channel
    node.clock.advance(0.3)
    [letter] = envelopes(reader)
    assert (letter.reason, letter.attempts, letter.body) == ("timed_out", 1, b"slow")


def test_a_message_finished_before_max_attempts_is_not_dead_lettered() -> None:
    node = dead_letter_node(max_attempts=2)
    c = node.consumer("t", "c", rdy=1)
    node.publish("t", b"ok")
    node.clock.advance(0.3)
    [(_, _, msg_id, _)] = c.messages()
    got = c.messages(c.send(b"REQ " + msg_id + b" 0\n"))
    node.clock.advance(0.3)
    [(_, attempts, msg_id, _)] = got + c.messages()
    assert attempts == 2
    c.fin(msg_id)
    assert "dead" not in node.nsqd.topics
    assert channel_stats(node)["dead_lettered_count"] == 0


def test_the_options_survive_a_restart_and_can_be_turned_off() -> None:
    node = dead_letter_node(max_attempts=3)
    assert post(node, "/topic/create?topic=t&ttl=90s")[0] == 200
    doc = json.loads(node.fs.contents("/data/nsqd.dat"))  # type: ignore[union-attr]
    topic = doc["topics"][0]
    assert (topic["ttl_ms"], topic["channels"][0]["max_attempts"], topic["channels"][0]["dead_letter_topic"]) == (90_000, 3, "dead")
    node = node.restart()
    got = channel_stats(node)
    assert (got["max_attempts"], got["dead_letter_topic"]) == (3, "dead")
    assert stats(node)["ttl_ms"] == 90_000
    assert post(node, "/channel/create?topic=t&channel=c&max_attempts=0")[0] == 200
    assert post(node, "/topic/create?topic=t&ttl=0")[0] == 200
    node = node.restart()
    assert "max_attempts" not in channel_stats(node) and "ttl_ms" not in stats(node)


def test_off_by_default_the_stats_have_nsqds_shape() -> None:
    node = Node(MemoryFileSystem())
    node.consumer("t", "c")
    topic = stats(node)
    assert not {"ttl_ms", "expired_count"} & set(topic)
    assert not {"max_attempts", "dead_letter_topic", "dead_lettered_count", "expired_count"} & set(topic["channels"][0])


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("max_attempts=x&dead_letter_topic=d", "INVALID_MAX_ATTEMPTS"),
        ("max_attempts=-1&dead_letter_topic=d", "INVALID_MAX_ATTEMPTS"),
        ("max_attempts=70000&dead_letter_topic=d", "INVALID_MAX_ATTEMPTS"),
        ("max_attempts=3", "MISSING_ARG_DEAD_LETTER_TOPIC"),
        ("max_attempts=3&dead_letter_topic=t", "INVALID_DEAD_LETTER_TOPIC"),
        ("max_attempts=3&dead_letter_topic=bad!name", "INVALID_DEAD_LETTER_TOPIC"),
    ],
)
def test_bad_dead_letter_options_are_refused(query: str, error: str) -> None:
    node = Node(MemoryFileSystem())
    assert post(node, "/topic/create?topic=t")[0] == 200
    assert post(node, f"/channel/create?topic=t&channel=c&{query}") == (400, json.dumps({"message": error}, separators=(",", ":")))
    assert "c" not in node.nsqd.topics["t"].channels


@pytest.mark.parametrize("ttl", ["x", "-5", "1y", "-1s"])
def test_a_bad_ttl_is_refused(ttl: str) -> None:
    node = Node(MemoryFileSystem())
    assert post(node, f"/topic/create?topic=t&ttl={ttl}") == (400, '{"message":"INVALID_TTL"}')


def test_a_message_past_the_ttl_is_dropped_and_counted_never_delivered() -> None:
    node = Node(MemoryFileSystem())
    assert post(node, "/topic/create?topic=t&ttl=1000")[0] == 200
    assert post(node, "/channel/create?topic=t&channel=c")[0] == 200
    node.publish("t", b"old")
    node.clock.advance(1.5)
    node.publish("t", b"fresh")
    c = node.consumer("t", "c", rdy=10)
    node.clock.advance(0.3)
    assert [m[3] for m in c.messages()] == [b"fresh"]
    got = channel_stats(node)
    assert (got["depth"], got["expired_count"]) == (0, 1)
    assert stats(node)["expired_count"] == 1


def test_ttl_counts_from_the_publish_through_deferral_requeue_and_timeout() -> None:
    node = Node(MemoryFileSystem(), msg_timeout=5.0)
    assert post(node, "/topic/create?topic=t&ttl=4s")[0] == 200
    c = node.consumer("t", "c", rdy=10)
    p = node.client()
    assert p.send(v2.encode_dpub("t", 6000, b"deferred past its ttl")) == [(v2.FRAME_RESPONSE, b"OK")]
    node.publish("t", b"requeued", b"timed out")
    node.clock.advance(0.3)
    first = {m[3]: m[2] for m in c.messages()}
    assert set(first) == {b"requeued", b"timed out"}
    node.clock.advance(2.7)
    c.send(b"REQ " + first[b"requeued"] + b" 2000\n")  # due again at 5 s, after its TTL
    node.clock.advance(4)  # 7 s: the other timed out at 5 s, the deferred one was due at 6 s
    assert c.messages() == []
    assert channel_stats(node)["expired_count"] == 3
    assert (channel_stats(node)["depth"], channel_stats(node)["deferred_count"]) == (0, 0)


def test_disk_only_dead_letters_wait_for_the_envelopes_fsync() -> None:
    # kill -9 between the dead letter and its fsync: the message or its envelope survives, never neither.
    for seed in range(5):
        node = dead_letter_node(max_attempts=1, mem_queue_size=0, sync_every=1000, sync_timeout=60.0)
        node.consumer("dead", "r", rdy=0)
        c = node.consumer("t", "c", rdy=1)
        node.publish("t", b"poison")
        node.nsqd.topics["t"].channels["c"].backend.sync()
        node.clock.advance(0.3)
        [(_, _, msg_id, _)] = c.messages()
        c.send(b"REQ " + msg_id + b" 0\n")
        # the channel's queue syncs (its read position too) before the dead letter's queue does
        node.nsqd.topics["t"].channels["c"].backend.sync()
        assert node.fs is not None
        node.fs.crash(random.Random(seed))  # type: ignore[attr-defined]
        node = Node(node.fs, node.clock, mem_queue_size=0)
        c = node.consumer("t", "c", rdy=10)
        reader = node.consumer("dead", "r", rdy=10)
        node.clock.advance(1)
        again = [m[3] for m in c.messages(c.log) + c.messages()]
        letters = [decode_envelope(m[3]).body for m in reader.messages(reader.log) + reader.messages()]
        assert again + letters, f"seed {seed}: the message and its dead letter are both gone"


@pytest.mark.parametrize("mem_queue_size", [10000, 0])
def test_a_message_in_flight_at_a_clean_exit_with_its_last_attempt_is_dead_lettered_not_redelivered(mem_queue_size: int) -> None:
    # Found by the model (tests/model/test_refinement_regressions.py) and by the simulator
    # (reference-beyond, seed 4, tests/sim/test_regressions.py): a clean exit writes
    # the in-flight message with its attempts, and the next process delivered it once more
    # than max_attempts.  It is dead-lettered where it would have been delivered.
    node = dead_letter_node(max_attempts=1, mem_queue_size=mem_queue_size)
    c = node.consumer("t", "c", rdy=1)
    node.publish("t", b"last try")
    node.clock.advance(0.3)
    [(_, attempts, _, _)] = c.messages()
    assert attempts == 1
    node = node.restart()
    c = node.consumer("t", "c", rdy=1)
    reader = node.consumer("dead", "r", rdy=10)
    node.clock.advance(1)
    assert c.messages(c.log) + c.messages() == []
    [letter] = envelopes(reader)
    assert (letter.reason, letter.attempts, letter.body) == ("exhausted", 1, b"last try")
    assert channel_stats(node)["dead_lettered_count"] == 1


def test_a_channel_emptied_while_a_dead_letter_waits_for_its_fsync_survives_the_fsync() -> None:
    # Found reading the model's empty rule: the group commit released a record that the
    # empty had already let go, and the KeyError escaped from the dead-letter topic's fsync.
    node = dead_letter_node(max_attempts=1, mem_queue_size=0)
    c = node.consumer("t", "c", rdy=1)
    node.publish("t", b"poison")
    node.clock.advance(0.3)
    [(_, _, msg_id, _)] = c.messages()
    c.send(b"REQ " + msg_id + b" 0\n")  # the envelope's fsync runs on the next turn
    node.nsqd.topics["t"].channels["c"].empty()
    node.clock.advance(0)
    node.publish("t", b"next")
    node.clock.advance(0.3)
    assert [m[3] for m in c.messages()] == [b"next"]
    reader = node.consumer("dead", "r", rdy=10)
    node.clock.advance(0.3)
    assert [letter.body for letter in envelopes(reader)] == [b"poison"]
