"""The real daemon takes over a Go nsqd 1.3 data directory, also after a kill -9 mid-conversion.

The Go directory is ``tests/gofixtures.standard_fixture`` written to a real
directory: two topics, three channels (one paused), backlogs over small
segments (``--max-bytes-per-file=400``), a partly read segment, a topic
backlog and records past Go's last metadata sync.  Each test checks /stats
before consuming, then consumes every channel and counts every message: each
exactly once, and none again after a restart.

A kill -9 cannot be timed from outside to land inside a conversion that takes
milliseconds, so ``killing_nsqd`` (test only) kills itself at an exact step.
kill -9 keeps what the process wrote (the page cache survives); what a power
loss takes is the unit tests' job, on the in-memory file system.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from broker.nsqd import migrate
from broker.runtime.files import OSFileSystem
from broker.wire import v2
from tests.gofixtures import Fixture, GoMessage, GoQueue, standard_fixture, write_go_queue
from tests.integration.conftest import Daemon, run_nsqd
from tests.integration.killing_nsqd import KILL_AFTER
from tests.integration.test_durability import Conn

pytestmark = pytest.mark.integration

BOUND = 20.0  # seconds any awaited answer may take
SEGMENT = 400
FLAGS = (f"--max-bytes-per-file={SEGMENT}",)


def go_directory(path: Path) -> Fixture:
    return standard_fixture(OSFileSystem(), str(path), SEGMENT)


def http(daemon: Daemon, method: str, path: str) -> bytes:
    host, port = daemon.http_address
    req = urllib.request.Request(f"http://{host}:{port}{path}", method=method)
    with urllib.request.urlopen(req, timeout=BOUND) as resp:
        body: bytes = resp.read()
    return body


def channel_stats(daemon: Daemon) -> dict[str, dict[str, Any]]:
    doc = json.loads(http(daemon, "GET", "/stats?format=json"))
    out: dict[str, dict[str, Any]] = {}
    for topic in doc["topics"]:
        out[topic["topic_name"]] = topic
        for channel in topic["channels"]:
            out[f"{topic['topic_name']}:{channel['channel_name']}"] = channel
    return out


Delivered = Counter[tuple[bytes, bytes, int, int]]


async def consume(daemon: Daemon, topic: str, channel: str, count: int) -> Delivered:
    """``count`` messages from the channel, each FINed, as (id, body, timestamp, attempts before)."""
    conn = await Conn.open(daemon)
    got: Delivered = Counter()
    try:
        conn.writer.write(f"SUB {topic} {channel}\nRDY 100\n".encode())
        while sum(got.values()) < count:
            kind, data = await asyncio.wait_for(conn.frame(), BOUND)
            if kind == v2.FRAME_ERROR:
                raise AssertionError(data)
            if kind != v2.FRAME_MESSAGE:
                continue
            timestamp, attempts, msg_id, body = v2.decode_message(data)
            got[(msg_id, body, timestamp, attempts - 1)] += 1
            conn.writer.write(b"FIN " + msg_id + b"\n")
        await conn.writer.drain()
    finally:
        conn.close()
    return got


def wait_until(what: str, ok: Callable[[], bool]) -> None:
    deadline = time.monotonic() + BOUND
    while not ok():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} within {BOUND}s")
        time.sleep(0.05)


def expected(fixture: Fixture, topic: str, channel: str) -> Delivered:
    return Counter((m.id, m.body, m.timestamp, m.attempts) for m in fixture.expected(topic, channel))


def check_taken_over(daemon: Daemon, fixture: Fixture) -> None:
    """/stats right, then every message of every channel delivered once and nothing left."""
    stats = channel_stats(daemon)
    assert stats["orders"]["depth"] == 0  # handed to its channels at start
    for topic in fixture.topics:
        for name, paused in topic.channels:
            channel = stats[f"{topic.name}:{name}"]
            assert (channel["depth"], channel["paused"]) == (len(fixture.expected(topic.name, name)), paused), name
    http(daemon, "POST", "/channel/unpause?topic=orders&channel=audit")
    for topic in fixture.topics:
        for name, _ in topic.channels:
            want = expected(fixture, topic.name, name)
            got = asyncio.run(consume(daemon, topic.name, name, sum(want.values())))
            assert got == want, f"{topic.name}:{name}"

    def drained() -> bool:
        now = channel_stats(daemon)
        return all(now[q]["depth"] == 0 and now[q]["in_flight_count"] == 0 for q in now if ":" in q)

    wait_until("every channel empty with nothing in flight", drained)


def test_a_go_data_directory_is_taken_over_and_every_message_delivered_once(nsqd_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    data = tmp_path / "data"
    fixture = go_directory(data)
    daemon = nsqd_factory(*FLAGS, data_path=data)
    took = [line.split(" INFO: ", 1)[1] for line in daemon.lines if " INFO: MIGRATE: TOPIC(" in line]
    assert took == [
        "MIGRATE: TOPIC(orders): took over not paused, 3 queued messages from 1 disk queue file",
        "MIGRATE: TOPIC(orders) CHANNEL(billing): took over not paused, 10 queued messages from 2 disk queue files",
        "MIGRATE: TOPIC(orders) CHANNEL(audit): took over paused, 4 queued messages from 1 disk queue file",
        "MIGRATE: TOPIC(events): took over not paused, no disk queue",
        "MIGRATE: TOPIC(events) CHANNEL(archive): took over not paused, 6 queued messages from 1 disk queue file",
    ]
    check_taken_over(daemon, fixture)
    assert daemon.stop() == 0
    assert migrate.detect(OSFileSystem(), str(data)) is None
    # A restart finds its own directory: nothing taken over again, nothing delivered again.
    again = nsqd_factory(*FLAGS, data_path=data)
    assert not [line for line in again.lines if "MIGRATE" in line]
    stats = channel_stats(again)
    assert [stats[q]["depth"] for q in ("orders:billing", "orders:audit", "events:archive")] == [0, 0, 0]


def killing_nsqd(data: Path, monkeypatch: pytest.MonkeyPatch, kill_after: int | None) -> Daemon:
    with monkeypatch.context() as env:  # the child inherits it at spawn
        if kill_after is not None:
            env.setenv(KILL_AFTER, str(kill_after))
        return Daemon(
            [sys.executable, "-m", "tests.integration.killing_nsqd", "--tcp-address=127.0.0.1:0", "--http-address=127.0.0.1:0", f"--data-path={data}", *FLAGS]
        )


def test_a_kill_9_mid_conversion_is_completed_by_the_next_start(nsqd_factory: Callable[..., Daemon], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # How many steps the conversion of this fixture takes, from a run left to finish.
    go_directory(tmp_path / "count")
    counter = killing_nsqd(tmp_path / "count", monkeypatch, None)
    try:
        steps = int(counter.wait_for_line(r"TEST: the takeover made (\d+) changes").group(1))
    finally:
        counter.close()
    assert steps > 20
    # The last 12 steps write our nsqd.dat and its copy (metadata.save): past the first
    # rename there, the directory is ours and the next start has nothing left to do.
    for kill_at in sorted({1, steps // 3, steps // 2, 2 * steps // 3, steps - 13, steps}):
        data = tmp_path / f"kill-{kill_at}"
        fixture = go_directory(data)
        victim = killing_nsqd(data, monkeypatch, kill_at)
        try:
            assert victim.wait() == -signal.SIGKILL, victim.stderr
        finally:
            victim.close()
        assert "MIGRATE: done" not in victim.stderr
        if kill_at <= steps - 13:
            assert migrate.detect(OSFileSystem(), str(data)) is not None  # still (partly) Go's
        daemon = nsqd_factory(*FLAGS, data_path=data)
        if kill_at <= steps - 13:
            daemon.wait_for_line(r"MIGRATE: done")
        check_taken_over(daemon, fixture)
        daemon.stop()


def test_a_go_message_over_max_msg_size_ends_the_start_with_one_fatal_line(tmp_path: Path) -> None:
    fs = OSFileSystem()
    fs.mkdir(str(tmp_path))
    write_go_queue(fs, str(tmp_path), GoQueue("t:c", [GoMessage(b"0" * 16, b"x" * 5000)]), 1 << 20)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    done = run_nsqd("--tcp-address=127.0.0.1:0", "--http-address=127.0.0.1:0", f"--data-path={tmp_path}", "--max-msg-size=1000")
    assert done.returncode == 1
    fatal = [line for line in done.stderr.splitlines() if " FATAL: " in line]
    assert len(fatal) == 1 and "start with --max-msg-size=5000 or more" in fatal[0], done.stderr
    assert "Traceback" not in done.stderr
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # Go's files untouched
