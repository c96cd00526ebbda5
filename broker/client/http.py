"""A sans-IO HTTP/1.1 client for one request, on h11 and the ports.

``HTTPFetch`` is a ``ConnectionHandler``: ``start(network)`` opens a stream to
the request's host, sends the request (with ``Connection: close``), reads the
answer through h11 and hands ``on_done`` either an ``HTTPResponse`` or the
exception that ended it, exactly once.  A ``Clock`` timer bounds the whole
exchange, connect included, as Go's ``http.Client.Timeout`` does; the body is
bounded by ``max_body``.  The consumer uses it to poll nsqlookupd, so lookups
run in the simulator like everything else; the asyncio utilities wrap it in a
coroutine (``aio_http``).

Only plain ``http://`` is spoken: nsqd and nsqlookupd serve their APIs over
it.  A URL without a scheme is taken as ``http://``, as NSQ's tools take a
bare ``host:port``.  ``http+unix://%2Frun%2Fnsqd-http.sock/stats`` asks the
same over a Unix socket (its percent-encoded path in place of the host; see
``broker.wire.netaddr``), with ``Host: localhost``, as curl's
``--unix-socket`` sends.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import h11

from broker.client.address import join_address
from broker.client.errors import NSQClientError
from broker.ports import Clock, Connection, ConnectionHandler, Network, Timer
from broker.wire.netaddr import UNIX_PORT

__all__ = ["HTTPError", "HTTPFetch", "HTTPRequest", "HTTPResponse", "fetch"]

DEFAULT_MAX_BODY = 16 * 1024 * 1024


class HTTPError(NSQClientError):
    """The exchange failed before a whole answer arrived (not an error status)."""


@dataclass(frozen=True, slots=True)
class HTTPRequest:
    method: str
    host: str
    port: int
    target: str  # path and query, as sent
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    @classmethod
    def from_url(
        cls,
        url: str,
        method: str = "GET",
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> HTTPRequest:
        if "://" not in url:
            url = "http://" + url
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if parts.scheme == "http+unix":
            path = unquote(parts.netloc)
            if not path:
                raise ValueError(f"{url}: no socket path")
            return cls(method, path, UNIX_PORT, target, tuple(headers), body)
        if parts.scheme != "http":
            raise ValueError(f"{url}: only http:// and http+unix:// are supported")
        if not parts.hostname:
            raise ValueError(f"{url}: no host")
        try:
            port = parts.port or 80
        except ValueError as exc:
            raise ValueError(f"{url}: {exc}") from None
        return cls(method, parts.hostname, port, target, tuple(headers), body)


@dataclass(frozen=True, slots=True)
class HTTPResponse:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers:
            if key == lowered:
                return value
        return None

    def json(self) -> object:
        return json.loads(self.body)


Done = Callable[[HTTPResponse | BaseException], None]


class HTTPFetch:
    """One request on its own connection (a ``ConnectionHandler``)."""

    def __init__(
        self,
        request: HTTPRequest,
        clock: Clock,
        on_done: Done,
        *,
        timeout: float,
        connect_timeout: float | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        user_agent: str = "nsqsim",
    ) -> None:
        self.request = request
        self._connect_timeout = connect_timeout
        self._connect_timer: Timer | None = None
        self._clock = clock
        self._on_done: Done | None = on_done
        self._timeout = timeout
        self._max_body = max_body
        self._user_agent = user_agent
        self._h11 = h11.Connection(h11.CLIENT)
        self._transport: Connection | None = None
        self._timer: Timer | None = None
        self._status = 0
        self._headers: tuple[tuple[str, str], ...] = ()
        self._body = bytearray()

    def start(self, network: Network) -> None:
        self.start_via(network, lambda handler: handler)

    def start_via(self, network: Network, wrap: Callable[[ConnectionHandler], ConnectionHandler]) -> None:
        """``start``, with the connection's handler wrapped first (``TLSConnection`` for https)."""
        self._timer = self._clock.call_later(self._timeout, self._expired)
        if self._connect_timeout is not None:
            self._connect_timer = self._clock.call_later(self._connect_timeout, self._connect_expired)
        network.connect(self.request.host, self.request.port, wrap(self))

    def cancel(self) -> None:
        """Give up; ``on_done`` is not called."""
        self._on_done = None
        self._finish_transport(abort=True)
        self._cancel_timer()

    # -- ConnectionHandler ----------------------------------------------------------------

    def connection_made(self, conn: Connection) -> None:
        if self._connect_timer is not None:
            self._connect_timer.cancel()
            self._connect_timer = None
        if self._on_done is None:
            conn.abort()
            return
        self._transport = conn
        req = self.request
        headers = [
            ("Host", "localhost" if req.port == UNIX_PORT else join_address(req.host, req.port)),
            ("User-Agent", self._user_agent),
            ("Connection", "close"),
            *req.headers,
        ]
        if req.body or req.method in ("POST", "PUT", "PATCH"):
            headers.append(("Content-Length", str(len(req.body))))
        try:
            out = self._h11.send(h11.Request(method=req.method, target=req.target, headers=headers))
            if req.body:
                out = (out or b"") + (self._h11.send(h11.Data(data=req.body)) or b"")
            out = (out or b"") + (self._h11.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError as exc:
            self._fail(HTTPError(f"bad request: {exc}"))
            return
        conn.write(out)

    def data_received(self, data: bytes) -> None:
        self._receive(data)

    def eof_received(self) -> None:
        self._receive(b"")

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._on_done is not None:
            self._fail(exc if exc is not None else HTTPError("connection closed before the answer ended"))

    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        pass

    # -- internals ------------------------------------------------------------------------

    def _receive(self, data: bytes) -> None:
        if self._on_done is None:
            return
        try:
            self._h11.receive_data(data)
            while True:
                event = self._h11.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    return
                if isinstance(event, h11.Response):
                    self._status = event.status_code
                    self._headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers)
                elif isinstance(event, h11.Data):
                    self._body += event.data
                    if len(self._body) > self._max_body:
                        self._fail(HTTPError(f"answer body over {self._max_body} bytes"))
                        return
                elif isinstance(event, h11.EndOfMessage):
                    self._succeed()
                    return
                elif isinstance(event, h11.ConnectionClosed):
                    self._fail(HTTPError("connection closed before the answer ended"))
                    return
        except h11.RemoteProtocolError as exc:
            self._fail(HTTPError(f"bad answer: {exc}"))

    def _succeed(self) -> None:
        on_done = self._on_done
        self._on_done = None
        self._cancel_timer()
        self._finish_transport(abort=False)
        if on_done is not None:
            on_done(HTTPResponse(self._status, self._headers, bytes(self._body)))

    def _fail(self, exc: BaseException) -> None:
        on_done = self._on_done
        self._on_done = None
        self._cancel_timer()
        self._finish_transport(abort=True)
        if on_done is not None:
            on_done(exc)

    def _expired(self) -> None:
        self._timer = None
        self._fail(TimeoutError(f"{self.request.method} {self.request.host}:{self.request.port}{self.request.target}: no answer within {self._timeout}s"))

    def _connect_expired(self) -> None:
        self._connect_timer = None
        req = self.request
        self._fail(TimeoutError(f"dial tcp {join_address(req.host, req.port)}: i/o timeout (connect took over {self._connect_timeout}s)"))

    def _finish_transport(self, *, abort: bool) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            if abort:
                transport.abort()
            else:
                transport.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._connect_timer is not None:
            self._connect_timer.cancel()
            self._connect_timer = None


def fetch(
    network: Network,
    clock: Clock,
    request: HTTPRequest,
    on_done: Done,
    *,
    timeout: float,
    max_body: int = DEFAULT_MAX_BODY,
    user_agent: str = "nsqsim",
) -> HTTPFetch:
    """Start ``request``; ``on_done`` gets the answer or the exception, once."""
    handler = HTTPFetch(request, clock, on_done, timeout=timeout, max_body=max_body, user_agent=user_agent)
    handler.start(network)
    return handler
