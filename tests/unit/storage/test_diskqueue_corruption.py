"""Damaged files and failing disks: what is detected, skipped, kept, and reported."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.storage.diskqueue import DiskQueue, DiskQueueSyncError, DiskQueueWriteError
from broker.storage.memfs import MemoryFileSystem
from broker.storage.segment import HEADER_SIZE
from tests.fakes import FakeClock, RecordingLogger
from tests.unit.storage.helpers import DATA, body, drain, open_queue

SEG0 = f"{DATA}/t.diskqueue.000000.dat"
SEG1 = f"{DATA}/t.diskqueue.000001.dat"
SEG2 = f"{DATA}/t.diskqueue.000002.dat"
META = f"{DATA}/t.diskqueue.meta.dat"
RECORD = HEADER_SIZE + 20  # the size on disk of body(i)


def filled(n: int, max_bytes_per_file: int = 1 << 20) -> MemoryFileSystem:
    """A file system holding a closed queue of ``n`` records."""
    fs = MemoryFileSystem()
    q = open_queue(fs, max_bytes_per_file=max_bytes_per_file)
    for i in range(n):
        q.put(body(i))
    q.close()
    return fs


def reopen(fs: MemoryFileSystem, logger: RecordingLogger | None = None, **kw: int) -> DiskQueue:
    return open_queue(fs, logger=logger, **kw)  # type: ignore[arg-type]


def logged(logger: RecordingLogger, level: str, text: str) -> bool:
    return any(lvl == level and text in msg for lvl, msg in logger.lines)


@pytest.mark.parametrize("offset", [HEADER_SIZE + 5, 0, 2, 5])
def test_a_damaged_middle_record_is_skipped_and_counted(offset: int) -> None:
    # Offsets: in the data (CRC mismatch), the length's high byte (implausible
    # length), the length's low bytes (plausible but wrong), the CRC.
    fs = filled(10)
    fs.flip_bit(SEG0, 4 * RECORD + offset, bit=3)
    logger = RecordingLogger()
    q = reopen(fs, logger)
    assert q.depth() == 10  # nothing told recovery; reading finds it
    got = drain(q)
    assert got == [body(i) for i in range(10) if i != 4]
    assert q.corrupt_skipped == 1
    assert q.depth() == 0
    assert logged(logger, "WARN", "skipped corrupt bytes")


def test_depth_is_recounted_when_a_record_is_skipped() -> None:
    fs = filled(10)
    fs.flip_bit(SEG0, 2 * RECORD + HEADER_SIZE)
    q = reopen(fs)
    assert q.read() == body(0)
    assert q.read() == body(1)
    assert q.read() == body(3)
    assert q.depth() == 6


def test_two_damaged_records_in_a_row_are_both_skipped() -> None:
    fs = filled(10)
    fs.overwrite(SEG0, 3 * RECORD, b"\xff" * (2 * RECORD))
    q = reopen(fs)
    assert drain(q) == [body(i) for i in range(10) if i not in (3, 4)]
    assert q.corrupt_skipped == 1


def test_a_damaged_first_record_of_a_later_segment_is_skipped() -> None:
    fs = filled(10, max_bytes_per_file=100)  # 4 records a file
    fs.flip_bit(SEG1, HEADER_SIZE + 1)
    q = reopen(fs, max_bytes_per_file=100)
    assert drain(q) == [body(i) for i in range(10) if i != 4]


def test_a_torn_record_at_the_end_is_cut_off_on_open() -> None:
    fs = filled(5)
    f = fs.open_append(SEG0)
    f.truncate(5 * RECORD - 7)
    f.close()
    logger = RecordingLogger()
    q = reopen(fs, logger)
    assert q.depth() == 4
    assert fs.file_size(SEG0) == 4 * RECORD
    assert logged(logger, "WARN", "cutting a torn record")
    q.put(body(5))
    assert drain(q) == [body(0), body(1), body(2), body(3), body(5)]
    assert q.corrupt_skipped == 0


def test_zeros_at_the_end_count_as_torn() -> None:
    fs = filled(3)
    f = fs.open_append(SEG0)
    f.write(bytes(100))
    f.close()
    q = reopen(fs)
    assert fs.file_size(SEG0) == 3 * RECORD
    assert drain(q) == [body(0), body(1), body(2)]


def test_a_segment_cut_short_in_the_middle_of_the_queue_loses_only_its_tail() -> None:
    fs = filled(10, max_bytes_per_file=100)
    f = fs.open_append(SEG1)
    f.truncate(2 * RECORD + 3)
    f.close()
    logger = RecordingLogger()
    q = reopen(fs, logger, max_bytes_per_file=100)
    assert drain(q) == [body(i) for i in range(10) if i not in (6, 7)]
    assert logged(logger, "WARN", "ends with a torn record")
    assert not any(n.endswith(".bad") for n in fs.listdir(DATA))
    assert q.depth() == 0


def test_a_missing_metadata_file_is_rebuilt_from_the_segments() -> None:
    fs = filled(10, max_bytes_per_file=100)
    q = reopen(fs, max_bytes_per_file=100)
    q.read()
    q.close()
    fs.remove(META)
    logger = RecordingLogger()
    q = reopen(fs, logger, max_bytes_per_file=100)
    # The read position is lost with it: the first file is read again.
    assert q.depth() == 10
    assert drain(q) == [body(i) for i in range(10)]
    assert logged(logger, "WARN", "missing; rebuilding")


def test_a_corrupt_metadata_file_is_detected_and_rebuilt() -> None:
    fs = filled(6, max_bytes_per_file=100)
    fs.flip_bit(META, 30)
    logger = RecordingLogger()
    q = reopen(fs, logger, max_bytes_per_file=100)
    assert q.depth() == 6
    assert drain(q) == [body(i) for i in range(6)]
    assert logged(logger, "ERROR", "checksum mismatch")


def test_go_nsqd_metadata_is_not_misread() -> None:
    fs = filled(3)
    f = fs.open_append(META)
    f.truncate(0)
    f.write(b"3\n0,0\n0,84\n")
    f.close()
    logger = RecordingLogger()
    q = reopen(fs, logger)
    assert drain(q) == [body(0), body(1), body(2)]
    assert logged(logger, "ERROR", "unusable")


def test_a_garbage_segment_is_renamed_bad_and_skipped() -> None:
    fs = filled(12, max_bytes_per_file=100)  # files 0, 1, 2 of 4 records
    rng = random.Random(7)
    fs.overwrite(SEG1, 0, bytes(rng.randrange(256) for _ in range(fs.file_size(SEG1))))
    logger = RecordingLogger()
    q = reopen(fs, logger, max_bytes_per_file=100)
    assert drain(q) == [body(i) for i in range(12) if not 4 <= i < 8]
    q.sync()
    assert "t.diskqueue.000001.dat.bad" in fs.listdir(DATA)
    assert q.bad_files == 1
    assert q.depth() == 0
    assert logged(logger, "ERROR", "saving it as")


def test_garbage_after_the_last_record_moves_writing_to_a_new_file() -> None:
    fs = filled(3)
    f = fs.open_append(SEG0)
    f.write(b"\x00\x00\x00\x14this is not a record at all")
    f.close()
    logger = RecordingLogger()
    q = reopen(fs, logger)
    q.put(body(3))
    assert SEG1.rpartition("/")[2] in fs.listdir(DATA)
    assert drain(q) == [body(0), body(1), body(2), body(3)]
    q.sync()
    assert "t.diskqueue.000000.dat.bad" in fs.listdir(DATA)


def test_an_unreadable_segment_is_renamed_bad_and_skipped() -> None:
    fs = filled(12, max_bytes_per_file=100)
    fs.fail_reads("000001")
    q = reopen(fs, max_bytes_per_file=100)
    assert drain(q) == [body(i) for i in range(12) if not 4 <= i < 8]
    q.sync()
    assert "t.diskqueue.000001.dat.bad" in fs.listdir(DATA)
    assert q.bad_files == 1


def test_an_unreadable_segment_at_open_is_renamed_bad() -> None:
    fs = filled(12, max_bytes_per_file=100)
    q = reopen(fs, max_bytes_per_file=100)
    q.put(body(12))
    q.close()
    # Recovery scans from the metadata's write position, in file 3.
    fs.fail_reads("000003")
    q = reopen(fs, max_bytes_per_file=100)
    assert "t.diskqueue.000003.dat.bad" in fs.listdir(DATA)
    assert q.bad_files == 1
    assert q.depth() == 12
    fs.fail_reads(None)
    assert drain(q) == [body(i) for i in range(12)]


def test_a_missing_middle_segment_is_skipped() -> None:
    fs = filled(12, max_bytes_per_file=100)
    fs.remove(SEG1)
    logger = RecordingLogger()
    q = reopen(fs, logger, max_bytes_per_file=100)
    assert drain(q) == [body(i) for i in range(12) if not 4 <= i < 8]
    assert logged(logger, "ERROR", "is missing")


@settings(max_examples=40, deadline=None)
@given(
    flips=st.lists(st.tuples(st.integers(0, 2), st.floats(0, 1, exclude_max=True), st.integers(0, 7)), max_size=30),
    cut=st.floats(0, 1),
)
def test_damage_never_raises_invents_or_reorders(flips: list[tuple[int, float, int]], cut: float) -> None:
    fs = filled(30, max_bytes_per_file=300)  # files 0, 1 and 2
    for num, where, bit in flips:
        path = f"{DATA}/t.diskqueue.00000{num}.dat"
        fs.flip_bit(path, int(where * fs.file_size(path)), bit)
    f = fs.open_append(SEG2)
    f.truncate(int(cut * f.size()))
    f.close()
    q = reopen(fs, max_bytes_per_file=300)
    got = drain(q)
    assert set(got) <= {body(i) for i in range(30)}
    assert got == sorted(set(got))  # bodies sort by their number: in order, no repeats
    assert q.depth() == 0
    if not flips:
        assert got[:22] == [body(i) for i in range(22)]


def test_a_failed_fsync_fails_its_waiters_and_writing_moves_on() -> None:
    fs = MemoryFileSystem()
    clock = FakeClock()
    q = open_queue(fs, clock)
    q.put(body(0))
    q.put(body(1))
    results: list[Exception | None] = []
    q.on_synced(results.append)
    fs.fail_fsync(1)
    clock.advance(0)
    assert len(results) == 1 and isinstance(results[0], OSError)
    assert q.fsync_errors == 1
    q.put(body(2))
    assert "t.diskqueue.000001.dat" in fs.listdir(DATA)
    q.on_synced(results.append)
    clock.advance(0)
    assert results[1] is None
    assert drain(q) == [body(0), body(1), body(2)]


def test_a_segment_whose_fsync_failed_is_never_appended_to_again() -> None:
    fs = MemoryFileSystem()
    q = open_queue(fs)
    q.put(body(0))
    fs.fail_fsync(1)
    with pytest.raises(DiskQueueSyncError):
        q.sync()
    q.close()
    logger = RecordingLogger()
    q = reopen(fs, logger)
    assert logged(logger, "WARN", "lost after a failed fsync")
    q.put(body(1))
    assert fs.file_size(SEG0) == RECORD
    assert fs.file_size(SEG1) == RECORD
    assert drain(q) == [body(0), body(1)]


def test_sync_raises_when_fsync_fails() -> None:
    fs = MemoryFileSystem()
    q = open_queue(fs)
    q.put(body(0))
    fs.fail_fsync(1)
    with pytest.raises(DiskQueueSyncError):
        q.sync()
    q.sync()  # the next one works, in a new file


def test_a_full_disk_refuses_the_put_and_leaves_no_partial_record() -> None:
    fs = MemoryFileSystem()
    q = open_queue(fs)
    q.put(body(0))
    fs.set_capacity(fs.used_bytes() + 10)
    with pytest.raises(DiskQueueWriteError):
        q.put(body(1))
    assert fs.file_size(SEG0) == RECORD
    assert q.depth() == 1
    fs.set_capacity(None)
    q.put(body(2))
    q.close()
    assert drain(reopen(fs)) == [body(0), body(2)]


def test_recovery_after_a_crash_mid_metadata_write_uses_the_old_metadata() -> None:
    fs = MemoryFileSystem()
    q = open_queue(fs)
    for i in range(4):
        q.put(body(i))
    q.sync()
    q.read()
    fs.crash_after(3)  # open the temporary file, truncate it, then stop at the write
    with pytest.raises(BaseException, match="crash_after"):
        q.sync()
    fs.crash(random.Random(1))
    q = reopen(fs)
    assert drain(q) == [body(i) for i in range(4)]
    assert not any(n.endswith(".tmp") for n in fs.listdir(DATA))
