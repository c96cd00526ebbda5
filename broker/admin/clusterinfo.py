"""What nsqadmin asks of the cluster: Go's ``internal/clusterinfo``, as flows.

Each query fans out to every nsqlookupd (or every given nsqd) at once and
follows Go's rule for failures: when *every* node failed the query fails
(``UpstreamError``, nsqadmin answers 502); when only some did, the result
holds what the others said and carries their errors (``Partial``), which
nsqadmin turns into a ``"WARNING: ..."`` message beside the figures.

Results are put together in the order the addresses were given, whatever
order the answers came in, so the same cluster gives the same answer.
Error texts read as Go's ``http.Client`` and ``http_api`` word them
(``Get "http://...": dial tcp ...: connect: connection refused``,
``got response 404 Not Found "..."``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Generic, TypeVar
from urllib.parse import quote_plus

from broker.admin.flow import Flow, Outcome, parallel
from broker.admin.stats import ChannelStats, Producer, TopicStats
from broker.client.address import http_url
from broker.client.http import HTTPRequest, HTTPResponse

__all__ = ["ClusterInfo", "Partial", "UpstreamError", "describe_failure", "go_quote"]

T = TypeVar("T")

_ACCEPT = (("Accept", "application/vnd.nsq; version=1.0"),)


class UpstreamError(Exception):
    """No node answered (or a step that must succeed failed): nsqadmin's 502."""


@dataclass(slots=True)
class Partial(Generic[T]):
    """A result and the errors of the nodes that did not contribute to it."""

    value: T
    errors: list[str] = field(default_factory=list)

    def warning(self) -> str:
        """Go's ``ErrList.Error()``: the errors, one per line."""
        return "\n".join(self.errors)


def go_quote(text: str) -> str:
    """``strconv.Quote`` (``%q``) of a response body."""
    return json.dumps(text, ensure_ascii=False)


def _status_text(status: int) -> str:
    """Go's ``resp.Status``: ``404 Not Found``."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} status code {status}"


def describe_failure(request: HTTPRequest, url: str, outcome: Outcome) -> str | None:
    """Go's error text for a request that did not get a 200, or None for one that did."""
    if isinstance(outcome, HTTPResponse):
        if outcome.status == 200:
            return None
        body = outcome.body.decode("utf-8", "replace")
        return f"got response {_status_text(outcome.status)} {go_quote(body)}"
    method = request.method[:1] + request.method[1:].lower()
    if isinstance(outcome, ConnectionRefusedError):
        why = f"dial tcp {request.host}:{request.port}: connect: connection refused"
    elif isinstance(outcome, TimeoutError):
        why = "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
    elif isinstance(outcome, OSError) and outcome.strerror:
        why = f"dial tcp {request.host}:{request.port}: {outcome.strerror.lower()}"
    else:
        why = str(outcome) or type(outcome).__name__
    return f"{method} {go_quote(url)}: {why}"


class _Call:
    """One request to one address; ``_Failed`` for an address no request can go to."""

    __slots__ = ("request", "url")

    def __init__(self, address: str, target: str, method: str = "GET") -> None:
        self.url = http_url(address, target)
        try:
            self.request = HTTPRequest.from_url(self.url, method, _ACCEPT)
        except ValueError as exc:
            raise _Failed(f"{method[:1]}{method[1:].lower()} {go_quote(self.url)}: {exc}") from None


def _get_json(address: str, target: str, log: Callable[[str], None], what: str) -> Flow[object]:
    """GET one JSON document (Go's ``GETV1``); raises ``_Failed`` with Go's error text."""
    call = _Call(address, target)
    log(f"CI: querying {what} {call.url}")
    (outcome,) = yield [call.request]
    error = describe_failure(call.request, call.url, outcome)
    if error is not None:
        raise _Failed(error)
    assert isinstance(outcome, HTTPResponse)
    try:
        return json.loads(outcome.body)
    except ValueError as exc:
        raise _Failed(f"invalid JSON from {call.url}: {exc}") from None


