"""``nsq_stat``: poll ``/stats`` of every nsqd carrying a channel and show the figures.

Go nsq_stat 1.3.0's flags and polling: ``--topic`` and ``--channel`` are
required; the nsqd are ``--nsqd-http-address`` or those nsqlookupd reports
for the topic (``--lookupd-http-address``, their ``broadcast_address:http_port``);
every ``--interval`` each one's ``/stats?format=json&topic=&channel=`` is
read.  The first poll is the baseline for the rates; each later one is a
report, and ``--count`` N stops after N reports.

The report is a rich table, one row per nsqd and a total, with Go's columns:
ingress and egress rates (messages/s), depth (total, memory, disk), in
flight, deferred, requeued, timed out, messages and clients.  On a terminal
it is redrawn in place; otherwise each report is printed below the last.
(Go prints only the totals, a text line per report.)  ``--status-every`` is
accepted as another name for ``--interval``.  An nsqd that does not answer
is reported and skipped; a poll with no answer at all is fatal, as in Go.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode

from rich.console import Console
from rich.live import Live
from rich.table import Table

from broker.apps.goflags import Custom, parse_go_int
from broker.apps.toolkit import (
    Flag,
    Shutdown,
    ToolError,
    fatal,
    parse_flags,
    tool_logger,
    version_line,
)
from broker.client.address import http_url, join_address
from broker.client.aio import NSQClientError, fetch
from broker.client.lookupd import lookup_url

__all__ = ["FLAGS", "ChannelStats", "StatOptions", "main", "render", "run"]

NAME = "nsq_stat"
ACCEPT = ("Accept", "application/vnd.nsq; version=1.0")


@dataclass(slots=True)
class StatOptions:
    topic: str = ""
    channel: str = ""
    interval: float = 2.0
    count: int | None = None
    nsqd_http_addresses: list[str] = field(default_factory=list)
    lookupd_http_addresses: list[str] = field(default_factory=list)
    http_client_connect_timeout: float = 2.0
    http_client_request_timeout: float = 5.0


def _parse_count(text: str) -> int:
    value = parse_go_int(text)
    if not -(1 << 31) <= value < 1 << 31:
        raise ValueError("value out of range")
    return value


FLAGS = [
    Flag("version", "", "bool", "print version"),
    Flag("topic", "topic", "str", "NSQ topic"),
    Flag("channel", "channel", "str", "NSQ channel"),
    Flag("interval", "interval", "duration", "duration of time between polling/printing output", ("status-every",)),
    Flag("count", "count", "int", "number of reports"),
    Flag("nsqd-http-address", "nsqd_http_addresses", "str_list", "nsqd HTTP address (may be given multiple times)"),
    Flag("lookupd-http-address", "lookupd_http_addresses", "str_list", "lookupd HTTP address (may be given multiple times)"),
    Flag("http-client-connect-timeout", "http_client_connect_timeout", "duration", "timeout for HTTP connect"),
    Flag("http-client-request-timeout", "http_client_request_timeout", "duration", "timeout for HTTP request"),
]
CUSTOM = {"count": Custom(parse=_parse_count, show_default=lambda v: None)}


@dataclass(frozen=True, slots=True)
class ChannelStats:
    """One nsqd's figures for the channel (or their sum)."""

    depth: int = 0
    backend_depth: int = 0
    in_flight: int = 0
    deferred: int = 0
    requeued: int = 0
    timed_out: int = 0
    messages: int = 0
    clients: int = 0

    @property
    def memory_depth(self) -> int:
        return self.depth - self.backend_depth

    def __add__(self, other: ChannelStats) -> ChannelStats:
        return ChannelStats(*(a + b for a, b in zip(_values(self), _values(other), strict=True)))


def _values(s: ChannelStats) -> tuple[int, ...]:
    return (s.depth, s.backend_depth, s.in_flight, s.deferred, s.requeued, s.timed_out, s.messages, s.clients)


def run(argv: Sequence[str]) -> int:
    opts, show_version = parse_flags(NAME, FLAGS, StatOptions(), argv, CUSTOM)
    if show_version:
        print(version_line(NAME))
        return 0
    checks = [
        (bool(opts.topic and opts.channel), "--topic and --channel are required"),
        (opts.interval > 0, "--interval should be positive"),
        (opts.http_client_connect_timeout > 0, "--http-client-connect-timeout should be positive"),
        (opts.http_client_request_timeout > 0, "--http-client-request-timeout should be positive"),
        (opts.count is None or opts.count > 0, "--count should be positive"),
        (bool(opts.nsqd_http_addresses or opts.lookupd_http_addresses), "--nsqd-http-address or --lookupd-http-address required"),
        (not (opts.nsqd_http_addresses and opts.lookupd_http_addresses), "use --nsqd-http-address or --lookupd-http-address not both"),
        (not any(a.startswith("http") for a in opts.nsqd_http_addresses), "--nsqd-http-address error - address should not contain scheme"),
        (not any(a.startswith("http") for a in opts.lookupd_http_addresses), "--lookupd-http-address error - address should not contain scheme"),
    ]
    for ok, why in checks:
        if not ok:
            return fatal(why)
    try:
        return asyncio.run(stat_loop(opts))
    except ToolError as exc:
        return fatal(str(exc))


