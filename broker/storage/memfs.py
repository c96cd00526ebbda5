"""An in-memory ``FileSystem`` that loses what a real disk may lose in a crash.

Tests and the simulator run the disk queue on this instead of the real disk, so
that a crash can be injected anywhere and its consequences replayed from a seed.

The crash model is POSIX at its strictest, applied per file and per directory:

* A file (an inode) remembers what its last ``fsync`` made durable.  Appended
  bytes after that are volatile; a ``crash`` keeps the durable bytes and, of the
  volatile tail, nothing, everything, or a random prefix, which may end inside
  a record.  A truncate since the last fsync is volatile too: a crash either
  undoes it (the durable bytes come back and later writes are lost) or keeps it
  together with a random prefix of what was written after it.
* A directory remembers the names its last ``fsync_dir`` made durable, and logs
  every create, rename and remove since.  A crash keeps a random prefix of that
  log: journaling file systems commit directory changes in order, so a later
  change never survives without an earlier one, and a rename is all or nothing.
  Creating a file and fsyncing it does not make its name durable.
* ``mkdir`` is durable at once (a simplification: the queue creates its
  directory once, at start).

Randomness is passed to ``crash`` (a ``broker.ports.Random``, which a seeded
``random.Random`` satisfies), so a run replays from its seed.

Faults for the simulator and the tests, besides ``crash``:

* ``crash_after(n)``: the n-th next mutating call raises ``SimulatedCrash``,
  which unwinds whatever was running (it is a ``BaseException`` so no
  ``except Exception`` or ``except OSError`` catches it); then call ``crash``.
* ``fail_fsync(count, match)``: the next fsyncs of matching paths raise EIO and
  make nothing durable.
* ``set_capacity(nbytes)``: writes past a total size fail with ENOSPC after
  writing the prefix that fits, as a real short write does.
* ``fail_reads(match)``: opening or reading matching paths fails with EIO, as
  an unreadable sector does.
* ``flip_bit`` and ``overwrite``: media corruption of durable and cached bytes.

After a crash, every ``File`` opened before it fails with EBADF: the process
that held it is gone.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field

from broker.ports import Random

__all__ = ["MemoryFile", "MemoryFileSystem", "SimulatedCrash"]


class SimulatedCrash(BaseException):
    """Raised by a mutating call armed with ``crash_after``: the machine stops here."""


class MemoryFileSystem:
    def __init__(self) -> None:
        self._dirs: dict[str, _Dir] = {"": _Dir(), "/": _Dir()}
        self._generation = 0
        self._crash_countdown = 0
        self._fsync_failures = 0
        self._fsync_match = ""
        self._capacity: int | None = None
        self._read_fault: str | None = None
        self.crashes = 0
        self.fsyncs = 0  # successful fsyncs of files and directories, for tests and stats

    # ---- FileSystem port -------------------------------------------------

    def open_append(self, path: str) -> MemoryFile:
        d, name = self._parent(path)
        inode = d.entries.get(name)
        if inode is None:
            self._tick()
            inode = _Inode()
            d.link(name, inode)
        return MemoryFile(self, inode, path, writable=True)

    def open_read(self, path: str) -> MemoryFile:
        inode = self._lookup(path)
        self._check_read(path)
        return MemoryFile(self, inode, path, writable=False)

    def rename(self, src: str, dst: str) -> None:
        sd, sname = self._parent(src)
        dd, dname = self._parent(dst)
        if sname not in sd.entries:
            raise FileNotFoundError(errno.ENOENT, "no such file", src)
        if sd is not dd:
            # Two directories' logs could then crash independently, leaving the
            # file under both names or neither; the queue never needs this.
            raise OSError(errno.EXDEV, "rename across directories is not modelled", src)
        self._tick()
        sd.rename(sname, dname)

    def remove(self, path: str) -> None:
        d, name = self._parent(path)
        if name not in d.entries:
            raise FileNotFoundError(errno.ENOENT, "no such file", path)
        self._tick()
        d.unlink(name)

    def listdir(self, path: str) -> list[str]:
        key = _normalize(path)
        d = self._dirs.get(key)
        if d is None:
            raise FileNotFoundError(errno.ENOENT, "no such directory", path)
        names = set(d.entries)
        for other in self._dirs:
            if other not in ("", "/") and _split(other)[0] == key:
                names.add(_split(other)[1])
        return sorted(names)

    def file_size(self, path: str) -> int:
        return len(self._lookup(path).data)

    def mkdir(self, path: str) -> None:
        key = _normalize(path)
        while key not in self._dirs:
            self._dirs[key] = _Dir()
            key = _split(key)[0]

    def fsync_dir(self, path: str) -> None:
        key = _normalize(path)
        d = self._dirs.get(key)
        if d is None:
            raise FileNotFoundError(errno.ENOENT, "no such directory", path)
        self._tick()
        self._check_fsync(path)
        d.make_durable()
        self.fsyncs += 1

    # ---- faults ----------------------------------------------------------

    def crash(self, rng: Random) -> None:
        """Lose what a power failure may lose, per the model in the module docstring."""
        self.crashes += 1
        self._generation += 1
        self._crash_countdown = 0
        survivors: dict[int, _Inode] = {}
        for d in self._dirs.values():
            d.crash(rng)
            for inode in d.entries.values():
                survivors[id(inode)] = inode
        for inode in survivors.values():
            inode.crash(rng)

    def crash_after(self, n: int) -> None:
        """Make the n-th next mutating call (1 = the next one) raise ``SimulatedCrash``."""
        if n < 1:
            raise ValueError("n must be at least 1")
        self._crash_countdown = n

    def cancel_crash(self) -> None:
        """Disarm ``crash_after``."""
        self._crash_countdown = 0

    def fail_fsync(self, count: int = 1, match: str = "") -> None:
        """Make the next ``count`` fsyncs of paths containing ``match`` fail with EIO."""
        self._fsync_failures = count
        self._fsync_match = match

    def fail_reads(self, match: str | None) -> None:
        """Make opening and reading paths containing ``match`` fail with EIO; None: stop."""
        self._read_fault = match

    def set_capacity(self, nbytes: int | None) -> None:
        """Fail writes that would take the total size of all files past ``nbytes``."""
        self._capacity = nbytes

    def used_bytes(self) -> int:
        """Total size of the files that have a name."""
        seen: dict[int, int] = {}
        for d in self._dirs.values():
            for inode in d.entries.values():
                seen[id(inode)] = len(inode.data)
        return sum(seen.values())

    def flip_bit(self, path: str, offset: int, bit: int = 0) -> None:
        """Flip one bit on the medium (and in the cache): a latent sector error."""
        inode = self._lookup(path)
        inode.corrupt(offset, bytes([inode.byte_at(offset) ^ (1 << bit)]))

    def overwrite(self, path: str, offset: int, data: bytes) -> None:
        """Replace bytes on the medium (and in the cache) without changing the length."""
        inode = self._lookup(path)
        if offset + len(data) > len(inode.data):
            raise ValueError("overwrite past the end of the file")
        inode.corrupt(offset, data)

    def contents(self, path: str) -> bytes:
        """What a read of the whole file returns now."""
        return bytes(self._lookup(path).data)

    # ---- internals -------------------------------------------------------

    def _tick(self) -> None:
        if self._crash_countdown > 0:
            self._crash_countdown -= 1
            if self._crash_countdown == 0:
                raise SimulatedCrash("crash_after reached")

    def _check_fsync(self, path: str) -> None:
        if self._fsync_failures > 0 and self._fsync_match in path:
            self._fsync_failures -= 1
            raise OSError(errno.EIO, "injected fsync failure", path)

    def _check_read(self, path: str) -> None:
        if self._read_fault is not None and self._read_fault in path:
            raise OSError(errno.EIO, "injected read failure", path)

    def _room_for(self, n: int) -> int:
        """How many of ``n`` bytes about to be written fit."""
        if self._capacity is None:
            return n
        return max(0, min(n, self._capacity - self.used_bytes()))

    def _parent(self, path: str) -> tuple[_Dir, str]:
        parent, name = _split(_normalize(path))
        d = self._dirs.get(parent)
        if d is None or not name:
            raise FileNotFoundError(errno.ENOENT, "no such directory", path)
        return d, name

    def _lookup(self, path: str) -> _Inode:
        d, name = self._parent(path)
        inode = d.entries.get(name)
        if inode is None:
            raise FileNotFoundError(errno.ENOENT, "no such file", path)
        return inode

    def _check_handle(self, handle: MemoryFile) -> None:
        if handle.closed or handle.generation != self._generation:
            raise OSError(errno.EBADF, "file closed or lost in a crash", handle.path)


class MemoryFile:
    """An open file of a ``MemoryFileSystem``."""

    def __init__(self, fs: MemoryFileSystem, inode: _Inode, path: str, *, writable: bool) -> None:
        self._fs = fs
        self._inode = inode
        self.path = path
        self.writable = writable
        self.generation = fs._generation
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._fs._check_handle(self)
        if not self.writable:
            raise OSError(errno.EBADF, "file opened read-only", self.path)
        self._fs._tick()
        fits = self._fs._room_for(len(data))
        self._inode.data += data[:fits]
        if fits < len(data):
            raise OSError(errno.ENOSPC, "no space left on device", self.path)

    def read_at(self, offset: int, size: int) -> bytes:
        self._fs._check_handle(self)
        self._fs._check_read(self.path)
        return bytes(self._inode.data[offset : offset + size])

    def size(self) -> int:
        self._fs._check_handle(self)
        return len(self._inode.data)

    def truncate(self, size: int) -> None:
        self._fs._check_handle(self)
        if not self.writable:
            raise OSError(errno.EBADF, "file opened read-only", self.path)
        self._fs._tick()
        self._inode.truncate(size)

    def fsync(self) -> None:
        self._fs._check_handle(self)
        self._fs._tick()
        self._fs._check_fsync(self.path)
        self._inode.make_durable()
        self._fs.fsyncs += 1

    def close(self) -> None:
        self.closed = True


def _pick(rng: Random, lo: int, hi: int) -> int:
    """A length in [lo, hi]: often an end, so that "nothing" and "everything" are exercised."""
    if hi <= lo:
        return lo
    choice = rng.randrange(3)
    if choice == 0:
        return lo
    if choice == 1:
        return hi
    return lo + rng.randrange(hi - lo + 1)


@dataclass(eq=False)
class _Inode:
    """A file's bytes.  ``data[:floor]`` is durable; so is ``cut``, which a
    volatile truncate removed from just past ``floor``.  That is the durable
    content, kept without copying the file at every fsync."""

    data: bytearray = field(default_factory=bytearray)
    floor: int = 0
    cut: bytes = b""

    def make_durable(self) -> None:
        self.floor = len(self.data)
        self.cut = b""

    def truncate(self, size: int) -> None:
        if size < self.floor:
            self.cut = bytes(self.data[size : self.floor]) + self.cut
            self.floor = size
        if size < len(self.data):
            del self.data[size:]
        else:
            self.data += bytes(size - len(self.data))

    def crash(self, rng: Random) -> None:
        if self.cut and rng.randrange(2) == 0:
            del self.data[self.floor :]
            self.data += self.cut
        else:
            del self.data[_pick(rng, self.floor, len(self.data)) :]
        self.make_durable()

    def byte_at(self, offset: int) -> int:
        if offset < len(self.data):
            return self.data[offset]
        return self.cut[offset - self.floor]

    def corrupt(self, offset: int, data: bytes) -> None:
        for i, b in enumerate(data, start=offset):
            if i < len(self.data):
                self.data[i] = b
            if self.floor <= i < self.floor + len(self.cut):
                k = i - self.floor
                self.cut = self.cut[:k] + bytes([b]) + self.cut[k + 1 :]


@dataclass(eq=False)
class _Dir:
    entries: dict[str, _Inode] = field(default_factory=dict)
    durable: dict[str, _Inode] = field(default_factory=dict)
    log: list[tuple[str, str, str | _Inode]] = field(default_factory=list)

    def link(self, name: str, inode: _Inode) -> None:
        self.entries[name] = inode
        self.log.append(("link", name, inode))

    def unlink(self, name: str) -> None:
        del self.entries[name]
        self.log.append(("unlink", name, name))

    def rename(self, src: str, dst: str) -> None:
        self.entries[dst] = self.entries.pop(src)
        self.log.append(("rename", src, dst))

    def make_durable(self) -> None:
        self.durable = dict(self.entries)
        self.log.clear()

    def crash(self, rng: Random) -> None:
        entries = dict(self.durable)
        for op, name, arg in self.log[: _pick(rng, 0, len(self.log))]:
            if op == "link":
                assert isinstance(arg, _Inode)
                entries[name] = arg
            elif op == "unlink":
                del entries[name]
            else:
                assert isinstance(arg, str)
                entries[arg] = entries.pop(name)
        self.entries = entries
        self.make_durable()


def _normalize(path: str) -> str:
    """A canonical key: '/a/b' for absolute paths, 'a/b' for relative ones, '' for '.'."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    joined = "/".join(parts)
    return "/" + joined if path.startswith("/") else joined


def _split(key: str) -> tuple[str, str]:
    head, _, tail = key.rpartition("/")
    if key.startswith("/") and head == "":
        head = "/"
    return head, tail
