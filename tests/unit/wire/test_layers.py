"""The connection layers (broker.wire.layers) alone, and as ClientV2 grows them after IDENTIFY.

TLS runs over memory on both ends (a client ``TLSLayer`` against the one nsqd
builds), with certificates from a throwaway CA; no socket is opened.
"""

from __future__ import annotations

import json
import ssl
import struct
import tempfile
from itertools import pairwise
from pathlib import Path

import pytest
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.ports import Connection
from broker.runtime.tls import client_context, server_context
from broker.wire import v2
from broker.wire.layers import DeflateLayer, LayerError, SnappyLayer, Stack, TLSConnection, TLSLayer
from tests.fakes import FakeConnection
from tests.unit.nsqd.harness import Node

_DIR = Path(tempfile.mkdtemp(prefix="nsqsim-layers-"))
_CA = trustme.CA()
_CA.cert_pem.write_to_path(str(_DIR / "ca.pem"))
_CA.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(_DIR / "server.pem"))
SERVER = server_context(str(_DIR / "server.pem"), str(_DIR / "server.pem"))
CLIENT = client_context(root_ca_file=str(_DIR / "ca.pem"))


def pump(client: TLSLayer, server_stack: Stack, first: bytes) -> bytes:
    """Run the handshake to its end; what the client decoded on the way."""
    got = b""
    to_server = first
    for _ in range(10):
        plain, reply = server_stack.receive(to_server)
        assert plain == b""
        to_server = b""
        if reply:
            got += client.decode(reply)
            to_server = client.take_output()
        if client.handshake_done and not to_server:
            break
    return got


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in pairwise(points)]


def test_tls_over_memory_carries_bytes_both_ways_and_names_what_it_negotiated() -> None:
    assert SERVER is not None
    client = TLSLayer(CLIENT, server_side=False, server_hostname="127.0.0.1")
    server = Stack()
    server.add_tls(TLSLayer(SERVER, server_side=True))
    # written before the handshake: held, then sent in order once it is done
    assert server.send(b"held until the handshake") == b""
    got = pump(client, server, client.start())
    assert client.handshake_done and server.tls is not None and server.tls.handshake_done
    assert got == b"held until the handshake"
    client_bytes = client.encode(b"PUB t\n")
    assert server.receive(client_bytes)[0] == b"PUB t\n"
    assert client.decode(server.send(b"OK")) == b"OK"
    assert server.tls.version() == "TLS1.3"
    assert server.tls.cipher_suite().startswith("Unknown ")  # Go has no name for TLS 1.3's suites


def test_a_client_that_does_not_trust_the_server_fails_the_handshake() -> None:
    assert SERVER is not None
    stranger = ssl.create_default_context()  # the system CAs: not our throwaway CA
    client = TLSLayer(stranger, server_side=False, server_hostname="127.0.0.1")
    server = Stack()
    server.add_tls(TLSLayer(SERVER, server_side=True))
    _, reply = server.receive(client.start())
    with pytest.raises(LayerError, match="CERTIFICATE_VERIFY_FAILED"):
        client.decode(reply)


def test_plaintext_where_tls_is_expected_is_a_layer_error() -> None:
    assert SERVER is not None
    server = Stack()
    server.add_tls(TLSLayer(SERVER, server_side=True))
    with pytest.raises(LayerError):
        server.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")


@pytest.mark.parametrize("make", [SnappyLayer, lambda: DeflateLayer(6), lambda: DeflateLayer(1)])
def test_compression_round_trips_write_by_write(make: object) -> None:
    assert callable(make)
    a, b = make(), make()
    for payload in (b"", b"x", b"hello " * 1000, bytes(range(256)) * 300):
        assert b.decode(a.encode(payload)) == payload


def test_garbage_is_a_layer_error_for_each_compression() -> None:
    with pytest.raises(LayerError):
        SnappyLayer().decode(b"\x00\x05\x00\x00nonsense-not-snappy")
    with pytest.raises(LayerError):
        DeflateLayer(6).decode(b"\xff\xff\xff\xff not deflate")


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=12), n=st.integers(1, 40))
def test_a_tls_snappy_stack_decodes_any_chunking_of_the_same_bytes(cuts: list[int], n: int) -> None:
    assert SERVER is not None
    client = TLSLayer(CLIENT, server_side=False, server_hostname="127.0.0.1")
    client_snappy = SnappyLayer()
    server = Stack()
    server.add_tls(TLSLayer(SERVER, server_side=True))
    pump(client, server, client.start())
    server.add(SnappyLayer())
    commands = b"".join(v2.encode_pub("t", b"message %d " % i * (i + 1)) for i in range(n))
    # the client writes in three pieces, as a client flushing its buffer would
    third = len(commands) // 3
    wire = b"".join(
        client.encode(client_snappy.encode(piece))
        for piece in (commands[:third], commands[third : 2 * third], commands[2 * third :])
    )
    got = b"".join(server.receive(chunk)[0] for chunk in split(wire, cuts))
    assert got == commands


def test_tls_connection_wraps_a_whole_stream_for_the_handler_inside() -> None:
    assert SERVER is not None

    class Echo:
        def __init__(self) -> None:
            self.conn: Connection | None = None
            self.lost = False

        def connection_made(self, conn: Connection) -> None:
            self.conn = conn

        def data_received(self, data: bytes) -> None:
            assert self.conn is not None
            self.conn.write(data.upper())

        def eof_received(self) -> None:
            pass

        def connection_lost(self, exc: Exception | None) -> None:
            self.lost = True

        def pause_writing(self) -> None:
            pass

        def resume_writing(self) -> None:
            pass

    inner = Echo()
    wrapped = TLSConnection(inner, SERVER, server_side=True)
    conn = FakeConnection(wrapped)
    client = TLSLayer(CLIENT, server_side=False, server_hostname="127.0.0.1")
    to_server = client.start()
    for _ in range(10):
        conn.send(to_server)
        client.decode(bytes(conn.written))
        conn.written.clear()
        to_server = client.take_output()
        if client.handshake_done and not to_server:
            break
    conn.send(client.encode(b"hello"))
    assert client.decode(bytes(conn.written)) == b"HELLO"
    # a peer that is not speaking TLS is dropped
    other = Echo()
    plain = FakeConnection(TLSConnection(other, SERVER, server_side=True))
    plain.send(b"GET / HTTP/1.1\r\n\r\n")
    assert plain.closed and other.lost


