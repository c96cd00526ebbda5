"""The client connection state machine, through fake ports: no sockets, no sleeps."""

from __future__ import annotations

import json

import pytest

from broker.client.config import ClientConfig
from broker.client.conn import ConnState, NSQConnection
from broker.client.errors import (
    BadTopicError,
    ConnectionClosedError,
    FinFailedError,
    NotConnectedError,
    NSQClientError,
    ProtocolViolation,
    PubFailedError,
)
from broker.wire import v2
from tests.fakes import FakeClock
from tests.unit.client.fakes import FakeNetwork, FakeNSQD, Recorder, msg_id

CONFIG = ClientConfig(client_id="cid", hostname="host.example", user_agent="nsqsim/test")


def connect(
    config: ClientConfig = CONFIG, *, topic: str | None = "t", channel: str | None = "c"
) -> tuple[NSQConnection, FakeNSQD, Recorder, FakeClock]:
    clock = FakeClock()
    net = FakeNetwork()
    rec = Recorder()
    conn = NSQConnection("127.0.0.1:4150", config, rec, clock, topic=topic, channel=channel)
    conn.start(net)
    peer = net.accept(clock)
    return conn, peer, rec, clock


def ready(
    config: ClientConfig = CONFIG, *, topic: str | None = "t", channel: str | None = "c"
) -> tuple[NSQConnection, FakeNSQD, Recorder, FakeClock]:
    conn, peer, rec, clock = connect(config, topic=topic, channel=channel)
    peer.handshake(subscribe=topic is not None)
    assert rec.ready == [conn]
    return conn, peer, rec, clock


def state(conn: NSQConnection) -> ConnState:
    return conn.state  # read through a call, so mypy does not narrow it between steps


def answers(results: list[NSQClientError | None]) -> list[object]:
    return [None if r is None else type(r) for r in results]


# -- handshake ---------------------------------------------------------------------------------


def test_identify_sends_the_clients_settings_and_asks_for_negotiation() -> None:
    config = CONFIG.replace(heartbeat_interval=5.0, msg_timeout=30.0, output_buffer_timeout=0.1, sample_rate=10)
    _, peer, _, _ = connect(config)
    cmd = peer.command()
    assert isinstance(cmd, v2.Identify)
    body = json.loads(cmd.body)
    assert body == {
        "client_id": "cid",
        "hostname": "host.example",
        "user_agent": "nsqsim/test",
        "feature_negotiation": True,
        "heartbeat_interval": 5000,
        "output_buffer_size": 16384,
        "output_buffer_timeout": 100,
        "sample_rate": 10,
        "msg_timeout": 30000,
        "tls_v1": False,
        "snappy": False,
        "deflate": False,
    }


def test_negotiated_settings_are_read_then_sub_then_ready() -> None:
    conn, peer, rec, _ = connect()
    peer.command()
    assert state(conn) is ConnState.IDENTIFYING
    peer.send(v2.FRAME_RESPONSE, json.dumps({"max_rdy_count": 300, "version": "1.3.0", "msg_timeout": 1234}).encode())
    assert peer.command() == v2.Sub("t", "c")
    assert state(conn) is ConnState.SUBSCRIBING and rec.ready == []
    peer.ok()
    assert state(conn) is ConnState.READY and rec.ready == [conn]
    assert (conn.negotiated.max_rdy_count, conn.negotiated.version, conn.negotiated.msg_timeout) == (300, "1.3.0", 1234)


def test_an_nsqd_that_cannot_negotiate_answers_ok_and_defaults_apply() -> None:
    conn, peer, rec, _ = connect(topic=None, channel=None)
    peer.command()
    peer.ok()
    assert rec.ready == [conn]
    assert conn.max_rdy_count == 2500


def test_auth_is_sent_when_nsqd_requires_it() -> None:
    conn, peer, rec, _ = connect(CONFIG.replace(auth_secret="s3cret"))
    peer.command()
    peer.send(v2.FRAME_RESPONSE, json.dumps({"auth_required": True}).encode())
    assert peer.command() == v2.Auth(b"s3cret")
    peer.send(v2.FRAME_RESPONSE, b'{"identity":"me","identity_url":"","permission_count":1}')
    assert isinstance(peer.command(), v2.Sub)
    peer.ok()
    assert rec.ready == [conn]


