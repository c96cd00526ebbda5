"""The ``nsqadmin`` daemon: Go nsqadmin 1.3.0's command line and life cycle around the core.

Start-up follows ``apps/nsqadmin/main.go`` and ``nsqadmin.New``: parse the
flags (``--version`` prints and exits), read ``--config``, resolve the
options, check them as ``New`` does (exactly one of ``--lookupd-http-address``
and ``--nsqd-http-address``; a TLS cert with its key; addresses of the form
``host:port``; a ``--graphite-url`` that parses when ``--proxy-graphite``;
``--allow-config-from-cidr`` a CIDR), log the version, bind the HTTP
listener, serve.  A failure is one FATAL line and exit status 1.  Flags
without effect here get one WARNING line each at start.

The UI's files are read from the package's ``broker/admin/static`` folder
once at start, or from ``--dev-static-dir`` on every request (Go's
development mode).

Shutdown: the first SIGINT or SIGTERM closes the listener, gives up the
requests under way to nsqd and nsqlookupd, closes the connections, and exits
0 once they have flushed (at most ``SHUTDOWN_DRAIN_SECONDS``).

Deliberate differences from Go nsqadmin: addresses are checked for their
form, not resolved (a name that does not resolve fails per request, with a
warning in the answer); ``--http-client-tls-*`` have no effect, since the
HTTP client here speaks plain HTTP only (an nsqd answering 403 with an
``https_port`` is not retried over HTTPS).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import sys
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

from broker.admin.admin import NSQAdmin
from broker.admin.options import FLAGS, AdminOptions, normalize_base_path
from broker.apps import version_string
from broker.apps.goflags import LOG_LEVEL, CommandLine, FlagSet, check_without_effect
from broker.client.address import split_address
from broker.nsqd.options import FlagSpec
from broker.ports import Logger
from broker.runtime import (
    AsyncioClock,
    AsyncioNetwork,
    ConnectionRegistry,
    ListenError,
    ShutdownSignals,
    StderrLogger,
    bind,
    log_loop_errors,
)
from broker.wire.netaddr import go_addr_string

__all__ = ["SHUTDOWN_DRAIN_SECONDS", "PackageAssets", "check_options", "flag_set", "main", "run", "serve"]

SHUTDOWN_DRAIN_SECONDS = 5.0

_COMMAND_FLAGS = (
    FlagSpec("config", "", "str", "path to config file"),
    FlagSpec("version", "", "bool", "print version string"),
)


def flag_set() -> FlagSet[AdminOptions]:
    return FlagSet("nsqadmin", (*_COMMAND_FLAGS, *FLAGS), AdminOptions(), {"log-level": LOG_LEVEL})


class PackageAssets:
    """The UI's files: the package's ``static/`` folder, read once; or a folder read on each request."""

    def __init__(self, dev_dir: str = "") -> None:
        self._dev_dir = Path(dev_dir) if dev_dir else None
        self._files: dict[str, bytes] = {}
        if self._dev_dir is None:
            for entry in resources.files("broker.admin").joinpath("static").iterdir():
                if entry.is_file():
                    self._files[entry.name] = entry.read_bytes()

    def get(self, name: str) -> bytes | None:
        if "/" in name or name.startswith("."):
            return None
        if self._dev_dir is None:
            return self._files.get(name)
        try:
            return (self._dev_dir / name).read_bytes()
        except OSError:
            return None


def check_options(opts: AdminOptions) -> AdminOptions:
    """``nsqadmin.New``'s checks; the options with the base path normalized.  ValueError says what is wrong."""
    if not opts.nsqd_http_addresses and not opts.nsqlookupd_http_addresses:
        raise ValueError("--nsqd-http-address or --lookupd-http-address required")
    if opts.nsqd_http_addresses and opts.nsqlookupd_http_addresses:
        raise ValueError("use --nsqd-http-address or --lookupd-http-address not both")
    if opts.http_client_tls_cert and not opts.http_client_tls_key:
        raise ValueError("--http-client-tls-key must be specified with --http-client-tls-cert")
    if opts.http_client_tls_key and not opts.http_client_tls_cert:
        raise ValueError("--http-client-tls-cert must be specified with --http-client-tls-key")
    for flag, addresses in (("lookupd-http-address", opts.nsqlookupd_http_addresses), ("nsqd-http-address", opts.nsqd_http_addresses)):
        for address in addresses:
            try:
                split_address(address)
            except ValueError as exc:
                raise ValueError(f"failed to resolve --{flag} ({address}) - {exc}") from None
    if opts.allow_config_from_cidr:
        try:
            ipaddress.ip_network(opts.allow_config_from_cidr, strict=False)
            if "/" not in opts.allow_config_from_cidr:
                raise ValueError("not a CIDR")
        except ValueError:
            raise ValueError(
                f"failed to parse --allow-config-from-cidr ({opts.allow_config_from_cidr}) - invalid CIDR address: {opts.allow_config_from_cidr}"
            ) from None
    return opts.replace(base_path=normalize_base_path(opts.base_path))


def run(argv: Sequence[str]) -> int:
    """The whole daemon; returns the exit status (flag errors exit from inside)."""
    flags = flag_set()
    command = CommandLine("nsqadmin", flags, argv)
    if command.opts is None:
        return command.status
    opts, fatal = command.opts, command.fatal
    # The core filters by --log-level itself (PUT /config/log_level changes it at run time).
    logger = StderrLogger(opts.log_prefix, "debug")
    try:
        opts = check_options(opts)
        check_without_effect(flags, opts, (), lambda line: logger.log("WARN", line))
    except ValueError as exc:
        return fatal(f"failed to instantiate nsqadmin - {exc}")
    return asyncio.run(serve(opts, logger, socket.gethostname(), fatal))


async def serve(opts: AdminOptions, logger: Logger, hostname: str, fatal: Callable[[str], int]) -> int:
    """Run nsqadmin on the current loop until SIGINT or SIGTERM; the exit status."""
    loop = asyncio.get_running_loop()
    log_loop_errors(loop, logger)
    signals = ShutdownSignals(loop)
    signals.install()
    try:
        registry = ConnectionRegistry()
        admin = NSQAdmin(
            opts,
            clock=AsyncioClock(loop),
            network=AsyncioNetwork(loop, connect_timeout=opts.http_client_connect_timeout),
            logger=logger,
            hostname=hostname,
            assets=PackageAssets(opts.dev_static_dir),
        )
        admin.log("INFO", version_string("nsqadmin"))
        try:
            listener = await bind(opts.http_address, admin.http_handler, registry=registry, start_serving=False)
        except ListenError as exc:
            return fatal(f"failed to instantiate nsqadmin - {exc}")
        await listener.start_serving()
        admin.log("INFO", f"HTTP: listening on {go_addr_string(listener.address)}")

        await signals.wait()

        listener.close()
        admin.log("INFO", f"HTTP: closing {go_addr_string(listener.address)}")
        admin.close()
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
