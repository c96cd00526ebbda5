"""nsqlookupd's TCP protocol V1: one sans-IO handler per connection.

The conversation, as nsqlookupd 1.3.0 holds it::

    client: "  V1"                                once, first
    client: "PING\\n"                              -> "OK"
    client: "IDENTIFY\\n" [int32 size] [JSON]      -> lookupd's own JSON
    client: "REGISTER <topic> [<channel>]\\n"      -> "OK"
    client: "UNREGISTER <topic> [<channel>]\\n"    -> "OK"

Every answer is ``[int32 size][data]`` with no frame type, errors included
(``E_CODE description``). A bad magic gets ``E_BAD_PROTOCOL``. Every error
nsqlookupd sends is fatal: it is written, then the peer's registrations are
dropped and the connection is closed, exactly as closing the connection does.

Lines are read as Go reads them: up to ``\\n``, trimmed of Unicode white space
(``strings.TrimSpace``), then split on single spaces, so ``REGISTER t  c``
has an empty third word and registers the topic only. Words stay bytes so an
error can echo whatever the client sent.

Deliberate departures from Go, all where Go has no bound or crashes:

* a line longer than ``MAX_LINE_LENGTH`` gets ``E_INVALID line too long``
  (Go buffers without limit);
* a negative IDENTIFY size gets ``E_BAD_BODY IDENTIFY failed to read body
  size`` (Go panics, taking the daemon down), and one over
  ``MAX_IDENTIFY_BODY_SIZE`` gets ``E_BAD_BODY IDENTIFY body too big``
  (Go allocates whatever it is told).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from broker.lookupd.registration_db import CHANNEL, CLIENT, TOPIC, PeerInfo, Producer, Registration
from broker.ports import Connection
from broker.wire import gojson
from broker.wire.names import is_ephemeral, is_valid_channel_name, is_valid_topic_name
from broker.wire.netaddr import go_addr_string, is_unix

if TYPE_CHECKING:
    from broker.lookupd.lookupd import NSQLookupd

__all__ = [
    "MAGIC_V1",
    "MAX_IDENTIFY_BODY_SIZE",
    "MAX_LINE_LENGTH",
    "FatalClientError",
    "LookupProtocolV1",
    "go_address",
]

MAGIC_V1: Final = b"  V1"
# The longest real command is UNREGISTER with two 64-byte names; this leaves room.
MAX_LINE_LENGTH: Final = 4096
# nsqd's IDENTIFY is a couple of hundred bytes.
MAX_IDENTIFY_BODY_SIZE: Final = 1024 * 1024

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


class FatalClientError(Exception):
    """An ``E_CODE description`` answer after which the connection closes."""

    def __init__(self, code: str, desc: bytes | str) -> None:
        self.code = code
        self.desc = desc.encode("utf-8", "surrogateescape") if isinstance(desc, str) else desc
        super().__init__(self.payload.decode("utf-8", "replace"))

    @property
    def payload(self) -> bytes:
        return self.code.encode("ascii") + b" " + self.desc


class _State(enum.Enum):
    MAGIC = enum.auto()
    LINE = enum.auto()
    IDENTIFY_SIZE = enum.auto()
    IDENTIFY_BODY = enum.auto()
    CLOSED = enum.auto()


class LookupProtocolV1:
    """The ConnectionHandler of one nsqd (or any client) on lookupd's TCP port."""

    def __init__(self, lookupd: NSQLookupd) -> None:
        self._lookupd = lookupd
        self._conn: Connection | None = None
        self._addr = ""
        self._id = ""
        self._buf = bytearray()
        self._state = _State.MAGIC
        self._body_size = 0
        self._peer: PeerInfo | None = None

    @property
    def peer_info(self) -> PeerInfo | None:
        """What the client's IDENTIFY said, once it has identified."""
        return self._peer

    @property
    def closed(self) -> bool:
        return self._state is _State.CLOSED

    # -- ConnectionHandler ---------------------------------------------------

    def connection_made(self, conn: Connection) -> None:
        self._conn = conn
        self._addr = go_address(conn.peer_address)
        # Go keys registrations by the address, the same "@" for every Unix client (it listens on TCP only).
        self._id = self._lookupd.unix_peer_id(self._addr) if is_unix(conn.peer_address) else self._addr
        self._lookupd.connection_opened(self)
        self._log("INFO", f"TCP: new client({self._addr})")

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return  # Go stops reading after a fatal error; so do we
        self._buf += data
        pos = 0
        try:
            while not self.closed:
                step = self._step(pos)
                if step < 0:
                    break
                pos = step
        except FatalClientError as err:
            self._fail(err)
        if not self.closed:
            del self._buf[:pos]

    def eof_received(self) -> None:
        if self._state is _State.CLOSED:
            return
        # Go's reader fails where it stands; mid-IDENTIFY it still answers.
        if self._state is _State.IDENTIFY_SIZE:
            self._fail(FatalClientError("E_BAD_BODY", "IDENTIFY failed to read body size"))
        elif self._state is _State.IDENTIFY_BODY:
            self._fail(FatalClientError("E_BAD_BODY", "IDENTIFY failed to read body"))
        else:
            if self._state is _State.MAGIC:
                self._log("ERROR", "failed to read protocol version - EOF")
            self._finish(close=True)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._state is not _State.CLOSED:
            self._finish(close=False)

    def pause_writing(self) -> None:
        # Go blocks in Write and so stops reading; do the same.
        if self._conn is not None and self._state is not _State.CLOSED:
            self._conn.pause_reading()

    def resume_writing(self) -> None:
        if self._conn is not None and self._state is not _State.CLOSED:
            self._conn.resume_reading()

    def close(self) -> None:
        """Drop the peer's registrations and close (lookupd is exiting)."""
        if self._state is not _State.CLOSED:
            self._finish(close=True)

    # -- parsing ---------------------------------------------------------------

    def _step(self, pos: int) -> int:
        """Consume one unit from ``pos``; the new position, or -1 to wait for more bytes."""
        buf = self._buf
        state = self._state
        if state is _State.LINE:
            nl = buf.find(b"\n", pos)
            if (nl if nl >= 0 else len(buf)) - pos > MAX_LINE_LENGTH:
                raise FatalClientError("E_INVALID", "line too long")
            if nl < 0:
                return -1
            self._exec(bytes(buf[pos:nl]))
            return nl + 1
        if state is _State.MAGIC:
            if len(buf) - pos < 4:
                return -1
            self._check_magic(bytes(buf[pos : pos + 4]))
            return pos + 4
        if state is _State.IDENTIFY_SIZE:
            if len(buf) - pos < 4:
                return -1
            size = int.from_bytes(buf[pos : pos + 4], "big", signed=True)
            if size < 0:
                raise FatalClientError("E_BAD_BODY", "IDENTIFY failed to read body size")
            if size > MAX_IDENTIFY_BODY_SIZE:
                raise FatalClientError(
                    "E_BAD_BODY", f"IDENTIFY body too big {size} > {MAX_IDENTIFY_BODY_SIZE}"
                )
            self._body_size = size
            self._state = _State.IDENTIFY_BODY
            return pos + 4
        # IDENTIFY_BODY
        end = pos + self._body_size
        if len(buf) < end:
            return -1
        self._state = _State.LINE
        self._identify(bytes(buf[pos:end]))
        return end

    def _check_magic(self, magic: bytes) -> None:
        shown = magic.decode("utf-8", "replace")
        self._log("INFO", f"CLIENT({self._addr}): desired protocol magic '{shown}'")
        if magic != MAGIC_V1:
            self._send(b"E_BAD_PROTOCOL")
            self._log("ERROR", f"client({self._addr}) bad protocol magic '{shown}'")
            self._finish(close=True)
            return
        self._state = _State.LINE

    def _exec(self, line: bytes) -> None:
        params = _trim_space(line).split(b" ")
        cmd = params[0]
        if cmd == b"PING":
            self._send(self._ping())
        elif cmd == b"IDENTIFY":
            if self._peer is not None:
                raise FatalClientError("E_INVALID", "cannot IDENTIFY again")
            self._state = _State.IDENTIFY_SIZE
        elif cmd == b"REGISTER":
            self._send(self._register(params[1:]))
        elif cmd == b"UNREGISTER":
            self._send(self._unregister(params[1:]))
        else:
            raise FatalClientError("E_INVALID", b"invalid command " + cmd)

    # -- commands --------------------------------------------------------------

    def _ping(self) -> bytes:
        peer = self._peer
        if peer is not None:
            clock = self._lookupd.clock
            now = clock.now()
            self._log("INFO", f"CLIENT({peer.id}): pinged (last ping {now - peer.last_update:.6f}s)")
            peer.touch(now, clock.wall_ns())
        return b"OK"

    def _identify(self, body: bytes) -> None:
        fields = _decode_identify(body)
        # Go decodes into the PeerInfo itself and then overwrites remote_address.
        peer = PeerInfo(
            id=self._id,
            remote_address=self._addr,
            hostname=fields.hostname,
            broadcast_address=fields.broadcast_address,
            tcp_port=fields.tcp_port,
            http_port=fields.http_port,
            version=fields.version,
            last_update=0.0,
            last_update_ns=0,
        )
        if not peer.broadcast_address or not peer.tcp_port or not peer.http_port or not peer.version:
            raise FatalClientError("E_BAD_BODY", "IDENTIFY missing fields")
        clock = self._lookupd.clock
        peer.touch(clock.now(), clock.wall_ns())
        self._log(
            "INFO",
            f"CLIENT({self._addr}): IDENTIFY Address:{peer.broadcast_address} "
            f"TCP:{peer.tcp_port} HTTP:{peer.http_port} Version:{peer.version}",
        )
        self._peer = peer
        if self._lookupd.db.add_producer(Registration(CLIENT, "", ""), Producer(peer)):
            self._log_db("REGISTER", CLIENT, "", "")
        self._send(self._lookupd.identify_response())

    def _register(self, params: list[bytes]) -> bytes:
        peer = self._require_identify()
        topic, channel = _topic_channel("REGISTER", params)
        db = self._lookupd.db
        if channel and db.add_producer(Registration(CHANNEL, topic, channel), Producer(peer)):
            self._log_db("REGISTER", CHANNEL, topic, channel)
        if db.add_producer(Registration(TOPIC, topic, ""), Producer(peer)):
            self._log_db("REGISTER", TOPIC, topic, "")
        return b"OK"

    def _unregister(self, params: list[bytes]) -> bytes:
        peer = self._require_identify()
        topic, channel = _topic_channel("UNREGISTER", params)
        db = self._lookupd.db
        if channel:
            key = Registration(CHANNEL, topic, channel)
            removed, left = db.remove_producer(key, peer.id)
            if removed:
                self._log_db("UNREGISTER", CHANNEL, topic, channel)
            # An ephemeral channel is gone with its last producer; others linger.
            if left == 0 and is_ephemeral(channel):
                db.remove_registration(key)
            return b"OK"
        # A topic going away takes its channels with it; nsqd normally
        # unregisters those first, so anything left here is worth a warning.
        for r in db.find_registrations(CHANNEL, topic, "*"):
            if db.remove_producer(r, peer.id)[0]:
                self._log(
                    "WARN",
                    f"client({self._addr}) unexpected UNREGISTER category:{CHANNEL} "
                    f"key:{topic} subkey:{r.subkey}",
                )
        key = Registration(TOPIC, topic, "")
        removed, left = db.remove_producer(key, peer.id)
        if removed:
            self._log_db("UNREGISTER", TOPIC, topic, "")
        if left == 0 and is_ephemeral(topic):
            db.remove_registration(key)
        return b"OK"

    def _require_identify(self) -> PeerInfo:
        if self._peer is None:
            raise FatalClientError("E_INVALID", "client must IDENTIFY")
        return self._peer

    # -- output and teardown ---------------------------------------------------

    def _send(self, data: bytes) -> None:
        if self._conn is not None:
            self._conn.write(len(data).to_bytes(4, "big") + data)

    def _fail(self, err: FatalClientError) -> None:
        self._log("ERROR", f"[{self._addr}] - {err}")
        self._send(err.payload)
        self._finish(close=True)

    def _finish(self, *, close: bool) -> None:
        """Leave the read loop as Go does: forget the peer everywhere, then close."""
        self._state = _State.CLOSED
        self._buf.clear()
        self._log("INFO", f"PROTOCOL(V1): [{self._addr}] exiting ioloop")
        peer = self._peer
        if peer is not None:
            db = self._lookupd.db
            for r in db.lookup_registrations(peer.id):
                if db.remove_producer(r, peer.id)[0]:
                    self._log_db("UNREGISTER", r.category, r.key, r.subkey)
        self._lookupd.connection_closed(self)
        if close and self._conn is not None:
            self._conn.close()

    def _log(self, level: str, msg: str) -> None:
        self._lookupd.logger.log(level, msg)

    def _log_db(self, verb: str, category: str, key: str, subkey: str) -> None:
        self._log(
            "INFO",
            f"DB: client({self._addr}) {verb} category:{category} key:{key} subkey:{subkey}",
        )


