"""One PUB at a time, fanned out to several channels and consumers: the simulator's pattern.

These pin what the single-message paths (``Topic.put_message``,
``ClientV2.send_message``, ``Channel.finish_many``) must keep doing exactly as
the batch paths do.
"""

from __future__ import annotations

from broker.ports import ConnectionHandler
from broker.wire import v2
from tests.fakes import FakeConnection
from tests.unit.nsqd.harness import Node

E = v2.FRAME_ERROR
OK = (v2.FRAME_RESPONSE, b"OK")


class WriteRecorder(FakeConnection):
    """A connection that also keeps each write apart."""

    def __init__(self, handler: ConnectionHandler) -> None:
        self.writes: list[bytes] = []
        super().__init__(handler)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))
        super().write(data)


def test_single_pubs_round_robin_over_the_consumers_of_each_channel() -> None:
    node = Node()
    a1, a2 = node.consumer("t", "a", rdy=10), node.consumer("t", "a", rdy=10)
    b1, b2 = node.consumer("t", "b", rdy=10), node.consumer("t", "b", rdy=10)
    node.publish("t", b"0", b"1", b"2", b"3")
    node.clock.advance(1)  # the output buffer timeout
    got = {name: c.messages() for name, c in (("a1", a1), ("a2", a2), ("b1", b1), ("b2", b2))}
    assert [m[3] for m in got["a1"]] == [m[3] for m in got["b1"]] == [b"0", b"2"]
    assert [m[3] for m in got["a2"]] == [m[3] for m in got["b2"]] == [b"1", b"3"]
    # the same message (id, timestamp) in both channels, each a first attempt
    assert [(m[0], m[2]) for m in got["a1"] + got["a2"]] == [(m[0], m[2]) for m in got["b1"] + got["b2"]]
    assert all(m[1] == 1 for ms in got.values() for m in ms)


def test_a_full_channel_refuses_a_pub_for_every_channel() -> None:
    node = Node(mem_queue_size=1)
    a = node.consumer("t", "a", rdy=10)
    node.consumer("t", "b", rdy=0)
    p = node.client()
    assert p.send(v2.encode_pub("t", b"1")) == [OK]
    assert p.send(v2.encode_pub("t", b"2")) == [(E, b"E_PUB_FAILED PUB failed channel b queue full (mem-queue-size 1)")]
    assert p.closed
    node.clock.advance(1)
    assert [m[3] for m in a.messages()] == [b"1"]  # nothing of the refused PUB reached channel a
    topic = node.nsqd.topics["t"]
    assert topic.message_count == 1
    assert topic.channels["a"].message_count == topic.channels["b"].message_count == 1


def test_dpub_to_two_channels_waits_in_each() -> None:
    node = Node()
    a = node.consumer("t", "a", rdy=1)
    b = node.consumer("t", "b", rdy=1)
    p = node.client()
    assert p.send(v2.encode_dpub("t", 100, b"later")) == [OK]
    assert a.messages() == [] and b.messages() == []
    node.clock.advance(0.11)
    assert [m[3] for m in a.messages()] == [m[3] for m in b.messages()] == [b"later"]


def test_a_run_of_fins_answers_each_failure_in_order_and_finishes_the_rest() -> None:
    node = Node()
    c = node.consumer("t", "c", rdy=3)
    other = node.consumer("t", "c", rdy=3)
    node.publish("t", b"1", b"2", b"3", b"4")
    node.clock.advance(1)
    mine = [m[2] for m in c.messages()]
    theirs = [m[2] for m in other.messages()]
    assert len(mine) == len(theirs) == 2
    unknown = b"ffffffffffffffff"
    run = b"".join(b"FIN " + i + b"\n" for i in (mine[0], unknown, theirs[0], mine[1]))
    assert c.send(run) == [
        (E, b"E_FIN_FAILED FIN " + unknown + b" failed ID not in flight"),
        (E, b"E_FIN_FAILED FIN " + theirs[0] + b" failed client does not own message"),
    ]
    assert not c.closed
    client = node.nsqd.clients[c.conn.handler.id]  # type: ignore[attr-defined]
    assert (client.finish_count, client.in_flight_count) == (2, 0)
    channel = node.nsqd.topics["t"].channels["c"]
    assert sorted(channel.in_flight) == sorted(theirs)


def test_a_lone_answer_is_one_write_and_messages_go_out_together_when_rdy_is_reached() -> None:
    node = Node()
    consumer = WriteRecorder(node.nsqd.tcp_handler())
    consumer.handler.data_received(v2.MAGIC_V2 + b"SUB t c\nRDY 2\n")
    producer = WriteRecorder(node.nsqd.tcp_handler())
    producer.handler.data_received(v2.MAGIC_V2)
    consumer.writes.clear()
    producer.handler.data_received(v2.encode_pub("t", b"a"))
    assert producer.writes == [v2.encode_frame(v2.FRAME_RESPONSE, v2.OK)]
    assert consumer.writes == []  # buffered: still ready for one more
    producer.handler.data_received(v2.encode_pub("t", b"b"))
    assert len(consumer.writes) == 1  # RDY reached: both frames in one flush
    frames = v2.FrameParser()
    frames.feed(consumer.writes[0])
    bodies = []
    while (frame := frames.next_frame()) is not None:
        assert frame[0] == v2.FRAME_MESSAGE
        bodies.append(v2.decode_message(frame[1])[3])
    assert bodies == [b"a", b"b"]
