"""The nsqadmin node: its options, the cluster it watches, and its HTTP port.

The runtime binds the listener and calls ``http_handler`` for each
connection; every request runs as a flow on the node's ``FlowRunner``, whose
requests to nsqlookupd and nsqd go out through the ``Network`` port, bounded
by ``--http-client-request-timeout`` on the ``Clock``.  The UI's files come
from an ``AssetSource`` the runtime provides (the package's ``static/``
folder, or ``--dev-static-dir``).  Nothing here reads a socket, a file or
the time but through those.
"""

from __future__ import annotations

import base64
from typing import Protocol

from broker.admin.api import AdminAPI, APIError, v1_error
from broker.admin.clusterinfo import ClusterInfo, describe_failure
from broker.admin.flow import Flow, FlowRunner
from broker.admin.http_server import AdminHTTPConnection, AdminRequest, Respond
from broker.admin.options import LOG_LEVEL_NUMBERS, AdminOptions
from broker.client.http import HTTPRequest
from broker.ports import Clock, ConnectionHandler, Logger, Network
from broker.wire import gojson
from broker.wire.goduration import go_duration
from broker.wire.http import Response

__all__ = ["VERSION", "AssetSource", "NSQAdmin"]

# The nsqadmin release this one answers as.
VERSION = "1.3.0"

_LEVEL_OF_MESSAGE = {"DEBUG": 1, "INFO": 2, "WARN": 3, "ERROR": 4, "FATAL": 5}


class AssetSource(Protocol):
    """The UI's files by name (``index.html``, ``app.js``, ...); None for one that does not exist."""

    def get(self, name: str) -> bytes | None: ...


class NSQAdmin:
    def __init__(
        self,
        opts: AdminOptions,
        *,
        clock: Clock,
        network: Network,
        logger: Logger,
        hostname: str,
        assets: AssetSource,
    ) -> None:
        self.opts = opts
        self.clock = clock
        self.logger = logger
        self.hostname = hostname
        self.assets = assets
        self.version = VERSION
        self.user_agent = f"nsqadmin/{VERSION}"
        self.runner = FlowRunner(network, clock, timeout=opts.http_client_request_timeout, user_agent=self.user_agent)
        self.ci = ClusterInfo(lambda msg: self.log("INFO", msg), lambda: clock.wall_ns() // 1_000_000_000)
        self.api = AdminAPI(self)
        self._connections: dict[AdminHTTPConnection, None] = {}

    def log(self, level: str, msg: str) -> None:
        if _LEVEL_OF_MESSAGE[level] >= LOG_LEVEL_NUMBERS[self.opts.log_level]:
            self.logger.log(level, msg)

    def set_opts(self, opts: AdminOptions) -> None:
        """Swap the options (``PUT /config/...``), as Go's ``swapOpts``."""
        self.opts = opts

    # -- HTTP ------------------------------------------------------------------------------

    def http_handler(self) -> ConnectionHandler:
        """A handler for one new connection on the HTTP port."""
        return AdminHTTPConnection(self, self.clock, on_open=self._opened, on_close=self._closed)

    def handle(self, request: AdminRequest, respond: Respond) -> None:
        """Answer one request (the ``AdminApp`` of the HTTP connections), logging it as Go does."""
        start = self.clock.now()

        def done(response: Response) -> None:
            elapsed = go_duration(round((self.clock.now() - start) * 1e9))
            peer = f"{request.peer[0]}:{request.peer[1]}"
            self.log("INFO", f"{response.status} {request.method} {request.target} ({peer}) {elapsed}")
            respond(response)

        self.runner.run(self._guarded(request), done)

    def _guarded(self, request: AdminRequest) -> Flow[Response]:
        # Go's router answers a handler's panic with 500 INTERNAL_ERROR and logs it; so do we.
        try:
            return (yield from self.api.route(request))
        except Exception as exc:
            self.log("ERROR", f"panic in HTTP handler - {type(exc).__name__}: {exc}")
            return v1_error(APIError(500, "INTERNAL_ERROR"))

    def _opened(self, conn: AdminHTTPConnection) -> None:
        self._connections[conn] = None

    def _closed(self, conn: AdminHTTPConnection) -> None:
        self._connections.pop(conn, None)

    def close(self) -> None:
        """Give up requests under way and close every connection (nsqadmin exiting)."""
        self.runner.close()
        for conn in list(self._connections):
            conn.close()

    # -- notifications -----------------------------------------------------------------------

    def notify(self, action: str, topic: str, channel: str, node: str, request: AdminRequest) -> None:
        """POST an admin action to ``--notification-http-endpoint``, never holding up the answer."""
        endpoint = self.opts.notification_http_endpoint
        if not endpoint:
            return
        scheme = "https" if request.header("X-Scheme") == "https" else "http"
        host = request.header("Host")
        event: dict[str, gojson.JSONValue] = {"action": action, "topic": topic}
        if channel:
            event["channel"] = channel
        if node:
            event["node"] = node
        event["timestamp"] = self.clock.wall_ns() // 1_000_000_000
        user = basic_auth_user(request.header("Authorization"))
        if user:
            event["user"] = user
        event["remote_ip"] = f"{request.peer[0]}:{request.peer[1]}"
        event["user_agent"] = request.header("User-Agent")
        event["url"] = f"{scheme}://{host}{request.target}"
        event["via"] = self.hostname
        body = gojson.dumps(event)
        self.log("INFO", f"POSTing notification to {endpoint}")
        try:
            call = HTTPRequest.from_url(endpoint, "POST", (("Content-Type", "application/json"),), body)
        except ValueError as exc:
            self.log("ERROR", f"failed to POST notification - {exc}")
            return
        self.runner.run(self._post_notification(call, endpoint), lambda _: None)

    def _post_notification(self, call: HTTPRequest, endpoint: str) -> Flow[None]:
        (outcome,) = yield [call]
        if isinstance(outcome, BaseException):
            self.log("ERROR", f"failed to POST notification - {describe_failure(call, endpoint, outcome)}")


def basic_auth_user(header: str) -> str:
    """The user name of an ``Authorization: Basic`` header, or ``""`` (Go's ``basicAuthUser``)."""
    scheme, _, token = header.partition(" ")
    if scheme != "Basic" or not token:
        return ""
    try:
        decoded = base64.b64decode(token, validate=True).decode("utf-8", "replace")
    except ValueError:
        return ""
    user, sep, _ = decoded.partition(":")
    return user if sep else ""