def _post(address: str, target: str, log: Callable[[str], None], what: str) -> Flow[str | None]:
    """POST with no body (Go's ``POSTV1``); the error text, or None."""
    try:
        call = _Call(address, target, "POST")
    except _Failed as exc:
        return str(exc)
    log(f"CI: querying {what} {call.url}")
    (outcome,) = yield [call.request]
    return describe_failure(call.request, call.url, outcome)


class _Failed(Exception):
    pass


def _attempt(flow: Flow[T]) -> Flow[T | _Failed]:
    """``flow``'s result, or the ``_Failed`` it raised, so ``parallel`` can gather failures."""
    try:
        return (yield from flow)
    except _Failed as exc:
        return exc


def _obj(value: object) -> Mapping[str, object]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _fanout(results: Sequence[T | _Failed], what: str) -> tuple[list[T], list[str]]:
    """The answers and the errors; ``UpstreamError`` when every node failed (Go: also when there were none)."""
    good = [r for r in results if not isinstance(r, _Failed)]
    errors = [str(r) for r in results if isinstance(r, _Failed)]
    if len(errors) == len(results):
        raise UpstreamError(f"failed to query any {what}: " + "\n".join(errors))
    return good, errors


def _query(topic: str, channel: str = "") -> str:
    qs = f"topic={quote_plus(topic)}"
    return qs + (f"&channel={quote_plus(channel)}" if channel else "")


