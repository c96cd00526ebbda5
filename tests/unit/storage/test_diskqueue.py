"""The disk queue's behaviour without faults: order, files, depth, syncing, reopening."""

from __future__ import annotations

import pytest

from broker.storage.diskqueue import (
    DiskQueueClosed,
    DiskQueueFull,
    InvalidMessageSize,
)
from broker.storage.memfs import MemoryFileSystem
from broker.storage.metadata import Metadata, read_metadata
from tests.fakes import FakeClock, RecordingLogger
from tests.unit.storage.helpers import DATA, body, drain, open_queue

META = f"{DATA}/t.diskqueue.meta.dat"


def segments(fs: MemoryFileSystem) -> list[str]:
    return [n for n in fs.listdir(DATA) if n.startswith("t.diskqueue.0")]


def test_reads_return_what_was_put_in_order() -> None:
    q = open_queue(MemoryFileSystem())
    records = [body(i) for i in range(50)]
    for r in records:
        q.put(r)
    assert q.depth() == 50
    assert drain(q) == records
    assert q.depth() == 0
    assert q.read() is None


def test_a_new_queue_is_empty_and_writes_only_its_metadata() -> None:
    # The metadata file is the queue's record of existence when nsqd.dat is lost.
    fs = MemoryFileSystem()
    q = open_queue(fs)
    assert q.depth() == 0
    assert q.read() is None
    assert fs.listdir(DATA) == [f"{q.name}.diskqueue.meta.dat"]
    assert open_queue(fs).depth() == 0


def test_segments_roll_past_max_bytes_per_file_with_nsqd_names() -> None:
    fs = MemoryFileSystem()
    # 20-byte records are 28 bytes on disk: a file takes 4 (112 >= 100).
    q = open_queue(fs, max_bytes_per_file=100)
    for i in range(10):
        q.put(body(i))
    assert segments(fs) == ["t.diskqueue.000000.dat", "t.diskqueue.000001.dat", "t.diskqueue.000002.dat"]
    assert [fs.file_size(f"{DATA}/{n}") for n in segments(fs)] == [112, 112, 56]
    assert drain(q) == [body(i) for i in range(10)]


def test_unread_lists_what_is_queued_across_segments_without_reading_it() -> None:
    q = open_queue(MemoryFileSystem(), max_bytes_per_file=100)
    for i in range(10):
        q.put(body(i))
    for _ in range(3):
        q.read()
    assert list(q.unread()) == [body(i) for i in range(3, 10)]
    assert q.depth() == 7
    assert drain(q) == [body(i) for i in range(3, 10)]
    assert list(q.unread()) == []


def test_finished_segments_are_removed_once_reading_passes_them() -> None:
    fs = MemoryFileSystem()
    q = open_queue(fs, max_bytes_per_file=100)
    for i in range(10):
        q.put(body(i))
    for _ in range(5):
        q.read()
    # The reader moved into the second file: the first is gone, after a sync.
    assert segments(fs) == ["t.diskqueue.000001.dat", "t.diskqueue.000002.dat"]
    meta = read_metadata(fs, META)
    assert meta is not None and meta.read_file == 1


def test_depth_counts_unread_records() -> None:
    q = open_queue(MemoryFileSystem(), max_bytes_per_file=100)
    for i in range(7):
        q.put(body(i))
    q.read()
    q.read()
    assert q.depth() == 5


def test_close_then_reopen_continues_where_reading_stopped() -> None:
    fs = MemoryFileSystem()
    q = open_queue(fs, max_bytes_per_file=100)
    for i in range(10):
        q.put(body(i))
    assert [q.read() for _ in range(3)] == [body(0), body(1), body(2)]
    q.close()

    q = open_queue(fs, max_bytes_per_file=100)
    assert q.depth() == 7
    q.put(body(10))
    assert drain(q) == [body(i) for i in range(3, 11)]


