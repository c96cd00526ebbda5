"""``nsq_to_nsq``: consume topics and republish every message to other nsqd.

Go nsq_to_nsq 1.3.0's flags and behaviour: one consumer per ``--topic`` on
``--channel``; each message is published to ``--destination-topic`` (by
default the topic it came from) on one of the ``--destination-nsqd-tcp-address``
nsqd, picked by ``--mode``; it is finished only after the destination
answered ``OK``, and requeued (with backoff) if the publish failed, so a
message is never lost between the two.  For JSON messages,
``--require-json-field`` (and ``--require-json-value``) pass only matching
messages, finishing the others unpublished, and ``--whitelist-json-field``
republishes only those fields.  ``--status-every`` logs latency figures.

``--mode``: ``round-robin`` cycles over one producer per address;
``hostpool`` and ``epsilon-greedy`` (see ``toolkit.HostPool``) skip
addresses that fail.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from broker.apps.toolkit import (
    Flag,
    HostPool,
    Shutdown,
    Status,
    Timings,
    ToolError,
    consumer_flags,
    fatal,
    log_printf,
    parse_flags,
    tool_config,
    tool_logger,
    version_line,
)
from broker.client.aio import Consumer, Message, NSQClientError, Producer
from broker.ports import Logger
from broker.wire.names import is_valid_channel_name, is_valid_topic_name

__all__ = ["FLAGS", "ToNSQOptions", "json_filter", "main", "run"]

NAME = "nsq_to_nsq"


@dataclass(slots=True)
class ToNSQOptions:
    topics: list[str] = field(default_factory=list)
    channel: str = "nsq_to_nsq"
    destination_topic: str = ""
    destination_nsqd_tcp_addresses: list[str] = field(default_factory=list)
    nsqd_tcp_addresses: list[str] = field(default_factory=list)
    lookupd_http_addresses: list[str] = field(default_factory=list)
    consumer_opts: list[str] = field(default_factory=list)
    producer_opts: list[str] = field(default_factory=list)
    max_in_flight: int = 200
    mode: str = "hostpool"
    status_every: int = 250
    require_json_field: str = ""
    require_json_value: str = ""
    whitelist_json_fields: list[str] = field(default_factory=list)


FLAGS = [
    *consumer_flags("nsq_to_nsq"),
    Flag("destination-nsqd-tcp-address", "destination_nsqd_tcp_addresses", "str_list", "destination nsqd TCP address (may be given multiple times)"),
    Flag("destination-topic", "destination_topic", "str", "use this destination topic for all consumed topics (default is consumed topic name)"),
    Flag("producer-opt", "producer_opts", "str_list", "option to passthrough to nsq.Producer (may be given multiple times, see http://godoc.org/github.com/nsqio/go-nsq#Config)"),
    Flag("mode", "mode", "str", "the upstream request mode options: round-robin, hostpool (default), epsilon-greedy"),
    Flag("status-every", "status_every", "int", "the # of requests between logging status (per destination), 0 disables"),
    Flag("require-json-field", "require_json_field", "str", "for JSON messages: only pass messages that contain this field"),
    Flag("require-json-value", "require_json_value", "str", "for JSON messages: only pass messages in which the required field has this value"),
    Flag("whitelist-json-field", "whitelist_json_fields", "str_list", "for JSON messages: pass this field (may be given multiple times)"),
]


def run(argv: Sequence[str]) -> int:
    opts, show_version = parse_flags(NAME, FLAGS, ToNSQOptions(), argv)
    if show_version:
        print(version_line(NAME))
        return 0
    if not opts.topics or not opts.channel:
        return fatal("--topic and --channel are required")
    for topic in opts.topics:
        if not is_valid_topic_name(topic):
            return fatal("--topic is invalid")
    if opts.destination_topic and not is_valid_topic_name(opts.destination_topic):
        return fatal("--destination-topic is invalid")
    if not is_valid_channel_name(opts.channel):
        return fatal("--channel is invalid")
    if not opts.nsqd_tcp_addresses and not opts.lookupd_http_addresses:
        return fatal("--nsqd-tcp-address or --lookupd-http-address required")
    if opts.nsqd_tcp_addresses and opts.lookupd_http_addresses:
        return fatal("use --nsqd-tcp-address or --lookupd-http-address not both")
    if not opts.destination_nsqd_tcp_addresses:
        return fatal("--destination-nsqd-tcp-address required")
    if opts.require_json_value and not opts.require_json_field:
        return fatal("--require-json-value requires --require-json-field")
    try:
        return asyncio.run(relay(opts))
    except ToolError as exc:
        return fatal(str(exc))


def json_filter(
    opts: ToNSQOptions, body: bytes, log: Callable[[bytes], None] = lambda line: None
) -> tuple[bytes | None, bool]:
    """(the body to publish, or None to drop the message; whether to back off) -- Go's rules.

    A body that is not a JSON object is dropped (finished) with Go's
    ``ERROR: Unable to decode json: <body>`` line, handed to ``log``.
    """
    if not opts.require_json_field and not opts.whitelist_json_fields:
        return body, False
    try:
        doc = json.loads(body)
    except ValueError:
        doc = body  # not a JSON object, like any other non-object below
    if doc is None:
        doc = {}  # Go decodes null into an empty map
    if not isinstance(doc, dict):
        log(b"ERROR: Unable to decode json: " + body)
        return None, False
    if opts.require_json_field:
        present = opts.require_json_field in doc
        if not present:
            return None, bool(opts.require_json_value)
        if opts.require_json_value and not _json_value_matches(doc[opts.require_json_field], opts.require_json_value):
            return None, False
    if not opts.whitelist_json_fields:
        return body, False
    kept = {k: _go_number(doc[k]) for k in opts.whitelist_json_fields if k in doc}
    # Go marshals a map with its keys sorted and no spaces.
    return json.dumps(kept, sort_keys=True, separators=(",", ":")).encode(), False


def _json_value_matches(value: object, wanted: str) -> bool:
    if isinstance(value, str):
        return value == wanted
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(wanted) == float(value)
        except ValueError:
            return False
    return False


def _go_number(value: object) -> object:
    # Go decodes JSON numbers as float64 and re-encodes whole ones as integers.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


async def relay(opts: ToNSQOptions) -> int:
    logger = tool_logger(NAME)
    consumer_config = tool_config(NAME, opts.consumer_opts, max_in_flight=opts.max_in_flight)
    producer_config = tool_config(NAME, opts.producer_opts)
    loop = asyncio.get_running_loop()
    addresses = opts.destination_nsqd_tcp_addresses
    pool = HostPool(addresses, opts.mode, loop.time)
    producers = {address: Producer(address, config=producer_config, logger=logger) for address in addresses}
    timings = Timings(opts.status_every, logger)
    relayed = 0

    def handler_for(topic: str) -> Callable[[Message], Awaitable[bool]]:
        destination = opts.destination_topic or topic

        async def handle(msg: Message) -> bool:
            nonlocal relayed
            body, backoff = json_filter(opts, msg.body, log_printf)
            if body is None:
                return not backoff
            address = pool.get()
            started = time.monotonic()
            try:
                await producers[address].pub(destination, body)
            except NSQClientError as exc:
                pool.mark(address, False)
                _log_failure(logger, address, msg, exc)
                return False  # requeued, with backoff
            pool.mark(address, True)
            timings.add(time.monotonic() - started)
            relayed += 1
            return True

        return handle

    consumers = [
        Consumer(
            topic,
            opts.channel,
            handler_for(topic),
            nsqd_tcp_addresses=opts.nsqd_tcp_addresses,
            lookupd_http_addresses=opts.lookupd_http_addresses,
            config=consumer_config,
            logger=logger,
        )
        for topic in opts.topics
    ]
    status = Status()
    with Shutdown() as shutdown:
        try:
            for consumer in consumers:
                await consumer.start()
            stopping = asyncio.ensure_future(shutdown.wait())
            while not stopping.done():
                await asyncio.wait([stopping], timeout=0.5)
                status.update(f"{NAME}: {relayed} messages relayed to {', '.join(addresses)}")
        finally:
            status.close()
            # Consumers first: their last messages still need the producers.
            await asyncio.gather(*(consumer.stop() for consumer in consumers))
            await asyncio.gather(*(producer.close() for producer in producers.values()))
    return 0


def _log_failure(logger: Logger, address: str, msg: Message, exc: Exception) -> None:
    logger.log("ERROR", f"publishing msg {msg.id.decode('ascii', 'replace')} to {address} failed: {exc}")


def main() -> None:
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
