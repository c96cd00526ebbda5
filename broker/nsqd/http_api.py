"""nsqd's HTTP API, answering as nsqd 1.3.0 does.

==========================  ======  ===========================================
``/ping``                   GET     ``OK``; 500 and the health text when unhealthy
``/info``                   GET     version, addresses, ports, client limits
``/stats``                  GET     ``?format=json|text&topic=&channel=&include_clients=&include_mem=``
``/pub``                    POST    ``?topic=&defer=<ms>``, the body is the message
``/mpub``                   POST    ``?topic=&binary=``: lines, or nsqd's binary MPUB body
``/topic/<op>``             POST    create, delete, empty, pause, unpause ``?topic=``
``/channel/<op>``           POST    create, delete, empty, pause, unpause ``?topic=&channel=``
``/config/<opt>``           GET     any option, by its config-file name
``/config/<opt>``           PUT     ``nsqlookupd_tcp_addresses`` (JSON list), ``log_level``
``/metrics``                GET     beyond nsqd: the figures in Prometheus' text format (``metrics.py``)
``/debug/freememory``       POST    a full garbage collection, then 500 (see below)
``/debug/setblockrate``     PUT     ``?rate=`` checked; Python has no block profile
==========================  ======  ===========================================

Answers follow nsqd's two response wrappers.  "V1": a string or bytes is sent
as is, nothing as an empty body, anything else as JSON; an error is 4xx/5xx
with ``{"message":"CODE"}``.  "Plain text" (``/ping``, ``/debug/*``): text, and
errors as text.  Parameters come from the query string only, parsed as Go's
``url.ParseQuery`` parses it (a bad escape answers 400 ``INVALID_REQUEST``).

Routing is httprouter's: a path off by a trailing slash, letter case or dot
segments is redirected (301 for GET, 307 otherwise), a known path asked with
another method gets 405 ``METHOD_NOT_ALLOWED`` with an ``Allow`` header
(``HEAD`` included: nsqd registers no HEAD routes), ``OPTIONS`` gets the
``Allow`` header alone, and anything else 404 ``NOT_FOUND``.

The two ``/debug`` endpoints answer as nsqd 1.3.0 does, oddly: their handlers
return nothing through the plain-text wrapper, which panics, and the panic
handler answers 500 ``INTERNAL_ERROR`` (after the work is done).

What the node may offer, read when present: ``on_lookupd_addresses_changed()``
and ``on_log_level_changed()``, called after a ``PUT /config`` stored the new
value in ``opts``; ``https_address``, for the ``TLS_REQUIRED`` answer.

Beyond nsqd, additively: every answer carries ``X-NSQ-Content-Type``, where
nsqd sets it only on V1 answers.  Not here: the ``/debug/pprof`` endpoints.
"""

from __future__ import annotations

import gc
import hashlib
import math
import zlib
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, TypeAlias

from broker.nsqd import metrics
from broker.nsqd.message import Message
from broker.nsqd.options import spec_by_cfg_name
from broker.nsqd.stats import StatsQuery, go_duration, stats_json, stats_text
from broker.nsqd.topic import PublishRefused, Topic
from broker.version import PACKAGE_VERSION
from broker.wire import gojson
from broker.wire.goduration import parse_go_duration_ns
from broker.wire.gojson import JSONValue
from broker.wire.gourl import (
    ParsedQuery,
    RequestTarget,
    URLError,
    clean_path,
    parse_query,
    parse_target,
)
from broker.wire.http import HTTPLimits, HTTPServerConnection, Request, RequestHead, Response
from broker.wire.names import is_valid_channel_name, is_valid_topic_name
from broker.wire.netaddr import go_addr_string

if TYPE_CHECKING:
    from broker.nsqd.nsqd import NSQD

__all__ = ["NSQDHTTPAPI", "HTTPConnection"]

