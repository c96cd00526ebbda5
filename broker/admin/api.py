"""nsqadmin's HTTP API: Go nsqadmin 1.3.0's routes, answers and errors.

Every handler is a flow (``broker.admin.flow``) that ends in a ``Response``.
JSON answers are Go's ``http_api.V1``: the object with
``Content-Type: application/json; charset=utf-8`` and
``X-NSQ-Content-Type: nsq; version=1.0``, or on error ``{"message": ...}``
with the status.  A node that does not answer is not an error: the answer
holds what the others said and ``"message": "WARNING: <errors>"`` (HTTP 200),
as in Go; only when no node answers is it 502 ``UPSTREAM_ERROR: ...``.

Privileged actions (POST and DELETE) need the user named by the
``--acl-http-header`` header to be one of ``--admin-user`` when any are given
(403 ``FORBIDDEN``); ``/config/:opt`` answers only peers inside
``--allow-config-from-cidr``.

Routes sit under ``--base-path`` joined as Go's ``path.Join`` does; a path
with a trailing slash that names a route without it is redirected (301 for
GET, 308 otherwise), as ``httprouter`` does.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import mimetypes
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode, urlsplit

from broker.admin.clusterinfo import UpstreamError, describe_failure
from broker.admin.flow import Flow
from broker.admin.http_server import AdminRequest
from broker.admin.options import LOG_LEVEL_NUMBERS, AdminOptions, spec_by_cfg_name
from broker.admin.stats import TopicStats
from broker.client.http import HTTPRequest, HTTPResponse
from broker.wire import gojson
from broker.wire.gojson import JSONValue
from broker.wire.http import Response
from broker.wire.names import is_valid_channel_name, is_valid_topic_name

if TYPE_CHECKING:
    from broker.admin.admin import NSQAdmin

__all__ = ["APIError", "AdminAPI"]

_V1_HEADERS = (("Content-Type", "application/json; charset=utf-8"), ("X-NSQ-Content-Type", "nsq; version=1.0"))
_CONFIG_MAX = 1024 * 1024 + 1  # Go reads one byte past its limit to see it passed


class APIError(Exception):
    """``http_api.Err``: a status and the text of the ``message``."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def v1(status: int, data: JSONValue) -> Response:
    return Response(status, _V1_HEADERS, gojson.dumps(data))


def v1_error(err: APIError) -> Response:
    return v1(err.status, {"message": err.text})


def plain(status: int, text: str | bytes, content_type: str = "text/plain; charset=utf-8") -> Response:
    body = text.encode() if isinstance(text, str) else text
    return Response(status, (("Content-Type", content_type),), body)


def maybe_warn(messages: list[str]) -> str:
    return "WARNING: " + "; ".join(messages) if messages else ""


Handler = Callable[[AdminRequest, dict[str, str]], Flow[Response]]


@dataclass(frozen=True, slots=True)
class _Route:
    method: str
    pattern: tuple[str, ...]  # path segments, ":name" for a parameter
    handler: Handler
    v1: bool = True  # errors answered as V1 JSON (else plain text)

    def match(self, segments: list[str]) -> dict[str, str] | None:
        if len(segments) != len(self.pattern):
            return None
        params: dict[str, str] = {}
        for want, got in zip(self.pattern, segments, strict=True):
            if want.startswith(":"):
                if not got:
                    return None
                params[want[1:]] = got
            elif want != got:
                return None
        return params


def _segments(path: str) -> tuple[str, ...]:
    return tuple(path.strip("/").split("/")) if path.strip("/") else ()


