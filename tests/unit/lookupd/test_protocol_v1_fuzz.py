"""The lookupd protocol under any chunking and any garbage: same answers, never an exception."""

from __future__ import annotations

import itertools
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.lookupd.fakes import Peer, identify_body, make_lookupd, responses

SESSION = (
    b"  V1"
    + b"PING\n"
    + identify_body()
    + b"REGISTER t c\n"
    + b"REGISTER t2\r\n"
    + b"REGISTER t#ephemeral c#ephemeral\n"
    + b"UNREGISTER t#ephemeral c#ephemeral\n"
    + b"PING\n"
    + b"UNREGISTER t2\n"
    + b"REGISTER t bad*name\n"
    + b"PING\n"  # never answered: the error above closed the connection
)


def run(chunks: list[bytes]) -> tuple[bytes, bool, bytes]:
    """Feed ``chunks``; what was written, whether it closed, and lookupd's /debug."""
    lookupd = make_lookupd()[0]
    peer = Peer(lookupd)
    debug_before_close = b""
    for chunk in chunks:
        peer.handler.data_received(chunk)
        if not peer.conn.closed:
            debug_before_close = lookupd.handle_http_target("GET", "/debug", b"")[2]
    return bytes(peer.conn.sent), peer.conn.closed, debug_before_close


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def test_scripted_session_answers() -> None:
    sent, closed, _ = run([SESSION])
    answers = responses(bytearray(sent))
    assert answers[0] == b"OK"
    assert json.loads(answers[1])["version"] == "1.3.0"
    assert answers[2:] == [
        b"OK",
        b"OK",
        b"OK",
        b"OK",
        b"OK",
        b"OK",
        b"E_BAD_CHANNEL REGISTER channel name 'bad*name' is not valid",
    ]
    assert closed


def test_one_byte_at_a_time_is_the_same_as_all_at_once() -> None:
    whole = run([SESSION])
    byte_by_byte = run([SESSION[i : i + 1] for i in range(len(SESSION))])
    assert byte_by_byte[:2] == whole[:2]


def test_state_between_chunks_matches_whole_input_state() -> None:
    # Stop before the fatal error so the registrations are still there to compare.
    prefix = SESSION[: SESSION.index(b"REGISTER t bad")]
    whole = run([prefix])
    byte_by_byte = run([prefix[i : i + 1] for i in range(len(prefix))])
    assert byte_by_byte == whole
    assert b'"topic:t:"' in whole[2]


@settings(max_examples=300)
@given(cuts=st.lists(st.integers(min_value=0), max_size=20))
def test_any_chunking_gives_the_same_answers(cuts: list[int]) -> None:
    assert run(split(SESSION, cuts))[:2] == run([SESSION])[:2]


# Pieces that steer garbage into every parser state.
_PIECES = st.one_of(
    st.binary(max_size=40),
    st.sampled_from(
        [
            b"  V1",
            b"\n",
            b" ",
            b"PING\n",
            b"IDENTIFY\n",
            b"REGISTER ",
            b"UNREGISTER ",
            b"topic",
            b"chan#ephemeral",
            b"\x00\x00\x00\x05",
            b"\xff\xff\xff\xff",
            b"\x7f\xff\xff\xff",
            identify_body(),
            b'{"tcp_port": 1, "http_port": 2, "version": "v", "broadcast_address": "b"}',
            b"\xc2\x85",
            b"\xe3\x80\x80",
        ]
    ),
)


def _check_transcript(sent: bytes, closed: bool) -> None:
    answers = responses(bytearray(sent))  # every answer is complete and well framed
    for answer in answers[:-1]:
        assert answer == b"OK" or answer.startswith(b"{"), answer
    if closed and answers:
        last = answers[-1]
        assert last.startswith(b"E_") or last == b"OK" or last.startswith(b"{"), last
    if answers and answers[-1].startswith(b"E_"):
        assert closed  # every lookupd error is fatal


@settings(max_examples=500)
@given(pieces=st.lists(_PIECES, max_size=30), cuts=st.lists(st.integers(min_value=0), max_size=10))
def test_garbage_never_raises_and_always_frames(pieces: list[bytes], cuts: list[int]) -> None:
    data = b"".join(pieces)
    lookupd = make_lookupd()[0]
    peer = Peer(lookupd)
    for chunk in split(data, cuts):
        peer.handler.data_received(chunk)
    sent, closed = bytes(peer.conn.sent), peer.conn.closed
    _check_transcript(sent, closed)
    if closed:  # a closed peer is forgotten everywhere
        assert lookupd.db.lookup_registrations("10.0.0.1:40000") == []
    # Chunking never changes the outcome.
    assert (sent, closed) == run([data])[:2]


@settings(max_examples=300)
@given(data=st.binary(max_size=200))
def test_raw_bytes_after_magic_never_raise(data: bytes) -> None:
    sent, closed, _ = run([b"  V1", data])
    _check_transcript(sent, closed)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner, max_size=6),
    max_leaves=12,
)
_KEYS = st.sampled_from(
    ["broadcast_address", "tcp_port", "http_port", "version", "hostname", "remote_address", "TCP_PORT"]
)


# Nested JSON is slow to draw on a loaded machine (CI shares two cores): how fast
# inputs come is not what this test is about.
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    fields=st.dictionaries(_KEYS, _JSON, max_size=7),
    eof=st.booleans(),
    tail=st.binary(max_size=10),
)
def test_identify_with_any_json_fields(fields: dict[str, object], eof: bool, tail: bytes) -> None:
    body = json.dumps(fields).encode()
    lookupd = make_lookupd()[0]
    peer = Peer(lookupd).connect_v1()
    peer.handler.data_received(b"IDENTIFY\n" + len(body).to_bytes(4, "big") + body + tail)
    if eof:
        peer.handler.eof_received()
    _check_transcript(bytes(peer.conn.sent), peer.conn.closed)
    answers = responses(bytearray(peer.conn.sent))
    assert answers, "IDENTIFY always gets an answer"
    assert answers[0].startswith((b"{", b"E_BAD_BODY IDENTIFY "))
    # Whatever was accepted renders as JSON again.
    status, _, nodes = lookupd.handle_http_target("GET", "/nodes", b"")
    assert status == 200
    json.loads(nodes)
