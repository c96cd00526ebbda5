"""The disk queue against a list model, with crashes injected between and inside calls.

The relation checked
--------------------
Number the records put r0, r1, ... in order.  A record is *durable* once an
fsync covered it: ``pending_sync_count()`` counts the puts that are not, and
they are always the latest ones, except that a record whose fsync failed is
never durable.  A record is *read-synced* once it was read and metadata
written after that read is durable: ``unsynced_read_count()`` counts the reads
that are not, again the latest ones.

After a crash and reopen, reading the queue to its end yields, in put order and
without repeats, a subsequence of the records that were not read-synced, and
that subsequence contains every durable one (including durable records that
were read but not read-synced: they are delivered again).  Records neither
durable nor read-synced may appear or not.  A record is never invented and
never out of order.  When a crash interrupts a call, what that call was doing
is unknown: the record being put may or may not exist, the reads since the
last metadata sync may or may not be delivered again, and so may the record
being read (the first certain one, or an uncertain one before it).

The model keeps, in order, every record that may still come out of the queue,
each marked *certain* (must come out) or not.  A read must return the first
certain record or an uncertain one before it (those skipped are gone), and an
empty read is allowed only when no certain record is left.  Between crashes
every record is certain and the relation is plain FIFO.  ``depth()`` must lie
between the number of certain unread records and the number of unread ones.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from hypothesis import note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from broker.storage.diskqueue import DiskQueue, DiskQueueSyncError, DiskQueueWriteError
from broker.storage.memfs import MemoryFileSystem, SimulatedCrash
from tests.fakes import FakeClock, RecordingLogger
from tests.unit.storage.helpers import body, open_queue


@dataclass
class Entry:
    data: bytes
    certain: bool = True  # must be delivered; False: may have been lost in a crash
    read: bool = False  # delivered, and the read not yet synced
    durable: bool = False
    doomed: bool = False  # its fsync failed: never durable


class DiskQueueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.fs = MemoryFileSystem()
        self.logger = RecordingLogger()
        self.entries: list[Entry] = []
        self.puts: list[Entry] = []  # this incarnation's puts, in order
        self.next_id = 0
        self.max_bytes = 100
        self.sync_every = 3
        self.clock = FakeClock()
        self.q: DiskQueue | None = None

    @initialize(max_bytes=st.integers(30, 300), sync_every=st.integers(1, 10))
    def setup(self, max_bytes: int, sync_every: int) -> None:
        self.max_bytes = max_bytes
        self.sync_every = sync_every
        self._reopen()

    # ---- operations ------------------------------------------------------

    @rule(size=st.integers(8, 48))
    def put(self, size: int) -> None:
        self._put(size)

    @rule()
    def read(self) -> None:
        self._read()

    @rule()
    def sync(self) -> None:
        self._queue().sync()

    @rule(dt=st.sampled_from([0.0, 1.0, 2.5]))
    def advance_time(self, dt: float) -> None:
        self.clock.advance(dt)

    @rule()
    def on_synced(self) -> None:
        results: list[Exception | None] = []
        self._queue().on_synced(results.append)
        self.clock.advance(0)
        assert len(results) == 1
        if results[0] is None:
            assert self._queue().pending_sync_count() == 0

    @rule()
    def close_and_reopen(self) -> None:
        self._queue().close()
        self._closed_cleanly()
        self._reopen()

    @rule(rng=st.randoms(use_true_random=False, note_method_calls=True))
    def crash(self, rng: random.Random) -> None:
        note("crash")
        self.fs.crash(rng)
        self._crashed()
        self._reopen()

    @rule(
        op=st.sampled_from(["put", "read", "sync", "timer", "commit", "close", "reopen"]),
        n=st.integers(1, 12),
        rng=st.randoms(use_true_random=False, note_method_calls=True),
    )
    def crash_inside(self, op: str, n: int, rng: random.Random) -> None:
        note(f"crash during {op} at mutation {n}")
        if op == "reopen":
            self.fs.crash(rng)
            self._crashed()
            self.fs.crash_after(n)
            try:
                self._reopen()
            except SimulatedCrash:
                self.fs.crash(rng)
                self._reopen()
            self.fs.cancel_crash()
            return
        size = 8 + n
        self.fs.crash_after(n)
        try:
            if op == "put":
                self._put(size)
            elif op == "read":
                self._read()
            elif op == "sync":
                self._queue().sync()
            elif op == "timer":
                self.clock.advance(2.5)
            elif op == "commit":
                self._queue().on_synced(lambda err: None)
                self.clock.advance(0)
            else:
                self._queue().close()
                self._closed_cleanly()
        except SimulatedCrash:
            self.fs.crash(rng)
            putting = body(self.next_id, size) if op == "put" else None
            self._crashed(interrupted=True, putting=putting, reading=op == "read")
            self._reopen()
            return
        self.fs.cancel_crash()
        if op == "close":
            self._reopen()

    @precondition(lambda self: self.q is not None and self.q.pending_sync_count() > 0)
    @rule()
    def fsync_fails(self) -> None:
        q = self._queue()
        pending = q.pending_sync_count()
        self.fs.fail_fsync(1)
        with pytest.raises(DiskQueueSyncError):
            q.sync()
        for e in self.puts[len(self.puts) - pending :]:
            e.doomed = True

    @rule(size=st.integers(8, 48), room=st.integers(0, 60))
    def put_on_full_disk(self, size: int, room: int) -> None:
        self.fs.set_capacity(self.fs.used_bytes() + room)
        try:
            self._put(size)
        except DiskQueueWriteError:
            note("put refused: disk full")
            self.next_id += 1
        finally:
            self.fs.set_capacity(None)

    # ---- checks ----------------------------------------------------------

    @invariant()
    def depth_is_consistent(self) -> None:
        if self.q is None:
            return
        self._observe()
        unread = [e for e in self.entries if not e.read]
        certain = sum(e.certain for e in unread)
        assert certain <= self.q.depth() <= len(unread), (self.q.depth(), certain, len(unread))

    def teardown(self) -> None:
        self.fs.cancel_crash()
        if self.q is not None:
            while self._read():
                pass

    # ---- the model -------------------------------------------------------

    def _queue(self) -> DiskQueue:
        assert self.q is not None
        return self.q

    def _reopen(self) -> None:
        # A fresh clock: the crashed queue's timers must not fire into the new one.
        self.q = None
        self.clock = FakeClock()
        self.q = open_queue(
            self.fs,
            self.clock,
            self.logger,
            max_bytes_per_file=self.max_bytes,
            sync_every=self.sync_every,
            max_msg_size=64,
        )
        self.puts = []

    def _put(self, size: int) -> None:
        data = body(self.next_id, size)
        self._queue().put(data)
        self.next_id += 1
        e = Entry(data)
        self.entries.append(e)
        self.puts.append(e)

    def _read(self) -> bool:
        got = self._queue().read()
        first = next((i for i, e in enumerate(self.entries) if not e.read), len(self.entries))
        if got is None:
            lost = [e for e in self.entries[first:] if e.certain]
            assert not lost, f"queue empty but {lost[0].data[:8]!r} was not delivered"
            del self.entries[first:]
            return False
        j = first
        while j < len(self.entries) and self.entries[j].data != got:
            assert not self.entries[j].certain, f"{got[:8]!r} delivered before {self.entries[j].data[:8]!r}"
            j += 1
        assert j < len(self.entries), f"{got[:8]!r} delivered but not expected (invented, repeated or reordered)"
        del self.entries[first:j]
        e = self.entries[first]
        e.read = True
        if not e.certain:
            # It survived the crash, so it is on the disk that came back.
            e.certain = e.durable = True
        return True

    def _observe(self) -> None:
        """Learn from the queue what became durable and which reads were synced."""
        q = self._queue()
        pending = q.pending_sync_count()
        assert pending <= len(self.puts)
        for e in self.puts[: len(self.puts) - pending]:
            if not e.doomed:
                e.durable = True
        read = sum(e.read for e in self.entries)
        synced = read - q.unsynced_read_count()
        assert synced >= 0
        assert all(e.read for e in self.entries[:synced])
        del self.entries[:synced]

    def _closed_cleanly(self) -> None:
        self.entries = [e for e in self.entries if not e.read]
        for e in self.entries:
            e.durable = e.durable or (e.certain and not e.doomed)

    def _crashed(self, *, interrupted: bool = False, putting: bytes | None = None, reading: bool = False) -> None:
        """What may survive a crash; the other arguments describe the call it interrupted."""
        if reading:
            # The read was taking the first record really there: the first
            # certain one, or one of the uncertain ones before it.
            for e in self.entries:
                if not e.read:
                    was_certain = e.certain
                    e.certain = False
                    if was_certain:
                        break
        for e in self.entries:
            if e.read and interrupted:
                e.certain = False
            e.read = False
            e.certain = e.certain and e.durable
            e.durable = e.certain
        if putting is not None:
            self.next_id += 1
            self.entries.append(Entry(putting, certain=False))
        self.q = None


DiskQueueMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
TestDiskQueueCrashes = DiskQueueMachine.TestCase