_JSON = "application/json; charset=utf-8"
_TEXT = "text/plain; charset=utf-8"
_HTML = "text/html; charset=utf-8"
_NSQ_TYPE = ("X-Nsq-Content-Type", "nsq; version=1.0")
# nsqd's boolParams: anything else (or nothing) leaves the default.
_BOOLS = {"true": True, "1": True, "false": False, "0": False}
_LOG_LEVELS = {"debug": 1, "info": 2, "warn": 3, "error": 4, "fatal": 5}  # lg.LogLevel's numbers
_TLS_REQUIRED = {"false": 0, "tcp-https": 1, "true": 2}
_TLS_VERSIONS = {"ssl3.0": 0x0300, "tls1.0": 0x0301, "tls1.1": 0x0302, "tls1.2": 0x0303, "tls1.3": 0x0304}
# Options in our table that nsqd's Options struct has no flag tag for, so /config does not know them.
_NOT_IN_CONFIG = frozenset({"verbose", "queue_scan_interval", "queue_scan_refresh_interval", "queue_scan_dirty_percent"})
_MAX_INT64 = (1 << 63) - 1


class HTTPConnection(HTTPServerConnection):
    """One connection to nsqd's HTTP port."""

    def __init__(self, nsqd: NSQD, *, tls: bool = False) -> None:
        opts = nsqd.opts
        limits = HTTPLimits(max_body_bytes=max(opts.max_body_size, opts.max_msg_size) + 1)
        super().__init__(NSQDHTTPAPI(nsqd, tls=tls), limits, nsqd.clock)


class APIError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class _Panic(Exception):
    """What makes nsqd's handler panic; its panic handler answers 500 INTERNAL_ERROR."""


