"""nsqd's side of nsqlookupd: announce every topic and channel to each lookupd.

Go nsqd runs one goroutine for this (``lookup.go``) around one blocking
``lookupPeer`` per ``--lookupd-tcp-address`` (``lookup_peer.go``).  Here the
same conversation is event-driven on the ports, with one ``LookupPeer`` per
address and one ``LookupClient`` that feeds them:

* at start, and whenever ``set_addresses`` adds an address, the peer connects;
* on connecting it sends ``"  V1"`` and IDENTIFY (nsqd's broadcast address,
  hostname, TCP and HTTP ports and version), and once lookupd's answer parses,
  REGISTERs every topic and channel nsqd has at that moment (a topic with
  channels is registered through them, as Go does);
* each topic or channel created or deleted afterwards becomes a REGISTER or
  UNREGISTER to every peer (ephemeral ones included, as in Go);
* every 15 seconds each peer is sent a PING.

Reconnection follows Go: a lost connection is not redialled by itself; the
next command for that peer (a PING within 15 s, or a topic or channel event)
dials again, and the new connection re-registers everything.  Go notices a
dead connection only when the next command fails, and dials on the command
after that; we learn of the loss at once, so we dial one command sooner.  A
peer dials at most once per ``MIN_REDIAL_INTERVAL`` so that a burst of events
while lookupd is down cannot turn into a burst of connection attempts.

A command issued while the peer is dialling or waiting for IDENTIFY's answer
is not sent: the registrations sent once it is identified are read from nsqd
at that moment, so they already include its effect.

Answers are ``[int32 size][data]``.  Go does not look at any of them except
IDENTIFY's, and neither do we, except to log an ``E_`` error (lookupd closes
the connection after one).  An answer bigger than ``--max-body-size``, or
missing for ``RESPONSE_TIMEOUT`` (Go's one-second read deadline), drops the
connection, as does a dial that takes longer than ``DIAL_TIMEOUT``.
"""

from __future__ import annotations

import enum
import errno
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from broker.nsqd.channel import Channel
from broker.ports import Connection, Network, Timer
from broker.wire import gojson
from broker.wire.netaddr import UNIX_PORT, is_socket_path

if TYPE_CHECKING:
    from broker.nsqd.nsqd import NSQD
    from broker.nsqd.topic import Topic

__all__ = [
    "DIAL_TIMEOUT",
    "MAGIC_V1",
    "MIN_REDIAL_INTERVAL",
    "PING_INTERVAL",
    "RESPONSE_TIMEOUT",
    "Command",
    "LookupClient",
    "LookupPeer",
    "LookupdInfo",
    "PeerState",
]

MAGIC_V1: Final = b"  V1"
PING_INTERVAL: Final = 15.0  # lookupLoop's ticker
DIAL_TIMEOUT: Final = 1.0  # net.DialTimeout in lookupPeer.Connect
RESPONSE_TIMEOUT: Final = 1.0  # the read deadline lookupPeer.Read sets
MIN_REDIAL_INTERVAL: Final = 1.0

# How Go's net package words the errors a dial or a read most often ends with.
_GO_ERRNO_TEXT: Final = {
    errno.ECONNREFUSED: "connect: connection refused",
    errno.ECONNRESET: "connection reset by peer",
    errno.EHOSTUNREACH: "connect: no route to host",
    errno.ENETUNREACH: "connect: network is unreachable",
    errno.ETIMEDOUT: "i/o timeout",
    errno.EPIPE: "broken pipe",
}

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Command:
    """One lookupd command; ``str()`` is how go-nsq's ``Command.String`` shows it in logs."""

    name: str
    params: tuple[str, ...] = ()
    body: bytes | None = None

    def __str__(self) -> str:
        return f"{self.name} {' '.join(self.params)}" if self.params else self.name

    def encode(self) -> bytes:
        line = str(self).encode("utf-8") + b"\n"
        if self.body is None:
            return line
        return line + len(self.body).to_bytes(4, "big") + self.body

    @staticmethod
    def register(topic: str, channel: str = "") -> Command:
        return Command("REGISTER", (topic, channel) if channel else (topic,))

    @staticmethod
    def unregister(topic: str, channel: str = "") -> Command:
        return Command("UNREGISTER", (topic, channel) if channel else (topic,))


