"""nsqd's AUTH: asking an auth server what a client's secret allows, and checking it.

This is nsqd's ``internal/auth`` in the core.  ``AuthQuery`` asks the
``--auth-http-address`` servers in turn, from a random one on (Go's
``QueryAnyAuthd``), with ``GET /auth?remote_ip=&tls=&secret=&common_name=``
(or those as a POSTed form: nsqd 1.3.1's ``--auth-http-request-method``)
through ``broker.client.http`` on the ``Network`` port, so an auth server that
is down, slow or partitioned is as real in the simulator as on a machine; the
first good answer wins, and when every server fails the errors are joined as
Go joins them.  ``parse_state`` validates an answer as nsqd does (known
permissions only, regexes that compile, a TTL above zero); ``AuthState``
answers nsqd's ``IsAllowed`` and knows when it has expired.

An address with ``://`` is used as the whole endpoint, as in nsqd (an
``https://`` one over TLS, verified against ``--tls-root-ca-file`` or the
system's CAs); a bare ``host:port`` means ``http://host:port/auth``.
Regexes are Python's ``re`` (Go's are RE2: the same for what auth servers
write, though Python accepts a few patterns RE2 refuses, such as
backreferences).  The 403-to-HTTPS retry of Go's HTTP client is not made: an
auth server answering 403 is an error.
"""

from __future__ import annotations

import json
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import urlencode, urlsplit

from broker.client.http import HTTPFetch, HTTPRequest, HTTPResponse
from broker.ports import Clock, Network, Random
from broker.wire.layers import TLSConnection

__all__ = ["AuthError", "AuthQuery", "AuthState", "Authorization", "auth_endpoint", "auth_query", "auth_url", "parse_state"]

PERMISSIONS = ("subscribe", "publish")


class AuthError(Exception):
    """The auth server could not be asked, or its answer is not one nsqd accepts."""


@dataclass(frozen=True, slots=True)
class Authorization:
    topic: str
    channels: tuple[str, ...]
    permissions: tuple[str, ...]
    _topic_re: re.Pattern[str] = field(repr=False, compare=False)
    _channel_res: tuple[re.Pattern[str], ...] = field(repr=False, compare=False)

    def is_allowed(self, topic: str, channel: str) -> bool:
        # nsqd's Authorization.IsAllowed: a channel asks for subscribe, none for publish,
        # and even a publish must match one of the channel patterns (against "").
        if ("subscribe" if channel else "publish") not in self.permissions:
            return False
        if self._topic_re.search(topic) is None:
            return False
        return any(r.search(channel) is not None for r in self._channel_res)


@dataclass(frozen=True, slots=True)
class AuthState:
    ttl: int
    authorizations: tuple[Authorization, ...]
    identity: str
    identity_url: str
    expires: float  # on the node's clock

    def is_allowed(self, topic: str, channel: str) -> bool:
        return any(a.is_allowed(topic, channel) for a in self.authorizations)

    def is_expired(self, now: float) -> bool:
        return self.expires <= now