class _JSONText:
    """JSON already encoded (for values gojson does not encode, such as floats)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


_Result: TypeAlias = "JSONValue | bytes | _JSONText"


class _Call:
    """One routed request, with its query parsed on first use."""

    __slots__ = ("_queries", "opt", "path", "raw_query", "request")

    def __init__(self, request: Request, target: RequestTarget, opt: str, queries: _QueryCache) -> None:
        self.request = request
        self.path = target.path
        self.raw_query = target.raw_query
        self.opt = opt
        self._queries = queries

    def params(self) -> dict[str, list[str]]:
        """``url.ParseQuery``; a query Go cannot parse is 400 INVALID_REQUEST.  Read-only: it may be shared."""
        parsed = self._queries.parse(self.raw_query)
        if not parsed.ok:
            raise APIError(400, "INVALID_REQUEST")
        return parsed.values


class _QueryCache:
    """The last query parsed: a publisher sends the same ``?topic=`` request after request."""

    __slots__ = ("_name", "_name_valid", "_parsed", "_raw")

    def __init__(self) -> None:
        self._raw = ""
        self._parsed = parse_query("")
        self._name = ""
        self._name_valid = False

    def parse(self, raw: str) -> ParsedQuery:
        if raw != self._raw:
            self._parsed = parse_query(raw)
            self._raw = raw
        return self._parsed

    def valid_topic_name(self, name: str) -> bool:
        if name != self._name:
            self._name_valid = is_valid_topic_name(name)
            self._name = name
        return self._name_valid


_Handler = Callable[[_Call], _Result]
_V1, _PLAIN, _METRICS = "v1", "plain", "metrics"


class NSQDHTTPAPI:
    """The ``HTTPApp`` behind ``HTTPConnection``: routing and every endpoint."""

    def __init__(self, nsqd: NSQD, *, tls: bool = False) -> None:
        self._nsqd = nsqd
        # nsqd's newHTTPServer(tlsEnabled, tlsRequired): only a plain port refuses under --tls-required=true.
        self._refuse_plain = not tls and nsqd.opts.tls_required == "true"
        self._parsed: tuple[bytes, RequestTarget | None] = (b"", None)
        self._queries = _QueryCache()
        # method -> path -> (handler, wrapper, logged): httprouter's trees.
        # /config/:opt is matched apart, in _match.
        self._routes: dict[str, dict[str, tuple[_Handler, str, bool]]] = {
            "GET": {
                "/ping": (self._ping, _PLAIN, True),
                "/info": (self._info, _V1, True),
                "/stats": (self._stats, _V1, True),
                "/metrics": (self._metrics, _METRICS, True),  # beyond nsqd: additive
            },
            "POST": {
                "/pub": (self._pub, _V1, False),
                "/mpub": (self._mpub, _V1, False),
                "/topic/create": (self._create_topic, _V1, True),
                "/topic/delete": (self._delete_topic, _V1, True),
                "/topic/empty": (self._empty_topic, _V1, True),
                "/topic/pause": (self._pause_topic, _V1, True),
                "/topic/unpause": (self._pause_topic, _V1, True),
                "/channel/create": (self._create_channel, _V1, True),
                "/channel/delete": (self._delete_channel, _V1, True),
                "/channel/empty": (self._empty_channel, _V1, True),
                "/channel/pause": (self._pause_channel, _V1, True),
                "/channel/unpause": (self._pause_channel, _V1, True),
                "/debug/freememory": (self._free_memory, _PLAIN, True),
            },
            "PUT": {"/debug/setblockrate": (self._set_block_rate, _PLAIN, True)},
        }

    # -- HTTPApp --------------------------------------------------------------------

    def body_limit(self, head: RequestHead) -> int | None:
        # nsqd reads at most one byte past its limit, to tell "too big" from "at the limit".
        if head.method not in ("POST", "PUT"):
            return 0
        target = self._target(head.target)
        if target is None:
            return 0
        opts = self._nsqd.opts
        if head.method == "POST" and target.path == "/pub":
            return opts.max_msg_size + 1
        if head.method == "POST" and target.path == "/mpub":
            return opts.max_body_size + 1
        if head.method == "PUT" and target.path.startswith("/config/"):
            return opts.max_msg_size + 1
        return 0

    def handle(self, request: Request) -> Response:
        nsqd = self._nsqd
        if self._refuse_plain:
            https = nsqd.https_address
            body = f'{{"message": "TLS_REQUIRED", "https_port": {https[1]}}}'.encode()
            return Response(403, (_NSQ_TYPE, ("Content-Type", _JSON)), body)
        target = self._target(request.head.target)
        if target is None:
            # Go's server answers this itself, before any handler.
            return Response(400, (("Content-Type", _TEXT), ("Connection", "close")), b"400 Bad Request")
        method = request.head.method
        route, opt = self._match(method, target.path)
        if route is None:
            return self._unrouted(request, target, nsqd.clock.now())
        handler, wrapper, logged = route
        start = nsqd.clock.now() if logged else 0.0
        call = _Call(request, target, opt, self._queries)
        try:
            data = handler(call)
        except APIError as err:
            if logged:
                self._log_request(err.status, request, start)
            if wrapper == _PLAIN:
                return _text(err.status, err.text)
            return _v1_error(err.status, err.text)
        except _Panic as why:
            if logged:
                self._log_request(200, request, start)
            else:
                start = nsqd.clock.now()
            nsqd.log("ERROR", f"panic in HTTP handler - {why}")
            self._log_request(500, request, start)
            return _v1_error(500, "INTERNAL_ERROR")
        if logged:
            self._log_request(200, request, start)
        if wrapper == _PLAIN:
            return _text(200, data if isinstance(data, str) else "")
        if wrapper == _METRICS and isinstance(data, bytes):
            return Response(200, (_NSQ_TYPE, ("Content-Type", metrics.CONTENT_TYPE)), data)
        return _v1(data)

    def _target(self, raw: bytes) -> RequestTarget | None:
        if self._parsed[0] != raw or not raw:
            try:
                self._parsed = (raw, parse_target(raw))
            except URLError:
                self._parsed = (raw, None)
        return self._parsed[1]

    # -- routing (httprouter) ---------------------------------------------------------

    def _match(self, method: str, path: str) -> tuple[tuple[_Handler, str, bool] | None, str]:
        routes = self._routes.get(method)
        route = routes.get(path) if routes is not None else None
        if route is not None:
            return route, ""
        if method in ("GET", "PUT") and path.startswith("/config/"):
            opt = path[8:]
            if opt and "/" not in opt:
                return (self._config, _V1, True), opt
        return None, ""

    def _unrouted(self, request: Request, target: RequestTarget, start: float) -> Response:
        method, path = request.head.method, target.path
        if method in self._routes and path != "/":
            fixed = self._redirect_path(method, path)
            if fixed is not None:
                return _redirect(method, fixed, target.raw_query)
        allow = self._allowed(path, method)
        if method == "OPTIONS":
            if allow:
                return Response(200, (_NSQ_TYPE, ("Allow", allow)))
        elif allow:
            self._log_request(405, request, start)
            response = _v1_error(405, "METHOD_NOT_ALLOWED")
            return Response(405, (*response.headers, ("Allow", allow)), response.body)
        self._log_request(404, request, start)
        return _v1_error(404, "NOT_FOUND")

    def _redirect_path(self, method: str, path: str) -> str | None:
        """The route ``path`` was meant to be: trailing slash first, then case and dots."""
        if len(path) > 1 and path.endswith("/") and self._match(method, path[:-1])[0] is not None:
            return path[:-1]
        cleaned = clean_path(path)
        candidates = [cleaned]
        if len(cleaned) > 1 and cleaned.endswith("/"):
            candidates.append(cleaned[:-1])
        for candidate in candidates:
            for route in self._routes[method]:
                if _fold_equal(candidate, route):
                    return route
            if method in ("GET", "PUT") and _fold_equal(candidate[:8], "/config/"):
                opt = candidate[8:]
                if opt and "/" not in opt:
                    return "/config/" + opt
        return None

    def _allowed(self, path: str, method: str) -> str:
        if path == "*":
            allowed = list(self._routes)
        else:
            allowed = [m for m in self._routes if m != method and self._match(m, path)[0] is not None]
        if not allowed:
            return ""
        return ", ".join(sorted([*allowed, "OPTIONS"]))

    def _log_request(self, status: int, request: Request, start: float) -> None:
        head = request.head
        remote = go_addr_string(head.peer)
        uri = head.target.decode("utf-8", "backslashreplace")
        elapsed = go_duration(round((self._nsqd.clock.now() - start) * 1e9))
        self._nsqd.log("INFO", f"{status} {head.method} {uri} ({remote}) {elapsed}")

    # -- node -------------------------------------------------------------------------

    def _ping(self, call: _Call) -> _Result:
        health = self._nsqd.health
        if health != "OK":
            raise APIError(500, health)
        return health

    def _info(self, call: _Call) -> _Result:
        nsqd = self._nsqd
        opts = nsqd.opts
        return {
            "version": nsqd.version,
            "broadcast_address": opts.broadcast_address or nsqd.hostname,
            "hostname": nsqd.hostname,
            "http_port": nsqd.http_address[1],  # -1 (UNIX_PORT) for a Unix socket, as nsqd says
            "tcp_port": nsqd.tcp_address[1],
            "start_time": nsqd.start_time,
            "max_heartbeat_interval": _ns(opts.max_heartbeat_interval),
            "max_output_buffer_size": opts.max_output_buffer_size,
            "max_output_buffer_timeout": _ns(opts.max_output_buffer_timeout),
            "max_deflate_level": opts.max_deflate_level,
            "nsqsim_version": PACKAGE_VERSION,  # beyond nsqd: "version" is the NSQ release matched
        }

    def _stats(self, call: _Call) -> _Result:
        params = call.params()
        q = StatsQuery(
            topic=_first(params, "topic") or "",
            channel=_first(params, "channel") or "",
            include_clients=_BOOLS.get(_first(params, "include_clients") or "", True),
            include_mem=_BOOLS.get(_first(params, "include_mem") or "", True),
        )
        if _first(params, "format") == "json":
            return stats_json(self._nsqd, q)
        return stats_text(self._nsqd, q)

    def _metrics(self, call: _Call) -> _Result:
        return metrics.prometheus_text(self._nsqd)

    def _free_memory(self, call: _Call) -> _Result:
        gc.collect()
        # nsqd's handler returns nothing through its plain-text wrapper, which panics.
        raise _Panic("unknown response type <nil>")

    def _set_block_rate(self, call: _Call) -> _Result:
        rate = _first(parse_query(call.raw_query).values, "rate") or ""
        why = _atoi_error(rate)
        if why is not None:
            raise APIError(400, f"invalid block rate : {why}")
        raise _Panic("unknown response type <nil>")  # as for /debug/freememory

    # -- publishing -------------------------------------------------------------------

    def _topic_from_query(self, call: _Call) -> tuple[dict[str, list[str]], Topic]:
        params = call.params()
        names = params.get("topic")
        if not names:
            raise APIError(400, "MISSING_ARG_TOPIC")
        if not self._queries.valid_topic_name(names[0]):
            raise APIError(400, "INVALID_TOPIC")
        return params, self._nsqd.get_topic(names[0])

    def _pub(self, call: _Call) -> _Result:
        opts = self._nsqd.opts
        request = call.request
        length = request.head.content_length
        if length is not None and length > opts.max_msg_size:
            raise APIError(413, "MSG_TOO_BIG")
        body = request.body
        if request.body_truncated or len(body) > opts.max_msg_size:
            raise APIError(413, "MSG_TOO_BIG")
        if not body:
            raise APIError(400, "MSG_EMPTY")
        params, topic = self._topic_from_query(call)
        deferred = 0
        if "defer" in params:
            deferred = _defer_ns(params["defer"][0], _ns(opts.max_req_timeout))
        try:
            topic.put_message(topic.new_message(body, deferred / 1e9))
        except PublishRefused as exc:
            raise _refused(exc) from None
        return "OK"

    def _mpub(self, call: _Call) -> _Result:
        opts = self._nsqd.opts
        request = call.request
        length = request.head.content_length
        if length is not None and length > opts.max_body_size:
            raise APIError(413, "BODY_TOO_BIG")
        params, topic = self._topic_from_query(call)
        binary = False
        if "binary" in params:
            value = params["binary"][0]
            binary = _BOOLS.get(value, True)
            if value not in _BOOLS:
                self._nsqd.log("WARN", f"deprecated value '{value}' used for /mpub binary param")
        if binary:
            bodies = _binary_bodies(request, opts.max_msg_size, opts.max_body_size)
        else:
            bodies = _line_bodies(request.body, opts.max_msg_size, opts.max_body_size + 1)
        _put(topic, [topic.new_message(body) for body in bodies])
        return "OK"

    # -- topics and channels ----------------------------------------------------------

    def _create_topic(self, call: _Call) -> _Result:
        params, topic = self._topic_from_query(call)
        if "ttl" in params:  # beyond nsqd: the topic's message TTL
            ttl_ms = _ttl_ms(params["ttl"][0])
            if ttl_ms != topic.ttl_ns // 1_000_000:
                topic.set_ttl(ttl_ms * 1_000_000)
                self._nsqd.persist_metadata()
        return None

    def _topic_name(self, call: _Call) -> str:
        name = _first(call.params(), "topic")
        if name is None:
            raise APIError(400, "MISSING_ARG_TOPIC")
        return name

    def _existing_topic(self, name: str) -> Topic:
        topic = self._nsqd.get_existing_topic(name)
        if topic is None:
            raise APIError(404, "TOPIC_NOT_FOUND")
        return topic

    def _delete_topic(self, call: _Call) -> _Result:
        # nsqd does not check the name here: an invalid one is simply not found.
        if not self._nsqd.delete_existing_topic(self._topic_name(call)):
            raise APIError(404, "TOPIC_NOT_FOUND")
        return None

    def _empty_topic(self, call: _Call) -> _Result:
        name = self._topic_name(call)
        if not is_valid_topic_name(name):
            raise APIError(400, "INVALID_TOPIC")
        self._existing_topic(name).empty()
        return None

    def _pause_topic(self, call: _Call) -> _Result:
        topic = self._existing_topic(self._topic_name(call))
        if "unpause" in call.path:
            topic.unpause()
        else:
            topic.pause()
        return None

    def _topic_channel(self, call: _Call) -> tuple[Topic, str]:
        """``getExistingTopicFromQuery``: both names present and valid, the topic existing."""
        params = call.params()
        topic_name = _first(params, "topic")
        if topic_name is None:
            raise APIError(400, "MISSING_ARG_TOPIC")
        if not is_valid_topic_name(topic_name):
            raise APIError(400, "INVALID_ARG_TOPIC")
        channel_name = _first(params, "channel")
        if channel_name is None:
            raise APIError(400, "MISSING_ARG_CHANNEL")
        if not is_valid_channel_name(channel_name):
            raise APIError(400, "INVALID_ARG_CHANNEL")
        return self._existing_topic(topic_name), channel_name

    def _create_channel(self, call: _Call) -> _Result:
        topic, name = self._topic_channel(call)
        params = call.params()
        letter = None
        if "max_attempts" in params or "dead_letter_topic" in params:  # beyond nsqd: dead letters
            letter = _dead_letter_args(params, topic.name)
        channel = topic.get_channel(name)
        if letter is not None and letter != (channel.max_attempts, channel.dead_letter_topic):
            channel.set_dead_letter(*letter)
            self._nsqd.persist_metadata()
        return None

    def _delete_channel(self, call: _Call) -> _Result:
        topic, name = self._topic_channel(call)
        if not topic.delete_existing_channel(name):
            raise APIError(404, "CHANNEL_NOT_FOUND")
        return None

    def _empty_channel(self, call: _Call) -> _Result:
        topic, name = self._topic_channel(call)
        channel = topic.get_existing_channel(name)
        if channel is None:
            raise APIError(404, "CHANNEL_NOT_FOUND")
        channel.empty()
        return None

    def _pause_channel(self, call: _Call) -> _Result:
        topic, name = self._topic_channel(call)
        channel = topic.get_existing_channel(name)
        if channel is None:
            raise APIError(404, "CHANNEL_NOT_FOUND")
        if "unpause" in call.path:
            channel.unpause()
        else:
            channel.pause()
        return None

    # -- configuration ----------------------------------------------------------------

    def _config(self, call: _Call) -> _Result:
        nsqd = self._nsqd
        opt = call.opt
        if call.request.head.method == "PUT":
            body = call.request.body
            if call.request.body_truncated or len(body) > nsqd.opts.max_msg_size or not body:
                raise APIError(413, "INVALID_VALUE")
            if opt == "nsqlookupd_tcp_addresses":
                nsqd.opts.lookupd_tcp_addresses = _string_list(body)
                hook = "on_lookupd_addresses_changed"
            elif opt == "log_level":
                level = body.decode("utf-8", "replace").lower()
                if level not in _LOG_LEVELS:
                    raise APIError(400, "INVALID_VALUE")
                nsqd.opts.log_level = level
                hook = "on_log_level_changed"
            else:
                raise APIError(400, "INVALID_OPTION")
            changed: Callable[[], None] | None = getattr(nsqd, hook, None)
            if changed is not None:
                changed()
        return self._option_value(opt)

    def _option_value(self, name: str) -> _Result:
        spec = spec_by_cfg_name(name)
        if spec is None or name in _NOT_IN_CONFIG:
            raise APIError(400, "INVALID_OPTION")
        nsqd = self._nsqd
        value: object = getattr(nsqd.opts, spec.attr)
        # Each as nsqd's Options field holds it: strings go out bare, the rest as JSON.
        if spec.attr == "node_id":
            return value if isinstance(value, int) and 0 <= value < 1024 else _default_node_id(nsqd.hostname)
        if spec.attr == "log_level":
            return _LOG_LEVELS.get(str(value), 2)
        if spec.attr == "broadcast_address":
            return str(value) or nsqd.hostname
        if spec.attr == "tls_required":
            return _TLS_REQUIRED.get(str(value), 0)
        if spec.attr == "tls_min_version":
            return _TLS_VERSIONS.get(str(value), 0x0301)
        if spec.kind == "duration" and isinstance(value, int | float):
            return _ns(value)
        if spec.kind == "float" and isinstance(value, int | float):
            return _JSONText(_go_float(value).encode())
        if spec.kind == "float_list" and isinstance(value, list):
            # nil in nsqd until set, so null when empty.
            return _JSONText(("[" + ",".join(_go_float(v) for v in value) + "]").encode() if value else b"null")
        if spec.kind == "str_list" and isinstance(value, list):
            return [str(v) for v in value]
        if isinstance(value, bool | int | str):
            return value
        raise APIError(400, "INVALID_OPTION")


# -- answers --------------------------------------------------------------------------


# The answer to every publish: one object, so the server can reuse its encoding.
_OK = Response(200, (_NSQ_TYPE, ("Content-Type", _TEXT)), b"OK")


def _v1(data: _Result) -> Response:
    if data is None:
        return Response(200, (_NSQ_TYPE,))
    if data == "OK":
        return _OK
    if isinstance(data, str | bytes):
        body = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
        # nsqd sets no type here; Go's server sniffs one, and for this text it is plain.
        return Response(200, (_NSQ_TYPE, ("Content-Type", _TEXT)) if body else (_NSQ_TYPE,), body)
    if isinstance(data, _JSONText):
        return Response(200, (_NSQ_TYPE, ("Content-Type", _JSON)), data.data)
    return Response(200, (_NSQ_TYPE, ("Content-Type", _JSON)), gojson.dumps(data))


def _v1_error(status: int, text: str) -> Response:
    return Response(status, (_NSQ_TYPE, ("Content-Type", _JSON)), gojson.dumps({"message": text}))


def _text(status: int, text: str) -> Response:
    body = text.encode("utf-8", "surrogateescape")
    return Response(status, (_NSQ_TYPE, ("Content-Type", _TEXT)) if body else (_NSQ_TYPE,), body)


def _redirect(method: str, path: str, raw_query: str) -> Response:
    """httprouter's redirect, through Go's ``http.Redirect``."""
    code = 301 if method == "GET" else 307
    location = _escape_path(path) + ("?" + raw_query if raw_query else "")
    location = "".join(c if c < "\x80" else "".join(f"%{b:02x}" for b in c.encode("utf-8", "surrogateescape")) for c in location)
    if method != "GET":
        return Response(code, (_NSQ_TYPE, ("Location", location)))
    href = location.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;").replace("'", "&#39;")
    text = "Moved Permanently" if code == 301 else "Temporary Redirect"
    body = f'<a href="{href}">{text}</a>.\n\n'.encode()
    return Response(code, (_NSQ_TYPE, ("Location", location), ("Content-Type", _HTML)), body)


_PATH_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~$&+,/:;=@")


def _escape_path(path: str) -> str:
    # url.URL.EscapedPath for a path Go has just rewritten.
    return "".join(c if c in _PATH_SAFE else "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogateescape")) for c in path)


def _fold_equal(path: str, route: str) -> bool:
    """httprouter's case-insensitive match (routes are lower-case ASCII)."""
    if len(path) != len(route):
        return False
    return all((c.lower() if c != "\u0130" else "i") == r for c, r in zip(path, route, strict=True))


