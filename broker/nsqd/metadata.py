"""nsqd.dat: which topics and channels exist and which are paused, kept across restarts.

The JSON is nsqd's (``{"topics":[{"name","paused","channels":[{"name","paused"}]}],
"version"}``), rewritten atomically (temporary file, fsync, rename, fsync of the
directory) on every create, delete, pause and unpause and at exit, and read at
start.  Ephemeral topics and channels are left out, as nsqd leaves them out.

Forgetting a channel is losing messages: every message published after the
restart goes to the channels that exist, and a forgotten one never sees them
(the simulator found exactly that after a bit flipped in nsqd.dat and the
next start came up with no channels).  So, additively to nsqd's format:

* the document carries a ``checksum`` field, the CRC-32C of the document
  written without it.  Go nsqd ignores the field; a file without it (written
  by Go nsqd) is trusted as Go trusts it, one whose checksum does not match is
  not trusted at all (a flipped bit can turn a valid name into another valid
  name).
* every save writes a second copy, ``nsqd.dat.1``, after the first; a fault
  that damages one copy leaves the other.  The copy is at most one save
  behind the primary, which is never behind a state a client was answered in.
* if neither copy can be trusted, or nsqd.dat is gone while disk queues are
  present, the topic and channel list is recovered from the disk queues'
  file names (``<topic>.diskqueue.*``, ``<topic>:<channel>.diskqueue.*``):
  the union of a trusted copy and the queues found is restored.  Every disk
  queue writes its metadata file when it is created, before any message
  reaches it, so a channel is never dropped by this recovery, even one whose
  messages were all in memory (ci-sweep-beyond seed 146 found that loss when
  only queues holding messages left a file).  What it can lose is a paused
  flag, which is logged.

A clean exit also writes, per channel, what the next process needs to go on
where it stopped: ``"deferred"`` (how many deferred records wait on disk) and
``"replay"`` (a re-read window a crash left open: its end and the ids read in
it, ``Channel.replay_window``).  Both are written only then.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from broker.ports import FileSystem
from broker.storage.segment import crc32c

__all__ = [
    "BACKUP_NAME",
    "FILE_NAME",
    "Loaded",
    "MetadataError",
    "TopicMeta",
    "decode",
    "encode",
    "load",
    "queues_on_disk",
    "save",
]

FILE_NAME = "nsqd.dat"
BACKUP_NAME = "nsqd.dat.1"
_QUEUE_MARK = ".diskqueue."


class MetadataError(ValueError):
    pass


@dataclass
class TopicMeta:
    name: str
    paused: bool = False
    channels: list[tuple[str, bool]] = field(default_factory=list)
    # Deferred records each channel left in its disk queue at a clean exit (additive
    # ``"deferred"`` key, written only then; absent after a crash, see Channel.restore_deferred).
    deferred: dict[str, int] = field(default_factory=dict)
    # Beyond nsqd, additive keys written only when set: the topic's ``ttl_ms``, and each
    # channel's ``max_attempts`` and ``dead_letter_topic``.
    ttl_ms: int = 0
    dead_letters: dict[str, tuple[int, str]] = field(default_factory=dict)
    # Additive ``"replay"`` key, written only by a clean exit: a channel's re-read window
    # still open after a crash, as (end, ids already read in it) (Channel.replay_window).
    replays: dict[str, tuple[tuple[int, int], list[str]]] = field(default_factory=dict)


@dataclass
class Loaded:
    """What ``load`` restored, and how it got there (for the start-up log)."""

    topics: list[TopicMeta]
    problems: list[str] = field(default_factory=list)  # one line per copy that was not trusted
    source: str = FILE_NAME  # FILE_NAME, BACKUP_NAME, "disk queues" or "nothing"
    recovered: list[str] = field(default_factory=list)  # queues found on disk that no copy listed


def _document(topics: list[TopicMeta], version: str) -> dict[str, Any]:
    return {
        "topics": [
            _topic_doc(t)
            for t in topics
        ],
        "version": version,
    }


def _topic_doc(topic: TopicMeta) -> dict[str, Any]:
    doc: dict[str, Any] = {"channels": [_channel_doc(topic, n, p) for n, p in topic.channels], "name": topic.name, "paused": topic.paused}
    if topic.ttl_ms:
        doc["ttl_ms"] = topic.ttl_ms
    return doc


def _channel_doc(topic: TopicMeta, name: str, paused: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": name, "paused": paused}
    deferred = topic.deferred.get(name, 0)
    if deferred:
        doc["deferred"] = deferred
    if name in topic.dead_letters:
        doc["max_attempts"], doc["dead_letter_topic"] = topic.dead_letters[name]
    if name in topic.replays:
        end, ids = topic.replays[name]
        doc["replay"] = {"end": list(end), "ids": ids}
    return doc


def _dumps(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def encode(topics: list[TopicMeta], version: str) -> bytes:
    doc = _document(topics, version)
    doc["checksum"] = f"{crc32c(_dumps(doc)):08x}"
    return _dumps(doc)


def decode(raw: bytes) -> list[TopicMeta]:
    try:
        doc: Any = json.loads(raw)
        topics = []
        for t in doc.get("topics") or []:
            docs = t.get("channels") or []
            channels = [(str(c["name"]), bool(c.get("paused", False))) for c in docs]
            deferred = {str(c["name"]): int(c["deferred"]) for c in docs if int(c.get("deferred") or 0) > 0}
            letters = {str(c["name"]): (int(c["max_attempts"]), str(c["dead_letter_topic"])) for c in docs if c.get("max_attempts")}
            ttl_ms = int(t.get("ttl_ms") or 0)
            replays = {
                str(c["name"]): ((int(c["replay"]["end"][0]), int(c["replay"]["end"][1])), [str(i) for i in c["replay"]["ids"]])
                for c in docs
                if c.get("replay")
            }
            topics.append(TopicMeta(str(t["name"]), bool(t.get("paused", False)), channels, deferred, ttl_ms, letters, replays))
        checksum = doc.get("checksum")
        version = doc.get("version")
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise MetadataError(f"failed to parse metadata - {exc}") from None
    if checksum is not None:
        if not isinstance(version, str):
            raise MetadataError("failed to parse metadata - version is not a string")
        if checksum != f"{crc32c(_dumps(_document(topics, version))):08x}":
            raise MetadataError("metadata checksum mismatch")
    return topics


def _path(data_path: str, name: str = FILE_NAME) -> str:
    directory = data_path.rstrip("/") or "."
    return f"{directory}/{name}"


def _read(fs: FileSystem, path: str) -> list[TopicMeta] | None:
    """The topics in one copy; None if it does not exist; raises if it is bad."""
    try:
        f = fs.open_read(path)
    except FileNotFoundError:
        return None
    try:
        raw = f.read_at(0, f.size())
    finally:
        f.close()
    return decode(raw)


def queues_on_disk(names: list[str]) -> list[tuple[str, str | None]]:
    """(topic, channel or None) for every disk queue among a directory's file names, sorted."""
    found: set[tuple[str, str | None]] = set()
    for entry in names:
        queue, mark, _ = entry.partition(_QUEUE_MARK)
        if not mark or not queue:
            continue
        topic, colon, channel = queue.partition(":")
        found.add((topic, channel if colon else None))
    return sorted(found, key=lambda q: (q[0], q[1] or ""))


