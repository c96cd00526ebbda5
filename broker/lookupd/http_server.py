"""nsqlookupd's HTTP port: the generic HTTP server connection in front of ``http_api``.

``broker.wire.http`` parses requests and shapes answers like Go's net/http;
this module only routes each whole request to ``NSQLookupd.handle_http_target``
and keeps the open connections on the node's books, so that the node's
``close()`` (nsqlookupd exiting) closes them as it does its TCP connections.

No nsqlookupd endpoint reads a request body, so none is buffered: a body is
skipped as Go's server skips one its handler left unread (up to 256 KiB,
keeping the connection; past that, closing it after the answer).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.ports import Connection
from broker.wire.http import HTTPServerConnection, Request, RequestHead, Response

if TYPE_CHECKING:
    from broker.lookupd.lookupd import NSQLookupd

__all__ = ["LookupdHTTPApp", "LookupdHTTPConnection"]


class LookupdHTTPApp:
    """The ``HTTPApp`` of nsqlookupd: every request goes to the node's HTTP API."""

    def __init__(self, lookupd: NSQLookupd) -> None:
        self._lookupd = lookupd

    def body_limit(self, head: RequestHead) -> int | None:
        return 0

    def handle(self, request: Request) -> Response:
        head = request.head
        status, headers, body = self._lookupd.handle_http_target(head.method, head.target, request.body)
        return Response(status, tuple(headers.items()), body)


class LookupdHTTPConnection(HTTPServerConnection):
    """One connection on nsqlookupd's HTTP port."""

    def __init__(self, lookupd: NSQLookupd) -> None:
        super().__init__(LookupdHTTPApp(lookupd), clock=lookupd.clock)
        self._lookupd = lookupd
        self._transport: Connection | None = None

    def connection_made(self, conn: Connection) -> None:
        self._transport = conn
        self._lookupd.http_connection_opened(self)
        super().connection_made(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._lookupd.http_connection_closed(self)
        super().connection_lost(exc)

    def close(self) -> None:
        """Close the connection, letting what was already answered go out first."""
        if self._transport is not None:
            self._transport.close()
