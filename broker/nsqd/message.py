"""A message as one channel holds it, and the ids nsqd gives messages.

Every channel gets its own ``Message`` (attempts and in-flight state are per
channel), but all of them share the one ``body`` bytes object the producer sent.

Ids are nsqd's: a 64-bit number made of a timestamp, the node id and a
sequence, rendered as 16 lowercase hex characters.  The timestamp is
nanoseconds shifted right by 20 (nsqd's "pseudo-milliseconds") minus nsqd's
custom epoch, taken from the Clock port, so ids are deterministic under the
simulator.  Where nsqd sleeps for the next millisecond when 4096 ids were made
in one, this factory borrows the next timestamp instead: ids stay unique and
increasing and the core never blocks.
"""

from __future__ import annotations

import struct

__all__ = ["RECORD_OVERHEAD", "GUIDFactory", "Message", "decode_message_record", "encode_message_record"]

_EPOCH = 1288834974288
_NODE_BITS = 10
_SEQUENCE_BITS = 12
_SEQUENCE_MASK = (1 << _SEQUENCE_BITS) - 1
_TS_SHIFT = _NODE_BITS + _SEQUENCE_BITS
_SEQUENCE_HEX = tuple(b"%03x" % i for i in range(1 << _SEQUENCE_BITS))
_RECORD_HEADER = struct.Struct(">qH")


class GUIDFactory:
    __slots__ = ("_last", "_node_bits", "_node_id", "_sequence")

    def __init__(self, node_id: int) -> None:
        if not 0 <= node_id < 1 << _NODE_BITS:
            raise ValueError(f"node id {node_id} out of range [0,1024)")
        self._node_id = node_id
        self._node_bits = node_id << _SEQUENCE_BITS
        self._last = -1
        self._sequence = 0

    def new(self, wall_ns: int) -> bytes:
        ts = wall_ns >> 20
        if ts <= self._last:
            ts = self._last
            self._sequence = (self._sequence + 1) & _SEQUENCE_MASK
            if self._sequence == 0:
                ts += 1
        else:
            self._sequence = 0
        self._last = ts
        guid = ((ts - _EPOCH) << _TS_SHIFT) | self._node_bits | self._sequence
        return b"%016x" % (guid & 0xFFFFFFFFFFFFFFFF)

    def new_batch(self, wall_ns: int, count: int) -> list[bytes]:
        """``count`` ids for one instant: the same as ``count`` calls of ``new``, cheaper.

        The sequence is the id's low 12 bits, its last three hex digits, so the
        ids of one timestamp share their first 13 digits: each further id is
        that prefix joined to a precomputed suffix.
        """
        first = self.new(wall_ns)
        ids = [first]
        remaining = count - 1
        prefix = first[:13]
        seq = self._sequence
        ts = self._last
        while remaining:
            take = min(remaining, _SEQUENCE_MASK - seq)
            if take:
                ids += [prefix + h for h in _SEQUENCE_HEX[seq + 1 : seq + 1 + take]]
                seq += take
                remaining -= take
            if remaining:
                # The sequence wraps: borrow the next timestamp, as ``new`` does.
                ts += 1
                seq = 0
                guid = ((ts - _EPOCH) << (_NODE_BITS + _SEQUENCE_BITS)) | (self._node_id << _SEQUENCE_BITS)
                prefix = (b"%016x" % (guid & 0xFFFFFFFFFFFFFFFF))[:13]
                ids.append(prefix + _SEQUENCE_HEX[0])
                remaining -= 1
        self._sequence = seq
        self._last = ts
        return ids


class Message:
    """One message in one channel (or in a topic before it reaches channels)."""

    __slots__ = ("attempts", "body", "client_id", "deadline", "deferred", "delivered_at", "disk_pos", "flight", "id", "timestamp")

    def __init__(self, msg_id: bytes, body: bytes, timestamp: int, attempts: int = 0, deferred: float = 0.0) -> None:
        self.id = msg_id
        self.body = body
        self.timestamp = timestamp  # wall-clock ns at publish
        self.attempts = attempts
        self.deferred = deferred  # DPUB delay in seconds, applied when the topic hands it to channels
        self.client_id = 0  # the client it is in flight to
        self.deadline = 0.0  # monotonic time it times out (in flight) or is due (deferred)
        self.delivered_at = 0.0  # monotonic time of the current delivery, for TOUCH's cap
        self.flight = 0  # token of the current in-flight or deferred entry; 0 when neither
        self.disk_pos: tuple[int, int] | None = None  # its record in a disk-only channel's queue

    def copy(self) -> Message:
        """The same message for another channel: shared body, fresh delivery state."""
        return Message(self.id, self.body, self.timestamp, self.attempts, self.deferred)

    def __repr__(self) -> str:
        return f"Message({self.id.decode()}, attempts={self.attempts}, {len(self.body)} bytes)"


# Disk records.  nsqd writes a message to its disk queue as timestamp, attempts,
# id and body.  This broker prefixes a kind byte so a deferred message can keep
# its due time (wall-clock ns) across a restart, which nsqd loses:
#     0x00 [int64 timestamp][uint16 attempts][16 id][body]
#     0x01 [int64 due wall ns][int64 timestamp][uint16 attempts][16 id][body]
_PLAIN = b"\x00"
_DEFERRED = b"\x01"
_DUE = struct.Struct(">q")
RECORD_OVERHEAD = 1 + 8 + 26  # the most a record adds to a body


def encode_message_record(msg: Message, due_wall_ns: int = 0) -> bytes:
    """The message as a disk record; ``due_wall_ns`` > 0 keeps it deferred until then."""
    header = _RECORD_HEADER.pack(msg.timestamp, msg.attempts)
    if due_wall_ns > 0:
        return _DEFERRED + _DUE.pack(due_wall_ns) + header + msg.id + msg.body
    return _PLAIN + header + msg.id + msg.body


def decode_message_record(record: bytes) -> tuple[Message, int]:
    """(message, due wall ns or 0) from a disk record; ``ValueError`` if malformed."""
    kind = record[:1]
    at = 1
    due = 0
    if kind == _DEFERRED:
        if len(record) < 9:
            raise ValueError("deferred message record too short")
        due = _DUE.unpack_from(record, 1)[0]
        at = 9
    elif kind != _PLAIN:
        raise ValueError(f"unknown message record kind {kind!r}")
    if len(record) - at < 27:
        raise ValueError(f"message record too short ({len(record)} bytes)")
    timestamp, attempts = _RECORD_HEADER.unpack_from(record, at)
    return Message(record[at + 10 : at + 26], record[at + 26 :], timestamp, attempts), due
