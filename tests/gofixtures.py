"""Go nsqd 1.3 data directories, written from the format's description, for the takeover tests.

Written from what go-diskqueue (v1.1.0, which nsqd 1.3.0 uses) and nsqd put
on disk, not from their code:

* ``<queue>.diskqueue.NNNNNN.dat`` (``%06d``): records ``[int32 big-endian
  length][payload]``, no header, no checksum.  Before a record is written, a
  segment that already holds bytes and would pass ``--max-bytes-per-file`` with
  it is closed and the next number begun (Go rolls before the write, ours
  after).
* ``<queue>.diskqueue.meta.dat``: ``"%d\\n%d,%d\\n%d,%d\\n"`` of depth, read
  file and position, write file and position, as of Go's last sync.  Reading
  the last record of a segment that is not the one being written moves the
  read position to the next segment and removes the finished one.
* the payload, nsqd's message encoding: int64 timestamp (ns), uint16 attempts,
  the 16-byte id (hex digits), the body; big-endian.
* ``nsqd.dat``: ``{"topics":[{"channels":[{"name","paused"}],"name","paused"}],"version"}``.

A channel's queue is named ``<topic>:<channel>``.  Every function writes
through the ``FileSystem`` port, so the same fixture goes to the in-memory file
system (unit tests) and to a real directory (``OSFileSystem``, integration).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field

from broker.ports import FileSystem

__all__ = [
    "GoMessage",
    "GoQueue",
    "GoTopic",
    "go_payload",
    "go_queue_meta",
    "standard_fixture",
    "write_file",
    "write_go_nsqd_dat",
    "write_go_queue",
]

_HEADER = struct.Struct(">qH")
_LENGTH = struct.Struct(">i")


@dataclass(frozen=True)
class GoMessage:
    id: bytes  # 16 hex digits, as nsqd's GUIDs are
    body: bytes
    timestamp: int = 1_700_000_000_000_000_000
    attempts: int = 0


def go_payload(msg: GoMessage) -> bytes:
    return _HEADER.pack(msg.timestamp, msg.attempts) + msg.id + msg.body


def go_queue_meta(depth: int, read: tuple[int, int], write: tuple[int, int]) -> bytes:
    return f"{depth}\n{read[0]},{read[1]}\n{write[0]},{write[1]}\n".encode()


@dataclass
class GoQueue:
    """One Go disk queue as a Go nsqd left it."""

    name: str
    messages: list[GoMessage]  # every message written, oldest first
    read: int = 0  # how many of them the metadata records as read
    first_file: int = 0  # the number of the segment the first message went to
    unsynced: int = 0  # the last ones, written after the metadata's write position
    meta: bool = True  # False: Go never synced its metadata
    tail: bytes = b""  # bytes after the last record (a write cut short)

    @property
    def unread(self) -> list[GoMessage]:
        return self.messages[self.read :]


def write_go_queue(fs: FileSystem, data_path: str, queue: GoQueue, max_bytes_per_file: int) -> dict[int, bytes]:
    """Write the queue's segments and metadata; the segments written, by number."""
    segments: dict[int, bytearray] = {queue.first_file: bytearray()}
    where: list[tuple[int, int, int]] = []  # (segment, start, end) of each record
    num = queue.first_file
    for msg in queue.messages:
        payload = go_payload(msg)
        size = 4 + len(payload)
        if segments[num] and len(segments[num]) + size > max_bytes_per_file:
            num += 1
            segments[num] = bytearray()
        start = len(segments[num])
        segments[num] += _LENGTH.pack(len(payload)) + payload
        where.append((num, start, start + size))
    segments[num] += queue.tail
    last = num
    read_pos = (queue.first_file, 0)
    if queue.read:
        seg, _, end = where[queue.read - 1]
        read_pos = (seg + 1, 0) if seg < last and end >= len(segments[seg]) else (seg, end)
    synced = len(queue.messages) - queue.unsynced
    if queue.unsynced:
        seg, start, _ = where[synced]
        write_pos = (seg, start)
    else:
        write_pos = (last, len(segments[last]) - len(queue.tail))
    written = {n: bytes(data) for n, data in segments.items() if n >= read_pos[0]}
    for n, data in written.items():
        write_file(fs, f"{data_path}/{queue.name}.diskqueue.{n:06d}.dat", data)
    if queue.meta:
        meta = go_queue_meta(synced - queue.read, read_pos, write_pos)
        write_file(fs, f"{data_path}/{queue.name}.diskqueue.meta.dat", meta)
    return written


@dataclass
class GoTopic:
    name: str
    paused: bool = False
    channels: list[tuple[str, bool]] = field(default_factory=list)  # (name, paused)


def write_go_nsqd_dat(fs: FileSystem, data_path: str, topics: list[GoTopic], name: str = "nsqd.dat") -> None:
    doc = {
        "topics": [
            {"channels": [{"name": c, "paused": p} for c, p in t.channels], "name": t.name, "paused": t.paused}
            for t in topics
        ],
        "version": "1.3.0",
    }
    write_file(fs, f"{data_path}/{name}", json.dumps(doc, separators=(",", ":")).encode())


def write_file(fs: FileSystem, path: str, data: bytes) -> None:
    f = fs.open_append(path)
    try:
        f.truncate(0)
        f.write(data)
        f.fsync()
    finally:
        f.close()
    fs.fsync_dir(path.rpartition("/")[0] or ".")


def messages(queue: str, count: int, first: int = 0) -> list[GoMessage]:
    """``count`` messages with ids and bodies unique to ``queue``."""
    tag = sum(queue.encode()) & 0xFFF
    return [
        GoMessage(b"%03x%013x" % (tag, first + i), f"{queue}/{first + i}".encode() + b"." * (i % 7), 1_700_000_000_000_000_000 + i, i % 3)
        for i in range(count)
    ]


@dataclass
class Fixture:
    topics: list[GoTopic]
    queues: list[GoQueue]

    def queue(self, name: str) -> GoQueue:
        return next(q for q in self.queues if q.name == name)

    def expected(self, topic: str, channel: str) -> list[GoMessage]:
        """What a channel delivers after the takeover: its own backlog, then its topic's."""
        own = [q for q in self.queues if q.name == f"{topic}:{channel}"]
        backlog = [q for q in self.queues if q.name == topic]
        return [m for q in own + backlog for m in q.unread]


def standard_fixture(fs: FileSystem, data_path: str, max_bytes_per_file: int = 400) -> Fixture:
    """Two topics, three channels (one paused), backlogs across segments, a partly read one.

    * ``orders``: a topic backlog of 3 (Go's topic queue, not yet handed to
      channels); ``orders:billing`` 20 messages over three small segments, the
      first 10 read: Go removed the first segment and its metadata points into
      the middle of the second; ``orders:audit``, paused, 4.
    * ``events``: no topic backlog (no files); ``events:archive`` 6, the last 2
      written after Go's last metadata sync.
    """
    fixture = Fixture(
        [GoTopic("orders", False, [("billing", False), ("audit", True)]), GoTopic("events", False, [("archive", False)])],
        [
            GoQueue("orders", messages("orders", 3)),
            GoQueue("orders:billing", messages("orders:billing", 20), read=10, first_file=1),
            GoQueue("orders:audit", messages("orders:audit", 4)),
            GoQueue("events:archive", messages("events:archive", 6), unsynced=2),
        ],
    )
    fs.mkdir(data_path)
    for queue in fixture.queues:
        write_go_queue(fs, data_path, queue, max_bytes_per_file)
    write_go_nsqd_dat(fs, data_path, fixture.topics)
    return fixture
