"""``nsq_to_http``: consume a topic and make an HTTP request per message.

Go nsq_to_http 1.3.0's flags and behaviour: each message of ``--topic`` on
``--channel`` is sent to one of the ``--post`` URLs as the request body (with
``--content-type`` and every ``--header``), or to one of the ``--get`` URL
templates, its one ``%s`` replaced by the query-escaped body.  The message is
finished only after a 2xx answer; any other answer, or a failed request, is a
failure and the message is requeued with backoff.  ``--mode`` picks the URL
(see ``toolkit.HostPool``), ``-n`` bounds the requests in flight at once,
``--sample`` sends only that fraction of messages (the rest are finished
unsent), ``--status-every`` logs latency figures, and the two
``--http-client-*-timeout`` flags bound connect and the whole request.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import quote_plus

from broker.apps.toolkit import (
    Flag,
    HostPool,
    Shutdown,
    Status,
    Timings,
    ToolError,
    consumer_flags,
    fatal,
    parse_flags,
    tool_config,
    tool_logger,
    version_line,
)
from broker.client.aio import Consumer, Message, NSQClientError, fetch
from broker.version import NSQ_VERSION
from broker.wire.names import is_valid_channel_name, is_valid_topic_name

__all__ = ["FLAGS", "ToHTTPOptions", "main", "run"]

NAME = "nsq_to_http"
DEFAULT_CONTENT_TYPE = "application/octet-stream"


@dataclass(slots=True)
class ToHTTPOptions:
    topic: str = ""
    channel: str = "nsq_to_http"
    nsqd_tcp_addresses: list[str] = field(default_factory=list)
    lookupd_http_addresses: list[str] = field(default_factory=list)
    consumer_opts: list[str] = field(default_factory=list)
    max_in_flight: int = 200
    post: list[str] = field(default_factory=list)
    get: list[str] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    content_type: str = DEFAULT_CONTENT_TYPE
    mode: str = "hostpool"
    n: int = 100
    sample: float = 1.0
    status_every: int = 250
    http_client_connect_timeout: float = 2.0
    http_client_request_timeout: float = 20.0


FLAGS = [
    *consumer_flags("nsq_to_http", topic_repeatable=False),
    Flag("post", "post", "str_list", "HTTP address to make a POST request to.  data will be in the body (may be given multiple times)"),
    Flag("get", "get", "str_list", "HTTP address to make a GET request to. '%s' will be printf replaced with data (may be given multiple times)"),
    Flag("header", "headers", "str_list", "Custom header for HTTP requests (may be given multiple times)"),
    Flag("content-type", "content_type", "str", "the Content-Type used for POST requests"),
    Flag("mode", "mode", "str", "the upstream request mode options: round-robin, hostpool (default), epsilon-greedy"),
    Flag("n", "n", "int", "number of concurrent publishers"),
    Flag("sample", "sample", "float", "% of messages to publish (float b/w 0 -> 1)"),
    Flag("status-every", "status_every", "int", "the # of requests between logging status (per handler), 0 disables"),
    Flag("http-client-connect-timeout", "http_client_connect_timeout", "duration", "timeout for HTTP connect"),
    Flag("http-client-request-timeout", "http_client_request_timeout", "duration", "timeout for HTTP request"),
]


def run(argv: Sequence[str]) -> int:
    opts, show_version = parse_flags(NAME, FLAGS, ToHTTPOptions(), argv)
    if show_version:
        print(version_line(NAME))
        return 0
    try:
        headers = parse_headers(opts.headers)
        check(opts)
        return asyncio.run(forward(opts, headers))
    except ToolError as exc:
        return fatal(str(exc))


def check(opts: ToHTTPOptions) -> None:
    """Go's start-up checks, in Go's order."""
    if not opts.topic or not opts.channel:
        raise ToolError("--topic and --channel are required")
    if not is_valid_topic_name(opts.topic) or not is_valid_channel_name(opts.channel):
        raise ToolError("--topic or --channel is invalid")
    if opts.content_type != DEFAULT_CONTENT_TYPE:
        if not opts.post:
            raise ToolError("--content-type only used with --post")
        if not opts.content_type:
            raise ToolError("--content-type requires a value when used")
    if not opts.nsqd_tcp_addresses and not opts.lookupd_http_addresses:
        raise ToolError("--nsqd-tcp-address or --lookupd-http-address required")
    if opts.nsqd_tcp_addresses and opts.lookupd_http_addresses:
        raise ToolError("use --nsqd-tcp-address or --lookupd-http-address not both")
    if not opts.get and not opts.post:
        raise ToolError("--get or --post required")
    if opts.get and opts.post:
        raise ToolError("use --get or --post not both")
    if any(url.count("%s") != 1 for url in opts.get):
        raise ToolError("invalid GET address - must be a printf string")
    if opts.mode not in HostPool.MODES:
        raise ToolError(f"invalid --mode {opts.mode!r}")
    if not 0.0 <= opts.sample <= 1.0:
        raise ToolError("ERROR: --sample must be between 0.0 and 1.0")
    if opts.n < 1:
        raise ToolError("-n must be at least 1")
    if opts.http_client_connect_timeout <= 0 or opts.http_client_request_timeout <= 0:
        raise ToolError("--http-client-connect-timeout and --http-client-request-timeout should be positive")


def parse_headers(raw: Sequence[str]) -> list[tuple[str, str]]:
    """``Name: value`` pairs, as Go's parseCustomHeaders reads them."""
    headers = []
    for header in raw:
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            raise ToolError(f"invalid header {header!r}, use 'Name: value'")
        headers.append((name.strip(), value.strip()))
    return headers


