"""The figures nsqadmin shows: nsqd's ``/stats`` per node, and their sums over nodes.

These are Go's ``clusterinfo`` types (``TopicStats``, ``ChannelStats``,
``ClientStats``, ``Producer``) and ``quantile.E2eProcessingLatencyAggregate``,
read from nsqd's and nsqlookupd's JSON as Go reads it (absent fields are zero,
unknown ones dropped) and written back with the fields in Go's struct order,
so that ``/api/...`` answers have nsqadmin 1.3.0's shapes.  A Go nil slice
is ``None`` here and marshals as ``null``.

One deliberate difference: Go's ``TopicStats.Add`` keeps the *first* node's
channel object as the sum over nodes and adds the other nodes into it, so in
Go's ``/api/topics/:topic`` that node's per-node entry shows the totals and
the channel's ``nodes`` list leaves it out.  Here a topic's channels are fresh
sums (node ``*``) whose ``nodes`` list every node, and per-node entries keep
their own figures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from broker.client.address import join_address
from broker.wire.gojson import JSONValue

__all__ = [
    "ChannelStats",
    "ClientStats",
    "E2ELatency",
    "Producer",
    "TopicStats",
    "parse_version",
]


def _int(obj: Mapping[str, object], key: str) -> int:
    v = obj.get(key)
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return int(v)
    return 0


def _str(obj: Mapping[str, object], key: str) -> str:
    v = obj.get(key)
    return v if isinstance(v, str) else ""


def _bool(obj: Mapping[str, object], key: str) -> bool:
    return obj.get(key) is True


def _objects(obj: Mapping[str, object], key: str) -> list[Mapping[str, object]] | None:
    v = obj.get(key)
    if not isinstance(v, list):
        return None
    return [x for x in v if isinstance(x, dict)]


# -- end-to-end processing latency ----------------------------------------------------


@dataclass(slots=True)
class E2ELatency:
    """``quantile.E2eProcessingLatencyAggregate``: nsqd's percentiles, averaged over nodes."""

    count: int = 0
    percentiles: list[dict[str, float]] | None = None
    topic: str = ""
    channel: str = ""
    host: str = ""

    @classmethod
    def from_nsqd(cls, obj: object) -> E2ELatency:
        if not isinstance(obj, dict):
            return cls()
        count = _int(obj, "count")
        percentiles: list[dict[str, float]] | None = None
        raw = _objects(obj, "percentiles")
        if raw is not None:
            percentiles = []
            for p in raw:
                entry = {k: float(v) for k, v in p.items() if isinstance(v, int | float) and not isinstance(v, bool)}
                value = entry.get("value", 0.0)
                # As Go's UnmarshalJSON: one node's value is its min, max and average.
                entry.update(min=value, max=value, average=value, count=float(count))
                percentiles.append(entry)
        return cls(count, percentiles, _str(obj, "topic"), _str(obj, "channel"), _str(obj, "host"))

    def add(self, other: E2ELatency) -> None:
        """Go's ``Add``, min included: it is taken after max was raised, so it is the last node's max."""
        self.host = "*"
        self.count += other.count
        for value in other.percentiles or ():
            if self.percentiles is None:
                self.percentiles = []
            mine = next((p for p in self.percentiles if p.get("quantile", 0.0) == value.get("quantile", 0.0)), None)
            if mine is None:
                mine = {"quantile": value.get("quantile", 0.0)}
                self.percentiles.append(mine)
            mine["max"] = max(value.get("max", 0.0), mine.get("max", 0.0))
            mine["min"] = min(value.get("max", 0.0), mine["max"])
            mine["count"] = mine.get("count", 0.0) + value.get("count", 0.0)
            if mine["count"] == 0:
                mine["average"] = 0.0
                continue
            delta = value.get("average", 0.0) - mine.get("average", 0.0)
            mine["average"] = mine.get("average", 0.0) + delta * value.get("count", 0.0) / mine["count"]
        # Go sorts by a "percentile" key that no entry has: the order stays as built.

    def to_json(self) -> JSONValue:
        percentiles: JSONValue = None
        if self.percentiles is not None:
            # A Go map marshals with its keys sorted.
            percentiles = [{k: p[k] for k in sorted(p)} for p in self.percentiles]
        return {"count": self.count, "percentiles": percentiles, "topic": self.topic, "channel": self.channel, "host": self.host}


# -- clients, channels, topics --------------------------------------------------------

_CLIENT_STR = ("remote_address", "version", "client_id", "hostname", "user_agent")
_CLIENT_TAIL_STR = ("auth_identity", "auth_identity_url")


