"""nsqd's V2 protocol through fake ports: every command, its answers and its errors."""

from __future__ import annotations

import re

from broker.wire import v2
from tests.unit.nsqd.harness import Node, negotiated

E = v2.FRAME_ERROR
R = v2.FRAME_RESPONSE
OK = (R, b"OK")


def test_bad_magic_gets_e_bad_protocol_and_a_close() -> None:
    node = Node()
    from tests.fakes import FakeConnection

    conn = FakeConnection(node.nsqd.tcp_handler())
    conn.send(b"  V1PING\n")
    assert conn.frames() == [(E, b"E_BAD_PROTOCOL")]
    assert conn.closed


def test_magic_may_arrive_split_and_with_the_first_command() -> None:
    node = Node()
    from tests.fakes import FakeConnection

    conn = FakeConnection(node.nsqd.tcp_handler())
    conn.send(b"  ")
    conn.send(b"V2PU")
    conn.send(b"B t\n" + b"\x00\x00\x00\x01x")
    assert conn.frames() == [OK]


def test_identify_with_feature_negotiation_answers_nsqds_json_in_its_key_order() -> None:
    node = Node()
    c = node.client()
    frames = c.identify(feature_negotiation=True, client_id="c1", hostname="h1", user_agent="ua/1")
    assert frames[0][1].startswith(b'{"max_rdy_count":2500,"version":"1.3.0","max_msg_timeout":900000,')
    got = negotiated(frames)
    assert list(got) == [
        "max_rdy_count", "version", "max_msg_timeout", "msg_timeout", "tls_v1", "deflate", "deflate_level",
        "max_deflate_level", "snappy", "sample_rate", "auth_required", "output_buffer_size", "output_buffer_timeout",
    ]
    assert got == {
        "max_rdy_count": 2500, "version": "1.3.0", "max_msg_timeout": 900000, "msg_timeout": 60000, "tls_v1": False,
        "deflate": False, "deflate_level": 6, "max_deflate_level": 6, "snappy": False, "sample_rate": 0,
        "auth_required": False, "output_buffer_size": 16384, "output_buffer_timeout": 250,
    }
    client = next(iter(node.nsqd.clients.values()))
    assert (client.client_id, client.hostname, client.user_agent) == ("c1", "h1", "ua/1")


def test_identify_is_logged_as_nsqd_logs_its_struct() -> None:
    node = Node()
    node.client().identify(client_id="c1", hostname="h1", user_agent="ua/1", heartbeat_interval=2000, deflate=True)
    [line] = [msg for level, msg in node.logger.lines if "PROTOCOL(V2)" in msg and level == "DEBUG"]
    # Go's "PROTOCOL(V2): [%s] %+v" of identifyDataV2: field names, unquoted values, in struct order
    assert re.fullmatch(
        r"PROTOCOL\(V2\): \[[^\]]+\] \{ClientID:c1 Hostname:h1 HeartbeatInterval:2000 OutputBufferSize:0"
        r" OutputBufferTimeout:0 FeatureNegotiation:false TLSv1:false Deflate:true DeflateLevel:0 Snappy:false"
        r" SampleRate:0 UserAgent:ua/1 MsgTimeout:0\}",
        line,
    ), line


def test_identify_settings_are_negotiated() -> None:
    node = Node()
    c = node.client()
    got = negotiated(c.identify(feature_negotiation=True, msg_timeout=5000, sample_rate=50, output_buffer_size=1024, output_buffer_timeout=100, heartbeat_interval=2000))
    assert got["msg_timeout"] == 5000
    assert got["sample_rate"] == 50
    assert got["output_buffer_size"] == 1024
    assert got["output_buffer_timeout"] == 100
    assert not c.closed


def test_identify_without_negotiation_answers_ok() -> None:
    assert Node().client().identify(client_id="x") == [OK]


def test_identify_invalid_values_are_fatal_e_bad_body() -> None:
    cases = {
        "heartbeat_interval": (999, "E_BAD_BODY IDENTIFY heartbeat interval (999) is invalid"),
        "output_buffer_size": (63, "E_BAD_BODY IDENTIFY output buffer size (63) is invalid"),
        "output_buffer_timeout": (1, "E_BAD_BODY IDENTIFY output buffer timeout (1) is invalid"),
        "sample_rate": (100, "E_BAD_BODY IDENTIFY sample rate (100) is invalid"),
        "msg_timeout": (999, "E_BAD_BODY IDENTIFY msg timeout (999) is invalid"),
    }
    for field, (value, error) in cases.items():
        c = Node().client()
        assert c.identify(**{field: value}) == [(E, error.encode())], field
        assert c.closed


