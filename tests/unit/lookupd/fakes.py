"""Fake ports for driving nsqlookupd's core without sockets or time."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from broker.lookupd.lookupd import NSQLookupd
from broker.lookupd.options import LookupdOptions
from broker.ports import ConnectionHandler

WALL_EPOCH_NS = 1_700_000_000_000_000_000


class FakeTimer:
    def cancel(self) -> None:
        pass


class FakeClock:
    """Time that moves only when a test says so."""

    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t

    def wall_ns(self) -> int:
        return WALL_EPOCH_NS + round(self.t * 1e9)

    def call_later(self, delay: float, fn: Callable[[], None]) -> FakeTimer:
        raise AssertionError("nsqlookupd's core schedules nothing")

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class RecordingLogger:
    lines: list[tuple[str, str]] = field(default_factory=list)

    def log(self, level: str, msg: str) -> None:
        self.lines.append((level, msg))

    def messages(self, level: str | None = None) -> list[str]:
        return [m for lvl, m in self.lines if level is None or lvl == level]


class FakeConnection:
    """Records what the core writes; closing is a flag."""

    def __init__(self, peer: tuple[str, int]) -> None:
        self.sent = bytearray()
        self.closed = False
        self.aborted = False
        self.reading = True
        self._peer = peer

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed, "write after close"
        self.sent += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = self.closed = True

    def write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int) -> None:
        pass

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    @property
    def peer_address(self) -> tuple[str, int]:
        return self._peer

    @property
    def local_address(self) -> tuple[str, int]:
        return ("127.0.0.1", 4160)


def responses(buf: bytearray) -> list[bytes]:
    """Split and consume ``[int32 size][data]`` answers; a partial one is an error."""
    out = []
    while buf:
        assert len(buf) >= 4, f"partial size: {bytes(buf)!r}"
        size = int.from_bytes(buf[:4], "big")
        assert len(buf) >= 4 + size, f"partial answer: {bytes(buf)!r}"
        out.append(bytes(buf[4 : 4 + size]))
        del buf[: 4 + size]
    return out


def identify_body(
    *,
    broadcast_address: str = "nsqd-1",
    tcp_port: int = 4150,
    http_port: int = 4151,
    version: str = "1.3.0",
    hostname: str = "nsqd-1.local",
) -> bytes:
    body = json.dumps(
        {
            "broadcast_address": broadcast_address,
            "tcp_port": tcp_port,
            "http_port": http_port,
            "version": version,
            "hostname": hostname,
        }
    ).encode()
    return b"IDENTIFY\n" + len(body).to_bytes(4, "big") + body


class Peer:
    """One client connection to a lookupd, driven by hand."""

    def __init__(self, lookupd: NSQLookupd, addr: tuple[str, int] = ("10.0.0.1", 40000)) -> None:
        self.conn = FakeConnection(addr)
        self.handler: ConnectionHandler = lookupd.tcp_handler()
        self.handler.connection_made(self.conn)

    def send(self, data: bytes) -> list[bytes]:
        """Feed ``data``; the answers it produced."""
        self.handler.data_received(data)
        return responses(self.conn.sent)

    def connect_v1(self) -> Peer:
        assert self.send(b"  V1") == []
        return self

    def identify(self, **fields: object) -> bytes:
        [answer] = self.send(identify_body(**fields))  # type: ignore[arg-type]
        return answer


def make_lookupd(**opts: object) -> tuple[NSQLookupd, FakeClock, RecordingLogger]:
    clock = FakeClock()
    logger = RecordingLogger()
    lookupd = NSQLookupd(
        LookupdOptions().replace(**opts), clock=clock, logger=logger, hostname="lookupd-host"
    )
    lookupd.set_listen_addresses(("0.0.0.0", 4160), ("0.0.0.0", 4161))
    return lookupd, clock, logger