async def _get_json(opts: StatOptions, url: str) -> object:
    resp = await fetch(
        url,
        headers=[ACCEPT],
        connect_timeout=opts.http_client_connect_timeout,
        request_timeout=opts.http_client_request_timeout,
    )
    if resp.status != 200:
        raise ValueError(f"{url}: status {resp.status} {resp.body[:200].decode('utf-8', 'replace')}")
    body = resp.json()
    if isinstance(body, dict) and "status_code" in body and "data" in body:
        body = body["data"]  # nsqd's pre-1.0 envelope
    return body


async def nsqd_addresses(opts: StatOptions) -> list[str]:
    """The nsqd HTTP addresses to poll: given, or the topic's producers per nsqlookupd."""
    if opts.nsqd_http_addresses:
        return opts.nsqd_http_addresses
    found: list[str] = []
    for lookupd in opts.lookupd_http_addresses:
        body = await _get_json(opts, lookup_url(lookupd, opts.topic))
        producers = body.get("producers") if isinstance(body, dict) else None
        for p in producers or []:
            if isinstance(p, dict) and isinstance(p.get("broadcast_address"), str) and isinstance(p.get("http_port"), int):
                address = join_address(p["broadcast_address"], p["http_port"])
                if address not in found:
                    found.append(address)
    return found


async def channel_stats(opts: StatOptions, address: str) -> ChannelStats | None:
    """The channel's figures on one nsqd; None if it does not have the channel."""
    query = urlencode({"format": "json", "topic": opts.topic, "channel": opts.channel})
    body = await _get_json(opts, http_url(address, f"/stats?{query}"))
    topics = body.get("topics") if isinstance(body, dict) else None
    for topic in topics or []:
        if not isinstance(topic, dict) or topic.get("topic_name") != opts.topic:
            continue
        for ch in topic.get("channels") or []:
            if isinstance(ch, dict) and ch.get("channel_name") == opts.channel:
                return ChannelStats(
                    *(
                        int(ch.get(key) or 0)
                        for key in (
                            "depth",
                            "backend_depth",
                            "in_flight_count",
                            "deferred_count",
                            "requeue_count",
                            "timeout_count",
                            "message_count",
                            "client_count",
                        )
                    )
                )
    return None


def render(
    opts: StatOptions,
    now: dict[str, ChannelStats],
    before: dict[str, ChannelStats],
    seconds: float,
    report: int,
) -> Table:
    """One report: a row per nsqd, then the total (Go's columns, with rates per second)."""
    title = f"{opts.topic}/{opts.channel} - report {report}" + (f" of {opts.count}" if opts.count else "")
    table = Table(title=title, title_justify="left")
    table.add_column("nsqd", no_wrap=True)
    for name in ("ingress/s", "egress/s", "depth", "mem", "disk", "inflt", "def", "req", "t-o", "msgs", "clients"):
        table.add_column(name, justify="right")
    rows = list(now.items())
    if len(rows) != 1:
        total = sum(now.values(), ChannelStats())
        total_before = sum((before[a] for a in now if a in before), ChannelStats())
        rows.append(("total", total))
        before = {**before, "total": total_before}
    for i, (address, s) in enumerate(rows):
        o = before.get(address, s)
        ingress = (s.messages - o.messages) / seconds
        egress = (s.messages - o.messages - (s.depth - o.depth)) / seconds
        table.add_row(
            address,
            f"{ingress:.0f}",
            f"{egress:.0f}",
            *map(str, (s.depth, s.memory_depth, s.backend_depth, s.in_flight, s.deferred, s.requeued, s.timed_out, s.messages, s.clients)),
            end_section=i == len(rows) - 2 and len(rows) > 1,
            style="bold" if address == "total" else None,
        )
    return table


async def stat_loop(opts: StatOptions) -> int:
    logger = tool_logger(NAME)
    loop = asyncio.get_running_loop()
    stdout = Console()
    if not stdout.is_terminal:
        stdout = Console(width=200)  # a pipe has no width: never cut an address or a figure
    live: Live | None = None
    before: dict[str, ChannelStats] = {}
    last_poll = 0.0
    report = 0
    with Shutdown() as shutdown:
        stopping = asyncio.ensure_future(shutdown.wait())
        try:
            while not stopping.done():
                started = loop.time()
                try:
                    addresses = await nsqd_addresses(opts)
                except (OSError, ValueError, NSQClientError) as exc:
                    raise ToolError(f"ERROR: failed to get topic producers - {exc}") from None
                now: dict[str, ChannelStats] = {}
                answered = 0
                for address in addresses:
                    try:
                        stats = await channel_stats(opts, address)
                    except (OSError, ValueError, NSQClientError) as exc:
                        logger.log("ERROR", f"failed to get nsqd stats from {address} - {exc}")
                        continue
                    answered += 1
                    if stats is not None:
                        now[address] = stats
                if not answered:
                    raise ToolError("ERROR: failed to get nsqd stats - no nsqd answered")
                if not now:
                    raise ToolError(f"ERROR: failed to find channel({opts.channel}) in stats metadata for topic({opts.topic})")
                if last_poll:
                    report += 1
                    table = render(opts, now, before, started - last_poll, report)
                    if stdout.is_terminal:
                        if live is None:
                            live = Live(table, console=stdout, auto_refresh=False)
                            live.start()
                        live.update(table, refresh=True)
                    else:
                        stdout.print(table)
                    if opts.count is not None and report >= opts.count:
                        break
                before, last_poll = now, started
                await asyncio.wait([stopping], timeout=max(0.0, started + opts.interval - loop.time()))
        finally:
            stopping.cancel()
            if live is not None:
                live.stop()
    return 0


def main() -> None:
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
