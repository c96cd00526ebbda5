"""What the NSQ utilities (nsq_tail, to_nsq, nsq_to_file, ...) share.

* Flags: each tool declares a table of ``Flag`` rows, read with Go's flag
  syntax by ``goflags.FlagSet`` (``-n 5``, ``--topic=t``, repeatable flags,
  ``-h``), as the Go tools read theirs.
* ``--consumer-opt`` / ``--producer-opt``: go-nsq's ``ConfigFlag``, one
  ``option,value`` per use (a bare ``option`` means ``true``), with go-nsq's
  option names (``max_attempts``, ``backoff_multiplier``, ...).
* Errors before start-up end the program as Go's ``log.Fatal`` does: a
  timestamped line on stderr, exit status 1.  Running logs go to stderr in
  nsq's ``[prefix] date time LEVEL: message`` format.
* ``Shutdown``: the first SIGINT or SIGTERM asks for a graceful stop (stop
  consuming, finish in-flight work, close) and the tool then exits 0; a
  second one exits at once.
* ``Status``: a live one-line status on stderr, drawn with rich, only when
  stderr is a terminal (data goes to stdout or files, never mixed with it);
  otherwise the tools just log.
* ``Timings``: the ``--status-every`` latency report of nsq_to_nsq and
  nsq_to_http; ``HostPool``: their ``--mode`` for picking a destination.
"""

from __future__ import annotations

import asyncio
import math
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from rich.console import Console
from rich.live import Live
from rich.text import Text

from broker.apps import package_version
from broker.apps.goflags import (
    Custom,
    FlagSet,
    parse_go_bool,
    parse_go_duration,
    parse_go_float,
    parse_go_int,
)
from broker.client.aio_runtime import client_config
from broker.client.config import OPTIONS, ClientConfig
from broker.ports import Logger
from broker.runtime import ShutdownSignals, StderrLogger
from broker.version import NSQ_VERSION

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = [
    "Flag",
    "HostPool",
    "Shutdown",
    "Status",
    "Timings",
    "ToolError",
    "apply_client_options",
    "consumer_flags",
    "fatal",
    "log_printf",
    "parse_flags",
    "tool_config",
    "tool_logger",
    "version_line",
]

T = TypeVar("T", bound="DataclassInstance")


@dataclass(frozen=True, slots=True)
class Flag:
    """One command-line flag of a tool (a ``goflags.FlagLike``)."""

    flag: str
    attr: str  # field of the tool's options; "" for -version
    kind: str
    help: str
    deprecated_aliases: tuple[str, ...] = ()

    @property
    def cfg_name(self) -> str:
        return self.flag.replace("-", "_")


def consumer_flags(channel_default: str, *, topic_repeatable: bool = True) -> list[Flag]:
    """The flags every consuming tool has, worded as the Go tools word them."""
    return [
        Flag("version", "", "bool", "print version string"),
        Flag("channel", "channel", "str", "nsq channel" if channel_default else "NSQ channel"),
        Flag("consumer-opt", "consumer_opts", "str_list", "option to passthrough to nsq.Consumer (may be given multiple times, http://godoc.org/github.com/nsqio/go-nsq#Config)"),
        Flag("lookupd-http-address", "lookupd_http_addresses", "str_list", "lookupd HTTP address (may be given multiple times)"),
        Flag("max-in-flight", "max_in_flight", "int", "max number of messages to allow in flight"),
        Flag("nsqd-tcp-address", "nsqd_tcp_addresses", "str_list", "nsqd TCP address (may be given multiple times)"),
        Flag("topic", "topics", "str_list", "nsq topic (may be given multiple times)")
        if topic_repeatable
        else Flag("topic", "topic", "str", "nsq topic"),
    ]


def parse_flags(name: str, flags: Sequence[Flag], defaults: T, argv: Sequence[str], custom: dict[str, Custom] | None = None) -> tuple[T, bool]:
    """The tool's options from ``argv``, and whether -version was given (exits 2 on a bad flag)."""
    flag_set = FlagSet(name, flags, defaults, custom)
    parsed = flag_set.parse_or_exit(argv)
    return flag_set.resolve(parsed, {}), bool(parsed.get("version"))


class ToolError(Exception):
    """A fatal error of a tool: logged as Go's log.Fatal, exit status 1."""


def fatal(msg: str) -> int:
    """Print as Go's ``log.Fatal`` (``2006/01/02 15:04:05 msg``); the exit status, 1."""
    log_printf(msg)
    return 1


def log_printf(msg: str | bytes) -> None:
    """One line on stderr as Go's standard ``log.Printf`` writes it: ``2006/01/02 15:04:05 msg``."""
    line = msg if isinstance(msg, bytes) else msg.encode("utf-8", "backslashreplace")
    sys.stderr.flush()
    sys.stderr.buffer.write(time.strftime("%Y/%m/%d %H:%M:%S ").encode() + line + b"\n")
    sys.stderr.buffer.flush()


def version_line(name: str) -> str:
    """``<tool> v1.3.0``: the Go tools' ``-version`` line, with the NSQ version they match."""
    return f"{name} v{NSQ_VERSION}"


def tool_logger(name: str, level: str = "info", prefix: str | None = None) -> StderrLogger:
    return StderrLogger(f"[{name}] " if prefix is None else prefix, level)


