"""The ``nsqlookupd`` daemon: Go nsqlookupd 1.3.0's command line and life cycle around the core.

Start-up follows ``apps/nsqlookupd/main.go`` and ``nsqlookupd.New``: parse the
flags (``--version`` prints and exits before anything else), read
``--config``, resolve the options, log the version, bind the TCP and HTTP
listeners, then begin accepting.  A failure there is one FATAL line and exit
status 1; the lines ``main.go`` prints itself carry its fixed
``[nsqlookupd] `` prefix, whatever ``--log-prefix`` says.

Shutdown, as nsqd's: the first SIGINT or SIGTERM closes the listeners, closes
every connection (a registered nsqd's registrations go with its connection),
and lets the loop run until the connections have flushed and closed, for at
most ``SHUTDOWN_DRAIN_SECONDS``; then exit 0.  A second signal meanwhile
exits at once.

Beyond Go nsqlookupd, which listens on TCP only: an address with a ``/`` (or a
leading ``@``) is a Unix socket's path, as nsqd's are.

Deliberate differences from Go nsqlookupd: a failure to listen reads
``failed to instantiate nsqlookupd - listen (<addr>) failed - ...`` and names
the address that failed (Go's format string drops the error into
``%!(EXTRA ...)``, and names the TCP address when the HTTP one fails); a
positional argument is an error, as for nsqd; an address of ``0.0.0.0``
listens on IPv4 only and is logged as such.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Callable, Sequence

from broker.apps import version_string
from broker.apps.goflags import LOG_LEVEL, CommandLine, FlagSet, check_without_effect
from broker.lookupd.lookupd import NSQLookupd
from broker.lookupd.options import FLAGS, LookupdOptions
from broker.nsqd.options import FlagSpec
from broker.ports import Logger
from broker.runtime import (
    AsyncioClock,
    AsyncioListener,
    ConnectionRegistry,
    ListenError,
    ShutdownSignals,
    StderrLogger,
    bind,
    is_socket_path,
    log_loop_errors,
)
from broker.wire.netaddr import go_addr_string

__all__ = ["SHUTDOWN_DRAIN_SECONDS", "flag_set", "main", "run", "serve"]

SHUTDOWN_DRAIN_SECONDS = 5.0

# Flags of Go nsqlookupd's command line that are not options of the node.
_COMMAND_FLAGS = (
    FlagSpec("version", "", "bool", "print version string"),
    FlagSpec("config", "", "str", "path to config file"),
)


def flag_set(hostname: str) -> FlagSet[LookupdOptions]:
    """nsqlookupd's flags, with the broadcast address Go's ``NewOptions`` takes from the hostname."""
    defaults = LookupdOptions(broadcast_address=hostname)
    return FlagSet("nsqlookupd", (*_COMMAND_FLAGS, *FLAGS), defaults, {"log-level": LOG_LEVEL})


def run(argv: Sequence[str]) -> int:
    """The whole daemon; returns the exit status (flag errors exit from inside)."""
    hostname = socket.gethostname()
    flags = flag_set(hostname)
    command = CommandLine("nsqlookupd", flags, argv)
    if command.opts is None:
        return command.status
    opts, fatal = command.opts, command.fatal
    logger = StderrLogger(opts.log_prefix, opts.log_level)
    logger.log("INFO", version_string("nsqlookupd"))
    try:
        check_without_effect(flags, opts, (), lambda line: logger.log("WARN", line))
    except ValueError as exc:
        return fatal(f"failed to instantiate nsqlookupd - {exc}")
    return asyncio.run(serve(opts, logger, hostname, fatal))


async def serve(opts: LookupdOptions, logger: Logger, hostname: str, fatal: Callable[[str], int]) -> int:
    """Run one node on the current loop until SIGINT or SIGTERM; the exit status."""
    loop = asyncio.get_running_loop()
    log_loop_errors(loop, logger)
    signals = ShutdownSignals(loop)
    signals.install()
    try:
        registry = ConnectionRegistry()
        lookupd = NSQLookupd(opts, clock=AsyncioClock(loop), logger=logger, hostname=hostname)
        listeners: dict[str, AsyncioListener] = {}
        try:
            # Beyond Go nsqlookupd (TCP only): an address with a "/" is a Unix socket's path.
            for proto, address, factory in (
                ("TCP", opts.tcp_address, lookupd.tcp_handler),
                ("HTTP", opts.http_address, lookupd.http_handler),
            ):
                listeners[proto] = await bind(
                    address, factory, unix=is_socket_path(address), registry=registry, start_serving=False
                )
        except ListenError as exc:
            for listener in listeners.values():
                listener.close()
            return fatal(f"failed to instantiate nsqlookupd - {exc}")

        lookupd.set_listen_addresses(listeners["TCP"].address, listeners["HTTP"].address)
        for proto, listener in listeners.items():
            await listener.start_serving()
            logger.log("INFO", f"{proto}: listening on {go_addr_string(listener.address)}")

        await signals.wait()

        for proto, listener in listeners.items():
            listener.close()
            logger.log("INFO", f"{proto}: closing {go_addr_string(listener.address)}")
        lookupd.close()
        if not await registry.drained(SHUTDOWN_DRAIN_SECONDS):
            registry.abort_all()
            await registry.drained(SHUTDOWN_DRAIN_SECONDS)
        return 0
    finally:
        signals.uninstall()


def main() -> None:
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
