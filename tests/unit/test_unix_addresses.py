"""Unix-socket addresses through the core, the client and the runtime, without a real socket.

The ports carry a Unix socket as ``(path, UNIX_PORT)``; these tests pin what
the core makes of one (Go nsqd 1.3.0's /info ports of -1, a lookupd IDENTIFY
with port 0, a client named ``@``), how address strings are classified (Go's
``util.TypeOfAddr`` for nsqd's listeners, ``is_socket_path`` elsewhere) and
how an HTTP URL names a socket.
"""

from __future__ import annotations

import json

import pytest

from broker.client.address import http_url, join_address, split_address
from broker.client.http import HTTPRequest
from broker.client.lookupd import lookup_url
from broker.runtime.addr import type_of_addr
from broker.wire import v2
from broker.wire.netaddr import UNIX_PORT, go_addr_string, is_socket_path
from tests.fakes import FakeConnection
from tests.unit.http.helpers import Node
from tests.unit.lookupd.fakes import Peer, make_lookupd
from tests.unit.nsqd.test_lookup import LOOKUPD_1, World

# -- classifying and writing addresses -------------------------------------------------------


@pytest.mark.parametrize(
    ("addr", "network"),
    [
        # Go's own table (internal/util/util_test.go), then the edges of its rule
        ("127.0.0.1:80", "tcp"),
        ("test:80", "tcp"),
        ("/var/run/nsqd.sock", "unix"),
        ("[::1%lo0]:80", "tcp"),
        (":4150", "tcp"),
        ("4150", "unix"),
        ("localhost", "unix"),
        ("nsqd.sock", "unix"),
        ("/tmp/a:b", "tcp"),  # SplitHostPort splits it, so Go dials TCP (and fails on the port)
    ],
)
def test_type_of_addr_is_gos_rule(addr: str, network: str) -> None:
    assert type_of_addr(addr) == network


@pytest.mark.parametrize(
    ("addr", "path"),
    [("/run/nsqd.sock", True), ("./nsqd.sock", True), ("@nsqd", True), ("nsqd.sock", False), ("localhost", False), ("host:4150", False)],
)
def test_is_socket_path_wants_an_unmistakable_path(addr: str, path: bool) -> None:
    assert is_socket_path(addr) is path


def test_go_addr_string() -> None:
    assert go_addr_string(("127.0.0.1", 4150)) == "127.0.0.1:4150"
    assert go_addr_string(("::1", 4150)) == "[::1]:4150"
    assert go_addr_string(("/run/nsqd.sock", UNIX_PORT)) == "/run/nsqd.sock"
    assert go_addr_string(("", UNIX_PORT)) == "@"  # an unnamed peer, as Go on Linux writes it


def test_client_addresses_take_socket_paths() -> None:
    assert split_address("/run/nsqd.sock") == ("/run/nsqd.sock", UNIX_PORT)
    assert split_address("@nsqd") == ("@nsqd", UNIX_PORT)
    assert join_address("/run/nsqd.sock", UNIX_PORT) == "/run/nsqd.sock"
    assert split_address("[::1]:4150") == ("::1", 4150)
    with pytest.raises(ValueError, match="missing host or port"):
        split_address("nsqd.sock")  # no "/": a host:port typo keeps its error


def test_http_urls_name_a_socket_with_http_unix() -> None:
    assert http_url("127.0.0.1:4151", "/ping") == "http://127.0.0.1:4151/ping"
    url = http_url("/run/nsq/http.sock", "/stats?format=json")
    assert url == "http+unix://%2Frun%2Fnsq%2Fhttp.sock/stats?format=json"
    request = HTTPRequest.from_url(url)
    assert (request.host, request.port, request.target) == ("/run/nsq/http.sock", UNIX_PORT, "/stats?format=json")
    assert HTTPRequest.from_url(http_url("@nsq-http")).host == "@nsq-http"
    with pytest.raises(ValueError, match="no socket path"):
        HTTPRequest.from_url("http+unix:///ping")
    lookup = HTTPRequest.from_url(lookup_url("/run/lookupd-http.sock", "t"))
    assert (lookup.host, lookup.port, lookup.target) == ("/run/lookupd-http.sock", UNIX_PORT, "/lookup?topic=t")


# -- the nsqd core on a Unix socket ------------------------------------------------------------


def test_info_reports_port_minus_one_for_unix_listeners() -> None:
    node = Node()
    node.nsqd.set_listen_addresses(("/run/nsqd.sock", UNIX_PORT), ("/run/nsqd-http.sock", UNIX_PORT))
    info = node.request("GET", "/info").json()
    assert (info["tcp_port"], info["http_port"]) == (-1, -1)


def test_a_unix_client_is_named_at_sign_with_no_host_until_identify() -> None:
    node = Node()
    conn = FakeConnection(node.nsqd.tcp_handler(), ("", UNIX_PORT))
    conn.send(v2.MAGIC_V2)
    [client] = node.nsqd.clients.values()
    assert (client.remote_address, client.client_id, client.hostname) == ("@", "", "")
    assert ("INFO", "TCP: new client(@)") in node.logger.lines


def test_nsqd_on_unix_sockets_announces_port_0_and_lookupd_refuses_it() -> None:
    # nsqd.New fills --broadcast-*-port from TCP listeners only; nsqlookupd wants both ports.
    w = World("127.0.0.1:4160")
    w.nsqd.set_listen_addresses(("/run/nsqd.sock", UNIX_PORT), ("/run/nsqd-http.sock", UNIX_PORT))
    w.lookupd()
    w.start()
    sent = w.net.client_bytes(LOOKUPD_1)
    assert b'"http_port":0,"tcp_port":0' in sent
    assert any("IDENTIFY missing fields" in msg for _level, msg in w.lookupd_logs[LOOKUPD_1].lines)


def test_broadcast_ports_given_make_a_unix_nsqd_registrable() -> None:
    w = World("127.0.0.1:4160", broadcast_tcp_port=14150, broadcast_http_port=14151)
    w.nsqd.set_listen_addresses(("/run/nsqd.sock", UNIX_PORT), ("/run/nsqd-http.sock", UNIX_PORT))
    w.lookupd()
    w.start()
    w.nsqd.get_topic("t")
    w.settle()
    [producer] = w.producers("t")
    assert (producer["tcp_port"], producer["http_port"]) == (14150, 14151)


def test_lookupd_tells_unix_clients_apart() -> None:
    # Go would key both by "@" (its nsqlookupd listens on TCP only); each keeps its own registrations here.
    lookupd, _clock, logger = make_lookupd()
    a = Peer(lookupd, ("", UNIX_PORT)).connect_v1()
    b = Peer(lookupd, ("", UNIX_PORT)).connect_v1()
    a.identify(broadcast_address="nsqd-a")
    b.identify(broadcast_address="nsqd-b")
    nodes = json.loads(lookupd.handle_http_target("GET", "/nodes", b"")[2])["producers"]
    assert sorted((n["broadcast_address"], n["remote_address"]) for n in nodes) == [("nsqd-a", "@"), ("nsqd-b", "@")]
    assert "TCP: new client(@)" in logger.messages("INFO")
