"""The nsqd node: its topics, its client connections, and node-wide settings.

This is the object a runtime builds (``broker/apps/nsqd.py`` on asyncio,
``nsqsim`` on simpy): it is given the options and the ports, and hands out a
``ConnectionHandler`` for each accepted TCP or HTTP connection.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping

from broker.nsqd import metadata, migrate
from broker.nsqd.backend import BackendError, BackendQueue, DroppingBackend, NoBackend
from broker.nsqd.lookup import LookupClient
from broker.nsqd.message import RECORD_OVERHEAD, GUIDFactory
from broker.nsqd.options import Options
from broker.nsqd.protocol_v2 import ClientV2
from broker.nsqd.statsd import StatsdPusher, statsd_prefix
from broker.nsqd.topic import Topic
from broker.ports import (
    Clock,
    ConnectionHandler,
    DatagramSender,
    FileSystem,
    Logger,
    Network,
    Random,
)
from broker.storage.diskqueue import DiskQueue
from broker.wire.netaddr import is_unix

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
        fs: FileSystem | None = None,
        network: Network | None = None,
        datagrams: DatagramSender | None = None,
        tls_context: ssl.SSLContext | None = None,
        auth_tls_context: ssl.SSLContext | None = None,
    ) -> None:
        """``fs`` is where disk queues and ``nsqd.dat`` live; without one nothing is persisted.

        ``network`` is how nsqd reaches nsqlookupd; without one it registers nowhere.
        ``datagrams`` is how it pushes to statsd; without one ``--statsd-address`` pushes nothing.
        ``tls_context`` is the server side of ``--tls-cert``/``--tls-key`` (built by the
        daemon, which reads the files); without one IDENTIFY offers no TLS and HTTPS
        is not served.
        """
        self.tls_context = tls_context
        self.network = network  # nsqlookupd, and the auth servers
        # how nsqd's HTTPS requests to an auth server verify it (Go's clientTLSConfig)
        self.auth_tls_context = auth_tls_context
        self.opts = opts
        self.fs = fs
        self.clock = clock
        self.rand = rand
        self.logger = logger
        self.hostname = hostname
        self.version = NSQD_VERSION
        self.tcp_address: tuple[str, int] = ("", 0)
        self.http_address: tuple[str, int] = ("", 0)
        self.https_address: tuple[str, int] = ("", 0)
        self.start_time = clock.wall_ns() // 1_000_000_000
        self.topics: dict[str, Topic] = {}
        self.clients: dict[int, ClientV2] = {}
        self.guid = GUIDFactory(opts.node_id if 0 <= opts.node_id < 1024 else 0)
        self.listeners: list[Listener] = []
        self.closed = False
        self.health = "OK"
        self._client_seq = 0
        self._loading = False
        self.lookup = LookupClient(self, network) if network is not None else None
        self._datagrams = datagrams
        self.statsd: StatsdPusher | None = None
        # Set by the runtime: this process's memory (/stats) and process (/metrics) figures, and how
        # a new --log-level (PUT /config/log_level) reaches the logger.
        self.memory_stats: Callable[[], Mapping[str, int]] | None = None
        self.process_stats: Callable[[], Mapping[str, float]] | None = None  # for /metrics' process_*
        self.log_level_changed: Callable[[str], None] | None = None

    # -- logging and events ---------------------------------------------------------

    def log(self, level: str, msg: str) -> None:
        self.logger.log(level, msg)

    def notify(self, event: str, topic: Topic, obj: object) -> None:
        """Tell listeners (the lookupd registration, the metadata writer) what changed."""
        for listener in self.listeners:
            listener(event, topic, obj)

    # -- connections ----------------------------------------------------------------

    def set_listen_addresses(
        self, tcp: tuple[str, int], http: tuple[str, int], https: tuple[str, int] = ("", 0)
    ) -> None:
        """Record the bound addresses (the real ports when port 0 was asked for)."""
        self.tcp_address = tcp
        self.http_address = http
        self.https_address = https

    @property
    def broadcast_tcp_port(self) -> int:
        """The TCP port announced to nsqlookupd: ``--broadcast-tcp-port``, else the listening one.

        nsqd.New fills the option in from a TCP listener only; a Unix socket has
        no port, so 0 is announced (and nsqlookupd refuses the IDENTIFY).
        """
        return self.opts.broadcast_tcp_port or _port(self.tcp_address)

    @property
    def broadcast_http_port(self) -> int:
        """The HTTP port announced to nsqlookupd and put into the statsd prefix (as ``broadcast_tcp_port``)."""
        return self.opts.broadcast_http_port or _port(self.http_address)

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

    def https_handler(self) -> ConnectionHandler:
        """A handler for one new connection on the HTTPS port: the same API, over TLS."""
        from broker.nsqd.http_api import HTTPConnection
        from broker.wire.layers import TLSConnection

        assert self.tls_context is not None
        return TLSConnection(HTTPConnection(self, tls=True), self.tls_context, server_side=True)

    def client_gone(self, client: ClientV2) -> None:
        self.clients.pop(client.id, None)

    # -- topics ---------------------------------------------------------------------

    def new_backend(self, topic_name: str, channel_name: str | None = None) -> BackendQueue:
        name = channel_name if channel_name is not None else topic_name
        if name.endswith("#ephemeral"):
            return DroppingBackend()
        if self.fs is None:
            return NoBackend()
        opts = self.opts
        # nsqd names a channel's queue "<topic>:<channel>".
        queue_name = topic_name if channel_name is None else f"{topic_name}:{channel_name}"
        return DiskQueue(
            queue_name,
            opts.data_path,
            self.fs,
            self.clock,
            self.logger,
            max_bytes_per_file=opts.max_bytes_per_file,
            sync_every=opts.sync_every,
            sync_timeout=opts.sync_timeout,
            min_msg_size=RECORD_OVERHEAD - 8 + 1,
            max_msg_size=opts.max_msg_size + RECORD_OVERHEAD,
            max_disk_bytes=opts.max_disk_bytes_per_queue,
            # a disk-only channel holds its read position at the oldest record it still needs
            hold_reads=channel_name is not None and (opts.mem_queue_size == 0 or opts.durable_publish),
        )

    def backend_failed(self, backend: BackendQueue, exc: BackendError) -> None:
        """A disk queue failed: nsqd reports it through /ping and /stats health."""
        self.health = f"NOK - {exc}"
        self.log("ERROR", f"backend queue failed - {exc}")

    def persist_metadata(self, final: bool = False) -> None:
        """Rewrite nsqd.dat (when there is a file system and not while loading it).

        ``final``: the last write of a clean exit, after every channel saved what
        it held; only then does it say how many deferred records each left on disk.
        """
        if self.fs is None or self._loading:
            return
        topics = []
        for t in self.topics.values():
            if t.ephemeral:
                continue
            channels = [c for c in t.channels.values() if not c.ephemeral]
            deferred = {c.name: c.deferred_on_disk for c in channels if c.deferred_on_disk} if final else {}
            letters = {c.name: (c.max_attempts, c.dead_letter_topic) for c in channels if c.max_attempts}
            replays = {c.name: w for c in channels if (w := c.replay_window()) is not None} if final else {}
            meta = metadata.TopicMeta(
                t.name, t.paused, [(c.name, c.paused) for c in channels], deferred, t.ttl_ns // 1_000_000, letters, replays
            )
            topics.append(meta)
        try:
            metadata.save(self.fs, self.opts.data_path, topics, self.version)
        except OSError as exc:
            self.log("ERROR", f"failed to persist metadata - {exc}")

    def get_topic(self, name: str) -> Topic:
        """The topic called ``name``, created if it does not exist."""
        topic = self.topics.get(name)
        if topic is not None:
            return topic
        topic = Topic(name, self, self.new_backend(name), self._topic_empty)
        self.topics[name] = topic
        self.log("INFO", f"TOPIC({name}): created")
        self.notify("topic_created", topic, topic)
        self.persist_metadata()
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
        self.persist_metadata()
        return True

    def _topic_empty(self, topic: Topic) -> None:
        if self.topics.get(topic.name) is topic:
            self.delete_existing_topic(topic.name)

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Restore what nsqd.dat lists, then start registering with nsqlookupd and pushing to statsd."""
        opts = self.opts
        if opts.statsd_prefix:
            # nsqd.New substitutes the host into the prefix once its listeners are bound, in its options
            prefix = statsd_prefix(opts.statsd_prefix, opts.broadcast_address or self.hostname, self.broadcast_http_port)
            self.opts = opts.replace(statsd_prefix=prefix)
        self._take_over_go_data()
        self._load_metadata()
        if self.lookup is not None:
            self.lookup.start()
        if self.opts.statsd_address and self._datagrams is not None:
            self.statsd = StatsdPusher(self, self._datagrams)
            self.statsd.start()

    def on_lookupd_addresses_changed(self) -> None:
        """``PUT /config/nsqlookupd_tcp_addresses`` changed the set."""
        if self.lookup is not None:
            self.lookup.set_addresses(self.opts.lookupd_tcp_addresses)

    def on_log_level_changed(self) -> None:
        """``PUT /config/log_level`` stored a new level."""
        if self.log_level_changed is not None:
            self.log_level_changed(self.opts.log_level)

    def _take_over_go_data(self) -> None:
        """Convert a Go nsqd's data directory before any disk queue opens it (``migrate.py``)."""
        if self.fs is not None:
            migrate.take_over(self.fs, self.opts, self.logger, self.version)  # raises MigrationError

    def _load_metadata(self) -> None:
        """Restore the topics and channels of nsqd.dat (their queues recover themselves)."""
        if self.fs is None:
            return
        try:
            loaded = metadata.load(self.fs, self.opts.data_path)
        except OSError as exc:
            self.log("ERROR", f"failed to load metadata - {exc}")
            return
        for problem in loaded.problems:
            self.log("ERROR", f"failed to load metadata - {problem}")
        if loaded.problems or loaded.recovered:
            found = ", ".join(loaded.recovered) or "none"
            self.log("WARNING", f"metadata restored from {loaded.source}; queues found on disk and not listed: {found}")
        self._loading = True
        replayed = False
        try:
            for meta in loaded.topics:
                topic = self.get_topic(meta.name)
                # Held (as paused) while its channels are restored: the first channel to
                # appear would otherwise take the whole backlog, which belongs to every
                # channel (Go starts a topic's pump once all its channels exist).
                topic.paused = True
                topic.set_ttl(meta.ttl_ms * 1_000_000)
                for name, paused in meta.channels:
                    channel = topic.get_channel(name)
                    channel.paused = paused
                    channel.restore_deferred(meta.deferred.get(name, 0))
                    if name in meta.replays:
                        channel.restore_replay(*meta.replays[name])
                        replayed = True
                    if name in meta.dead_letters:
                        channel.set_dead_letter(*meta.dead_letters[name])
                topic.paused = meta.paused
        finally:
            self._loading = False
        if loaded.problems or loaded.recovered or replayed:
            # both copies trusted again; a replay window taken over is not to be taken twice
            self.persist_metadata()
        # Topics with channels hand on what their queues held before the restart.
        for topic in self.topics.values():
            topic.drain()

    def close(self) -> None:
        """Graceful exit: close every client connection, then save and close every topic."""
        if self.closed:
            return
        self.closed = True
        if self.lookup is not None:
            self.lookup.close()
        if self.statsd is not None:
            self.statsd.close()
        for client in list(self.clients.values()):
            client.close()
        self.persist_metadata()
        for topic in list(self.topics.values()):
            topic.close(deleted=False)
        # Again, now that the channels wrote their deferred messages: with their count.
        self.persist_metadata(final=True)


def _port(addr: tuple[str, int]) -> int:
    return 0 if is_unix(addr) else addr[1]
