"""A fake network and a scripted nsqd peer, for the client core's unit tests.

``FakeNetwork`` records every ``connect``; a test then accepts one (the peer
becomes a ``FakeNSQD`` or a raw ``FakeConnection``) or refuses it.  ``FakeNSQD``
reads what the client wrote with nsqd's own command parser and answers with
frames, so the tests state the conversation in NSQ's terms.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from broker.client.conn import NSQConnection
from broker.client.errors import NSQError
from broker.client.message import Message
from broker.ports import ConnectionHandler
from broker.wire import v2
from tests.fakes import FakeClock, FakeConnection

# What a real nsqd 1.3.0 answers to IDENTIFY with feature_negotiation.
NSQD_IDENTIFY = {
    "max_rdy_count": 2500,
    "version": "1.3.0",
    "max_msg_timeout": 900000,
    "msg_timeout": 60000,
    "tls_v1": False,
    "deflate": False,
    "deflate_level": 6,
    "max_deflate_level": 6,
    "snappy": False,
    "sample_rate": 0,
    "auth_required": False,
    "output_buffer_size": 16384,
    "output_buffer_timeout": 250,
}


class CountingConnection(FakeConnection):
    """A FakeConnection that also counts write calls (to see batching)."""

    def __init__(self, handler: ConnectionHandler, peer: tuple[str, int] = ("127.0.0.1", 4150)) -> None:
        self.writes = 0
        super().__init__(handler, peer)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes += 1
        super().write(data)


@dataclass
class Attempt:
    host: str
    port: int
    handler: ConnectionHandler

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass
class FakeNetwork:
    attempts: list[Attempt] = field(default_factory=list)

    def connect(self, host: str, port: int, handler: ConnectionHandler) -> None:
        self.attempts.append(Attempt(host, port, handler))

    def take(self) -> Attempt:
        assert self.attempts, "nobody connected"
        return self.attempts.pop(0)

    def refuse(self, exc: Exception | None = None) -> Attempt:
        attempt = self.take()
        attempt.handler.connection_lost(exc or ConnectionRefusedError("connection refused"))
        return attempt

    def accept(self, clock: FakeClock) -> FakeNSQD:
        attempt = self.take()
        return FakeNSQD(attempt.handler, clock, (attempt.host, attempt.port))

    def accept_raw(self) -> CountingConnection:
        attempt = self.take()
        return CountingConnection(attempt.handler, (attempt.host, attempt.port))


class FakeNSQD:
    """The nsqd end of one connection, driven by a test."""

    def __init__(self, handler: ConnectionHandler, clock: FakeClock, peer: tuple[str, int] = ("127.0.0.1", 4150)) -> None:
        self.clock = clock
        self.conn = CountingConnection(handler, peer)
        self._parser = v2.V2Parser(max_msg_size=1 << 20, max_body_size=5 << 20, max_req_timeout_ms=3_600_000)
        self._read = 0
        self._magic = False

    def closed(self) -> bool:
        """Whether the client closed (or aborted) its end; a call, so checks are not narrowed away."""
        return self.conn.closed

    def aborted(self) -> bool:
        return self.conn.aborted

    # -- what the client sent ----------------------------------------------------------------

    def commands(self) -> list[v2.Command]:
        """Every command written since the last call (pending writes are flushed first)."""
        self.clock.advance(0)
        new = bytes(self.conn.written[self._read :])
        self._read = len(self.conn.written)
        if not self._magic:
            assert new[:4] == v2.MAGIC_V2, new[:16]
            new = new[4:]
            self._magic = True
        self._parser.feed(new)
        out = []
        while (cmd := self._parser.next_command()) is not None:
            out.append(cmd)
        return out

    def command(self) -> v2.Command:
        [cmd] = self.commands()
        return cmd

    # -- answering ------------------------------------------------------------------------------

    def send(self, frame_type: int, data: bytes) -> None:
        self.conn.send(v2.encode_frame(frame_type, data))

    def ok(self) -> None:
        self.send(v2.FRAME_RESPONSE, v2.OK)

    def error(self, text: str) -> None:
        self.send(v2.FRAME_ERROR, text.encode())

    def heartbeat(self) -> None:
        self.send(v2.FRAME_RESPONSE, v2.HEARTBEAT)

    def close_wait(self) -> None:
        self.send(v2.FRAME_RESPONSE, v2.CLOSE_WAIT)

    def message(self, msg_id: bytes, body: bytes, attempts: int = 1, timestamp: int = 1_700_000_000_000_000_000) -> None:
        self.conn.send(v2.encode_message(timestamp, attempts, msg_id, body))

    def handshake(self, *, subscribe: bool = True, **identify: Any) -> v2.Identify:
        """Answer IDENTIFY (nsqd 1.3.0's JSON, with overrides) and, for a consumer, SUB."""
        cmd = self.command()
        assert isinstance(cmd, v2.Identify), cmd
        self.send(v2.FRAME_RESPONSE, json.dumps({**NSQD_IDENTIFY, **identify}).encode())
        if subscribe:
            sub = self.command()
            assert isinstance(sub, v2.Sub), sub
            self.ok()
        return cmd


@dataclass
class Recorder:
    """A ConnectionDelegate that writes down what it heard."""

    ready: list[NSQConnection] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    done: list[tuple[bytes, bool, bool]] = field(default_factory=list)
    errors: list[NSQError] = field(default_factory=list)
    closed: list[BaseException | None] = field(default_factory=list)

    def on_ready(self, conn: NSQConnection) -> None:
        self.ready.append(conn)

    def on_message(self, conn: NSQConnection, msg: Message) -> None:
        self.messages.append(msg)

    def on_message_done(self, conn: NSQConnection, msg: Message, success: bool, backoff: bool) -> None:
        self.done.append((msg.id, success, backoff))

    def on_error(self, conn: NSQConnection, err: NSQError) -> None:
        self.errors.append(err)

    def on_close(self, conn: NSQConnection, exc: BaseException | None) -> None:
        self.closed.append(exc)


def msg_id(n: int) -> bytes:
    """A 16-byte message id like nsqd's."""
    return b"%016x" % n
