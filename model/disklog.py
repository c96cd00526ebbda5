"""A disk queue as the model sees it: records, a read position, and what is fsynced.

The broker's disk queue (``broker/storage/diskqueue.py``) is segment files, a
metadata file and group commits; what matters for delivery guarantees is less:

* records are appended in order and read in order;
* a record is on the medium once an fsync covered it (``synced``);
* the read position is on the medium only as of the last metadata sync, and
  a crash restarts reading there: records read since come back;
* a disk-only channel ("held reads") keeps its durable read position at the
  oldest record a message it still holds came from, so those come back too.

A ``Log`` therefore keeps only the records from the durable read position on:
index 0 is where reading restarts after a crash.  A sync (data and metadata
together, as the queue's ``_sync`` does) moves that base forward and the
indices with it; a group commit (``on_synced``, durable publishing) fsyncs the
data only.  Records before the base are gone for good, which is what keeps the
state space finite.

Time in records is relative: ``due`` is the number of ticks until a deferred
record may be delivered (0: now, or not deferred), counted down by each tick.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Log", "Rec", "after_crash", "append", "dedupe", "group_commit", "synced", "tick"]


class Rec(NamedTuple):
    """One record: a message, the attempts it had when written, and its due time.

    ``stale``: read again after a restart, but an earlier record of the same
    message was read first; it is let go when read (see ``dedupe``).
    """

    msg: int
    attempts: int
    due: int = 0
    stale: bool = False


class Log(NamedTuple):
    records: tuple[Rec, ...] = ()
    read: int = 0  # records[:read] have been read
    synced: int = 0  # records[:synced] are on the medium
    written: bool = False  # this process has appended: an fsync of the file covers every record

    @property
    def unread(self) -> tuple[Rec, ...]:
        """The records still to be read (stale ones included: they count in the depth)."""
        return self.records[self.read :]

    def holds(self, m: int) -> bool:
        """Whether a record still to be read will deliver ``m``."""
        return any(r.msg == m and not r.stale for r in self.records[self.read :])

    @property
    def unsynced(self) -> int:
        return len(self.records) - self.synced


def append(log: Log, rec: Rec) -> Log:
    return Log((*log.records, rec), log.read, log.synced, True)


def group_commit(log: Log) -> Log:
    """Fsync the data: every record written so far is on the medium; the read position is not.

    Only if this process has appended since it opened the queue: the queue
    fsyncs when it has puts pending, so records a killed process wrote and never
    fsynced stay in the page cache only, until the next put is fsynced with them.
    """
    return log._replace(synced=len(log.records)) if log.written else log


def synced(log: Log, base: int) -> tuple[Log, int]:
    """Fsync data (see ``group_commit``) and metadata, with the durable read position at ``base``.

    Returns the new log and the shift to apply to indices into the old one
    (an index below ``base`` no longer names a record a crash would bring back).
    """
    n = len(log.records) if log.written else log.synced
    return Log(log.records[base:], log.read - base, max(0, n - base), log.written), base


def after_crash(log: Log, keep_unsynced: int | None) -> Log:
    """The log as the next process finds it.

    ``keep_unsynced`` is None for a process kill (the operating system still has
    every byte written) or, for a power loss, how many of the records no fsync
    covered survive: a prefix, since a file loses a suffix of its unsynced tail
    (a torn record is cut off by recovery).  Reading restarts at the base.
    """
    if keep_unsynced is None:
        return Log(log.records, 0, log.synced)
    n = log.synced + keep_unsynced
    return Log(log.records[:n], 0, n)


def dedupe(log: Log) -> Log:
    """After a restart: of the records of one message read again, only the first counts.

    A queue can hold two records of one message from before a restart: a
    message requeued with a delay is written anew (disk-only), a timed-out one
    spills again (default mode), and the older record comes back when the
    restart reads from a read position that was not yet durable.  Delivering
    both would put one message in flight twice on one channel, or deliver it
    again after a FIN accepted since the restart; so the later ones are let go
    when the reader reaches them.
    """
    seen: set[int] = set()
    out = []
    for r in log.records:
        out.append(r._replace(stale=r.msg in seen))
        seen.add(r.msg)
    return log._replace(records=tuple(out))


def tick(log: Log) -> Log:
    if not any(r.due for r in log.records):
        return log
    return log._replace(records=tuple(r._replace(due=r.due - 1) if r.due else r for r in log.records))
