"""Taking over a Go nsqd 1.3 data directory: its topics, channels, paused flags and messages.

What Go nsqd leaves in ``--data-path``
--------------------------------------
* ``nsqd.dat``: the JSON ``{"topics":[{"name","paused","channels":[{"name","paused"}]}],"version"}``
  (nsqd 1.0 and earlier named it ``nsqd.<node id>.dat``).  Ours is the same
  document plus a ``checksum`` field, and a second copy ``nsqd.dat.1``
  (``metadata.py``); a Go one has no checksum.
* per topic and per channel a go-diskqueue: ``<name>.diskqueue.meta.dat``, the
  text ``"<depth>\\n<read file>,<read pos>\\n<write file>,<write pos>\\n"``, and
  segments ``<name>.diskqueue.NNNNNN.dat``, each a run of records ``[int32
  big-endian length][payload]`` with no checksum.  A channel's queue is named
  ``<topic>:<channel>``.  The payload is nsqd's message encoding: int64
  timestamp (ns), uint16 attempts, the 16-byte id, the body.

Our disk queue uses the same file names (``broker/storage/layout.py``) with
other contents: the metadata is 64 binary bytes opening with the magic
``nsqsimDQ`` and closing with a CRC, a record is ``[length][crc32c][data]``,
and the data of a plain message record is a kind byte ``0x00`` followed by
exactly Go's payload.  So converting a record is prefixing ``0x00`` and framing
it with a CRC.

Detection
---------
A queue is Go's when its metadata file is Go's text, matched whole (digits,
commas, newlines and nothing else); ours can never match, its first byte is
``n``.  ``nsqd.dat`` is Go's when it is a JSON object without ``checksum``,
which ours always carries.  A directory with neither is left alone: this
module then reads the queue metadata files and changes nothing.  In a Go
directory, a queue with segments and no metadata (Go syncs its metadata only
every ``--sync-every`` messages or ``--sync-timeout``, so a killed Go nsqd can
leave one) is Go's when its oldest non-empty segment begins with a whole Go
record whose id is 16 hex digits and not with a record whose CRC checks.

Conversion, and why a crash at any point is harmless
----------------------------------------------------
Queue by queue, then ``nsqd.dat``:

1. A Go queue whose metadata says it writes file W gets our segments numbered
   from W + 2 (Go itself only ever writes W, or W + 1 when it found W longer
   than its metadata said).  Every record from the read position on, in every
   Go segment up to W + 1 and to the end of each file (what Go's reader would
   deliver, including records written after Go's last metadata sync), is
   appended to them; each is fsynced and closed, then the directory.
2. Our metadata (read position: the first new segment; depth: the records
   converted) is written to a temporary file, fsynced and renamed over Go's
   metadata, and the directory fsynced.  That rename is the one moment the
   queue changes hands, and it is atomic.
3. The Go segments, now below our read position, are removed (one whose end
   was not whole records is renamed ``.bad`` for inspection), with Go's
   temporary metadata files.  A crash before this leaves them for the disk
   queue's recovery, which removes segments below the read position.
4. When every queue is ours, ``nsqd.dat`` is written in our format, from Go's
   (or, without one, from the queue names), with every converted queue listed.
   From then on the directory is ours and nothing here runs again.

Before step 2 nothing Go wrote has changed: a restart finds the Go metadata
and converts that queue again from the start, overwriting the segments the
interrupted run left (numbers from W + 2, which no Go file can have).  After
it, the queue is ours and is skipped.  A queue is never half Go and half ours,
so no message is converted twice or left out.  Go's ``nsqd.dat`` stays until
step 4, so a crash anywhere before it restarts the takeover.

What "nothing lost" means
-------------------------
Every whole record in a Go queue at or after its metadata's read position is
delivered by this nsqd, once, as it is, with its id, timestamp and attempts.
At-least-once where Go itself is: records Go had read but whose reading its
metadata did not yet record (it syncs every ``--sync-every`` reads, or
``--sync-timeout``) are delivered again, as Go would deliver them again after a
crash.  Records cut short at the end of a segment (a power loss while Go
wrote) are not messages and are logged; a record with an empty body, which
nsqd never accepts, is skipped and logged.  A record larger than this nsqd's
``--max-msg-size`` stops the takeover, changing nothing, with the size to
restart with.  Messages Go held only in memory when it was killed were never
on disk and are not here either; a Go nsqd stopped cleanly (SIGTERM) writes
them, and its in-flight and deferred ones, to its queues first.  Deferred
messages arrive undeferred, as after a Go restart.
"""

