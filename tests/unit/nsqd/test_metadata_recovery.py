"""nsqd.dat damaged or gone: a restarted nsqd never forgets a channel.

The simulator found the loss (reference cluster, seed 16): a bit flipped in
nsqd.dat, the next start could not parse it and came up with no channels, and
messages published right after went to the one channel a consumer re-created,
never to the other.  These tests make that fault directly on the in-memory
file system.
"""

from __future__ import annotations

import json
import random

import pytest

from broker.nsqd import metadata
from broker.storage.memfs import MemoryFileSystem
from tests.unit.nsqd.harness import Node


def two_channels(mem_queue_size: int = 10000) -> Node:
    node = Node(MemoryFileSystem(), mem_queue_size=mem_queue_size, sync_every=1)
    node.consumer("t", "a", rdy=0)
    node.consumer("t", "b", rdy=0)
    node.nsqd.topics["t"].channels["b"].pause()
    return node


def crash(node: Node) -> Node:
    assert isinstance(node.fs, MemoryFileSystem)
    node.fs.crash(random.Random(3))
    node.clock.advance(1)  # a restart takes time: ids, made from the clock, do not repeat
    return Node(node.fs, node.clock, mem_queue_size=node.opts.mem_queue_size, sync_every=1)


def flip(fs: MemoryFileSystem, name: str, offset: int = 19) -> None:
    fs.flip_bit(f"/data/{name}", offset)


def channels_of(node: Node) -> dict[str, bool]:
    return {n: c.paused for n, c in node.nsqd.topics["t"].channels.items()}


def test_nsqd_dat_carries_a_checksum_and_a_second_copy() -> None:
    node = two_channels()
    assert isinstance(node.fs, MemoryFileSystem)
    raw = node.fs.contents("/data/nsqd.dat")
    assert node.fs.contents("/data/nsqd.dat.1") == raw
    doc = json.loads(raw)
    assert set(doc) == {"topics", "version", "checksum"}
    assert metadata.decode(raw)[0].channels == [("a", False), ("b", True)]


def test_a_flipped_bit_in_a_name_is_caught_by_the_checksum() -> None:
    raw = metadata.encode([metadata.TopicMeta("t", False, [("abc", False)])], "1.3.0")
    bad = raw.replace(b'"abc"', b'"abd"')  # still valid JSON, another valid name
    with pytest.raises(metadata.MetadataError, match="checksum"):
        metadata.decode(bad)


def test_a_file_written_by_go_nsqd_has_no_checksum_and_is_trusted() -> None:
    go = b'{"topics":[{"channels":[{"name":"c","paused":true}],"name":"t","paused":false}],"version":"1.3.0"}'
    assert metadata.decode(go) == [metadata.TopicMeta("t", False, [("c", True)])]


@pytest.mark.parametrize("damaged", [metadata.FILE_NAME, metadata.BACKUP_NAME])
def test_one_damaged_copy_leaves_the_other(damaged: str) -> None:
    node = two_channels()
    assert isinstance(node.fs, MemoryFileSystem)
    flip(node.fs, damaged)
    node = crash(node)
    assert channels_of(node) == {"a": False, "b": True}
    assert any("failed to load metadata" in msg for _, msg in node.logger.lines) == (damaged == metadata.FILE_NAME)


def test_both_copies_damaged_recovers_the_channels_from_their_disk_queues() -> None:
    # mem-queue-size 0 and sync-every 1: every channel's queue is durable on disk
    node = two_channels(mem_queue_size=0)
    node.publish("t", b"before")
    assert isinstance(node.fs, MemoryFileSystem)
    flip(node.fs, metadata.FILE_NAME)
    flip(node.fs, metadata.BACKUP_NAME, 30)
    node = crash(node)
    # the channels are back (the paused flag could not be recovered, and is logged)
    assert sorted(channels_of(node)) == ["a", "b"]
    assert any("queues found on disk and not listed: t, t:a, t:b" in msg for _, msg in node.logger.lines)
    # and a message published now reaches both of them, with what they held before
    node.publish("t", b"after")
    for name in ("a", "b"):
        c = node.consumer("t", name, rdy=10)
        node.clock.advance(1)
        assert sorted(m[3] for m in c.messages(c.log) + c.messages()) == [b"after", b"before"]
    # the recovered list is written back, so the next start trusts nsqd.dat again
    assert isinstance(node.fs, MemoryFileSystem)
    assert metadata.load(node.fs, "/data").problems == []


def test_both_copies_damaged_recovers_a_channel_that_never_wrote_a_message_to_disk() -> None:
    # ci-sweep-beyond seed 146: default mode, the channel's messages all in memory, both
    # copies of nsqd.dat flipped before a crash; every new queue writes its metadata file
    # at once, so its name on disk still says the channel exists
    node = two_channels()
    assert isinstance(node.fs, MemoryFileSystem)
    flip(node.fs, metadata.FILE_NAME)
    flip(node.fs, metadata.BACKUP_NAME, 30)
    node = crash(node)
    assert sorted(channels_of(node)) == ["a", "b"]
    node.publish("t", b"after")
    for name in ("a", "b"):
        c = node.consumer("t", name, rdy=10)
        node.clock.advance(1)
        assert [m[3] for m in c.messages(c.log) + c.messages()] == [b"after"]


def test_a_lost_nsqd_dat_recovers_the_channels_from_their_disk_queues() -> None:
    node = two_channels(mem_queue_size=0)
    node.publish("t", b"before")
    assert isinstance(node.fs, MemoryFileSystem)
    node.fs.remove("/data/nsqd.dat")
    node.fs.remove("/data/nsqd.dat.1")
    node = crash(node)
    assert sorted(channels_of(node)) == ["a", "b"]


def test_a_fresh_data_path_starts_empty_and_quietly() -> None:
    node = Node(MemoryFileSystem())
    assert node.nsqd.topics == {}
    assert not any("metadata" in msg for _, msg in node.logger.lines)


def test_a_paused_topic_keeps_its_messages_across_a_clean_restart() -> None:
    # nsqd keeps a paused topic's queued messages in the topic (depth 1) until
    # unpause; restoring the channel before the paused flag handed them on.
    node = Node(MemoryFileSystem())
    node.consumer("t", "c", rdy=0)
    topic = node.nsqd.topics["t"]
    topic.pause()
    node.publish("t", b"held")
    assert (topic.depth(), topic.channels["c"].depth()) == (1, 0)
    node = node.restart()
    topic = node.nsqd.topics["t"]
    assert topic.paused
    assert (topic.depth(), topic.channels["c"].depth()) == (1, 0)
    topic.unpause()
    assert (topic.depth(), topic.channels["c"].depth()) == (0, 1)
