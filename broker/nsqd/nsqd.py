"""The nsqd node: its topics, its client connections, and node-wide settings.

This is the object a runtime builds (``broker/apps/nsqd.py`` on asyncio,
``nsqsim`` on simpy): it is given the options and the ports, and hands out a
``ConnectionHandler`` for each accepted TCP or HTTP connection.
"""

from __future__ import annotations

from collections.abc import Callable

from broker.nsqd.backend import BackendQueue, DroppingBackend, NoBackend
from broker.nsqd.message import GUIDFactory
from broker.nsqd.options import Options
from broker.nsqd.protocol_v2 import ClientV2
from broker.nsqd.topic import Topic
from broker.ports import Clock, ConnectionHandler, Logger, Random

__all__ = ["NSQD", "NSQD_VERSION"]

# The nsqd release whose protocol, HTTP API and stats this node reproduces; it is
# what clients and tools are told (IDENTIFY, /info, /stats), since some of them
# decide what to send by it.
NSQD_VERSION = "1.3.0"

_LEVELS = {"DEBUG": 0, "INFO": 1, "WARN": 2, "ERROR": 3, "FATAL": 4}

Listener = Callable[[str, Topic, object], None]


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
        self.version = NSQD_VERSION
        self.tcp_address: tuple[str, int] = ("", 0)
        self.http_address: tuple[str, int] = ("", 0)
        self.start_time = clock.wall_ns() // 1_000_000_000
        self.topics: dict[str, Topic] = {}
        self.clients: dict[int, ClientV2] = {}
        self.guid = GUIDFactory(opts.node_id if 0 <= opts.node_id < 1024 else 0)
        self.listeners: list[Listener] = []
        self.closed = False
        self._client_seq = 0

    # -- logging and events ---------------------------------------------------------

    def log(self, level: str, msg: str) -> None:
        self.logger.log(level, msg)

    def notify(self, event: str, topic: Topic, obj: object) -> None:
        """Tell listeners (the lookupd registration, the metadata writer) what changed."""
        for listener in self.listeners:
            listener(event, topic, obj)

    # -- connections ----------------------------------------------------------------

    def set_listen_addresses(self, tcp: tuple[str, int], http: tuple[str, int]) -> None:
        """Record the bound addresses (the real ports when port 0 was asked for)."""
        self.tcp_address = tcp
        self.http_address = http

    def tcp_handler(self) -> ConnectionHandler:
        """A handler for one new client connection on the TCP port."""
        self._client_seq += 1
        client = ClientV2(self, self._client_seq)
        self.clients[client.id] = client
        return client

    def http_handler(self) -> ConnectionHandler:
        """A handler for one new connection on the HTTP port."""
        from broker.nsqd.http_api import HTTPConnection  # the HTTP API builds on the core

        return HTTPConnection(self)

    def client_gone(self, client: ClientV2) -> None:
        self.clients.pop(client.id, None)

    # -- topics ---------------------------------------------------------------------

    def new_backend(self, topic_name: str, channel_name: str | None = None) -> BackendQueue:
        name = channel_name if channel_name is not None else topic_name
        if name.endswith("#ephemeral"):
            return DroppingBackend()
        return NoBackend()

    def get_topic(self, name: str) -> Topic:
        """The topic called ``name``, created if it does not exist."""
        topic = self.topics.get(name)
        if topic is not None:
            return topic
        topic = Topic(name, self, self.new_backend(name), self._topic_empty)
        self.topics[name] = topic
        self.log("INFO", f"TOPIC({name}): created")
        self.notify("topic_created", topic, topic)
        return topic

    def get_existing_topic(self, name: str) -> Topic | None:
        return self.topics.get(name)

    def delete_existing_topic(self, name: str) -> bool:
        topic = self.topics.pop(name, None)
        if topic is None:
            return False
        topic.close(deleted=True)
        self.log("INFO", f"TOPIC({name}): deleted")
        self.notify("topic_deleted", topic, topic)
        return True

    def _topic_empty(self, topic: Topic) -> None:
        if self.topics.get(topic.name) is topic:
            self.delete_existing_topic(topic.name)

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Load persisted metadata and start background work (lookupd, sync timers)."""

    def close(self) -> None:
        """Graceful exit: close every client connection, then every topic."""
        if self.closed:
            return
        self.closed = True
        for client in list(self.clients.values()):
            client.close()
        for topic in list(self.topics.values()):
            topic.close(deleted=False)
