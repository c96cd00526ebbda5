"""The asyncio implementations of the ports in ``broker.ports`` (production runtime).

Adapters only: no broker logic lives here.  ``nsqsim/`` holds the other
implementation of each port, on simpy.
"""

from __future__ import annotations

from broker.runtime.addr import (
    AddressError,
    is_socket_path,
    join_host_port,
    split_host_port,
    type_of_addr,
)
from broker.runtime.clock import AsyncioClock
from broker.runtime.daemon import ListenError, ShutdownSignals, bind, log_loop_errors
from broker.runtime.datagram import AsyncioDatagramSender
from broker.runtime.log import LOG_LEVELS, StderrLogger, parse_log_level
from broker.runtime.randomness import RuntimeRandom
from broker.runtime.stream import (
    AsyncioListener,
    AsyncioNetwork,
    ConnectionRegistry,
    StreamConnection,
    listen,
    listen_unix,
)

__all__ = [
    "LOG_LEVELS",
    "AddressError",
    "AsyncioClock",
    "AsyncioDatagramSender",
    "AsyncioListener",
    "AsyncioNetwork",
    "ConnectionRegistry",
    "ListenError",
    "RuntimeRandom",
    "ShutdownSignals",
    "StderrLogger",
    "StreamConnection",
    "bind",
    "is_socket_path",
    "join_host_port",
    "listen",
    "listen_unix",
    "log_loop_errors",
    "parse_log_level",
    "split_host_port",
    "type_of_addr",
]
