"""A simulated cluster, as data: nodes, workload, network, faults and how long to run.

A configuration is a TOML file (see ``examples/`` and ``docs/nsqsim.md``)::

    name = "small"
    duration = 20.0          # seconds of load (producers publishing, faults firing)
    drain = 30.0             # then: faults ended, consumers keep consuming this long

    [network]
    latency = {kind = "uniform", low = 0.0002, high = 0.002}
    bandwidth = 125_000_000  # bytes/s per direction per pair of hosts

    [nsqd]
    count = 2
    options = {mem_queue_size = 10000, msg_timeout = "10s"}   # nsqd's config-file names
    [nsqd.nodes.nsqd-1]
    mem_queue_size = 100                                        # per-node overrides

    [lookupd]
    count = 1

    [[producers]]
    name = "p"
    count = 2
    rate = 100.0             # messages per second, each
    size = {kind = "uniform", low = 64, high = 512}
    nsqd = ["nsqd-0", "nsqd-1"]   # producer i publishes to nsqd[i % len]

    [[consumers]]
    name = "c"
    channel = "archive"
    count = 2
    behaviour = {finish = 0.97, requeue = 0.02, timeout = 0.005, crash = 0.005}

    [faults]
    enabled = true

Durations are seconds (a number) or Go durations (``"250ms"``); a
distribution is a number (fixed) or a ``Dist`` table.  nsqd and nsqlookupd
options use the daemons' own config-file names and value syntax, so a block
can be pasted from a real ``--config`` file.  Unknown keys are errors: a typo
must not silently run a different experiment.

Hosts are named by role: ``nsqd-0``…, ``lookupd-0``…, and ``<name>-<i>`` for
the producers and consumers of each block (and ``auth-0`` when ``[security]``
has ``auth``: TLS, compression and AUTH are ``nsqsim.security``'s).
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from broker.apps.goflags import Parsed
from broker.apps.nsqd import flag_set as nsqd_flag_set
from broker.apps.nsqlookupd import flag_set as lookupd_flag_set
from broker.lookupd.options import LookupdOptions
from broker.lookupd.options import spec_by_cfg_name as lookupd_spec
from broker.nsqd.options import Options
from broker.nsqd.options import spec_by_cfg_name as nsqd_spec
from nsqsim.dist import Dist
from nsqsim.nemesis import FaultModel, parse_fault_model
from nsqsim.network import DEFAULT_WINDOW, LinkProfile
from nsqsim.security import COMPRESSIONS, SecurityConfig
from nsqsim.toml_table import ConfigError, Table

__all__ = [
    "NSQD_HTTP_PORT",
    "NSQD_TCP_PORT",
    "Behaviour",
    "ClusterConfig",
    "ConfigError",
    "ConsumerConfig",
    "LookupdConfig",
    "NetworkConfig",
    "NsqdConfig",
    "ProducerConfig",
    "load_config",
    "parse_config",
]

NSQD_TCP_PORT = 4150
NSQD_HTTP_PORT = 4151
LOOKUPD_TCP_PORT = 4160
LOOKUPD_HTTP_PORT = 4161


_LAN_LATENCY = Dist("uniform", low=0.0002, high=0.002)
_SIZE = Dist.fixed(256)
_DEFER = Dist.fixed(1.0)
_HANDLER_TIME = Dist("exponential", mean=0.002)
_NO_DELAY = Dist.fixed(0.0)
_NO_FAULTS = FaultModel()


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    latency: Dist = _LAN_LATENCY
    bandwidth: float = 125_000_000.0
    window: int = DEFAULT_WINDOW
    syn_timeout: float = 127.0

    def link(self) -> LinkProfile:
        return LinkProfile(self.latency, self.bandwidth)


@dataclass(frozen=True, slots=True)
class NsqdConfig:
    count: int = 1
    options: Mapping[str, object] = field(default_factory=dict)
    nodes: Mapping[str, Mapping[str, object]] = field(default_factory=dict)

    def hosts(self) -> list[str]:
        return [f"nsqd-{i}" for i in range(self.count)]

    def options_for(self, index: int, lookupd_addresses: list[str]) -> Options:
        """The node's options: the simulator's addresses, then the config's options."""
        host = f"nsqd-{index}"
        merged = {**self.options, **self.nodes.get(host, {})}
        opts = nsqd_flag_set(host).resolve(Parsed(), merged)
        return opts.replace(
            node_id=index,
            tcp_address=f"{host}:{NSQD_TCP_PORT}",
            http_address=f"{host}:{NSQD_HTTP_PORT}",
            broadcast_address=host,
            data_path=f"/data/{host}",
            lookupd_tcp_addresses=list(merged.get("nsqlookupd_tcp_addresses", lookupd_addresses)),  # type: ignore[call-overload]
        )


