"""The nsqd node: topics by name, client connections, and the node-wide settings.

(Skeleton: the core lands in this file and its siblings.)
"""

from __future__ import annotations

from broker.nsqd.options import Options
from broker.ports import Clock, ConnectionHandler, Logger, Random

__all__ = ["NSQD"]


class NSQD:
    def __init__(
        self,
        opts: Options,
        *,
        clock: Clock,
        rand: Random,
        logger: Logger,
        hostname: str,
    ) -> None:
        self.opts = opts
        self.clock = clock
        self.rand = rand
        self.logger = logger
        self.hostname = hostname
        self.tcp_address: tuple[str, int] = ("", 0)
        self.http_address: tuple[str, int] = ("", 0)

    def set_listen_addresses(self, tcp: tuple[str, int], http: tuple[str, int]) -> None:
        """Record the bound addresses (the real ports when port 0 was asked for)."""
        self.tcp_address = tcp
        self.http_address = http

    def tcp_handler(self) -> ConnectionHandler:
        """A handler for one new client connection on the TCP port."""
        raise NotImplementedError

    def http_handler(self) -> ConnectionHandler:
        """A handler for one new connection on the HTTP port."""
        raise NotImplementedError

    def start(self) -> None:
        """Load persisted metadata and start background work (lookupd, sync timers)."""

    def close(self) -> None:
        """Graceful exit: close every client connection, persist what must survive."""
