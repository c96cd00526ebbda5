"""A node on fake ports, and clients that speak V2 to it, for the core's unit tests."""

from __future__ import annotations

import json
import ssl
from typing import Any

from broker.nsqd.nsqd import NSQD
from broker.nsqd.options import Options
from broker.ports import FileSystem, Network
from broker.wire import v2
from tests.fakes import FakeClock, FakeConnection, FakeRandom, RecordingLogger


class Client:
    def __init__(self, node: Node, port: int) -> None:
        self.conn = FakeConnection(node.nsqd.tcp_handler(), ("127.0.0.1", port))
        self.conn.send(v2.MAGIC_V2)
        self.log: list[tuple[int, bytes]] = []  # every frame received
        self._taken = 0  # how much of the log frames()/messages() have returned

    def _collect(self) -> list[tuple[int, bytes]]:
        new = self.conn.frames()
        self.log += new
        return new

    def send(self, data: bytes) -> list[tuple[int, bytes]]:
        """Send bytes; the frames that came back while handling them."""
        self._collect()
        self.conn.send(data)
        new = self._collect()
        self._taken = len(self.log)
        return new

    def frames(self) -> list[tuple[int, bytes]]:
        """Every frame not yet returned by frames() or messages()."""
        self._collect()
        new = self.log[self._taken :]
        self._taken = len(self.log)
        return new

    def responses(self, data: bytes) -> list[bytes]:
        return [d for t, d in self.send(data) if t == v2.FRAME_RESPONSE]

    def messages(self, frames: list[tuple[int, bytes]] | None = None) -> list[tuple[int, int, bytes, bytes]]:
        frames = self.frames() if frames is None else frames
        return [v2.decode_message(d) for t, d in frames if t == v2.FRAME_MESSAGE]

    def identify(self, **fields: Any) -> list[tuple[int, bytes]]:
        return self.send(v2.encode_identify(fields))

    def sub(self, topic: str, channel: str, rdy: int | None = None) -> list[tuple[int, bytes]]:
        frames = self.send(f"SUB {topic} {channel}\n".encode())
        if rdy is not None:
            frames += self.send(f"RDY {rdy}\n".encode())
        return frames

    def fin(self, msg_id: bytes) -> list[tuple[int, bytes]]:
        return self.send(b"FIN " + msg_id + b"\n")

    @property
    def closed(self) -> bool:
        return self.conn.closed


class Node:
    """One nsqd on fake ports; with ``fs`` it persists to that file system."""

    def __init__(self, fs: FileSystem | None = None, clock: FakeClock | None = None, **opts: Any) -> None:
        tls_context: ssl.SSLContext | None = opts.pop("tls_context", None)
        network: Network | None = opts.pop("network", None)
        self.clock = clock or FakeClock()
        self.logger = RecordingLogger()
        self.rand = FakeRandom()
        self.fs = fs
        if fs is not None:
            opts.setdefault("data_path", "/data")
            fs.mkdir(opts["data_path"])
        self.opts = Options(node_id=7, **opts)
        self.nsqd = NSQD(
            self.opts, clock=self.clock, rand=self.rand, logger=self.logger, hostname="testhost", fs=fs, tls_context=tls_context,
            network=network
        )
        self.nsqd.start()
        self._port = 40000

    def restart(self) -> Node:
        """A clean exit, then a new node on the same disk and clock."""
        self.nsqd.close()
        return Node(self.fs, self.clock, **_opts_of(self.opts))

    def client(self) -> Client:
        self._port += 1
        return Client(self, self._port)

    def consumer(self, topic: str, channel: str, rdy: int = 1, **identify: Any) -> Client:
        c = self.client()
        if identify:
            c.identify(**identify)
        frames = c.sub(topic, channel, rdy)
        assert (v2.FRAME_RESPONSE, v2.OK) in frames
        return c

    def publish(self, topic: str, *bodies: bytes) -> None:
        p = self.client()
        for body in bodies:
            assert p.send(v2.encode_pub(topic, body)) == [(v2.FRAME_RESPONSE, v2.OK)]
        p.conn.close()


def negotiated(frames: list[tuple[int, bytes]]) -> dict[str, Any]:
    kind, data = frames[0]
    assert kind == v2.FRAME_RESPONSE
    result: dict[str, Any] = json.loads(data)
    return result


def _opts_of(opts: Options) -> dict[str, Any]:
    defaults = Options()
    return {f: getattr(opts, f) for f in Options.__slots__ if getattr(opts, f) != getattr(defaults, f) and f != "node_id"}