from __future__ import annotations

import contextlib
import json
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from broker.nsqd import metadata
from broker.nsqd.message import RECORD_OVERHEAD
from broker.nsqd.options import Options
from broker.ports import File, FileSystem, Logger
from broker.storage.layout import QueueFiles
from broker.storage.metadata import Metadata, MetadataError, read_metadata, write_metadata
from broker.storage.segment import HEADER_SIZE, crc32c, frame

__all__ = [
    "GO_MIN_PAYLOAD",
    "GoDirectory",
    "GoQueueMeta",
    "MigrationError",
    "detect",
    "parse_go_queue_meta",
    "take_over",
]

GO_MIN_PAYLOAD = 8 + 2 + 16  # Go's minValidMsgLength: timestamp, attempts, id
_META_SUFFIX = ".diskqueue.meta.dat"
_GO_META = re.compile(rb"\A(-?\d{1,19})\n(\d{1,19}),(\d{1,19})\n(\d{1,19}),(\d{1,19})\n\Z")
_GO_LENGTH = struct.Struct(">i")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_PLAIN = b"\x00"  # our plain message record's kind byte (broker/nsqd/message.py)
_CHUNK = 1 << 20
_OLD_DAT = re.compile(r"\Ansqd\.(\d+)\.dat\Z")


class MigrationError(Exception):
    """The takeover cannot go on; nothing Go wrote has been changed by it."""


@dataclass(frozen=True, slots=True)
class GoQueueMeta:
    depth: int
    read_file: int
    read_pos: int
    write_file: int
    write_pos: int


def parse_go_queue_meta(raw: bytes) -> GoQueueMeta | None:
    """Go's disk queue metadata, or None if ``raw`` is anything else (ours included)."""
    m = _GO_META.match(raw)
    if m is None:
        return None
    depth, rfile, rpos, wfile, wpos = (int(g) for g in m.groups())
    return GoQueueMeta(depth, rfile, rpos, wfile, wpos)


@dataclass
class GoDirectory:
    """What of a data directory is Go nsqd's."""

    queues: dict[str, GoQueueMeta]  # queue name -> its Go metadata
    orphans: list[str]  # Go queues with segments and no metadata
    nsqd_dat: str | None  # file name of Go's nsqd.dat, if there is one
    topics: list[metadata.TopicMeta] = field(default_factory=list)  # what it lists

    def describe(self) -> str:
        parts = []
        if self.nsqd_dat is not None:
            parts.append(self.nsqd_dat)
        count = len(self.queues) + len(self.orphans)
        parts.append(f"{count} disk queue{'s' if count != 1 else ''}")
        return " and ".join(parts)


def detect(fs: FileSystem, data_path: str, node_id: int = 0) -> GoDirectory | None:
    """The Go nsqd files in ``data_path``; None when there are none (it is ours, or empty).

    Reads only: the names, each queue's metadata file and ``nsqd.dat``.
    """
    directory = _directory(data_path)
    try:
        names = fs.listdir(directory)
    except OSError:
        return None  # an unusable data path is reported by the metadata load that follows
    queues: dict[str, GoQueueMeta] = {}
    with_meta: set[str] = set()
    for entry in names:
        if entry.endswith(_META_SUFFIX) and len(entry) > len(_META_SUFFIX):
            queue = entry[: -len(_META_SUFFIX)]
            with_meta.add(queue)
            meta = parse_go_queue_meta(_read_small(fs, f"{directory}/{entry}"))
            if meta is not None:
                queues[queue] = meta
    found = _go_nsqd_dat(fs, directory, names, node_id)
    if not queues and found is None:
        return None
    go = GoDirectory(queues, [], None)
    if found is not None:
        go.nsqd_dat, go.topics = found
    for topic, channel in metadata.queues_on_disk(names):
        queue = topic if channel is None else f"{topic}:{channel}"
        if queue not in with_meta and _looks_go(fs, QueueFiles(data_path, queue), names):
            go.orphans.append(queue)
    return go


