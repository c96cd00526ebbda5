"""The disk queue's metadata file: where reading and writing stand, written atomically.

Layout (64 bytes, big-endian)::

    0  8  magic "nsqsimDQ"      tells our file from Go nsqd's text one and from junk
    8  4  format version (1)    so a later layout is refused, not misread
   12  8  depth                 records between the read and write positions
   20  8  read file number      the next record to read ...
   28  8  read offset           ... is here
   36  8  write file number     where the writer stood at the last sync: a hint,
   44  8  write offset          recovery scans forward from it for later records
   52  8  doubtful before       segments numbered below this may hold fewer records
                                than depth counts (an fsync of theirs failed): if
                                any is still unread, recovery recounts
   60  4  crc32c of bytes 0-59  a torn or rotted file is detected, never trusted

It is replaced, never edited: written to a temporary file, fsynced, renamed over
the old one, and the directory fsynced, so a crash leaves the old or the new
metadata whole.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from broker.ports import FileSystem
from broker.storage.segment import crc32c

__all__ = ["FORMAT_VERSION", "Metadata", "MetadataError", "read_metadata", "write_metadata"]

FORMAT_VERSION = 1
_MAGIC = b"nsqsimDQ"
_BODY = struct.Struct(">8sIqqqqqq")
_CRC = struct.Struct(">I")
SIZE = _BODY.size + _CRC.size


class MetadataError(Exception):
    """The metadata file exists but cannot be trusted."""


@dataclass(frozen=True, slots=True)
class Metadata:
    depth: int
    read_file: int
    read_pos: int
    write_file: int
    write_pos: int
    doubtful_before: int = 0

    def encode(self) -> bytes:
        body = _BODY.pack(
            _MAGIC,
            FORMAT_VERSION,
            self.depth,
            self.read_file,
            self.read_pos,
            self.write_file,
            self.write_pos,
            self.doubtful_before,
        )
        return body + _CRC.pack(crc32c(body))

    @classmethod
    def decode(cls, raw: bytes) -> Metadata:
        if len(raw) != SIZE:
            raise MetadataError(f"metadata is {len(raw)} bytes, expected {SIZE}")
        body = raw[: _BODY.size]
        (crc,) = _CRC.unpack_from(raw, _BODY.size)
        if crc32c(body) != crc:
            raise MetadataError("metadata checksum mismatch")
        magic, version, depth, rfile, rpos, wfile, wpos, doubtful = _BODY.unpack(body)
        if magic != _MAGIC:
            raise MetadataError("not an nsqsim disk queue metadata file")
        if version != FORMAT_VERSION:
            raise MetadataError(f"unsupported metadata format version {version}")
        meta = cls(depth, rfile, rpos, wfile, wpos, doubtful)
        if min(depth, rfile, rpos, wfile, wpos, doubtful) < 0 or (rfile, rpos) > (wfile, wpos):
            raise MetadataError(f"inconsistent metadata {meta}")
        return meta


def read_metadata(fs: FileSystem, path: str) -> Metadata | None:
    """The metadata at ``path``; None if there is none; ``MetadataError`` if it is bad."""
    try:
        f = fs.open_read(path)
    except FileNotFoundError:
        return None
    try:
        raw = f.read_at(0, SIZE + 1)
    finally:
        f.close()
    return Metadata.decode(raw)


def write_metadata(fs: FileSystem, directory: str, path: str, meta: Metadata) -> None:
    """Replace the metadata at ``path`` atomically and durably; raises ``OSError``."""
    tmp = path + ".tmp"
    f = fs.open_append(tmp)
    try:
        f.truncate(0)
        f.write(meta.encode())
        f.fsync()
    finally:
        f.close()
    fs.rename(tmp, path)
    fs.fsync_dir(directory)
