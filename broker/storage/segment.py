"""Checksummed records in one disk queue segment file: framing, reading, resyncing.

A record is ``[uint32 length][uint32 crc32c(data)][data]``, big-endian (the
format essay is at the top of ``diskqueue.py``).  This module knows nothing of
queues: it frames data, reads records from a file in large chunks, and, past a
record that fails its checks, finds where good records resume.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass

import crcmod.predefined

from broker.ports import File

__all__ = [
    "HEADER_SIZE",
    "READ_CHUNK",
    "Scan",
    "SegmentReader",
    "Tail",
    "crc32c",
    "frame",
]

HEADER = struct.Struct(">II")
HEADER_SIZE = HEADER.size
_LENGTH = struct.Struct(">I")

crc32c: Callable[[bytes | memoryview], int] = crcmod.predefined.mkCrcFun("crc-32c")

# Segments are read this many bytes at a time, so a reader makes one read call
# for thousands of small records.
READ_CHUNK = 1 << 20

# A resync candidate must be followed by this many further good records (or by
# the end of the data): a lone length+CRC match turns up by chance about once in
# 2**32 offsets, and a message body may itself contain a well-formed record.
RESYNC_CHAIN = 2


def frame(data: bytes) -> bytes:
    """The bytes of one record holding ``data``."""
    return HEADER.pack(len(data), crc32c(data)) + data


class Tail(enum.Enum):
    """How the bytes after the last good record of a segment look."""

    CLEAN = "clean"  # there are none
    TORN = "torn"  # a record cut short, or zeros: what a crash leaves
    GARBAGE = "garbage"  # anything else: corruption


@dataclass(frozen=True, slots=True)
class Scan:
    count: int  # good records
    end: int  # offset just past the last good record
    tail: Tail
    skipped: int  # corrupt regions skipped by resyncing


class SegmentReader:
    """Records of one segment, up to ``end`` (which may grow: the segment being written)."""

    def __init__(self, file: File, end: int, min_size: int, max_size: int) -> None:
        self.file = file
        self.end = end
        self.min_size = min_size
        self.max_size = max_size
        self._buf = b""
        self._buf_pos = 0

    def record_at(self, pos: int) -> bytes | None:
        """The data of the record at ``pos``, or None if no good record starts there."""
        buf, i = self._get(pos, HEADER_SIZE)
        if len(buf) - i < HEADER_SIZE:
            return None
        n, crc = HEADER.unpack_from(buf, i)
        if n < self.min_size or n > self.max_size or pos + HEADER_SIZE + n > self.end:
            return None
        j = i + HEADER_SIZE + n
        if j > len(buf):
            buf, i = self._get(pos, HEADER_SIZE + n)
            j = i + HEADER_SIZE + n
            if j > len(buf):
                return None
        data = buf[i + HEADER_SIZE : j]
        return data if crc32c(data) == crc else None

    def resync(self, pos: int) -> int | None:
        """The offset after ``pos`` where good records resume, or None.

        The record at ``pos`` is bad, but it started a record, so the next one
        starts at most a header and a maximum-size body later: only that window
        is searched.  A candidate needs a plausible length, a matching CRC and
        ``RESYNC_CHAIN`` good records after it (or the end of the data, or a
        torn tail).  Skipping more than was corrupt loses records; accepting a
        false candidate would invent one, so the test errs towards skipping.
        """
        limit = min(self.end - HEADER_SIZE - self.min_size, pos + HEADER_SIZE + self.max_size)
        if limit <= pos:
            return None
        region = self.file.read_at(pos + 1, limit - pos + HEADER_SIZE - 1)
        lo, hi, end = self.min_size, self.max_size, self.end
        unpack = _LENGTH.unpack_from
        for off in range(len(region) - HEADER_SIZE + 1):
            (n,) = unpack(region, off)
            if lo <= n <= hi and pos + 1 + off + HEADER_SIZE + n <= end and self._chain_ok(pos + 1 + off):
                return pos + 1 + off
        return None

    def looks_torn(self, pos: int) -> bool:
        """Whether the bytes from ``pos`` to the end are what a crash leaves after a record.

        That is a record cut short (too few bytes for a header, or a plausible
        length running past the end), or zeros (a file system may extend a file
        before the data reaches the disk).
        """
        if self.end - pos < HEADER_SIZE:
            return True
        buf, i = self._get(pos, HEADER_SIZE)
        if len(buf) - i < HEADER_SIZE:
            return True
        (n,) = _LENGTH.unpack_from(buf, i)
        if self.min_size <= n <= self.max_size and pos + HEADER_SIZE + n > self.end:
            return True
        while pos < self.end:
            chunk = self.file.read_at(pos, min(READ_CHUNK, self.end - pos))
            if not chunk:
                return True
            if chunk.count(0) != len(chunk):
                return False
            pos += len(chunk)
        return True

    def scan(self, pos: int) -> Scan:
        """Count the good records from ``pos`` to the end, resyncing past bad ones."""
        count = skipped = 0
        while pos < self.end:
            data = self.record_at(pos)
            if data is not None:
                count += 1
                pos += HEADER_SIZE + len(data)
                continue
            resumed = self.resync(pos)
            if resumed is None:
                return Scan(count, pos, Tail.TORN if self.looks_torn(pos) else Tail.GARBAGE, skipped)
            skipped += 1
            pos = resumed
        return Scan(count, pos, Tail.CLEAN, skipped)

    def _chain_ok(self, pos: int) -> bool:
        for k in range(1 + RESYNC_CHAIN):
            if pos >= self.end:
                return k > 0
            data = self.record_at(pos)
            if data is None:
                return k > 0 and self.looks_torn(pos)
            pos += HEADER_SIZE + len(data)
        return True

    def _get(self, pos: int, n: int) -> tuple[bytes, int]:
        """A buffer and an index in it holding the ``n`` bytes at ``pos``, as far as ``end`` allows."""
        i = pos - self._buf_pos
        if i >= 0 and i + n <= len(self._buf):
            return self._buf, i
        want = min(max(n, READ_CHUNK), self.end - pos)
        if want <= 0:
            return b"", 0
        self._buf = self.file.read_at(pos, want)
        self._buf_pos = pos
        return self._buf, 0
