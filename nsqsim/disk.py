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
* ``flip_bit``: one bit of one file flips on the medium (latent corruption).
"""

from __future__ import annotations

import random

from broker.storage.memfs import MemoryFileSystem

__all__ = ["SimDisk"]


class SimDisk:
    def __init__(self, host: str, root: str, rng: random.Random) -> None:
        self.host = host
        self.root = root
        self.fs = MemoryFileSystem()
        self.fs.mkdir(root)
        self._rng = rng
        self.torn_armed = False

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

    def fill(self, free_bytes: int = 0) -> None:
        """Leave only ``free_bytes`` of space."""
        self.fs.set_capacity(self.fs.used_bytes() + free_bytes)

    def unfill(self) -> None:
        self.fs.set_capacity(None)

    def heal(self) -> None:
        """End every lasting fault (full disk, failing fsyncs, an armed torn write)."""
        self.unfill()
        self.fs.fail_fsync(0)
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

    def flip_bit(self) -> tuple[str, int] | None:
        """Flip a random bit of a random non-empty file; where, or None if there is no file."""
        candidates = [p for p in self.files() if self.fs.file_size(p) > 0]
        if not candidates:
            return None
        path = candidates[self._rng.randrange(len(candidates))]
        offset = self._rng.randrange(self.fs.file_size(path))
        self.fs.flip_bit(path, offset, self._rng.randrange(8))
        return path, offset
