"""The ports: the only way the broker core touches time, the network and randomness.

The core (``broker/wire``, ``broker/nsqd``, ``broker/lookupd``, ``broker/storage``,
the client core and ``model/``) never does I/O itself.  It is handed objects that
satisfy these protocols, and there are exactly two implementations of each:

* ``broker/runtime/`` adapts them to a real asyncio event loop (production), and
* ``nsqsim/`` adapts them to a simpy environment (deterministic simulation).

The network shape is asyncio's own Protocol/Transport pair, because it maps
one-to-one onto both runtimes and is also the fastest way to do networking in
asyncio: the runtime calls a ``ConnectionHandler`` with bytes, and the handler
writes bytes to a ``Connection``.  Nothing here is a coroutine.

Back-pressure follows asyncio too: a ``Connection`` calls its handler's
``pause_writing`` when the bytes it has buffered for the peer pass its high-water
mark and ``resume_writing`` when they drain, and the handler may call
``pause_reading``/``resume_reading`` to stop taking input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

__all__ = [
    "Clock",
    "Connection",
    "ConnectionHandler",
    "DatagramSender",
    "File",
    "FileSystem",
    "HandlerFactory",
    "Listener",
    "Logger",
    "Network",
    "Random",
    "Timer",
]


class Timer(Protocol):
    """A pending call made by ``Clock.call_later``."""

    def cancel(self) -> None:
        """Stop the call from happening; harmless if it already ran or was cancelled."""
        ...


class Clock(Protocol):
    """Time, read and scheduled.  The core never reads time any other way."""

    def now(self) -> float:
        """Monotonic seconds, for deadlines and intervals."""
        ...

    def wall_ns(self) -> int:
        """Unix time in nanoseconds, for message timestamps and stats."""
        ...

    def call_later(self, delay: float, fn: Callable[[], None]) -> Timer:
        """Call ``fn()`` once, ``delay`` seconds from now (a negative delay means now).

        Calls due at the same instant run in the order they were scheduled.
        """
        ...


class Random(Protocol):
    """The one source of randomness; seeded in the simulator."""

    def random(self) -> float:
        """A float in [0.0, 1.0)."""
        ...

    def randrange(self, n: int) -> int:
        """An int in [0, n)."""
        ...


class Connection(Protocol):
    """One end of a byte stream, as the core sees it (asyncio's Transport)."""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue bytes for the peer.  Never blocks; see ``write_buffer_size``."""
        ...

    def close(self) -> None:
        """Flush what is queued, then close.  ``connection_lost`` follows."""
        ...

    def abort(self) -> None:
        """Close at once, dropping what is queued.  ``connection_lost`` follows."""
        ...

    def write_buffer_size(self) -> int:
        """Bytes queued for the peer and not yet sent."""
        ...

    def set_write_buffer_limits(self, high: int) -> None:
        """Set the high-water mark past which ``pause_writing`` is called."""
        ...

    def pause_reading(self) -> None:
        """Stop delivering ``data_received`` until ``resume_reading``."""
        ...

    def resume_reading(self) -> None: ...

    @property
    def peer_address(self) -> tuple[str, int]:
        """(host, port) of the remote end; (path or "", -1) on a Unix socket (``broker.wire.netaddr``)."""
        ...

    @property
    def local_address(self) -> tuple[str, int]:
        """(host, port) of this end; (path or "", -1) on a Unix socket."""
        ...


class ConnectionHandler(Protocol):
    """What the core implements for each connection (asyncio's Protocol)."""

    def connection_made(self, conn: Connection) -> None:
        """The stream is open; ``conn`` is how to write to it."""
        ...

    def data_received(self, data: bytes) -> None:
        """Bytes arrived, in order, in chunks of any size."""
        ...

    def eof_received(self) -> None:
        """The peer closed its sending side; ``connection_lost`` follows."""
        ...

    def connection_lost(self, exc: Exception | None) -> None:
        """The stream is closed; ``exc`` is None for a clean close."""
        ...

    def pause_writing(self) -> None:
        """The connection's write buffer passed its high-water mark."""
        ...

    def resume_writing(self) -> None:
        """The connection's write buffer drained below its low-water mark."""
        ...


HandlerFactory = Callable[[], ConnectionHandler]


class Listener(Protocol):
    """A listening socket, made by a runtime for a ``HandlerFactory``."""

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port): the real port when port 0 was asked for; (path, -1) for a Unix socket."""
        ...

    def close(self) -> None:
        """Stop accepting; open connections are not touched."""
        ...


class Network(Protocol):
    """Outgoing connections (nsqd to nsqlookupd, to an auth server, ...)."""

    def connect(self, host: str, port: int, handler: ConnectionHandler) -> None:
        """Open a stream to (host, port); port -1 means host is the path of a Unix socket.

        On success ``handler.connection_made`` is called; on failure
        ``handler.connection_lost`` is called with the error and
        ``connection_made`` never is.
        """
        ...


class DatagramSender(Protocol):
    """Outgoing datagrams (nsqd's statsd packets): UDP's fire and forget.

    Nothing comes back: a datagram may be lost, and a failure to send it (a
    host that does not resolve, no route, a full socket buffer) is not
    reported, as a write to Go's unconnected UDP socket reports nothing useful
    either.
    """

    def send_to(self, host: str, port: int, data: bytes) -> None:
        """Send ``data`` as one datagram to (host, port); never blocks, never raises."""
        ...


class Logger(Protocol):
    """Where the core's log lines go; levels are nsqd's (DEBUG, INFO, WARN, ERROR, FATAL)."""

    def log(self, level: str, msg: str) -> None: ...


class File(Protocol):
    """An open file of a ``FileSystem``; offsets count bytes from its start.

    Bytes written are volatile until ``fsync`` returns: a crash keeps what the
    last successful ``fsync`` covered and may keep any prefix of what was
    written after it, so the tail of a file can end part way through a write.
    """

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append all of ``data`` at the end of the file.

        Raises ``OSError`` (ENOSPC, EIO, ...) when it cannot; a prefix of
        ``data`` may then have been written.
        """
        ...

    def read_at(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes from ``offset``; fewer only where the file ends."""
        ...

    def size(self) -> int:
        """The current length, including bytes not yet made durable."""
        ...

    def truncate(self, size: int) -> None:
        """Cut the file to ``size`` bytes; durable, like a write, only after ``fsync``."""
        ...

    def fsync(self) -> None:
        """Make the file's bytes and length durable; raises ``OSError`` if the disk fails.

        It does not make the file's name durable: see ``FileSystem.fsync_dir``.
        After a failed fsync, what reached the disk is unknown, and a later fsync
        succeeding says nothing about the bytes the failed one covered.
        """
        ...

    def close(self) -> None: ...


class FileSystem(Protocol):
    """Files, for the disk queue: just what it needs and no more.

    Paths are strings with ``/`` separators.  Failures raise ``OSError``
    (``FileNotFoundError`` for a missing path).  Crash semantics (POSIX at its
    strictest, which is what the simulated file system models):

    * a file's bytes are durable only up to its last ``File.fsync``;
    * creating, renaming and removing a name is durable only after
      ``fsync_dir`` of the directory holding it; until then a crash may undo
      it, and the undone changes are always the latest ones (a directory is
      never left with a later change and without an earlier one);
    * ``rename`` is atomic: after a crash the name refers to the old file or to
      the new one, never to a mixture.
    """

    def open_append(self, path: str) -> File:
        """Open ``path`` for reading and appending, creating it empty if missing."""
        ...

    def open_read(self, path: str) -> File:
        """Open an existing file for reading only."""
        ...

    def rename(self, src: str, dst: str) -> None:
        """Atomically give ``src`` the name ``dst``, replacing any file there."""
        ...

    def remove(self, path: str) -> None: ...

    def listdir(self, path: str) -> list[str]:
        """The names (not paths) in a directory, sorted."""
        ...

    def file_size(self, path: str) -> int: ...

    def mkdir(self, path: str) -> None:
        """Create a directory and its parents; harmless if it exists."""
        ...

    def fsync_dir(self, path: str) -> None:
        """Make the creations, renames and removals in a directory durable."""
        ...
