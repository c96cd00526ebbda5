"""The nsqd TCP protocol V2: frames out, commands in.  Bytes only, no state beyond a buffer.

Server to client, everything is a frame ``[int32 size][int32 type][data]`` where
size counts type and data.  A message frame's data is
``[int64 timestamp ns][uint16 attempts][16 ASCII hex bytes id][body]``.

Client to server, a command is a line ``NAME[ PARAM]*\\n`` (a trailing ``\\r``
is dropped), and IDENTIFY, AUTH, PUB, MPUB and DPUB are followed by a body
``[int32 size][data]``.  ``V2Parser`` turns a byte stream into ``Command``
tuples, validating in exactly the order nsqd does so that the first error a
client sees is the one nsqd would send.  A malformed command raises
``ClientError``; every error the parser raises is fatal (nsqd closes the
connection), so the parser never needs to resynchronise after one.

nsqd reads the MPUB payload straight from the stream after checking only that
the announced body size is in range: the messages' own length prefixes decide
how many bytes are consumed.  The parser does the same, so a client that sends
a wrong body size sees what it would see with nsqd.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Callable
from typing import NamedTuple

from broker.wire.names import is_valid_channel_name, is_valid_topic_name

__all__ = [
    "CLOSE_WAIT",
    "FRAME_ERROR",
    "FRAME_MESSAGE",
    "FRAME_RESPONSE",
    "HEARTBEAT",
    "MAGIC_V2",
    "MAX_LINE",
    "MSG_ID_LENGTH",
    "OK",
    "Auth",
    "ClientError",
    "Cls",
    "Command",
    "Dpub",
    "Fin",
    "FrameParser",
    "Identify",
    "LineTooLong",
    "Mpub",
    "Nop",
    "Pub",
    "Rdy",
    "Req",
    "Sub",
    "Touch",
    "V2Parser",
    "decode_message",
    "encode_command",
    "encode_dpub",
    "encode_frame",
    "encode_identify",
    "encode_message",
    "encode_mpub",
    "encode_pub",
    "go_quote",
    "parse_base10",
    "rdy_count",
]

MAGIC_V2 = b"  V2"
FRAME_RESPONSE = 0
FRAME_ERROR = 1
FRAME_MESSAGE = 2
OK = b"OK"
HEARTBEAT = b"_heartbeat_"
CLOSE_WAIT = b"CLOSE_WAIT"
MSG_ID_LENGTH = 16
# nsqd reads command lines through a 16 KiB bufio.Reader; a longer line is a read
# error and the connection is closed without an error frame.
MAX_LINE = 16 * 1024

_FRAME_HEADER = struct.Struct(">ii")
_MESSAGE_HEADER = struct.Struct(">iiqH")
_INT32 = struct.Struct(">i")
_U64 = 1 << 64


class ClientError(Exception):
    """An NSQ protocol error: ``E_CODE description``, fatal or not (nsq's protocol.ClientErr)."""

    def __init__(self, code: str, desc: str, *, fatal: bool = True) -> None:
        super().__init__(f"{code} {desc}")
        self.code = code
        self.desc = desc
        self.fatal = fatal

    def frame(self) -> bytes:
        return encode_frame(FRAME_ERROR, str(self).encode())


class LineTooLong(Exception):
    """A command line passed ``MAX_LINE``: nsqd drops such a connection without a reply."""


# -- commands ---------------------------------------------------------------------
# NamedTuples rather than frozen dataclasses: they are built once per command on the
# hot path (one per FIN), and a NamedTuple is several times cheaper to construct.


class Identify(NamedTuple):
    body: bytes


class Auth(NamedTuple):
    secret: bytes


class Sub(NamedTuple):
    topic: str
    channel: str


class Pub(NamedTuple):
    topic: str
    body: bytes


class Mpub(NamedTuple):
    topic: str
    bodies: list[bytes]


class Dpub(NamedTuple):
    topic: str
    defer_ms: int
    body: bytes


class Rdy(NamedTuple):
    raw_count: bytes | None  # validated by rdy_count() after the state check, as nsqd orders it


class Fin(NamedTuple):
    id: bytes


class Req(NamedTuple):
    id: bytes
    timeout_ms: int  # already clamped to [0, max-req-timeout], as nsqd does


class Touch(NamedTuple):
    id: bytes


class Cls(NamedTuple):
    pass


class Nop(NamedTuple):
    pass


Command = Identify | Auth | Sub | Pub | Mpub | Dpub | Rdy | Fin | Req | Touch | Cls | Nop

_new_tuple = tuple.__new__


# -- encoding ---------------------------------------------------------------------


def encode_frame(frame_type: int, data: bytes) -> bytes:
    return _FRAME_HEADER.pack(len(data) + 4, frame_type) + data


def encode_message(timestamp_ns: int, attempts: int, msg_id: bytes, body: bytes) -> bytes:
    """A whole message frame (header, id and body)."""
    return _MESSAGE_HEADER.pack(len(body) + 30, FRAME_MESSAGE, timestamp_ns, attempts) + msg_id + body


# -- helpers with Go semantics ----------------------------------------------------


def parse_base10(b: bytes) -> int | None:
    """nsq's ByteToBase10: decimal digits only (empty is 0), wrapping at 2**64; None if invalid."""
    if not b:
        return 0
    if not b.isdigit() or not b.isascii():
        return None
    return int(b) % _U64


def _int64(n: int) -> int:
    """Reinterpret an unsigned 64-bit value as Go's int64."""
    n %= _U64
    return n - _U64 if n >= 1 << 63 else n


def go_quote(raw: bytes) -> str:
    """Render bytes as Go's ``%q`` does for a string (used in nsqd's error texts)."""
    out = ['"']
    text = raw.decode("utf-8", "surrogateescape")
    for ch in text:
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:
            out.append(f"\\x{o - 0xDC00:02x}")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif o < 0x80:
            out.append(f"\\x{o:02x}")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


# -- the command parser -----------------------------------------------------------

# A run of FINs whose lines have exactly one 16-byte parameter (nsqd splits on
# single spaces and ends the line at the first newline).  Only ids of the form
# nsqd gives (lowercase hex) are taken in a run, which is cheaper to match; any
# other id goes through next_command and fails the same way there.
_FIN_RUN = re.compile(rb"(?:FIN [0-9a-f]{16}\n)+")
_FIN_IDS = re.compile(rb"FIN (.{16})\n", re.DOTALL)

Precheck = Callable[[bytes, list[bytes]], None]


class _Limits(NamedTuple):
    max_msg_size: int
    max_body_size: int
    max_req_timeout_ms: int


class V2Parser:
    """Turns the client's byte stream (after the magic) into commands.

    ``feed()`` bytes, then call ``next_command()`` until it returns None (more
    bytes needed).  It raises ``ClientError`` for a malformed command and
    ``LineTooLong`` for an over-long line.  ``precheck(name, params)`` is called
    where nsqd checks the connection's state: first thing for every command but
    RDY, NOP, PUB, MPUB and DPUB (a command with a body is rejected before its
    body is read).  nsqd makes no such check for the three publishes; their
    authorisation comes after the body.
    """

    __slots__ = ("_buf", "_limits", "_pos", "_topic_name", "_topic_raw", "precheck")

    def __init__(
        self,
        *,
        max_msg_size: int,
        max_body_size: int,
        max_req_timeout_ms: int,
        precheck: Precheck | None = None,
    ) -> None:
        # The unparsed input is ``_buf[_pos:]``.  ``_buf`` is the caller's own bytes
        # while a read is parsed without carrying anything over (a read usually ends
        # on a command boundary), and a bytearray holding the remainder otherwise.
        self._buf: bytes | bytearray = b""
        self._pos = 0
        self._limits = _Limits(max_msg_size, max_body_size, max_req_timeout_ms)
        self.precheck = precheck
        # The last topic name that passed validation, raw and decoded: a producer
        # names the same topic in every publish, and a name once valid stays valid.
        self._topic_raw: bytes | None = None
        self._topic_name = ""

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        # Nothing left over: parse the read where it lies, without copying it.
        buf = self._buf
        pos = self._pos
        if pos >= len(buf):
            self._buf = data if type(data) is bytes else bytes(data)
            self._pos = 0
        elif type(buf) is bytearray:
            if pos:
                del buf[:pos]
                self._pos = 0
            buf += data
        else:
            rest = bytearray(buf[pos:])
            rest += data
            self._buf = rest
            self._pos = 0

    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def take_unparsed(self) -> bytes:
        """Everything not parsed yet, removed: after IDENTIFY switched on a layer, it belongs to that layer."""
        rest = bytes(self._buf[self._pos :])
        self._buf = b""
        self._pos = 0
        return rest

    def peek_name(self) -> bytes | None:
        """The name of the next command, once its whole line is here; None before."""
        buf = self._buf
        nl = buf.find(b"\n", self._pos)
        if nl < 0:
            if len(buf) - self._pos > MAX_LINE:
                raise LineTooLong()
            return None
        line = bytes(buf[self._pos : nl]).rstrip(b"\r")
        return line.split(b" ", 1)[0]

    def take_fins(self) -> list[bytes]:
        """Consume a run of well-formed ``FIN <id>\\n`` lines and return their ids.

        A consumer's traffic is mostly FINs; taking them in a batch skips building
        a command per message.  Anything else, including a malformed FIN, is left
        for ``next_command`` (which gives nsqd's error for it).
        """
        m = _FIN_RUN.match(self._buf, self._pos)
        if m is None:
            return []
        chunk = m.group()
        self._pos = m.end()
        if len(chunk) == 21:
            return [chunk[4:20]]
        return _FIN_IDS.findall(chunk)

    def next_command(self) -> Command | None:
        buf = self._buf
        pos = self._pos
        if pos == len(buf):
            return None
        nl = buf.find(b"\n", pos)
        if nl < 0:
            if len(buf) - pos > MAX_LINE:
                raise LineTooLong()
            return None
        if nl - pos >= MAX_LINE:
            raise LineTooLong()
        end = nl - 1 if nl > pos and buf[nl - 1] == 0x0D else nl
        line = buf[pos:end]
        if type(line) is not bytes:
            line = bytes(line)
        params = line.split(b" ")
        name = params[0]
        body_start = nl + 1

        # PUB first: it is what most reads from a producer hold.  Then the bodiless
        # commands, most frequent first.  nsqd checks the connection's state before
        # anything else in every command but PUB/MPUB/DPUB.
        if name == b"PUB":
            return self._pub(params, body_start)
        if name == b"FIN":
            self._pos = body_start
            if self.precheck is not None:
                self.precheck(name, params)
            if len(params) < 2:
                raise ClientError("E_INVALID", "FIN insufficient number of params")
            return Fin(_message_id(params[1]))
        if name == b"RDY":
            self._pos = body_start
            return Rdy(params[1] if len(params) > 1 else None)
        if name == b"REQ":
            self._pos = body_start
            if self.precheck is not None:
                self.precheck(name, params)
            return self._req(params)
        if name == b"TOUCH":
            self._pos = body_start
            if self.precheck is not None:
                self.precheck(name, params)
            if len(params) < 2:
                raise ClientError("E_INVALID", "TOUCH insufficient number of params")
            return Touch(_message_id(params[1]))
        if name == b"NOP":
            self._pos = body_start
            return Nop()
        if name == b"CLS":
            self._pos = body_start
            if self.precheck is not None:
                self.precheck(name, params)
            return Cls()
        if name == b"SUB":
            self._pos = body_start
            return self._sub(params)

        if name == b"MPUB":
            return self._mpub(params, body_start)
        if name == b"DPUB":
            return self._dpub(params, body_start)
        if name == b"IDENTIFY":
            return self._identify(params, body_start)
        if name == b"AUTH":
            return self._auth(params, body_start)
        self._pos = body_start
        raise ClientError("E_INVALID", f"invalid command {_go_bytes(name)}")

    # -- bodiless ---------------------------------------------------------------

    def _req(self, params: list[bytes]) -> Req:
        if len(params) < 3:
            raise ClientError("E_INVALID", "REQ insufficient number of params")
        msg_id = _message_id(params[1])
        n = parse_base10(params[2])
        if n is None:
            raise ClientError("E_INVALID", f"REQ could not parse timeout {_go_bytes(params[2])}")
        # nsqd computes time.Duration(ms) * time.Millisecond in int64 and clamps
        # the result into range rather than rejecting it.
        ns = _int64(_int64(n) * 1_000_000)
        max_ns = self._limits.max_req_timeout_ms * 1_000_000
        ns = min(max(ns, 0), max_ns)
        return Req(msg_id, ns // 1_000_000)

    def _sub(self, params: list[bytes]) -> Sub:
        if self.precheck is not None:
            self.precheck(b"SUB", params)
        if len(params) < 3:
            raise ClientError("E_INVALID", "SUB insufficient number of parameters")
        topic = _decode(params[1])
        if topic is None or not is_valid_topic_name(topic):
            raise ClientError("E_BAD_TOPIC", f"SUB topic name {go_quote(params[1])} is not valid")
        channel = _decode(params[2])
        if channel is None or not is_valid_channel_name(channel):
            raise ClientError("E_BAD_CHANNEL", f"SUB channel name {go_quote(params[2])} is not valid")
        return Sub(topic, channel)

    # -- with a body --------------------------------------------------------------

    def _topic(self, cmd: str, params: list[bytes], nparams: int, prefix: str = "") -> str:
        if len(params) < nparams:
            raise ClientError("E_INVALID", f"{cmd} insufficient number of parameters")
        raw = params[1]
        if raw == self._topic_raw:
            return self._topic_name
        topic = _decode(raw)
        if topic is None or not is_valid_topic_name(topic):
            raise ClientError("E_BAD_TOPIC", f"{prefix}{cmd} topic name {go_quote(raw)} is not valid")
        self._topic_raw = raw
        self._topic_name = topic
        return topic

    def _length(self, at: int) -> int | None:
        if len(self._buf) < at + 4:
            return None
        n: int = _INT32.unpack_from(self._buf, at)[0]
        return n

    def _message_body(self, cmd: str, at: int) -> tuple[bytes, int] | None:
        """A PUB/DPUB body: size checks as nsqd makes them, then the bytes."""
        buf = self._buf
        if len(buf) < at + 4:
            return None
        size: int = _INT32.unpack_from(buf, at)[0]
        if size <= 0:
            raise ClientError("E_BAD_MESSAGE", f"{cmd} invalid message body size {size}")
        if size > self._limits.max_msg_size:
            raise ClientError("E_BAD_MESSAGE", f"{cmd} message too big {size} > {self._limits.max_msg_size}")
        end = at + 4 + size
        if len(buf) < end:
            return None
        return bytes(buf[at + 4 : end]), end

    def _pub(self, params: list[bytes], at: int) -> Pub | None:
        # _topic and _message_body, written out for the common case: PUB is the
        # command a producer sends most.
        if len(params) > 1 and params[1] == self._topic_raw:
            topic = self._topic_name
        else:
            topic = self._topic("PUB", params, 2)
        buf = self._buf
        if len(buf) < at + 4:
            return None
        size: int = _INT32.unpack_from(buf, at)[0]
        if size <= 0 or size > self._limits.max_msg_size:
            self._message_body("PUB", at)  # raises nsqd's error for the size
        end = at + 4 + size
        if len(buf) < end:
            return None
        self._pos = end
        body = buf[at + 4 : end]
        # tuple.__new__ straight: a NamedTuple's own constructor is a Python-level call.
        return _new_tuple(Pub, (topic, body if type(body) is bytes else bytes(body)))

    def _dpub(self, params: list[bytes], at: int) -> Dpub | None:
        topic = self._topic("DPUB", params, 3)
        n = parse_base10(params[2])
        if n is None:
            raise ClientError("E_INVALID", f"DPUB could not parse timeout {_go_bytes(params[2])}")
        ms = _int64(n)
        ns = _int64(ms * 1_000_000)
        max_ms = self._limits.max_req_timeout_ms
        if ns < 0 or ns > max_ms * 1_000_000:
            raise ClientError("E_INVALID", f"DPUB timeout {ms} out of range 0-{max_ms}")
        got = self._message_body("DPUB", at)
        if got is None:
            return None
        self._pos = got[1]
        return Dpub(topic, ms, got[0])

    def _mpub(self, params: list[bytes], at: int) -> Mpub | None:
        # nsqd's MPUB names the code twice in this one description.
        topic = self._topic("MPUB", params, 2, prefix="E_BAD_TOPIC ")
        size = self._length(at)
        if size is None:
            return None
        if size <= 0:
            raise ClientError("E_BAD_BODY", f"MPUB invalid body size {size}")
        max_body = self._limits.max_body_size
        if size > max_body:
            raise ClientError("E_BAD_BODY", f"MPUB body too big {size} > {max_body}")
        at += 4
        count = self._length(at)
        if count is None:
            return None
        if count <= 0 or count > (max_body - 4) // 5:
            raise ClientError("E_BAD_BODY", f"MPUB invalid message count {count}")
        at += 4
        # Walk the length prefixes first, then copy the whole payload once and cut
        # the bodies from that copy: one copy of the stream per MPUB, one per body.
        buf = self._buf
        have = len(buf)
        max_msg = self._limits.max_msg_size
        unpack = _INT32.unpack_from
        start = at
        spans: list[tuple[int, int]] = []
        for i in range(count):
            if have < at + 4:
                return None
            msize = unpack(buf, at)[0]
            if msize <= 0:
                raise ClientError("E_BAD_MESSAGE", f"MPUB invalid message({i}) body size {msize}")
            if msize > max_msg:
                raise ClientError("E_BAD_MESSAGE", f"MPUB message too big {msize} > {max_msg}")
            at += 4
            end = at + msize
            if have < end:
                return None
            spans.append((at - start, end - start))
            at = end
        chunk = bytes(buf[start:at])
        bodies = [chunk[a:b] for a, b in spans]
        self._pos = at
        return Mpub(topic, bodies)

    def _sized_body(self, cmd: str, at: int) -> tuple[bytes, int] | None:
        """An IDENTIFY/AUTH body: nsqd checks the upper bound before the lower one here."""
        size = self._length(at)
        if size is None:
            return None
        if size > self._limits.max_body_size:
            raise ClientError("E_BAD_BODY", f"{cmd} body too big {size} > {self._limits.max_body_size}")
        if size <= 0:
            raise ClientError("E_BAD_BODY", f"{cmd} invalid body size {size}")
        end = at + 4 + size
        if len(self._buf) < end:
            return None
        return bytes(self._buf[at + 4 : end]), end

    def _identify(self, params: list[bytes], at: int) -> Identify | None:
        if self.precheck is not None:
            self.precheck(b"IDENTIFY", params)
        got = self._sized_body("IDENTIFY", at)
        if got is None:
            return None
        self._pos = got[1]
        return Identify(got[0])

    def _auth(self, params: list[bytes], at: int) -> Auth | None:
        if self.precheck is not None:
            self.precheck(b"AUTH", params)
        if len(params) != 1:
            raise ClientError("E_INVALID", "AUTH invalid number of parameters")
        got = self._sized_body("AUTH", at)
        if got is None:
            return None
        self._pos = got[1]
        return Auth(got[0])


def rdy_count(raw: bytes | None, max_rdy_count: int) -> int:
    """The count of a RDY command (1 when absent), or the ClientError nsqd sends."""
    count = 1
    if raw is not None:
        n = parse_base10(raw)
        if n is None:
            raise ClientError("E_INVALID", f"RDY could not parse count {_go_bytes(raw)}")
        count = _int64(n)
    if count < 0 or count > max_rdy_count:
        raise ClientError("E_INVALID", f"RDY count {count} out of range 0-{max_rdy_count}")
    return count


def _message_id(raw: bytes) -> bytes:
    if len(raw) != MSG_ID_LENGTH:
        raise ClientError("E_INVALID", "invalid message ID")
    return raw


def _decode(raw: bytes) -> str | None:
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        return None


def _go_bytes(raw: bytes) -> str:
    """Bytes interpolated with Go's %s: raw, invalid UTF-8 shown as U+FFFD."""
    return raw.decode("utf-8", "replace")


# -- the client side: frames in -----------------------------------------------------


class FrameParser:
    """Splits the server's byte stream into (frame type, data); for clients and tests."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next_frame(self) -> tuple[int, bytes] | None:
        buf = self._buf
        if len(buf) < 8:
            return None
        size, frame_type = _FRAME_HEADER.unpack_from(buf, 0)
        if size < 4:
            raise ValueError(f"invalid frame size {size}")
        if len(buf) < 4 + size:
            return None
        data = bytes(buf[8 : 4 + size])
        del buf[: 4 + size]
        return frame_type, data


# -- the client side: commands out --------------------------------------------------


def encode_command(name: bytes, *params: bytes, body: bytes | None = None) -> bytes:
    """A command line, with a ``[int32 size][data]`` body when one is given."""
    line = b" ".join((name, *params)) + b"\n"
    if body is None:
        return line
    return line + _INT32.pack(len(body)) + body


def encode_identify(data: dict[str, object]) -> bytes:
    return encode_command(b"IDENTIFY", body=json.dumps(data).encode())


def encode_pub(topic: str, body: bytes) -> bytes:
    # encode_command written out: a producer encodes one of these per message.
    return b"".join((b"PUB ", topic.encode(), b"\n", _INT32.pack(len(body)), body))


def encode_dpub(topic: str, defer_ms: int, body: bytes) -> bytes:
    return b"".join((b"DPUB ", topic.encode(), b" %d\n" % defer_ms, _INT32.pack(len(body)), body))


def encode_mpub(topic: str, bodies: list[bytes]) -> bytes:
    payload = bytearray(_INT32.pack(len(bodies)))
    for body in bodies:
        payload += _INT32.pack(len(body))
        payload += body
    return encode_command(b"MPUB", topic.encode(), body=bytes(payload))


def decode_message(data: bytes) -> tuple[int, int, bytes, bytes]:
    """A message frame's data: (timestamp ns, attempts, id, body)."""
    if len(data) < 26:
        raise ValueError(f"message frame too short ({len(data)} bytes)")
    timestamp, attempts = struct.unpack_from(">qH", data, 0)
    return timestamp, attempts, bytes(data[10:26]), bytes(data[26:])
