"""nsqlookupd's TCP protocol V1 through a fake connection: every command and error."""

from __future__ import annotations

import json

import pytest

from broker.lookupd.lookupd import NSQLookupd
from broker.lookupd.protocol_v1 import MAX_IDENTIFY_BODY_SIZE, MAX_LINE_LENGTH
from tests.unit.lookupd.fakes import FakeClock, Peer, RecordingLogger, identify_body, make_lookupd


@pytest.fixture
def lookupd() -> NSQLookupd:
    return make_lookupd()[0]


def identified(lookupd: NSQLookupd, addr: tuple[str, int] = ("10.0.0.1", 40000), **fields: object) -> Peer:
    peer = Peer(lookupd, addr).connect_v1()
    peer.identify(**fields)
    return peer


def topics(lookupd: NSQLookupd) -> list[str]:
    return json.loads(lookupd.handle_http_target("GET", "/topics", b"")[2])["topics"]  # type: ignore[no-any-return]


def channels(lookupd: NSQLookupd, topic: str) -> list[str]:
    return json.loads(lookupd.handle_http_target("GET", f"/channels?topic={topic}", b"")[2])["channels"]  # type: ignore[no-any-return]


def lookup_producers(lookupd: NSQLookupd, topic: str) -> list[str]:
    status, _, body = lookupd.handle_http_target("GET", f"/lookup?topic={topic}", b"")
    assert status == 200, body
    return [p["remote_address"] for p in json.loads(body)["producers"]]


def node_addresses(lookupd: NSQLookupd) -> list[str]:
    body = lookupd.handle_http_target("GET", "/nodes", b"")[2]
    return [p["remote_address"] for p in json.loads(body)["producers"]]


def assert_fatal(peer: Peer, data: bytes, expected: bytes) -> None:
    assert peer.send(data) == [expected]
    assert peer.conn.closed


# -- magic --------------------------------------------------------------------


def test_v1_magic_is_accepted_silently(lookupd: NSQLookupd) -> None:
    peer = Peer(lookupd)
    assert peer.send(b"  V") == []
    assert peer.send(b"1") == []
    assert not peer.conn.closed
    assert peer.send(b"PING\n") == [b"OK"]


@pytest.mark.parametrize("magic", [b"  V2", b"V1  ", b"PING", b"\x00\x00\x00\x00"])
def test_bad_magic_gets_e_bad_protocol_and_close(lookupd: NSQLookupd, magic: bytes) -> None:
    peer = Peer(lookupd)
    assert_fatal(peer, magic + b"PING\n", b"E_BAD_PROTOCOL")


def test_eof_before_magic_closes_without_answer(lookupd: NSQLookupd) -> None:
    peer = Peer(lookupd)
    peer.send(b"  ")
    peer.handler.eof_received()
    assert peer.conn.closed
    assert peer.conn.sent == b""


# -- PING ---------------------------------------------------------------------


def test_ping_answers_ok_before_and_after_identify(lookupd: NSQLookupd) -> None:
    peer = Peer(lookupd).connect_v1()
    assert peer.send(b"PING\n") == [b"OK"]
    peer.identify()
    assert peer.send(b"PING\n") == [b"OK"]
    assert peer.send(b"PING with ignored words\n") == [b"OK"]


def test_ping_keeps_a_producer_active() -> None:
    lookupd, clock, _ = make_lookupd(inactive_producer_timeout=10.0)
    peer = identified(lookupd)
    peer.send(b"REGISTER t\n")
    clock.advance(8)
    assert peer.send(b"PING\n") == [b"OK"]
    clock.advance(8)  # 16s after IDENTIFY, 8s after the PING
    assert lookup_producers(lookupd, "t") == ["10.0.0.1:40000"]
    clock.advance(2.5)
    assert lookup_producers(lookupd, "t") == []


# -- IDENTIFY -------------------------------------------------------------------


def test_identify_answers_with_lookupds_own_json(lookupd: NSQLookupd) -> None:
    peer = Peer(lookupd).connect_v1()
    lookupd.set_listen_addresses(("0.0.0.0", 34160), ("0.0.0.0", 34161))
    assert peer.identify() == (
        b'{"broadcast_address":"lookupd-host","hostname":"lookupd-host",'
        b'"http_port":34161,"tcp_port":34160,"version":"1.3.0"}'
    )
    assert not peer.conn.closed
    assert node_addresses(lookupd) == ["10.0.0.1:40000"]


def test_identify_answer_carries_broadcast_address_option() -> None:
    lookupd = make_lookupd(broadcast_address="lookupd.example")[0]
    answer = json.loads(Peer(lookupd).connect_v1().identify())
    assert answer["broadcast_address"] == "lookupd.example"
    assert answer["hostname"] == "lookupd-host"