_KIND_PARSERS: dict[str, Callable[[str], object]] = {
    "str": str,
    "int": parse_go_int,
    "float": parse_go_float,
    "duration": parse_go_duration,
    "bool": parse_go_bool,
}


def apply_client_options(config: ClientConfig, options: Sequence[str]) -> ClientConfig:
    """``config`` with each ``option,value`` applied (go-nsq's ``ConfigFlag``); ToolError if one is bad."""
    changes: dict[str, object] = {}
    for raw in options:
        name, sep, value = raw.partition(",")
        name = name.strip().replace("-", "_")
        if name not in OPTIONS:
            raise ToolError(f"invalid option {name}")
        attr, kind = OPTIONS[name]
        text = value if sep else "true"
        try:
            changes[attr] = _KIND_PARSERS[kind](text)
        except ValueError as exc:
            raise ToolError(f"failed to coerce option {name} ({text}) - {exc}") from None
    try:
        return config.replace(**changes)
    except (ValueError, TypeError) as exc:
        raise ToolError(str(exc)) from None


def tool_config(name: str, options: Sequence[str], **changes: object) -> ClientConfig:
    """The client settings of a tool: its user agent, ``changes``, then the passed-through options."""
    # Go's tools send "<tool>/<nsq version> go-nsq/<go-nsq version>".
    config = client_config(None, user_agent=f"{name}/{NSQ_VERSION} nsqsim/{package_version()}", **changes)
    return apply_client_options(config, options)


class Shutdown:
    """SIGINT/SIGTERM as an awaitable request to stop; a second signal exits at once."""

    def __init__(self) -> None:
        self._signals = ShutdownSignals(asyncio.get_running_loop(), (signal.SIGINT, signal.SIGTERM))

    def __enter__(self) -> Shutdown:
        self._signals.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self._signals.uninstall()

    @property
    def requested(self) -> bool:
        return self._signals.received is not None

    async def wait(self) -> int:
        return await self._signals.wait()


class Status:
    """A one-line live status on stderr when it is a terminal; nothing otherwise."""

    def __init__(self) -> None:
        console = Console(stderr=True)
        self._live: Live | None = None
        if console.is_terminal:
            self._live = Live(Text(""), console=console, refresh_per_second=4, transient=True)
            self._live.start()

    def update(self, text: str) -> None:
        if self._live is not None:
            self._live.update(Text(text, style="dim"))

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


class Timings:
    """Request durations, reported every ``every`` requests as the Go tools report them."""

    def __init__(self, every: int, logger: Logger, prefix: str = "") -> None:
        self._every = every
        self._logger = logger
        self._prefix = prefix
        self._durations: list[float] = []

    def add(self, seconds: float) -> None:
        if self._every <= 0:
            return
        self._durations.append(seconds)
        if len(self._durations) < self._every:
            return
        durations = sorted(self._durations)
        self._durations.clear()
        avg = sum(durations) / len(durations) * 1000
        self._logger.log(
            "INFO",
            f"{self._prefix}finished {len(durations)} requests - 99th: {_percentile(99, durations) * 1000:.02f}ms"
            f" - 95th: {_percentile(95, durations) * 1000:.02f}ms - avg: {avg:.02f}ms",
        )


def _percentile(perc: float, ordered: list[float]) -> float:
    # Go's tools: index ceil(perc/100 * n + 0.5), capped at the last.
    index = min(math.ceil(perc / 100 * len(ordered) + 0.5), len(ordered) - 1)
    return ordered[index]


class HostPool:
    """Destinations for ``--mode``: ``round-robin`` cycles; ``hostpool`` and
    ``epsilon-greedy`` prefer hosts that answer.

    The latter two stand in for go-hostpool: a host that fails is left out for
    ``retry_delay`` seconds, doubling while it keeps failing (up to
    ``max_retry_delay``); when every host is out, all are tried again.  (Go's
    epsilon-greedy also weighs hosts by response time; here both modes only
    avoid failing hosts.)
    """

    MODES = ("round-robin", "hostpool", "epsilon-greedy")

    def __init__(self, hosts: Sequence[str], mode: str, now: Callable[[], float], retry_delay: float = 30.0, max_retry_delay: float = 900.0) -> None:
        if mode not in self.MODES:
            raise ToolError(f"invalid --mode {mode!r} (round-robin, hostpool, epsilon-greedy)")
        self.hosts = list(hosts)
        self.mode = mode
        self._now = now
        self._next = 0
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay
        self._dead_until: dict[str, float] = {}
        self._delay: dict[str, float] = {}

    def get(self) -> str:
        n = len(self.hosts)
        start = self._next
        self._next = (start + 1) % n
        if self.mode == "round-robin":
            return self.hosts[start]
        now = self._now()
        for i in range(n):
            index = (start + i) % n
            host = self.hosts[index]
            if self._dead_until.get(host, 0.0) <= now:
                self._next = (index + 1) % n  # go-hostpool: continue after the host given
                return host
        self._dead_until.clear()
        return self.hosts[start]

    def mark(self, host: str, ok: bool) -> None:
        if ok:
            self._dead_until.pop(host, None)
            self._delay.pop(host, None)
            return
        delay = self._delay.get(host, self._retry_delay / 2) * 2
        self._delay[host] = min(delay, self._max_retry_delay)
        self._dead_until[host] = self._now() + self._delay[host]