def take_over(fs: FileSystem, opts: Options, logger: Logger, version: str) -> GoDirectory | None:
    """Convert whatever of ``opts.data_path`` is Go nsqd's to our format; what was found.

    Runs before any disk queue is opened.  Raises ``MigrationError`` (with the
    cause) when it cannot finish; a later start resumes where it stopped.
    """
    go = detect(fs, opts.data_path, opts.node_id)
    if go is None:
        return None
    directory = _directory(opts.data_path)
    logger.log("INFO", f"MIGRATE: Go nsqd data in {directory} ({go.describe()}): taking it over")
    limits = _Limits(RECORD_OVERHEAD - 8 + 1, opts.max_msg_size + RECORD_OVERHEAD, opts.max_bytes_per_file)
    try:
        for queue in go.orphans:
            go.queues[queue] = _adopt_orphan(fs, QueueFiles(opts.data_path, queue), logger)
        converted: dict[str, _Converted] = {}
        for queue, meta in sorted(go.queues.items()):
            converted[queue] = _convert_queue(fs, QueueFiles(opts.data_path, queue), meta, limits, logger)
        topics = _topics(fs, opts.data_path, go)
        metadata.save(fs, opts.data_path, topics, version)
    except OSError as exc:
        raise MigrationError(f"{exc}; restart to resume") from exc
    for line in _report(fs, opts.data_path, topics, converted):
        logger.log("INFO", line)
    logger.log("INFO", f"MIGRATE: done; {metadata.FILE_NAME} and every disk queue in {directory} are now in this nsqd's format")
    return go


# ---- one queue ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Limits:
    min_record: int  # our disk queue's bounds on a record's data
    max_record: int
    max_bytes_per_file: int


@dataclass
class _Converted:
    messages: int = 0
    segments: int = 0  # Go segments read
    problems: list[str] = field(default_factory=list)


def _convert_queue(fs: FileSystem, files: QueueFiles, meta: GoQueueMeta, limits: _Limits, logger: Logger) -> _Converted:
    names = fs.listdir(files.directory)
    first_new = meta.write_file + 2
    numbers = files.segment_numbers(names)
    go_numbers = [n for n in numbers if n < first_new]
    result = _Converted()
    bad: set[int] = set()
    writer = _SegmentWriter(fs, files, first_new, limits.max_bytes_per_file)
    try:
        for num in go_numbers:
            if num < meta.read_file:
                continue  # read to its end before Go's last metadata sync
            result.segments += 1
            start = meta.read_pos if num == meta.read_file else 0
            if _copy_segment(fs, files, num, start, writer, limits, result):
                bad.add(num)
    finally:
        writer.close()
    # Segments an interrupted earlier conversion wrote past what this one needs.
    for num in numbers:
        if num > writer.last:
            _remove(fs, files.segment(num))
    fs.fsync_dir(files.directory)
    last = max(writer.last, first_new)
    ours = Metadata(result.messages, first_new, 0, last, writer.size_of(last))
    write_metadata(fs, files.directory, files.meta, ours)  # the queue is ours from here on
    # Go's files are now below our read position: nothing reads them again.
    for num in go_numbers:
        path = files.segment(num)
        if num in bad:
            fs.rename(path, path + ".bad")
        else:
            _remove(fs, path)
    meta_name = files.meta.rpartition("/")[2]
    for entry in names:
        if entry.startswith(meta_name + ".") and entry.endswith(".tmp") and entry != files.meta_tmp.rpartition("/")[2]:
            _remove(fs, f"{files.directory}/{entry}")
    fs.fsync_dir(files.directory)
    for problem in result.problems:
        logger.log("WARN", f"MIGRATE: DISKQUEUE({files.name}): {problem}")
    return result


