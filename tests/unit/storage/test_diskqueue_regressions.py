"""Counterexamples the crash state machine found, pinned as plain tests.

Each crash here loses everything a crash may lose (every random choice of the
crash model is 0: no unsynced byte and no undone directory change survives).
"""

from __future__ import annotations

import pytest

from broker.storage.diskqueue import DiskQueueSyncError
from broker.storage.memfs import MemoryFileSystem
from tests.unit.storage.helpers import body, drain, open_queue


class LoseEverything:
    """A ``Random`` whose every choice makes a crash lose all it may."""

    def random(self) -> float:
        return 0.0

    def randrange(self, n: int) -> int:
        return 0


def test_records_read_before_a_failed_fsync_are_not_delivered_again() -> None:
    # The read position was synced past a record whose fsync failed; the crash
    # took that record, leaving the file shorter than the read position.
    # Recovery used to restart the file from 0, delivering r0 a second time.
    fs = MemoryFileSystem()
    q = open_queue(fs, max_bytes_per_file=33, sync_every=3)
    q.put(body(0, 8))
    q.close()
    q = open_queue(fs, max_bytes_per_file=33, sync_every=3)
    assert q.read() == body(0, 8)
    q.put(body(1, 8))
    fs.fail_fsync(1)
    with pytest.raises(DiskQueueSyncError):
        q.sync()
    assert q.read() == body(1, 8)
    q.close()
    fs.crash(LoseEverything())
    q = open_queue(fs, max_bytes_per_file=33, sync_every=3)
    assert q.depth() == 0
    assert drain(q) == []


def test_a_recount_does_not_clear_the_doubt_about_a_segment_whose_fsync_failed() -> None:
    # Reopening without a crash recounted the failed segment's records (still
    # in the cache) and then forgot they were not durable: after a crash, the
    # depth counted a record that was gone.
    fs = MemoryFileSystem()
    q = open_queue(fs, max_bytes_per_file=33, sync_every=2)
    q.put(body(0, 8))
    q.close()
    q = open_queue(fs, max_bytes_per_file=33, sync_every=2)
    q.put(body(1, 8))
    fs.fail_fsync(1)
    with pytest.raises(DiskQueueSyncError):
        q.sync()
    assert q.read() == body(0, 8)
    q.put(body(2, 8))  # into a new file, and synced (the second operation)
    q.close()
    q = open_queue(fs, max_bytes_per_file=33, sync_every=2)
    q.close()
    fs.crash(LoseEverything())
    q = open_queue(fs, max_bytes_per_file=33, sync_every=2)
    assert q.depth() == 1
    assert drain(q) == [body(2, 8)]


def test_records_a_killed_process_left_unsynced_are_fsynced_when_the_queue_opens() -> None:
    # Found by the model's refinement check: after a kill -9 (the page cache
    # survives), the new process counted nothing as pending, so neither its
    # sync timer nor sync() fsynced the dead process's last records and a later
    # power loss took them, however long they had been acknowledged.
    fs = MemoryFileSystem()
    q = open_queue(fs, sync_every=100)
    for i in range(3):
        q.put(body(i, 8))
    q.sync()
    for i in range(3, 6):
        q.put(body(i, 8))
    del q  # kill -9: no close, nothing more fsynced
    open_queue(fs, sync_every=100)
    fs.crash(LoseEverything())
    assert drain(open_queue(fs, sync_every=100)) == [body(i, 8) for i in range(6)]
