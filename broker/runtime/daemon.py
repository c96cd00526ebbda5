"""What every daemon (nsqd, nsqlookupd) needs around its core on a real loop.

* ``bind``: listen on a ``host:port`` flag value, or on a Unix socket's path,
  failing with the message Go's daemons print (``listen (0.0.0.0:4150) failed -
  listen tcp 0.0.0.0:4150: bind: address already in use``).  A socket path
  that is taken fails as Go's does, whatever is there; a stale socket file left
  by a daemon that did not exit cleanly is not removed (Go does not either),
  but the message says which of the three it is.
* ``ShutdownSignals``: SIGINT and SIGTERM ask for a graceful exit; a second one
  while that exit is under way ends the process at once (exit status 128+signal,
  the shell's convention for "killed by a signal").
* ``log_loop_errors``: an exception that escapes a callback (a core bug, say in
  ``data_received``) is reported through the daemon's logger at ERROR, with its
  traceback, instead of through the ``logging`` module; asyncio has already
  closed the offending connection by then.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import socket
import stat
import sys
import traceback
from collections.abc import Callable
from types import FrameType
from typing import Any

from broker.ports import HandlerFactory, Logger
from broker.runtime.addr import AddressError, split_host_port
from broker.runtime.stream import AsyncioListener, ConnectionRegistry, listen, listen_unix

__all__ = ["ListenError", "ShutdownSignals", "bind", "log_loop_errors"]


class ListenError(Exception):
    """A listener could not be opened; ``str()`` is Go's ``listen (...) failed - ...``."""


async def bind(
    address: str,
    factory: HandlerFactory,
    *,
    unix: bool = False,
    registry: ConnectionRegistry | None = None,
    start_serving: bool = True,
) -> AsyncioListener:
    """Listen on ``address`` (``host:port``, as a Go daemon's address flag takes it).

    ``unix``: ``address`` is the path of a Unix socket to make (the caller
    decides by its daemon's rule: ``type_of_addr`` or ``is_socket_path``).
    """
    if unix:
        return await _bind_unix(address, factory, registry=registry, start_serving=start_serving)
    try:
        host, port_text = split_host_port(address)
    except AddressError as exc:
        raise ListenError(f"listen ({address}) failed - listen tcp: {exc}") from exc
    try:
        port = _port_number(port_text)
    except OSError as exc:
        raise ListenError(f"listen ({address}) failed - listen tcp: lookup tcp/{port_text}: unknown port") from exc
    if port > 65535:
        raise ListenError(f"listen ({address}) failed - listen tcp: address {port_text}: invalid port")
    try:
        return await listen(host, port, factory, registry=registry, start_serving=start_serving)
    except socket.gaierror as exc:
        raise ListenError(f"listen ({address}) failed - listen tcp: lookup {host}: {exc.strerror}") from exc
    except OSError as exc:
        if exc.errno is not None:
            why = f"listen tcp {address}: bind: {os.strerror(exc.errno).lower()}"
        else:
            why = str(exc)
        raise ListenError(f"listen ({address}) failed - {why}") from exc


async def _bind_unix(
    path: str, factory: HandlerFactory, *, registry: ConnectionRegistry | None, start_serving: bool
) -> AsyncioListener:
    failed = f"listen ({path}) failed - listen unix {path}: bind"
    if not path:
        # Go would bind an unnamed socket, which Linux gives a random abstract name no client can know.
        raise ListenError("listen () failed - listen unix: an empty socket path")
    try:
        return await listen_unix(path, factory, registry=registry, start_serving=start_serving)
    except OSError as exc:
        if exc.errno is None:  # Python's own check: longer than sun_path holds
            raise ListenError(
                f"{failed}: invalid argument (a socket path is at most {_SUN_PATH_MAX} bytes)"
            ) from exc
        why = f"{failed}: {os.strerror(exc.errno).lower()}"
        if exc.errno == errno.EADDRINUSE:
            why += f" ({_in_the_way(path)})"
        raise ListenError(why) from exc


_SUN_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) on Linux, less the terminating NUL


def _in_the_way(path: str) -> str:
    """What holds the path a Unix listener wanted, in words for the operator."""
    if path.startswith("@"):
        return "another process is listening on it"
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return "it was there a moment ago"
    if not stat.S_ISSOCK(mode):
        return f"{path} exists and is not a socket; nothing was changed"
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except OSError:
        return "a stale socket file, left by a process that did not exit cleanly: remove it and start again"
    finally:
        probe.close()
    return "another process is listening on it"


def _port_number(text: str) -> int:
    # Go takes a service name where a port number goes, and "" for "any free port".
    if text.isascii() and text.isdigit():
        return int(text)
    if not text:
        return 0
    return socket.getservbyname(text, "tcp")


def _exit_now(signum: int) -> None:
    sys.stderr.flush()
    os._exit(128 + signum)


class ShutdownSignals:
    """Turns SIGINT/SIGTERM into an awaitable request to stop.

    Plain ``signal.signal`` handlers, not ``loop.add_signal_handler``: Python
    runs them between bytecodes even while the loop is busy in synchronous
    code (a long ``close()``), so the second signal really does end the process
    at once; the first only wakes the loop.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM),
        on_repeat: Callable[[int], None] = _exit_now,
    ) -> None:
        self._loop = loop
        self._signals = signals
        self._on_repeat = on_repeat
        self._requested = asyncio.Event()
        self._previous: dict[signal.Signals, Any] = {}
        self.received: int | None = None

    def install(self) -> None:
        for sig in self._signals:
            self._previous[sig] = signal.signal(sig, self._on_signal)

    def uninstall(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.received is not None:
            self._on_repeat(signum)
            return
        self.received = signum
        self._loop.call_soon_threadsafe(self._requested.set)

    async def wait(self) -> int:
        """The number of the first signal, once it arrives."""
        await self._requested.wait()
        assert self.received is not None
        return self.received


def log_loop_errors(loop: asyncio.AbstractEventLoop, logger: Logger) -> None:
    """Route exceptions the loop catches in callbacks to ``logger`` at ERROR."""

    def handler(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        msg = str(context.get("message", "unhandled exception in event loop"))
        exc = context.get("exception")
        if isinstance(exc, BaseException):
            msg += "\n" + "".join(traceback.format_exception(exc)).rstrip("\n")
        logger.log("ERROR", msg)

    loop.set_exception_handler(handler)
