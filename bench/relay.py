"""A bare asyncio relay that speaks just enough of NSQ V2 to carry the pub/sub benchmark.

It answers each PUB and MPUB with OK and turns every message into a message frame for
the (single) subscribed consumer, with no topics, channels, in-flight tracking
or timers.  It is the ceiling of Python networking on this machine, against
which the broker's figures are reported.

Run: ``python -m bench.relay --tcp-address=127.0.0.1:0`` (prints ``TCP: listening on``).
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import sys
import time

_INT32 = struct.Struct(">i")
_MSG_HEADER = struct.Struct(">iiqH")
_OK = struct.pack(">ii", 6, 0) + b"OK"


class _Relay:
    def __init__(self) -> None:
        self.consumer: asyncio.Transport | None = None
        self.seq = 0


class _Conn(asyncio.Protocol):
    def __init__(self, relay: _Relay) -> None:
        self.relay = relay
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.role = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.role == "consumer":
            return  # FIN/RDY/NOP: nothing to do
        buf = self.buf
        buf += data
        if not self.role:
            if len(buf) < 4:
                return
            del buf[:4]
            self.role = "pending"
        pos = 0
        out = bytearray()
        while True:
            nl = buf.find(b"\n", pos)
            if nl < 0:
                break
            line = bytes(buf[pos:nl])
            if line.startswith(b"SUB "):
                self.role = "consumer"
                self.relay.consumer = self.transport
                assert self.transport is not None
                self.transport.write(_OK)
                pos = nl + 1
                break
            if line.startswith(b"PUB "):
                if len(buf) < nl + 5:
                    break
                n = _INT32.unpack_from(buf, nl + 1)[0]
                end = nl + 5 + n
                if len(buf) < end:
                    break
                self.relay.seq += 1
                out += _MSG_HEADER.pack(n + 30, 2, time.time_ns(), 1)
                out += b"%016x" % self.relay.seq
                out += buf[nl + 5 : end]
                assert self.transport is not None
                self.transport.write(_OK)
                pos = end
                continue
            if line.startswith(b"MPUB "):
                if len(buf) < nl + 9:
                    break
                size = _INT32.unpack_from(buf, nl + 1)[0]
                end = nl + 5 + size
                if len(buf) < end:
                    break
                count = _INT32.unpack_from(buf, nl + 5)[0]
                at = nl + 9
                ts = time.time_ns()
                for _ in range(count):
                    n = _INT32.unpack_from(buf, at)[0]
                    self.relay.seq += 1
                    out += _MSG_HEADER.pack(n + 30, 2, ts, 1)
                    out += b"%016x" % self.relay.seq
                    out += buf[at + 4 : at + 4 + n]
                    at += 4 + n
                assert self.transport is not None
                self.transport.write(_OK)
                pos = end
                continue
            pos = nl + 1
        del buf[:pos]
        if out and self.relay.consumer is not None:
            self.relay.consumer.write(out)


async def _serve(host: str, port: int) -> None:
    relay = _Relay()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Conn(relay), host, port)
    addr = server.sockets[0].getsockname()
    print(f"TCP: listening on {addr[0]}:{addr[1]}", file=sys.stderr, flush=True)
    print(f"HTTP: listening on {addr[0]}:0", file=sys.stderr, flush=True)
    await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tcp-address", default="127.0.0.1:0")
    parser.add_argument("--http-address", default="")
    parser.add_argument("--data-path", default="")
    args = parser.parse_args()
    host, port = args.tcp_address.rsplit(":", 1)
    asyncio.run(_serve(host, int(port)))


if __name__ == "__main__":
    main()
