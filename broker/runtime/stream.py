"""TCP and Unix-domain streams on asyncio: the Connection, Listener and Network ports.

The core's ``ConnectionHandler`` already has the shape of an ``asyncio.Protocol``,
so one small object per connection is both the asyncio protocol (called by the
transport) and the core's ``Connection`` (called by the handler).  Bytes go
from the transport to ``handler.data_received`` with one call and no copy:
asyncio hands over a read of up to 256 KiB at a time, so this adapter costs a
function call per read batch, never per message.

TCP_NODELAY: asyncio (3.7 on) sets it on every TCP socket it wraps in a
transport, accepted or connected, so the adapter does not; a test checks it.

Python 3.12 changed ``Transport.write`` to keep a reference to a buffer it could
not send at once, instead of copying it, and uvloop may do the same; a core
that reuses a ``bytearray`` after ``write`` would then see it resent mutated
(or fail to resize it).  A mutable buffer is therefore copied before it is
handed over (the core writes ``bytes`` on its hot paths: nothing to copy).

``ConnectionRegistry`` tracks the live connections of a daemon, so that a
graceful exit can wait for their buffers to flush before the loop stops.

Unix sockets (``listen_unix``, and ``AsyncioNetwork.connect`` to port
``UNIX_PORT``) carry their addresses as ``(path, UNIX_PORT)``.  The socket
file is made here rather than by ``loop.create_unix_server(path=...)``,
because asyncio silently unlinks a socket file already at the path, a live
daemon's included; Go's ``net.Listen("unix", ...)`` fails instead, and so does
``listen_unix``.  Closing the listener removes the file it made, as Go's
``UnixListener.Close`` does, unless another has replaced it meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from typing import cast

from broker.ports import Connection, ConnectionHandler, HandlerFactory
from broker.wire.netaddr import UNIX_PORT

__all__ = [
    "AsyncioListener",
    "AsyncioNetwork",
    "ConnectionRegistry",
    "StreamConnection",
    "listen",
    "listen_unix",
]

class ConnectionRegistry:
    """The open connections of one daemon (accepted and outgoing)."""

    __slots__ = ("_empty", "_live")

    def __init__(self) -> None:
        self._live: set[StreamConnection] = set()
        self._empty = asyncio.Event()
        self._empty.set()

    def __len__(self) -> int:
        return len(self._live)

    def add(self, conn: StreamConnection) -> None:
        self._live.add(conn)
        self._empty.clear()

    def discard(self, conn: StreamConnection) -> None:
        self._live.discard(conn)
        if not self._live:
            self._empty.set()

    async def drained(self, timeout: float) -> bool:
        """Wait until every connection is closed; False if ``timeout`` passed first."""
        try:
            await asyncio.wait_for(self._empty.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def abort_all(self) -> None:
        for conn in list(self._live):
            conn.abort()


class StreamConnection(asyncio.Protocol):
    """One TCP connection: asyncio's protocol on one side, the core's Connection on the other."""

    __slots__ = ("_closed", "_handler", "_local", "_peer", "_registry", "_transport")

    def __init__(self, handler: ConnectionHandler, registry: ConnectionRegistry | None = None) -> None:
        self._handler = handler
        self._registry = registry
        self._transport: asyncio.Transport | None = None
        self._closed = False
        self._peer: tuple[str, int] = ("", 0)
        self._local: tuple[str, int] = ("", 0)

    # -- asyncio.Protocol: the transport calls these -----------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._peer = _address(transport.get_extra_info("peername"))
        self._local = _address(transport.get_extra_info("sockname"))
        if self._registry is not None:
            self._registry.add(self)
        self._handler.connection_made(self)

    def data_received(self, data: bytes) -> None:
        self._handler.data_received(data)

    def eof_received(self) -> None:
        # Returning None lets the transport close itself, as the port promises.
        self._handler.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._registry is not None:
            self._registry.discard(self)
        self._handler.connection_lost(exc)

    def pause_writing(self) -> None:
        self._handler.pause_writing()

    def resume_writing(self) -> None:
        self._handler.resume_writing()

    # -- the core's Connection --------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        # After close() asyncio drops writes but logs a warning for each one past
        # the fifth; the core may race a write with a close, so drop them quietly.
        if self._closed or self._transport is None:
            return
        if type(data) is not bytes:
            data = bytes(data)
        self._transport.write(data)

    def close(self) -> None:
        if self._closed or self._transport is None:
            return
        self._closed = True
        self._transport.close()

    def abort(self) -> None:
        if self._transport is None:
            return
        self._closed = True
        self._transport.abort()

    def write_buffer_size(self) -> int:
        if self._transport is None:
            return 0
        return self._transport.get_write_buffer_size()

    def set_write_buffer_limits(self, high: int) -> None:
        if self._transport is not None:
            self._transport.set_write_buffer_limits(high=high)

    def pause_reading(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._transport is not None:
            self._transport.resume_reading()

    @property
    def peer_address(self) -> tuple[str, int]:
        return self._peer

    @property
    def local_address(self) -> tuple[str, int]:
        return self._local

    def extra_info(self, name: str) -> object:
        """The transport's ``get_extra_info(name)`` (``"socket"``, ``"sslcontext"``, ...)."""
        return None if self._transport is None else self._transport.get_extra_info(name)