PING: Final = Command("PING")


@dataclass(frozen=True, slots=True)
class LookupdInfo:
    """What a lookupd said about itself in answer to IDENTIFY (Go's ``peerInfo``)."""

    tcp_port: int = 0
    http_port: int = 0
    version: str = ""
    broadcast_address: str = ""

    def __str__(self) -> str:
        # Go logs it with %+v.
        return (
            f"{{TCPPort:{self.tcp_port} HTTPPort:{self.http_port} "
            f"Version:{self.version} BroadcastAddress:{self.broadcast_address}}}"
        )


class PeerState(enum.Enum):
    DISCONNECTED = enum.auto()
    DIALLING = enum.auto()
    IDENTIFYING = enum.auto()  # IDENTIFY sent, its answer not yet read
    READY = enum.auto()
    CLOSED = enum.auto()  # removed, or nsqd is exiting: never dials again


class LookupClient:
    """Keeps every configured nsqlookupd told of this nsqd's topics and channels."""

    def __init__(self, nsqd: NSQD, network: Network) -> None:
        self._nsqd = nsqd
        self._network = network
        self._peers: list[LookupPeer] = []
        self._ticker: Timer | None = None
        self._next_tick = 0.0
        self._started = False

    @property
    def peers(self) -> list[LookupPeer]:
        return list(self._peers)

    def start(self) -> None:
        """Connect to every ``--lookupd-tcp-address`` and start the PING ticker."""
        if self._started:
            return
        self._started = True
        self._nsqd.listeners.append(self._on_event)
        clock = self._nsqd.clock
        self._next_tick = clock.now() + PING_INTERVAL
        self._ticker = clock.call_later(PING_INTERVAL, self._tick)
        self.set_addresses(self._nsqd.opts.lookupd_tcp_addresses)

    def set_addresses(self, addresses: Sequence[str]) -> None:
        """Make the peers ``addresses``: drop the others, connect to the new ones.

        ``PUT /config/nsqlookupd_tcp_addresses`` lands here.  A peer that stays
        keeps its connection.
        """
        if not self._started:
            return
        wanted = list(dict.fromkeys(addresses))
        kept: list[LookupPeer] = []
        for peer in self._peers:
            if peer.addr in wanted:
                kept.append(peer)
            else:
                self._log("INFO", f"LOOKUP({peer.addr}): removing peer")
                peer.close()
        known = {peer.addr for peer in kept}
        self._peers = kept
        for addr in wanted:
            if addr in known:
                continue
            self._log("INFO", f"LOOKUP({addr}): adding peer")
            peer = LookupPeer(addr, self)
            self._peers.append(peer)
            peer.command(None)

    def close(self) -> None:
        """Stop: no more PINGs or registrations, and every lookupd connection closed.

        Go leaves its connections for the process exit to close; closing them
        here makes each lookupd drop this node at once, just the same.
        """
        if not self._started:
            return
        self._started = False
        self._log("INFO", "LOOKUP: closing")
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        if self._on_event in self._nsqd.listeners:
            self._nsqd.listeners.remove(self._on_event)
        for peer in self._peers:
            peer.close()

    def http_addresses(self) -> list[str]:
        """``host:port`` of each lookupd's HTTP API, as the lookupds described themselves."""
        out: list[str] = []
        for peer in self._peers:
            info = peer.info
            if info is not None and info.broadcast_address:
                host = info.broadcast_address
                host = f"[{host}]" if ":" in host else host
                out.append(f"{host}:{info.http_port}")
        return out

    # -- what the peers ask of nsqd ---------------------------------------------------

    def identify_command(self) -> Command:
        nsqd = self._nsqd
        opts = nsqd.opts
        # A Go map: json.Marshal sorts its keys.
        body = gojson.dumps(
            {
                "broadcast_address": opts.broadcast_address or nsqd.hostname,
                "hostname": nsqd.hostname,
                "http_port": nsqd.broadcast_http_port,
                "tcp_port": nsqd.broadcast_tcp_port,
                "version": nsqd.version,
            }
        )
        return Command("IDENTIFY", body=body)

    def registrations(self) -> list[Command]:
        """A REGISTER for everything nsqd has now: each channel, or the topic if it has none."""
        commands: list[Command] = []
        for topic in self._nsqd.topics.values():
            if not topic.channels:
                commands.append(Command.register(topic.name))
            else:
                commands.extend(Command.register(topic.name, name) for name in topic.channels)
        return commands

    @property
    def network(self) -> Network:
        return self._network

    @property
    def nsqd(self) -> NSQD:
        return self._nsqd

    # -- events -------------------------------------------------------------------------

    def _on_event(self, event: str, topic: Topic, obj: object) -> None:
        if event == "topic_created":
            branch, cmd = "topic", Command.register(topic.name)
        elif event == "topic_deleted":
            branch, cmd = "topic", Command.unregister(topic.name)
        elif event in ("channel_created", "channel_deleted") and isinstance(obj, Channel):
            make = Command.register if event == "channel_created" else Command.unregister
            branch, cmd = "channel", make(topic.name, obj.name)
        else:
            return
        for peer in self._peers:
            self._log("INFO", f"LOOKUPD({peer.addr}): {branch} {cmd}")
            peer.command(cmd)

    def _tick(self) -> None:
        clock = self._nsqd.clock
        for peer in self._peers:
            self._log("DEBUG", f"LOOKUPD({peer.addr}): sending heartbeat")
            peer.command(PING)
        if self._started:
            # From the previous deadline, so the cadence does not drift.
            self._next_tick += PING_INTERVAL
            self._ticker = clock.call_later(self._next_tick - clock.now(), self._tick)

    def _log(self, level: str, msg: str) -> None:
        self._nsqd.log(level, msg)