class ClusterInfo:
    """The queries, against the nsqlookupd or nsqd HTTP addresses given to each call."""

    def __init__(self, log: Callable[[str], None], wall_seconds: Callable[[], int]) -> None:
        self._log = log
        self._wall_seconds = wall_seconds

    # -- nsqlookupd ------------------------------------------------------------------

    def lookupd_topics(self, lookupds: Sequence[str]) -> Flow[Partial[list[str]]]:
        results = yield from parallel([_attempt(_get_json(a, "/topics", self._log, "nsqlookupd")) for a in lookupds])
        good, errors = _fanout(results, "nsqlookupd")
        topics = sorted({str(t) for r in good for t in _list(_obj(r).get("topics"))})
        return Partial(topics, errors)

    def lookupd_topic_channels(self, topic: str, lookupds: Sequence[str]) -> Flow[Partial[list[str]]]:
        target = f"/channels?topic={quote_plus(topic)}"
        results = yield from parallel([_attempt(_get_json(a, target, self._log, "nsqlookupd")) for a in lookupds])
        good, errors = _fanout(results, "nsqlookupd")
        channels = sorted({str(c) for r in good for c in _list(_obj(r).get("channels"))})
        return Partial(channels, errors)

    def lookupd_producers(self, lookupds: Sequence[str]) -> Flow[Partial[list[Producer]]]:
        results = yield from parallel([_attempt(_get_json(a, "/nodes", self._log, "nsqlookupd")) for a in lookupds])
        _fanout(results, "nsqlookupd")
        errors: list[str] = []
        by_tcp: dict[str, Producer] = {}
        for address, result in zip(lookupds, results, strict=True):
            if isinstance(result, _Failed):
                errors.append(str(result))
                continue
            for raw in _list(_obj(result).get("producers")):
                producer = Producer.from_lookupd(_obj(raw))
                known = by_tcp.get(producer.tcp_address)
                if known is None:
                    if producer.topics is not None:
                        producer.topics.sort()
                    by_tcp[producer.tcp_address] = known = producer
                known.remote_addresses = [*(known.remote_addresses or ()), f"{address}/{producer.address}"]
        producers = list(by_tcp.values())
        newest = max((p.version_key for p in producers), default=None)
        for p in producers:
            p.out_of_date = newest is not None and p.version_key < newest
        producers.sort(key=lambda p: p.hostname)
        return Partial(producers, errors)

    def lookupd_topic_producers(self, topic: str, lookupds: Sequence[str]) -> Flow[Partial[list[Producer]]]:
        target = f"/lookup?topic={quote_plus(topic)}"
        results = yield from parallel([_attempt(_get_json(a, target, self._log, "nsqlookupd")) for a in lookupds])
        good, errors = _fanout(results, "nsqlookupd")
        producers: list[Producer] = []
        for result in good:
            for raw in _list(_obj(result).get("producers")):
                p = Producer.from_lookupd(_obj(raw))
                if all(p.http_address != q.http_address for q in producers):
                    producers.append(p)
        return Partial(producers, errors)

    # -- nsqd --------------------------------------------------------------------------

    def nsqd_topics(self, nsqds: Sequence[str]) -> Flow[Partial[list[str]]]:
        results = yield from parallel([_attempt(_get_json(a, "/stats?format=json", self._log, "nsqd")) for a in nsqds])
        good, errors = _fanout(results, "nsqd")
        topics = sorted({str(_obj(t).get("topic_name", "")) for r in good for t in _list(_obj(r).get("topics"))})
        return Partial(topics, errors)

    def nsqd_producers(self, nsqds: Sequence[str]) -> Flow[Partial[list[Producer]]]:
        results = yield from parallel([_attempt(self._nsqd_producer(a, None)) for a in nsqds])
        good, errors = _fanout(results, "nsqd")
        return Partial([p for p in good if p is not None], errors)

    def nsqd_topic_producers(self, topic: str, nsqds: Sequence[str]) -> Flow[Partial[list[Producer]]]:
        results = yield from parallel([_attempt(self._nsqd_producer(a, topic)) for a in nsqds])
        good, errors = _fanout(results, "nsqd")
        return Partial([p for p in good if p is not None], errors)

    def _nsqd_producer(self, address: str, topic: str | None) -> Flow[Producer | None]:
        """An nsqd as a producer (``/info`` and its topics); None if it lacks ``topic``."""
        if topic is None:
            info = _obj((yield from _get_json(address, "/info", self._log, "nsqd")))
            stats = yield from _get_json(address, "/stats?format=json&include_clients=false", self._log, "nsqd")
        else:
            target = f"/stats?format=json&topic={quote_plus(topic)}&include_clients=false"
            stats = yield from _get_json(address, target, self._log, "nsqd")
            if all(_obj(t).get("topic_name") != topic for t in _list(_obj(stats).get("topics"))):
                return None
            info = _obj((yield from _get_json(address, "/info", self._log, "nsqd")))
        names = [str(_obj(t).get("topic_name", "")) for t in _list(_obj(stats).get("topics"))]
        p = Producer.from_lookupd(info)
        p.topics = [(n, False) for n in names] or None
        if topic is not None:
            # Go: an nsqd too old to say where it is gets the address it was reached at.
            host, _, port = address.rpartition(":")
            if not p.broadcast_address:
                p.broadcast_address = host.strip("[]")
                p.http_port = int(port) if port.isdigit() else 0
            if not p.hostname:
                p.hostname = host.strip("[]")
        return p

    def producers(self, lookupds: Sequence[str], nsqds: Sequence[str]) -> Flow[Partial[list[Producer]]]:
        if lookupds:
            return (yield from self.lookupd_producers(lookupds))
        return (yield from self.nsqd_producers(nsqds))

    def topic_producers(self, topic: str, lookupds: Sequence[str], nsqds: Sequence[str]) -> Flow[Partial[list[Producer]]]:
        if lookupds:
            return (yield from self.lookupd_topic_producers(topic, lookupds))
        return (yield from self.nsqd_topic_producers(topic, nsqds))

    def nsqd_stats(
        self, producers: Sequence[Producer], topic: str, channel: str, include_clients: bool
    ) -> Flow[Partial[tuple[list[TopicStats], dict[str, ChannelStats]]]]:
        """Go's ``GetNSQDStats``: per-node topics, and channels summed over nodes.

        Channels are keyed by name when ``topic`` is given, else ``topic:channel``.
        """
        target = "/stats?format=json"
        if topic:
            target += f"&topic={quote_plus(topic)}"
            if channel:
                target += f"&channel={quote_plus(channel)}"
        if not include_clients:
            target += "&include_clients=false"
        results = yield from parallel([_attempt(_get_json(p.http_address, target, self._log, "nsqd")) for p in producers])
        good_or_failed = list(zip(producers, results, strict=True))
        _, errors = _fanout(results, "nsqd")
        wall = self._wall_seconds()
        topics: list[TopicStats] = []
        channels: dict[str, ChannelStats] = {}
        for producer, result in good_or_failed:
            if isinstance(result, _Failed):
                continue
            node = producer.http_address
            for raw in _list(_obj(result).get("topics")):
                ts = TopicStats.from_nsqd(_obj(raw), node, producer.hostname, wall)
                if topic and ts.topic_name != topic:
                    continue
                topics.append(ts)
                for cs in ts.channels or ():
                    key = cs.channel_name if topic else f"{ts.topic_name}:{cs.channel_name}"
                    total = channels.get(key)
                    if total is None:
                        channels[key] = total = ChannelStats.total(ts.topic_name, cs.channel_name)
                    total.add(cs)
        topics.sort(key=lambda t: t.hostname)
        return Partial((topics, channels), errors)

    # -- actions ---------------------------------------------------------------------------

    def lookupd_post(self, lookupds: Sequence[str], uri: str, qs: str) -> Flow[list[str]]:
        """POST to every lookupd in turn, as Go does (one after the other); the errors."""
        errors: list[str] = []
        for address in lookupds:
            error = yield from _post(address, f"/{uri}?{qs}", self._log, "nsqlookupd")
            if error is not None:
                errors.append(error)
        return errors

    def producers_post(self, producers: Sequence[Producer], uri: str, qs: str) -> Flow[list[str]]:
        errors: list[str] = []
        for p in producers:
            error = yield from _post(p.http_address, f"/{uri}?{qs}", self._log, "nsqd")
            if error is not None:
                errors.append(error)
        return errors

    def topic_action(self, topic: str, channel: str, uri: str, lookupds: Sequence[str], nsqds: Sequence[str]) -> Flow[list[str]]:
        """Go's ``actionHelper``: find the topic's producers, then POST ``uri`` to each."""
        found = yield from self.topic_producers(topic, lookupds, nsqds)
        errors = list(found.errors)
        errors += yield from self.producers_post(found.value, uri, _query(topic, channel))
        return errors

    def delete_topic(self, topic: str, lookupds: Sequence[str], nsqds: Sequence[str]) -> Flow[list[str]]:
        # The producers first: once lookupd forgets the topic it cannot say who has it.
        found = yield from self.topic_producers(topic, lookupds, nsqds)
        errors = list(found.errors)
        errors += yield from self.lookupd_post(lookupds, "topic/delete", _query(topic))
        errors += yield from self.producers_post(found.value, "topic/delete", _query(topic))
        return errors

    def delete_channel(self, topic: str, channel: str, lookupds: Sequence[str], nsqds: Sequence[str]) -> Flow[list[str]]:
        found = yield from self.topic_producers(topic, lookupds, nsqds)
        errors = list(found.errors)
        errors += yield from self.lookupd_post(lookupds, "channel/delete", _query(topic, channel))
        errors += yield from self.producers_post(found.value, "channel/delete", _query(topic, channel))
        return errors

    def tombstone_node_for_topic(self, topic: str, node: str, lookupds: Sequence[str]) -> Flow[list[str]]:
        """Tombstone ``node`` (its HTTP address) for ``topic`` at every lookupd, then delete the topic there."""
        qs = f"topic={quote_plus(topic)}&node={quote_plus(node)}"
        errors = yield from self.lookupd_post(lookupds, "topic/tombstone", qs)
        found = yield from self.nsqd_producers([node])
        errors += found.errors
        errors += yield from self.producers_post(found.value, "topic/delete", _query(topic))
        return errors

    def create_topic_channel(self, topic: str, channel: str, lookupds: Sequence[str]) -> Flow[list[str]]:
        errors = yield from self.lookupd_post(lookupds, "topic/create", _query(topic))
        if channel:
            errors += yield from self.lookupd_post(lookupds, "channel/create", _query(topic, channel))
            found = yield from self.lookupd_topic_producers(topic, lookupds)
            errors += found.errors
            errors += yield from self.producers_post(found.value, "channel/create", _query(topic, channel))
        return errors