@dataclass(slots=True)
class ClientStats:
    """One consumer connection of a channel, as nsqd reports it, with its node and age."""

    node: str
    fields: dict[str, JSONValue]

    @classmethod
    def from_nsqd(cls, obj: Mapping[str, object], node: str, wall_seconds: int) -> ClientStats:
        f: dict[str, JSONValue] = {k: _str(obj, k) for k in _CLIENT_STR}
        connect_ts = _int(obj, "connect_ts")
        f["connect_ts"] = connect_ts
        # Go: time.Now().Truncate(time.Second).Sub(time.Unix(connect_ts, 0)), a Duration in ns.
        f["connected"] = (wall_seconds - connect_ts) * 1_000_000_000
        for k in ("in_flight_count", "ready_count", "finish_count", "requeue_count", "message_count", "sample_rate"):
            f[k] = _int(obj, k)
        for k in ("deflate", "snappy", "authed"):
            f[k] = _bool(obj, k)
        for k in _CLIENT_TAIL_STR:
            f[k] = _str(obj, k)
        f["tls"] = _bool(obj, "tls")
        for k in ("tls_cipher_suite", "tls_version", "tls_negotiated_protocol"):
            f[k] = _str(obj, k)
        f["tls_negotiated_protocol_is_mutual"] = _bool(obj, "tls_negotiated_protocol_is_mutual")
        return cls(node, f)

    @property
    def hostname(self) -> str:
        v = self.fields["hostname"]
        return v if isinstance(v, str) else ""

    def to_json(self) -> JSONValue:
        return {"node": self.node, **self.fields}


_CHANNEL_COUNTS = ("depth", "memory_depth", "backend_depth", "in_flight_count", "deferred_count", "requeue_count", "timeout_count", "message_count")


@dataclass(slots=True)
class ChannelStats:
    node: str = ""
    hostname: str = ""
    topic_name: str = ""
    channel_name: str = ""
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_CHANNEL_COUNTS, 0))
    client_count: int = 0
    nodes: list[ChannelStats] | None = None
    clients: list[ClientStats] | None = None
    paused: bool = False
    e2e: E2ELatency = field(default_factory=E2ELatency)

    @classmethod
    def from_nsqd(cls, obj: Mapping[str, object], node: str, hostname: str, topic: str, wall_seconds: int) -> ChannelStats:
        counts = {k: _int(obj, k) for k in _CHANNEL_COUNTS}
        counts["memory_depth"] = counts["depth"] - counts["backend_depth"]
        raw_clients = _objects(obj, "clients")
        clients = None if raw_clients is None else [ClientStats.from_nsqd(c, node, wall_seconds) for c in raw_clients]
        return cls(
            node, hostname, topic, _str(obj, "channel_name"), counts, _int(obj, "client_count"),
            None, clients, _bool(obj, "paused"), E2ELatency.from_nsqd(obj.get("e2e_processing_latency")),
        )

    @classmethod
    def total(cls, topic: str, channel: str) -> ChannelStats:
        """An empty sum, to ``add`` nodes into (Go starts it with the first node's address; ``add`` makes it ``*``)."""
        return cls(node="*", topic_name=topic, channel_name=channel, e2e=E2ELatency(topic=topic, channel=channel, host="*"))

    def add(self, a: ChannelStats) -> None:
        self.node = "*"
        for k in _CHANNEL_COUNTS:
            self.counts[k] += a.counts[k]
        self.client_count += a.client_count
        self.paused = self.paused or a.paused
        self.nodes = sorted([*(self.nodes or ()), a], key=lambda c: c.hostname)
        self.e2e.add(a.e2e)
        if a.clients:
            self.clients = sorted([*(self.clients or ()), *a.clients], key=lambda c: c.hostname)

    def to_json(self) -> JSONValue:
        return {
            "node": self.node,
            "hostname": self.hostname,
            "topic_name": self.topic_name,
            "channel_name": self.channel_name,
            **self.counts,
            "client_count": self.client_count,
            "nodes": None if self.nodes is None else [n.to_json() for n in self.nodes],
            "clients": None if self.clients is None else [c.to_json() for c in self.clients],
            "paused": self.paused,
            "e2e_processing_latency": self.e2e.to_json(),
        }