def test_identify_bad_json_and_wrong_types() -> None:
    for body in (b"{", b"[1]", b'{"heartbeat_interval": "30"}', b'{"msg_timeout": 1.5}', b'{"tls_v1": 1}', b'{"sample_rate": 4294967296}'):
        c = Node().client()
        assert c.send(v2.encode_command(b"IDENTIFY", body=body)) == [(E, b"E_BAD_BODY IDENTIFY failed to decode JSON body")], body
        assert c.closed
    # unknown keys, null, and keys in another case are accepted, as Go's encoding/json does
    c = Node().client()
    assert c.send(v2.encode_command(b"IDENTIFY", body=b'{"nope": [1], "client_id": null, "Feature_Negotiation": false}')) == [OK]


def test_identify_after_sub_is_rejected() -> None:
    node = Node()
    c = node.consumer("t", "c")
    assert c.identify(client_id="x") == [(E, b"E_INVALID cannot IDENTIFY in current state")]
    assert c.closed


def test_auth_without_an_auth_server() -> None:
    c = Node().client()
    assert c.send(v2.encode_command(b"AUTH", body=b"secret")) == [(E, b"E_AUTH_DISABLED AUTH disabled")]
    assert c.closed


def test_sub_errors() -> None:
    node = Node()
    c = node.consumer("t", "c")
    assert c.send(b"SUB t c2\n") == [(E, b"E_INVALID cannot SUB in current state")]
    c = node.client()
    c.identify(heartbeat_interval=-1)
    assert c.send(b"SUB t c\n") == [(E, b"E_INVALID cannot SUB with heartbeats disabled")]
    c = node.client()
    assert c.send(b"SUB t bad/chan\n") == [(E, b'E_BAD_CHANNEL SUB channel name "bad/chan" is not valid')]
    assert c.closed


def test_commands_in_the_wrong_state() -> None:
    for line in (b"RDY 1\n", b"FIN 0123456789abcdef\n", b"REQ 0123456789abcdef 0\n", b"TOUCH 0123456789abcdef\n", b"CLS\n"):
        c = Node().client()
        name = line.split()[0].decode()
        assert c.send(line) == [(E, f"E_INVALID cannot {name} in current state".encode())]
        assert c.closed


def test_unknown_command_is_fatal() -> None:
    c = Node().client()
    assert c.send(b"HELLO\n") == [(E, b"E_INVALID invalid command HELLO")]
    assert c.closed


def test_pub_delivers_to_a_consumer() -> None:
    node = Node()
    c = node.consumer("t", "c")
    node.publish("t", b"hello")
    [(ts, attempts, msg_id, body)] = c.messages()
    assert (attempts, body) == (1, b"hello")
    assert re.fullmatch(rb"[0-9a-f]{16}", msg_id)
    assert ts == node.clock.wall_ns()
    stats = node.nsqd.topics["t"]
    assert (stats.message_count, stats.message_bytes) == (1, 5)


def test_message_ids_encode_the_node_id_and_are_unique() -> None:
    node = Node()
    c = node.consumer("t", "c", rdy=100)
    node.publish("t", *[b"m%d" % i for i in range(50)])
    node.clock.advance(1)
    ids = [m[2] for m in c.messages()]
    assert len(ids) == len(set(ids)) == 50
    assert all((int(i, 16) >> 12) & 0x3FF == 7 for i in ids)


def test_mpub_is_delivered_whole() -> None:
    node = Node()
    c = node.consumer("t", "c", rdy=10)
    p = node.client()
    assert p.send(v2.encode_mpub("t", [b"a", b"b", b"c"])) == [OK]
    node.clock.advance(1)  # the output buffer timeout flushes a still-ready client
    assert [m[3] for m in c.messages()] == [b"a", b"b", b"c"]