# -- helpers --------------------------------------------------------------------------


def _first(params: dict[str, list[str]], key: str) -> str | None:
    values = params.get(key)
    return values[0] if values else None


def _ns(seconds: float) -> int:
    return round(seconds * 1e9)


def _put(topic: Topic, msgs: list[Message]) -> None:
    try:
        topic.put_messages(msgs)
    except PublishRefused as exc:
        raise _refused(exc) from None


def _refused(exc: PublishRefused) -> APIError:
    # nsqd answers every refusal EXITING; a full disk budget (beyond nsqd) says so instead
    return APIError(503, str(exc) if exc.disk_bound else "EXITING")


def _parse_int64(text: str) -> int | None:
    """``strconv.ParseInt(text, 10, 64)``, or None where it fails."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or not (digits.isascii() and digits.isdigit()):
        return None
    value = int(text)
    return value if -(1 << 63) <= value <= _MAX_INT64 else None


def _ttl_ms(text: str) -> int:
    """``ttl``: milliseconds, or a Go duration (``90s``, ``1h``); 0 turns the TTL off."""
    ms = _parse_int64(text)
    if ms is None:
        try:
            ms = parse_go_duration_ns(text) // 1_000_000
        except ValueError:
            raise APIError(400, "INVALID_TTL") from None
    if ms < 0:
        raise APIError(400, "INVALID_TTL")
    return ms


def _dead_letter_args(params: dict[str, list[str]], topic: str) -> tuple[int, str]:
    """``max_attempts`` (1..65535, or 0 to turn it off) and ``dead_letter_topic`` (a valid name, another topic)."""
    text = _first(params, "max_attempts") or "0"
    attempts = _parse_int64(text)
    if attempts is None or not 0 <= attempts <= 65535:
        raise APIError(400, "INVALID_MAX_ATTEMPTS")
    if attempts == 0:
        return 0, ""
    target = _first(params, "dead_letter_topic")
    if not target:
        raise APIError(400, "MISSING_ARG_DEAD_LETTER_TOPIC")
    if not is_valid_topic_name(target) or target == topic:
        raise APIError(400, "INVALID_DEAD_LETTER_TOPIC")
    return attempts, target


def _defer_ns(text: str, max_ns: int) -> int:
    ms = _parse_int64(text)
    if ms is None:
        raise APIError(400, "INVALID_DEFER")
    # time.Duration(ms) * time.Millisecond wraps around in int64, as in Go.
    ns = (ms * 1_000_000 + (1 << 63)) % (1 << 64) - (1 << 63)
    if ns < 0 or ns > max_ns:
        raise APIError(400, "INVALID_DEFER")
    return ns


def _atoi_error(text: str) -> str | None:
    """``strconv.Atoi``'s error text for ``text``, or None when it parses."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    quoted = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if not digits or not (digits.isascii() and digits.isdigit()):
        return f"strconv.Atoi: parsing {quoted}: invalid syntax"
    if not -(1 << 63) <= int(text) <= _MAX_INT64:
        return f"strconv.Atoi: parsing {quoted}: value out of range"
    return None