@dataclass(slots=True)
class TopicStats:
    node: str = ""
    hostname: str = ""
    topic_name: str = ""
    depth: int = 0
    memory_depth: int = 0
    backend_depth: int = 0
    message_count: int = 0
    nodes: list[TopicStats] | None = None
    channels: list[ChannelStats] | None = None
    paused: bool = False
    e2e: E2ELatency = field(default_factory=E2ELatency)

    @classmethod
    def from_nsqd(cls, obj: Mapping[str, object], node: str, hostname: str, wall_seconds: int) -> TopicStats:
        name = _str(obj, "topic_name")
        raw = _objects(obj, "channels")
        channels = None if raw is None else [ChannelStats.from_nsqd(c, node, hostname, name, wall_seconds) for c in raw]
        depth, backend = _int(obj, "depth"), _int(obj, "backend_depth")
        return cls(
            node, hostname, name, depth, depth - backend, backend, _int(obj, "message_count"),
            None, channels, _bool(obj, "paused"), E2ELatency.from_nsqd(obj.get("e2e_processing_latency")),
        )

    @classmethod
    def total(cls, topic: str) -> TopicStats:
        return cls(node="*", topic_name=topic, e2e=E2ELatency(topic=topic, host="*"))

    def add(self, a: TopicStats) -> None:
        self.node = "*"
        self.depth += a.depth
        self.memory_depth += a.memory_depth
        self.backend_depth += a.backend_depth
        self.message_count += a.message_count
        self.paused = self.paused or a.paused
        for channel in a.channels or ():
            if self.channels is None:
                self.channels = []
            mine = next((c for c in self.channels if c.channel_name == channel.channel_name), None)
            if mine is None:
                mine = ChannelStats.total(self.topic_name, channel.channel_name)
                self.channels.append(mine)
            mine.add(channel)
        self.nodes = sorted([*(self.nodes or ()), a], key=lambda t: t.hostname)
        self.e2e.add(a.e2e)

    def to_json(self) -> JSONValue:
        return {
            "node": self.node,
            "hostname": self.hostname,
            "topic_name": self.topic_name,
            "depth": self.depth,
            "memory_depth": self.memory_depth,
            "backend_depth": self.backend_depth,
            "message_count": self.message_count,
            "nodes": None if self.nodes is None else [n.to_json() for n in self.nodes],
            "channels": None if self.channels is None else [c.to_json() for c in self.channels],
            "paused": self.paused,
            "e2e_processing_latency": self.e2e.to_json(),
        }


# -- producers (nsqd nodes) -------------------------------------------------------------


def parse_version(text: str) -> tuple[int, int, int, int, str]:
    """A semantic version as a sortable key; what does not parse is 0.0.0, as Go's nsqadmin takes it."""
    core, _, pre = text.partition("-")
    core = core.partition("+")[0]
    parts = core.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return (0, 0, 0, 1, "")
    major, minor, patch = (int(p) for p in parts)
    # A pre-release sorts before its release.
    return (major, minor, patch, 0 if pre else 1, pre)


@dataclass(slots=True)
class Producer:
    """An nsqd node, as nsqlookupd lists it (or as its own ``/info`` describes it)."""

    remote_addresses: list[str] | None = None
    remote_address: str = ""
    hostname: str = ""
    broadcast_address: str = ""
    tcp_port: int = 0
    http_port: int = 0
    version: str = ""
    topics: list[tuple[str, bool]] | None = None  # (topic, tombstoned)
    out_of_date: bool = False

    @classmethod
    def from_lookupd(cls, obj: Mapping[str, object]) -> Producer:
        topics = obj.get("topics")
        tombstones = obj.get("tombstones")
        pairs: list[tuple[str, bool]] | None = None
        if isinstance(topics, list) and topics:
            marks = tombstones if isinstance(tombstones, list) else []
            pairs = [(str(t), i < len(marks) and marks[i] is True) for i, t in enumerate(topics)]
        return cls(
            None, _str(obj, "remote_address"), _str(obj, "hostname"), _str(obj, "broadcast_address"),
            _int(obj, "tcp_port"), _int(obj, "http_port"), _str(obj, "version"), pairs,
        )

    @property
    def http_address(self) -> str:
        return join_address(self.broadcast_address, self.http_port)

    @property
    def tcp_address(self) -> str:
        return join_address(self.broadcast_address, self.tcp_port)

    @property
    def address(self) -> str:
        return self.remote_address or "N/A"

    @property
    def version_key(self) -> tuple[int, int, int, int, str]:
        return parse_version(self.version)

    def to_json(self) -> JSONValue:
        return {
            "remote_addresses": None if self.remote_addresses is None else list(self.remote_addresses),
            "remote_address": self.remote_address,
            "hostname": self.hostname,
            "broadcast_address": self.broadcast_address,
            "tcp_port": self.tcp_port,
            "http_port": self.http_port,
            "version": self.version,
            "topics": None if self.topics is None else [{"topic": t, "tombstoned": ts} for t, ts in self.topics],
            "out_of_date": self.out_of_date,
        }