def test_publish_past_the_memory_bound_is_refused_whole() -> None:
    node = Node(mem_queue_size=3)
    p = node.client()
    assert p.send(v2.encode_mpub("t", [b"1", b"2"])) == [OK]
    frames = p.send(v2.encode_mpub("t", [b"3", b"4"]))
    assert frames == [(E, b"E_MPUB_FAILED MPUB failed topic queue full (mem-queue-size 3)")]
    assert p.closed
    assert node.nsqd.topics["t"].depth() == 2  # nothing of the refused MPUB was kept
    p = node.client()
    assert p.send(v2.encode_pub("t", b"3")) == [OK]
    assert p.send(v2.encode_pub("t", b"4")) == [(E, b"E_PUB_FAILED PUB failed topic queue full (mem-queue-size 3)")]


def test_ephemeral_channel_drops_past_its_memory_bound() -> None:
    node = Node(mem_queue_size=2)
    c = node.consumer("t", "c#ephemeral", rdy=0)
    node.publish("t", b"1", b"2", b"3")
    channel = node.nsqd.topics["t"].channels["c#ephemeral"]
    assert channel.depth() == 2
    assert channel.backend.dropped == 1  # type: ignore[attr-defined]
    assert not c.closed


def test_rdy_limits_messages_in_flight_and_fin_releases_the_next() -> None:
    node = Node()
    c = node.consumer("t", "c", rdy=0)
    node.publish("t", b"1", b"2", b"3")
    assert c.messages() == []
    first = c.messages(c.send(b"RDY 2\n"))
    assert [m[3] for m in first] == [b"1", b"2"]
    assert [m[3] for m in c.messages(c.fin(first[0][2]))] == [b"3"]
    client = next(cl for cl in node.nsqd.clients.values() if cl.channel is not None)
    assert (client.in_flight_count, client.finish_count, client.message_count) == (2, 1, 3)


def test_rdy_out_of_range_is_fatal() -> None:
    node = Node(max_rdy_count=10)
    c = node.consumer("t", "c", rdy=None)  # type: ignore[arg-type]
    assert c.send(b"RDY 11\n") == [(E, b"E_INVALID RDY count 11 out of range 0-10")]
    assert c.closed


def test_fin_errors_are_not_fatal() -> None:
    node = Node()
    a = node.consumer("t", "c")
    b = node.consumer("t", "c")
    node.publish("t", b"x")
    got_a, got_b = a.messages(), b.messages()
    assert len(got_a) + len(got_b) == 1
    owner, stranger = (a, b) if got_a else (b, a)
    msg_id = (got_a or got_b)[0][2]
    unknown = b"ffffffffffffffff"
    assert owner.fin(unknown) == [(E, b"E_FIN_FAILED FIN ffffffffffffffff failed ID not in flight")]
    assert not owner.closed
    assert stranger.fin(msg_id) == [(E, b"E_FIN_FAILED FIN " + msg_id + b" failed client does not own message")]
    assert not stranger.closed
    assert owner.fin(msg_id) == []


def test_req_requeues_with_attempts_and_counts() -> None:
    node = Node()
    c = node.consumer("t", "c")
    node.publish("t", b"x")
    [(_, attempts, msg_id, _)] = c.messages()
    assert attempts == 1
    [(_, attempts, again, _)] = c.messages(c.send(b"REQ " + msg_id + b" 0\n"))
    assert (attempts, again) == (2, msg_id)
    channel = node.nsqd.topics["t"].channels["c"]
    assert channel.requeue_count == 1


def test_req_with_a_delay_defers_the_message() -> None:
    node = Node()
    c = node.consumer("t", "c")
    node.publish("t", b"x")
    [(_, _, msg_id, _)] = c.messages()
    c.send(b"REQ " + msg_id + b" 5000\n")
    channel = node.nsqd.topics["t"].channels["c"]
    assert len(channel.deferred) == 1
    node.clock.advance(4.9)
    assert c.messages() == []
    node.clock.advance(0.2)
    assert [(m[1], m[2]) for m in c.messages()] == [(2, msg_id)]
    assert len(channel.deferred) == 0


def test_req_of_an_unknown_message_is_not_fatal() -> None:
    c = Node().consumer("t", "c")
    assert c.send(b"REQ ffffffffffffffff 0\n") == [(E, b"E_REQ_FAILED REQ ffffffffffffffff failed ID not in flight")]
    assert not c.closed


def test_dpub_is_not_delivered_early() -> None:
    node = Node()
    c = node.consumer("t", "c")
    p = node.client()
    assert p.send(v2.encode_dpub("t", 2000, b"later")) == [OK]
    node.clock.advance(1.99)
    assert c.messages() == []
    node.clock.advance(0.02)
    assert [m[3] for m in c.messages()] == [b"later"]


