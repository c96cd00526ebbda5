"""The V2 codec: frames, commands, and nsqd's exact error texts, in nsqd's order."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.wire import v2
from broker.wire.v2 import ClientError, V2Parser

MSG_ID = b"0123456789abcdef"


def parser(*, max_msg_size: int = 1024, max_body_size: int = 4096, max_req_timeout_ms: int = 3_600_000) -> V2Parser:
    return V2Parser(max_msg_size=max_msg_size, max_body_size=max_body_size, max_req_timeout_ms=max_req_timeout_ms)


def parse_all(data: bytes, **kw: int) -> list[v2.Command]:
    p = parser(**kw)
    p.feed(data)
    out = []
    while (cmd := p.next_command()) is not None:
        out.append(cmd)
    return out


def error_of(data: bytes, **kw: int) -> str:
    with pytest.raises(ClientError) as info:
        parse_all(data, **kw)
    return str(info.value)


def test_frame_and_message_encoding() -> None:
    assert v2.encode_frame(v2.FRAME_RESPONSE, b"OK") == b"\x00\x00\x00\x06\x00\x00\x00\x00OK"
    frame = v2.encode_message(123, 2, MSG_ID, b"body")
    size, kind, ts, attempts = struct.unpack_from(">iiqH", frame)
    assert (size, kind, ts, attempts) == (4 + 8 + 2 + 16 + 4, v2.FRAME_MESSAGE, 123, 2)
    assert frame[18:34] == MSG_ID and frame[34:] == b"body"
    assert v2.decode_message(frame[8:]) == (123, 2, MSG_ID, b"body")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"NOP\n", v2.Nop()),
        (b"CLS\n", v2.Cls()),
        (b"RDY 10\n", v2.Rdy(b"10")),
        (b"RDY\n", v2.Rdy(None)),
        (b"FIN " + MSG_ID + b"\n", v2.Fin(MSG_ID)),
        (b"FIN " + MSG_ID + b"\r\n", v2.Fin(MSG_ID)),
        (b"TOUCH " + MSG_ID + b"\n", v2.Touch(MSG_ID)),
        (b"REQ " + MSG_ID + b" 1500\n", v2.Req(MSG_ID, 1500)),
        (b"SUB topic chan#ephemeral\n", v2.Sub("topic", "chan#ephemeral")),
        (v2.encode_pub("t", b"x"), v2.Pub("t", b"x")),
        (v2.encode_dpub("t", 250, b"x"), v2.Dpub("t", 250, b"x")),
        (v2.encode_mpub("t", [b"a", b"bc"]), v2.Mpub("t", [b"a", b"bc"])),
        (v2.encode_command(b"IDENTIFY", body=b"{}"), v2.Identify(b"{}")),
        (v2.encode_command(b"AUTH", body=b"secret"), v2.Auth(b"secret")),
    ],
)
def test_commands_parse(data: bytes, expected: v2.Command) -> None:
    assert parse_all(data) == [expected]


def test_req_timeout_is_clamped_like_nsqd() -> None:
    assert parse_all(b"REQ " + MSG_ID + b" 99999999999\n", max_req_timeout_ms=1000) == [v2.Req(MSG_ID, 1000)]
    # 2**64-1 ms wraps to -1 ms in Go's int64 arithmetic, and is clamped to 0.
    assert parse_all(b"REQ " + MSG_ID + b" 18446744073709551615\n") == [v2.Req(MSG_ID, 0)]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"WAT\n", "E_INVALID invalid command WAT"),
        (b"FIN\n", "E_INVALID FIN insufficient number of params"),
        (b"FIN abc\n", "E_INVALID invalid message ID"),
        (b"REQ " + MSG_ID + b"\n", "E_INVALID REQ insufficient number of params"),
        (b"REQ " + MSG_ID + b" -5\n", "E_INVALID REQ could not parse timeout -5"),
        (b"TOUCH\n", "E_INVALID TOUCH insufficient number of params"),
        (b"SUB t\n", "E_INVALID SUB insufficient number of parameters"),
        (b"SUB t! c\n", 'E_BAD_TOPIC SUB topic name "t!" is not valid'),
        (b"SUB t c!\n", 'E_BAD_CHANNEL SUB channel name "c!" is not valid'),
        (b"SUB " + b"a" * 65 + b" c\n", f'E_BAD_TOPIC SUB topic name "{"a" * 65}" is not valid'),
        (b"PUB\n", "E_INVALID PUB insufficient number of parameters"),
        (b"PUB b@d\n", 'E_BAD_TOPIC PUB topic name "b@d" is not valid'),
        (b"PUB t\n\x00\x00\x00\x00", "E_BAD_MESSAGE PUB invalid message body size 0"),
        (b"PUB t\n\xff\xff\xff\xff", "E_BAD_MESSAGE PUB invalid message body size -1"),
        (b"PUB t\n\x00\x00\x04\x01", "E_BAD_MESSAGE PUB message too big 1025 > 1024"),
        (b"DPUB t\n", "E_INVALID DPUB insufficient number of parameters"),
        (b"DPUB t x\n", "E_INVALID DPUB could not parse timeout x"),
        (b"DPUB t 3600001\n", "E_INVALID DPUB timeout 3600001 out of range 0-3600000"),
        (b"DPUB t 10\n\x00\x00\x00\x00", "E_BAD_MESSAGE DPUB invalid message body size 0"),
        (b"MPUB t t2 \xff\n", None),  # extra params are ignored by nsqd; needs a body
        (b"MPUB b@d\n", 'E_BAD_TOPIC E_BAD_TOPIC MPUB topic name "b@d" is not valid'),
        (b"MPUB t\n\x00\x00\x00\x00", "E_BAD_BODY MPUB invalid body size 0"),
        (b"MPUB t\n\x00\x00\x10\x01", "E_BAD_BODY MPUB body too big 4097 > 4096"),
        (b"MPUB t\n\x00\x00\x00\x08\x00\x00\x00\x00", "E_BAD_BODY MPUB invalid message count 0"),
        (b"MPUB t\n\x00\x00\x00\x08\x00\x00\x03\x33", "E_BAD_BODY MPUB invalid message count 819"),
        (b"MPUB t\n\x00\x00\x00\x08\x00\x00\x00\x01\x00\x00\x00\x00", "E_BAD_MESSAGE MPUB invalid message(0) body size 0"),
        (b"MPUB t\n\x00\x00\x00\x08\x00\x00\x00\x01\x00\x00\x04\x01", "E_BAD_MESSAGE MPUB message too big 1025 > 1024"),
        (b"IDENTIFY\n\x00\x00\x10\x01", "E_BAD_BODY IDENTIFY body too big 4097 > 4096"),
        (b"IDENTIFY\n\x00\x00\x00\x00", "E_BAD_BODY IDENTIFY invalid body size 0"),
        (b"AUTH x\n", "E_INVALID AUTH invalid number of parameters"),
        (b"AUTH\n\x00\x00\x00\x00", "E_BAD_BODY AUTH invalid body size 0"),
    ],
)
def test_errors_match_nsqd(data: bytes, expected: str | None) -> None:
    if expected is None:
        assert parse_all(data) == []
        return
    assert error_of(data) == expected


def test_rdy_count_validation() -> None:
    assert v2.rdy_count(None, 2500) == 1
    assert v2.rdy_count(b"2500", 2500) == 2500
    with pytest.raises(ClientError, match="E_INVALID RDY count 2501 out of range 0-2500"):
        v2.rdy_count(b"2501", 2500)
    with pytest.raises(ClientError, match="E_INVALID RDY could not parse count -1"):
        v2.rdy_count(b"-1", 2500)
    # 2**64-1 is -1 as Go's int64
    with pytest.raises(ClientError, match="RDY count -1 out of range"):
        v2.rdy_count(b"18446744073709551615", 2500)


def test_precheck_runs_before_the_body_is_read() -> None:
    seen: list[bytes] = []

    def precheck(name: bytes, params: list[bytes]) -> None:
        seen.append(name)
        raise ClientError("E_INVALID", f"cannot {name.decode()} in current state")

    p = parser()
    p.precheck = precheck
    p.feed(b"IDENTIFY\n")  # no body yet: the state check still answers at once
    with pytest.raises(ClientError, match="cannot IDENTIFY in current state"):
        p.next_command()
    assert seen == [b"IDENTIFY"]


def test_mpub_framing_follows_the_messages_not_the_announced_size() -> None:
    # nsqd checks the announced MPUB size for range only; the messages' own
    # length prefixes decide what is consumed.
    payload = struct.pack(">ii", 1, 2) + b"hi"
    data = b"MPUB t\n" + struct.pack(">i", 100) + payload + b"NOP\n"
    assert parse_all(data) == [v2.Mpub("t", [b"hi"]), v2.Nop()]


def test_line_too_long() -> None:
    p = parser()
    p.feed(b"A" * (v2.MAX_LINE + 1))
    with pytest.raises(v2.LineTooLong):
        p.next_command()


def test_go_quote() -> None:
    assert v2.go_quote(b'a"b\\c\n') == '"a\\"b\\\\c\\n"'
    assert v2.go_quote(b"\x00\xff") == '"\\x00\\xff"'
    assert v2.go_quote("é".encode()) == '"é"'


def test_parse_base10() -> None:
    assert v2.parse_base10(b"") == 0
    assert v2.parse_base10(b"0042") == 42
    assert v2.parse_base10(b"4x") is None
    assert v2.parse_base10(b"+4") is None
    assert v2.parse_base10("٣".encode()) is None


commands = st.one_of(
    st.builds(lambda t, b: v2.encode_pub(t, b), st.from_regex(r"[a-z]{1,10}", fullmatch=True), st.binary(min_size=1, max_size=50)),
    st.builds(lambda t, bs: v2.encode_mpub(t, bs), st.from_regex(r"[a-z]{1,10}", fullmatch=True), st.lists(st.binary(min_size=1, max_size=20), min_size=1, max_size=5)),
    st.just(b"NOP\n"),
    st.builds(lambda n: b"RDY %d\n" % n, st.integers(0, 2500)),
    st.just(b"FIN " + MSG_ID + b"\n"),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(commands, max_size=8), st.data())
def test_any_chunking_gives_the_same_commands(cmds: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(cmds)
    whole = parse_all(stream)
    p = parser()
    got = []
    i = 0
    while i < len(stream):
        n = data.draw(st.integers(1, max(1, len(stream) - i)))
        p.feed(stream[i : i + n])
        i += n
        while (cmd := p.next_command()) is not None:
            got.append(cmd)
    assert got == whole
    assert len(whole) == len(cmds)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_ends_in_an_error_or_a_wait(garbage: bytes) -> None:
    p = parser()
    p.feed(garbage)
    try:
        for _ in range(400):
            if p.next_command() is None:
                break
    except (ClientError, v2.LineTooLong):
        pass