class LookupPeer:
    """One nsqlookupd, connected lazily and reconnected on demand (Go's ``lookupPeer``)."""

    def __init__(self, addr: str, client: LookupClient) -> None:
        self.addr = addr
        self.info: LookupdInfo | None = None  # from the latest IDENTIFY answer; kept across reconnects
        self.state = PeerState.DISCONNECTED
        self._client = client
        self._link: _Link | None = None
        self._buf = bytearray()
        self._outstanding: deque[Command] = deque()
        self._dial_cmd: Command | None = None  # the command that made us dial
        self._last_dial = float("-inf")
        self._timer: Timer | None = None
        self._progress_at = 0.0  # when the oldest outstanding command last moved

    def command(self, cmd: Command | None) -> None:
        """Send ``cmd`` (None: only make sure a connection is on its way)."""
        state = self.state
        if state is PeerState.READY:
            if cmd is not None:
                self._send(cmd)
        elif state is PeerState.DISCONNECTED:
            self._dial(cmd)

    def close(self) -> None:
        self.state = PeerState.CLOSED
        self._drop()

    # -- dialling -----------------------------------------------------------------------

    def _dial(self, cmd: Command | None) -> None:
        clock = self._client.nsqd.clock
        now = clock.now()
        if now - self._last_dial < MIN_REDIAL_INTERVAL:
            return
        self._last_dial = now
        self._log("INFO", f"LOOKUP connecting to {self.addr}")
        try:
            host, port = _split_host_port(self.addr)
        except ValueError as exc:
            self._command_failed(cmd, f"dial tcp: {exc}")
            return
        link = _Link(self)
        self._link = link
        self._dial_cmd = cmd
        self.state = PeerState.DIALLING
        self._timer = clock.call_later(DIAL_TIMEOUT, self._dial_timed_out)
        self._client.network.connect(host, port, link)

    def _dial_timed_out(self) -> None:
        self._timer = None
        if self.state is PeerState.DIALLING:
            cmd = self._dial_cmd
            self._drop()
            network = "unix" if is_socket_path(self.addr) else "tcp"
            self._command_failed(cmd, f"dial {network} {self.addr}: i/o timeout")

    def _connected(self, link: _Link) -> None:
        self._cancel_timer()
        self._dial_cmd = None
        self.state = PeerState.IDENTIFYING
        conn = link.conn
        assert conn is not None
        conn.write(MAGIC_V1)
        self._send(self._client.identify_command())

    # -- reading answers ----------------------------------------------------------------

    def _data(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        limit = self._client.nsqd.opts.max_body_size
        while len(buf) >= 4 and self.state in (PeerState.IDENTIFYING, PeerState.READY):
            size = int.from_bytes(buf[:4], "big", signed=True)
            if size < 0 or size > limit:
                # Go compares only against the limit (and panics on a negative size).
                self._fail(f"response body size ({size}) is greater than limit ({limit})")
                return
            if len(buf) < 4 + size:
                return
            answer = bytes(buf[4 : 4 + size])
            del buf[: 4 + size]
            self._answer(answer)

    def _answer(self, answer: bytes) -> None:
        if not self._outstanding:
            self._fail(f"unexpected response {answer!r}", None)
            return
        cmd = self._outstanding.popleft()
        self._progress_at = self._client.nsqd.clock.now()
        if not self._outstanding:
            self._cancel_timer()
        if cmd.name == "IDENTIFY":
            self._identified(answer)
        elif answer.startswith(b"E_"):
            # Go ignores the answer; lookupd closes the connection after an error.
            self._log("ERROR", f"LOOKUPD({self.addr}): {cmd} - {_text(answer)}")

    def _identified(self, answer: bytes) -> None:
        if answer == b"E_INVALID":
            self._log("INFO", f"LOOKUPD({self.addr}): lookupd returned {_text(answer)}")
            self._drop()
            return
        info = _decode_info(answer)
        if info is None:
            self._log("ERROR", f"LOOKUPD({self.addr}): parsing response - {_text(answer)}")
            self._drop()
            return
        self.info = info
        self._log("INFO", f"LOOKUPD({self.addr}): peer info {info}")
        if not info.broadcast_address:
            self._log("ERROR", f"LOOKUPD({self.addr}): no broadcast address")
        self.state = PeerState.READY
        for cmd in self._client.registrations():
            self._log("INFO", f"LOOKUPD({self.addr}): {cmd}")
            self._send(cmd)

    # -- writing and deadlines ----------------------------------------------------------

    def _send(self, cmd: Command) -> None:
        link = self._link
        assert link is not None and link.conn is not None
        if not self._outstanding:
            self._progress_at = self._client.nsqd.clock.now()
        self._outstanding.append(cmd)
        link.conn.write(cmd.encode())
        if self._timer is None:
            self._timer = self._client.nsqd.clock.call_later(RESPONSE_TIMEOUT, self._check_deadline)

    def _check_deadline(self) -> None:
        self._timer = None
        if not self._outstanding or self.state not in (PeerState.IDENTIFYING, PeerState.READY):
            return
        clock = self._client.nsqd.clock
        left = self._progress_at + RESPONSE_TIMEOUT - clock.now()
        if left > 0:
            self._timer = clock.call_later(left, self._check_deadline)
            return
        self._fail(f"read tcp {self.addr}: i/o timeout")

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- losing the connection ----------------------------------------------------------

    def _lost(self, exc: Exception | None) -> None:
        """The connection closed (or the dial failed) without our asking."""
        reason = _reason(exc)
        if self.state is PeerState.DIALLING:
            cmd = self._dial_cmd
            self._drop()
            self._command_failed(cmd, f"dial tcp {self.addr}: {reason}")
            return
        cmd = self._outstanding[0] if self._outstanding else None
        self._drop()
        self._log("ERROR", f"LOOKUPD({self.addr}): {cmd or 'connection'} - {reason}")

    def _fail(self, reason: str, cmd: Command | None = None) -> None:
        """Give up on this connection because of something lookupd sent, or did not."""
        if cmd is None and self._outstanding:
            cmd = self._outstanding[0]
        self._drop()
        self._log("ERROR", f"LOOKUPD({self.addr}): {cmd or 'connection'} - {reason}")

    def _command_failed(self, cmd: Command | None, reason: str) -> None:
        # Go's lookupLoop logs a failed command, but not the initial connect (Command(nil)).
        if cmd is not None:
            self._log("ERROR", f"LOOKUPD({self.addr}): {cmd} - {reason}")

    def _drop(self) -> None:
        """Forget the connection (closing it); the next command dials again."""
        if self.state is not PeerState.CLOSED:
            self.state = PeerState.DISCONNECTED
        self._cancel_timer()
        self._outstanding.clear()
        self._buf.clear()
        self._dial_cmd = None
        link, self._link = self._link, None
        if link is not None:
            link.detach()

    def _log(self, level: str, msg: str) -> None:
        self._client.nsqd.log(level, msg)


class _Link:
    """The ConnectionHandler of one dial; once its peer lets go of it, it only closes."""

    def __init__(self, peer: LookupPeer) -> None:
        self._peer: LookupPeer | None = peer
        self.conn: Connection | None = None

    def detach(self) -> None:
        self._peer = None
        if self.conn is not None:
            self.conn.close()

    def connection_made(self, conn: Connection) -> None:
        self.conn = conn
        if self._peer is None:
            conn.close()  # dialled too late: the peer gave up on this attempt
        else:
            self._peer._connected(self)

    def data_received(self, data: bytes) -> None:
        if self._peer is not None:
            self._peer._data(data)

    def eof_received(self) -> None:
        if self._peer is not None:
            self._peer._lost(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._peer is not None:
            self._peer._lost(exc)

    def pause_writing(self) -> None:
        pass  # a handful of short commands: nothing to hold back

    def resume_writing(self) -> None:
        pass


def _split_host_port(addr: str) -> tuple[str, int]:
    """``host:port`` of a ``--lookupd-tcp-address``; ValueError in Go's words.

    Beyond Go nsqd (which dials only TCP): an address with a ``/`` in it is the
    path of an nsqlookupd's Unix socket (``is_socket_path``), ``(path, UNIX_PORT)``.
    """
    if is_socket_path(addr):
        return addr, UNIX_PORT
    host, sep, port = addr.rpartition(":")
    if not sep:
        raise ValueError(f"address {addr}: missing port in address")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"address {addr}: too many colons in address")
    if not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ValueError(f"address {addr}: invalid port")
    return host, int(port)


def _decode_info(answer: bytes) -> LookupdInfo | None:
    """IDENTIFY's answer as Go's json.Unmarshal fills a peerInfo; None where Go fails."""
    try:
        doc = gojson.loads(answer)
    except gojson.JSONDecodeError:
        return None
    fields: dict[str, object] = {}
    if doc is None:
        return LookupdInfo()
    if not isinstance(doc, gojson.GoObject):
        return None
    for key, value in doc:
        name = key.replace("\u017f", "s").lower()  # Go matches names case-insensitively
        if value is None or name not in ("tcp_port", "http_port", "version", "broadcast_address"):
            continue
        if name in ("tcp_port", "http_port"):
            if isinstance(value, bool) or not isinstance(value, int) or not _INT64_MIN <= value <= _INT64_MAX:
                return None
        elif not isinstance(value, str):
            return None
        fields[name] = value
    return LookupdInfo(
        tcp_port=_int(fields.get("tcp_port", 0)),
        http_port=_int(fields.get("http_port", 0)),
        version=str(fields.get("version", "")),
        broadcast_address=str(fields.get("broadcast_address", "")),
    )


def _reason(exc: Exception | None) -> str:
    if exc is None:
        return "EOF"
    if isinstance(exc, OSError) and exc.errno in _GO_ERRNO_TEXT:
        return _GO_ERRNO_TEXT[exc.errno]
    if isinstance(exc, TimeoutError):
        return "i/o timeout"
    return str(exc) or type(exc).__name__


def _int(value: object) -> int:
    assert isinstance(value, int)
    return value


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")
