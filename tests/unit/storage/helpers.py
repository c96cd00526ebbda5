"""Building disk queues on the in-memory file system, for the storage tests."""

from __future__ import annotations

from broker.ports import FileSystem
from broker.storage.diskqueue import DiskQueue
from tests.fakes import FakeClock, RecordingLogger

DATA = "/data"


def open_queue(
    fs: FileSystem,
    clock: FakeClock | None = None,
    logger: RecordingLogger | None = None,
    *,
    name: str = "t",
    data_path: str = DATA,
    max_bytes_per_file: int = 1024,
    sync_every: int = 2500,
    sync_timeout: float = 2.0,
    min_msg_size: int = 1,
    max_msg_size: int = 256,
    max_disk_bytes: int = 0,
    hold_reads: bool = False,
) -> DiskQueue:
    return DiskQueue(
        name,
        data_path,
        fs,
        clock or FakeClock(),
        logger or RecordingLogger(),
        max_bytes_per_file,
        sync_every,
        sync_timeout,
        min_msg_size,
        max_msg_size,
        max_disk_bytes,
        hold_reads,
    )


def drain(q: DiskQueue) -> list[bytes]:
    """Read until the queue says it is empty."""
    out = []
    while (data := q.read()) is not None:
        out.append(data)
    return out


def body(i: int, size: int = 20) -> bytes:
    """A distinct record of ``size`` bytes (at least 8)."""
    return b"%08d" % i + bytes((i + k) % 251 for k in range(size - 8))