@dataclass(frozen=True, slots=True)
class LookupdConfig:
    count: int = 1
    options: Mapping[str, object] = field(default_factory=dict)

    def hosts(self) -> list[str]:
        return [f"lookupd-{i}" for i in range(self.count)]

    def options_for(self, index: int) -> LookupdOptions:
        host = f"lookupd-{index}"
        opts = lookupd_flag_set(host).resolve(Parsed(), self.options)
        return opts.replace(
            tcp_address=f"{host}:{LOOKUPD_TCP_PORT}",
            http_address=f"{host}:{LOOKUPD_HTTP_PORT}",
            broadcast_address=host,
        )

    def tcp_addresses(self) -> list[str]:
        return [f"{h}:{LOOKUPD_TCP_PORT}" for h in self.hosts()]


@dataclass(frozen=True, slots=True)
class ProducerConfig:
    name: str = "producer"
    count: int = 1
    topic: str = "events"
    rate: float = 100.0  # messages per second, per producer
    arrival: Literal["poisson", "fixed"] = "poisson"
    size: Dist = _SIZE
    nsqd: tuple[str, ...] = ("nsqd-0",)
    batch: int = 1  # messages per publish: 1 is PUB (or DPUB), more is MPUB
    defer_fraction: float = 0.0  # share of messages sent with DPUB (only when batch is 1)
    defer: Dist = _DEFER  # seconds of DPUB delay
    max_outstanding: int = 1000  # unanswered publishes before new ones fail
    reconnect_delay: float = 1.0  # the client's first pause between failed connects
    max_reconnect_delay: float = 8.0  # ... doubling up to this
    read_timeout: float = 60.0  # go-nsq's default ReadTimeout
    heartbeat_interval: float = 30.0
    ttl: float = 0.0  # beyond nsqd: the topic's message TTL in seconds, set by an operator at start; 0: none

    def hosts(self) -> list[str]:
        return [f"{self.name}-{i}" for i in range(self.count)]


@dataclass(frozen=True, slots=True)
class Behaviour:
    """What a consumer's handler does with a message, by relative weight."""

    finish: float = 1.0
    requeue: float = 0.0
    timeout: float = 0.0  # never answer: nsqd times it out
    crash: float = 0.0  # the consumer process dies while handling it

    def weights(self) -> list[float]:
        return [self.finish, self.requeue, self.timeout, self.crash]


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    name: str = "consumer"
    count: int = 1
    topic: str = "events"
    channel: str = "archive"
    max_in_flight: int = 50
    discovery: Literal["lookupd", "direct"] = "lookupd"
    nsqd: tuple[str, ...] = ()  # for direct discovery; empty: every nsqd
    behaviour: Behaviour = Behaviour()
    handler_time: Dist = _HANDLER_TIME
    handler_tick: float = 0.001  # handlers finishing within one tick answer together
    requeue_delay: Dist = _NO_DELAY  # seconds; sent as REQ's timeout
    requeue_backoff: bool = False  # a requeue also backs the consumer off (go-nsq's handler error)
    max_attempts: int = 0  # deliveries before the client gives a message up; 0: never
    msg_timeout: float = 0.0  # IDENTIFY msg_timeout; 0: nsqd's --msg-timeout
    heartbeat_interval: float = 5.0
    lookup_interval: float = 5.0
    lookup_timeout: float = 5.0  # bounds one /lookup request
    reconnect_delay: float = 1.0
    max_reconnect_delay: float = 8.0
    restart_after: float = 2.0  # a crashed consumer process comes back after this
    # Beyond nsqd: the channel's server-side max attempts and dead-letter topic, set by an
    # operator before the load (0: none); and whether this consumer reads dead-letter envelopes.
    dead_letter_attempts: int = 0
    dead_letter_topic: str = ""
    envelopes: bool = False

    def hosts(self) -> list[str]:
        return [f"{self.name}-{i}" for i in range(self.count)]