def test_identify_records_peer_info_with_remote_address_from_connection(lookupd: NSQLookupd) -> None:
    peer = Peer(lookupd, ("::1", 5555)).connect_v1()
    body = json.dumps(
        {
            "remote_address": "spoofed:1",
            "HOSTNAME": "h",  # Go matches field names case-insensitively
            "broadcast_address": "b",
            "tcp_port": 1,
            "http_port": 2,
            "version": "v",
            "unknown": [1, {"x": None}],
        }
    ).encode()
    [answer] = peer.send(b"IDENTIFY\n" + len(body).to_bytes(4, "big") + body)
    assert answer.startswith(b"{")
    [node] = json.loads(lookupd.handle_http_target("GET", "/nodes", b"")[2])["producers"]
    assert node == {
        "remote_address": "[::1]:5555",
        "hostname": "h",
        "broadcast_address": "b",
        "tcp_port": 1,
        "http_port": 2,
        "version": "v",
        "tombstones": [],
        "topics": [],
    }


@pytest.mark.parametrize(
    "fields",
    [
        {"broadcast_address": ""},
        {"tcp_port": 0},
        {"http_port": 0},
        {"version": ""},
    ],
)
def test_identify_missing_fields(lookupd: NSQLookupd, fields: dict[str, object]) -> None:
    peer = Peer(lookupd).connect_v1()
    assert_fatal(peer, identify_body(**fields), b"E_BAD_BODY IDENTIFY missing fields")  # type: ignore[arg-type]
    assert node_addresses(lookupd) == []


@pytest.mark.parametrize(
    "body",
    [
        b"null",
        b"{}",
        b'{"broadcast_address": null, "tcp_port": 1, "http_port": 1, "version": "v"}',
    ],
)
def test_identify_null_or_empty_is_missing_fields(lookupd: NSQLookupd, body: bytes) -> None:
    peer = Peer(lookupd).connect_v1()
    frame = b"IDENTIFY\n" + len(body).to_bytes(4, "big") + body
    assert_fatal(peer, frame, b"E_BAD_BODY IDENTIFY missing fields")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"[]",
        b'"str"',
        b"{} {}",
        b'{"tcp_port": "4150"}',
        b'{"tcp_port": 4150.0}',
        b'{"tcp_port": 1e3}',
        b'{"tcp_port": true}',
        b'{"tcp_port": 9223372036854775808}',
        b'{"version": 1}',
        b'{"hostname": ["h"]}',
        b'{"x": NaN}',
        b'{"x": Infinity}',
    ],
)
def test_identify_undecodable_body(lookupd: NSQLookupd, body: bytes) -> None:
    peer = Peer(lookupd).connect_v1()
    frame = b"IDENTIFY\n" + len(body).to_bytes(4, "big") + body
    assert_fatal(peer, frame, b"E_BAD_BODY IDENTIFY failed to decode JSON body")


def test_identify_negative_size(lookupd: NSQLookupd) -> None:
    peer = Peer(lookupd).connect_v1()
    assert_fatal(peer, b"IDENTIFY\n\xff\xff\xff\xff", b"E_BAD_BODY IDENTIFY failed to read body size")


def test_identify_body_too_big(lookupd: NSQLookupd) -> None:
    peer = Peer(lookupd).connect_v1()
    size = MAX_IDENTIFY_BODY_SIZE + 1
    expected = f"E_BAD_BODY IDENTIFY body too big {size} > {MAX_IDENTIFY_BODY_SIZE}".encode()
    assert_fatal(peer, b"IDENTIFY\n" + size.to_bytes(4, "big"), expected)


def test_identify_again_is_fatal(lookupd: NSQLookupd) -> None:
    peer = identified(lookupd)
    assert_fatal(peer, identify_body(), b"E_INVALID cannot IDENTIFY again")


def test_eof_inside_identify_answers_like_go(lookupd: NSQLookupd) -> None:
    peer = Peer(lookupd).connect_v1()
    peer.send(b"IDENTIFY\n\x00\x00")
    peer.handler.eof_received()
    assert peer.conn.closed
    assert [bytes(peer.conn.sent[4:])] == [b"E_BAD_BODY IDENTIFY failed to read body size"]

    peer = Peer(lookupd).connect_v1()
    peer.send(b"IDENTIFY\n\x00\x00\x00\x10{")
    peer.handler.eof_received()
    assert bytes(peer.conn.sent[4:]) == b"E_BAD_BODY IDENTIFY failed to read body"