def test_reopen_appends_to_the_last_segment() -> None:
    fs = MemoryFileSystem()
    q = open_queue(fs)
    q.put(body(0))
    q.close()
    q = open_queue(fs)
    q.put(body(1))
    assert segments(fs) == ["t.diskqueue.000000.dat"]
    assert drain(q) == [body(0), body(1)]


def test_close_writes_metadata_with_positions_and_depth() -> None:
    fs = MemoryFileSystem()
    q = open_queue(fs, max_bytes_per_file=100)
    for i in range(6):
        q.put(body(i))
    q.read()
    q.close()
    assert read_metadata(fs, META) == Metadata(depth=5, read_file=0, read_pos=28, write_file=1, write_pos=56)


def test_records_put_after_the_last_metadata_write_are_found_on_reopen() -> None:
    fs = MemoryFileSystem()
    q = open_queue(fs)
    q.put(body(0))
    q.sync()
    q.put(body(1))
    q.put(body(2))
    # No close: the metadata still says one record; the segment says three.
    q2 = open_queue(fs)
    assert q2.depth() == 3
    assert drain(q2) == [body(0), body(1), body(2)]


def test_empty_drops_records_and_files() -> None:
    fs = MemoryFileSystem()
    q = open_queue(fs, max_bytes_per_file=100)
    for i in range(10):
        q.put(body(i))
    q.read()
    q.empty()
    assert q.depth() == 0
    assert q.read() is None
    assert segments(fs) == []
    q.put(body(99))
    q.close()
    q = open_queue(fs, max_bytes_per_file=100)
    assert drain(q) == [body(99)]


def test_delete_removes_every_file() -> None:
    fs = MemoryFileSystem()
    q = open_queue(fs, max_bytes_per_file=100)
    for i in range(10):
        q.put(body(i))
    q.sync()
    q.delete()
    assert fs.listdir(DATA) == []
    with pytest.raises(DiskQueueClosed):
        q.put(body(0))


def test_a_closed_queue_refuses_calls() -> None:
    q = open_queue(MemoryFileSystem())
    q.close()
    q.close()  # harmless
    with pytest.raises(DiskQueueClosed):
        q.put(body(0))
    with pytest.raises(DiskQueueClosed):
        q.read()
    assert not q.can_accept(1, 10)


def test_message_sizes_outside_the_bounds_are_refused() -> None:
    q = open_queue(MemoryFileSystem(), min_msg_size=4, max_msg_size=10)
    with pytest.raises(InvalidMessageSize):
        q.put(b"abc")
    with pytest.raises(InvalidMessageSize):
        q.put(b"x" * 11)
    q.put(b"abcd")
    q.put(b"x" * 10)
    assert q.depth() == 2


def test_a_zero_minimum_message_size_is_rejected() -> None:
    with pytest.raises(ValueError):
        open_queue(MemoryFileSystem(), min_msg_size=0)


def test_max_disk_bytes_refuses_puts_past_the_budget_and_frees_room_as_files_go() -> None:
    q = open_queue(MemoryFileSystem(), max_bytes_per_file=56, max_disk_bytes=112)
    for i in range(4):
        q.put(body(i))  # 4 x 28 bytes
    assert not q.can_accept(1, 20)
    with pytest.raises(DiskQueueFull):
        q.put(body(4))
    assert q.depth() == 4
    q.read()
    q.read()
    q.read()  # the first file is finished and removed
    assert q.can_accept(2, 40)
    q.put(body(4))
    assert drain(q) == [body(3), body(4)]


def test_sync_every_counts_puts_and_reads() -> None:
    fs = MemoryFileSystem()
    q = open_queue(fs, sync_every=4)
    for i in range(3):
        q.put(body(i))
    assert q.pending_sync_count() == 3
    q.read()  # the fourth operation
    assert q.pending_sync_count() == 0
    assert q.unsynced_read_count() == 0