_NO_SECURITY = SecurityConfig()


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    name: str = "cluster"
    duration: float = 20.0
    drain: float = 30.0
    warmup: float = 1.0  # consumers subscribe before producers start
    network: NetworkConfig = NetworkConfig()
    nsqd: NsqdConfig = NsqdConfig()
    lookupd: LookupdConfig = LookupdConfig()
    producers: tuple[ProducerConfig, ...] = (ProducerConfig(),)
    consumers: tuple[ConsumerConfig, ...] = (ConsumerConfig(),)
    faults: FaultModel = _NO_FAULTS
    security: SecurityConfig = _NO_SECURITY
    source: str = ""  # the TOML text it came from, for the digest

    def digest(self) -> str:
        """A short hash naming this configuration in histories and summaries."""
        text = self.source or json.dumps(repr(self))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def hosts(self) -> list[str]:
        out = self.nsqd.hosts() + self.lookupd.hosts() + self.security.auth_hosts()
        for p in self.producers:
            out += p.hosts()
        for c in self.consumers:
            out += c.hosts()
        return out

    def topic_ttls(self) -> dict[str, float]:
        """The TTL an operator gives each topic before the load (beyond nsqd), from its producers."""
        return {p.topic: p.ttl for p in self.producers if p.ttl > 0}


# -- reading ----------------------------------------------------------------------------


def load_config(path: str) -> ClusterConfig:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    text = raw.decode("utf-8")
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return parse_config(table, source=text)


def parse_config(table: Mapping[str, object], source: str = "") -> ClusterConfig:
    t = Table(table, "top level")
    cfg = ClusterConfig(
        name=t.text("name", "cluster"),
        duration=t.seconds("duration", 20.0),
        drain=t.seconds("drain", 30.0),
        warmup=t.seconds("warmup", 1.0),
        network=_network(t.table("network")),
        nsqd=_nsqd(t.table("nsqd")),
        lookupd=_lookupd(t.table("lookupd")),
        producers=tuple(_producer(x, i) for i, x in enumerate(t.tables("producers"))),
        consumers=tuple(_consumer(x, i) for i, x in enumerate(t.tables("consumers"))),
        faults=_faults(t.raw("faults")),
        security=_security(t.table("security")),
        source=source,
    )
    t.done()
    _validate(cfg)
    return cfg


def _faults(raw: object) -> FaultModel:
    if raw is None:
        return FaultModel()
    if not isinstance(raw, dict):
        raise ConfigError("[faults] must be a table")
    try:
        return parse_fault_model(raw)
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(str(exc)) from None


def _network(t: Table) -> NetworkConfig:
    d = NetworkConfig()
    cfg = NetworkConfig(
        latency=t.dist("latency", d.latency),
        bandwidth=t.number("bandwidth", d.bandwidth),
        window=t.integer("window", d.window),
        syn_timeout=t.seconds("syn_timeout", d.syn_timeout),
    )
    t.done()
    return cfg


def _nsqd(t: Table) -> NsqdConfig:
    count = t.integer("count", 1)
    options = t.mapping("options")
    nodes_raw = t.mapping("nodes")
    t.done()
    _check_options(options, "[nsqd] options", lambda k: nsqd_spec(k) is not None)
    nodes: dict[str, Mapping[str, object]] = {}
    for host, opts in nodes_raw.items():
        if not isinstance(opts, dict):
            raise ConfigError(f"[nsqd.nodes.{host}] must be a table")
        _check_options(opts, f"[nsqd.nodes.{host}]", lambda k: nsqd_spec(k) is not None)
        nodes[host] = opts
    cfg = NsqdConfig(count=count, options=options, nodes=nodes)
    for host in nodes:
        if host not in cfg.hosts():
            raise ConfigError(f"[nsqd.nodes.{host}]: no such node (nsqd-0 .. nsqd-{cfg.count - 1})")
    try:
        for i in range(cfg.count):
            cfg.options_for(i, [])
    except Exception as exc:
        raise ConfigError(f"[nsqd] options: {exc}") from None
    return cfg