def test_in_flight_timeout_requeues_with_the_next_attempt() -> None:
    node = Node(msg_timeout=10.0)
    c = node.consumer("t", "c", heartbeat_interval=60000)
    node.publish("t", b"x")
    [(_, _, msg_id, _)] = c.messages()
    node.clock.advance(9.9)
    assert c.messages() == []
    node.clock.advance(0.2)
    assert [(m[1], m[2]) for m in c.messages()] == [(2, msg_id)]
    assert node.nsqd.topics["t"].channels["c"].timeout_count == 1


def test_client_msg_timeout_is_used() -> None:
    node = Node()
    c = node.consumer("t", "c", msg_timeout=2000)
    node.publish("t", b"x")
    assert len(c.messages()) == 1
    node.clock.advance(2.1)
    assert [m[1] for m in c.messages()] == [2]


def test_touch_restarts_the_timeout_but_not_past_max_msg_timeout() -> None:
    node = Node(msg_timeout=10.0, max_msg_timeout=15.0)
    c = node.consumer("t", "c", heartbeat_interval=60000)
    node.publish("t", b"x")
    [(_, _, msg_id, _)] = c.messages()
    node.clock.advance(8)
    assert c.send(b"TOUCH " + msg_id + b"\n") == []
    node.clock.advance(6)  # 14 s after delivery: the touch moved the deadline to 15 s (capped)
    assert c.messages() == []
    node.clock.advance(1.1)
    assert [m[1] for m in c.messages()] == [2]
    assert c.send(b"TOUCH ffffffffffffffff\n") == [(E, b"E_TOUCH_FAILED TOUCH ffffffffffffffff failed ID not in flight")]


def test_cls_stops_delivery_but_fin_still_works() -> None:
    node = Node()
    c = node.consumer("t", "c", rdy=5)
    node.publish("t", b"1")
    node.clock.advance(1)
    [(_, _, msg_id, _)] = c.messages()
    assert c.send(b"CLS\n") == [(R, b"CLOSE_WAIT")]
    node.publish("t", b"2")
    node.clock.advance(1)
    assert c.messages() == []
    assert c.send(b"RDY 10\n") == []  # ignored after CLS
    assert c.fin(msg_id) == []
    assert not c.closed


def test_heartbeats_and_the_read_deadline() -> None:
    node = Node()
    c = node.client()
    c.identify(heartbeat_interval=1000)
    node.clock.advance(1.0)
    assert c.frames() == [(R, b"_heartbeat_")]
    c.send(b"NOP\n")
    node.clock.advance(1.5)
    assert c.frames() == [(R, b"_heartbeat_")]
    assert not c.closed
    node.clock.advance(2.0)  # nothing read for 2 intervals
    assert c.closed


def test_default_heartbeat_is_half_the_client_timeout() -> None:
    node = Node()
    c = node.client()
    node.clock.advance(29.9)
    assert c.frames() == []
    node.clock.advance(0.2)
    assert c.frames() == [(R, b"_heartbeat_")]


def test_heartbeats_can_be_disabled() -> None:
    node = Node()
    c = node.client()
    c.identify(heartbeat_interval=-1)
    node.clock.advance(3600)
    assert c.frames() == []
    assert not c.closed


def test_every_channel_gets_every_message_sharing_one_body() -> None:
    node = Node()
    a = node.consumer("t", "a")
    b = node.consumer("t", "b")
    node.publish("t", b"payload")
    assert [m[3] for m in a.messages()] == [b"payload"]
    assert [m[3] for m in b.messages()] == [b"payload"]
    # one body object for both channels' messages
    topic = node.nsqd.topics["t"]
    ma = next(iter(topic.channels["a"].in_flight.values()))
    mb = next(iter(topic.channels["b"].in_flight.values()))
    assert ma is not mb and ma.body is mb.body and ma.id == mb.id


def test_consumers_of_one_channel_split_its_messages() -> None:
    node = Node()
    a = node.consumer("t", "c", rdy=100)
    b = node.consumer("t", "c", rdy=100)
    node.publish("t", *[b"%d" % i for i in range(10)])
    node.clock.advance(1)
    got_a = [m[3] for m in a.messages()]
    got_b = [m[3] for m in b.messages()]
    assert len(got_a) == len(got_b) == 5
    assert sorted(got_a + got_b) == sorted(b"%d" % i for i in range(10))


