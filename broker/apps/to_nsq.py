"""``to_nsq``: publish stdin, split on a delimiter, to a topic.

Go to_nsq 1.3.0's flags and behaviour: stdin is cut at every ``--delimiter``
byte (a newline by default), the delimiter dropped, empty pieces skipped, a
last piece without a delimiter published too; every piece is published to
*every* ``--nsqd-tcp-address`` (each gets the whole stream); ``--rate``
throttles to n messages a second; the first failed publish is fatal.

Publishes are pipelined (up to ``WINDOW`` unanswered at once) where Go waits
for each answer, so a long input goes at network speed; order is kept, since
nsqd answers in order on the one connection to each address.  At end of input,
or on SIGINT/SIGTERM, the tool stops reading, waits for every answer and exits
0.  Stdin is read by a daemon thread, so a signal ends the tool even while a
read is blocked.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sys
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from broker.apps.toolkit import (
    Flag,
    Shutdown,
    Status,
    ToolError,
    fatal,
    parse_flags,
    tool_config,
    tool_logger,
    version_line,
)
from broker.client.aio import NSQClientError, Producer
from broker.wire.names import is_valid_topic_name

__all__ = ["FLAGS", "ToNSQOptions", "main", "run"]

NAME = "to_nsq"
WINDOW = 256  # unanswered publishes per address
READ_SIZE = 64 * 1024
READ_AHEAD = 16  # chunks of stdin buffered ahead of publishing


@dataclass(slots=True)
class ToNSQOptions:
    topic: str = ""
    delimiter: str = "\n"
    rate: int = 0
    nsqd_tcp_addresses: list[str] = field(default_factory=list)
    producer_opts: list[str] = field(default_factory=list)


FLAGS = [
    Flag("version", "", "bool", "print version string"),
    Flag("topic", "topic", "str", "NSQ topic to publish to"),
    Flag("delimiter", "delimiter", "str", "character to split input from stdin"),
    Flag("rate", "rate", "int", "Throttle messages to n/second. 0 to disable"),
    Flag("nsqd-tcp-address", "nsqd_tcp_addresses", "str_list", "destination nsqd TCP address (may be given multiple times)"),
    Flag("producer-opt", "producer_opts", "str_list", "option to passthrough to nsq.Producer (may be given multiple times, http://godoc.org/github.com/nsqio/go-nsq#Config)"),
]


def run(argv: Sequence[str]) -> int:
    opts, show_version = parse_flags(NAME, FLAGS, ToNSQOptions(), argv)
    if show_version:
        print(version_line(NAME))
        return 0
    if not opts.topic:
        return fatal("--topic required")
    if not is_valid_topic_name(opts.topic):
        return fatal(f"invalid topic name {opts.topic!r}")
    if len(opts.delimiter.encode()) != 1:
        return fatal("--delimiter must be a single byte")
    if not opts.nsqd_tcp_addresses:
        return fatal("--nsqd-tcp-address required")
    try:
        return asyncio.run(publish_stdin(opts))
    except ToolError as exc:
        return fatal(str(exc))


async def publish_stdin(opts: ToNSQOptions) -> int:
    logger = tool_logger(NAME)
    config = tool_config(NAME, opts.producer_opts)
    try:
        producers = [Producer(address, config=config, logger=logger) for address in opts.nsqd_tcp_addresses]
    except ValueError as exc:
        raise ToolError(f"failed to create nsq.Producer - {exc}") from None
    delimiter = opts.delimiter.encode()
    chunks = _StdinChunks(asyncio.get_running_loop())
    outstanding: deque[asyncio.Future[None]] = deque()
    loop = asyncio.get_running_loop()
    interval = 1.0 / opts.rate if opts.rate > 0 else 0.0
    if interval:
        logger.log("INFO", f"Throttling messages rate to max:{opts.rate}/second")
    next_send = loop.time()
    published = 0
    status = Status()

    async def publish(line: bytes) -> None:
        nonlocal next_send, published
        if interval:
            delay = next_send - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # the throttle itself: time is what --rate asks for
            next_send = max(next_send, loop.time() - interval) + interval
        for producer in producers:
            outstanding.append(producer.pub(opts.topic, line))
        published += 1
        while len(outstanding) > WINDOW * len(producers):
            await outstanding.popleft()
        if published % 1000 == 0:
            status.update(f"{NAME}: {published} messages published to {opts.topic}")

    async def pump() -> None:
        pending = b""
        while (chunk := await chunks.get()) is not None:
            pieces = (pending + chunk).split(delimiter)
            pending = pieces.pop()
            for piece in pieces:
                if piece:
                    await publish(piece)
        if pending:
            await publish(pending)

    with Shutdown() as shutdown:
        try:
            for producer in producers:
                await producer.connect()
            pumping = asyncio.ensure_future(pump())
            stopping = asyncio.ensure_future(shutdown.wait())
            await asyncio.wait([pumping, stopping], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not pumping.done():
                pumping.cancel()
            else:
                pumping.result()
            while outstanding:
                await outstanding.popleft()
        except NSQClientError as exc:
            raise ToolError(str(exc)) from None
        finally:
            status.close()
            for fut in outstanding:
                fut.cancel()
            await asyncio.gather(*(producer.close() for producer in producers))
    logger.log("INFO", f"published {published} messages to {opts.topic}")
    return 0


class _StdinChunks:
    """Stdin read by a daemon thread, handed to the loop through a bounded queue."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(READ_AHEAD)
        threading.Thread(target=self._read, name="stdin", daemon=True).start()

    def _read(self) -> None:
        fd = sys.stdin.fileno()
        while True:
            try:
                chunk = os.read(fd, READ_SIZE)
            except OSError:
                chunk = b""
            try:
                asyncio.run_coroutine_threadsafe(self._queue.put(chunk or None), self._loop).result()
            except (RuntimeError, concurrent.futures.CancelledError):  # the tool is exiting
                return
            if not chunk:
                return

    async def get(self) -> bytes | None:
        """The next chunk; None at end of input."""
        return await self._queue.get()


def main() -> None:
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