def test_auth_required_without_a_secret_fails_the_connection() -> None:
    _, peer, rec, _ = connect()
    peer.command()
    peer.send(v2.FRAME_RESPONSE, json.dumps({"auth_required": True}).encode())
    assert peer.aborted()
    assert rec.ready == [] and len(rec.closed) == 1 and "AUTH" in str(rec.closed[0])


def test_a_fatal_error_during_sub_ends_the_connection_with_that_error() -> None:
    _, peer, rec, _ = connect()
    peer.command()
    peer.send(v2.FRAME_RESPONSE, json.dumps({}).encode())
    peer.command()
    peer.error("E_BAD_TOPIC SUB topic name \"t\" is not valid")
    assert peer.closed()
    [exc] = rec.closed
    assert isinstance(exc, BadTopicError) and exc.fatal
    assert rec.ready == []


def test_a_refused_connection_reports_its_error_once() -> None:
    clock, net, rec = FakeClock(), FakeNetwork(), Recorder()
    conn = NSQConnection("127.0.0.1:4150", CONFIG, rec, clock)
    conn.start(net)
    net.refuse()
    assert [type(e) for e in rec.closed] == [ConnectionRefusedError]
    clock.advance(CONFIG.read_timeout + 1)  # the handshake timer was cancelled
    assert len(rec.closed) == 1


def test_a_handshake_that_never_completes_times_out() -> None:
    _, peer, rec, clock = connect()
    clock.advance(CONFIG.read_timeout - 0.1)
    assert rec.closed == []
    clock.advance(0.2)
    assert peer.aborted()
    assert [type(e) for e in rec.closed] == [TimeoutError]


def test_a_connect_that_lands_after_close_is_aborted() -> None:
    clock, net, rec = FakeClock(), FakeNetwork(), Recorder()
    conn = NSQConnection("127.0.0.1:4150", CONFIG, rec, clock)
    conn.start(net)
    conn.close()
    assert rec.closed == [None]
    peer = net.accept(clock)  # the runtime reports the stream after all
    assert peer.aborted() and rec.closed == [None]


# -- frames in ---------------------------------------------------------------------------------


def test_heartbeats_are_answered_with_nop() -> None:
    _, peer, _, _ = ready()
    peer.commands()
    peer.heartbeat()
    assert peer.commands() == [v2.Nop()]


def test_a_message_split_into_single_bytes_arrives_whole() -> None:
    conn, peer, rec, _ = ready()
    frame = v2.encode_message(123456789, 3, msg_id(7), b"hello world")
    for i in range(len(frame)):
        peer.conn.send(frame[i : i + 1])
    [msg] = rec.messages
    assert (msg.id, msg.body, msg.attempts, msg.timestamp) == (msg_id(7), b"hello world", 3, 123456789)
    assert msg.nsqd_address == "127.0.0.1:4150"
    assert conn.in_flight == 1 and conn.messages_received == 1


def test_many_frames_in_one_read_are_all_handled() -> None:
    _, peer, rec, _ = ready()
    data = b"".join(v2.encode_message(0, 1, msg_id(i), b"m%d" % i) for i in range(50))
    peer.conn.send(data + v2.encode_frame(v2.FRAME_RESPONSE, v2.HEARTBEAT))
    assert [m.body for m in rec.messages] == [b"m%d" % i for i in range(50)]
    assert peer.commands() == [v2.Nop()]


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (b"\x00\x00\x00\x02\x00\x00\x00\x00", "invalid frame size 2"),
        (v2.encode_frame(7, b"x"), "unknown frame type 7"),
        (v2.encode_frame(v2.FRAME_MESSAGE, b"short"), "message frame of 5 bytes"),
        (v2.encode_frame(v2.FRAME_RESPONSE, b"WHAT"), "unexpected response"),
    ],
)
def test_a_peer_breaking_the_protocol_is_dropped(frame: bytes, why: str) -> None:
    _, peer, rec, _ = ready()
    peer.conn.send(frame)
    assert peer.aborted()
    [exc] = rec.closed
    assert isinstance(exc, ProtocolViolation) and why in str(exc)


