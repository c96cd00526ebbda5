"""Opening a disk queue after a clean exit or a crash: where reading and writing resume.

The policy is explained in the essay at the top of ``diskqueue.py``.  In short:
trust the metadata's read position and depth, find the true end of the data by
scanning forward from the metadata's write position, cut a torn record off the
end of a segment, and recount the whole queue when anything does not add up.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.ports import FileSystem, Logger
from broker.storage.layout import QueueFiles
from broker.storage.metadata import Metadata, MetadataError, read_metadata
from broker.storage.segment import Scan, SegmentReader, Tail

__all__ = ["Recovered", "count_records", "recover"]


@dataclass(slots=True)
class Recovered:
    read_file: int
    read_pos: int
    write_file: int
    write_pos: int
    depth: int
    doubtful_before: int
    disk_bytes: int  # size of the segments from the read file on
    changed: bool  # the metadata on disk no longer describes this state
    bad_files: int


def recover(files: QueueFiles, fs: FileSystem, logger: Logger, min_size: int, max_size: int) -> Recovered:
    """Reconcile the metadata with the segment files; fix what a crash left behind."""
    return _Recovery(files, fs, logger, min_size, max_size).run()


def count_records(
    files: QueueFiles,
    fs: FileSystem,
    start: tuple[int, int],
    end: tuple[int, int],
    min_size: int,
    max_size: int,
) -> int:
    """Good records from ``start`` to ``end`` (file, offset), as a reader would find them.

    Raises ``OSError`` when a segment cannot be read.
    """
    count = 0
    for num in range(start[0], end[0] + 1):
        try:
            f = fs.open_read(files.segment(num))
        except FileNotFoundError:
            continue
        try:
            limit = end[1] if num == end[0] else f.size()
            pos = start[1] if num == start[0] else 0
            count += SegmentReader(f, limit, min_size, max_size).scan(pos).count
        finally:
            f.close()
    return count


class _Recovery:
    def __init__(self, files: QueueFiles, fs: FileSystem, logger: Logger, min_size: int, max_size: int) -> None:
        self.files = files
        self.fs = fs
        self.logger = logger
        self.min_size = min_size
        self.max_size = max_size
        self.bad_files = 0
        self.changed = False

    def log(self, level: str, msg: str) -> None:
        self.logger.log(level, f"DISKQUEUE({self.files.name}): {msg}")

    def run(self) -> Recovered:
        fs, files = self.fs, self.files
        fs.mkdir(files.directory)
        names = fs.listdir(files.directory)
        nums = files.segment_numbers(names)
        if files.meta_tmp.rpartition("/")[2] in names:
            # A metadata write that a crash interrupted before its rename.
            self._remove(files.meta_tmp)
        meta, doubt = self._load_metadata(nums)
        read_file, read_pos = meta.read_file, meta.read_pos

        for num in nums:
            if num < read_file:
                # Read to the end before the last sync; its removal was lost in a crash.
                self.log("INFO", f"removing leftover {files.segment(num)}")
                self._remove(files.segment(num))
        sizes = self._sizes([n for n in nums if n >= read_file])

        if sizes and read_file not in sizes:
            if read_pos > 0:
                self.log("ERROR", f"{files.segment(read_file)} is missing; records in it are lost")
                doubt = True
            read_file, read_pos = min(sizes), 0
        elif read_pos > sizes.get(read_file, 0):
            # Records read before a crash took the unsynced end of the file (an
            # fsync of it failed): everything before the read position was
            # delivered, so nothing in this file is left to read.
            self.log("ERROR", f"{files.segment(read_file)} is shorter than the read position {read_pos}")
            doubt = True
            read_pos = sizes.get(read_file, 0)
        hint = (meta.write_file, meta.write_pos)
        if hint[1] > sizes.get(hint[0], 0):
            self.log("ERROR", f"{files.segment(hint[0])} ends before the synced write position {hint[1]}")
            doubt = True
        if hint < (read_file, read_pos):
            doubt = True
        if meta.doubtful_before > read_file:
            self.log("WARN", "records may have been lost after a failed fsync")
            doubt = True

        while True:
            start = (read_file, read_pos) if doubt else hint
            depth = 0 if doubt else meta.depth
            try:
                write_file, write_pos, found = self._scan_from(start, sizes)
                break
            except _Unreadable as e:
                self._set_aside(e.num)
                del sizes[e.num]
                doubt = True
                if read_file == e.num:
                    read_file, read_pos = (min(sizes) if sizes else e.num + 1), 0
        depth += found
        if write_file < meta.doubtful_before:
            # Never append to a segment whose fsync failed: a later fsync
            # succeeding says nothing about the bytes the failed one covered.
            write_file, write_pos = meta.doubtful_before, 0
        if doubt:
            self.log("WARN", f"recounted {depth} records")
        # Kept even after a recount: what the recount found in those segments
        # is still not durable.  It stops mattering once reading passes them.
        doubtful_before = meta.doubtful_before if meta.doubtful_before > read_file else 0
        disk_bytes = sum(sizes.values())
        new_meta = Metadata(depth, read_file, read_pos, write_file, write_pos, doubtful_before)
        changed = self.changed or doubt or new_meta != meta
        return Recovered(read_file, read_pos, write_file, write_pos, depth, doubtful_before, disk_bytes, changed, self.bad_files)

    def _load_metadata(self, nums: list[int]) -> tuple[Metadata, bool]:
        """The metadata, and whether it is a guess to be checked by recounting."""
        try:
            meta = read_metadata(self.fs, self.files.meta)
        except (MetadataError, OSError) as e:
            self.log("ERROR", f"metadata {self.files.meta} unusable ({e}); rebuilding from the data files")
        else:
            if meta is not None:
                return meta, False
            if not nums:
                return Metadata(0, 0, 0, 0, 0), False  # a new queue
            self.log("WARN", f"metadata {self.files.meta} missing; rebuilding from the data files")
        # Without metadata, reading starts at the oldest segment present: what
        # was read from it before is delivered again rather than lost.
        first = nums[0] if nums else 0
        return Metadata(0, first, 0, first, 0), True

    def _sizes(self, nums: list[int]) -> dict[int, int]:
        sizes: dict[int, int] = {}
        for num in nums:
            try:
                sizes[num] = self.fs.file_size(self.files.segment(num))
            except FileNotFoundError:
                continue
            except OSError as e:
                self.log("ERROR", f"cannot stat {self.files.segment(num)}: {e}")
                self._set_aside(num)
        return sizes

    def _scan_from(self, start: tuple[int, int], sizes: dict[int, int]) -> tuple[int, int, int]:
        """Find the end of the data from ``start``: (write file, write offset, records found)."""
        write_file, write_pos = start
        found = 0
        last = max(sizes, default=start[0])
        for num in sorted(n for n in sizes if n >= start[0]):
            pos = start[1] if num == start[0] else 0
            scan = self._scan_segment(num, pos, sizes[num])
            found += scan.count
            write_file, write_pos = num, scan.end
            if scan.tail is Tail.TORN and scan.end < sizes[num]:
                self.log("WARN", f"cutting a torn record of {sizes[num] - scan.end} bytes off {self.files.segment(num)}")
                self._truncate(num, scan.end)
                sizes[num] = scan.end
            elif scan.tail is Tail.GARBAGE and num == last:
                # Not what a crash leaves: keep it for the reader to report, write elsewhere.
                self.log("ERROR", f"corrupt data at {scan.end} of {self.files.segment(num)}; writing to a new file")
                write_file, write_pos = num + 1, 0
        return write_file, write_pos, found

    def _scan_segment(self, num: int, pos: int, size: int) -> Scan:
        try:
            f = self.fs.open_read(self.files.segment(num))
        except OSError as e:
            raise _Unreadable(num) from e
        try:
            return SegmentReader(f, size, self.min_size, self.max_size).scan(pos)
        except OSError as e:
            self.log("ERROR", f"cannot read {self.files.segment(num)}: {e}")
            raise _Unreadable(num) from e
        finally:
            f.close()

    def _truncate(self, num: int, size: int) -> None:
        f = self.fs.open_append(self.files.segment(num))
        try:
            f.truncate(size)
        finally:
            f.close()
        self.changed = True

    def _set_aside(self, num: int) -> None:
        path = self.files.segment(num)
        self.log("WARN", f"saving unreadable file as {path}.bad")
        self.bad_files += 1
        self.changed = True
        try:
            self.fs.rename(path, path + ".bad")
        except OSError as e:
            self.log("ERROR", f"failed to rename {path} to {path}.bad: {e}")

    def _remove(self, path: str) -> None:
        self.changed = True
        try:
            self.fs.remove(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            self.log("ERROR", f"failed to remove {path}: {e}")


class _Unreadable(Exception):
    def __init__(self, num: int) -> None:
        super().__init__(num)
        self.num = num
