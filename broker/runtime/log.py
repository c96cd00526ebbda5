"""The Logger port for the daemons: nsqd's log lines on stderr.

Go nsqd logs through the standard ``log`` package with its prefix and the flags
``Ldate|Ltime|Lmicroseconds`` (local time), and ``internal/lg`` puts the level
name and a colon in front of the message, so a line reads::

    [nsqd] 2026/11/28 04:05:06.123456 INFO: TCP: listening on 0.0.0.0:4150

The WARN level prints as ``WARNING`` (that is ``lg.LogLevel.String()``), while
``--log-level`` takes ``warn`` (and not ``warning``), case-insensitively.  Lines
are written and flushed one at a time, as Go's unbuffered stderr does, so a
supervisor or a test reading the pipe sees each line as soon as it is logged.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["LOG_LEVELS", "StderrLogger", "parse_log_level"]

# Names --log-level accepts, in increasing severity (lg.DEBUG=1 ... lg.FATAL=5).
LOG_LEVELS: tuple[str, ...] = ("debug", "info", "warn", "error", "fatal")

_SEVERITY = {name: i + 1 for i, name in enumerate(LOG_LEVELS)}
# What the core passes to Logger.log, and how each is printed.
_PRINTED = {"DEBUG": "DEBUG", "INFO": "INFO", "WARN": "WARNING", "WARNING": "WARNING", "ERROR": "ERROR", "FATAL": "FATAL"}
_MSG_SEVERITY = {"DEBUG": 1, "INFO": 2, "WARN": 3, "WARNING": 3, "ERROR": 4, "FATAL": 5}


def parse_log_level(text: str) -> str:
    """The canonical (lower-case) level name for ``text``, as ``lg.ParseLogLevel`` reads it."""
    name = text.lower()
    if name not in _SEVERITY:
        raise ValueError(f"invalid log level '{text}' (debug, info, warn, error, fatal)")
    return name


class StderrLogger:
    """Writes lines at or above ``level`` to ``stream`` (stderr by default)."""

    __slots__ = ("_min", "_now_ns", "_prefix", "_stream")

    def __init__(
        self,
        prefix: str,
        level: str = "info",
        stream: TextIO | None = None,
        now_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._prefix = prefix
        self._min = _SEVERITY[parse_log_level(level)]
        self._stream = stream if stream is not None else sys.stderr
        self._now_ns = now_ns

    def set_level(self, level: str) -> None:
        """Change the threshold (nsqd allows it at run time through ``PUT /config/log_level``)."""
        self._min = _SEVERITY[parse_log_level(level)]

    def enabled(self, level: str) -> bool:
        """Whether a line at ``level`` would be written; lets callers skip building it."""
        return _MSG_SEVERITY[level] >= self._min

    def log(self, level: str, msg: str) -> None:
        severity = _MSG_SEVERITY.get(level)
        if severity is None:
            raise ValueError(f"unknown log level {level!r}")
        if severity < self._min:
            return
        secs, ns = divmod(self._now_ns(), 1_000_000_000)
        stamp = time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(secs))
        line = f"{self._prefix}{stamp}.{ns // 1000:06d} {_PRINTED[level]}: {msg}"
        if not line.endswith("\n"):
            line += "\n"
        self._stream.write(line)
        self._stream.flush()