def _line_bodies(data: bytes, max_msg_size: int, read_max: int) -> list[bytes]:
    """nsqd's newline-separated /mpub body, read as its loop reads it (``data`` is at most ``read_max`` bytes)."""
    bodies: list[bytes] = []
    total = 0
    pos = 0
    n = len(data)
    while True:
        end = data.find(b"\n", pos)
        last = end < 0
        block = data[pos:] if last else data[pos : end + 1]
        pos = n if last else end + 1
        total += len(block)
        if total == read_max:
            raise APIError(413, "BODY_TOO_BIG")
        if block.endswith(b"\n"):
            block = block[:-1]
        if block:  # empty lines are skipped, as nsqd has done since 0.2.22
            if len(block) > max_msg_size:
                raise APIError(413, "MSG_TOO_BIG")
            bodies.append(block)
        if last:
            return bodies


def _binary_bodies(request: Request, max_msg_size: int, max_body_size: int) -> list[bytes]:
    """nsqd's binary MPUB body: ``[int32 count]`` then ``count`` of ``[int32 size][body]``.

    Errors answer 413 with the TCP error code less its ``E_``.  nsqd reads this
    body without a limit when it is chunked; here a body cut at the limit that
    runs out mid-message is BODY_TOO_BIG.
    """
    data = request.body
    cut = request.body_truncated

    def short(code: str) -> APIError:
        return APIError(413, "BODY_TOO_BIG" if cut else code)

    if len(data) < 4:
        raise short("BAD_BODY")
    count = int.from_bytes(data[:4], "big", signed=True)
    span = max_body_size - 4
    max_messages = span // 5 if span >= 0 else -(-span // 5)  # Go divides toward zero
    if count <= 0 or count > max_messages:
        raise APIError(413, "BAD_BODY")
    bodies: list[bytes] = []
    pos = 4
    for _ in range(count):
        if pos + 4 > len(data):
            raise short("BAD_MESSAGE")
        size = int.from_bytes(data[pos : pos + 4], "big", signed=True)
        pos += 4
        if size <= 0 or size > max_msg_size:
            raise APIError(413, "BAD_MESSAGE")
        if pos + size > len(data):
            raise short("BAD_MESSAGE")
        bodies.append(data[pos : pos + size])
        pos += size
    return bodies