def test_a_message_on_a_publishing_connection_is_a_violation() -> None:
    _, peer, rec, _ = ready(topic=None, channel=None)
    peer.message(msg_id(1), b"x")
    assert peer.aborted() and isinstance(rec.closed[0], ProtocolViolation)


def test_an_oversized_frame_is_refused_before_it_is_buffered() -> None:
    _, peer, rec, _ = ready(CONFIG.replace(max_frame_size=4096))
    peer.conn.send(b"\x00\x01\x00\x00\x00\x00\x00\x02")  # announces 65536 bytes
    assert peer.aborted() and isinstance(rec.closed[0], ProtocolViolation)


# -- answering messages ---------------------------------------------------------------------------


def test_finish_requeue_and_touch_write_nsqds_commands() -> None:
    conn, peer, rec, _ = ready(CONFIG.replace(default_requeue_delay=90, max_requeue_delay=200))
    peer.commands()
    for i, attempts in enumerate((1, 2, 3, 1), start=1):
        peer.message(msg_id(i), b"x", attempts=attempts)
    m1, m2, m3, m4 = rec.messages
    m1.touch()
    m1.finish()
    m2.requeue()  # 90s x 2 attempts
    m3.requeue()  # 270s, capped at 200s
    m4.requeue(delay=1.5, backoff=False)
    assert peer.commands() == [
        v2.Touch(msg_id(1)),
        v2.Fin(msg_id(1)),
        v2.Req(msg_id(2), 180000),
        v2.Req(msg_id(3), 200000),
        v2.Req(msg_id(4), 1500),
    ]
    assert rec.done == [(msg_id(1), True, False), (msg_id(2), False, True), (msg_id(3), False, True), (msg_id(4), False, False)]
    assert conn.in_flight == 0 and (conn.messages_finished, conn.messages_requeued) == (1, 3)


def test_a_message_is_answered_once() -> None:
    conn, peer, rec, _ = ready()
    peer.commands()
    peer.message(msg_id(1), b"x")
    msg = rec.messages[0]
    msg.finish()
    msg.finish()
    msg.requeue()
    msg.touch()
    assert peer.commands() == [v2.Fin(msg_id(1))]
    assert msg.has_responded and conn.in_flight == 0 and len(rec.done) == 1


def test_answers_given_outside_a_read_go_out_in_one_write() -> None:
    _, peer, rec, clock = ready()
    peer.commands()
    peer.conn.send(b"".join(v2.encode_message(0, 1, msg_id(i), b"x") for i in range(10)))
    writes = peer.conn.writes
    for msg in rec.messages:
        msg.finish()
    assert peer.conn.writes == writes  # nothing yet: flushed on the next clock tick
    clock.advance(0)
    assert peer.conn.writes == writes + 1
    assert peer.commands() == [v2.Fin(msg_id(i)) for i in range(10)]


def test_answers_given_while_reading_are_written_with_the_read() -> None:
    clock, net = FakeClock(), FakeNetwork()

    class FinishAtOnce(Recorder):
        def on_message(self, conn: NSQConnection, msg: object) -> None:
            super().on_message(conn, msg)  # type: ignore[arg-type]
            msg.finish()  # type: ignore[attr-defined]

    conn = NSQConnection("127.0.0.1:4150", CONFIG, FinishAtOnce(), clock, topic="t", channel="c")
    conn.start(net)
    peer = net.accept(clock)
    peer.handshake()
    before = peer.conn.writes
    peer.conn.send(b"".join(v2.encode_message(0, 1, msg_id(i), b"x") for i in range(5)))
    assert peer.conn.writes == before + 1  # no clock tick needed
    assert peer.commands() == [v2.Fin(msg_id(i)) for i in range(5)]


def test_non_fatal_errors_are_reported_and_the_connection_stays() -> None:
    conn, peer, rec, _ = ready()
    peer.error("E_FIN_FAILED FIN 0000000000000001 failed ID not in flight")
    [err] = rec.errors
    assert isinstance(err, FinFailedError) and not err.fatal and err.code == "E_FIN_FAILED"
    assert not peer.closed() and state(conn) is ConnState.READY and rec.closed == []


# -- publishing -----------------------------------------------------------------------------------


