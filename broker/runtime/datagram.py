"""The DatagramSender port on a real asyncio loop: UDP, fire and forget.

One non-blocking unconnected UDP socket per address family, opened on first
use.  A datagram to an IP literal is sent at once; one to a host name waits
for ``loop.getaddrinfo`` (the resolver runs in the loop's executor, never on
the loop), and later datagrams to the same name queue behind it, so they leave
in the order they were given.  Resolution is done afresh for each batch, as
nsqd dials statsd afresh each interval.  Whatever fails (resolution, no
route, a full socket buffer) loses the datagram and nothing else: the port
promises no more than UDP does.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

__all__ = ["AsyncioDatagramSender"]


class AsyncioDatagramSender:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._sockets: dict[int, socket.socket] = {}
        self._waiting: dict[tuple[str, int], list[bytes]] = {}  # datagrams to names being resolved
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def send_to(self, host: str, port: int, data: bytes) -> None:
        if self._closed:
            return
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            self._send_to_name(host, port, data)
            return
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        self._send(family, (host, port), data)

    def close(self) -> None:
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()

    def _send(self, family: int, address: tuple[str, int] | tuple[str, int, int, int] | tuple[int, bytes], data: bytes) -> None:
        try:
            sock = self._sockets.get(family)
            if sock is None:
                sock = socket.socket(family, socket.SOCK_DGRAM)
                sock.setblocking(False)
                self._sockets[family] = sock
            sock.sendto(data, address)
        except OSError:
            pass  # lost, as a datagram may be

    def _send_to_name(self, host: str, port: int, data: bytes) -> None:
        key = (host, port)
        queued = self._waiting.get(key)
        if queued is not None:
            queued.append(data)
            return
        self._waiting[key] = [data]
        task = self._loop.create_task(self._resolve_and_send(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve_and_send(self, key: tuple[str, int]) -> None:
        try:
            infos = await self._loop.getaddrinfo(key[0], key[1], type=socket.SOCK_DGRAM)
        except OSError:
            infos = []
        datagrams = self._waiting.pop(key, [])
        if not infos or self._closed:
            return
        family, _, _, _, address = infos[0]
        for data in datagrams:
            self._send(family, address, data)
