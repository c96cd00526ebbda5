"""The real daemon on a real disk: clean restarts, and kill -9 under publish and consume load.

With ``--mem-queue-size=0`` every message lives in a disk queue; a kill -9 at
any moment must lose no acknowledged message: not in the topic-to-channel
hand-off, not in flight, not deferred (Go nsqd does lose them: nsqio/nsq#1142).
Duplicates after a restart are allowed. A power loss (unsynced bytes lost) is
the in-memory file system's job, in the unit tests; kill -9 keeps what the
process wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import struct
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from broker.wire import v2
from tests.integration.conftest import Daemon

pytestmark = pytest.mark.integration

BOUND = 20.0  # seconds any awaited answer may take


class Conn:
    """A raw V2 connection: commands out, frames in (heartbeats answered)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.frames = v2.FrameParser()

    @classmethod
    async def open(cls, daemon: Daemon) -> Conn:
        host, port = daemon.tcp_address
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(v2.MAGIC_V2)
        return cls(reader, writer)

    async def frame(self) -> tuple[int, bytes]:
        while True:
            f = self.frames.next_frame()
            if f is not None:
                if f == (v2.FRAME_RESPONSE, v2.HEARTBEAT):
                    self.writer.write(b"NOP\n")
                    continue
                return f
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("closed")
            self.frames.feed(data)

    def close(self) -> None:
        self.writer.close()


def stats(daemon: Daemon) -> dict[str, object]:
    host, port = daemon.http_address
    with urllib.request.urlopen(f"http://{host}:{port}/stats?format=json", timeout=BOUND) as resp:
        doc: dict[str, object] = json.loads(resp.read())
    return doc


async def publish_until_stopped(daemon: Daemon, acked: list[int], start: int, stop: asyncio.Event) -> None:
    """PUB numbered messages one at a time, recording each acknowledged one."""
    conn = await Conn.open(daemon)
    n = start
    try:
        while not stop.is_set():
            conn.writer.write(v2.encode_pub("t", struct.pack(">I", n) + b"x" * 60) if n % 3 else v2.encode_mpub("t", [struct.pack(">I", n) + b"m"]))
            kind, data = await asyncio.wait_for(conn.frame(), BOUND)
            assert (kind, data) == (v2.FRAME_RESPONSE, b"OK"), data
            acked.append(n)
            n += 1
    except ConnectionError:
        pass  # killed under us: the last one was not acknowledged
    finally:
        conn.close()


async def consume(daemon: Daemon, received: set[int], *, until: Callable[[], bool], rdy: int = 50, fin_all: bool = False) -> None:
    """SUB and FIN (all, or all but every seventh) until ``until()`` or the daemon dies."""
    conn = await Conn.open(daemon)
    conn.writer.write(b"SUB t c\nRDY %d\n" % rdy)
    try:
        while not until():
            try:
                kind, data = await asyncio.wait_for(conn.frame(), 0.5)
            except TimeoutError:
                continue
            if kind != v2.FRAME_MESSAGE:
                continue
            _, _, msg_id, body = v2.decode_message(data)
            n = struct.unpack_from(">I", body)[0]
            received.add(n)
            if fin_all or n % 7:  # leave every seventh in flight: a kill must not lose it
                conn.writer.write(b"FIN " + msg_id + b"\n")
    except ConnectionError:
        pass
    finally:
        conn.close()


def start(nsqd_factory: Callable[..., Daemon], data: Path, *flags: str) -> Daemon:
    # --sync-every=1: the read position reaches the disk right after each read, which is
    # when nsqd loses the messages still in flight.
    return nsqd_factory("--mem-queue-size=0", "--msg-timeout=2s", "--sync-every=1", *flags, data_path=data)


@pytest.mark.parametrize("flags", [(), ("--durable-publish",)], ids=["disk-only", "durable-publish"])
def test_kill_9_under_load_loses_no_acknowledged_message(nsqd_factory: Callable[..., Daemon], tmp_path: Path, flags: tuple[str, ...]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    acked: list[int] = []
    received: set[int] = set()

    async def one_life(daemon: Daemon, kill_after: int) -> None:
        stop = asyncio.Event()
        before = len(acked)
        producer = asyncio.create_task(publish_until_stopped(daemon, acked, len(acked) and acked[-1] + 1, stop))
        consumer = asyncio.create_task(consume(daemon, received, until=stop.is_set))
        while len(acked) < before + kill_after:
            await asyncio.sleep(0.01)
        daemon.send_signal(signal.SIGKILL)
        daemon.wait()
        stop.set()
        await asyncio.gather(producer, consumer)

    for life, kill_after in enumerate((120, 300, 80)):
        daemon = start(nsqd_factory, data, *flags)
        asyncio.run(one_life(daemon, kill_after))
        assert acked, f"life {life}: nothing was acknowledged"

    # A last, clean life: everything acknowledged comes out.
    daemon = start(nsqd_factory, data, *flags)

    def missing() -> set[int]:
        return set(acked) - received

    async def drain() -> None:
        await asyncio.wait_for(consume(daemon, received, until=lambda: not missing(), fin_all=True), BOUND * 3)

    with contextlib.suppress(TimeoutError):
        asyncio.run(drain())
    assert not missing(), f"{len(missing())} acknowledged messages lost of {len(acked)}: {sorted(missing())[:20]}"
    daemon.stop()


def test_a_clean_restart_keeps_queued_in_flight_and_deferred_messages(nsqd_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()

    async def first_life(daemon: Daemon) -> None:
        consumer = await Conn.open(daemon)
        consumer.writer.write(b"SUB t c\n")
        assert await consumer.frame() == (v2.FRAME_RESPONSE, b"OK")
        producer = await Conn.open(daemon)
        producer.writer.write(v2.encode_mpub("t", [b"in-flight", b"queued"]) + v2.encode_dpub("t", 1500, b"deferred"))
        for _ in range(2):
            assert await producer.frame() == (v2.FRAME_RESPONSE, b"OK")
        consumer.writer.write(b"RDY 1\n")
        _kind, frame = await consumer.frame()
        assert v2.decode_message(frame)[3] == b"in-flight"

    daemon = nsqd_factory(data_path=data)
    asyncio.run(first_life(daemon))
    assert daemon.stop() == 0
    # the deferred record left on disk is counted (additive key), so /stats keeps deferred_count 1
    assert json.loads((data / "nsqd.dat").read_text())["topics"][0]["channels"] == [{"name": "c", "paused": False, "deferred": 1}]

    async def second_life(daemon: Daemon) -> list[tuple[bytes, int]]:
        consumer = await Conn.open(daemon)
        consumer.writer.write(b"SUB t c\nRDY 10\n")
        got: list[tuple[bytes, int]] = []
        while len(got) < 3:
            kind, frame = await asyncio.wait_for(consumer.frame(), BOUND)
            if kind == v2.FRAME_MESSAGE:
                _, attempts, msg_id, body = v2.decode_message(frame)
                got.append((body, attempts))
                consumer.writer.write(b"FIN " + msg_id + b"\n")
        return got

    daemon = nsqd_factory(data_path=data)
    channel = stats(daemon)["topics"][0]["channels"][0]  # type: ignore[index]
    assert (channel["depth"], channel["deferred_count"]) == (2, 1)
    got = asyncio.run(second_life(daemon))
    assert sorted(got) == [(b"deferred", 1), (b"in-flight", 2), (b"queued", 1)]
    assert got[-1][0] == b"deferred"  # still deferred after the restart
    daemon.stop()