# -- ClientV2 growing the layers --------------------------------------------------------------


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    parser = v2.FrameParser()
    parser.feed(data)
    out = []
    while (f := parser.next_frame()) is not None:
        out.append(f)
    return out


def test_identify_upgrades_to_tls_then_snappy_each_answered_through_the_layers_below() -> None:
    node = Node(tls_context=SERVER)
    c = node.client()
    body = json.dumps({"feature_negotiation": True, "tls_v1": True, "snappy": True}).encode()
    client_tls = TLSLayer(CLIENT, server_side=False, server_hostname="127.0.0.1")
    # IDENTIFY and the ClientHello in one write: the hello belongs to TLS, not to the V2 parser
    c.conn.send(b"IDENTIFY\n" + struct.pack(">i", len(body)) + body + client_tls.start())
    written = bytes(c.conn.written)
    size = struct.unpack(">i", written[:4])[0]
    kind, data = _frames(written[: 4 + size])[0]
    answer = json.loads(data)
    assert (kind, answer["tls_v1"], answer["snappy"], answer["deflate"]) == (v2.FRAME_RESPONSE, True, True, False)
    c.conn.written.clear()
    plain = client_tls.decode(written[4 + size :])
    for _ in range(10):
        out = client_tls.take_output()
        if not out:
            break
        c.conn.send(out)
        plain += client_tls.decode(bytes(c.conn.written))
        c.conn.written.clear()
    assert client_tls.handshake_done
    # the first OK is TLS alone; the second is snappy inside TLS
    ok_frame = v2.encode_frame(v2.FRAME_RESPONSE, v2.OK)
    assert plain.startswith(ok_frame)
    client_snappy = SnappyLayer()
    assert _frames(client_snappy.decode(plain[len(ok_frame) :])) == [(v2.FRAME_RESPONSE, v2.OK)]
    c.conn.send(client_tls.encode(client_snappy.encode(v2.encode_pub("t", b"secret"))))
    reply = client_snappy.decode(client_tls.decode(bytes(c.conn.written)))
    assert _frames(reply) == [(v2.FRAME_RESPONSE, v2.OK)]
    client = node.nsqd.clients[max(node.nsqd.clients)]
    assert client.tls and client.snappy and not client.deflate
    assert node.nsqd.topics["t"].message_count == 1


def test_without_a_tls_context_identify_offers_no_tls_and_deflate_at_the_capped_level() -> None:
    node = Node(max_deflate_level=4)
    c = node.client()
    frames = c.identify(feature_negotiation=True, tls_v1=True, deflate=True, deflate_level=9)
    answer = json.loads(frames[0][1])
    assert (answer["tls_v1"], answer["deflate"], answer["deflate_level"]) == (False, True, 4)
    client_deflate = DeflateLayer(4)
    after_answer = bytes(c.conn.written[_end_of_first_frame(c.conn.written) :])
    assert _frames(client_deflate.decode(after_answer)) == [(v2.FRAME_RESPONSE, v2.OK)]


def _end_of_first_frame(data: bytearray) -> int:
    size: int = struct.unpack(">i", bytes(data[:4]))[0]
    return 4 + size


def test_both_compressions_at_once_is_fatal() -> None:
    node = Node()
    c = node.client()
    frames = c.identify(feature_negotiation=True, snappy=True, deflate=True)
    assert frames == [(v2.FRAME_ERROR, b"E_IDENTIFY_FAILED cannot enable both deflate and snappy compression")]
    assert c.closed


def test_tls_required_refuses_every_command_but_identify_before_the_upgrade() -> None:
    assert SERVER is not None
    node = Node(tls_context=SERVER, tls_required="true", tls_cert="x", tls_key="x")
    c = node.client()
    assert c.send(b"NOP\n") == [(v2.FRAME_ERROR, b"E_INVALID cannot NOP in current state (TLS required)")]
    assert c.closed
    c = node.client()
    frames = c.identify(feature_negotiation=True)
    assert json.loads(frames[0][1])["tls_v1"] is False
    assert c.send(b"RDY 1\n") == [(v2.FRAME_ERROR, b"E_INVALID cannot RDY in current state (TLS required)")]


def test_a_failed_handshake_is_identifys_fatal_error_on_the_plain_connection() -> None:
    node = Node(tls_context=SERVER)
    c = node.client()
    c.identify(feature_negotiation=True, tls_v1=True)
    c.conn.written.clear()
    c.conn.send(b"this is not a TLS ClientHello at all\n")
    assert c.closed
    frames = _frames_after_alert(bytes(c.conn.written))
    assert frames and frames[-1][0] == v2.FRAME_ERROR and frames[-1][1].startswith(b"E_IDENTIFY_FAILED IDENTIFY failed")


def _frames_after_alert(data: bytes) -> list[tuple[int, bytes]]:
    # A TLS alert record (type 21) may come first; the V2 error frame follows it.
    while data[:1] == b"\x15":
        length = struct.unpack(">H", data[3:5])[0]
        data = data[5 + length :]
    return _frames(data)
