"""nsqlookupd's HTTP API as pure functions: a request in, ``(status, headers, body)`` out.

The HTTP server layer parses the bytes and calls ``handle_target`` (raw
request-target) or ``handle`` (path and query already split); nothing here
knows about sockets. Endpoints, methods, status codes, error messages and JSON
shapes are nsqlookupd 1.3.0's:

=====================  ======  ==============================================
``/ping``              GET     ``OK`` as text
``/info``              GET     ``{"version"}``
``/debug``             GET     every registration's producers, raw
``/lookup?topic=``     GET     ``{"channels", "producers"}``; 404 TOPIC_NOT_FOUND
``/topics``            GET     ``{"topics"}``
``/channels?topic=``   GET     ``{"channels"}``
``/nodes``             GET     ``{"producers": [... "tombstones", "topics"]}``
``/topic/create``      POST    ``?topic=``
``/topic/delete``      POST    ``?topic=``
``/topic/tombstone``   POST    ``?topic=&node=<broadcast_address>:<http_port>``
``/channel/create``    POST    ``?topic=&channel=``
``/channel/delete``    POST    ``?topic=&channel=``; 404 CHANNEL_NOT_FOUND
=====================  ======  ==============================================

Routing is httprouter's: a known path with another method gets 405
``METHOD_NOT_ALLOWED`` and an ``Allow`` header, ``OPTIONS`` gets the
``Allow`` header alone, a path off by a trailing slash or letter case is
redirected (301 for GET, 307 otherwise), anything else is 404 ``NOT_FOUND``.
Errors are ``{"message": "CODE"}``. Parameters come only from the query
string, as ``http_api.NewReqParams`` reads them; a query Go cannot parse
answers 400 ``INVALID_REQUEST``.

Beyond Go: every response, including ``/ping``, ``OPTIONS`` and redirects,
carries ``X-NSQ-Content-Type: nsq; version=1.0`` (Go sets it only on JSON
answers). The ``/debug/pprof`` profiling endpoints do not exist.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Final
from urllib.parse import urlencode

from broker.lookupd.registration_db import (
    CHANNEL,
    CLIENT,
    TOPIC,
    PeerInfo,
    Registration,
    filter_by_active,
)
from broker.version import PACKAGE_VERSION
from broker.wire import gojson
from broker.wire.gojson import JSONValue
from broker.wire.gourl import URLError, clean_path, parse_query, parse_target
from broker.wire.names import is_valid_channel_name, is_valid_topic_name

if TYPE_CHECKING:
    from broker.lookupd.lookupd import NSQLookupd

__all__ = ["NSQ_CONTENT_TYPE", "HTTPError", "HTTPResponse", "LookupdHTTPAPI"]

HTTPResponse = tuple[int, dict[str, str], bytes]

NSQ_CONTENT_TYPE: Final = "nsq; version=1.0"
_JSON: Final = "application/json; charset=utf-8"
_TEXT: Final = "text/plain; charset=utf-8"
_HTML: Final = "text/html; charset=utf-8"
_STATUS_TEXT: Final = {301: "Moved Permanently", 307: "Temporary Redirect"}


class HTTPError(Exception):
    """An error answer: ``status`` with ``{"message": text}``."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class _Params:
    """``http_api.ReqParams``: the query's first value per key."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Sequence[str]], ok: bool) -> None:
        if not ok:
            raise HTTPError(400, "INVALID_REQUEST")
        self._values = values

    def get(self, key: str) -> str | None:
        v = self._values.get(key)
        return v[0] if v else None

    def topic(self) -> str:
        topic = self.get("topic")
        if topic is None:
            raise HTTPError(400, "MISSING_ARG_TOPIC")
        return topic

    def topic_channel(self) -> tuple[str, str]:
        """``http_api.GetTopicChannelArgs``: both present and valid."""
        topic = self.topic()
        if not is_valid_topic_name(topic):
            raise HTTPError(400, "INVALID_ARG_TOPIC")
        channel = self.get("channel")
        if channel is None:
            raise HTTPError(400, "MISSING_ARG_CHANNEL")
        if not is_valid_channel_name(channel):
            raise HTTPError(400, "INVALID_ARG_CHANNEL")
        return topic, channel


# A handler gets its parameters through a thunk, so that only handlers that read
# parameters answer INVALID_REQUEST, as in Go. It returns JSON to encode, a str
# to send as text, or None for an empty 200.
_Handler = Callable[[Callable[[], _Params]], JSONValue]


class LookupdHTTPAPI:
    def __init__(self, lookupd: NSQLookupd) -> None:
        self._lookupd = lookupd
        # path -> method -> handler: httprouter's trees, turned inside out.
        self._routes: dict[str, dict[str, _Handler]] = {
            "/ping": {"GET": self._ping},
            "/info": {"GET": self._info},
            "/debug": {"GET": self._debug},
            "/lookup": {"GET": self._lookup},
            "/topics": {"GET": self._topics},
            "/channels": {"GET": self._channels},
            "/nodes": {"GET": self._nodes},
            "/topic/create": {"POST": self._create_topic},
            "/topic/delete": {"POST": self._delete_topic},
            "/topic/tombstone": {"POST": self._tombstone_topic_producer},
            "/channel/create": {"POST": self._create_channel},
            "/channel/delete": {"POST": self._delete_channel},
        }
        self._methods = sorted({m for by_method in self._routes.values() for m in by_method})

    def handle_target(self, method: str, target: bytes | str, body: bytes) -> HTTPResponse:
        """Answer a request given its raw request-target (``/lookup?topic=t``)."""
        raw = target.encode("utf-8", "surrogateescape") if isinstance(target, str) else target
        try:
            parsed = parse_target(raw)
        except URLError:
            # Go's server answers this itself, before routing.
            return 400, {"Content-Type": _TEXT, "Connection": "close"}, b"400 Bad Request"
        query = parse_query(parsed.raw_query)
        return self._serve(method, parsed.path, query.values, query.ok, parsed.raw_query, body)

    def handle(
        self, method: str, path: str, query: Mapping[str, Sequence[str]], body: bytes
    ) -> HTTPResponse:
        """Answer a request whose path is already unescaped and query already parsed."""
        raw_query = urlencode([(k, v) for k, vs in query.items() for v in vs])
        return self._serve(method, path, query, True, raw_query, body)

    # -- routing (httprouter) --------------------------------------------------

    def _serve(
        self,
        method: str,
        path: str,
        query: Mapping[str, Sequence[str]],
        query_ok: bool,
        raw_query: str,
        body: bytes,
    ) -> HTTPResponse:
        handler = self._routes.get(path, {}).get(method)
        if handler is not None:
            response = self._call(handler, lambda: _Params(query, query_ok))
        else:
            response = self._unrouted(method, path, raw_query)
        response[1]["X-NSQ-Content-Type"] = NSQ_CONTENT_TYPE
        return response

    def _call(self, handler: _Handler, params: Callable[[], _Params]) -> HTTPResponse:
        try:
            data = handler(params)
        except HTTPError as err:
            return _error(err)
        if data is None:
            return 200, {}, b""
        if isinstance(data, str):
            # Go sets no type for text; its server sniffs this one.
            return 200, {"Content-Type": _TEXT}, data.encode("utf-8")
        return 200, {"Content-Type": _JSON}, gojson.dumps(data)

    def _unrouted(self, method: str, path: str, raw_query: str) -> HTTPResponse:
        # httprouter redirects only within a method it has routes for (never CONNECT).
        if method in self._methods and path != "/":
            fixed = self._redirect_path(method, path)
            if fixed is not None:
                return _redirect(method, fixed, raw_query)
        allow = self._allowed(path, method)
        if method == "OPTIONS" and allow:
            return 200, {"Allow": allow}, b""
        if allow:
            response = _error(HTTPError(405, "METHOD_NOT_ALLOWED"))
            response[1]["Allow"] = allow
            return response
        return _error(HTTPError(404, "NOT_FOUND"))

    def _redirect_path(self, method: str, path: str) -> str | None:
        """The route ``path`` was meant to be: trailing slash first, then case and dots."""
        if len(path) > 1 and path.endswith("/") and method in self._routes.get(path[:-1], {}):
            return path[:-1]
        cleaned = clean_path(path)
        candidates = [cleaned]
        if len(cleaned) > 1 and cleaned.endswith("/"):
            candidates.append(cleaned[:-1])
        for candidate in candidates:
            for route, by_method in self._routes.items():
                if method in by_method and _fold_equal(candidate, route):
                    return route
        return None

    def _allowed(self, path: str, method: str) -> str:
        if path == "*":
            allowed = list(self._methods)
        else:
            by_method = self._routes.get(path, {})
            allowed = [m for m in self._methods if m != method and m in by_method]
        if not allowed:
            return ""
        return ", ".join(sorted([*allowed, "OPTIONS"]))

    # -- handlers --------------------------------------------------------------

    def _ping(self, params: Callable[[], _Params]) -> JSONValue:
        return "OK"

    def _info(self, params: Callable[[], _Params]) -> JSONValue:
        # nsqsim_version is beyond nsqlookupd: "version" is the NSQ release matched
        return {"version": self._lookupd.version, "nsqsim_version": PACKAGE_VERSION}

    def _topics(self, params: Callable[[], _Params]) -> JSONValue:
        regs = self._lookupd.db.find_registrations(TOPIC, "*", "")
        return {"topics": [r.key for r in regs]}

    def _channels(self, params: Callable[[], _Params]) -> JSONValue:
        topic = params().topic()
        regs = self._lookupd.db.find_registrations(CHANNEL, topic, "*")
        return {"channels": [r.subkey for r in regs]}

    def _lookup(self, params: Callable[[], _Params]) -> JSONValue:
        topic = params().topic()
        lookupd = self._lookupd
        db = lookupd.db
        if not db.find_registrations(TOPIC, topic, ""):
            raise HTTPError(404, "TOPIC_NOT_FOUND")
        channels: list[JSONValue] = [r.subkey for r in db.find_registrations(CHANNEL, topic, "*")]
        producers = filter_by_active(
            db.find_producers(TOPIC, topic, ""),
            lookupd.opts.inactive_producer_timeout,
            lookupd.opts.tombstone_lifetime,
            lookupd.clock.now(),
        )
        return {"channels": channels, "producers": [_peer_json(p.peer_info) for p in producers]}

    def _nodes(self, params: Callable[[], _Params]) -> JSONValue:
        lookupd = self._lookupd
        db = lookupd.db
        now = lookupd.clock.now()
        lifetime = lookupd.opts.tombstone_lifetime
        # Tombstoned nodes are listed; their tombstones say which topics.
        peers = filter_by_active(
            db.find_producers(CLIENT, "", ""), lookupd.opts.inactive_producer_timeout, 0.0, now
        )
        nodes: list[JSONValue] = []
        for p in peers:
            peer = p.peer_info
            topics = [r.key for r in db.lookup_registrations(peer.id) if r.is_match(TOPIC, "*", "")]
            tombstones: list[JSONValue] = []
            for t in topics:
                tp = db.producer(Registration(TOPIC, t, ""), peer.id)
                tombstones.append(
                    tp is not None and tp.peer_info is peer and tp.is_tombstoned(lifetime, now)
                )
            node = _peer_json(peer)
            node["tombstones"] = tombstones
            topics_json: list[JSONValue] = [*topics]
            node["topics"] = topics_json
            nodes.append(node)
        return {"producers": nodes}

    def _debug(self, params: Callable[[], _Params]) -> JSONValue:
        # Registrations without producers do not show; a Go map has its keys sorted.
        data: dict[str, JSONValue] = {}
        for k, producers in self._lookupd.db.items():
            if not producers:
                continue
            entries: list[JSONValue] = []
            data[f"{k.category}:{k.key}:{k.subkey}"] = entries
            for p in producers:
                peer = p.peer_info
                entries.append(
                    {
                        "broadcast_address": peer.broadcast_address,
                        "hostname": peer.hostname,
                        "http_port": peer.http_port,
                        "id": peer.id,
                        "last_update": peer.last_update_ns,
                        "tcp_port": peer.tcp_port,
                        "tombstoned": p.tombstoned,
                        "tombstoned_at": p.tombstoned_at_ns,
                        "version": peer.version,
                    }
                )
        return {key: data[key] for key in sorted(data)}

    def _create_topic(self, params: Callable[[], _Params]) -> JSONValue:
        topic = params().topic()
        if not is_valid_topic_name(topic):
            raise HTTPError(400, "INVALID_ARG_TOPIC")
        self._log(f"DB: adding topic({topic})")
        self._lookupd.db.add_registration(Registration(TOPIC, topic, ""))
        return None

    def _delete_topic(self, params: Callable[[], _Params]) -> JSONValue:
        # Go does not validate the name here, so "*" deletes every topic.
        topic = params().topic()
        db = self._lookupd.db
        for r in db.find_registrations(CHANNEL, topic, "*"):
            self._log(f"DB: removing channel({r.subkey}) from topic({topic})")
            db.remove_registration(r)
        for r in db.find_registrations(TOPIC, topic, ""):
            self._log(f"DB: removing topic({topic})")
            db.remove_registration(r)
        return None

    def _tombstone_topic_producer(self, params: Callable[[], _Params]) -> JSONValue:
        p = params()
        topic = p.topic()
        node = p.get("node")
        if node is None:
            raise HTTPError(400, "MISSING_ARG_NODE")
        self._log(f"DB: setting tombstone for producer@{node} of topic({topic})")
        clock = self._lookupd.clock
        for producer in self._lookupd.db.find_producers(TOPIC, topic, ""):
            peer = producer.peer_info
            if f"{peer.broadcast_address}:{peer.http_port}" == node:
                producer.tombstone(clock.now(), clock.wall_ns())
        return None

    def _create_channel(self, params: Callable[[], _Params]) -> JSONValue:
        topic, channel = params().topic_channel()
        db = self._lookupd.db
        self._log(f"DB: adding channel({channel}) in topic({topic})")
        db.add_registration(Registration(CHANNEL, topic, channel))
        self._log(f"DB: adding topic({topic})")
        db.add_registration(Registration(TOPIC, topic, ""))
        return None

    def _delete_channel(self, params: Callable[[], _Params]) -> JSONValue:
        topic, channel = params().topic_channel()
        db = self._lookupd.db
        regs = db.find_registrations(CHANNEL, topic, channel)
        if not regs:
            raise HTTPError(404, "CHANNEL_NOT_FOUND")
        self._log(f"DB: removing channel({channel}) from topic({topic})")
        for r in regs:
            db.remove_registration(r)
        return None

    def _log(self, msg: str) -> None:
        self._lookupd.logger.log("INFO", msg)


def _peer_json(peer: PeerInfo) -> dict[str, JSONValue]:
    # PeerInfo's struct field order.
    return {
        "remote_address": peer.remote_address,
        "hostname": peer.hostname,
        "broadcast_address": peer.broadcast_address,
        "tcp_port": peer.tcp_port,
        "http_port": peer.http_port,
        "version": peer.version,
    }


def _error(err: HTTPError) -> HTTPResponse:
    return err.status, {"Content-Type": _JSON}, gojson.dumps({"message": err.text})


def _redirect(method: str, path: str, raw_query: str) -> HTTPResponse:
    """httprouter's redirect through Go's ``http.Redirect``."""
    code = 301 if method == "GET" else 307
    url = path + ("?" + raw_query if raw_query else "")
    location = "".join(
        c if c < "\x80" else "".join(f"%{b:02x}" for b in c.encode("utf-8", "surrogateescape"))
        for c in url
    )
    headers = {"Location": location}
    body = b""
    if method == "GET":
        headers["Content-Type"] = _HTML
        href = html.escape(location, quote=True).replace("&#x27;", "&#39;").replace("&quot;", "&#34;")
        body = f'<a href="{href}">{_STATUS_TEXT[code]}</a>.\n\n'.encode()
    return code, headers, body


def _fold_equal(path: str, route: str) -> bool:
    """httprouter's case-insensitive path match (routes are lower-case ASCII)."""
    if len(path) != len(route):
        return False
    # Python lower-cases U+0130 to two characters; Go's unicode.ToLower gives 'i'.
    return all((c.lower() if c != "\u0130" else "i") == r for c, r in zip(path, route, strict=True))
