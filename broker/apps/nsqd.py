"""The ``nsqd`` daemon: Go nsqd 1.3.0's command line and life cycle around the core.

Start-up follows ``apps/nsqd/main.go`` and ``nsqd.New``: parse the flags
(``--version`` prints and exits before anything else), read ``--config``,
resolve the options, lock the data path, check the options (and refuse a
security flag that has no effect yet, see ``goflags.check_without_effect``), log the version
and node id, check that the data path takes a metadata file (``Start``'s load
and persist of nsqd.dat), bind the TCP and HTTP listeners, and only then start the node and
begin accepting.  Any failure there is one FATAL line and exit status 1; the
lines that Go's ``main.go`` prints itself carry its fixed ``[nsqd] `` prefix,
whatever ``--log-prefix`` says.

Shutdown: the first SIGINT or SIGTERM closes the listeners, closes the node
(which closes every client connection), and lets the loop run until the
connections have flushed and closed, for at most ``SHUTDOWN_DRAIN_SECONDS``;
then exit 0.  A second signal meanwhile exits at once.

``--tcp-address`` and ``--http-address`` may be Unix socket paths, by Go
1.3.0's rule (``type_of_addr``: whatever is not ``host:port``); closing the
listener at exit removes the socket file, and a path already taken is refused
(``broker.runtime.daemon.bind``).

Deliberate differences from Go nsqd: an empty ``--tcp-address`` is refused
(Go listens on an unnamed Unix socket); ``--verbose`` means ``--log-level=debug``
(Go 1.3.0 accepts it and ignores it); a positional argument is an error (Go
ignores it, and every flag after it); an address of ``0.0.0.0`` listens on IPv4
only and is logged as such (Go opens a dual-stack socket and logs ``[::]``).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import socket
import ssl
import sys
import zlib
from collections.abc import Callable, Sequence

from broker.apps import version_string
from broker.apps.compiled import running_compiled, use_compiled_build
from broker.apps.goflags import (
    LOG_LEVEL,
    CommandLine,
    Custom,
    FlagSet,
    check_without_effect,
    parse_go_bool,
)
from broker.apps.govalues import go_float_text
from broker.nsqd.migrate import MigrationError
from broker.nsqd.nsqd import NSQD
from broker.nsqd.options import FLAGS, SECURITY_FLAGS, FlagSpec, Options
from broker.ports import Logger
from broker.runtime import (
    AsyncioClock,
    AsyncioDatagramSender,
    AsyncioListener,
    AsyncioNetwork,
    ConnectionRegistry,
    ListenError,
    RuntimeRandom,
    ShutdownSignals,
    StderrLogger,
    bind,
    log_loop_errors,
    type_of_addr,
)
from broker.runtime import loop as event_loop
from broker.runtime.files import OSFileSystem
from broker.runtime.memstats import GCPauses, ProcessMemoryStats, process_stats
from broker.runtime.tls import TLSConfigError, client_context, server_context
from broker.wire.netaddr import go_addr_string

__all__ = ["SHUTDOWN_DRAIN_SECONDS", "check_data_path", "check_options", "default_node_id", "flag_set", "main", "run", "serve"]

SHUTDOWN_DRAIN_SECONDS = 5.0

# Flags of Go nsqd's command line that are not options of the node.
_COMMAND_FLAGS = (
    FlagSpec("version", "", "bool", "print version string"),
    FlagSpec("config", "", "str", "path to config file"),
    FlagSpec("worker-id", "", "bool", "[deprecated] use --node-id"),
)

_TLS_VERSIONS = ("ssl3.0", "tls1.0", "tls1.1", "tls1.2", "tls1.3")


def _parse_tls_required(text: str) -> str:
    # nsqd's tlsRequiredOption: "tcp-https", or any ParseBool spelling.
    low = text.lower()
    if low == "tcp-https":
        return low
    try:
        return "true" if parse_go_bool(low) else "false"
    except ValueError:
        raise ValueError(f'strconv.ParseBool: parsing "{low}": invalid syntax') from None


def _parse_tls_min_version(text: str) -> str:
    # nsqd's tlsMinVersionOption; an empty value leaves the default in place.
    low = text.lower()
    if low == "":
        return "tls1.0"
    if low not in _TLS_VERSIONS:
        raise ValueError(f'unknown tlsVersionOption "{low}"')
    return low


_CUSTOM = {
    "log-level": LOG_LEVEL,
    "tls-required": Custom(
        parse=_parse_tls_required,
        is_bool=True,
        show_default=lambda v: None if v == "false" else str(v),
    ),
    "tls-min-version": Custom(parse=_parse_tls_min_version),
}


def default_node_id(hostname: str) -> int:
    """Go nsqd's default ``--node-id``: crc32(md5(hostname)) % 1024."""
    return zlib.crc32(hashlib.md5(hostname.encode()).digest()) % 1024