def test_identify_invalid_utf8_becomes_replacement_char(lookupd: NSQLookupd) -> None:
    peer = Peer(lookupd).connect_v1()
    body = b'{"hostname":"a\xffb","broadcast_address":"x","tcp_port":1,"http_port":2,"version":"v"}'
    peer.send(b"IDENTIFY\n" + len(body).to_bytes(4, "big") + body)
    assert not peer.conn.closed
    nodes = lookupd.handle_http_target("GET", "/nodes", b"")[2]
    assert b'"hostname":"a\xef\xbf\xbdb"' in nodes


# -- REGISTER / UNREGISTER ------------------------------------------------------


@pytest.mark.parametrize("command", [b"REGISTER t\n", b"UNREGISTER t c\n"])
def test_register_before_identify_is_fatal(lookupd: NSQLookupd, command: bytes) -> None:
    peer = Peer(lookupd).connect_v1()
    assert_fatal(peer, command, b"E_INVALID client must IDENTIFY")


@pytest.mark.parametrize("verb", [b"REGISTER", b"UNREGISTER"])
def test_register_without_params(lookupd: NSQLookupd, verb: bytes) -> None:
    peer = identified(lookupd)
    assert_fatal(peer, verb + b"   \n", b"E_INVALID " + verb + b" insufficient number of params")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"REGISTER bad/topic\n", b"E_BAD_TOPIC REGISTER topic name 'bad/topic' is not valid"),
        (b"REGISTER " + b"t" * 65 + b"\n", b"E_BAD_TOPIC REGISTER topic name '" + b"t" * 65 + b"' is not valid"),
        (b"REGISTER \xff\n", b"E_BAD_TOPIC REGISTER topic name '\xff' is not valid"),
        (b"REGISTER t bad!chan\n", b"E_BAD_CHANNEL REGISTER channel name 'bad!chan' is not valid"),
        (b"UNREGISTER t#eph c\n", b"E_BAD_TOPIC UNREGISTER topic name 't#eph' is not valid"),
        (b"UNREGISTER t c#x\n", b"E_BAD_CHANNEL UNREGISTER channel name 'c#x' is not valid"),
    ],
)
def test_bad_names(lookupd: NSQLookupd, line: bytes, expected: bytes) -> None:
    peer = identified(lookupd)
    assert_fatal(peer, line, expected)


def test_register_topic_and_channel(lookupd: NSQLookupd) -> None:
    peer = identified(lookupd)
    assert peer.send(b"REGISTER t\n") == [b"OK"]
    assert peer.send(b"REGISTER t c\n") == [b"OK"]
    assert peer.send(b"REGISTER t c\n") == [b"OK"]  # again: no duplicate
    assert peer.send(b"REGISTER t#ephemeral c#ephemeral\n") == [b"OK"]
    assert topics(lookupd) == ["t", "t#ephemeral"]
    assert channels(lookupd, "t") == ["c"]
    assert lookup_producers(lookupd, "t") == ["10.0.0.1:40000"]


def test_words_split_on_single_spaces_after_trimming(lookupd: NSQLookupd) -> None:
    peer = identified(lookupd)
    # Go: TrimSpace, then Split(" "): the double space makes an empty channel.
    assert peer.send(b" \tREGISTER t  c\r\n") == [b"OK"]
    assert topics(lookupd) == ["t"]
    assert channels(lookupd, "t") == []
    assert peer.send(b"REGISTER u c extra words\xc2\xa0\n") == [b"OK"]
    assert channels(lookupd, "u") == ["c"]


def test_unregister_channel_keeps_the_registration(lookupd: NSQLookupd) -> None:
    peer = identified(lookupd)
    peer.send(b"REGISTER t c\n")
    assert peer.send(b"UNREGISTER t c\n") == [b"OK"]
    assert channels(lookupd, "t") == ["c"]
    assert lookup_producers(lookupd, "t") == ["10.0.0.1:40000"]


def test_unregister_last_producer_of_ephemeral_channel_removes_it(lookupd: NSQLookupd) -> None:
    a = identified(lookupd, ("10.0.0.1", 1))
    b = identified(lookupd, ("10.0.0.2", 2))
    a.send(b"REGISTER t c#ephemeral\n")
    b.send(b"REGISTER t c#ephemeral\n")
    assert a.send(b"UNREGISTER t c#ephemeral\n") == [b"OK"]
    assert channels(lookupd, "t") == ["c#ephemeral"]
    assert b.send(b"UNREGISTER t c#ephemeral\n") == [b"OK"]
    assert channels(lookupd, "t") == []


