"""nsqlookupd's registration database: who produces which topic and channel.

A registration is a ``(category, key, subkey)`` triple, exactly as nsqlookupd
keys it:

* ``("client", "", "")`` holds every identified nsqd (``/nodes`` reads it),
* ``("topic", topic, "")`` holds the nsqds that have the topic,
* ``("channel", topic, channel)`` holds the nsqds that have the channel.

Each registration maps peer ids (the connection's remote address) to a
``Producer``: one per registration, all sharing the peer's ``PeerInfo``. So a
PING refreshes a peer everywhere at once, while a tombstone marks the peer for
one topic only.

A registration can exist with no producers: ``/topic/create`` makes one, and
removing a producer leaves the key behind, so a topic stays listed after its
last nsqd left until someone deletes it. Only an ``#ephemeral`` name is dropped
when its last producer unregisters, and that is the protocol's decision.

``"*"`` as a key or subkey in a query matches anything, as in Go; lookups with
no wildcard go straight to the key. Go iterates a map here, so its order is
random; ours is insertion order, which keeps the simulator deterministic.

Time is never read here: callers pass ``now`` (monotonic seconds from the Clock
port) and, for what ``/debug`` shows, the wall clock in nanoseconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = [
    "CHANNEL",
    "CLIENT",
    "GO_ZERO_TIME_UNIX_NANO",
    "TOPIC",
    "PeerInfo",
    "Producer",
    "Registration",
    "RegistrationDB",
    "filter_by_active",
]

CLIENT = "client"
TOPIC = "topic"
CHANNEL = "channel"

# What Go's time.Time{}.UnixNano() returns (the year-1 instant overflows int64),
# shown by /debug as tombstoned_at of a producer that was never tombstoned.
GO_ZERO_TIME_UNIX_NANO = -6795364578871345152


@dataclass(frozen=True, slots=True)
class Registration:
    category: str
    key: str
    subkey: str

    def is_match(self, category: str, key: str, subkey: str) -> bool:
        return (
            category == self.category
            and (key == "*" or key == self.key)
            and (subkey == "*" or subkey == self.subkey)
        )


@dataclass(slots=True, eq=False)
class PeerInfo:
    """An identified nsqd, as its IDENTIFY described it."""

    id: str  # the remote address of its connection: unique among live peers
    remote_address: str
    hostname: str
    broadcast_address: str
    tcp_port: int
    http_port: int
    version: str
    last_update: float  # Clock.now() of the IDENTIFY or latest PING
    last_update_ns: int  # the same instant on the wall clock, for /debug

    def touch(self, now: float, wall_ns: int) -> None:
        self.last_update = now
        self.last_update_ns = wall_ns


@dataclass(slots=True, eq=False)
class Producer:
    """A peer within one registration; a tombstone applies to this pairing only."""

    peer_info: PeerInfo
    tombstoned: bool = False
    tombstoned_at: float = 0.0
    tombstoned_at_ns: int = GO_ZERO_TIME_UNIX_NANO

    def tombstone(self, now: float, wall_ns: int) -> None:
        self.tombstoned = True
        self.tombstoned_at = now
        self.tombstoned_at_ns = wall_ns

    def is_tombstoned(self, lifetime: float, now: float) -> bool:
        """Tombstoned less than ``lifetime`` ago; afterwards it counts again, as in Go."""
        return self.tombstoned and now - self.tombstoned_at < lifetime


def filter_by_active(
    producers: Iterable[Producer], inactivity_timeout: float, tombstone_lifetime: float, now: float
) -> list[Producer]:
    """Producers heard from within ``inactivity_timeout`` and not freshly tombstoned."""
    return [
        p
        for p in producers
        if now - p.peer_info.last_update <= inactivity_timeout
        and not p.is_tombstoned(tombstone_lifetime, now)
    ]


class RegistrationDB:
    def __init__(self) -> None:
        self._registrations: dict[Registration, dict[str, Producer]] = {}
        # peer id -> the registrations it is a producer in (insertion ordered), so
        # that a disconnect or /nodes does not scan every registration.
        self._by_peer: dict[str, dict[Registration, None]] = {}

    def add_registration(self, k: Registration) -> None:
        self._registrations.setdefault(k, {})

    def add_producer(self, k: Registration, p: Producer) -> bool:
        """Add ``p`` under ``k`` (creating ``k``); False if its peer was already there."""
        producers = self._registrations.setdefault(k, {})
        peer_id = p.peer_info.id
        if peer_id in producers:
            return False
        producers[peer_id] = p
        self._by_peer.setdefault(peer_id, {})[k] = None
        return True

    def remove_producer(self, k: Registration, peer_id: str) -> tuple[bool, int]:
        """Remove the peer from ``k``; (whether it was there, producers left).

        The registration itself stays, even when empty.
        """
        producers = self._registrations.get(k)
        if producers is None:
            return False, 0
        removed = producers.pop(peer_id, None) is not None
        if removed:
            self._forget(peer_id, k)
        return removed, len(producers)

    def remove_registration(self, k: Registration) -> None:
        producers = self._registrations.pop(k, None)
        for peer_id in producers or ():
            self._forget(peer_id, k)

    def find_registrations(self, category: str, key: str, subkey: str) -> list[Registration]:
        if key != "*" and subkey != "*":
            k = Registration(category, key, subkey)
            return [k] if k in self._registrations else []
        return [k for k in self._registrations if k.is_match(category, key, subkey)]

    def find_producers(self, category: str, key: str, subkey: str) -> list[Producer]:
        """Producers of the matching registrations, one per peer (the first found)."""
        if key != "*" and subkey != "*":
            return list(self._registrations.get(Registration(category, key, subkey), {}).values())
        seen: dict[str, Producer] = {}
        for k, producers in self._registrations.items():
            if k.is_match(category, key, subkey):
                for peer_id, p in producers.items():
                    seen.setdefault(peer_id, p)
        return list(seen.values())

    def lookup_registrations(self, peer_id: str) -> list[Registration]:
        """Every registration the peer is a producer in."""
        return list(self._by_peer.get(peer_id, ()))

    def producer(self, k: Registration, peer_id: str) -> Producer | None:
        return self._registrations.get(k, {}).get(peer_id)

    def items(self) -> Iterator[tuple[Registration, list[Producer]]]:
        """Every registration with its producers, in insertion order (for /debug)."""
        for k, producers in self._registrations.items():
            yield k, list(producers.values())

    def _forget(self, peer_id: str, k: Registration) -> None:
        regs = self._by_peer.get(peer_id)
        if regs is not None:
            regs.pop(k, None)
            if not regs:
                del self._by_peer[peer_id]
