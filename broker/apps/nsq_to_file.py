"""``nsq_to_file``: consume topics into newline-delimited files, rolled and optionally gzipped.

Go nsq_to_file 1.3.0's flags, file naming and rotation: each topic gets its
own consumer and file, named by ``--filename-format`` (default
``<TOPIC>.<HOST><REV>.<DATETIME>.log``, ``<DATETIME>`` by
``--datetime-format``, default ``%Y-%m-%d_%H``), written in ``--work-dir`` and
moved to ``--output-dir`` when closed.  A file is closed and the next one
opened when the name changes (the hour turns), after ``--rotate-interval``,
or past ``--rotate-size`` bytes (of message data, before compression, as Go
counts); ``<REV>`` (``-000001``, ...) keeps names unique, and is required
whenever rotation, gzip or a work dir is used.  ``--gzip`` writes a gzip
stream; ``--skip-empty-files`` removes files that stayed empty.  Without
``--topic``, the topics are those nsqlookupd knows (matching
``--topic-pattern``), refreshed every ``--topic-refresh``.  SIGHUP closes the
current files (for logrotate); the next message opens new ones.

Durability: a message is finished only after its line has been written and
flushed to the operating system: lines are collected per read batch (at most
``--max-in-flight``), flushed (gzip with a sync flush, so the data is
decodable up to there), then the batch is FINished.  Files are fsynced, and a
gzip member completed, every ``--sync-interval``, on rotation and at exit.
(Go fsyncs before every FIN batch; here fsync is left to those moments, as
the project asks, trading a crash of the machine -- not of the tool -- for
far fewer fsyncs.)  File I/O runs on the event loop, as Go runs it in the
consumer's one goroutine.  A directory that cannot be made or a file that
cannot be opened ends the tool as it ends Go's: one FATAL line, exit 1.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import re
import signal
import socket
import sys
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, NoReturn

from broker.apps.toolkit import (
    Flag,
    Shutdown,
    Status,
    ToolError,
    consumer_flags,
    fatal,
    parse_flags,
    tool_config,
    tool_logger,
    version_line,
)
from broker.client.address import http_url
from broker.client.aio import Consumer, Message, fetch
from broker.client.config import ClientConfig
from broker.ports import Logger
from broker.runtime import LOG_LEVELS

__all__ = ["FLAGS", "FileLogger", "ToFileOptions", "filename_format", "main", "run"]

NAME = "nsq_to_file"


@dataclass(slots=True)
class ToFileOptions:
    topics: list[str] = field(default_factory=list)
    topic_pattern: str = ""
    topic_refresh: float = 60.0
    channel: str = "nsq_to_file"
    nsqd_tcp_addresses: list[str] = field(default_factory=list)
    lookupd_http_addresses: list[str] = field(default_factory=list)
    consumer_opts: list[str] = field(default_factory=list)
    max_in_flight: int = 200
    http_client_connect_timeout: float = 2.0
    http_client_request_timeout: float = 5.0
    log_prefix: str = "[nsq_to_file] "
    log_level: str = "info"
    output_dir: str = "/tmp"
    work_dir: str = ""
    datetime_format: str = "%Y-%m-%d_%H"
    filename_format: str = "<TOPIC>.<HOST><REV>.<DATETIME>.log"
    host_identifier: str = ""
    gzip_level: int = 6
    gzip: bool = False
    skip_empty_files: bool = False
    rotate_size: int = 0
    rotate_interval: float = 0.0
    sync_interval: float = 30.0


FLAGS = [
    *consumer_flags("nsq_to_file"),
    Flag("log-level", "log_level", "str", "set log verbosity: debug, info, warn, error, or fatal"),
    Flag("log-prefix", "log_prefix", "str", "log message prefix"),
    Flag("output-dir", "output_dir", "str", "directory to write output files to"),
    Flag("work-dir", "work_dir", "str", "directory for in-progress files before moving to output-dir"),
    Flag("datetime-format", "datetime_format", "str", "strftime compatible format for <DATETIME> in filename format"),
    Flag("filename-format", "filename_format", "str", "output filename format (<TOPIC>, <HOST>, <PID>, <DATETIME>, <REV> are replaced. <REV> is increased when file already exists)"),
    Flag("host-identifier", "host_identifier", "str", "value to output in log filename in place of hostname. <SHORT_HOST> and <HOSTNAME> are valid replacement tokens"),
    Flag("gzip-level", "gzip_level", "int", "gzip compression level (1-9, 1=BestSpeed, 9=BestCompression)"),
    Flag("gzip", "gzip", "bool", "gzip output files."),
    Flag("skip-empty-files", "skip_empty_files", "bool", "skip writing empty files"),
    Flag("topic-refresh", "topic_refresh", "duration", "how frequently the topic list should be refreshed"),
    Flag("topic-pattern", "topic_pattern", "str", "only log topics matching the following pattern"),
    Flag("rotate-size", "rotate_size", "int", "rotate the file when it grows bigger than `rotate-size` bytes"),
    Flag("rotate-interval", "rotate_interval", "duration", "rotate the file every duration"),
    Flag("sync-interval", "sync_interval", "duration", "sync file to disk every duration"),
    Flag("http-client-connect-timeout", "http_client_connect_timeout", "duration", "timeout for HTTP connect"),
    Flag("http-client-request-timeout", "http_client_request_timeout", "duration", "timeout for HTTP request"),
]


def run(argv: Sequence[str]) -> int:
    opts, show_version = parse_flags(NAME, FLAGS, ToFileOptions(), argv)
    if show_version:
        print(version_line(NAME))
        return 0
    if opts.log_level.lower() not in LOG_LEVELS:
        return fatal("--log-level is invalid")
    checks = [
        (bool(opts.channel), "--channel is required"),
        (opts.http_client_connect_timeout > 0, "--http-client-connect-timeout should be positive"),
        (opts.http_client_request_timeout > 0, "--http-client-request-timeout should be positive"),
        (bool(opts.nsqd_tcp_addresses or opts.lookupd_http_addresses), "--nsqd-tcp-address or --lookupd-http-address required."),
        (not (opts.nsqd_tcp_addresses and opts.lookupd_http_addresses), "use --nsqd-tcp-address or --lookupd-http-address not both"),
        (1 <= opts.gzip_level <= 9, f"invalid --gzip-level value ({opts.gzip_level}), should be 1-9"),
        (bool(opts.topics or opts.topic_pattern), "--topic or --topic-pattern required"),
        (bool(opts.topics or opts.lookupd_http_addresses), "--lookupd-http-address must be specified when no --topic specified"),
        (opts.sync_interval > 0, "--sync-interval should be positive"),
    ]
    for ok, why in checks:
        if not ok:
            return fatal(why)
    if not opts.work_dir:
        opts.work_dir = opts.output_dir
    try:
        re.compile(opts.topic_pattern)
        filename_format(opts, "t", socket.gethostname())
        return asyncio.run(to_file(opts))
    except (ToolError, re.error) as exc:
        return fatal(str(exc))


def filename_format(opts: ToFileOptions, topic: str, hostname: str) -> str:
    """The file name template of a topic, with all but <DATETIME> and <REV> filled in (Go's rules)."""
    short = hostname.split(".")[0]
    identifier = short
    if opts.host_identifier:
        identifier = opts.host_identifier.replace("<SHORT_HOST>", short).replace("<HOSTNAME>", hostname)
    fmt = opts.filename_format
    if opts.gzip or opts.rotate_size > 0 or opts.rotate_interval > 0 or opts.work_dir != opts.output_dir:
        if "<REV>" not in fmt:
            raise ToolError("missing <REV> in --filename-format when gzip, rotation, or work dir enabled")
    else:
        fmt = fmt.replace("<REV>", "")
    fmt = fmt.replace("<TOPIC>", topic).replace("<HOST>", identifier).replace("<PID>", str(os.getpid()))
    if opts.gzip and not fmt.endswith(".gz"):
        fmt += ".gz"
    return fmt


class FileLogger:
    """One topic's consumer and the file it writes."""

    def __init__(self, opts: ToFileOptions, topic: str, config: ClientConfig, logger: Logger) -> None:
        self.topic = topic
        self.opts = opts
        self.logger = logger
        self.written = 0
        self._format = filename_format(opts, topic, socket.gethostname())
        self._file: BinaryIO | None = None
        self._gzip: gzip.GzipFile | None = None
        self._path = ""
        self._filename = ""
        self._rev = 0
        self._opened_at = 0.0
        self._size = 0
        self._unsynced = False
        self._empty = True  # nothing in the open file, not even from before it was opened
        self._batch: list[Message] = []
        self._flush_scheduled = False
        self.consumer = Consumer(
            topic,
            opts.channel,
            self.handle,
            nsqd_tcp_addresses=opts.nsqd_tcp_addresses,
            lookupd_http_addresses=opts.lookupd_http_addresses,
            config=config,
            logger=logger,
        )

    @property
    def path(self) -> str:
        return self._path

    # -- messages in ---------------------------------------------------------------------

    def handle(self, msg: Message) -> None:
        if self._needs_rotation():
            self._rotate()
        line = msg.body + b"\n"
        if self._gzip is not None:
            self._gzip.write(line)
        else:
            assert self._file is not None
            self._file.write(line)
        self._size += len(line)
        self._unsynced = True
        self._empty = False
        self.written += 1
        msg.disable_auto_response()  # finished once flushed, below
        self._batch.append(msg)
        if len(self._batch) >= self.opts.max_in_flight:
            self.flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Hand the written lines to the OS, then finish their messages."""
        self._flush_scheduled = False
        if not self._batch:
            return
        if self._gzip is not None:
            self._gzip.flush(zlib.Z_SYNC_FLUSH)
        if self._file is not None:
            self._file.flush()
        batch, self._batch = self._batch, []
        self.logger.log("DEBUG", f"[{self.topic}/{self.opts.channel}] flushed {len(batch)} records to {self._path}")
        for msg in batch:
            msg.finish()

    # -- files ---------------------------------------------------------------------------------

    def sync(self) -> None:
        """The --sync-interval tick: rotate if due, else make what was written durable."""
        if self._file is not None and self._needs_rotation():
            if self.opts.skip_empty_files:
                self.close()  # the next message opens the next file
            else:
                self._rotate()
            return
        if self._file is None or not self._unsynced:
            return
        self.flush()
        if self._gzip is not None:
            self._gzip.close()  # end this gzip member; its trailer checks everything so far
            self._gzip = gzip.GzipFile(fileobj=self._file, mode="wb", compresslevel=self.opts.gzip_level)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._unsynced = False

    def close(self) -> None:
        """Flush, fsync and close the current file, then move it to the output dir."""
        self.flush()
        out = self._file
        if out is None:
            return
        if self._gzip is not None:
            self._gzip.close()
            self._gzip = None
        out.flush()
        empty = self._empty
        os.fsync(out.fileno())
        out.close()
        self._file = None
        src = self._path
        if empty and self.opts.skip_empty_files:
            os.remove(src)
            return
        if self.opts.work_dir != self.opts.output_dir:
            self._move_to_output(src)
        self.logger.log("INFO", f"[{self.topic}/{self.opts.channel}] closed {src}")

    def _move_to_output(self, src: str) -> None:
        rel = os.path.relpath(src, self.opts.work_dir)
        dst = os.path.join(self.opts.output_dir, rel)
        rev = self._rev
        while True:
            try:
                os.link(src, dst)  # exclusive: never replaces a finished file
                break
            except FileExistsError:
                rev += 1
                self.logger.log("WARN", f"[{self.topic}/{self.opts.channel}] destination file already exists: {dst}")
                dst = os.path.join(self.opts.output_dir, os.path.dirname(rel), self._filename.replace("<REV>", f"-{rev:06d}").rsplit("/", 1)[-1])
        os.remove(src)

    def _current_filename(self) -> str:
        return self._format.replace("<DATETIME>", time.strftime(self.opts.datetime_format))

    def _needs_rotation(self) -> bool:
        if self._file is None:
            return True
        if self._current_filename() != self._filename:
            return True
        if self.opts.rotate_interval > 0 and time.monotonic() - self._opened_at > self.opts.rotate_interval:
            return True
        return self.opts.rotate_size > 0 and self._size > self.opts.rotate_size

    def _make_dir(self, path: str) -> None:
        try:
            os.makedirs(path or ".", mode=0o770, exist_ok=True)
        except OSError as exc:
            self._fatal(f"unable to create dir: mkdir {exc.filename or path}: {_strerror(exc)}")

    def _fatal(self, why: str) -> NoReturn:
        # Go's FileLogger logs FATAL and calls os.Exit(1), with no graceful stop (which
        # would wait for the unfinished message): nsqd hands it out again once the
        # connection is gone. Every message finished so far was flushed to the OS first.
        self.logger.log("FATAL", f"[{self.topic}/{self.opts.channel}] {why}")
        sys.stderr.flush()
        os._exit(1)

    def _rotate(self) -> None:
        self.close()
        filename = self._current_filename()
        self._rev = self._rev + 1 if filename == self._filename else 0
        self._filename = filename
        self._opened_at = time.monotonic()
        full = os.path.join(self.opts.work_dir, filename)
        exclusive = self.opts.gzip or self.opts.rotate_interval > 0
        while True:
            path = full.replace("<REV>", f"-{self._rev:06d}")
            self._make_dir(os.path.dirname(path))
            if self.opts.work_dir != self.opts.output_dir:
                final = os.path.join(self.opts.output_dir, os.path.relpath(path, self.opts.work_dir))
                self._make_dir(os.path.dirname(final))
                if os.path.exists(final):
                    self.logger.log("WARN", f"[{self.topic}/{self.opts.channel}] output file already exists: {final}")
                    self._rev += 1
                    continue
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_APPEND), 0o666)
            except FileExistsError:
                self.logger.log("WARN", f"[{self.topic}/{self.opts.channel}] working file already exists: {path}")
                self._rev += 1
                continue
            except OSError as exc:
                self._fatal(f"unable to open {path}: open {path}: {_strerror(exc)}")
            size = os.fstat(fd).st_size
            if self.opts.rotate_size > 0 and size > self.opts.rotate_size:
                os.close(fd)
                self._rev += 1
                continue
            break
        self._file = os.fdopen(fd, "ab")
        self._path = path
        self._size = size
        self._empty = size == 0
        self._unsynced = False
        if self.opts.gzip:
            self._gzip = gzip.GzipFile(fileobj=self._file, mode="wb", compresslevel=self.opts.gzip_level)
        self.logger.log("INFO", f"[{self.topic}/{self.opts.channel}] opening {path}")


def _strerror(exc: OSError) -> str:
    return os.strerror(exc.errno).lower() if exc.errno else str(exc)


async def lookupd_topics(opts: ToFileOptions) -> list[str]:
    """Every topic the nsqlookupds know (``/topics``), in order of first sight."""
    found: list[str] = []
    for address in opts.lookupd_http_addresses:
        url = address if "://" in address else http_url(address, "")
        resp = await fetch(
            url.rstrip("/") + "/topics",
            headers=[("Accept", "application/vnd.nsq; version=1.0")],
            connect_timeout=opts.http_client_connect_timeout,
            request_timeout=opts.http_client_request_timeout,
        )
        body = resp.json()
        if isinstance(body, dict) and "data" in body and "status_code" in body:
            body = body["data"]
        topics = body.get("topics") if isinstance(body, dict) else None
        if resp.status != 200 or not isinstance(topics, list):
            raise ToolError(f"bad /topics answer from {address}: {resp.status} {resp.body[:200]!r}")
        found += [t for t in topics if isinstance(t, str) and t not in found]
    return found


async def to_file(opts: ToFileOptions) -> int:
    logger = tool_logger(NAME, opts.log_level, opts.log_prefix)
    config = tool_config(NAME, opts.consumer_opts, max_in_flight=opts.max_in_flight)
    loggers: dict[str, FileLogger] = {}
    loop = asyncio.get_running_loop()

    async def add_topics(topics: list[str]) -> None:
        for topic in topics:
            if topic in loggers or (opts.topic_pattern and not re.search(opts.topic_pattern, topic)):
                continue
            file_logger = FileLogger(opts, topic, config, logger)
            loggers[topic] = file_logger
            await file_logger.consumer.start()

    def close_files() -> None:
        for file_logger in loggers.values():
            file_logger.close()

    status = Status()
    loop.add_signal_handler(signal.SIGHUP, close_files)
    with Shutdown() as shutdown:
        try:
            await add_topics(opts.topics or await lookupd_topics(opts))
            stopping = asyncio.ensure_future(shutdown.wait())
            next_sync = loop.time() + opts.sync_interval
            next_refresh = loop.time() + opts.topic_refresh
            while not stopping.done():
                await asyncio.wait([stopping], timeout=min(next_sync, next_refresh, loop.time() + 0.5) - loop.time())
                now = loop.time()
                if now >= next_sync:
                    next_sync = now + opts.sync_interval
                    for file_logger in loggers.values():
                        file_logger.sync()
                if now >= next_refresh and not opts.topics:
                    next_refresh = now + opts.topic_refresh
                    try:
                        await add_topics(await lookupd_topics(opts))
                    except (OSError, ValueError, ToolError) as exc:
                        logger.log("ERROR", f"could not retrieve topic list: {exc}")
                status.update(
                    f"{NAME}: "
                    + ", ".join(f"{t}: {fl.written} messages -> {fl.path or '-'}" for t, fl in loggers.items())
                )
        finally:
            status.close()
            loop.remove_signal_handler(signal.SIGHUP)
            await asyncio.gather(*(fl.consumer.stop() for fl in loggers.values()))
            close_files()
    return 0


def main() -> None:
    try:
        sys.exit(run(sys.argv[1:]))
    except OSError as exc:  # the output dir or a file could not be written: Go exits with FATAL too
        sys.exit(fatal(f"ERROR: {exc}"))


if __name__ == "__main__":
    main()
