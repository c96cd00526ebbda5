"""The history of a run: every client-visible event and every fault, in simulated time.

A history is a list of events, each a flat JSON object with ``t`` (simulated
seconds) and ``type``; written one per line with sorted keys and no spaces, so
that the same seed and configuration give the same bytes.  The types:

=================  ===========================================================
``run``            seed, config name and digest, and per nsqd what a stop may
                   lose of what it acknowledged (``crash_loses``,
                   ``kill_loses``, ``restart_loses``) and the settings that
                   decide it (``mem_queue_size``, ``durable_publish``,
                   ``sync_every``, ``persistent``), and the fault schedule
``publish``        a producer sent PUB, DPUB or MPUB (one event per message):
                   producer, nsqd, topic, key, defer_ms
``publish_ok``     nsqd answered OK: producer, key
``publish_failed`` nsqd answered an error, the connection was lost before the
                   answer (the outcome is then unknown), no nsqd could be
                   reached, or too many publishes awaited an answer: producer,
                   key, error (the client's exception, as ``Type: text``)
``subscribed``     SUB answered OK: consumer, nsqd, topic, channel
``deliver``        a message frame reached a consumer: consumer, nsqd, topic,
                   channel, key, id, attempts
``fin``, ``req``   the consumer sent FIN / REQ (``delay_ms``) for it; a ``fin``
                   with ``gave_up`` is the client's, past ``max_attempts``
``hold``           the consumer's handler will never answer (nsqd must time it out)
``error``          an error frame reached a consumer: consumer, nsqd, error
``disconnected``   a consumer or producer connection closed: who, nsqd, error
``consumer_crash``, ``consumer_restart``, ``consumer_stall``, ``consumer_resume``
``crash``, ``kill``, ``stop``, ``start``  an nsqd lost power, was killed, exited cleanly, started;
                   ``stop`` carries ``held``: per ``topic/channel``, the ids
                   nsqd had delivered and not finished (``in_flight``,
                   ``deferred`` or ``queued`` again), read from the broker
``lookupd_crash``, ``lookupd_start``
``partition``, ``heal``, ``slow_link``, ``slow_link_end``, ``disk_fault``, ``disk_heal``
``clock_jump``, ``clock_skew``, ``clock_heal``  a host's wall clock stepped (``by``), skewed
                   (``rate``), stepped back to true time (``by``)
``stall``, ``stall_end``  a process stopped and went on (``timers``: how many came due
                   meanwhile); a ``heal`` (kind ``stall``) from its host to every other follows
``net_delay``      one connection holds the bytes from ``src`` to ``dst``; a ``heal`` (kind
                   ``net_delay``) when it lets them go
``net_cut``        one connection cut mid-write: ``src`` sent ``sent`` of ``written`` bytes,
                   then RST
``load_end``       producers stopped and faults ended; the cluster drains
``final``          per nsqd channel at the end, as /stats shows it: host, topic,
                   channel, depth, in_flight, deferred, timeouts, requeues
``final_topic``    per nsqd topic without channels at the end: host, topic, depth
``exception``      an exception escaped the broker or the simulator and ended
                   the run: error, traceback
``end``            the last event
=================  ===========================================================

A message is named by its ``key`` (``<producer>:<sequence>``, the start of its
body), since PUB's answer carries no id; ``id`` is nsqd's message id.

``record`` adds an event; the clients' per-message paths append the same
dicts to ``events`` themselves (``t`` and ``type`` included), which saves a
call per event on the simulator's hottest paths.

``load(path)`` reads a history file into a pandas DataFrame (pandas is the
optional ``analysis`` extra and is imported only there).
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Iterable, Iterator
from typing import Any

from broker.ports import Clock

__all__ = ["Event", "History", "digest_lines", "load", "read_events"]

Event = dict[str, Any]


class History:
    __slots__ = ("_now", "events")

    def __init__(self, clock: Clock) -> None:
        self._now = clock.now
        self.events: list[Event] = []

    def record(self, type: str, **fields: Any) -> None:
        fields["t"] = self._now()
        fields["type"] = type
        self.events.append(fields)

    def lines(self) -> Iterator[str]:
        return (encode(e) for e in self.events)

    def write(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            for line in self.lines():
                f.write(line)
                f.write("\n")

    def digest(self) -> str:
        return digest_lines(self.lines())


def encode(event: Event) -> str:
    return json.dumps(event, sort_keys=True, separators=(",", ":"))


def digest_lines(lines: Iterable[str]) -> str:
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode())
        h.update(b"\n")
    return h.hexdigest()


def read_events(path: str) -> list[Event]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load(path: str) -> Any:
    """The history at ``path`` as a ``pandas.DataFrame``, one row per event.

    pandas is the ``analysis`` extra; it is imported here only, so the broker
    and the simulator run without it (and it is typed ``Any`` for the same reason).
    """
    try:
        pd = importlib.import_module("pandas")
    except ImportError as exc:
        raise ImportError("nsqsim.history.load needs pandas: pip install 'nsqsim[analysis]'") from exc
    return pd.DataFrame.from_records(read_events(path))