def flag_set(hostname: str) -> FlagSet[Options]:
    """nsqd's flags, with the defaults Go's ``NewOptions`` derives from the hostname."""
    defaults = Options(node_id=default_node_id(hostname), broadcast_address=hostname)
    return FlagSet("nsqd", (*_COMMAND_FLAGS, *FLAGS), defaults, _CUSTOM)


def check_options(opts: Options) -> Options:
    """The checks of ``nsqd.New``; raises ValueError with Go's message."""
    if not 1 <= opts.max_deflate_level <= 9:
        raise ValueError("--max-deflate-level must be [1,9]")
    if not 0 <= opts.node_id < 1024:
        raise ValueError("--node-id must be [0,1024)")
    if opts.tls_client_auth_policy and opts.tls_required == "false":
        opts = opts.replace(tls_required="true")
    if opts.auth_http_request_method not in ("get", "post"):
        raise ValueError("--auth-http-request-method must be get or post")
    if opts.tls_required != "false" and not (opts.tls_cert and opts.tls_key):
        raise ValueError("cannot require TLS client connections without TLS key and cert")
    for p in opts.e2e_processing_latency_percentiles:
        if not 0 < p <= 1:
            raise ValueError(f"invalid E2E processing latency percentile: {go_float_text(p)}")
    return opts


def _lock_data_path(path: str) -> int:
    # internal/dirlock: an exclusive flock on the directory, held for the process's life.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise ValueError(f"failed to lock data-path: open {path}: {_strerror(exc)}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise ValueError(
            f"failed to lock data-path: cannot flock directory {path} - {_strerror(exc)}"
            " (possibly in use by another instance of nsqd)"
        ) from None
    return fd


def check_data_path(path: str) -> None:
    """What ``program.Start`` finds before nsqd listens: nsqd.dat readable, and a new one writable.

    Go nsqd loads its metadata and persists it once before it opens a
    listener, so a data path that is a regular file, or a directory it cannot
    write, ends it at start rather than failing the first publish.  This makes
    the same two attempts, with Go's messages (raises ValueError).
    """
    fn = os.path.join(path, "nsqd.dat")
    try:
        with open(fn, "rb"):
            pass
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ValueError(f"failed to load metadata - failed to read metadata from {fn} - open {fn}: {_strerror(exc)}") from None
    tmp = f"{fn}.{os.getpid()}.tmp"  # the temporary name PersistMetadata writes before its rename
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise ValueError(f"failed to persist metadata - open {tmp}: {_strerror(exc)}") from None
    try:
        os.fsync(fd)
    except OSError as exc:
        raise ValueError(f"failed to persist metadata - sync {tmp}: {_strerror(exc)}") from None
    finally:
        os.close(fd)
        os.unlink(tmp)


def _strerror(exc: OSError) -> str:
    return os.strerror(exc.errno).lower() if exc.errno else str(exc)


def run(argv: Sequence[str]) -> int:
    """The whole daemon; returns the exit status (flag errors exit from inside)."""
    hostname = socket.gethostname()
    flags = flag_set(hostname)
    command = CommandLine("nsqd", flags, argv)
    if command.opts is None:
        return command.status
    opts, fatal = command.opts, command.fatal
    if not opts.data_path:
        opts = opts.replace(data_path=os.getcwd())
    if opts.verbose:
        opts = opts.replace(log_level="debug")
    logger = StderrLogger(opts.log_prefix, opts.log_level)
    for alias, name in command.deprecated:
        logger.log("WARN", f"use of the --{alias} command line flag is deprecated (use --{name})")

    ignored: list[str] = []
    try:
        lock = _lock_data_path(opts.data_path)
    except ValueError as exc:
        return fatal(f"failed to instantiate nsqd - {exc}")
    try:
        opts = check_options(opts)
        check_without_effect(flags, opts, SECURITY_FLAGS, ignored.append)
        tls_context = build_tls_context(opts)
        auth_tls_context = build_auth_tls_context(opts)
    except ValueError as exc:
        os.close(lock)
        return fatal(f"failed to instantiate nsqd - {exc}")
    try:
        loop_name, loop_factory = event_loop.choose_loop()
    except event_loop.EventLoopError as exc:
        os.close(lock)
        return fatal(f"failed to instantiate nsqd - {exc}")
    try:
        logger.log("INFO", version_string("nsqd"))
        logger.log("INFO", f"ID: {opts.node_id}")
        # Beyond Go nsqd's lines: what this process runs on (see README, Benchmarks).
        logger.log("INFO", f"running on {loop_name}, {'compiled' if running_compiled() else 'pure Python'} core")
        for warning in ignored:
            logger.log("WARN", warning)
        try:
            check_data_path(opts.data_path)
        except ValueError as exc:
            return fatal(str(exc))
        return event_loop.run(serve(opts, logger, hostname, fatal, tls_context, auth_tls_context), loop_factory)
    finally:
        os.close(lock)


