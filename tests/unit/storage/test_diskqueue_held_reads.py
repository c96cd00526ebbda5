"""Held reads: the durable read position waits at the oldest record its owner still needs."""

from __future__ import annotations

import random

from broker.storage.memfs import MemoryFileSystem
from tests.fakes import FakeClock
from tests.unit.storage.helpers import DATA, body, drain, open_queue


def test_a_crash_delivers_again_from_the_oldest_record_still_needed() -> None:
    fs = MemoryFileSystem()
    fs.mkdir(DATA)
    clock = FakeClock()
    q = open_queue(fs, clock, hold_reads=True, sync_every=1)
    for i in range(5):
        q.put(body(i))
    pos = []
    for i in range(5):
        assert q.read() == body(i)
        pos.append(q.read_position())
    assert pos == sorted(pos) and len(set(pos)) == 5
    q.commit(pos[2])  # 0 and 1 are done; 2 onward still needed
    fs.crash(random.Random(3))
    q = open_queue(fs, clock, hold_reads=True, sync_every=1)
    assert q.depth() == 3
    assert drain(q) == [body(2), body(3), body(4)]


def test_commit_none_lets_every_read_record_go() -> None:
    fs = MemoryFileSystem()
    fs.mkdir(DATA)
    clock = FakeClock()
    q = open_queue(fs, clock, hold_reads=True, sync_every=1)
    for i in range(3):
        q.put(body(i))
    assert drain(q) == [body(0), body(1), body(2)]
    q.commit(None)
    fs.crash(random.Random(4))
    q = open_queue(fs, clock, hold_reads=True, sync_every=1)
    assert drain(q) == []


def test_without_held_reads_reading_is_consuming() -> None:
    fs = MemoryFileSystem()
    fs.mkdir(DATA)
    clock = FakeClock()
    q = open_queue(fs, clock, sync_every=1)
    for i in range(3):
        q.put(body(i))
    assert drain(q) == [body(0), body(1), body(2)]
    fs.crash(random.Random(5))
    q = open_queue(fs, clock, sync_every=1)
    assert drain(q) == []


def test_held_segments_are_kept_until_the_position_passes_them() -> None:
    fs = MemoryFileSystem()
    fs.mkdir(DATA)
    clock = FakeClock()
    q = open_queue(fs, clock, hold_reads=True, sync_every=1, max_bytes_per_file=100)
    for i in range(12):
        q.put(body(i))
    pos = []
    for i in range(12):
        assert q.read() == body(i)
        pos.append(q.read_position())
    assert pos[0][0] < pos[-1][0]  # the records span several segments
    q.commit(pos[0])  # the first is still needed: nothing may be removed
    q.sync()
    assert f"t.diskqueue.{pos[0][0]:06d}.dat" in fs.listdir(DATA)
    q.commit(pos[11])
    q.sync()
    assert f"t.diskqueue.{pos[0][0]:06d}.dat" not in fs.listdir(DATA)
    fs.crash(random.Random(6))
    q = open_queue(fs, clock, hold_reads=True, sync_every=1, max_bytes_per_file=100)
    assert drain(q) == [body(11)]