def _security(t: Table) -> SecurityConfig:
    cfg = SecurityConfig(
        tls=t.boolean("tls", False),
        tls_required=t.boolean("tls_required", False),
        compression=t.text("compression", "none"),
        auth=t.boolean("auth", False),
        auth_ttl=t.seconds("auth_ttl", 10.0),
    )
    t.done()
    if cfg.compression not in COMPRESSIONS:
        raise ConfigError(f"[security] compression must be one of {', '.join(COMPRESSIONS)}")
    if cfg.tls_required and not cfg.tls:
        raise ConfigError("[security] tls_required needs tls")
    if cfg.auth_ttl < 1:
        raise ConfigError("[security] auth_ttl must be at least 1s (the auth server answers whole seconds)")
    return cfg


def _lookupd(t: Table) -> LookupdConfig:
    options = t.mapping("options")
    count = t.integer("count", 1)
    t.done()
    _check_options(options, "[lookupd] options", lambda k: lookupd_spec(k) is not None)
    cfg = LookupdConfig(count=count, options=options)
    try:
        for i in range(count):
            cfg.options_for(i)
    except Exception as exc:
        raise ConfigError(f"[lookupd] options: {exc}") from None
    return cfg


def _producer(raw: object, i: int) -> ProducerConfig:
    t = Table(raw, f"[[producers]] #{i}")
    d = ProducerConfig()
    arrival = t.text("arrival", d.arrival)
    if arrival not in ("poisson", "fixed"):
        raise ConfigError(f"[[producers]] #{i}: arrival must be poisson or fixed")
    cfg = ProducerConfig(
        name=t.text("name", f"producer{i}" if i else "producer"),
        count=t.integer("count", d.count),
        topic=t.text("topic", d.topic),
        rate=t.number("rate", d.rate),
        arrival=arrival,  # type: ignore[arg-type]
        size=t.dist("size", d.size),
        nsqd=tuple(t.strings("nsqd", list(d.nsqd))),
        batch=t.integer("batch", d.batch),
        defer_fraction=t.number("defer_fraction", d.defer_fraction),
        defer=t.dist("defer", d.defer),
        max_outstanding=t.integer("max_outstanding", d.max_outstanding),
        reconnect_delay=t.seconds("reconnect_delay", d.reconnect_delay),
        max_reconnect_delay=t.seconds("max_reconnect_delay", d.max_reconnect_delay),
        read_timeout=t.seconds("read_timeout", d.read_timeout),
        heartbeat_interval=t.seconds("heartbeat_interval", d.heartbeat_interval),
        ttl=t.seconds("ttl", d.ttl),
    )
    t.done()
    if cfg.ttl < 0:
        raise ConfigError(f"[[producers]] #{i}: ttl must be >= 0")
    return cfg


def _consumer(raw: object, i: int) -> ConsumerConfig:
    t = Table(raw, f"[[consumers]] #{i}")
    d = ConsumerConfig()
    discovery = t.text("discovery", d.discovery)
    if discovery not in ("lookupd", "direct"):
        raise ConfigError(f"[[consumers]] #{i}: discovery must be lookupd or direct")
    b = t.table("behaviour")
    behaviour = Behaviour(
        finish=b.number("finish", 1.0 if not b.has_any() else 0.0),
        requeue=b.number("requeue", 0.0),
        timeout=b.number("timeout", 0.0),
        crash=b.number("crash", 0.0),
    )
    b.done()
    if sum(behaviour.weights()) <= 0 or min(behaviour.weights()) < 0:
        raise ConfigError(f"[[consumers]] #{i}: behaviour weights must be >= 0 and not all 0")
    dl = t.table("dead_letter")
    dead_letter_attempts = dl.integer("max_attempts", 0)
    dead_letter_topic = dl.text("topic", "")
    dl.done()
    if dead_letter_attempts < 0 or bool(dead_letter_attempts) != bool(dead_letter_topic):
        raise ConfigError(f"[[consumers]] #{i}: dead_letter needs max_attempts >= 1 and a topic")
    cfg = ConsumerConfig(
        name=t.text("name", f"consumer{i}" if i else "consumer"),
        count=t.integer("count", d.count),
        topic=t.text("topic", d.topic),
        channel=t.text("channel", d.channel),
        max_in_flight=t.integer("max_in_flight", d.max_in_flight),
        discovery=discovery,  # type: ignore[arg-type]
        nsqd=tuple(t.strings("nsqd", list(d.nsqd))),
        behaviour=behaviour,
        handler_time=t.dist("handler_time", d.handler_time),
        handler_tick=t.seconds("handler_tick", d.handler_tick),
        requeue_delay=t.dist("requeue_delay", d.requeue_delay),
        requeue_backoff=t.boolean("requeue_backoff", d.requeue_backoff),
        max_attempts=t.integer("max_attempts", d.max_attempts),
        msg_timeout=t.seconds("msg_timeout", d.msg_timeout),
        heartbeat_interval=t.seconds("heartbeat_interval", d.heartbeat_interval),
        lookup_interval=t.seconds("lookup_interval", d.lookup_interval),
        lookup_timeout=t.seconds("lookup_timeout", d.lookup_timeout),
        reconnect_delay=t.seconds("reconnect_delay", d.reconnect_delay),
        max_reconnect_delay=t.seconds("max_reconnect_delay", d.max_reconnect_delay),
        restart_after=t.seconds("restart_after", d.restart_after),
        dead_letter_attempts=dead_letter_attempts,
        dead_letter_topic=dead_letter_topic,
        envelopes=t.boolean("envelopes", d.envelopes),
    )
    t.done()
    return cfg


