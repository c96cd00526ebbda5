"""The parser's shortcuts for the common case give exactly what its general path gives."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.wire import v2
from broker.wire.v2 import ClientError, V2Parser

MSG_ID = b"0123456789abcdef"
OTHER_ID = b"fedcba9876543210"


def parser() -> V2Parser:
    return V2Parser(max_msg_size=1024, max_body_size=4096, max_req_timeout_ms=3_600_000)


def drain(p: V2Parser) -> list[v2.Command]:
    out = []
    while (cmd := p.next_command()) is not None:
        out.append(cmd)
    return out


def test_a_remembered_topic_name_does_not_excuse_an_invalid_one() -> None:
    p = parser()
    p.feed(v2.encode_pub("good", b"x") + b"PUB b@d\n")
    assert p.next_command() == v2.Pub("good", b"x")
    with pytest.raises(ClientError, match='E_BAD_TOPIC PUB topic name "b@d" is not valid'):
        p.next_command()


@pytest.mark.parametrize("cmd", [b"PUB", b"DPUB", b"MPUB"])
def test_an_empty_topic_name_is_bad_before_any_other_was_seen(cmd: bytes) -> None:
    prefix = "E_BAD_TOPIC " if cmd == b"MPUB" else ""
    p = parser()
    p.feed(cmd + b" \n" if cmd != b"DPUB" else b"DPUB  5\n")
    with pytest.raises(ClientError, match=f'^E_BAD_TOPIC {prefix}{cmd.decode()} topic name "" is not valid$'):
        p.next_command()


def test_publishes_to_several_topics_each_get_their_own_name() -> None:
    p = parser()
    p.feed(
        v2.encode_pub("a", b"1")
        + v2.encode_pub("b", b"2")
        + v2.encode_dpub("a", 5, b"3")
        + v2.encode_mpub("b", [b"4"])
        + v2.encode_pub("a#ephemeral", b"5")
        + v2.encode_pub("a", b"6")
    )
    assert drain(p) == [
        v2.Pub("a", b"1"),
        v2.Pub("b", b"2"),
        v2.Dpub("a", 5, b"3"),
        v2.Mpub("b", [b"4"]),
        v2.Pub("a#ephemeral", b"5"),
        v2.Pub("a", b"6"),
    ]


def test_a_pub_with_a_bad_size_after_a_good_one_gets_nsqds_error() -> None:
    p = parser()
    p.feed(v2.encode_pub("t", b"x") + b"PUB t\n\x00\x00\x04\x01")
    assert p.next_command() == v2.Pub("t", b"x")
    with pytest.raises(ClientError, match="E_BAD_MESSAGE PUB message too big 1025 > 1024"):
        p.next_command()


def test_commands_split_across_reads_come_out_whole_and_as_bytes() -> None:
    stream = v2.encode_pub("t", b"hello") + b"NOP\n" + v2.encode_pub("t", b"world")
    p = parser()
    got: list[v2.Command] = []
    for piece in (stream[0:3], stream[3:9], stream[9:14], stream[14:20], stream[20:]):
        p.feed(piece)
        got += drain(p)
    assert got == [v2.Pub("t", b"hello"), v2.Nop(), v2.Pub("t", b"world")]
    assert all(type(cmd.body) is bytes for cmd in got if isinstance(cmd, v2.Pub))


def test_a_mutable_read_buffer_is_not_kept() -> None:
    p = parser()
    data = bytearray(v2.encode_pub("t", b"abc"))
    p.feed(data)
    data[:] = b"X" * len(data)
    assert p.next_command() == v2.Pub("t", b"abc")
    p.feed(memoryview(b"NOP\n"))
    assert p.next_command() == v2.Nop()


def test_fin_runs_take_the_ids_nsqd_gives_and_leave_the_rest_to_next_command() -> None:
    upper = b"0123456789ABCDEF"
    p = parser()
    p.feed(b"FIN " + MSG_ID + b"\nFIN " + OTHER_ID + b"\nFIN " + upper + b"\nFIN " + MSG_ID + b"\r\nFIN " + OTHER_ID + b"\n")
    assert p.take_fins() == [MSG_ID, OTHER_ID]
    assert p.take_fins() == []
    assert p.next_command() == v2.Fin(upper)
    assert p.take_fins() == []
    assert p.next_command() == v2.Fin(MSG_ID)  # a \r\n line goes the general way
    assert p.take_fins() == [OTHER_ID]
    assert p.next_command() is None


def test_a_fin_run_stops_where_a_line_is_not_a_plain_fin() -> None:
    p = parser()
    p.feed(b"FIN " + MSG_ID + b"\nFIN " + MSG_ID[:8] + b" " + MSG_ID[8:15] + b"\n")
    assert p.take_fins() == [MSG_ID]
    with pytest.raises(ClientError, match="E_INVALID invalid message ID"):
        p.next_command()


def test_precheck_runs_where_nsqd_checks_the_connections_state() -> None:
    seen: list[bytes] = []
    p = parser()
    p.precheck = lambda name, params: seen.append(name)
    p.feed(
        v2.encode_pub("t", b"1")
        + v2.encode_mpub("t", [b"2"])
        + v2.encode_dpub("t", 1, b"3")
        + b"NOP\nRDY 1\nFIN " + MSG_ID + b"\nTOUCH " + MSG_ID + b"\nREQ " + MSG_ID + b" 0\nCLS\nSUB t c\n"
        + v2.encode_command(b"IDENTIFY", body=b"{}")
        + v2.encode_command(b"AUTH", body=b"secret")
    )
    assert len(drain(p)) == 12
    # PUB, MPUB and DPUB are checked only after their body is read (nsqd's CheckAuth).
    assert seen == [b"FIN", b"TOUCH", b"REQ", b"CLS", b"SUB", b"IDENTIFY", b"AUTH"]


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=20), st.integers(-(2**40), 2**40), st.binary(max_size=50))
def test_pub_and_dpub_encode_as_encode_command_does(topic: str, defer_ms: int, body: bytes) -> None:
    assert v2.encode_pub(topic, body) == v2.encode_command(b"PUB", topic.encode(), body=body)
    assert v2.encode_dpub(topic, defer_ms, body) == v2.encode_command(b"DPUB", topic.encode(), str(defer_ms).encode(), body=body)