def go_address(addr: tuple[str, int]) -> str:
    """``addr`` as Go's ``net.Addr.String()`` writes it (IPv6 in brackets, a socket's path)."""
    return go_addr_string(addr)


# unicode.IsSpace: what strings.TrimSpace removes.
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


def _trim_space(line: bytes) -> bytes:
    if line.isascii():
        return line.strip(b" \t\n\v\f\r")
    # Invalid UTF-8 is not space to Go; surrogateescape keeps those bytes intact.
    return line.decode("utf-8", "surrogateescape").strip(_GO_SPACE).encode("utf-8", "surrogateescape")


def _topic_channel(command: str, params: list[bytes]) -> tuple[str, str]:
    if not params:
        raise FatalClientError("E_INVALID", f"{command} insufficient number of params")
    topic_b = params[0]
    channel_b = params[1] if len(params) >= 2 else b""
    # Valid names are ASCII; latin-1 maps every other byte to a non-matching character.
    topic, channel = topic_b.decode("latin-1"), channel_b.decode("latin-1")
    if not is_valid_topic_name(topic):
        raise FatalClientError(
            "E_BAD_TOPIC", command.encode() + b" topic name '" + topic_b + b"' is not valid"
        )
    if channel and not is_valid_channel_name(channel):
        raise FatalClientError(
            "E_BAD_CHANNEL", command.encode() + b" channel name '" + channel_b + b"' is not valid"
        )
    return topic, channel


