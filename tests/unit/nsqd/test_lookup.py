"""nsqd's registration with nsqlookupd, end to end in one process.

An NSQD and its LookupClient talk to real NSQLookupd cores through an
in-memory network: every write is delivered through the fake clock (as a
zero-delay timer), so nothing re-enters a handler, and ``settle()`` runs what
is due.  What nsqlookupd ends up knowing is read back through its own HTTP API,
the way a consumer would see it.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Callable
from typing import Any

import pytest

from broker.lookupd.lookupd import NSQLookupd
from broker.lookupd.options import LookupdOptions
from broker.nsqd.lookup import (
    DIAL_TIMEOUT,
    MIN_REDIAL_INTERVAL,
    PING_INTERVAL,
    RESPONSE_TIMEOUT,
    Command,
    LookupClient,
    PeerState,
)
from broker.nsqd.nsqd import NSQD
from broker.nsqd.options import Options
from broker.ports import ConnectionHandler
from tests.fakes import FakeClock, FakeRandom, RecordingLogger

LOOKUPD_1 = ("127.0.0.1", 4160)
LOOKUPD_2 = ("127.0.0.1", 5160)
ADDR_1 = "127.0.0.1:4160"
ADDR_2 = "127.0.0.1:5160"


# -- an in-memory network on the fake clock ----------------------------------------------


class Endpoint:
    """One end of an in-memory stream: a Connection whose bytes arrive through the clock."""

    def __init__(self, net: FakeNetwork, local: tuple[str, int], peer: tuple[str, int]) -> None:
        self._net = net
        self._local = local
        self._peer = peer
        self.handler: ConnectionHandler | None = None
        self.other: Endpoint | None = None
        self.closed = False
        self.sent = bytearray()  # everything this end wrote
        self.blackholed = False  # drop what this end writes (a one-way partition)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.closed:
            return
        chunk = bytes(data)
        self.sent += chunk
        if not self.blackholed:
            self._net.clock.call_later(0, lambda: self._deliver_to_other(chunk))

    def _deliver_to_other(self, chunk: bytes) -> None:
        other = self.other
        if other is not None and not other.closed and other.handler is not None:
            other.handler.data_received(chunk)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        clock = self._net.clock
        clock.call_later(0, lambda: self._lost(None))
        clock.call_later(0, self._close_other)

    def abort(self) -> None:
        self.close()

    def _close_other(self) -> None:
        other = self.other
        if other is not None and not other.closed:
            other.closed = True
            if other.handler is not None:
                other.handler.eof_received()
            other._lost(None)

    def _lost(self, exc: Exception | None) -> None:
        if self.handler is not None:
            self.handler.connection_lost(exc)

    def write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    @property
    def peer_address(self) -> tuple[str, int]:
        return self._peer

    @property
    def local_address(self) -> tuple[str, int]:
        return self._local


class FakeNetwork:
    """The Network port: dials reach whatever listens at (host, port) after ``latency`` seconds."""

    def __init__(self, clock: FakeClock, latency: float = 0.0) -> None:
        self.clock = clock
        self.latency = latency
        self.listeners: dict[tuple[str, int], Callable[[], ConnectionHandler]] = {}
        self.dials: list[tuple[str, int]] = []
        self.connections: list[tuple[Endpoint, Endpoint]] = []  # (client end, server end)
        self._next_port = 50000

    def listen(self, addr: tuple[str, int], factory: Callable[[], ConnectionHandler]) -> None:
        self.listeners[addr] = factory

    def unlisten(self, addr: tuple[str, int]) -> None:
        del self.listeners[addr]

    def connect(self, host: str, port: int, handler: ConnectionHandler) -> None:
        self.dials.append((host, port))
        self.clock.call_later(self.latency, lambda: self._complete((host, port), handler))

    def _complete(self, addr: tuple[str, int], handler: ConnectionHandler) -> None:
        factory = self.listeners.get(addr)
        if factory is None:
            handler.connection_lost(ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed"))
            return
        self._next_port += 1
        client = Endpoint(self, ("127.0.0.1", self._next_port), addr)
        server = Endpoint(self, addr, ("127.0.0.1", self._next_port))
        client.other, server.other = server, client
        server_handler = factory()
        client.handler, server.handler = handler, server_handler
        self.connections.append((client, server))
        handler.connection_made(client)
        server_handler.connection_made(server)

    def client_bytes(self, addr: tuple[str, int]) -> bytes:
        """Everything every client wrote to ``addr``."""
        return b"".join(bytes(c.sent) for c, s in self.connections if s.local_address == addr)

    def open_to(self, addr: tuple[str, int]) -> list[tuple[Endpoint, Endpoint]]:
        return [(c, s) for c, s in self.connections if s.local_address == addr and not c.closed]


# -- the world under test -------------------------------------------------------------


class World:
    def __init__(self, *addresses: str, latency: float = 0.0, **opts: Any) -> None:
        self.clock = FakeClock()
        self.net = FakeNetwork(self.clock, latency)
        self.log = RecordingLogger()
        self.nsqd = NSQD(
            Options(node_id=7, lookupd_tcp_addresses=list(addresses), **opts),
            clock=self.clock,
            rand=FakeRandom(),
            logger=self.log,
            hostname="nsqd-host",
        )
        self.nsqd.set_listen_addresses(("0.0.0.0", 4150), ("0.0.0.0", 4151))
        self.lookup = LookupClient(self.nsqd, self.net)
        self.lookupds: dict[tuple[str, int], NSQLookupd] = {}
        self.lookupd_logs: dict[tuple[str, int], RecordingLogger] = {}

    def lookupd(self, addr: tuple[str, int] = LOOKUPD_1) -> NSQLookupd:
        """Start a lookupd core listening at ``addr`` on the fake network."""
        logger = RecordingLogger()
        node = NSQLookupd(LookupdOptions(), clock=self.clock, logger=logger, hostname=f"lookupd-{addr[1]}")
        self.lookupd_logs[addr] = logger
        node.set_listen_addresses(("0.0.0.0", addr[1]), ("0.0.0.0", addr[1] + 1))
        self.net.listen(addr, node.tcp_handler)
        self.lookupds[addr] = node
        return node

    def stop_lookupd(self, addr: tuple[str, int] = LOOKUPD_1) -> None:
        self.net.unlisten(addr)
        self.lookupds.pop(addr).close()
        self.settle()

    def settle(self) -> None:
        self.clock.advance(0)

    def start(self) -> None:
        self.lookup.start()
        self.settle()

    def producers(self, topic: str, addr: tuple[str, int] = LOOKUPD_1) -> list[dict[str, Any]]:
        body = self._get(addr, f"/lookup?topic={topic}")
        producers: list[dict[str, Any]] = body.get("producers", [])
        return producers

    def channels(self, topic: str, addr: tuple[str, int] = LOOKUPD_1) -> list[str]:
        channels: list[str] = self._get(addr, f"/channels?topic={topic}")["channels"]
        return channels

    def topics(self, addr: tuple[str, int] = LOOKUPD_1) -> list[str]:
        topics: list[str] = self._get(addr, "/topics")["topics"]
        return topics

    def channel_producers(self, topic: str, channel: str, addr: tuple[str, int] = LOOKUPD_1) -> int:
        key = f"channel:{topic}:{channel}"
        entries: list[Any] = self._get(addr, "/debug").get(key, [])
        return len(entries)

    def _get(self, addr: tuple[str, int], target: str) -> dict[str, Any]:
        status, _, body = self.lookupds[addr].handle_http_target("GET", target, b"")
        result: dict[str, Any] = json.loads(body)
        result["_status"] = status
        return result

    def messages(self, level: str | None = None) -> list[str]:
        return [m for lvl, m in self.log.lines if level is None or lvl == level]

    def peer_state(self, i: int = 0) -> PeerState:
        return self.lookup.peers[i].state


def commands(data: bytes) -> list[bytes]:
    """The command lines in what nsqd wrote (IDENTIFY's body left out)."""
    assert data.startswith(b"  V1")
    out = []
    rest = data[4:]
    while rest:
        line, _, rest = rest.partition(b"\n")
        out.append(line)
        if line == b"IDENTIFY":
            size = int.from_bytes(rest[:4], "big")
            rest = rest[4 + size :]
            if rest.startswith(b"  V1"):
                rest = rest[4:]
    return out


# -- tests ----------------------------------------------------------------------------


def test_command_encoding() -> None:
    assert Command.register("t").encode() == b"REGISTER t\n"
    assert Command.register("t", "c").encode() == b"REGISTER t c\n"
    assert Command.unregister("t", "c#ephemeral").encode() == b"UNREGISTER t c#ephemeral\n"
    assert Command("IDENTIFY", body=b"{}").encode() == b"IDENTIFY\n\x00\x00\x00\x02{}"
    assert str(Command.register("t", "c")) == "REGISTER t c"


def test_connects_identifies_and_registers_what_exists() -> None:
    w = World(ADDR_1)
    w.lookupd()
    w.nsqd.get_topic("solo")
    pair = w.nsqd.get_topic("pair")
    pair.get_channel("a")
    pair.get_channel("b")

    w.start()

    sent = w.net.client_bytes(LOOKUPD_1)
    identify = b'{"broadcast_address":"nsqd-host","hostname":"nsqd-host","http_port":4151,"tcp_port":4150,"version":"1.3.0"}'
    assert sent.startswith(b"  V1IDENTIFY\n" + len(identify).to_bytes(4, "big") + identify)
    assert commands(sent) == [b"IDENTIFY", b"REGISTER solo", b"REGISTER pair a", b"REGISTER pair b"]
    assert w.peer_state() is PeerState.READY
    [producer] = w.producers("solo")
    assert producer["broadcast_address"] == "nsqd-host"
    assert (producer["tcp_port"], producer["http_port"], producer["version"]) == (4150, 4151, "1.3.0")
    assert w.producers("pair") == [producer]
    assert w.channels("pair") == ["a", "b"]
    assert w.messages("INFO")[-6:] == [
        "LOOKUP(127.0.0.1:4160): adding peer",
        "LOOKUP connecting to 127.0.0.1:4160",
        "LOOKUPD(127.0.0.1:4160): peer info {TCPPort:4160 HTTPPort:4161 Version:1.3.0 BroadcastAddress:lookupd-4160}",
        "LOOKUPD(127.0.0.1:4160): REGISTER solo",
        "LOOKUPD(127.0.0.1:4160): REGISTER pair a",
        "LOOKUPD(127.0.0.1:4160): REGISTER pair b",
    ]
    assert w.lookup.http_addresses() == ["lookupd-4160:4161"]


def test_identify_announces_the_broadcast_address_and_ports() -> None:
    w = World(ADDR_1, broadcast_address="10.1.2.3", broadcast_tcp_port=14150, broadcast_http_port=14151)
    w.lookupd()
    w.start()
    assert b'{"broadcast_address":"10.1.2.3","hostname":"nsqd-host","http_port":14151,"tcp_port":14150,"version":"1.3.0"}' in (
        w.net.client_bytes(LOOKUPD_1)
    )
    w.nsqd.get_topic("t")
    w.settle()
    [producer] = w.producers("t")
    assert (producer["broadcast_address"], producer["tcp_port"], producer["http_port"]) == ("10.1.2.3", 14150, 14151)


def test_new_topics_and_channels_are_registered_and_deleted_ones_unregistered() -> None:
    w = World(ADDR_1)
    w.lookupd()
    w.start()

    topic = w.nsqd.get_topic("t")
    w.settle()
    assert len(w.producers("t")) == 1
    assert "LOOKUPD(127.0.0.1:4160): topic REGISTER t" in w.messages("INFO")

    topic.get_channel("c")
    w.settle()
    assert w.channels("t") == ["c"]
    assert w.channel_producers("t", "c") == 1
    assert "LOOKUPD(127.0.0.1:4160): channel REGISTER t c" in w.messages("INFO")

    topic.delete_existing_channel("c")
    w.settle()
    assert w.channel_producers("t", "c") == 0
    assert len(w.producers("t")) == 1

    w.nsqd.delete_existing_topic("t")
    w.settle()
    assert w.producers("t") == []
    assert commands(w.net.client_bytes(LOOKUPD_1))[1:] == [
        b"REGISTER t",
        b"REGISTER t c",
        b"UNREGISTER t c",
        b"UNREGISTER t",
    ]


def test_deleting_a_topic_unregisters_its_channels_then_the_topic() -> None:
    w = World(ADDR_1)
    w.lookupd()
    w.start()
    w.nsqd.get_topic("t").get_channel("c")
    w.nsqd.delete_existing_topic("t")
    w.settle()
    assert commands(w.net.client_bytes(LOOKUPD_1))[-2:] == [b"UNREGISTER t c", b"UNREGISTER t"]
    assert w.producers("t") == []
    assert w.channel_producers("t", "c") == 0
    # lookupd complains when a topic goes while it still lists channels of it; it did not.
    assert not [msg for level, msg in w.lookupd_logs[LOOKUPD_1].lines if level == "WARN"]


def test_ephemeral_topics_and_channels_are_registered_too() -> None:
    w = World(ADDR_1)
    w.lookupd()
    w.start()
    topic = w.nsqd.get_topic("e#ephemeral")
    topic.get_channel("c#ephemeral")
    w.settle()
    assert len(w.producers("e#ephemeral")) == 1
    assert w.channels("e#ephemeral") == ["c#ephemeral"]

    topic.delete_existing_channel("c#ephemeral")  # the last channel: the topic goes too
    w.settle()
    assert "e#ephemeral" not in w.nsqd.topics
    # lookupd forgets an ephemeral name once its last producer leaves.
    assert w.channels("e#ephemeral") == []
    assert w.producers("e#ephemeral") == []
    assert "e#ephemeral" not in w.topics()


def test_pings_every_15_seconds_and_keeps_the_producer_fresh() -> None:
    w = World(ADDR_1)
    node = w.lookupd()
    w.start()
    w.nsqd.get_topic("t")
    w.settle()
    peer_info = node.db.find_producers("client", "", "")[0].peer_info
    identified_at = peer_info.last_update

    w.clock.advance(PING_INTERVAL - 0.001)
    assert commands(w.net.client_bytes(LOOKUPD_1)).count(b"PING") == 0
    w.clock.advance(0.001)
    assert commands(w.net.client_bytes(LOOKUPD_1)).count(b"PING") == 1
    assert peer_info.last_update == identified_at + PING_INTERVAL
    w.clock.advance(3 * PING_INTERVAL)
    assert commands(w.net.client_bytes(LOOKUPD_1)).count(b"PING") == 4
    assert peer_info.last_update == identified_at + 4 * PING_INTERVAL
    assert "LOOKUPD(127.0.0.1:4160): sending heartbeat" in w.messages("DEBUG")
    assert w.peer_state() is PeerState.READY
    assert w.net.dials == [LOOKUPD_1]

    # With the default 5m inactivity timeout, a node that pings stays listed for good.
    w.clock.advance(20 * 60)
    assert len(w.producers("t")) == 1


def test_reconnects_on_the_next_ping_after_lookupd_closes_and_registers_again() -> None:
    w = World(ADDR_1)
    node = w.lookupd()
    w.start()
    w.nsqd.get_topic("t").get_channel("c")
    w.nsqd.get_topic("u")
    w.settle()

    node.close()  # lookupd drops the connection and with it every registration
    w.settle()
    assert w.producers("t") == []
    assert w.peer_state() is PeerState.DISCONNECTED
    assert "LOOKUPD(127.0.0.1:4160): connection - EOF" in w.messages("ERROR")

    # No redial until the next command: here, the PING at 15 s.
    w.clock.advance(PING_INTERVAL - 0.001)
    assert w.net.dials == [LOOKUPD_1]
    w.clock.advance(0.001)
    assert w.net.dials == [LOOKUPD_1, LOOKUPD_1]
    assert w.peer_state() is PeerState.READY
    assert len(w.producers("t")) == 1
    assert len(w.producers("u")) == 1
    assert w.channel_producers("t", "c") == 1
    [(client, _)] = w.net.open_to(LOOKUPD_1)
    assert commands(bytes(client.sent)) == [b"IDENTIFY", b"REGISTER t c", b"REGISTER u"]


def test_a_topic_event_also_redials() -> None:
    w = World(ADDR_1)
    node = w.lookupd()
    w.start()
    node.close()
    w.settle()
    w.clock.advance(MIN_REDIAL_INTERVAL)
    w.nsqd.get_topic("t")
    w.settle()
    assert w.net.dials == [LOOKUPD_1, LOOKUPD_1]
    # The command that caused the dial is covered by the registrations sent once identified.
    [(client, _)] = w.net.open_to(LOOKUPD_1)
    assert commands(bytes(client.sent)) == [b"IDENTIFY", b"REGISTER t"]
    assert len(w.producers("t")) == 1


def test_while_lookupd_is_down_dials_are_bounded() -> None:
    w = World(ADDR_1)
    w.start()  # nothing listens yet
    assert w.net.dials == [LOOKUPD_1]
    assert w.peer_state() is PeerState.DISCONNECTED
    # Go is silent about the first connect, and logs a failing command.
    assert w.messages("ERROR") == []

    # A burst of events: at most one dial per MIN_REDIAL_INTERVAL.
    for i in range(50):
        w.nsqd.get_topic(f"t{i}")
        w.settle()
    assert w.net.dials == [LOOKUPD_1]
    w.clock.advance(PING_INTERVAL)
    assert w.net.dials == [LOOKUPD_1, LOOKUPD_1]
    assert w.messages("ERROR")[-1] == "LOOKUPD(127.0.0.1:4160): PING - dial tcp 127.0.0.1:4160: connect: connection refused"
    w.clock.advance(10 * PING_INTERVAL)
    assert len(w.net.dials) == 12

    w.lookupd()
    w.clock.advance(PING_INTERVAL)
    assert w.peer_state() is PeerState.READY
    assert all(len(w.producers(f"t{i}")) == 1 for i in range(50))


def test_set_addresses_adds_and_removes_peers_at_run_time() -> None:
    w = World(ADDR_1)
    w.lookupd(LOOKUPD_1)
    w.lookupd(LOOKUPD_2)
    w.start()
    w.nsqd.get_topic("t")
    w.settle()
    assert len(w.producers("t", LOOKUPD_1)) == 1
    assert w.producers("t", LOOKUPD_2) == []

    w.lookup.set_addresses([ADDR_1, ADDR_2, ADDR_2])
    w.settle()
    assert [p.addr for p in w.lookup.peers] == [ADDR_1, ADDR_2]
    assert len(w.producers("t", LOOKUPD_2)) == 1
    assert w.net.dials == [LOOKUPD_1, LOOKUPD_2]  # the kept peer kept its connection

    w.lookup.set_addresses([ADDR_2])
    w.settle()
    assert "LOOKUP(127.0.0.1:4160): removing peer" in w.messages("INFO")
    assert w.producers("t", LOOKUPD_1) == []
    assert w.net.open_to(LOOKUPD_1) == []
    assert len(w.producers("t", LOOKUPD_2)) == 1

    # The removed peer is gone for good: neither events nor pings reach it.
    w.nsqd.get_topic("u")
    w.clock.advance(2 * PING_INTERVAL)
    assert w.net.dials == [LOOKUPD_1, LOOKUPD_2]
    assert w.producers("u", LOOKUPD_1) == []
    assert len(w.producers("u", LOOKUPD_2)) == 1


def test_a_lookupd_that_stops_answering_is_dropped_after_the_read_deadline() -> None:
    w = World(ADDR_1)
    w.lookupd()
    w.start()
    [(_, server)] = w.net.open_to(LOOKUPD_1)
    server.blackholed = True  # lookupd still reads, but its answers are lost

    w.clock.advance(PING_INTERVAL)
    assert w.peer_state() is PeerState.READY
    w.clock.advance(RESPONSE_TIMEOUT - 0.001)
    assert w.peer_state() is PeerState.READY
    w.clock.advance(0.001)
    assert w.peer_state() is PeerState.DISCONNECTED
    assert "LOOKUPD(127.0.0.1:4160): PING - read tcp 127.0.0.1:4160: i/o timeout" in w.messages("ERROR")
    assert w.net.open_to(LOOKUPD_1) == []

    w.clock.advance(PING_INTERVAL)
    assert w.peer_state() is PeerState.READY


def test_a_dial_that_takes_too_long_is_abandoned_and_its_late_connection_closed() -> None:
    w = World(ADDR_1, latency=DIAL_TIMEOUT + 0.5)
    w.lookupd()
    w.start()
    w.clock.advance(DIAL_TIMEOUT)
    assert w.peer_state() is PeerState.DISCONNECTED
    w.clock.advance(0.5)
    assert w.net.open_to(LOOKUPD_1) == []
    assert w.lookupds[LOOKUPD_1].db.find_producers("client", "", "") == []

    w.clock.advance(PING_INTERVAL - DIAL_TIMEOUT - 0.5)  # the PING dials, and times out too
    w.clock.advance(DIAL_TIMEOUT)
    assert "LOOKUPD(127.0.0.1:4160): PING - dial tcp 127.0.0.1:4160: i/o timeout" in w.messages("ERROR")


class ScriptedServer:
    """A stand-in for lookupd that answers each line it reads from a list."""

    def __init__(self, answers: list[bytes]) -> None:
        self.answers = answers
        self.conn: Any = None
        self.received = bytearray()

    def connection_made(self, conn: Any) -> None:
        self.conn = conn

    def data_received(self, data: bytes) -> None:
        self.received += data
        while self.answers and self.received.count(b"\n") > 0:
            line, _, rest = bytes(self.received).partition(b"\n")
            if line.endswith(b"IDENTIFY"):
                size = int.from_bytes(rest[:4], "big")
                if len(rest) < 4 + size:
                    return
                rest = rest[4 + size :]
            self.received = bytearray(rest)
            self.conn.write(self.answers.pop(0))

    def eof_received(self) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        pass

    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        pass


def _framed(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


@pytest.mark.parametrize(
    ("answer", "level", "line"),
    [
        (_framed(b"E_INVALID"), "INFO", "LOOKUPD(127.0.0.1:4160): lookupd returned E_INVALID"),
        (_framed(b"E_BAD_BODY IDENTIFY missing fields"), "ERROR", "LOOKUPD(127.0.0.1:4160): parsing response - E_BAD_BODY IDENTIFY missing fields"),
        (_framed(b'{"tcp_port":"4160"}'), "ERROR", 'LOOKUPD(127.0.0.1:4160): parsing response - {"tcp_port":"4160"}'),
        (b"\x7f\xff\xff\xff", "ERROR", "LOOKUPD(127.0.0.1:4160): IDENTIFY - response body size (2147483647) is greater than limit (5242880)"),
    ],
)
def test_an_identify_answer_go_would_not_accept_drops_the_connection(answer: bytes, level: str, line: str) -> None:
    w = World(ADDR_1)
    w.nsqd.get_topic("t")
    w.net.listen(LOOKUPD_1, lambda: ScriptedServer([answer]))
    w.start()
    assert line in w.messages(level)
    assert w.peer_state() is PeerState.DISCONNECTED
    assert w.net.open_to(LOOKUPD_1) == []
    [(client, _)] = w.net.connections
    assert commands(bytes(client.sent)) == [b"IDENTIFY"]  # nothing registered


def test_identify_answer_is_read_as_go_reads_it() -> None:
    w = World(ADDR_1)
    answer = _framed(b'{"TCP_PORT":1,"http_port":2,"Version":"x","broadcast_address":"h","extra":[1],"version":null}')
    w.net.listen(LOOKUPD_1, lambda: ScriptedServer([answer]))
    w.start()
    assert w.peer_state() is PeerState.READY
    assert str(w.lookup.peers[0].info) == "{TCPPort:1 HTTPPort:2 Version:x BroadcastAddress:h}"
    assert w.lookup.http_addresses() == ["h:2"]


def test_an_error_answer_to_a_registration_is_logged() -> None:
    w = World(ADDR_1)
    identify = _framed(b'{"tcp_port":4160,"http_port":4161,"version":"1.3.0","broadcast_address":"h"}')
    w.net.listen(LOOKUPD_1, lambda: ScriptedServer([identify, _framed(b"E_BAD_TOPIC no")]))
    w.start()
    w.nsqd.get_topic("t")
    w.settle()
    assert "LOOKUPD(127.0.0.1:4160): REGISTER t - E_BAD_TOPIC no" in w.messages("ERROR")


def test_a_bad_address_never_dials_and_is_reported_on_each_command() -> None:
    w = World("no-port-here")
    w.start()
    w.clock.advance(PING_INTERVAL)
    assert w.net.dials == []
    assert "LOOKUPD(no-port-here): PING - dial tcp: address no-port-here: missing port in address" in w.messages("ERROR")


def test_close_stops_pings_and_closes_every_connection() -> None:
    w = World(ADDR_1, ADDR_2)
    w.lookupd(LOOKUPD_1)
    w.lookupd(LOOKUPD_2)
    w.start()
    w.nsqd.get_topic("t")
    w.settle()
    before = len(w.net.client_bytes(LOOKUPD_1))

    w.lookup.close()
    w.settle()
    assert "LOOKUP: closing" in w.messages("INFO")
    assert w.net.open_to(LOOKUPD_1) == w.net.open_to(LOOKUPD_2) == []
    assert w.producers("t", LOOKUPD_1) == w.producers("t", LOOKUPD_2) == []
    assert all(p.state is PeerState.CLOSED for p in w.lookup.peers)

    w.nsqd.get_topic("u")
    w.clock.advance(3 * PING_INTERVAL)
    assert len(w.net.client_bytes(LOOKUPD_1)) == before
    assert w.clock.pending() == 0


def test_nsqd_close_without_delete_does_not_unregister() -> None:
    # Exiting is not deleting: topics close quietly and the connection's end unregisters them.
    w = World(ADDR_1)
    w.lookupd()
    w.start()
    w.nsqd.get_topic("t").get_channel("c")
    w.settle()
    w.nsqd.close()
    w.settle()
    assert b"UNREGISTER" not in w.net.client_bytes(LOOKUPD_1)