def test_topic_holds_messages_until_its_first_channel() -> None:
    node = Node()
    node.publish("t", b"early")
    assert node.nsqd.topics["t"].depth() == 1
    c = node.consumer("t", "c")
    assert [m[3] for m in c.messages(c.log)] == [b"early"]
    assert node.nsqd.topics["t"].depth() == 0


def test_channel_created_later_does_not_see_earlier_messages() -> None:
    node = Node()
    node.consumer("t", "a", rdy=0)
    node.publish("t", b"before")
    late = node.consumer("t", "b")
    assert late.messages() == []


def test_sample_rate_skips_messages() -> None:
    node = Node()
    node.rand._values = [0.9, 0.1]  # randrange(100) -> 90 (skipped: > 50), then 10 (kept)
    c = node.consumer("t", "c", rdy=10, sample_rate=50)
    node.publish("t", b"1", b"2")
    node.clock.advance(1)
    assert [m[3] for m in c.messages()] == [b"2"]


def test_ephemeral_channel_and_topic_go_away_with_their_last_consumer() -> None:
    node = Node()
    c = node.consumer("t#ephemeral", "c#ephemeral")
    assert "t#ephemeral" in node.nsqd.topics
    c.conn.close()
    assert "t#ephemeral" not in node.nsqd.topics


def test_paused_channel_holds_messages() -> None:
    node = Node()
    c = node.consumer("t", "c")
    channel = node.nsqd.topics["t"].channels["c"]
    channel.pause()
    node.publish("t", b"x")
    assert c.messages() == []
    channel.unpause()
    assert [m[3] for m in c.messages()] == [b"x"]


def test_paused_topic_holds_messages() -> None:
    node = Node()
    c = node.consumer("t", "c")
    topic = node.nsqd.topics["t"]
    topic.pause()
    node.publish("t", b"x")
    assert c.messages() == [] and topic.depth() == 1
    topic.unpause()
    assert [m[3] for m in c.messages()] == [b"x"]


def test_empty_channel_forgets_queued_and_in_flight_messages() -> None:
    node = Node()
    c = node.consumer("t", "c")
    node.publish("t", b"1", b"2")
    [(_, _, msg_id, _)] = c.messages()
    channel = node.nsqd.topics["t"].channels["c"]
    channel.empty()
    assert channel.depth() == 0 and not channel.in_flight
    assert c.fin(msg_id) == [(E, b"E_FIN_FAILED FIN " + msg_id + b" failed ID not in flight")]


def test_messages_in_flight_to_a_gone_client_are_redelivered_after_the_timeout() -> None:
    node = Node(msg_timeout=5.0)
    a = node.consumer("t", "c")
    node.publish("t", b"x")
    assert len(a.messages()) == 1
    a.conn.disconnect()
    b = node.consumer("t", "c")
    assert b.messages() == []
    node.clock.advance(5.1)
    assert [m[1] for m in b.messages()] == [2]


def test_output_is_buffered_until_the_output_buffer_timeout() -> None:
    node = Node()
    c = node.consumer("t", "c", rdy=100)
    node.publish("t", b"x")
    assert c.messages() == []  # still ready for more: buffered
    node.clock.advance(0.24)
    assert c.messages() == []
    node.clock.advance(0.02)
    assert len(c.messages()) == 1


def test_max_channel_consumers() -> None:
    node = Node(max_channel_consumers=1)
    node.consumer("t", "c")
    c = node.client()
    assert c.send(b"SUB t c\n") == [(E, b"E_SUB_FAILED SUB failed consumers for t:c exceeds limit of 1")]
    assert c.closed


def test_a_client_that_does_not_read_gets_no_messages_until_it_does() -> None:
    node = Node()
    c = node.consumer("t", "c", rdy=1)
    handler = c.conn.handler
    handler.pause_writing()
    node.publish("t", b"x")
    assert c.messages() == []
    handler.resume_writing()
    assert len(c.messages()) == 1


def test_pub_counts_per_topic() -> None:
    node = Node()
    p = node.client()
    p.send(v2.encode_pub("a", b"1") + v2.encode_mpub("a", [b"2", b"3"]) + v2.encode_pub("b", b"4"))
    client = next(iter(node.nsqd.clients.values()))
    assert client.pub_counts == {"a": 3, "b": 1}
