"""The nsqlookupd node: the registration database and the two ways to reach it.

The runtime (asyncio or the simulator) binds the listeners, tells the node
where they ended up with ``set_listen_addresses``, and calls ``tcp_handler``
and ``http_handler`` for each connection on the TCP and HTTP ports (a runtime
with its own HTTP server may hand requests to ``handle_http_target`` or
``handle_http`` instead). Nothing here reads a clock, a socket or a file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from broker.lookupd.http_api import HTTPResponse, LookupdHTTPAPI
from broker.lookupd.http_server import LookupdHTTPConnection
from broker.lookupd.options import LookupdOptions
from broker.lookupd.protocol_v1 import LookupProtocolV1
from broker.lookupd.registration_db import RegistrationDB
from broker.ports import Clock, ConnectionHandler, Logger
from broker.wire import gojson

__all__ = ["VERSION", "NSQLookupd"]

# The nsqlookupd release this one answers as (IDENTIFY, /info).
VERSION = "1.3.0"


class NSQLookupd:
    def __init__(
        self,
        opts: LookupdOptions,
        *,
        clock: Clock,
        logger: Logger,
        hostname: str,
    ) -> None:
        self.opts = opts
        self.clock = clock
        self.logger = logger
        self.hostname = hostname
        self.version = VERSION
        self.db = RegistrationDB()
        self.tcp_address: tuple[str, int] = ("", 0)
        self.http_address: tuple[str, int] = ("", 0)
        self._http = LookupdHTTPAPI(self)
        # Open TCP connections, in the order they arrived, so close() is deterministic.
        self._connections: dict[LookupProtocolV1, None] = {}
        self._http_connections: dict[LookupdHTTPConnection, None] = {}
        self._unix_peers = 0  # Unix-socket clients so far, to tell their registrations apart

    @property
    def broadcast_address(self) -> str:
        return self.opts.broadcast_address or self.hostname

    def set_listen_addresses(self, tcp: tuple[str, int], http: tuple[str, int]) -> None:
        """Record the bound addresses (the real ports when port 0 was asked for)."""
        self.tcp_address = tcp
        self.http_address = http

    def tcp_handler(self) -> ConnectionHandler:
        """A handler for one new connection on the TCP port."""
        return LookupProtocolV1(self)

    def http_handler(self) -> ConnectionHandler:
        """A handler for one new connection on the HTTP port."""
        return LookupdHTTPConnection(self)

    def handle_http_target(self, method: str, target: bytes | str, body: bytes) -> HTTPResponse:
        """Answer one HTTP request given its raw request-target; see ``http_api``."""
        return self._http.handle_target(method, target, body)

    def handle_http(
        self, method: str, path: str, query: Mapping[str, Sequence[str]], body: bytes
    ) -> HTTPResponse:
        """Answer one HTTP request whose path and query are already decoded."""
        return self._http.handle(method, path, query, body)

    def identify_response(self) -> bytes:
        """lookupd's answer to IDENTIFY: a Go map, so its keys are sorted."""
        return gojson.dumps(
            {
                "broadcast_address": self.broadcast_address,
                "hostname": self.hostname,
                "http_port": self.http_address[1],
                "tcp_port": self.tcp_address[1],
                "version": self.version,
            }
        )

    def connection_opened(self, handler: LookupProtocolV1) -> None:
        self._connections[handler] = None

    def unix_peer_id(self, addr: str) -> str:
        """A registration id for a client on a Unix socket, whose address (``@``) every such client shares."""
        self._unix_peers += 1
        return f"{addr}#{self._unix_peers}"

    def connection_closed(self, handler: LookupProtocolV1) -> None:
        self._connections.pop(handler, None)

    def http_connection_opened(self, conn: LookupdHTTPConnection) -> None:
        self._http_connections[conn] = None

    def http_connection_closed(self, conn: LookupdHTTPConnection) -> None:
        self._http_connections.pop(conn, None)

    def close(self) -> None:
        """Close every connection: TCP ones drop their peer's registrations, as Go's Exit does.

        Go leaves open HTTP connections to the process exit; closing them here
        lets a runtime wait for their last answers to flush instead.
        """
        for handler in list(self._connections):
            handler.close()
        for conn in list(self._http_connections):
            conn.close()