def _str(value: object, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise AuthError(f"json: cannot unmarshal {type(value).__name__} into {what} of type string")
    return value


def _str_list(value: object, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise AuthError(f"json: cannot unmarshal {type(value).__name__} into {what} of type []string")
    return tuple(_str(v, what) for v in value)


def _compile(pattern: str, what: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise AuthError(f"unable to compile {what} {json.dumps(pattern)} {exc}") from None


def parse_state(body: bytes, now: float) -> AuthState:
    """An auth server's answer, validated as nsqd's ``QueryAuthd`` validates it."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AuthError(f"invalid character in auth response: {exc}") from None
    if not isinstance(doc, dict):
        raise AuthError("json: cannot unmarshal auth response: not an object")
    ttl = doc.get("ttl", 0)
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl != int(ttl):
        raise AuthError("json: cannot unmarshal ttl into State.ttl of type int")
    raw_auths = doc.get("authorizations") or []
    if not isinstance(raw_auths, list):
        raise AuthError("json: cannot unmarshal authorizations into State.authorizations")
    auths = []
    for raw in raw_auths:
        if not isinstance(raw, dict):
            raise AuthError("json: cannot unmarshal an authorization: not an object")
        topic = _str(raw.get("topic"), "Authorization.topic")
        channels = _str_list(raw.get("channels"), "Authorization.channels")
        permissions = _str_list(raw.get("permissions"), "Authorization.permissions")
        for p in permissions:
            if p not in PERMISSIONS:
                raise AuthError(f"unknown permission {p}")
        topic_re = _compile(topic, "topic")
        channel_res = tuple(_compile(c, "channel") for c in channels)
        auths.append(Authorization(topic, channels, permissions, topic_re, channel_res))
    if int(ttl) <= 0:
        raise AuthError(f"invalid TTL {int(ttl)} (must be >0)")
    return AuthState(
        ttl=int(ttl),
        authorizations=tuple(auths),
        identity=_str(doc.get("identity"), "State.identity"),
        identity_url=_str(doc.get("identity_url"), "State.identity_url"),
        expires=now + int(ttl),
    )


def auth_query(remote_ip: str, tls: bool, secret: str, common_name: str) -> str:
    """The parameters nsqd sends (Go's ``url.Values.Encode``: keys sorted)."""
    values = {"common_name": common_name, "remote_ip": remote_ip, "secret": secret, "tls": "true" if tls else "false"}
    return urlencode(sorted(values.items()))


def auth_endpoint(address: str) -> str:
    """An ``--auth-http-address`` as a URL: itself if it has a scheme, else ``http://ADDRESS/auth``."""
    return address if "://" in address else f"http://{address}/auth"


def auth_url(address: str, remote_ip: str, tls: bool, secret: str, common_name: str) -> str:
    """What nsqd GETs from one auth server."""
    return f"{auth_endpoint(address)}?{auth_query(remote_ip, tls, secret, common_name)}"


Done = Callable[["AuthState | AuthError"], None]


class AuthQuery:
    """One ``QueryAnyAuthd``: each server in turn until one answers well; ``on_done`` exactly once."""

    def __init__(
        self,
        addresses: list[str],
        *,
        remote_ip: str,
        tls: bool,
        secret: str,
        common_name: str,
        network: Network,
        clock: Clock,
        rand: Random,
        connect_timeout: float,
        request_timeout: float,
        client_tls: ssl.SSLContext | None,
        on_done: Done,
        method: str = "get",
    ) -> None:
        n = len(addresses)
        start = rand.randrange(n) if n > 1 else 0
        self._order = [addresses[(i + start) % n] for i in range(n)]
        self._params = (remote_ip, tls, secret, common_name)
        self._network = network
        self._clock = clock
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._client_tls = client_tls
        self._method = method
        self._on_done: Done | None = on_done
        self._errors: list[str] = []
        self._current: HTTPFetch | None = None

    def start(self) -> None:
        self._next()

    def cancel(self) -> None:
        """The client went away: stop asking, and say nothing."""
        self._on_done = None
        if self._current is not None:
            self._current.cancel()
            self._current = None

    def _next(self) -> None:
        if self._on_done is None:
            return
        if not self._order:
            self._finish(AuthError("; ".join(self._errors) or "no auth server"))
            return
        address = self._order.pop(0)
        try:
            request, tls = _request(auth_endpoint(address), auth_query(*self._params), self._method)
        except ValueError as exc:
            self._failed(address, str(exc))
            return
        def answered(result: HTTPResponse | BaseException) -> None:
            self._answered(address, result)

        fetch = HTTPFetch(
            request,
            self._clock,
            answered,
            timeout=self._request_timeout,
            connect_timeout=self._connect_timeout,
            max_body=1 << 20,
            user_agent="nsqd",
        )
        self._current = fetch
        if tls:
            context = self._client_tls or ssl.create_default_context()
            fetch.start_via(
                self._network,
                lambda inner: TLSConnection(inner, context, server_side=False, server_hostname=request.host),
            )
        else:
            fetch.start(self._network)

    def _answered(self, address: str, result: HTTPResponse | BaseException) -> None:
        self._current = None
        if isinstance(result, BaseException):
            self._failed(address, str(result) or type(result).__name__)
            return
        if result.status != 200:
            self._failed(address, f"got response {_status_text(result.status)} {json.dumps(result.body.decode('utf-8', 'replace'))}")
            return
        try:
            state = parse_state(result.body, self._clock.now())
        except AuthError as exc:
            self._failed(address, str(exc))
            return
        self._finish(state)

    def _failed(self, address: str, why: str) -> None:
        self._errors.append(f"failed to auth against {address} - {why}")
        self._next()

    def _finish(self, result: AuthState | AuthError) -> None:
        on_done, self._on_done = self._on_done, None
        if on_done is not None:
            on_done(result)


def _status_text(status: int) -> str:
    # Go's resp.Status: "403 Forbidden"
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


_ACCEPT = ("Accept", "application/vnd.nsq; version=1.0")


def _request(endpoint: str, query: str, method: str) -> tuple[HTTPRequest, bool]:
    """The request for one server (GET with the query, or POST with it as a form), and whether it is https."""
    tls = urlsplit(endpoint).scheme == "https"
    url = "http://" + endpoint[len("https://") :] if tls else endpoint
    if method == "post":
        req = HTTPRequest.from_url(
            url, "POST", headers=(_ACCEPT, ("Content-Type", "application/x-www-form-urlencoded")), body=query.encode()
        )
    else:
        req = HTTPRequest.from_url(f"{url}?{query}", headers=(_ACCEPT,))
    if tls and urlsplit(endpoint).port is None:
        req = HTTPRequest(req.method, req.host, 443, req.target, req.headers, req.body)
    return req, tls