def _copy_segment(fs: FileSystem, files: QueueFiles, num: int, start: int, writer: _SegmentWriter, limits: _Limits, result: _Converted) -> bool:
    """Append the Go records of one segment from ``start``; whether its end was not whole records."""
    path = files.segment(num)
    f = fs.open_read(path)
    try:
        size = f.size()
        reader = _GoReader(f, size, start)
        for payload in reader:
            data = _PLAIN + payload
            if len(data) < limits.min_record:
                result.problems.append(f"skipped a message with an empty body at {reader.at} of {path}")
                continue
            if len(data) > limits.max_record:
                need = len(payload) - GO_MIN_PAYLOAD
                raise MigrationError(
                    f"a message of {need} bytes in {path} is larger than --max-msg-size;"
                    f" start with --max-msg-size={need} or more"
                )
            writer.put(data)
            result.messages += 1
        if reader.end < size:
            result.problems.append(
                f"{size - reader.end} bytes at the end of {path} (from {reader.end}) are not a whole record"
                f" (a write cut short, or damage); kept as {path}.bad"
            )
            return True
    finally:
        f.close()
    return False


class _GoReader:
    """Go's records in one segment, from ``start`` to the first that is not whole."""

    def __init__(self, file: File, size: int, start: int) -> None:
        self._file = file
        self._size = size
        self.end = min(start, size)  # just past the last whole record
        self.at = self.end  # where the record last returned starts
        self._buf = b""
        self._buf_pos = self.end

    def __iter__(self) -> Iterator[bytes]:
        while True:
            pos = self.end
            head = self._bytes(pos, 4)
            if len(head) < 4:
                return
            (n,) = _GO_LENGTH.unpack(head)
            if n < GO_MIN_PAYLOAD or pos + 4 + n > self._size:
                return
            payload = self._bytes(pos + 4, n)
            self.at, self.end = pos, pos + 4 + n
            yield payload

    def _bytes(self, pos: int, n: int) -> bytes:
        i = pos - self._buf_pos
        if i < 0 or i + n > len(self._buf):
            self._buf = self._file.read_at(pos, max(n, _CHUNK))
            self._buf_pos, i = pos, 0
        return self._buf[i : i + n]


class _SegmentWriter:
    """Our segments, numbered from ``first``, rolled as the disk queue rolls them."""

    def __init__(self, fs: FileSystem, files: QueueFiles, first: int, max_bytes_per_file: int) -> None:
        self._fs = fs
        self._files = files
        self._max = max_bytes_per_file
        self.last = first - 1  # the last segment begun
        self._sizes: dict[int, int] = {}
        self._file: File | None = None
        self._buf = bytearray()

    def put(self, data: bytes) -> None:
        if self._file is None:
            self.last += 1
            self._file = self._fs.open_append(self._files.segment(self.last))
            self._file.truncate(0)  # left by an interrupted conversion
            self._sizes[self.last] = 0
        record = frame(data)
        self._buf += record
        self._sizes[self.last] += len(record)
        if len(self._buf) >= _CHUNK:
            self._flush()
        if self._sizes[self.last] >= self._max:
            self.close()

    def size_of(self, num: int) -> int:
        return self._sizes.get(num, 0)

    def close(self) -> None:
        if self._file is None:
            return
        try:
            self._flush()
            self._file.fsync()
        finally:
            self._file.close()
            self._file = None

    def _flush(self) -> None:
        if self._buf and self._file is not None:
            self._file.write(self._buf)
            self._buf = bytearray()


# ---- orphans, nsqd.dat and the report -----------------------------------------


def _looks_go(fs: FileSystem, files: QueueFiles, names: list[str]) -> bool:
    """Whether the queue's oldest non-empty segment opens with a Go record and not one of ours."""
    for num in files.segment_numbers(names):
        try:
            f = fs.open_read(files.segment(num))
        except OSError:
            return False
        try:
            head = f.read_at(0, 4 + GO_MIN_PAYLOAD)
            if not head:
                continue
            if len(head) < 4 + GO_MIN_PAYLOAD:
                return False
            (n,) = _GO_LENGTH.unpack_from(head)
            if n < GO_MIN_PAYLOAD or 4 + n > f.size():
                return False
            if n >= 4 and crc32c(f.read_at(HEADER_SIZE, n)) == struct.unpack_from(">I", head, 4)[0]:
                return False  # a whole record of ours
            return all(b in _HEX for b in head[4 + 10 : 4 + 26])
        finally:
            f.close()
    return False