# PeerInfo's JSON fields and their Go types; Go ignores any other key.
_STRING_FIELDS: Final = frozenset({"remote_address", "hostname", "broadcast_address", "version"})
_INT_FIELDS: Final = frozenset({"tcp_port", "http_port"})
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(slots=True)
class _IdentifyBody:
    remote_address: str = ""
    hostname: str = ""
    broadcast_address: str = ""
    tcp_port: int = 0
    http_port: int = 0
    version: str = ""


def _decode_identify(body: bytes) -> _IdentifyBody:
    """The IDENTIFY body as Go's json.Unmarshal fills a PeerInfo.

    Keys match field names case-insensitively (Go also folds U+017F to ``s``),
    later duplicates win, ``null`` leaves a field alone, and a value of the
    wrong type fails the whole body.
    """
    bad = FatalClientError("E_BAD_BODY", "IDENTIFY failed to decode JSON body")
    try:
        doc = gojson.loads(body)
    except gojson.JSONDecodeError:
        raise bad from None
    fields = _IdentifyBody()
    if doc is None:
        return fields
    if not isinstance(doc, gojson.GoObject):
        raise bad
    for key, value in doc:
        name = key.replace("\u017f", "s").lower()
        if value is None:
            continue
        if name in _STRING_FIELDS:
            if not isinstance(value, str):
                raise bad
            setattr(fields, name, _SURROGATE.sub("\ufffd", value))
        elif name in _INT_FIELDS:
            if isinstance(value, bool) or not isinstance(value, int):
                raise bad
            if not _INT64_MIN <= value <= _INT64_MAX:
                raise bad
            setattr(fields, name, value)
    return fields
