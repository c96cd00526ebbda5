"""What producers and consumers share: a connection handler with a read deadline, a client process.

``Wire`` is the ``ConnectionHandler`` of one client connection: it splits the
byte stream into frames (``broker.wire.v2.FrameParser``), hands them to its
owner, and drops the connection when nothing arrives for ``read_timeout``.
``Client`` is a client process on its own host: a life, a clock, a network view.
"""

from __future__ import annotations

import json
import random
from typing import TYPE_CHECKING

from broker.ports import Connection, Timer
from broker.wire import v2
from nsqsim.clock import Life, SimClock
from nsqsim.network import SimNetwork

if TYPE_CHECKING:
    from nsqsim.history import History

__all__ = ["NOP", "PADDING", "USER_AGENT", "Client", "Wire", "error_text", "identify", "message_key"]

USER_AGENT = "nsqsim-workload/0.1"
NOP = v2.encode_command(b"NOP")
PADDING = b"x" * 65536


def message_key(body: bytes) -> str:
    """The key a body starts with."""
    return body.split(b"|", 1)[0].decode("ascii", "replace")


class Wire:
    """The handler of one client connection: frames in, callbacks out, with a read deadline."""

    def __init__(self, owner: Client, nsqd: str, read_timeout: float) -> None:
        self.owner = owner
        self.nsqd = nsqd
        self.conn: Connection | None = None
        self.parser = v2.FrameParser()
        self.read_timeout = read_timeout
        self.last_read = 0.0
        self.closed = False
        self.timer: Timer | None = None

    def connection_made(self, conn: Connection) -> None:
        if self.closed:
            conn.abort()
            return
        self.conn = conn
        self.last_read = self.owner.clock.now()
        self._arm()
        self.owner.wire_made(self)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.last_read = self.owner.clock.now()
        self.parser.feed(data)
        while not self.closed:
            frame = self.parser.next_frame()
            if frame is None:
                break
            self.owner.wire_frame(self, frame[0], frame[1])

    def eof_received(self) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone(exc)

    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        pass

    def write(self, data: bytes) -> None:
        if self.conn is not None and not self.closed:
            self.conn.write(data)

    def drop(self, reason: str) -> None:
        """Close on our side (the owner is told, as for any loss)."""
        if self.conn is not None and not self.closed:
            self.conn.abort()
        self._gone(ConnectionAbortedError(reason))

    def _gone(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.owner.wire_lost(self, exc)

    def _arm(self) -> None:
        self.timer = self.owner.clock.call_later(self.read_timeout, self._check)

    def _check(self) -> None:
        self.timer = None
        if self.closed:
            return
        now = self.owner.clock.now()
        deadline = self.last_read + self.read_timeout
        if now >= deadline:
            self.drop("read timeout")
        else:
            self.timer = self.owner.clock.call_later(deadline - now, self._check)


class Client:
    """What producers and consumers share: a host, a process life, a clock and a network."""

    def __init__(self, host: str, net: SimNetwork, base_clock: SimClock, rng: random.Random, history: History) -> None:
        self.host = host
        self.net = net
        self.base_clock = base_clock
        self.rng = rng
        self.history = history
        self.incarnation = 0
        self.life = Life(host)
        self.clock = base_clock.for_life(self.life)

    def new_life(self) -> None:
        self.incarnation += 1
        self.life = Life(f"{self.host}#{self.incarnation}")
        self.clock = self.base_clock.for_life(self.life)

    def dial(self, wire: Wire, host: str, port: int) -> None:
        self.net.host(self.host, self.life).connect(host, port, wire)

    def wire_made(self, wire: Wire) -> None:
        raise NotImplementedError

    def wire_frame(self, wire: Wire, frame_type: int, data: bytes) -> None:
        raise NotImplementedError

    def wire_lost(self, wire: Wire, exc: Exception | None) -> None:
        raise NotImplementedError


def error_text(exc: Exception | None) -> str:
    if exc is None:
        return "EOF"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def identify(client_id: str, host: str, heartbeat_interval: float, msg_timeout: float = 0.0) -> bytes:
    body: dict[str, object] = {
        "client_id": client_id,
        "hostname": host,
        "user_agent": USER_AGENT,
        "feature_negotiation": True,
        "heartbeat_interval": int(heartbeat_interval * 1000),
    }
    if msg_timeout > 0:
        body["msg_timeout"] = int(msg_timeout * 1000)
    return v2.MAGIC_V2 + v2.encode_command(b"IDENTIFY", body=json.dumps(body, sort_keys=True).encode())