def load(fs: FileSystem, data_path: str) -> Loaded:
    """The topics to restore: a trusted copy, or the union of it and the disk queues present.

    Raises ``OSError`` only when the data directory itself cannot be listed.
    """
    loaded = Loaded([])
    trusted: list[TopicMeta] | None = None
    absent = 0
    for name in (FILE_NAME, BACKUP_NAME):
        try:
            topics = _read(fs, _path(data_path, name))
        except (OSError, MetadataError) as exc:
            loaded.problems.append(f"{name}: {exc}")
            continue
        if topics is None:
            absent += 1
            continue
        trusted, loaded.source = topics, name
        break
    if trusted is not None and not loaded.problems:
        loaded.topics = trusted
        return loaded
    # The primary copy is bad or missing: nothing on disk may be forgotten.
    if trusted is None:
        loaded.source = "nothing" if absent == 2 and not loaded.problems else "disk queues"
        trusted = []
    by_name = {t.name: t for t in trusted}
    for topic_name, channel_name in queues_on_disk(fs.listdir(data_path.rstrip("/") or ".")):
        topic = by_name.get(topic_name)
        if topic is None:
            topic = by_name[topic_name] = TopicMeta(topic_name)
            trusted.append(topic)
            loaded.recovered.append(topic_name)
        if channel_name is not None and all(n != channel_name for n, _ in topic.channels):
            topic.channels.append((channel_name, False))
            loaded.recovered.append(f"{topic_name}:{channel_name}")
    if loaded.source == "nothing" and trusted:
        loaded.source = "disk queues"
    loaded.topics = trusted
    return loaded


def save(fs: FileSystem, data_path: str, topics: list[TopicMeta], version: str) -> None:
    """Replace ``nsqd.dat`` and then its copy atomically and durably; raises ``OSError``."""
    raw = encode(topics, version)
    directory = data_path.rstrip("/") or "."
    for name in (FILE_NAME, BACKUP_NAME):
        path = _path(data_path, name)
        tmp = path + ".tmp"
        f = fs.open_append(tmp)
        try:
            f.truncate(0)
            f.write(raw)
            f.fsync()
        finally:
            f.close()
        fs.rename(tmp, path)
        fs.fsync_dir(directory)
