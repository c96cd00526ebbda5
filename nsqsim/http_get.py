"""One HTTP GET over a simulated connection (h11, client side): how consumers ask nsqlookupd.

A consumer's lookupd poll must cross the simulated network like any other
traffic, so that a partition can hide a lookupd from it.  ``HTTPGet`` is the
``ConnectionHandler`` of one request: it sends the request when connected,
parses the answer with h11, and calls ``on_done(status, body)`` exactly once,
with status None when the connection failed, closed early or ``timeout``
passed (it then aborts the connection).
"""

from __future__ import annotations

from collections.abc import Callable

import h11

from broker.ports import Clock, Connection, Timer

__all__ = ["HTTPGet"]


class HTTPGet:
    def __init__(
        self,
        host: str,
        target: str,
        clock: Clock,
        on_done: Callable[[int | None, bytes], None],
        timeout: float = 5.0,
    ) -> None:
        self._host = host
        self._target = target
        self._on_done: Callable[[int | None, bytes], None] | None = on_done
        self._h11 = h11.Connection(our_role=h11.CLIENT)
        self._conn: Connection | None = None
        self._status: int | None = None
        self._body = bytearray()
        self._timer: Timer | None = clock.call_later(timeout, self._timed_out)

    def connection_made(self, conn: Connection) -> None:
        self._conn = conn
        req = h11.Request(method="GET", target=self._target, headers=[("Host", self._host), ("Connection", "close")])
        conn.write(self._h11.send(req) + self._h11.send(h11.EndOfMessage()))

    def data_received(self, data: bytes) -> None:
        self._h11.receive_data(data)
        self._pump()

    def eof_received(self) -> None:
        self._h11.receive_data(b"")
        self._pump()

    def connection_lost(self, exc: Exception | None) -> None:
        self._done(None)

    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        pass

    def _pump(self) -> None:
        while self._on_done is not None:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError:
                self._done(None)
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Response):
                self._status = event.status_code
            elif isinstance(event, h11.Data):
                self._body += event.data
            elif isinstance(event, h11.EndOfMessage):
                self._done(self._status)
                return
            elif isinstance(event, h11.ConnectionClosed):
                self._done(None)
                return

    def _timed_out(self) -> None:
        self._timer = None
        self._done(None)

    def _done(self, status: int | None) -> None:
        on_done, self._on_done = self._on_done, None
        if on_done is None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._conn is not None:
            if status is None:
                self._conn.abort()
            else:
                self._conn.close()
        on_done(status, bytes(self._body) if status is not None else b"")
