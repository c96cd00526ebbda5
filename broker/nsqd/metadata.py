"""nsqd.dat: which topics and channels exist and which are paused, kept across restarts.

The JSON is nsqd's (``{"topics":[{"name","paused","channels":[{"name","paused"}]}],
"version"}``), rewritten atomically (temporary file, fsync, rename, fsync of the
directory) on every create, delete, pause and unpause and at exit, and read at
start.  Ephemeral topics and channels are left out, as nsqd leaves them out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from broker.ports import FileSystem

__all__ = ["FILE_NAME", "MetadataError", "TopicMeta", "decode", "encode", "load", "save"]

FILE_NAME = "nsqd.dat"


class MetadataError(ValueError):
    pass


@dataclass
class TopicMeta:
    name: str
    paused: bool = False
    channels: list[tuple[str, bool]] = field(default_factory=list)


def encode(topics: list[TopicMeta], version: str) -> bytes:
    doc = {
        "topics": [
            {"channels": [{"name": n, "paused": p} for n, p in t.channels], "name": t.name, "paused": t.paused}
            for t in topics
        ],
        "version": version,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def decode(raw: bytes) -> list[TopicMeta]:
    try:
        doc: Any = json.loads(raw)
        topics = []
        for t in doc.get("topics") or []:
            channels = [(str(c["name"]), bool(c.get("paused", False))) for c in t.get("channels") or []]
            topics.append(TopicMeta(str(t["name"]), bool(t.get("paused", False)), channels))
        return topics
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise MetadataError(f"failed to parse metadata - {exc}") from None


def _path(data_path: str) -> str:
    directory = data_path.rstrip("/") or "."
    return f"{directory}/{FILE_NAME}"


def load(fs: FileSystem, data_path: str) -> list[TopicMeta]:
    """The topics in ``nsqd.dat``; none if it does not exist."""
    try:
        f = fs.open_read(_path(data_path))
    except FileNotFoundError:
        return []
    try:
        raw = f.read_at(0, f.size())
    finally:
        f.close()
    return decode(raw)


def save(fs: FileSystem, data_path: str, topics: list[TopicMeta], version: str) -> None:
    """Replace ``nsqd.dat`` atomically and durably; raises ``OSError``."""
    path = _path(data_path)
    tmp = path + ".tmp"
    f = fs.open_append(tmp)
    try:
        f.truncate(0)
        f.write(encode(topics, version))
        f.fsync()
    finally:
        f.close()
    fs.rename(tmp, path)
    fs.fsync_dir(data_path.rstrip("/") or ".")