def _adopt_orphan(fs: FileSystem, files: QueueFiles, logger: Logger) -> GoQueueMeta:
    """Give a Go queue without metadata Go's metadata: read everything, from its oldest segment."""
    numbers = files.segment_numbers(fs.listdir(files.directory))
    last = numbers[-1]
    meta = GoQueueMeta(0, numbers[0], 0, last, fs.file_size(files.segment(last)))
    text = f"{meta.depth}\n{meta.read_file},{meta.read_pos}\n{meta.write_file},{meta.write_pos}\n".encode()
    tmp = files.meta + ".adopt.tmp"
    f = fs.open_append(tmp)
    try:
        f.truncate(0)
        f.write(text)
        f.fsync()
    finally:
        f.close()
    fs.rename(tmp, files.meta)
    fs.fsync_dir(files.directory)
    logger.log("WARN", f"MIGRATE: DISKQUEUE({files.name}): Go metadata missing; reading every segment from {files.segment(meta.read_file)}")
    return meta


def _go_nsqd_dat(fs: FileSystem, directory: str, names: list[str], node_id: int) -> tuple[str, list[metadata.TopicMeta]] | None:
    """(file name, topics) of a Go nsqd.dat (or of nsqd 1.0's ``nsqd.<id>.dat``), if there is one."""
    if metadata.FILE_NAME in names:
        candidates = [metadata.FILE_NAME]
    else:
        old = sorted(n for n in names if _OLD_DAT.match(n))
        own = f"nsqd.{node_id}.dat"
        candidates = [own] if own in old else old[:1] if len(old) == 1 else []
    for name in candidates:
        try:
            f = fs.open_read(f"{directory}/{name}")
            try:
                raw = f.read_at(0, f.size())
            finally:
                f.close()
            doc = json.loads(raw)
            if not isinstance(doc, dict) or "checksum" in doc:
                return None  # ours (or not nsqd's at all): metadata.load judges it
            return name, metadata.decode(raw)
        except (OSError, ValueError):
            return None
    return None


def _topics(fs: FileSystem, data_path: str, go: GoDirectory) -> list[metadata.TopicMeta]:
    """What our nsqd.dat lists: Go's (or what is there), and every disk queue."""
    topics = go.topics if go.nsqd_dat is not None else metadata.load(fs, data_path).topics
    by_name = {t.name: t for t in topics}
    for queue in sorted(go.queues):
        topic_name, colon, channel = queue.partition(":")
        topic = by_name.get(topic_name)
        if topic is None:
            topic = by_name[topic_name] = metadata.TopicMeta(topic_name)
            topics.append(topic)
        if colon and all(name != channel for name, _ in topic.channels):
            topic.channels.append((channel, False))
    return topics


def _report(fs: FileSystem, data_path: str, topics: list[metadata.TopicMeta], converted: dict[str, _Converted]) -> list[str]:
    lines = []
    for topic in topics:
        lines.append(f"MIGRATE: TOPIC({topic.name}): {_took(fs, data_path, topic.name, topic.paused, converted)}")
        for name, paused in topic.channels:
            queue = f"{topic.name}:{name}"
            lines.append(f"MIGRATE: TOPIC({topic.name}) CHANNEL({name}): {_took(fs, data_path, queue, paused, converted)}")
    return lines


def _took(fs: FileSystem, data_path: str, queue: str, paused: bool, converted: dict[str, _Converted]) -> str:
    state = "paused" if paused else "not paused"
    done = converted.get(queue)
    if done is not None:
        files = f"{done.segments} disk queue file{'s' if done.segments != 1 else ''}"
        return f"took over {state}, {done.messages} queued messages from {files}"
    try:
        ours = read_metadata(fs, QueueFiles(data_path, queue).meta)
    except (OSError, MetadataError):
        ours = None
    if ours is None:
        return f"took over {state}, no disk queue"
    return f"took over {state}, {ours.depth} queued messages (converted by an earlier start)"


def _read_small(fs: FileSystem, path: str) -> bytes:
    try:
        f = fs.open_read(path)
    except OSError:
        return b""
    try:
        return f.read_at(0, 128)
    except OSError:
        return b""
    finally:
        f.close()


def _remove(fs: FileSystem, path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        fs.remove(path)


def _directory(data_path: str) -> str:
    return QueueFiles(data_path, "_").directory.rstrip("/") or "/"