def build_tls_context(opts: Options) -> ssl.SSLContext | None:
    """nsqd.New's buildTLSConfig; raises ValueError with its message."""
    try:
        return server_context(
            opts.tls_cert,
            opts.tls_key,
            client_auth_policy=opts.tls_client_auth_policy,
            root_ca_file=opts.tls_root_ca_file,
            min_version=opts.tls_min_version,
        )
    except TLSConfigError as exc:
        raise ValueError(f"failed to build TLS config - {exc}") from None


def build_auth_tls_context(opts: Options) -> ssl.SSLContext | None:
    """nsqd.New's buildClientTLSConfig (how an https:// auth server is verified); raises ValueError."""
    if not opts.auth_http_addresses:
        return None
    try:
        return client_context(root_ca_file=opts.tls_root_ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"failed to build client TLS config - {exc}") from None


async def serve(
    opts: Options,
    logger: Logger,
    hostname: str,
    fatal: Callable[[str], int],
    tls_context: ssl.SSLContext | None = None,
    auth_tls_context: ssl.SSLContext | None = None,
) -> int:
    """Run one node on the current loop until SIGINT or SIGTERM; the exit status."""
    loop = asyncio.get_running_loop()
    log_loop_errors(loop, logger)
    signals = ShutdownSignals(loop)
    signals.install()
    datagrams = AsyncioDatagramSender(loop)
    gc_pauses = GCPauses()
    gc_pauses.install()
    try:
        registry = ConnectionRegistry()
        nsqd = NSQD(
            opts, clock=AsyncioClock(loop), rand=RuntimeRandom(), logger=logger, hostname=hostname, fs=OSFileSystem(),
            network=AsyncioNetwork(loop, registry=registry, connect_timeout=1.0), datagrams=datagrams,
            tls_context=tls_context, auth_tls_context=auth_tls_context,
        )
        nsqd.memory_stats = ProcessMemoryStats(gc_pauses)
        nsqd.process_stats = process_stats
        set_level = getattr(logger, "set_level", None)
        if set_level is not None:
            nsqd.log_level_changed = set_level
        listeners: dict[str, AsyncioListener] = {}
        try:
            # nsqd 1.3.0: an address that is not host:port is a Unix socket's path (util.TypeOfAddr).
            listeners["TCP"] = await bind(
                opts.tcp_address, nsqd.tcp_handler, unix=type_of_addr(opts.tcp_address) == "unix",
                registry=registry, start_serving=False,
            )
            if opts.http_address:
                listeners["HTTP"] = await bind(
                    opts.http_address, nsqd.http_handler, unix=type_of_addr(opts.http_address) == "unix",
                    registry=registry, start_serving=False,
                )
            if tls_context is not None and opts.https_address:
                # nsqd listens for HTTPS whenever TLS is configured (default :4152).
                listeners["HTTPS"] = await bind(
                    opts.https_address, nsqd.https_handler, unix=False, registry=registry, start_serving=False,
                )
        except ListenError as exc:
            for listener in listeners.values():
                listener.close()
            return fatal(f"failed to instantiate nsqd - {exc}")

        http = listeners.get("HTTP")
        https = listeners.get("HTTPS")
        nsqd.set_listen_addresses(
            listeners["TCP"].address, http.address if http else ("", 0), https.address if https else ("", 0)
        )
        try:
            nsqd.start()
        except MigrationError as exc:  # a Go data directory it could not take over: nothing opened yet
            for listener in listeners.values():
                listener.close()
            return fatal(f"failed to take over Go nsqd data in {opts.data_path} - {exc}")
        for proto, listener in listeners.items():
            await listener.start_serving()
            logger.log("INFO", f"{proto}: listening on {go_addr_string(listener.address)}")

        await signals.wait()

        for proto, listener in listeners.items():
            listener.close()
            logger.log("INFO", f"{proto}: closing {go_addr_string(listener.address)}")
        nsqd.close()
        if not await registry.drained(SHUTDOWN_DRAIN_SECONDS):
            logger.log("WARN", f"{len(registry)} connections still open after {SHUTDOWN_DRAIN_SECONDS:g}s; aborting them")
            registry.abort_all()
            await registry.drained(SHUTDOWN_DRAIN_SECONDS)
        return 0
    finally:
        datagrams.close()
        gc_pauses.uninstall()
        signals.uninstall()


def main() -> None:
    use_compiled_build(sys.argv[1:])
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
