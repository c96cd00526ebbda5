"""A simulated disk per host: the in-memory file system with crash semantics, plus faults.

The ``FileSystem`` port itself is ``broker.storage.memfs.MemoryFileSystem``
(``fs``), which already loses what a power failure may lose.  ``SimDisk`` adds
the faults the nemesis injects, each drawn from the disk's own generator:

* ``crash``: power loss: unsynced bytes and unsynced directory changes may go,
  and the tail of a file may end part way through a write (a torn write);
* ``tear_next_write``: the next mutating call stops the machine part way
  (``SimulatedCrash`` unwinds the process; the cluster then crashes the node);
* ``fail_fsyncs``: the next fsyncs fail with EIO and make nothing durable;
* ``fill`` / ``unfill``: writes past the space left fail with ENOSPC;
* ``fail_fsyncs_full``: writes succeed (into the page cache) but every fsync
  fails with ENOSPC and makes nothing durable, as on a file system with
  delayed allocation or a thin volume that runs out when the blocks are
  allocated, at writeback;
* ``flip_bit``: one bit of one file flips on the medium (latent corruption).

``durable_records`` says, just before a power loss, which records no crash
can take: the cluster writes them to the history as ``fsync`` events, so the
checker can tell a record that was never fsynced (a power loss may take it)
from one that was (it must survive, and be delivered).  Without them every
message a disk-only node held when its power went would pass as an allowed
loss, and a broker that skipped an fsync, or synced a read position before
the records it covers, could not be caught.
"""

from __future__ import annotations

import errno
import random
import re

from broker.storage.memfs import MemoryFileSystem
from broker.storage.segment import HEADER, HEADER_SIZE, crc32c

__all__ = ["SimDisk"]


class _SimFileSystem(MemoryFileSystem):
    """``MemoryFileSystem`` with one fault more: fsyncs that fail with ENOSPC."""

    def __init__(self) -> None:
        super().__init__()
        self.fsync_enospc = False

    def _check_fsync(self, path: str) -> None:
        if self.fsync_enospc:
            raise OSError(errno.ENOSPC, "no space left on device", path)
        super()._check_fsync(path)


class SimDisk:
    def __init__(self, host: str, root: str, rng: random.Random) -> None:
        self.host = host
        self.root = root
        self.fs: _SimFileSystem = _SimFileSystem()
        self.fs.mkdir(root)
        self._rng = rng
        self.torn_armed = False
        # durable_records: per segment path, the inode and how far its records were reported
        self._reported: dict[str, tuple[object, int]] = {}

    def crash(self) -> None:
        """Lose what a power failure may lose."""
        self.torn_armed = False
        self.fs.crash(self._rng)

    def tear_next_write(self, within: int = 1) -> None:
        """Crash during one of the next ``within`` mutating calls (chosen at random)."""
        self.torn_armed = True
        self.fs.crash_after(1 + self._rng.randrange(max(within, 1)))

    def fail_fsyncs(self, count: int = 1) -> None:
        self.fs.fail_fsync(count)

    def fail_fsyncs_full(self) -> None:
        """Every fsync fails with ENOSPC until ``heal``; writes still succeed."""
        self.fs.fsync_enospc = True

    def fill(self, free_bytes: int = 0) -> None:
        """Leave only ``free_bytes`` of space."""
        self.fs.set_capacity(self.fs.used_bytes() + free_bytes)

    def unfill(self) -> None:
        self.fs.set_capacity(None)

    def heal(self) -> None:
        """End every lasting fault (full disk, failing fsyncs, an armed torn write)."""
        self.unfill()
        self.fs.fail_fsync(0)
        self.fs.fsync_enospc = False
        self.fs.cancel_crash()
        self.torn_armed = False

    def files(self) -> list[str]:
        """Every file under the root, sorted."""
        out: list[str] = []
        pending = [self.root]
        while pending:
            d = pending.pop()
            for name in self.fs.listdir(d):
                path = f"{d.rstrip('/')}/{name}"
                try:
                    self.fs.file_size(path)
                except FileNotFoundError:
                    pending.append(path)  # a directory
                else:
                    out.append(path)
        return sorted(out)

    def flip_bit(self, name: str | None = None) -> tuple[str, int] | None:
        """Flip a random bit of a random non-empty file (or of the file called ``name``); where, or None if none."""
        candidates = [p for p in self.files() if self.fs.file_size(p) > 0 and (name is None or p.endswith("/" + name))]
        if not candidates:
            return None
        path = candidates[self._rng.randrange(len(candidates))]
        offset = self._rng.randrange(self.fs.file_size(path))
        self.fs.flip_bit(path, offset, self._rng.randrange(8))
        return path, offset

    def durable_records(self) -> dict[str, list[bytes]]:
        """Per disk queue name, the records that became certain to survive a crash since the last call.

        A record is certain when it lies in the fsynced part of a segment whose
        name is durable in its directory: the crash model of ``MemoryFileSystem``
        keeps exactly that.  The port has no such question, so this reads the
        file system's state directly; it changes nothing.  Records are read
        from the start of each segment up to the first that fails its checks.
        """
        out: dict[str, list[bytes]] = {}
        base = "/".join(part for part in self.root.split("/") if part not in ("", "."))
        base = "/" + base if self.root.startswith("/") else base  # the file system's own key for it
        directory = self.fs._dirs.get(base)
        if directory is None:
            return out
        for name, inode in sorted(directory.durable.items()):
            m = _SEGMENT.fullmatch(name)
            if m is None or directory.entries.get(name) is not inode:
                continue
            path = f"{base.rstrip('/')}/{name}"
            seen, offset = self._reported.get(path, (None, 0))
            if seen is not inode:
                offset = 0
            data = memoryview(inode.data)[: inode.floor]
            records: list[bytes] = []
            while offset + HEADER_SIZE <= len(data):
                length, crc = HEADER.unpack_from(data, offset)
                end = offset + HEADER_SIZE + length
                if length == 0 or end > len(data) or crc32c(data[offset + HEADER_SIZE : end]) != crc:
                    break
                records.append(bytes(data[offset + HEADER_SIZE : end]))
                offset = end
            self._reported[path] = (inode, offset)
            if records:
                out.setdefault(m.group(1), []).extend(records)
        return out


_SEGMENT = re.compile(r"(.+)\.diskqueue\.\d{6,}\.dat")
