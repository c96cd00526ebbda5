"""The ``FileSystem`` port on the operating system's files (POSIX).

Thin on purpose: every method is one or two system calls, and the crash
semantics are the operating system's, which the port's docstring states.
Calls block; the disk queue makes few of them (one ``write`` per put, reads in
large chunks, an fsync per sync interval).
"""

from __future__ import annotations

import os

from broker.ports import File, FileSystem

__all__ = ["OSFile", "OSFileSystem"]


class OSFile:
    def __init__(self, path: str, flags: int) -> None:
        self.path = path
        self._fd = os.open(path, flags | os.O_CLOEXEC, 0o600)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        written = os.write(self._fd, data)
        if written == len(data):
            return
        # A short write happens when the disk fills or a signal arrives; the
        # next call then writes more or raises the reason.
        view = memoryview(data)[written:]
        while view:
            view = view[os.write(self._fd, view) :]

    def read_at(self, offset: int, size: int) -> bytes:
        data = os.pread(self._fd, size, offset)
        if len(data) == size or not data:
            return data
        parts = [data]
        got = len(data)
        while got < size:
            more = os.pread(self._fd, size - got, offset + got)
            if not more:
                break
            parts.append(more)
            got += len(more)
        return b"".join(parts)

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)

    def fsync(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class OSFileSystem:
    def open_append(self, path: str) -> File:
        return OSFile(path, os.O_RDWR | os.O_CREAT | os.O_APPEND)

    def open_read(self, path: str) -> File:
        return OSFile(path, os.O_RDONLY)

    def rename(self, src: str, dst: str) -> None:
        os.replace(src, dst)

    def remove(self, path: str) -> None:
        os.remove(path)

    def listdir(self, path: str) -> list[str]:
        return sorted(os.listdir(path))

    def file_size(self, path: str) -> int:
        return os.stat(path).st_size

    def mkdir(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def fsync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _conforms(fs: OSFileSystem) -> FileSystem:
    return fs  # mypy checks here that OSFileSystem satisfies the port
