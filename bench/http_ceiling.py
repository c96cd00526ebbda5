"""A bare asyncio HTTP/1.1 responder: the ceiling of Python HTTP serving on this machine.

It frames requests just enough to keep a keep-alive connection (and pipelined
requests) in step: the head ends at the blank line, the body is
``Content-Length`` bytes long, and every request is answered with the bytes
nsqd sends for a ``/pub`` (``200 OK``, the same five headers, body ``OK``).
No routing, no query, no validation, no topic: what is left is the event loop,
the socket calls and the least parsing a server can do.  It is to HTTP what
``bench/relay.py`` is to the TCP benchmark.

Run: ``python -m bench.http_ceiling --http-address=127.0.0.1:0`` (prints ``HTTP: listening on``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from email.utils import formatdate

_END = b"\r\n\r\n"


def _answer() -> bytes:
    date = formatdate(time.time(), usegmt=True)
    return (
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Date: {date}\r\nX-Nsq-Content-Type: nsq; version=1.0\r\n\r\nOK"
    ).encode()


class _Conn(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        answers = 0
        pos = 0
        while True:
            end = buf.find(_END, pos)
            if end < 0:
                break
            length = 0
            at = buf.find(b"ength:", pos, end)  # Content-Length / content-length
            if at >= 0:
                stop = buf.find(b"\r\n", at, end + 2)
                length = int(buf[at + 6 : stop])
            if len(buf) < end + 4 + length:
                break
            pos = end + 4 + length
            answers += 1
        if pos:
            del buf[:pos]
        if answers and self.transport is not None:
            self.transport.write(_ANSWER * answers)


_ANSWER = _answer()


async def _serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Conn, host, port, reuse_address=True)
    sock_host, sock_port = server.sockets[0].getsockname()[:2]
    print(f"HTTP: listening on {sock_host}:{sock_port}", file=sys.stderr, flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--http-address", default="127.0.0.1:0")
    args = parser.parse_args()
    host, _, port = args.http_address.rpartition(":")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(host, int(port)))


if __name__ == "__main__":
    main()