class AdminAPI:
    """Routes a request to its handler flow."""

    def __init__(self, admin: NSQAdmin) -> None:
        self.admin = admin
        index = ("/", "/topics", "/topics/:topic", "/topics/:topic/:channel", "/nodes", "/nodes/:node", "/counter", "/lookup")
        table: list[tuple[str, str, Handler, bool]] = [
            *[("GET", p, self.index, False) for p in index],
            ("GET", "/ping", self.ping, False),
            ("GET", "/static/:asset", self.static_asset, False),
            ("GET", "/fonts/:asset", self.static_asset, False),
            ("GET", "/api/topics", self.topics, True),
            ("GET", "/api/topics/:topic", self.topic, True),
            ("GET", "/api/topics/:topic/:channel", self.channel, True),
            ("GET", "/api/nodes", self.nodes, True),
            ("GET", "/api/nodes/:node", self.node, True),
            ("POST", "/api/topics", self.create_topic_channel, True),
            ("POST", "/api/topics/:topic", self.topic_action, True),
            ("POST", "/api/topics/:topic/:channel", self.channel_action, True),
            ("DELETE", "/api/nodes/:node", self.tombstone_node_for_topic, True),
            ("DELETE", "/api/topics/:topic", self.delete_topic, True),
            ("DELETE", "/api/topics/:topic/:channel", self.delete_channel, True),
            ("GET", "/api/counter", self.counter, True),
            ("GET", "/api/graphite", self.graphite, True),
            ("GET", "/config/:opt", self.config, True),
            ("PUT", "/config/:opt", self.config, True),
        ]
        if admin.opts.proxy_graphite:
            table.append(("GET", "/render", self.render_proxy, False))
        base = _segments(admin.opts.base_path)
        self._routes = [_Route(m, (*base, *_segments(p)), h, is_v1) for m, p, h, is_v1 in table]

    @property
    def opts(self) -> AdminOptions:
        return self.admin.opts

    def route(self, request: AdminRequest) -> Flow[Response]:
        """The flow answering ``request``, errors included."""
        segments = list(_segments(request.path))
        trailing = request.path.endswith("/") and request.path != "/"
        allowed: list[str] = []
        for route in self._routes if not trailing else ():
            params = route.match(segments)
            if params is None:
                continue
            if route.method != request.method:
                allowed.append(route.method)
                continue
            return self._guard(route, request, params)
        if allowed:
            return _const(v1_error(APIError(405, "METHOD_NOT_ALLOWED"))._replace(headers=(*_V1_HEADERS, ("Allow", ", ".join(allowed)))))
        if trailing:
            # httprouter's RedirectTrailingSlash.
            stripped = request.path.rstrip("/") or "/"
            if any(r.match(list(_segments(stripped))) is not None and r.method == request.method for r in self._routes):
                query = urlsplit(request.target).query
                location = quote(stripped) + (f"?{query}" if query else "")
                status = 301 if request.method == "GET" else 308
                return _const(Response(status, (("Location", location),), b""))
        return _const(v1_error(APIError(404, "NOT_FOUND")))

    def _guard(self, route: _Route, request: AdminRequest, params: dict[str, str]) -> Flow[Response]:
        try:
            return (yield from route.handler(request, params))
        except APIError as err:
            return v1_error(err) if route.v1 else plain(err.status, err.text)
        except UpstreamError as err:
            self.admin.log("ERROR", f"{route.handler.__name__}: {err}")
            return v1_error(APIError(502, f"UPSTREAM_ERROR: {err}"))

    # -- helpers ---------------------------------------------------------------------------

    @property
    def _lookupds(self) -> list[str]:
        return list(self.opts.nsqlookupd_http_addresses)

    @property
    def _nsqds(self) -> list[str]:
        return list(self.opts.nsqd_http_addresses)

    def _collect(self, errors: list[str], messages: list[str]) -> None:
        """A partial result's errors: logged, and one line of the answer's warning."""
        if errors:
            text = "\n".join(errors)
            self.admin.log("WARN", text)
            messages.append(text)

    def is_admin(self, request: AdminRequest) -> bool:
        users = self.opts.admin_users
        if not users:
            return True
        return request.header(self.opts.acl_http_header) in users

    def _require_admin(self, request: AdminRequest) -> None:
        if not self.is_admin(request):
            raise APIError(403, "FORBIDDEN")

    # -- the UI ------------------------------------------------------------------------------

    def index(self, request: AdminRequest, params: dict[str, str]) -> Flow[Response]:
        yield from ()
        page = self.admin.assets.get("index.html")
        if page is None:
            raise APIError(404, "NOT_FOUND")
        base = self.opts.base_path.rstrip("/")
        config: JSONValue = {
            "version": self.admin.version,
            "basePath": base,
            "isAdmin": self.is_admin(request),
            "graphEnabled": self.opts.graphite_url != "",
            "proxyGraphite": self.opts.proxy_graphite,
            "statsdInterval": int(self.opts.statsd_interval),
            "nsqlookupd": list(self.opts.nsqlookupd_http_addresses),
            "nsqd": list(self.opts.nsqd_http_addresses),
        }
        html = page.replace(b"{{BASE}}", base.encode()).replace(b"{{CONFIG}}", gojson.dumps(config))
        return Response(200, (("Content-Type", "text/html"),), html)

    def ping(self, request: AdminRequest, params: dict[str, str]) -> Flow[Response]:
        yield from ()
        return plain(200, "OK")

    def static_asset(self, request: AdminRequest, params: dict[str, str]) -> Flow[Response]:
        yield from ()
        name = params["asset"]
        asset = self.admin.assets.get(name)
        if asset is None:
            raise APIError(404, "NOT_FOUND")
        ext = name.rpartition(".")[2].lower()
        content_type = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8", "svg": "image/svg+xml", "map": "application/json"}.get(ext)
        if content_type is None:
            content_type = mimetypes.types_map.get(f".{ext}", "application/octet-stream")
        return Response(200, (("Content-Type", content_type),), asset)

    # -- reading the cluster ---------------------------------------------------------------------

    def topics(self, request: AdminRequest, params: dict[str, str]) -> Flow[Response]:
        messages: list[str] = []
        ci = self.admin.ci
        if self._lookupds:
            found = yield from ci.lookupd_topics(self._lookupds)
        else:
            found = yield from ci.nsqd_topics(self._nsqds)
        self._collect(found.errors, messages)
        topics = found.value
        if request.param("inactive") == "true":
            inactive: dict[str, JSONValue] = {}
            for name in topics if self._lookupds else ():
                try:
                    producers = yield from ci.lookupd_topic_producers(name, self._lookupds)
                    if producers.value:
                        continue
                    channels = yield from ci.lookupd_topic_channels(name, self._lookupds)
                    inactive[name] = list(channels.value)
                except UpstreamError:
                    continue  # Go ignores these errors
            return v1(200, {"topics": {k: inactive[k] for k in sorted(inactive)}, "message": maybe_warn(messages)})
        return v1(200, {"topics": list(topics) or None, "message": maybe_warn(messages)})

    def topic(self, request: AdminRequest, params: dict[str, str]) -> Flow[Response]:
        messages: list[str] = []
        name = params["topic"]
        ci = self.admin.ci
        producers = yield from ci.topic_producers(name, self._lookupds, self._nsqds)
        self._collect(producers.errors, messages)
        stats = yield from ci.nsqd_stats(producers.value, name, "", False)
        self._collect(stats.errors, messages)
        total = TopicStats.total(name)
        for ts in stats.value[0]:
            total.add(ts)
        body = total.to_json()
        assert isinstance(body, dict)
        return v1(200, {**body, "message": maybe_warn(messages)})

    def channel(self, request: AdminRequest, params: dict[str, str]) -> Flow[Response]:
        messages: list[str] = []
        topic, channel = params["topic"], params["channel"]
        ci = self.admin.ci
        producers = yield from ci.topic_producers(topic, self._lookupds, self._nsqds)
        self._collect(producers.errors, messages)
        stats = yield from ci.nsqd_stats(producers.value, topic, channel, True)
        self._collect(stats.errors, messages)
        found = stats.value[1].get(channel)
        # Go embeds a nil *ChannelStats for a channel nobody has: only the message is left.
        body = found.to_json() if found is not None else {}
        assert isinstance(body, dict)
        return v1(200, {**body, "message": maybe_warn(messages)})

    def nodes(self, request: AdminRequest, params: dict[str, str]) -> Flow[Response]:
        messages: list[str] = []
        producers = yield from self.admin.ci.producers(self._lookupds, self._nsqds)
        self._collect(producers.errors, messages)
        nodes: JSONValue = [p.to_json() for p in producers.value] or None
        return v1(200, {"nodes": nodes, "message": maybe_warn(messages)})

    def node(self, request: AdminRequest, params: dict[str, str]) -> Flow[Response]:
        messages: list[str] = []
        node = params["node"]
        ci = self.admin.ci
        producers = yield from ci.producers(self._lookupds, self._nsqds)
        self._collect(producers.errors, messages)
        producer = next((p for p in producers.value if p.http_address == node), None)
        if producer is None:
            raise APIError(404, "NODE_NOT_FOUND")
        stats = yield from ci.nsqd_stats([producer], "", "", True)
        topics = stats.value[0]
        total_clients = sum(len(c.clients or ()) for t in topics for c in t.channels or ())
        total_messages = sum(t.message_count for t in topics)
        return v1(
            200,
            {
                "node": node,
                "topics": [t.to_json() for t in topics] or None,
                "total_messages": total_messages,
                "total_clients": total_clients,
                "message": maybe_warn(messages),
            },
        )

    def counter(self, request: AdminRequest, params: dict[str, str]) -> Flow[Response]:
        messages: list[str] = []
        ci = self.admin.ci
        producers = yield from ci.producers(self._lookupds, self._nsqds)
        self._collect(producers.errors, messages)
        stats = yield from ci.nsqd_stats(producers.value, "", "", False)
        self._collect(stats.errors, messages)
        counts: dict[str, dict[str, JSONValue]] = {}
        for total in stats.value[1].values():
            for cs in total.nodes or ():
                key = f"{total.topic_name}:{total.channel_name}:{cs.node}"
                entry = counts.setdefault(key, {"node": cs.node, "topic_name": total.topic_name, "channel_name": total.channel_name, "message_count": 0})
                count = entry["message_count"]
                assert isinstance(count, int)
                entry["message_count"] = count + cs.counts["message_count"]
        return v1(200, {"stats": {k: counts[k] for k in sorted(counts)}, "message": maybe_warn(messages)})

    def graphite(self, request: AdminRequest, params: dict[str, str]) -> Flow[Response]:
        if request.param("metric") != "rate":
            raise APIError(400, "INVALID_ARG_METRIC")
        target = request.param("target")
        if target is None:
            raise APIError(400, "INVALID_ARG_TARGET")
        interval = int(self.opts.statsd_interval)
        query = urlencode(sorted({"from": f"-{interval * 2}sec", "until": f"-{interval}sec", "format": "json", "target": target}.items()))
        url = f"{self.opts.graphite_url}/render?{query}"
        self.admin.log("INFO", f"GRAPHITE: {url}")
        try:
            call = HTTPRequest.from_url(url, "GET", (("Accept", "application/vnd.nsq; version=1.0"),))
        except ValueError as exc:
            self.admin.log("ERROR", f"graphite request failed - {exc}")
            raise APIError(500, "INTERNAL_ERROR") from None
        (outcome,) = yield [call]
        error = describe_failure(call, url, outcome)
        if error is not None:
            self.admin.log("ERROR", f"graphite request failed - {error}")
            raise APIError(500, "INTERNAL_ERROR")
        assert isinstance(outcome, HTTPResponse)
        try:
            rate = json.loads(outcome.body)[0]["datapoints"][0][0]
        except (ValueError, LookupError, TypeError):
            rate = None
        if not isinstance(rate, int | float):
            # Go dereferences the missing point and its panic handler answers 500.
            self.admin.log("ERROR", "graphite answer holds no data point")
            raise APIError(500, "INTERNAL_ERROR")
        text = "N/A" if rate < 0 else f"{rate / max(interval, 1):.2f}"
        return v1(200, {"rate": text})

    def render_proxy(self, request: AdminRequest, params: dict[str, str]) -> Flow[Response]:
        """``--proxy-graphite``: ``GET /render`` passed to graphite, with the URL's basic auth."""
        parts = urlsplit(self.opts.graphite_url if "://" in self.opts.graphite_url else "http://" + self.opts.graphite_url)
        headers: list[tuple[str, str]] = [(k, v) for k, v in request.headers if k in ("accept", "user-agent")]
        if parts.username is not None:
            token = base64.b64encode(f"{parts.username}:{parts.password or ''}".encode()).decode()
            headers.append(("Authorization", f"Basic {token}"))
        query = urlsplit(request.target).query
        url = f"http://{parts.hostname}:{parts.port or 80}{request.path}" + (f"?{query}" if query else "")
        try:
            call = HTTPRequest.from_url(url, "GET", headers)
        except ValueError:
            return plain(502, "Bad Gateway")
        (outcome,) = yield [call]
        if not isinstance(outcome, HTTPResponse):
            self.admin.log("ERROR", f"http: proxy error: {outcome}")
            return Response(502, (), b"")
        kept = tuple((k, v) for k, v in outcome.headers if k in ("content-type", "cache-control", "last-modified"))
        return Response(outcome.status, kept, outcome.body)

    # -- actions ---------------------------------------------------------------------------------

    def _body_json(self, request: AdminRequest, invalid: str | None) -> dict[str, object]:
        """The JSON object of the body; 400 with ``invalid`` (or the decoder's error) if it is not one."""
        try:
            value = json.loads(request.body)
        except ValueError as exc:
            raise APIError(400, invalid or ("EOF" if not request.body.strip() else f"invalid character in body: {exc}")) from None
        if not isinstance(value, dict):
            raise APIError(400, invalid or "json: cannot unmarshal into Go value of type struct")
        return value

    def _done(self, messages: list[str]) -> Response:
        return v1(200, {"message": maybe_warn(messages)})

    def tombstone_node_for_topic(self, request: AdminRequest, params: dict[str, str]) -> Flow[Response]:
        self._require_admin(request)
        node = params["node"]
        body = self._body_json(request, "INVALID_BODY")
        topic = body.get("topic")
        if not isinstance(topic, str) or not is_valid_topic_name(topic):
            raise APIError(400, "INVALID_TOPIC")
        messages: list[str] = []
        errors = yield from self.admin.ci.tombstone_node_for_topic(topic, node, self._lookupds)
        self._collect(errors, messages)
        self.admin.notify("tombstone_topic_producer", topic, "", node, request)
        return self._done(messages)

    def create_topic_channel(self, request: AdminRequest, params: dict[str, str]) -> Flow[Response]:
        self._require_admin(request)
        body = self._body_json(request, None)
        topic, channel = body.get("topic", ""), body.get("channel", "")
        if not isinstance(topic, str) or not is_valid_topic_name(topic):
            raise APIError(400, "INVALID_TOPIC")
        if not isinstance(channel, str) or (channel and not is_valid_channel_name(channel)):
            raise APIError(400, "INVALID_CHANNEL")
        messages: list[str] = []
        errors = yield from self.admin.ci.create_topic_channel(topic, channel, self._lookupds)
        self._collect(errors, messages)
        self.admin.notify("create_topic", topic, "", "", request)
        if channel:
            self.admin.notify("create_channel", topic, channel, "", request)
        return self._done(messages)

    def delete_topic(self, request: AdminRequest, params: dict[str, str]) -> Flow[Response]:
        self._require_admin(request)
        topic = params["topic"]
        messages: list[str] = []
        errors = yield from self.admin.ci.delete_topic(topic, self._lookupds, self._nsqds)
        self._collect(errors, messages)
        self.admin.notify("delete_topic", topic, "", "", request)
        return self._done(messages)

    def delete_channel(self, request: AdminRequest, params: dict[str, str]) -> Flow[Response]:
        self._require_admin(request)
        topic, channel = params["topic"], params["channel"]
        messages: list[str] = []
        errors = yield from self.admin.ci.delete_channel(topic, channel, self._lookupds, self._nsqds)
        self._collect(errors, messages)
        self.admin.notify("delete_channel", topic, channel, "", request)
        return self._done(messages)

    def topic_action(self, request: AdminRequest, params: dict[str, str]) -> Flow[Response]:
        return (yield from self._topic_channel_action(request, params["topic"], ""))

    def channel_action(self, request: AdminRequest, params: dict[str, str]) -> Flow[Response]:
        return (yield from self._topic_channel_action(request, params["topic"], params["channel"]))

    def _topic_channel_action(self, request: AdminRequest, topic: str, channel: str) -> Flow[Response]:
        self._require_admin(request)
        action = self._body_json(request, None).get("action")
        if action not in ("pause", "unpause", "empty"):
            raise APIError(400, "INVALID_ACTION")
        assert isinstance(action, str)
        kind = "channel" if channel else "topic"
        # The notification goes out before the answer is known, as in Go.
        self.admin.notify(f"{action}_{kind}", topic, channel, "", request)
        messages: list[str] = []
        errors = yield from self.admin.ci.topic_action(topic, channel, f"{kind}/{action}", self._lookupds, self._nsqds)
        self._collect(errors, messages)
        return self._done(messages)

    # -- /config -----------------------------------------------------------------------------------

    def config(self, request: AdminRequest, params: dict[str, str]) -> Flow[Response]:
        yield from ()
        opt = params["opt"]
        cidr = self.opts.allow_config_from_cidr
        if cidr:
            network = ipaddress.ip_network(cidr, strict=False)
            try:
                peer = ipaddress.ip_address(request.peer[0])
            except ValueError:
                self.admin.log("ERROR", f"failed to parse RemoteAddr {request.peer[0]}")
                raise APIError(400, "INVALID_REMOTE_ADDR") from None
            if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
                peer = peer.ipv4_mapped
            if peer.version != network.version or peer not in network:
                raise APIError(403, "FORBIDDEN")
        if request.method == "PUT":
            body = request.body
            if len(body) >= _CONFIG_MAX or not body:
                raise APIError(413, "INVALID_VALUE")
            if opt == "nsqlookupd_http_addresses":
                try:
                    value = json.loads(body)
                except ValueError:
                    raise APIError(400, "INVALID_VALUE") from None
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise APIError(400, "INVALID_VALUE")
                self.admin.set_opts(self.opts.replace(nsqlookupd_http_addresses=list(value)))
            elif opt == "log_level":
                level = body.decode("utf-8", "replace").lower()
                if level not in LOG_LEVEL_NUMBERS:
                    raise APIError(400, "INVALID_VALUE")
                self.admin.set_opts(self.opts.replace(log_level=level))
            else:
                raise APIError(400, "INVALID_OPTION")
        spec = spec_by_cfg_name(opt)
        if spec is None:
            raise APIError(400, "INVALID_OPTION")
        value = getattr(self.opts, spec.attr)
        out: JSONValue
        if spec.attr == "log_level":
            out = LOG_LEVEL_NUMBERS[value]
        elif spec.kind == "duration":
            out = round(value * 1e9)  # a time.Duration marshals as nanoseconds
        elif isinstance(value, list):
            out = list(value)
        else:
            out = value
        return v1(200, out)


def _const(response: Response) -> Flow[Response]:
    yield from ()
    return response

