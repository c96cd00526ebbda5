"""TLS, snappy, deflate and HTTPS against real third-party clients: pynsq and gnsq.

Each feature is negotiated for real: the IDENTIFY answer says so, nsqd's
``/stats`` shows it on the connected client, and a message makes the round
trip through it.  The certificates come from a throwaway CA (trustme).
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import struct
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gnsq
import pytest
import trustme

from tests.integration.conftest import Daemon, run_nsqd
from tests.integration.test_pynsq import Publisher, Received, reader

pytestmark = pytest.mark.integration

BOUND = 20.0


@dataclass
class Certs:
    ca: Path  # the root CA nsqd and clients trust
    server: Path  # key and chain for 127.0.0.1, signed by ca
    client: Path  # a client's key and chain, signed by ca
    stranger: Path  # a client's key and chain signed by another CA


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    d = tmp_path_factory.mktemp("certs")
    ca, other = trustme.CA(), trustme.CA()
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(str(d / "server.pem"))
    ca.issue_cert("client@example.com", common_name="client-1").private_key_and_cert_chain_pem.write_to_path(str(d / "client.pem"))
    other.issue_cert("stranger@example.com").private_key_and_cert_chain_pem.write_to_path(str(d / "stranger.pem"))
    return Certs(d / "ca.pem", d / "server.pem", d / "client.pem", d / "stranger.pem")


def tls_flags(certs: Certs, *extra: str) -> tuple[str, ...]:
    return (f"--tls-cert={certs.server}", f"--tls-key={certs.server}", "--https-address=127.0.0.1:0", *extra)


@pytest.fixture
def tls_nsqd(nsqd_factory: Callable[..., Daemon], certs: Certs) -> Daemon:
    return nsqd_factory(*tls_flags(certs), protocols=("TCP", "HTTP", "HTTPS"))


def clients(daemon: Daemon) -> list[dict[str, Any]]:
    host, port = daemon.http_address
    with urllib.request.urlopen(f"http://{host}:{port}/stats?format=json", timeout=BOUND) as resp:
        stats = json.load(resp)
    return [cl for t in stats["topics"] for ch in t["channels"] for cl in ch["clients"]]


FEATURES = ["tls", "snappy", "deflate", "tls+snappy", "tls+deflate"]


def client_options(feature: str, certs: Certs) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    if "tls" in feature:
        kw["tls_v1"] = True
        kw["tls_options"] = {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": str(certs.ca)}
    if "snappy" in feature:
        kw["snappy"] = True
    if "deflate" in feature:
        kw["deflate"] = True
        kw["deflate_level"] = 3
    return kw


def expect_features(client: dict[str, Any], feature: str) -> None:
    assert client["tls"] is ("tls" in feature)
    assert client["snappy"] is ("snappy" in feature)
    assert client["deflate"] is ("deflate" in feature)
    if "tls" in feature:
        assert client["tls_version"] in ("TLS1.2", "TLS1.3")
        assert client["tls_cipher_suite"]
    else:
        assert client["tls_version"] == client["tls_cipher_suite"] == ""


@pytest.mark.parametrize("feature", FEATURES)
def test_pynsq_negotiates_the_feature_and_messages_round_trip(tls_nsqd: Daemon, certs: Certs, feature: str) -> None:
    kw = client_options(feature, certs)
    if "tls" in feature:  # tornado's default for a dict pins TLS 1.2; name the modern protocol
        kw["tls_options"] = kw["tls_options"] | {"ssl_version": ssl.PROTOCOL_TLS_CLIENT}
    bodies = [b"x" * 3000 + b"%d" % i for i in range(20)]  # compressible, and bigger than one TLS record together

    async def main() -> list[bytes]:
        got = Received()
        r = reader(tls_nsqd, "t", "c", got.finish, max_in_flight=5, **kw)
        await Publisher(tls_nsqd, **kw).mpub("t", bodies)
        await got.until(lambda items: len(items) >= len(bodies))
        connected = clients(tls_nsqd)
        r.close()
        assert len(connected) == 1
        expect_features(connected[0], feature)
        return got.bodies()

    assert sorted(asyncio.run(main())) == sorted(bodies)


@pytest.mark.parametrize("feature", FEATURES)
def test_gnsq_negotiates_the_feature_and_messages_round_trip(tls_nsqd: Daemon, certs: Certs, feature: str) -> None:
    host, port = tls_nsqd.tcp_address
    kw = client_options(feature, certs)
    kw.pop("deflate_level", None)
    conn = gnsq.NsqdTCPClient(host, port, timeout=BOUND, **kw)
    conn.connect()
    try:
        answer = conn.identify()
        assert answer["tls_v1"] is ("tls" in feature)
        assert answer["snappy"] is ("snappy" in feature)
        assert answer["deflate"] is ("deflate" in feature)
        conn.publish("g", b"hello over " + feature.encode())
        assert conn.read_response() == (gnsq.protocol.FRAME_TYPE_RESPONSE, b"OK")
        conn.subscribe("g", "c")
        assert conn.read_response() == (gnsq.protocol.FRAME_TYPE_RESPONSE, b"OK")
        conn.ready(1)
        frame, msg = conn.read_response()
        assert frame == gnsq.protocol.FRAME_TYPE_MESSAGE
        assert msg.body == b"hello over " + feature.encode()
        (client,) = clients(tls_nsqd)
        expect_features(client, feature)
        assert client["in_flight_count"] == 1
        conn.finish(msg.id)
    finally:
        conn.close_stream()


def v2_exchange(host: str, port: int, data: bytes) -> tuple[bytes, bool]:
    """Send ``data`` after the magic; (every byte nsqd sent back, whether it closed the connection)."""
    with socket.create_connection((host, port), timeout=BOUND) as s:
        s.sendall(b"  V2" + data)
        got = b""
        while True:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                return got, False
            if not chunk:
                return got, True
            got += chunk


def frames(data: bytes) -> list[tuple[int, bytes]]:
    out = []
    while data:
        size, kind = struct.unpack(">ii", data[:8])
        out.append((kind, data[8 : 4 + size]))
        data = data[4 + size :]
    return out


def test_a_plain_client_is_refused_every_command_but_identify_under_tls_required(
    nsqd_factory: Callable[..., Daemon], certs: Certs
) -> None:
    daemon = nsqd_factory(*tls_flags(certs, "--tls-required=true"), protocols=("TCP", "HTTP", "HTTPS"))
    host, port = daemon.tcp_address
    got, closed = v2_exchange(host, port, b"PUB t\n" + struct.pack(">i", 2) + b"hi")
    assert closed
    assert frames(got) == [(1, b"E_INVALID cannot PUB in current state (TLS required)")]
    # IDENTIFY is let through, and offers TLS
    body = json.dumps({"feature_negotiation": True, "tls_v1": False}).encode()
    with socket.create_connection((host, port), timeout=BOUND) as s:
        s.sendall(b"  V2IDENTIFY\n" + struct.pack(">i", len(body)) + body + b"SUB t c\n")
        got = b""
        while len(frames_or_none(got)) < 2:
            chunk = s.recv(65536)
            assert chunk, got
            got += chunk
    answer, refusal = frames(got)
    assert json.loads(answer[1])["tls_v1"] is False  # the client did not ask
    assert refusal == (1, b"E_INVALID cannot SUB in current state (TLS required)")


def frames_or_none(data: bytes) -> list[tuple[int, bytes]]:
    """The whole frames at the start of ``data``."""
    out = []
    while len(data) >= 8:
        size, kind = struct.unpack(">ii", data[:8])
        if len(data) < 4 + size:
            break
        out.append((kind, data[8 : 4 + size]))
        data = data[4 + size :]
    return out


def test_require_verify_takes_only_a_certificate_signed_by_the_root_ca(
    nsqd_factory: Callable[..., Daemon], certs: Certs
) -> None:
    daemon = nsqd_factory(
        *tls_flags(certs, "--tls-client-auth-policy=require-verify", f"--tls-root-ca-file={certs.ca}"),
        protocols=("TCP", "HTTP", "HTTPS"),
    )
    host, port = daemon.tcp_address
    base = {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": str(certs.ca)}

    def attempt(extra: dict[str, str]) -> None:
        conn = gnsq.NsqdTCPClient(host, port, timeout=BOUND, tls_v1=True, tls_options=base | extra)
        conn.connect()
        try:
            conn.identify()
            conn.publish("v", b"m")
            assert conn.read_response() == (gnsq.protocol.FRAME_TYPE_RESPONSE, b"OK")
        finally:
            conn.close_stream()

    attempt({"certfile": str(certs.client), "keyfile": str(certs.client)})
    for extra in ({}, {"certfile": str(certs.stranger), "keyfile": str(certs.stranger)}):
        with pytest.raises((ssl.SSLError, OSError, gnsq.errors.NSQException)):
            attempt(extra)
    daemon.wait_for_line(r"E_IDENTIFY_FAILED IDENTIFY failed")


def test_https_serves_the_api_and_plain_http_points_to_it_under_tls_required(
    nsqd_factory: Callable[..., Daemon], certs: Certs
) -> None:
    daemon = nsqd_factory(*tls_flags(certs, "--tls-required=true"), protocols=("TCP", "HTTP", "HTTPS"))
    host, port = daemon.http_address
    _, https_port = daemon.addresses["HTTPS"]
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://{host}:{port}/ping", timeout=BOUND)
    assert refused.value.code == 403
    assert json.loads(refused.value.read()) == {"message": "TLS_REQUIRED", "https_port": https_port}
    ctx = ssl.create_default_context(cafile=str(certs.ca))
    with urllib.request.urlopen(f"https://{host}:{https_port}/ping", context=ctx, timeout=BOUND) as resp:
        assert resp.read() == b"OK"
    req = urllib.request.Request(f"https://{host}:{https_port}/pub?topic=h", data=b"over https", method="POST")
    with urllib.request.urlopen(req, context=ctx, timeout=BOUND) as resp:
        assert resp.read() == b"OK"
    # a client that does not speak TLS to the HTTPS port is dropped, and nsqd goes on
    with socket.create_connection((host, https_port), timeout=BOUND) as s:
        s.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        while s.recv(65536):
            pass
    with urllib.request.urlopen(f"https://{host}:{https_port}/stats?format=json&topic=h", context=ctx, timeout=BOUND) as resp:
        (topic,) = json.load(resp)["topics"]
    assert topic["message_count"] == 1


def test_tcp_https_leaves_plain_http_open(nsqd_factory: Callable[..., Daemon], certs: Certs) -> None:
    daemon = nsqd_factory(*tls_flags(certs, "--tls-required=tcp-https"), protocols=("TCP", "HTTP", "HTTPS"))
    host, port = daemon.http_address
    with urllib.request.urlopen(f"http://{host}:{port}/ping", timeout=BOUND) as resp:
        assert resp.read() == b"OK"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--tls-cert=/nonexistent.pem", "--tls-key=/nonexistent.pem"), "failed to build TLS config - open /nonexistent.pem: no such file or directory"),
        (("--tls-required=true",), "cannot require TLS client connections without TLS key and cert"),
        (("--tls-client-auth-policy=require", "--tls-cert=CERT", "--tls-key=CERT"), "--tls-client-auth-policy=require needs --tls-root-ca-file"),
    ],
)
def test_a_tls_configuration_that_cannot_work_refuses_to_start(
    tmp_path: Path, certs: Certs, flags: tuple[str, ...], message: str
) -> None:
    argv = [f.replace("CERT", str(certs.server)) for f in flags]
    done = run_nsqd("--tcp-address=127.0.0.1:0", "--http-address=127.0.0.1:0", f"--data-path={tmp_path}", *argv)
    assert done.returncode == 1
    assert message in done.stderr
    assert "listening" not in done.stderr

