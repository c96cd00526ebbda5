"""``nsq_tail``: consume topics and write each message to stdout, one per line.

Go nsq_tail 1.3.0's flags and behaviour: one consumer per ``--topic``, all on
``--channel`` (by default a fresh ephemeral channel ``tail<NNNNNN>#ephemeral``,
so tailing never takes messages from a real channel), ``--max-in-flight``
capped at ``-n`` so no more is asked for than will be shown, ``--print-topic``
prefixes ``<topic> | ``.  ``-n`` exits after that many messages.

Differences from Go: after the ``-n``-th message Go exits on the spot without
answering it; here the shown messages are finished, any extra that were
already on the way are requeued, and the consumers stop cleanly.  ``-n``
counts messages over all topics (Go counts per topic, which is the same for
one topic).
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

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
from broker.client.aio import Consumer, Message
from broker.wire.names import is_valid_channel_name, is_valid_topic_name

__all__ = ["FLAGS", "TailOptions", "main", "run"]

NAME = "nsq_tail"


@dataclass(slots=True)
class TailOptions:
    topics: list[str] = field(default_factory=list)
    channel: str = ""
    max_in_flight: int = 200
    n: int = 0
    print_topic: bool = False
    nsqd_tcp_addresses: list[str] = field(default_factory=list)
    lookupd_http_addresses: list[str] = field(default_factory=list)
    consumer_opts: list[str] = field(default_factory=list)


FLAGS = [
    *consumer_flags(""),
    Flag("n", "n", "int", "total messages to show (will wait if starved)"),
    Flag("print-topic", "print_topic", "bool", "print topic name where message was received"),
]


def run(argv: Sequence[str]) -> int:
    opts, show_version = parse_flags(NAME, FLAGS, TailOptions(), argv)
    if show_version:
        print(version_line(NAME))
        return 0
    if not opts.channel:
        opts.channel = f"tail{random.randrange(999999):06d}#ephemeral"
    if not opts.nsqd_tcp_addresses and not opts.lookupd_http_addresses:
        return fatal("--nsqd-tcp-address or --lookupd-http-address required")
    if opts.nsqd_tcp_addresses and opts.lookupd_http_addresses:
        return fatal("use --nsqd-tcp-address or --lookupd-http-address not both")
    if not opts.topics:
        return fatal("--topic required")
    for topic in opts.topics:
        if not is_valid_topic_name(topic):
            return fatal(f"invalid topic name {topic!r}")
    if not is_valid_channel_name(opts.channel):
        return fatal(f"invalid channel name {opts.channel!r}")
    if 0 < opts.n < opts.max_in_flight:
        opts.max_in_flight = opts.n  # don't ask for more messages than we want
    try:
        return asyncio.run(tail(opts))
    except ToolError as exc:
        return fatal(str(exc))


async def tail(opts: TailOptions) -> int:
    logger = tool_logger(NAME)
    config = tool_config(NAME, opts.consumer_opts, max_in_flight=opts.max_in_flight)
    out = sys.stdout.buffer
    loop = asyncio.get_running_loop()
    enough = asyncio.Event()
    shown = 0
    flush_scheduled = False

    def flush() -> None:
        nonlocal flush_scheduled
        flush_scheduled = False
        try:
            out.flush()
        except BrokenPipeError:
            _silence_stdout()
            enough.set()

    def handler_for(topic: str) -> Callable[[Message], None]:
        prefix = topic.encode() + b" | " if opts.print_topic else b""

        def handle(msg: Message) -> None:
            nonlocal shown, flush_scheduled
            if enough.is_set():
                msg.requeue(0, backoff=False)  # on its way before we had enough: not ours to show
                return
            try:
                out.write(prefix + msg.body + b"\n")
            except BrokenPipeError:  # nsq_tail | head: the reader has had enough
                _silence_stdout()
                enough.set()
                msg.requeue(0, backoff=False)
                return
            shown += 1
            if opts.n and shown >= opts.n:
                enough.set()
            if not flush_scheduled:  # one flush per read batch, not per message
                flush_scheduled = True
                loop.call_soon(flush)

        return handle

    consumers = []
    for topic in opts.topics:
        logger.log("INFO", f"Adding consumer for topic: {topic}")
        consumers.append(
            Consumer(
                topic,
                opts.channel,
                handler_for(topic),
                nsqd_tcp_addresses=opts.nsqd_tcp_addresses,
                lookupd_http_addresses=opts.lookupd_http_addresses,
                config=config,
                logger=logger,
            )
        )
    status = Status()
    with Shutdown() as shutdown:
        try:
            for consumer in consumers:
                await consumer.start()
            waiters = [asyncio.ensure_future(enough.wait()), asyncio.ensure_future(shutdown.wait())]
            while not enough.is_set() and not shutdown.requested:
                status.update(f"{NAME}: {shown} messages shown, {sum(len(c.connections) for c in consumers)} connections")
                await asyncio.wait(waiters, timeout=0.25, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
        finally:
            status.close()
            await asyncio.gather(*(consumer.stop() for consumer in consumers))
            try:
                out.flush()
            except BrokenPipeError:
                _silence_stdout()
    return 0


def _silence_stdout() -> None:
    # Python would report the broken pipe again when it flushes stdout at exit.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main() -> None:
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
