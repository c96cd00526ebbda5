"""Where a topic or channel puts messages its memory queue has no room for.

nsqd calls this the backend queue.  A durable topic or channel spills to a disk
queue (``broker/storage``); an ephemeral one has a backend that drops what it
is given, as nsqd's dummy backend does, and counts what it dropped.  Until a
disk queue is configured, a durable topic or channel has ``NoBackend``, which
has no room at all: past ``--mem-queue-size`` a publish is refused with
E_PUB_FAILED rather than acknowledged and silently lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from broker.storage.diskqueue import DiskQueue
from broker.storage.diskqueue import DiskQueueError as BackendError

__all__ = ["BackendError", "BackendQueue", "DroppingBackend", "NoBackend", "durability_stats", "is_durable"]


class BackendQueue(Protocol):
    def can_accept(self, count: int, nbytes: int) -> bool:
        """Whether ``count`` records totalling ``nbytes`` would be taken now (MPUB is all or nothing)."""
        ...

    def put(self, record: bytes, *, bounded: bool = True) -> None:
        """Append a record; raises ``BackendError`` if it cannot (callers ask ``can_accept`` first).

        ``bounded=False`` writes past ``--max-disk-bytes-per-queue``: for messages
        already accepted (a clean exit saving what memory holds), which the bound
        on new publishes must never cost.
        """
        ...

    def read(self) -> bytes | None:
        """The next record, or None when empty."""
        ...

    def depth(self) -> int: ...

    def sync(self) -> None:
        """Make every record put, and the read position, durable now."""
        ...

    def read_position(self) -> tuple[int, int]:
        """Where the record last returned by ``read`` starts."""
        ...

    def end_at_open(self) -> tuple[int, int]:
        """Where the records found when the queue was opened end."""
        ...

    def commit(self, oldest_needed: tuple[int, int] | None) -> None:
        """Hold the durable read position at the oldest record still needed (None: none is)."""
        ...

    def on_synced(self, callback: Callable[[Exception | None], None]) -> None:
        """Call ``callback(None)`` once every record put so far is durable, or ``callback(error)``."""
        ...

    def empty(self) -> None:
        """Drop every record."""
        ...

    def close(self) -> None:
        """Make what is held durable and release it."""
        ...

    def delete(self) -> None:
        """Drop every record and whatever holds them."""
        ...


class NoBackend:
    """No room at all: the memory queue is all there is."""

    def can_accept(self, count: int, nbytes: int) -> bool:
        return False

    def put(self, record: bytes, *, bounded: bool = True) -> None:
        raise BackendError("no backend queue: memory queue full")

    def read(self) -> bytes | None:
        return None

    def depth(self) -> int:
        return 0

    def sync(self) -> None:
        pass

    def read_position(self) -> tuple[int, int]:
        return (0, 0)

    def end_at_open(self) -> tuple[int, int]:
        return (0, 0)

    def commit(self, oldest_needed: tuple[int, int] | None) -> None:
        pass

    def on_synced(self, callback: Callable[[Exception | None], None]) -> None:
        callback(BackendError("no backend queue: nothing is durable"))

    def empty(self) -> None:
        pass

    def close(self) -> None:
        pass

    def delete(self) -> None:
        pass


class DroppingBackend(NoBackend):
    """An ephemeral topic's or channel's overflow: accepted and dropped, as nsqd does."""

    def __init__(self) -> None:
        self.dropped = 0

    def can_accept(self, count: int, nbytes: int) -> bool:
        return True

    def put(self, record: bytes, *, bounded: bool = True) -> None:
        self.dropped += 1


def is_durable(backend: BackendQueue) -> bool:
    """Whether records put to ``backend`` survive a restart."""
    return not isinstance(backend, NoBackend)


def durability_stats(backend: BackendQueue) -> dict[str, int]:
    """What /stats adds to nsqd's figures so a user can judge what a crash would cost.

    ``unsynced_count``: messages put (so acknowledged, unless --durable-publish)
    that no fsync covers yet, which a power loss may take; ``unsynced_read_count``:
    messages read whose reading is not yet durable (a crash delivers them again);
    ``corrupt_skipped`` and ``bad_files``: damage found and stepped over;
    ``dropped_count``: messages an ephemeral queue had no room for.
    """
    out = {"unsynced_count": 0, "unsynced_read_count": 0, "corrupt_skipped": 0, "bad_files": 0, "dropped_count": 0}
    if isinstance(backend, DroppingBackend):
        out["dropped_count"] = backend.dropped
    elif isinstance(backend, DiskQueue):
        out["unsynced_count"] = backend.pending_sync_count()
        out["unsynced_read_count"] = backend.unsynced_read_count()
        out["corrupt_skipped"] = backend.corrupt_skipped
        out["bad_files"] = backend.bad_files
    return out