def test_sync_timeout_syncs_an_idle_queue_once_then_arms_no_timer() -> None:
    clock = FakeClock()
    q = open_queue(MemoryFileSystem(), clock, sync_timeout=2.0)
    assert clock.pending() == 0
    q.put(body(0))
    q.put(body(1))
    assert clock.pending() == 1
    clock.advance(1.9)
    assert q.pending_sync_count() == 2
    clock.advance(0.1)
    assert q.pending_sync_count() == 0
    assert clock.pending() == 0


def test_on_synced_waiters_of_one_turn_share_one_fsync() -> None:
    fs = MemoryFileSystem()
    clock = FakeClock()
    q = open_queue(fs, clock)
    q.put(body(0))
    q.sync()
    for i in range(1, 5):
        q.put(body(i))
    results: list[Exception | None] = []
    for _ in range(3):
        q.on_synced(results.append)
    assert results == []  # called back later, never from inside on_synced
    before = fs.fsyncs
    clock.advance(0)
    assert results == [None, None, None]
    assert fs.fsyncs - before == 1
    assert q.pending_sync_count() == 0


def test_on_synced_covers_a_new_segment_name_too() -> None:
    fs = MemoryFileSystem()
    clock = FakeClock()
    q = open_queue(fs, clock)
    before = fs.fsyncs  # opening a new queue wrote its metadata
    q.put(body(0))
    results: list[Exception | None] = []
    q.on_synced(results.append)
    clock.advance(0)
    assert results == [None]
    assert fs.fsyncs - before == 2  # the segment and its directory


def test_on_synced_with_nothing_pending_needs_no_fsync() -> None:
    fs = MemoryFileSystem()
    clock = FakeClock()
    q = open_queue(fs, clock)
    q.put(body(0))
    q.sync()
    before = fs.fsyncs
    results: list[Exception | None] = []
    q.on_synced(results.append)
    clock.advance(0)
    assert results == [None]
    assert fs.fsyncs == before


def test_close_answers_waiters() -> None:
    clock = FakeClock()
    q = open_queue(MemoryFileSystem(), clock)
    q.put(body(0))
    results: list[Exception | None] = []
    q.on_synced(results.append)
    q.close()
    assert results == [None]
    clock.advance(0)
    assert results == [None]


def test_delete_fails_waiters() -> None:
    q = open_queue(MemoryFileSystem())
    q.put(body(0))
    results: list[Exception | None] = []
    q.on_synced(results.append)
    q.delete()
    assert len(results) == 1 and isinstance(results[0], DiskQueueClosed)


def test_unsynced_read_count_is_what_a_crash_would_deliver_again() -> None:
    q = open_queue(MemoryFileSystem())
    for i in range(3):
        q.put(body(i))
    q.read()
    q.read()
    assert q.unsynced_read_count() == 2
    q.sync()
    assert q.unsynced_read_count() == 0


def test_interleaved_puts_and_reads_across_rolls() -> None:
    # The reader keeps up with the writer, so records come from the tail cache,
    # across segment boundaries and back to the files when it falls behind.
    fs = MemoryFileSystem()
    q = open_queue(fs, max_bytes_per_file=100)
    expected: list[bytes] = []
    got: list[bytes] = []
    n = 0
    for burst in [1, 1, 3, 1, 7, 2, 1, 1, 5]:
        for _ in range(burst):
            q.put(body(n))
            expected.append(body(n))
            n += 1
        for _ in range(burst - 1 if burst > 1 else 1):
            data = q.read()
            assert data is not None
            got.append(data)
    got += drain(q)
    assert got == expected
    assert q.depth() == 0


def test_logs_name_the_queue_as_nsqd_does() -> None:
    logger = RecordingLogger()
    q = open_queue(MemoryFileSystem(), logger=logger, name="topic:chan")
    q.put(body(0))
    q.close()
    assert logger.lines
    assert all(msg.startswith("DISKQUEUE(topic:chan): ") for _, msg in logger.lines)


def test_an_empty_data_path_means_the_current_directory() -> None:
    fs = MemoryFileSystem()
    q = open_queue(fs, data_path="")
    q.put(body(0))
    q.close()
    assert "t.diskqueue.000000.dat" in fs.listdir(".")
