"""The disk queue: nsqd's backend queue, as checksummed segment files.

Why it exists
-------------
A topic or channel keeps up to ``--mem-queue-size`` messages in memory and puts
the rest here, in the order they came.  The broker calls ``put`` when its memory
queue is full, ``read`` when its memory queue is empty and a consumer is ready,
and reports ``depth`` in /stats.  Everything runs on the broker's one thread:
no call blocks on anything but the file system, and time passes only through
the ``Clock`` port (the sync timer and group commits are ``call_later``s).

Files
-----
Go nsqd's names (``layout.py``): segments ``<name>.diskqueue.NNNNNN.dat``, a
new one begun once a segment reaches ``max_bytes_per_file`` (so a segment can
overshoot by one record); the metadata ``<name>.diskqueue.meta.dat``.

A segment is a run of records, each ``[uint32 length][uint32 crc32c(data)][data]``,
big-endian, with nothing between them and no file header:

* the length frames the record and is checked against the message size
  bounds, which rejects most garbage before any checksum is computed;
* the CRC-32C of the data is what nsqd lacks: it tells a record that was
  written whole from one a crash cut short, or that a disk rotted.  It need not
  cover the length: a wrong length makes the CRC run over the wrong bytes and
  fail, except with probability 2**-32.

The metadata (``metadata.py``) holds the read position, the depth, the write
position at the time, a format version and its own CRC; it is replaced by
writing a temporary file, fsyncing it, renaming it over the old one and
fsyncing the directory.

Writing and syncing
-------------------
Each ``put`` is one ``write`` of one record to the end of the segment: when
``put`` returns, the operating system has the bytes, so a crash of the process
alone loses nothing, and a failed write (disk full) fails the put that caused
it rather than a later one.  Nothing is fsynced per record unless
``sync_every`` is 1.  A sync (fsync of the segment, of the directory if a
segment was created, then the metadata if it changed) happens after
``sync_every`` puts and reads together, ``sync_timeout`` after the first
unsynced one, when a segment is full, when the reader finishes a segment, and
at ``close``, as nsqd does.  ``on_synced`` serves durable publishing: callbacks
registered in the same turn of the event loop share one fsync (group commit).

Records are durable once fsynced (and, in a new segment, once the directory
is).  A sync also rewrites the metadata if anything changed, as nsqd does; a
group commit does not, because the segments describe themselves: recovery
finds records appended after the metadata's write position by scanning forward
from it.  A durable publish so costs one fsync rather than three, and the scan
at start-up covers only what was written since the last sync.  With
``max_disk_bytes`` set, a put that would take the segments past it is refused.

A segment the reader has finished is removed only after metadata that points
past it is durable, so a crash never removes records whose reading was not
synced: they are delivered again instead.

What a crash can do
-------------------
* The tail of the segment being written loses a suffix of what was not fsynced;
  it may end part way through a record (a torn record), or, on some file
  systems, in zeros.
* Directory changes since the last directory fsync may be undone, latest
  first: a new segment may vanish, a removed one reappear, the metadata rename
  not happen (the old metadata is then read: reads since it are repeated).
* Records read but not yet synced are delivered again; records put but not
  fsynced may be lost.  Nothing else: never a record that was not put, never
  one out of order.

Recovery
--------
``recovery.py``, at open: remove a stale temporary metadata file and segments
before the read position (their removal did not survive), take the read
position and depth from the metadata, and scan from its write position to the
end of the last segment.  A torn record at the end of a segment is cut off.
Bytes at the end of the last segment that are neither records nor torn are
corruption: they are left for the reader to report and writing continues in a
new segment.  When the metadata is missing or fails its checks, or disagrees
with the files (a segment shorter than a position it names), the depth is
recounted; without metadata, reading starts at the oldest segment present.

Corruption met while reading
----------------------------
A record that fails its checks in the middle of the data is skipped by
resyncing (``segment.py``): the next record starts at most a header and a
maximum-size body after the bad one, so that window is searched for an offset
where a plausible length, a matching CRC and the next records check out.
Records in the skipped bytes are lost; the region is logged and counted
(``corrupt_skipped``) and the depth recounted.  When no resync point exists,
the rest of the segment is lost: a torn end is logged and the segment removed
as usual, anything else and any segment that cannot be read at all is renamed
``.bad`` (``bad_files``) and kept for inspection.  Nothing is raised: a bad
disk costs the records on it, never the broker.

An fsync that fails leaves it unknown what reached the disk, and on Linux a
later fsync may succeed without retrying the lost pages.  The queue therefore
reports the failure to every ``on_synced`` waiter and continues in a new
segment, so no later success is claimed for bytes the failed fsync covered,
and never appends to that segment again.  A crash may still take records from
it that the depth counts, so the metadata records that segments below the new
one are doubtful, and recovery recounts while any of them is unread.

Differences from Go nsqd
------------------------
* The segment format differs (the CRC), so this queue does not read a Go nsqd
  data directory itself: nsqd converts one at start, before any queue opens
  (``broker/nsqd/migrate.py``).
* A bad record costs the bytes up to the next good record; Go renames the
  whole file ``.bad`` at the first bad record and loses the rest of it.
* Go trusts the metadata's write position and overwrites what lies beyond it;
  here those records are recovered.
* Go removes a finished segment at once; here after the metadata moves past it.
* Go logs a failed fsync and keeps writing to the same file; here writing
  moves to a new one.  Go never fsyncs the directory; here it is fsynced after
  a segment is created and after the metadata is renamed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator

from broker.ports import Clock, File, FileSystem, Logger, Timer
from broker.storage.layout import QueueFiles
from broker.storage.metadata import Metadata, write_metadata
from broker.storage.recovery import count_records, recover
from broker.storage.segment import HEADER_SIZE, SegmentReader, frame

__all__ = [
    "DiskQueue",
    "DiskQueueClosed",
    "DiskQueueError",
    "DiskQueueFull",
    "DiskQueueSyncError",
    "DiskQueueWriteError",
    "InvalidMessageSize",
    "SyncCallback",
]

# Called with None once everything put before ``on_synced`` is durable, or with
# the error that made that unknowable.
SyncCallback = Callable[[Exception | None], None]

# Records put while the reader is caught up with the writer are also kept in
# memory, up to this many bytes, so that spilling with a consumer keeping up
# costs no read call per record.
TAIL_CACHE_BYTES = 1 << 20

_MAX_LENGTH = (1 << 32) - 1


class DiskQueueError(Exception):
    """A disk queue operation was refused or failed; the queue stays usable unless closed."""


class DiskQueueClosed(DiskQueueError):
    pass


class DiskQueueFull(DiskQueueError):
    """The record would take the queue past its ``max_disk_bytes``."""


class InvalidMessageSize(DiskQueueError, ValueError):
    pass


class DiskQueueWriteError(DiskQueueError):
    """The file system refused the write; the record was not queued."""


class DiskQueueSyncError(DiskQueueError):
    """A sync failed; what was put is still queued but may not be durable."""


class DiskQueue:
    """The records of one topic or channel, first in first out, on disk.

    Opening recovers whatever the last run left (see above); it raises
    ``DiskQueueError`` only when the directory cannot be used at all.
    """

    def __init__(
        self,
        name: str,
        data_path: str,
        fs: FileSystem,
        clock: Clock,
        logger: Logger,
        max_bytes_per_file: int,
        sync_every: int,
        sync_timeout: float,
        min_msg_size: int,
        max_msg_size: int,
        max_disk_bytes: int = 0,
        hold_reads: bool = False,
    ) -> None:
        if not 1 <= min_msg_size <= max_msg_size <= _MAX_LENGTH:
            # A zero minimum would let a run of zero bytes parse as empty records.
            raise ValueError(f"need 1 <= min_msg_size <= max_msg_size < 2**32, got {min_msg_size}, {max_msg_size}")
        if max_bytes_per_file < 1 or sync_every < 1 or sync_timeout < 0 or max_disk_bytes < 0:
            raise ValueError("max_bytes_per_file and sync_every must be positive, sync_timeout and max_disk_bytes not negative")
        self.name = name
        self._files = QueueFiles(data_path, name)
        self._fs = fs
        self._clock = clock
        self._logger = logger
        self._max_bytes_per_file = max_bytes_per_file
        self._sync_every = sync_every
        self._sync_timeout = sync_timeout
        self._min_size = min_msg_size
        self._max_size = max_msg_size
        self._max_disk_bytes = max_disk_bytes

        self._writer: File | None = None
        self._reader: SegmentReader | None = None
        self._tail: deque[bytes] = deque()
        self._tail_on = False
        self._tail_bytes = 0
        self._pending_sync = 0  # puts not yet covered by an fsync
        self._dir_dirty = False  # a segment was created since the last directory fsync
        self._meta_dirty = False
        self._unsynced_reads = 0
        self._ops = 0  # puts and reads since the last sync
        self._retired: list[tuple[int, bool]] = []  # (segment, is bad): finished, awaiting durable metadata
        self._sync_timer: Timer | None = None
        self._commit_timer: Timer | None = None
        self._waiters: list[SyncCallback] = []
        self._waiter_error: Exception | None = None
        self._closed = False
        self.corrupt_skipped = 0
        self.fsync_errors = 0
        # Held reads (see ``commit``): the start of every record read since the
        # committed position, in reading order.
        self._hold_reads = hold_reads
        self._held: deque[tuple[int, int]] = deque()
        self._last_read: tuple[int, int] = (0, 0)

        try:
            state = recover(self._files, fs, logger, min_msg_size, max_msg_size)
        except OSError as e:
            raise DiskQueueError(f"cannot open disk queue {name} in {self._files.directory}: {e}") from e
        self._read_file = state.read_file
        self._read_pos = state.read_pos
        self._write_file = state.write_file
        self._write_pos = state.write_pos
        self._depth = state.depth
        self._doubtful_before = state.doubtful_before
        self._disk_bytes = state.disk_bytes
        self._commit = (self._read_file, self._read_pos)
        self._end_at_open = (self._write_file, self._write_pos)
        self.bad_files = state.bad_files
        if self._write_pos:
            self._sync_inherited()
        if state.changed or not self._has_metadata():
            # A new queue writes its (empty) metadata at once: its file name is then
            # a record, independent of nsqd.dat, that the queue exists (metadata.load).
            self._meta_dirty = True
            self._sync_logged()

    # ---- the broker's API ------------------------------------------------

    def put(self, data: bytes, *, bounded: bool = True) -> None:
        """Append a record; raises a ``DiskQueueError`` if it was not queued.

        ``bounded=False``: past ``max_disk_bytes`` too (what a clean exit saves).
        """
        if self._closed:
            raise DiskQueueClosed(f"disk queue {self.name} is closed")
        n = len(data)
        if n < self._min_size or n > self._max_size:
            raise InvalidMessageSize(f"invalid message write size ({n}) minMsgSize={self._min_size} maxMsgSize={self._max_size}")
        size = HEADER_SIZE + n
        if bounded and self._max_disk_bytes and self._disk_bytes + size > self._max_disk_bytes:
            raise DiskQueueFull(f"disk queue {self.name} would pass {self._max_disk_bytes} bytes")
        writer = self._writer or self._open_writer()
        try:
            writer.write(frame(data))
        except OSError as e:
            self._undo_partial_write(writer, e)
            raise DiskQueueWriteError(f"failed to write to {self._files.segment(self._write_file)}: {e}") from e
        self._write_pos += size
        self._disk_bytes += size
        self._depth += 1
        self._pending_sync += 1
        self._meta_dirty = True
        if self._tail_on:
            if self._tail_bytes + size <= TAIL_CACHE_BYTES:
                self._tail.append(data)
                self._tail_bytes += size
            else:
                self._tail_off()
        if self._write_pos >= self._max_bytes_per_file:
            self._roll()
        self._count_op()

    def can_accept(self, count: int, nbytes: int) -> bool:
        """Whether ``count`` records of ``nbytes`` in all fit the disk budget now."""
        if self._closed:
            return False
        return not self._max_disk_bytes or self._disk_bytes + nbytes + HEADER_SIZE * count <= self._max_disk_bytes

    def read(self) -> bytes | None:
        """The next record, or None when there is none; the record counts as read at once."""
        if self._closed:
            raise DiskQueueClosed(f"disk queue {self.name} is closed")
        while True:
            pos = self._read_pos
            if self._read_file == self._write_file:
                if pos >= self._write_pos:
                    self._caught_up()
                    return None
                if self._tail_on and self._tail:
                    cached = self._tail.popleft()
                    self._tail_bytes -= HEADER_SIZE + len(cached)
                    return self._consumed(pos + HEADER_SIZE + len(cached), cached)
            reader = self._reader or self._open_reader()
            if reader is None:
                continue
            if self._read_file == self._write_file:
                reader.end = self._write_pos
            elif pos >= reader.end:
                self._finish_segment(bad=False)
                continue
            try:
                data = reader.record_at(pos)
                if data is not None:
                    return self._consumed(pos + HEADER_SIZE + len(data), data)
                self._skip_corruption(reader, pos)
            except OSError as e:
                self._unreadable(e)

    def depth(self) -> int:
        """Records queued and not yet read."""
        return self._depth

    def unread(self) -> Iterator[bytes]:
        """The records not yet read, oldest first, left unread (for inspection only).

        The simulator lists at a clean stop which delivered messages a channel
        still holds, and a requeued message that spilled is among these.
        """
        file, pos = self._read_file, self._read_pos
        while (file, pos) < (self._write_file, self._write_pos):
            try:
                f = self._fs.open_read(self._files.segment(file))
            except FileNotFoundError:
                file, pos = file + 1, 0
                continue
            try:
                end = self._write_pos if file == self._write_file else f.size()
                reader = SegmentReader(f, end, self._min_size, self._max_size)
                while pos < end:
                    data = reader.record_at(pos)
                    if data is None:
                        break  # corruption: what read() would skip
                    yield data
                    pos += HEADER_SIZE + len(data)
            finally:
                f.close()
            file, pos = file + 1, 0

    def end_at_open(self) -> tuple[int, int]:
        """Where the records found at open ended: what a restart may read again lies before it."""
        return self._end_at_open

    def read_position(self) -> tuple[int, int]:
        """Where the record last returned by ``read`` starts (a token for ``commit``)."""
        return self._last_read

    def commit(self, oldest_needed: tuple[int, int] | None) -> None:
        """With ``hold_reads``: the records the owner still needs start at ``oldest_needed``.

        The durable read position then stays there, however far ``read`` has
        gone, so a crash delivers again every record from it on (the owner's
        unfinished ones among them) instead of losing the ones it was still
        working on.  None means it needs none of the records read so far.
        """
        held = self._held
        if oldest_needed is None:
            held.clear()
            commit = (self._read_file, self._read_pos)
        else:
            while held and held[0] < oldest_needed:
                held.popleft()
            commit = held[0] if held else (self._read_file, self._read_pos)
        if commit != self._commit:
            self._commit = commit
            self._meta_dirty = True
            self._count_op()  # a moved read position is synced like a read

    def pending_sync_count(self) -> int:
        """Records put (and acknowledged) that no fsync has covered yet."""
        return self._pending_sync

    def unsynced_read_count(self) -> int:
        """Records read whose reading is not yet durable: a crash now delivers them again."""
        return self._unsynced_reads

    def on_synced(self, callback: SyncCallback) -> None:
        """Call ``callback(None)`` once everything put so far is durable, or ``callback(error)``.

        Callbacks registered before the next turn of the event loop share one fsync.
        """
        if self._closed:
            raise DiskQueueClosed(f"disk queue {self.name} is closed")
        self._waiters.append(callback)
        if self._commit_timer is None:
            self._commit_timer = self._clock.call_later(0, self._group_commit)

    def sync(self) -> None:
        """Make everything put, and the read position, durable now."""
        if self._closed:
            raise DiskQueueClosed(f"disk queue {self.name} is closed")
        err = self._sync()
        if err is not None:
            raise DiskQueueSyncError(f"failed to sync disk queue {self.name}: {err}") from err

    def empty(self) -> None:
        """Drop every record, as nsqd's Empty does (``depth() == 0`` asks whether it is empty)."""
        if self._closed:
            raise DiskQueueClosed(f"disk queue {self.name} is closed")
        self._log("INFO", "emptying")
        self._close_files()
        self._retired.extend((num, False) for num in range(self._read_file, self._write_file + 1))
        self._write_file += 1
        self._write_pos = 0
        self._read_file, self._read_pos = self._write_file, 0
        self._held.clear()
        self._commit = (self._read_file, self._read_pos)
        self._depth = 0
        self._disk_bytes = 0
        self._pending_sync = 0
        self._meta_dirty = True
        self.sync()

    def close(self) -> None:
        """Sync and release the files; the records stay for the next open."""
        if self._closed:
            return
        self._log("INFO", "closing")
        err = self._sync()
        self._shut(err)
        if err is not None:
            raise DiskQueueSyncError(f"failed to sync disk queue {self.name} on close: {err}") from err

    def delete(self) -> None:
        """Drop every record and remove the queue's files (``.bad`` files are kept)."""
        if self._closed:
            return
        self._log("INFO", "deleting")
        self._shut(DiskQueueClosed(f"disk queue {self.name} was deleted"))
        paths = [self._files.segment(num) for num, _ in self._retired]
        paths += [self._files.segment(num) for num in range(self._read_file, self._write_file + 1)]
        paths += [self._files.meta, self._files.meta_tmp]
        failed: OSError | None = None
        for path in paths:
            try:
                self._fs.remove(path)
            except FileNotFoundError:
                pass
            except OSError as e:
                self._log("ERROR", f"failed to remove {path}: {e}")
                failed = e
        try:
            # Else a crash could bring the files back, as the backlog of a
            # topic or channel later created with the same name.
            self._fs.fsync_dir(self._files.directory)
        except OSError as e:
            self._log("ERROR", f"fsync of {self._files.directory} failed: {e}")
            failed = e
        if failed is not None:
            raise DiskQueueError(f"failed to delete disk queue {self.name}: {failed}") from failed

    # ---- writing ---------------------------------------------------------

    def _open_writer(self) -> File:
        path = self._files.segment(self._write_file)
        try:
            writer = self._fs.open_append(path)
            size = writer.size()
        except OSError as e:
            raise DiskQueueWriteError(f"failed to open {path}: {e}") from e
        if size != self._write_pos:
            # Only someone else's file could be here; never append to it.
            writer.close()
            self._log("ERROR", f"{path} has {size} bytes, expected {self._write_pos}; writing to a new file")
            self._switch_segment()
            return self._open_writer()
        self._log("INFO", f"opened {path} for writing")
        self._writer = writer
        if self._write_pos == 0:
            self._dir_dirty = True
        return writer

    def _undo_partial_write(self, writer: File, err: OSError) -> None:
        self._log("ERROR", f"failed to write to {self._files.segment(self._write_file)}: {err}")
        try:
            writer.truncate(self._write_pos)
        except OSError as e:
            self._log("ERROR", f"failed to cut a partial write: {e}; writing to a new file")
            self._abandon(e)

    def _roll(self) -> None:
        # Sync the full segment before a byte goes to the next one, so a
        # segment after the first with data in it always follows whole ones.
        self._sync_logged()
        if self._write_pos >= self._max_bytes_per_file:  # not already moved on by a failed fsync
            self._switch_segment()

    def _switch_segment(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._reader is not None and self._read_file == self._write_file:
            self._reader.end = self._write_pos
        self._tail_off()
        self._write_file += 1
        self._write_pos = 0
        self._meta_dirty = True

    def _abandon(self, err: Exception) -> None:
        """Stop trusting the segment being written: what it holds may never become durable."""
        self._pending_sync = 0
        if self._waiters:
            self._waiter_error = err
        self._switch_segment()
        # If a crash now loses some of its records, the depth the metadata
        # carries would count them: make recovery recount instead.
        self._doubtful_before = self._write_file

    # ---- reading ---------------------------------------------------------

    def _consumed(self, pos: int, data: bytes) -> bytes:
        self._last_read = start = (self._read_file, self._read_pos)
        if self._hold_reads:
            self._held.append(start)
        self._read_pos = pos
        self._depth = max(0, self._depth - 1)
        self._unsynced_reads += 1
        self._meta_dirty = True
        self._count_op()
        return data

    def _caught_up(self) -> None:
        if self._depth != 0:
            self._log("ERROR", f"depth {self._depth} at the end of the queue, resetting to 0")
            self._depth = 0
            self._meta_dirty = True
        self._tail_on = True

    def _tail_off(self) -> None:
        self._tail_on = False
        self._tail.clear()
        self._tail_bytes = 0

    def _open_reader(self) -> SegmentReader | None:
        """A reader of the read segment; None when it moved on (the caller looks again)."""
        path = self._files.segment(self._read_file)
        try:
            f = self._fs.open_read(path)
            end = self._write_pos if self._read_file == self._write_file else f.size()
        except FileNotFoundError:
            self._log("ERROR", f"{path} is missing; records in it are lost")
            if self._read_file == self._write_file:
                self._abandon(DiskQueueError(f"{path} is missing"))
            self._read_file, self._read_pos = self._read_file + 1, 0
            self._meta_dirty = True
            self._recount()
            return None
        except OSError as e:
            self._unreadable(e)
            return None
        self._log("INFO", f"opened {path} for reading")
        self._reader = SegmentReader(f, end, self._min_size, self._max_size)
        return self._reader

    def _finish_segment(self, *, bad: bool) -> None:
        if self._reader is not None:
            self._disk_bytes -= self._reader.end
            self._reader.file.close()
            self._reader = None
        self._retired.append((self._read_file, bad))
        self._read_file, self._read_pos = self._read_file + 1, 0
        self._meta_dirty = True
        # Sync now, as nsqd does on every new read file, so the finished one goes soon.
        self._sync_logged()

    def _skip_corruption(self, reader: SegmentReader, pos: int) -> None:
        path = self._files.segment(self._read_file)
        self.corrupt_skipped += 1
        resumed = reader.resync(pos)
        if resumed is not None:
            self._log("WARN", f"skipped corrupt bytes {pos}-{resumed} of {path}")
            self._read_pos = resumed
            self._meta_dirty = True
        elif self._read_file == self._write_file:
            self._log("ERROR", f"corrupt bytes {pos}-{self._write_pos} of {path}; writing to a new file")
            self._abandon(DiskQueueError(f"{path} is corrupt"))
            self._finish_segment(bad=True)
        elif reader.looks_torn(pos):
            self._log("WARN", f"{path} ends with a torn record at {pos}")
            self._finish_segment(bad=False)
        else:
            self._log("ERROR", f"corrupt bytes from {pos} to the end of {path}; saving it as {path}.bad")
            self._finish_segment(bad=True)
        self._recount()

    def _unreadable(self, err: OSError) -> None:
        path = self._files.segment(self._read_file)
        self._log("ERROR", f"reading {path}: {err}; saving it as {path}.bad")
        if self._read_file == self._write_file:
            self._abandon(err)
        self._finish_segment(bad=True)
        self._recount()

    def _recount(self) -> None:
        """Set the depth from the records really there, after some were lost."""
        try:
            depth = count_records(
                self._files,
                self._fs,
                (self._read_file, self._read_pos),
                (self._write_file, self._write_pos),
                self._min_size,
                self._max_size,
            )
        except OSError as e:
            self._log("ERROR", f"failed to recount the depth: {e}")
            return
        if depth != self._depth:
            self._log("WARN", f"depth corrected from {self._depth} to {depth}")
            self._depth = depth
            self._meta_dirty = True

    # ---- syncing ---------------------------------------------------------

    def _count_op(self) -> None:
        self._ops += 1
        if self._ops >= self._sync_every:
            self._sync_logged()
        elif self._sync_timer is None:
            self._sync_timer = self._clock.call_later(self._sync_timeout, self._on_sync_timer)

    def _on_sync_timer(self) -> None:
        self._sync_timer = None
        if not self._closed:
            self._sync_logged()

    def _has_metadata(self) -> bool:
        try:
            self._fs.file_size(self._files.meta)
        except OSError:
            return False
        return True

    def _sync_logged(self) -> None:
        err = self._sync()
        if err is not None:
            self._log("ERROR", f"failed to sync - {err}")
            if self._sync_timer is None and not self._closed:
                self._sync_timer = self._clock.call_later(self._sync_timeout, self._on_sync_timer)

    def _sync(self) -> Exception | None:
        """Fsync the data, then write the metadata if it changed; the error, if any."""
        if self._sync_timer is not None:
            self._sync_timer.cancel()
            self._sync_timer = None
        self._ops = 0
        err = self._fsync_data()
        if err is not None:
            return err
        if not self._meta_dirty:
            return None
        if self._hold_reads:
            if not self._held:
                self._commit = (self._read_file, self._read_pos)
            read_file, read_pos = self._commit
            depth = self._depth + len(self._held)
        else:
            read_file, read_pos, depth = self._read_file, self._read_pos, self._depth
        meta = Metadata(depth, read_file, read_pos, self._write_file, self._write_pos, self._doubtful_before)
        try:
            write_metadata(self._fs, self._files.directory, self._files.meta, meta)
        except OSError as e:
            return e
        self._meta_dirty = False
        self._unsynced_reads = 0
        self._retire()
        return None

    def _fsync_data(self) -> Exception | None:
        """Make every record put so far durable."""
        if not self._pending_sync and not self._dir_dirty:
            return None
        try:
            if self._pending_sync and self._writer is not None:
                self._writer.fsync()
            if self._dir_dirty:
                self._fs.fsync_dir(self._files.directory)
                self._dir_dirty = False
        except OSError as e:
            self.fsync_errors += 1
            self._log("ERROR", f"fsync failed: {e}; writing to a new file")
            self._abandon(e)
            return e
        self._pending_sync = 0
        return None

    def _sync_inherited(self) -> None:
        """Fsync the write segment found at open, and its directory entry.

        A process killed before its next fsync leaves its last records in the
        page cache, where a power loss can still take them: nothing this process
        puts would cover them until it wrote to that segment and synced.
        """
        try:
            self._open_writer().fsync()
            self._fs.fsync_dir(self._files.directory)
        except (OSError, DiskQueueWriteError) as e:
            self._log("ERROR", f"failed to sync the records found at open: {e}")
            self._pending_sync += 1  # the next sync tries again
            self._dir_dirty = True

    def _group_commit(self) -> None:
        self._commit_timer = None
        waiters, self._waiters = self._waiters, []
        err = self._fsync_data() or self._waiter_error
        self._waiter_error = None
        for callback in waiters:
            callback(err)

    def _retire(self) -> None:
        """Remove the finished segments (rename the bad ones): the metadata no longer needs them."""
        renamed = False
        keep: list[tuple[int, bool]] = []
        for num, bad in self._retired:
            if self._hold_reads and num >= self._commit[0]:
                keep.append((num, bad))  # held records still need it
                continue
            path = self._files.segment(num)
            try:
                if bad:
                    self._fs.rename(path, path + ".bad")
                    self.bad_files += 1
                    renamed = True
                else:
                    self._fs.remove(path)
            except FileNotFoundError:
                pass
            except OSError as e:
                self._log("ERROR", f"failed to retire {path}: {e}")
        self._retired = keep
        if renamed:
            # Otherwise a crash could bring the name back, and recovery would
            # remove the file as an already-read leftover: the evidence lost.
            try:
                self._fs.fsync_dir(self._files.directory)
            except OSError as e:
                self._log("ERROR", f"fsync of {self._files.directory} failed: {e}")

    # ---- shutting down ---------------------------------------------------

    def _shut(self, err: Exception | None) -> None:
        for timer in (self._sync_timer, self._commit_timer):
            if timer is not None:
                timer.cancel()
        self._sync_timer = self._commit_timer = None
        self._close_files()
        self._closed = True
        waiters, self._waiters = self._waiters, []
        err = err or self._waiter_error
        for callback in waiters:
            callback(err)

    def _close_files(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._reader is not None:
            self._reader.file.close()
            self._reader = None
        self._tail_off()

    def _log(self, level: str, msg: str) -> None:
        self._logger.log(level, f"DISKQUEUE({self.name}): {msg}")
