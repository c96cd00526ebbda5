"""Discovering the nsqd that carry a topic by polling nsqlookupd, as go-nsq does.

``GET /lookup?topic=<topic>`` on one nsqlookupd at a time, in turn, answers
``{"channels": [...], "producers": [{"broadcast_address", "tcp_port", ...}]}``;
each producer's ``broadcast_address:tcp_port`` is an nsqd to consume from.  The
first poll runs as soon as the first address is added; the next one after a
random jitter (up to ``lookupd_poll_jitter`` of the interval, so consumers
restarted together do not poll together), then every
``lookupd_poll_interval``.  A failed poll moves on to the next nsqlookupd, up
to three tries per round.  ``query_now`` asks for an extra poll (the consumer
does when it loses an nsqd).

Answers in nsqlookupd's pre-1.0 envelope (``{"status_code", "status_txt",
"data"}``) are unwrapped, since go-nsq still sends the ``Accept`` header that
negotiates either.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode, urlsplit, urlunsplit

from broker.client.address import http_url, join_address
from broker.client.config import ClientConfig
from broker.client.http import HTTPFetch, HTTPRequest, HTTPResponse
from broker.ports import Clock, Logger, Network, Random, Timer

__all__ = ["LookupdPoller", "lookup_url", "parse_lookup"]

MAX_TRIES = 3  # go-nsq's retries per poll
ACCEPT = ("Accept", "application/vnd.nsq; version=1.0")


def lookup_url(address: str, topic: str) -> str:
    """The ``/lookup`` URL for an nsqlookupd HTTP address (``host:port``, a socket path or a URL)."""
    if "://" not in address:
        address = http_url(address, "")
    parts = urlsplit(address)
    path = parts.path if parts.path not in ("", "/") else "/lookup"
    return urlunsplit((parts.scheme, parts.netloc, path, urlencode({"topic": topic}), ""))


def parse_lookup(body: object) -> list[str]:
    """The nsqd TCP addresses in a ``/lookup`` answer; ValueError if it is not one."""
    if isinstance(body, dict) and "data" in body and "status_code" in body:
        body = body["data"]
    if not isinstance(body, dict):
        raise ValueError("lookup answer is not a JSON object")
    producers = body.get("producers")
    if producers is None:  # Go encodes an empty slice that was never made as null
        producers = []
    if not isinstance(producers, list):
        raise ValueError("lookup answer's producers is not a list")
    found: list[str] = []
    for producer in producers:
        if not isinstance(producer, dict):
            raise ValueError("lookup answer has a producer that is not an object")
        host = producer.get("broadcast_address")
        port = producer.get("tcp_port")
        if not isinstance(host, str) or not isinstance(port, int) or isinstance(port, bool):
            raise ValueError(f"lookup answer has a producer without broadcast_address/tcp_port: {producer}")
        address = join_address(host, port)
        if address not in found:
            found.append(address)
    return found


class LookupdPoller:
    def __init__(
        self,
        topic: str,
        config: ClientConfig,
        *,
        clock: Clock,
        network: Network,
        random: Random,
        on_producers: Callable[[list[str]], None],
        logger: Logger | None = None,
    ) -> None:
        self.topic = topic
        self._config = config
        self._clock = clock
        self._network = network
        self._random = random
        self._on_producers = on_producers
        self._logger = logger
        self._urls: list[str] = []
        self._next = 0
        self._timer: Timer | None = None
        self._request: HTTPFetch | None = None
        self._again = False
        self._stopped = False

    @property
    def addresses(self) -> list[str]:
        return list(self._urls)

    def add(self, address: str) -> None:
        url = lookup_url(address, self.topic)
        HTTPRequest.from_url(url)  # rejects a malformed address now, not at the first poll
        if url in self._urls or self._stopped:
            return
        self._urls.append(url)
        if len(self._urls) == 1:
            self.query_now()
            jitter = self._random.random() * self._config.lookupd_poll_jitter * self._config.lookupd_poll_interval
            self._timer = self._clock.call_later(jitter, self._tick)

    def query_now(self) -> None:
        if self._stopped or not self._urls:
            return
        if self._request is not None:
            self._again = True
            return
        self._query(tries=0)

    def stop(self) -> None:
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._request is not None:
            self._request.cancel()
            self._request = None

    def _tick(self) -> None:
        self._timer = self._clock.call_later(self._config.lookupd_poll_interval, self._tick)
        self.query_now()

    def _query(self, tries: int) -> None:
        index = self._next % len(self._urls)
        self._next = index + 1  # taken modulo at the next poll, when more addresses may have come
        url = self._urls[index]
        self._log("INFO", f"querying nsqlookupd {url}")

        def done(result: HTTPResponse | BaseException) -> None:
            if self._request is handler:
                self._request = None
            if self._stopped:
                return
            error = ""
            addresses: list[str] = []
            if isinstance(result, BaseException):
                error = str(result) or type(result).__name__
            elif result.status != 200:
                error = f"status {result.status}: {result.body[:200].decode('utf-8', 'replace')}"
            else:
                try:
                    addresses = parse_lookup(result.json())
                except ValueError as exc:  # not JSON, or not a lookup answer
                    error = str(exc)
            if error:
                self._log("ERROR", f"error querying nsqlookupd ({url}) - {error}")
                if tries + 1 < MAX_TRIES:
                    self._log("INFO", "retrying with next nsqlookupd")
                    self._query(tries + 1)
                    return
            else:
                self._on_producers(addresses)
            self._finished()

        handler = HTTPFetch(
            HTTPRequest.from_url(url, headers=(ACCEPT,)),
            self._clock,
            done,
            timeout=self._config.lookupd_poll_timeout,
            user_agent=self._config.user_agent,
        )
        self._request = handler  # before start: a refused connect may call done() at once
        handler.start(self._network)

    def _finished(self) -> None:
        if self._again and not self._stopped and self._request is None:
            self._again = False
            self._query(tries=0)

    def _log(self, level: str, msg: str) -> None:
        if self._logger is not None:
            self._logger.log(level, msg)