async def forward(opts: ToHTTPOptions, headers: list[tuple[str, str]]) -> int:
    logger = tool_logger(NAME)
    config = tool_config(NAME, opts.consumer_opts, max_in_flight=opts.max_in_flight)
    loop = asyncio.get_running_loop()
    urls = opts.post or opts.get
    pool = HostPool(urls, opts.mode, loop.time)
    limit = asyncio.Semaphore(opts.n)
    aggregate = Timings(opts.status_every, logger, "[aggregate]: ")
    per_url = {url: Timings(opts.status_every if len(urls) > 1 else 0, logger, f"[{url}]: ") for url in urls}
    user_agent = f"{NAME} v{NSQ_VERSION}"  # as Go's nsq_to_http
    sent = 0

    async def request(url: str, body: bytes) -> int:
        if opts.post:
            resp = await fetch(
                url,
                method="POST",
                headers=[("Content-Type", opts.content_type), *headers],
                body=body,
                connect_timeout=opts.http_client_connect_timeout,
                request_timeout=opts.http_client_request_timeout,
                user_agent=user_agent,
            )
        else:
            resp = await fetch(
                url.replace("%s", quote_plus(body), 1),
                headers=headers,
                connect_timeout=opts.http_client_connect_timeout,
                request_timeout=opts.http_client_request_timeout,
                user_agent=user_agent,
            )
        return resp.status

    async def handle(msg: Message) -> bool:
        nonlocal sent
        if opts.sample < 1.0 and random.random() > opts.sample:
            return True  # not in the sample: finished unsent
        async with limit:
            url = pool.get()
            started = time.monotonic()
            try:
                status = await request(url, msg.body)
                failure = "" if 200 <= status < 300 else f"got status code {status}"
            except (OSError, ValueError, NSQClientError) as exc:  # refused, timed out, a bad answer
                failure = str(exc) or type(exc).__name__
        if failure:
            pool.mark(url, False)
            logger.log("ERROR", f"msg {msg.id.decode('ascii', 'replace')} to {url}: {failure}")
            return False  # requeued, with backoff
        pool.mark(url, True)
        elapsed = time.monotonic() - started
        per_url[url].add(elapsed)
        aggregate.add(elapsed)
        sent += 1
        return True

    consumer = Consumer(
        opts.topic,
        opts.channel,
        handle,
        nsqd_tcp_addresses=opts.nsqd_tcp_addresses,
        lookupd_http_addresses=opts.lookupd_http_addresses,
        config=config,
        logger=logger,
    )
    status = Status()
    with Shutdown() as shutdown:
        try:
            await consumer.start()
            stopping = asyncio.ensure_future(shutdown.wait())
            while not stopping.done():
                await asyncio.wait([stopping], timeout=0.5)
                status.update(f"{NAME}: {sent} requests answered 2xx")
        finally:
            status.close()
            await consumer.stop()
    return 0


def main() -> None:
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
