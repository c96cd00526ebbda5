"""The history format the checker reads: what clients saw, what faults happened.

A history is a list of events in the order they happened.  Each is a plain
dict (a JSON object per line in a file, as ``nsqsim/history.py`` writes them)
or an ``Event``; ``events(raw)`` turns either into ``Event`` objects.  Every
event has ``t`` (seconds, any clock that only moves forward) and ``type``.
Unknown types and unknown keys are ignored, so a recorder may add its own.

Nodes and messages
------------------
``nsqd`` names the node (``host`` is accepted for it, as nsqsim writes node
events).  A message is named by its ``key``: whatever the producer put in
the body to recognise it (nsqsim: ``<producer>:<seq>``), since nsqd's answer
to PUB carries no id; ``id`` is nsqd's message id where known.  A FIN, REQ or
TOUCH may give the ``id`` alone: the key is then that of the delivery with
that id.

Types and their fields
----------------------
=====================  ======================================================
``node``               nsqd, mem_queue_size (int), durable_publish (bool),
                       sync_every (int), persistent (bool: has a data path):
                       the durability settings of one nsqd.  Without one a
                       node is taken to be in default mode with a data path.
                       (nsqsim's ``run`` event, with ``nodes: {name: {...}}``
                       holding the same keys, is read the same way.)
``publish``            nsqd, topic, key, defer_ms (0: PUB): a producer sent it
``publish_ok``         key: nsqd acknowledged it
``publish_failed``     key, error: refused, or the outcome is unknown
``subscribed``         consumer, nsqd, topic, channel, sample_rate (optional)
``channel_created``,   nsqd, topic, channel: an operator created, deleted or
``channel_deleted``,   emptied a channel (HTTP or nsqadmin)
``channel_emptied``
``deliver``            consumer, nsqd, topic, channel, key, id, attempts
``fin``, ``req``,      consumer, nsqd, channel, key or id; ``req`` has delay_ms
``touch``
``error``              consumer, nsqd, error (nsqd's text, e.g.
                       ``E_FIN_FAILED FIN <id> failed ...``)
``timeout``            nsqd, channel, key: nsqd timed it out (broker side;
                       informational: a redelivery with no answer is a timeout)
``disconnected``       who, nsqd: a client's connection ended
``consumer_crash``     consumer
``crash``              nsqd, kind: ``kill`` (the process died; the OS keeps
                       what it wrote) or ``power`` (only fsynced bytes
                       survive; the default, as nsqsim's crash is both)
``stop``, ``start``    nsqd: a clean exit; a start after a stop or crash
``restart``            nsqd: a clean exit and start in one event
``partition``,         informational: where the network was cut and mended
``heal``
``disk_fault``         nsqd, fault: with ``fault`` = ``bitflip``, the disk rotted
                       (records may be lost: checksums catch it)
``exception``          error: something escaped the broker (always a violation)
``fsync``              nsqd, topic, channel ("" for the topic's own queue),
                       keys: these messages' records are known to be fsynced
                       in that queue (optional; tightens the loss rules)
``final``              nsqd, topic, channel, depth, in_flight, deferred: the
                       channel at the end, as /stats shows it
``end``                the last event
=====================  ======================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Event", "NodeSettings", "events"]


@dataclass(frozen=True)
class Event:
    t: float
    type: str
    nsqd: str = ""
    topic: str = ""
    channel: str = ""
    key: str = ""
    id: str = ""
    consumer: str = ""
    attempts: int = 0
    defer_ms: int = 0
    delay_ms: int = 0
    kind: str = ""
    error: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Event:
        known = {k: raw[k] for k in _FIELDS if k in raw and raw[k] is not None}
        if "nsqd" not in known and isinstance(raw.get("host"), str):
            known["nsqd"] = raw["host"]
        if "consumer" not in known and raw.get("type") == "disconnected" and isinstance(raw.get("who"), str):
            known["consumer"] = raw["who"]
        extra = {k: v for k, v in raw.items() if k not in _FIELDS}
        return cls(t=float(raw["t"]), type=str(raw["type"]), **known, extra=extra)


_FIELDS = ("nsqd", "topic", "channel", "key", "id", "consumer", "attempts", "defer_ms", "delay_ms", "kind", "error")


@dataclass(frozen=True)
class NodeSettings:
    """What decides an nsqd's loss window (see docs/guarantees.md)."""

    mem_queue_size: int = 10000
    durable_publish: bool = False
    sync_every: int = 2500
    persistent: bool = True

    @property
    def mode(self) -> str:
        if not self.persistent:
            return "memory"
        if self.durable_publish:
            return "durable-publish"
        return "disk-only" if self.mem_queue_size == 0 else "default"

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> NodeSettings:
        kw: dict[str, Any] = {}
        for name, kind in (("mem_queue_size", int), ("durable_publish", bool), ("sync_every", int), ("persistent", bool)):
            if name in raw:
                kw[name] = kind(raw[name])
        if "persistent" not in kw and raw.get("crash_loses") is True and raw.get("restart_loses") is True:
            kw["persistent"] = False  # nsqsim's word for a node that keeps messages only in memory
        return cls(**kw)


def events(raw: Iterable[Mapping[str, Any] | Event]) -> list[Event]:
    """The history as ``Event`` objects, in the order given."""
    return [e if isinstance(e, Event) else Event.from_dict(e) for e in raw]