def test_publish_answers_are_matched_in_order_and_a_fatal_error_closes() -> None:
    conn, peer, rec, _ = ready(topic=None, channel=None)
    results: list[NSQClientError | None] = []
    for i in range(3):
        conn.publish(v2.encode_pub("t", b"m%d" % i), results.append)
    assert peer.commands() == [v2.Pub("t", b"m0"), v2.Pub("t", b"m1"), v2.Pub("t", b"m2")]
    peer.ok()
    assert results == [None]
    peer.error("E_PUB_FAILED PUB failed exiting")
    assert answers(results) == [None, PubFailedError, ConnectionClosedError]
    assert peer.closed()
    assert isinstance(rec.closed[0], PubFailedError)


def test_publish_before_ready_fails_at_once() -> None:
    conn, _, _, _ = connect(topic=None, channel=None)
    results: list[NSQClientError | None] = []
    conn.publish(v2.encode_pub("t", b"x"), results.append)
    assert answers(results) == [NotConnectedError]


def test_a_lost_connection_fails_every_outstanding_publish() -> None:
    conn, peer, rec, _ = ready(topic=None, channel=None)
    results: list[NSQClientError | None] = []
    conn.publish(v2.encode_pub("t", b"a"), results.append)
    conn.publish(v2.encode_pub("t", b"b"), results.append)
    peer.conn.disconnect()
    assert answers(results) == [ConnectionClosedError, ConnectionClosedError]
    assert [type(e) for e in rec.closed] == [ConnectionResetError]


def test_a_producer_close_waits_for_its_answers() -> None:
    conn, peer, rec, _ = ready(topic=None, channel=None)
    results: list[NSQClientError | None] = []
    conn.publish(v2.encode_pub("t", b"a"), results.append)
    conn.close()
    assert not peer.closed() and state(conn) is ConnState.DRAINING
    assert peer.commands() == [v2.Pub("t", b"a")]  # no CLS from a publisher
    peer.ok()
    assert results == [None] and peer.closed() and rec.closed == [None]


# -- closing a consumer's connection ----------------------------------------------------------------


def test_cls_then_close_wait_then_close_after_the_last_message_is_answered() -> None:
    conn, peer, rec, _ = ready()
    peer.commands()
    peer.message(msg_id(1), b"x")
    conn.close()
    assert peer.commands() == [v2.Cls()]
    assert conn.is_closing
    peer.message(msg_id(2), b"sent before nsqd read CLS")
    peer.close_wait()
    assert state(conn) is ConnState.DRAINING and not peer.closed()
    rec.messages[0].finish()
    assert not peer.closed()
    rec.messages[1].requeue(0, backoff=False)
    assert peer.closed()
    assert rec.closed == [None]
    # the answers went out before the close
    assert peer.commands() == [v2.Fin(msg_id(1)), v2.Req(msg_id(2), 0)]


def test_close_with_nothing_in_flight_closes_on_close_wait() -> None:
    conn, peer, rec, _ = ready()
    conn.close()
    peer.commands()
    peer.close_wait()
    assert peer.closed() and rec.closed == [None]


def test_answers_after_the_connection_is_gone_are_dropped() -> None:
    _, peer, rec, _ = ready()
    peer.commands()
    peer.message(msg_id(1), b"x")
    peer.conn.disconnect()
    written = bytes(peer.conn.written)
    rec.messages[0].finish()
    assert bytes(peer.conn.written) == written


# -- RDY and deadlines ---------------------------------------------------------------------------------


def test_rdy_is_sent_only_when_it_changes_and_never_above_max_rdy_count() -> None:
    conn, peer, _, _ = connect()
    peer.handshake(max_rdy_count=100)
    conn.set_rdy(5)
    conn.set_rdy(5)
    conn.set_rdy(1000)
    conn.set_rdy(0)
    assert peer.commands() == [v2.Rdy(b"5"), v2.Rdy(b"100"), v2.Rdy(b"0")]


def test_silence_longer_than_read_timeout_drops_the_connection() -> None:
    config = CONFIG.replace(heartbeat_interval=1.0, read_timeout=3.0)
    _, peer, rec, clock = ready(config)
    for _ in range(5):  # heartbeats keep it alive
        clock.advance(1.0)
        peer.heartbeat()
    assert rec.closed == []
    clock.advance(2.9)
    assert rec.closed == []
    clock.advance(0.2)
    assert peer.aborted() and [type(e) for e in rec.closed] == [TimeoutError]
