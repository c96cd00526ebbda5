"""Test only: ``python -m tests.integration.killing_nsqd [nsqd flags]``, an nsqd that dies mid-takeover.

The real daemon (``broker.apps.nsqd.main``) with one change: the file system
the Go takeover (``broker.nsqd.migrate.take_over``) is given counts its
changes (file creations and writes, truncates, fsyncs, renames, removals,
directory fsyncs).  With ``NSQSIM_TEST_KILL_AFTER=n`` in the environment the
process sends itself SIGKILL just before the n-th change, so the kill lands at
an exact step of the conversion, which no outside timing could hit.  Without
it the takeover runs whole and one line ``TEST: the takeover made K changes``
says how many steps there are to aim at.  Nothing of this is in the product:
it patches the module from outside, here.
"""

from __future__ import annotations

import os
import signal

from broker.apps import nsqd as app
from broker.nsqd import migrate
from broker.nsqd.options import Options
from broker.ports import File, FileSystem, Logger

KILL_AFTER = "NSQSIM_TEST_KILL_AFTER"


class _Steps:
    def __init__(self, kill_at: int) -> None:
        self.kill_at = kill_at
        self.count = 0

    def step(self) -> None:
        self.count += 1
        if self.count == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)


class _CountingFile:
    def __init__(self, file: File, steps: _Steps) -> None:
        self._file = file
        self._steps = steps

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._steps.step()
        self._file.write(data)

    def read_at(self, offset: int, size: int) -> bytes:
        return self._file.read_at(offset, size)

    def size(self) -> int:
        return self._file.size()

    def truncate(self, size: int) -> None:
        self._steps.step()
        self._file.truncate(size)

    def fsync(self) -> None:
        self._steps.step()
        self._file.fsync()

    def close(self) -> None:
        self._file.close()


class _CountingFileSystem:
    def __init__(self, fs: FileSystem, steps: _Steps) -> None:
        self._fs = fs
        self._steps = steps

    def open_append(self, path: str) -> File:
        self._steps.step()
        return _CountingFile(self._fs.open_append(path), self._steps)

    def open_read(self, path: str) -> File:
        return self._fs.open_read(path)

    def rename(self, src: str, dst: str) -> None:
        self._steps.step()
        self._fs.rename(src, dst)

    def remove(self, path: str) -> None:
        self._steps.step()
        self._fs.remove(path)

    def listdir(self, path: str) -> list[str]:
        return self._fs.listdir(path)

    def file_size(self, path: str) -> int:
        return self._fs.file_size(path)

    def mkdir(self, path: str) -> None:
        self._fs.mkdir(path)

    def fsync_dir(self, path: str) -> None:
        self._steps.step()
        self._fs.fsync_dir(path)


_take_over = migrate.take_over


def _counting_take_over(fs: FileSystem, opts: Options, logger: Logger, version: str) -> migrate.GoDirectory | None:
    steps = _Steps(int(os.environ.get(KILL_AFTER, "0")))
    found = _take_over(_CountingFileSystem(fs, steps), opts, logger, version)
    logger.log("INFO", f"TEST: the takeover made {steps.count} changes")
    return found


if __name__ == "__main__":
    migrate.take_over = _counting_take_over
    app.main()