def _address(info: object) -> tuple[str, int]:
    # IPv4 names are (host, port), IPv6 ones (host, port, flowinfo, scope_id);
    # a Unix socket's is its path (str), "" when unnamed, or bytes from a NUL
    # for one in the abstract namespace, written "@name" as Go does.
    if isinstance(info, tuple) and len(info) >= 2:
        return str(info[0]), int(info[1])
    if isinstance(info, bytes):
        info = info.decode("utf-8", "surrogateescape")
    if isinstance(info, str):
        return ("@" + info[1:] if info.startswith("\0") else info), UNIX_PORT
    return ("", 0)


class _Refused:
    """The handler of a connection whose real handler could not be made: abort it."""

    def connection_made(self, conn: Connection) -> None:
        conn.abort()

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        pass

    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        pass


class AsyncioListener:
    """A listening TCP or Unix socket whose connections each get a handler from a factory."""

    __slots__ = ("_address", "_server", "_socket_file")

    def __init__(self, server: asyncio.Server, socket_file: tuple[str, int] | None = None) -> None:
        self._server = server
        # Read once: the sockets are gone after close(), the address is still asked for.
        self._address = _address(server.sockets[0].getsockname())
        self._socket_file = socket_file  # (path, inode) of the file to remove on close

    @property
    def address(self) -> tuple[str, int]:
        return self._address

    async def start_serving(self) -> None:
        """Begin accepting (for a listener made with ``start_serving=False``)."""
        await self._server.start_serving()

    def close(self) -> None:
        self._server.close()
        if self._socket_file is not None:
            path, inode = self._socket_file
            self._socket_file = None
            _remove_socket_file(path, inode)


def _remove_socket_file(path: str, inode: int) -> None:
    try:
        if os.stat(path).st_ino == inode:
            os.unlink(path)
    except FileNotFoundError:
        pass  # removed already (Python 3.13's server does it itself)


async def listen(
    host: str,
    port: int,
    factory: HandlerFactory,
    *,
    registry: ConnectionRegistry | None = None,
    start_serving: bool = True,
) -> AsyncioListener:
    """Listen on (host, port); port 0 picks a free port (see ``address``).

    ``host`` "" and "0.0.0.0" mean every IPv4 interface; an IPv6 host may come
    bracketed.  ``start_serving=False`` binds without accepting yet, so a daemon
    can learn its real ports and finish starting before the first client.
    """
    loop = asyncio.get_running_loop()
    if host in ("", "0.0.0.0"):
        host = "0.0.0.0"
    elif host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    server = await loop.create_server(
        _protocol_factory(loop, factory, registry),
        host,
        port,
        reuse_address=True,
        backlog=socket.SOMAXCONN,
        start_serving=start_serving,
    )
    return AsyncioListener(server)


async def listen_unix(
    path: str,
    factory: HandlerFactory,
    *,
    registry: ConnectionRegistry | None = None,
    start_serving: bool = True,
) -> AsyncioListener:
    """Listen on the Unix socket ``path`` (``@name``: Linux's abstract namespace).

    Raises OSError as ``bind(2)`` does, EADDRINUSE whenever something is at the
    path already: a live socket, a stale one, or a file that is no socket.
    The file gets the mode the umask leaves (as Go's, 0777 &^ umask).
    """
    loop = asyncio.get_running_loop()
    abstract = path.startswith("@")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind("\0" + path[1:] if abstract else path)
        socket_file = None if abstract else (path, os.stat(path).st_ino)
        sock.setblocking(False)
        sock.listen(socket.SOMAXCONN)
    except BaseException:
        sock.close()
        raise
    try:
        server = await loop.create_unix_server(
            _protocol_factory(loop, factory, registry),
            sock=sock,
            backlog=socket.SOMAXCONN,
            start_serving=start_serving,
        )
    except BaseException:
        sock.close()
        if socket_file is not None:
            _remove_socket_file(*socket_file)
        raise
    return AsyncioListener(server, socket_file)


def _protocol_factory(
    loop: asyncio.AbstractEventLoop, factory: HandlerFactory, registry: ConnectionRegistry | None
) -> Callable[[], StreamConnection]:
    def protocol() -> StreamConnection:
        try:
            return StreamConnection(factory(), registry)
        except Exception as exc:
            # Were it to escape, asyncio would report it only in debug mode and
            # leave the socket to the garbage collector: report it, and refuse.
            loop.call_exception_handler({"message": "connection handler factory failed", "exception": exc})
            return StreamConnection(_Refused())

    return protocol


class AsyncioNetwork:
    """Outgoing TCP connections for the core (to nsqlookupd, an auth server, ...)."""

    __slots__ = ("_connect_timeout", "_loop", "_pending", "_registry")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        registry: ConnectionRegistry | None = None,
        connect_timeout: float | None = None,
    ) -> None:
        self._loop = loop
        self._registry = registry
        self._connect_timeout = connect_timeout
        # The loop holds tasks weakly; keep each connect alive until it settles.
        self._pending: set[asyncio.Task[None]] = set()

    def connect(self, host: str, port: int, handler: ConnectionHandler) -> None:
        task = self._loop.create_task(self._connect(host, port, handler))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _connect(self, host: str, port: int, handler: ConnectionHandler) -> None:
        registry = self._registry

        def protocol() -> StreamConnection:
            return StreamConnection(handler, registry)

        try:
            connecting: Awaitable[object]
            if port == UNIX_PORT:
                path = "\0" + host[1:] if host.startswith("@") else host
                connecting = self._loop.create_unix_connection(protocol, path)
            else:
                connecting = self._loop.create_connection(protocol, host, port)
            await asyncio.wait_for(connecting, self._connect_timeout)
        except OSError as exc:  # refused, unreachable, unresolvable, timed out
            handler.connection_lost(exc)