def test_unregister_topic_drops_its_channels_producer(lookupd: NSQLookupd) -> None:
    peer = identified(lookupd)
    peer.send(b"REGISTER t c\n")
    peer.send(b"REGISTER t#ephemeral\n")
    logger = lookupd.logger
    assert isinstance(logger, RecordingLogger)
    assert peer.send(b"UNREGISTER t\n") == [b"OK"]
    assert any("unexpected UNREGISTER category:channel key:t subkey:c" in m for m in logger.messages("WARN"))
    assert topics(lookupd) == ["t", "t#ephemeral"]  # registrations outlive producers
    assert lookup_producers(lookupd, "t") == []
    body = json.loads(lookupd.handle_http_target("GET", "/debug", b"")[2])
    assert "channel:t:c" not in body
    assert peer.send(b"UNREGISTER t#ephemeral\n") == [b"OK"]
    assert topics(lookupd) == ["t"]


def test_unregister_unknown_is_ok(lookupd: NSQLookupd) -> None:
    peer = identified(lookupd)
    assert peer.send(b"UNREGISTER nope\nUNREGISTER nope c#ephemeral\n") == [b"OK", b"OK"]


# -- other errors -------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"NOP\n", b"E_INVALID invalid command NOP"),
        (b"ping\n", b"E_INVALID invalid command ping"),
        (b"\n", b"E_INVALID invalid command "),
        (b"  \r\n", b"E_INVALID invalid command "),
        (b"\xff\xfe rest\n", b"E_INVALID invalid command \xff\xfe"),
    ],
)
def test_unknown_commands(lookupd: NSQLookupd, line: bytes, expected: bytes) -> None:
    assert_fatal(Peer(lookupd).connect_v1(), line, expected)


def test_line_too_long(lookupd: NSQLookupd) -> None:
    peer = Peer(lookupd).connect_v1()
    assert peer.send(b"P" * MAX_LINE_LENGTH) == []
    assert_fatal(peer, b"P", b"E_INVALID line too long")


def test_long_line_with_newline_is_rejected_regardless_of_chunking(lookupd: NSQLookupd) -> None:
    peer = Peer(lookupd).connect_v1()
    assert_fatal(peer, b"PING " + b"x" * MAX_LINE_LENGTH + b"\n", b"E_INVALID line too long")


def test_nothing_is_read_after_a_fatal_error(lookupd: NSQLookupd) -> None:
    peer = identified(lookupd)
    assert peer.send(b"REGISTER t\nBAD\nREGISTER u\nPING\n") == [b"OK", b"E_INVALID invalid command BAD"]
    assert peer.send(b"PING\n") == []
    assert topics(lookupd) == ["t"]


# -- disconnects ----------------------------------------------------------------


def test_connection_lost_removes_every_registration_of_the_peer(lookupd: NSQLookupd) -> None:
    a = identified(lookupd, ("10.0.0.1", 1))
    b = identified(lookupd, ("10.0.0.2", 2))
    a.send(b"REGISTER t c\nREGISTER u\n")
    b.send(b"REGISTER t c\n")
    a.handler.connection_lost(None)
    assert lookup_producers(lookupd, "t") == ["10.0.0.2:2"]
    assert lookup_producers(lookupd, "u") == []
    assert topics(lookupd) == ["t", "u"]  # keys stay, as in Go
    assert node_addresses(lookupd) == ["10.0.0.2:2"]
    assert not a.conn.closed  # already gone; nothing to close


def test_fatal_error_removes_registrations_before_closing(lookupd: NSQLookupd) -> None:
    peer = identified(lookupd)
    peer.send(b"REGISTER t c\n")
    peer.send(b"BOGUS\n")
    assert peer.conn.closed
    assert lookup_producers(lookupd, "t") == []
    assert node_addresses(lookupd) == []
    peer.handler.connection_lost(None)  # the runtime's follow-up is harmless


def test_close_closes_every_connection(lookupd: NSQLookupd) -> None:
    peers = [identified(lookupd, ("10.0.0.1", port)) for port in (1, 2, 3)]
    for p in peers:
        p.send(b"REGISTER t\n")
    lookupd.close()
    assert all(p.conn.closed for p in peers)
    assert lookup_producers(lookupd, "t") == []
    assert node_addresses(lookupd) == []


def test_write_backpressure_pauses_reading(lookupd: NSQLookupd) -> None:
    peer = Peer(lookupd).connect_v1()
    peer.handler.pause_writing()
    assert not peer.conn.reading
    peer.handler.resume_writing()
    assert peer.conn.reading


def test_clock_is_only_read_through_the_port() -> None:
    lookupd, clock, _ = make_lookupd()
    assert isinstance(clock, FakeClock)
    peer = identified(lookupd)
    debug = json.loads(lookupd.handle_http_target("GET", "/debug", b"")[2])
    assert debug["client::"][0]["last_update"] == clock.wall_ns()
    clock.advance(5)
    peer.send(b"PING\n")
    debug = json.loads(lookupd.handle_http_target("GET", "/debug", b"")[2])
    assert debug["client::"][0]["last_update"] == clock.wall_ns()