def _string_list(body: bytes) -> list[str]:
    """``json.Unmarshal`` into a ``[]string``: an array of strings, or null."""
    try:
        value = gojson.loads(body)
    except gojson.JSONDecodeError:
        raise APIError(400, "INVALID_VALUE") from None
    if value is None:
        return []
    if not isinstance(value, list) or isinstance(value, gojson.GoObject) or not all(isinstance(v, str) for v in value):
        raise APIError(400, "INVALID_VALUE")
    return [str(v) for v in value]


def _go_float(value: float) -> str:
    """A float64 as Go's encoding/json writes it: shortest digits, exponent only when tiny or huge."""
    if not math.isfinite(value):
        raise APIError(500, f"json: unsupported value: {'NaN' if math.isnan(value) else ('+Inf' if value > 0 else '-Inf')}")
    shortest = repr(float(value))
    magnitude = abs(value)
    if magnitude == 0 or 1e-6 <= magnitude < 1e21:
        text = format(Decimal(shortest), "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    mantissa, _, exponent = shortest.partition("e")
    sign, digits = exponent[0], exponent[1:].lstrip("0") or "0"
    return f"{mantissa}e{sign}{digits.zfill(2) if sign == '+' else digits}"


def _default_node_id(hostname: str) -> int:
    """nsqd's default --node-id: CRC-32 of the MD5 of the hostname, mod 1024."""
    return zlib.crc32(hashlib.md5(hostname.encode()).digest()) % 1024
