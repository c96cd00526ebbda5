"""Taking over a Go nsqd 1.3 data directory (``broker/nsqd/migrate.py``), on the in-memory disk.

The Go directories are written by ``tests/gofixtures.py`` from the format's
description.  Every takeover is checked the same way: a node started on the
converted directory delivers every unread Go message of every channel once,
with its id, timestamp and attempts, and keeps the paused flags.  Crashes are
the in-memory file system's: ``crash_after(n)`` stops the conversion at its
n-th mutating call, ``crash`` then loses what a power loss may lose, and the
next start resumes.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import pytest

from broker.nsqd import migrate
from broker.nsqd.options import Options
from broker.storage.memfs import MemoryFileSystem, SimulatedCrash
from broker.storage.metadata import Metadata, MetadataError, read_metadata
from tests.fakes import RecordingLogger
from tests.gofixtures import (
    Fixture,
    GoMessage,
    GoQueue,
    GoTopic,
    messages,
    standard_fixture,
    write_go_nsqd_dat,
    write_go_queue,
)
from tests.unit.nsqd.harness import Node

DATA = "/data"
SEGMENT = 400  # small segments: every backlog spans several


def opts() -> Options:
    return Options(data_path=DATA, max_bytes_per_file=SEGMENT, node_id=7)


def start(fs: MemoryFileSystem, **kw: Any) -> Node:
    return Node(fs, max_bytes_per_file=SEGMENT, **kw)


Delivered = Counter[tuple[bytes, bytes, int, int]]


def consume_all(node: Node, topic: str, channel: str) -> Delivered:
    """Every message the channel delivers (unpausing it), FINed; as (id, body, timestamp, stored attempts)."""
    ch = node.nsqd.topics[topic].channels[channel]
    if ch.paused:
        ch.unpause()
    c = node.consumer(topic, channel, rdy=1000)
    got: Delivered = Counter()
    seen = 0
    while True:
        node.clock.advance(1)  # past the output buffer timeout
        c.frames()
        batch = c.messages(c.log)[seen:]
        if not batch:
            return got
        seen += len(batch)
        for timestamp, attempts, msg_id, body in batch:
            got[(msg_id, body, timestamp, attempts - 1)] += 1  # a delivery counts one attempt
            c.fin(msg_id)


def expected(fixture: Fixture, topic: str, channel: str) -> Delivered:
    return Counter((m.id, m.body, m.timestamp, m.attempts) for m in fixture.expected(topic, channel))


def assert_all_delivered_once(node: Node, fixture: Fixture) -> None:
    for topic in fixture.topics:
        for channel, _ in topic.channels:
            got = consume_all(node, topic.name, channel)
            assert got == expected(fixture, topic.name, channel), f"{topic.name}:{channel}"


def file_names(fs: MemoryFileSystem) -> list[str]:
    return fs.listdir(DATA)


def go_fixture(fs: MemoryFileSystem | None = None) -> tuple[MemoryFileSystem, Fixture]:
    fs = fs or MemoryFileSystem()
    return fs, standard_fixture(fs, DATA, SEGMENT)


# ---- detection ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        (b"9\n2,250\n3,120\n", migrate.GoQueueMeta(9, 2, 250, 3, 120)),
        (b"0\n0,0\n0,0\n", migrate.GoQueueMeta(0, 0, 0, 0, 0)),
        (b"-1\n0,0\n0,0\n", migrate.GoQueueMeta(-1, 0, 0, 0, 0)),  # Go's depth can go negative
        (b"9\n2,250\n3,120", None),  # cut short: not what Go's Fprintf leaves
        (b"9\n2,250\n3,120\nx", None),
        (b"", None),
        (Metadata(9, 2, 250, 3, 120).encode(), None),  # ours
    ],
)
def test_go_queue_metadata_is_recognised_whole_and_ours_never(raw: bytes, parsed: migrate.GoQueueMeta | None) -> None:
    assert migrate.parse_go_queue_meta(raw) == parsed


def test_our_own_directory_is_never_taken_for_go_s() -> None:
    fs = MemoryFileSystem()
    node = start(fs, mem_queue_size=0)
    node.consumer("t", "a", rdy=0)
    node.consumer("t", "b", rdy=0)
    node.nsqd.topics["t"].channels["b"].pause()
    node.publish("t", *[b"m%d" % i for i in range(30)])
    node.nsqd.close()
    assert migrate.detect(fs, DATA, 7) is None
    before = {name: fs.contents(f"{DATA}/{name}") for name in file_names(fs)}
    logger = RecordingLogger()
    assert migrate.take_over(fs, opts(), logger, "1.3.0") is None
    assert {name: fs.contents(f"{DATA}/{name}") for name in file_names(fs)} == before
    assert not any("MIGRATE" in msg for _, msg in logger.lines)


def test_our_directory_after_a_crash_is_not_taken_for_go_s_either() -> None:
    fs = MemoryFileSystem()
    node = start(fs, mem_queue_size=0)
    node.consumer("t", "a", rdy=0)
    node.publish("t", *[b"m%d" % i for i in range(30)])
    fs.crash(random.Random(1))  # unsynced records and metadata lost, torn tails
    assert migrate.detect(fs, DATA, 7) is None


def test_an_empty_directory_is_not_go_s() -> None:
    fs = MemoryFileSystem()
    fs.mkdir(DATA)
    assert migrate.detect(fs, DATA, 7) is None
    assert migrate.detect(fs, "/missing", 7) is None


def test_a_go_nsqd_dat_alone_is_go_s() -> None:
    fs = MemoryFileSystem()
    fs.mkdir(DATA)
    write_go_nsqd_dat(fs, DATA, [GoTopic("t", True, [("c", True)])])
    go = migrate.detect(fs, DATA, 7)
    assert go is not None and go.nsqd_dat == "nsqd.dat" and not go.queues
    node = start(fs)
    assert node.nsqd.topics["t"].paused and node.nsqd.topics["t"].channels["c"].paused
    doc = json.loads(fs.contents(f"{DATA}/nsqd.dat"))
    assert "checksum" in doc  # ours now
    assert migrate.detect(fs, DATA, 7) is None


# ---- the takeover ---------------------------------------------------------------


@pytest.mark.parametrize("mem_queue_size", [10000, 0], ids=["default", "disk-only"])
def test_every_topic_channel_paused_flag_and_message_is_taken_over(mem_queue_size: int) -> None:
    fs, fixture = go_fixture()
    billing = fixture.queue("orders:billing")
    assert len(billing.unread) == 10
    node = start(fs, mem_queue_size=mem_queue_size)
    topics = node.nsqd.topics
    assert sorted(topics) == ["events", "orders"]
    assert {n: c.paused for n, c in topics["orders"].channels.items()} == {"billing": False, "audit": True}
    assert list(topics["events"].channels) == ["archive"]
    # The topic's backlog went to both channels at start, as after any restart.
    assert topics["orders"].depth() == 0
    assert topics["orders"].channels["billing"].depth() == 10 + 3
    assert topics["orders"].channels["audit"].depth() == 4 + 3
    assert topics["events"].channels["archive"].depth() == 6
    lines = [msg for level, msg in node.logger.lines if level == "INFO" and msg.startswith("MIGRATE: TOPIC(")]
    assert lines == [
        "MIGRATE: TOPIC(orders): took over not paused, 3 queued messages from 1 disk queue file",
        "MIGRATE: TOPIC(orders) CHANNEL(billing): took over not paused, 10 queued messages from 2 disk queue files",
        "MIGRATE: TOPIC(orders) CHANNEL(audit): took over paused, 4 queued messages from 1 disk queue file",
        "MIGRATE: TOPIC(events): took over not paused, no disk queue",
        "MIGRATE: TOPIC(events) CHANNEL(archive): took over not paused, 6 queued messages from 1 disk queue file",
    ]
    assert_all_delivered_once(node, fixture)
    node = node.restart()
    assert all(c.depth() == 0 for t in node.nsqd.topics.values() for c in t.channels.values())


def test_after_the_takeover_the_directory_is_ours_and_go_s_files_are_gone() -> None:
    fs, _ = go_fixture()
    start(fs).nsqd.close()
    assert migrate.detect(fs, DATA, 7) is None
    for name in file_names(fs):
        if name.endswith(".diskqueue.meta.dat"):
            assert read_metadata(fs, f"{DATA}/{name}") is not None  # ours: magic and CRC check
    # Go's billing segments were 2 and 3 (Go had removed 1); ours are numbered from 5.
    billing = [n for n in file_names(fs) if n.startswith("orders:billing.diskqueue.0")]
    assert billing and all(int(n.split(".")[2]) >= 5 for n in billing)
    assert "checksum" in json.loads(fs.contents(f"{DATA}/nsqd.dat"))


def test_a_second_start_takes_nothing_over_again() -> None:
    fs, fixture = go_fixture()
    start(fs).nsqd.close()
    node = start(fs)
    assert not any("MIGRATE" in msg for _, msg in node.logger.lines)
    assert_all_delivered_once(node, fixture)


def test_a_queue_go_never_wrote_metadata_for_is_read_from_its_oldest_segment() -> None:
    fs = MemoryFileSystem()
    fs.mkdir(DATA)
    queue = GoQueue("t:c", messages("t:c", 12), first_file=4, meta=False)
    write_go_queue(fs, DATA, queue, SEGMENT)
    write_go_nsqd_dat(fs, DATA, [GoTopic("t", False, [("c", False)])])
    go = migrate.detect(fs, DATA, 7)
    assert go is not None and go.orphans == ["t:c"]
    node = start(fs)
    assert any("Go metadata missing" in msg for _, msg in node.logger.lines)
    assert_all_delivered_once(node, Fixture([GoTopic("t", False, [("c", False)])], [queue]))


def test_without_nsqd_dat_the_topics_come_from_the_queue_names() -> None:
    fs = MemoryFileSystem()
    fs.mkdir(DATA)
    queues = [GoQueue("t", messages("t", 2)), GoQueue("t:c", messages("t:c", 5), read=1)]
    for q in queues:
        write_go_queue(fs, DATA, q, SEGMENT)
    node = start(fs)
    assert_all_delivered_once(node, Fixture([GoTopic("t", False, [("c", False)])], queues))


def test_nsqd_1_0_s_metadata_name_is_read() -> None:
    fs = MemoryFileSystem()
    fs.mkdir(DATA)
    write_go_nsqd_dat(fs, DATA, [GoTopic("t", False, [("c", True)])], name="nsqd.7.dat")
    node = start(fs)  # node id 7
    assert node.nsqd.topics["t"].channels["c"].paused


def test_a_cut_short_record_at_the_end_is_logged_and_the_file_kept_as_bad() -> None:
    fs = MemoryFileSystem()
    fs.mkdir(DATA)
    queue = GoQueue("t:c", messages("t:c", 3), tail=b"\x00\x00\x00\x40abc")
    segments = write_go_queue(fs, DATA, queue, SEGMENT)
    write_go_nsqd_dat(fs, DATA, [GoTopic("t", False, [("c", False)])])
    node = start(fs)
    warnings = [msg for level, msg in node.logger.lines if level == "WARN" and "not a whole record" in msg]
    assert len(warnings) == 1 and "7 bytes at the end of /data/t:c.diskqueue.000000.dat" in warnings[0]
    assert fs.contents(f"{DATA}/t:c.diskqueue.000000.dat.bad") == segments[0]
    assert_all_delivered_once(node, Fixture([GoTopic("t", False, [("c", False)])], [queue]))


def test_records_written_after_go_s_last_metadata_sync_are_taken_over() -> None:
    fs, fixture = go_fixture()
    archive = fixture.queue("events:archive")
    assert archive.unsynced == 2
    raw = fs.contents(f"{DATA}/events:archive.diskqueue.meta.dat")
    assert raw.startswith(b"4\n")  # Go's metadata counts 4 of the 6
    node = start(fs)
    assert node.nsqd.topics["events"].channels["archive"].depth() == 6


def test_a_message_over_max_msg_size_stops_the_takeover_and_changes_nothing() -> None:
    fs = MemoryFileSystem()
    fs.mkdir(DATA)
    queue = GoQueue("t:c", [GoMessage(b"0" * 16, b"x" * 100), GoMessage(b"1" * 16, b"y" * 5000)])
    write_go_queue(fs, DATA, queue, 1 << 20)
    write_go_nsqd_dat(fs, DATA, [GoTopic("t", False, [("c", False)])])
    go_files = {name: fs.contents(f"{DATA}/{name}") for name in file_names(fs)}
    with pytest.raises(migrate.MigrationError, match="--max-msg-size=5000"):
        start(fs, max_msg_size=1000)
    assert {name: fs.contents(f"{DATA}/{name}") for name in go_files} == go_files
    node = start(fs, max_msg_size=5000)
    assert_all_delivered_once(node, Fixture([GoTopic("t", False, [("c", False)])], [queue]))


# ---- crashes --------------------------------------------------------------------


def crashing_takeover(fs: MemoryFileSystem, n: int, seed: int) -> bool:
    """A takeover stopped at its n-th mutating call and a power loss; whether it got that far."""
    fs.crash_after(n)
    try:
        migrate.take_over(fs, opts(), RecordingLogger(), "1.3.0")
    except SimulatedCrash:
        fs.crash(random.Random(seed))
        return True
    fs.cancel_crash()
    return False


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_crash_at_any_step_of_the_takeover_loses_and_repeats_nothing(seed: int) -> None:
    n = 1
    while True:
        fs, fixture = go_fixture()
        if not crashing_takeover(fs, n, seed):
            break  # the takeover has fewer steps than n: every one was tried
        node = start(fs)
        assert migrate.detect(fs, DATA, 7) is None, f"crash at step {n}"
        assert {n: c.paused for n, c in node.nsqd.topics["orders"].channels.items()} == {"billing": False, "audit": True}
        assert_all_delivered_once(node, fixture)
        n += 1
    assert n > 30  # the steps were really there to crash in


@pytest.mark.parametrize("first", [3, 17, 41])
def test_a_crash_while_resuming_an_interrupted_takeover_loses_nothing(first: int) -> None:
    second = 1
    while True:
        fs, fixture = go_fixture()
        assert crashing_takeover(fs, first, seed=first)
        if not crashing_takeover(fs, second, seed=second):
            break
        node = start(fs)
        assert_all_delivered_once(node, fixture)
        second += 1
    assert second > 10


def is_ours(fs: MemoryFileSystem, queue: str) -> bool:
    try:
        return read_metadata(fs, f"{DATA}/{queue}.diskqueue.meta.dat") is not None
    except MetadataError:
        return False


def test_a_queue_converted_before_a_crash_is_not_converted_again() -> None:
    n = 1
    while True:  # the first step after which the first queue is durably ours
        fs, fixture = go_fixture()
        assert crashing_takeover(fs, n, seed=0)
        if is_ours(fs, "events:archive"):
            break
        n += 1
    assert not is_ours(fs, "orders")
    logger = RecordingLogger()
    migrate.take_over(fs, opts(), logger, "1.3.0")
    lines = [msg for _, msg in logger.lines]
    assert "MIGRATE: TOPIC(events) CHANNEL(archive): took over not paused, 6 queued messages (converted by an earlier start)" in lines
    assert "MIGRATE: TOPIC(orders): took over not paused, 3 queued messages from 1 disk queue file" in lines
    assert_all_delivered_once(start(fs), fixture)