def _check_options(options: Mapping[str, object], where: str, known: object) -> None:
    assert callable(known)
    unknown = sorted(k for k in options if not known(k))
    if unknown:
        raise ConfigError(f"{where}: unknown options {unknown}")


def _validate(cfg: ClusterConfig) -> None:
    ttls = cfg.topic_ttls()
    for p in cfg.producers:
        if p.topic in ttls and p.ttl != ttls[p.topic]:
            raise ConfigError(f"producers of topic {p.topic} give it different ttls")
    if cfg.duration <= 0 or cfg.drain < 0:
        raise ConfigError("duration must be > 0 and drain >= 0")
    if cfg.nsqd.count < 1:
        raise ConfigError("[nsqd] count must be at least 1")
    nsqd_hosts = set(cfg.nsqd.hosts())
    names: set[str] = set()
    for p in cfg.producers:
        for host in p.nsqd:
            if host not in nsqd_hosts:
                raise ConfigError(f"[[producers]] {p.name}: no such nsqd {host!r}")
        if p.rate <= 0 or p.count < 0 or p.batch < 1:
            raise ConfigError(f"[[producers]] {p.name}: rate must be > 0, count >= 0 and batch >= 1")
        if not 0 < p.heartbeat_interval < p.read_timeout:
            raise ConfigError(f"[[producers]] {p.name}: heartbeat_interval must be positive and below read_timeout")
        _check_reconnect(f"[[producers]] {p.name}", p.reconnect_delay, p.max_reconnect_delay)
        if p.name in names:
            raise ConfigError(f"two blocks are named {p.name!r}")
        names.add(p.name)
    for c in cfg.consumers:
        for host in c.nsqd:
            if host not in nsqd_hosts:
                raise ConfigError(f"[[consumers]] {c.name}: no such nsqd {host!r}")
        if c.discovery == "lookupd" and cfg.lookupd.count < 1:
            raise ConfigError(f"[[consumers]] {c.name}: lookupd discovery needs a [lookupd] count >= 1")
        if c.max_in_flight < 1:
            raise ConfigError(f"[[consumers]] {c.name}: max_in_flight must be at least 1")
        if not 0 <= c.max_attempts <= 65535:
            raise ConfigError(f"[[consumers]] {c.name}: max_attempts must be within 0-65535")
        if c.heartbeat_interval <= 0 or c.lookup_interval <= 0 or c.lookup_timeout <= 0:
            raise ConfigError(f"[[consumers]] {c.name}: heartbeat_interval, lookup_interval and lookup_timeout must be positive")
        _check_reconnect(f"[[consumers]] {c.name}", c.reconnect_delay, c.max_reconnect_delay)
        if c.name in names:
            raise ConfigError(f"two blocks are named {c.name!r}")
        names.add(c.name)


def _check_reconnect(where: str, delay: float, most: float) -> None:
    if not 0 < delay <= most:
        raise ConfigError(f"{where}: reconnect_delay must be positive and at most max_reconnect_delay")
