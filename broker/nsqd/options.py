"""nsqd's options: every Go nsqd flag, its config-file name, type and default.

One table (``FLAGS``) drives the command line parser, the ``--config`` TOML
file, ``GET/PUT /config/:opt`` and the docs, so a flag is described once.

Durations are held as float seconds here; on the wire (``/config``, IDENTIFY)
they are converted to the units nsqd uses there.  ``implemented`` says whether
the flag changes behaviour yet; an unimplemented flag is accepted, stored and
reported, and documented as such in the README.  At start the daemon reads the
markers: an unimplemented flag set to anything but its default is a warning,
or, if it is one of ``SECURITY_FLAGS``, a refusal to start (it fails closed),
so flipping a marker to ``implemented=True`` is all it takes to accept it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["FLAGS", "SECURITY_FLAGS", "FlagSpec", "Kind", "Options", "spec_by_cfg_name", "spec_by_flag"]

Kind = Literal["str", "int", "bool", "duration", "float", "str_list", "float_list"]


@dataclass(frozen=True, slots=True)
class FlagSpec:
    flag: str  # command-line name, without dashes
    attr: str  # attribute of Options
    kind: Kind
    help: str
    cfg: str = ""  # config-file / /config name; default: flag with '-' -> '_'
    implemented: bool = True
    deprecated_aliases: tuple[str, ...] = ()

    @property
    def cfg_name(self) -> str:
        return self.cfg or self.flag.replace("-", "_")


@dataclass(slots=True)
class Options:
    """The nsqd configuration, with Go nsqd 1.3.0's defaults."""

    # basic
    node_id: int = -1  # -1: derive from the hostname, as nsqd does (hash % 1024)
    log_level: str = "info"
    log_prefix: str = "[nsqd] "
    verbose: bool = False
    tcp_address: str = "0.0.0.0:4150"
    http_address: str = "0.0.0.0:4151"
    https_address: str = "0.0.0.0:4152"
    broadcast_address: str = ""  # empty: the hostname
    broadcast_tcp_port: int = 0
    broadcast_http_port: int = 0
    lookupd_tcp_addresses: list[str] = field(default_factory=list)
    auth_http_addresses: list[str] = field(default_factory=list)
    auth_http_request_method: str = "get"
    http_client_connect_timeout: float = 2.0
    http_client_request_timeout: float = 5.0

    # disk queue
    data_path: str = ""  # empty: the current directory
    mem_queue_size: int = 10000
    max_bytes_per_file: int = 104857600
    sync_every: int = 2500
    sync_timeout: float = 2.0
    # beyond nsqd: acknowledge a publish only once it is fsynced; bound a queue's disk use
    durable_publish: bool = False
    max_disk_bytes_per_queue: int = 0

    queue_scan_interval: float = 0.1
    queue_scan_refresh_interval: float = 5.0
    queue_scan_selection_count: int = 20
    queue_scan_worker_pool_max: int = 4
    queue_scan_dirty_percent: float = 0.25

    # msg and command
    msg_timeout: float = 60.0
    max_msg_timeout: float = 15 * 60.0
    max_msg_size: int = 1024 * 1024
    max_body_size: int = 5 * 1024 * 1024
    max_req_timeout: float = 3600.0
    client_timeout: float = 60.0

    # client overridable configuration
    max_heartbeat_interval: float = 60.0
    max_rdy_count: int = 2500
    max_output_buffer_size: int = 64 * 1024
    max_output_buffer_timeout: float = 30.0
    min_output_buffer_timeout: float = 0.025
    output_buffer_timeout: float = 0.25
    max_channel_consumers: int = 0

    # statsd integration
    statsd_address: str = ""
    statsd_prefix: str = "nsq.%s"
    statsd_interval: float = 60.0
    statsd_mem_stats: bool = True
    statsd_udp_packet_size: int = 508
    statsd_exclude_ephemeral: bool = False

    # e2e message latency
    e2e_processing_latency_window_time: float = 600.0
    e2e_processing_latency_percentiles: list[float] = field(default_factory=list)

    # TLS config
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_auth_policy: str = ""
    tls_root_ca_file: str = ""
    tls_required: str = "false"
    tls_min_version: str = "tls1.0"

    # compression
    deflate: bool = True
    max_deflate_level: int = 6
    snappy: bool = True

    def replace(self, **changes: object) -> Options:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def _f(
    flag: str,
    attr: str,
    kind: Kind,
    help: str,
    cfg: str = "",
    implemented: bool = True,
    aliases: tuple[str, ...] = (),
) -> FlagSpec:
    return FlagSpec(flag, attr, kind, help, cfg, implemented, aliases)


FLAGS: tuple[FlagSpec, ...] = (
    _f("node-id", "node_id", "int", "unique part of message ids, 0-1023 (default: a hash of the hostname)", cfg="id"),
    _f("log-level", "log_level", "str", "log level: debug, info, warn, error or fatal"),
    _f("log-prefix", "log_prefix", "str", "prefix of every log line"),
    _f("verbose", "verbose", "bool", "deprecated: use --log-level=debug"),
    _f("tcp-address", "tcp_address", "str", "address to listen on for TCP clients (<addr>:<port> for TCP/IP or <path> for unix socket)"),
    _f("http-address", "http_address", "str", "address to listen on for HTTP clients (<addr>:<port> for TCP/IP or <path> for unix socket)"),
    _f("https-address", "https_address", "str", "<addr>:<port> to listen on for HTTPS clients"),
    _f("broadcast-address", "broadcast_address", "str", "address announced to nsqlookupd (default: the hostname)"),
    _f("broadcast-tcp-port", "broadcast_tcp_port", "int", "TCP port announced to nsqlookupd (0: the listening port)"),
    _f("broadcast-http-port", "broadcast_http_port", "int", "HTTP port announced to nsqlookupd (0: the listening port)"),
    _f("lookupd-tcp-address", "lookupd_tcp_addresses", "str_list", "nsqlookupd TCP address (repeatable; a path with a '/' for a unix socket)", cfg="nsqlookupd_tcp_addresses"),
    _f("auth-http-address", "auth_http_addresses", "str_list", "<addr>:<port> of an auth server (repeatable)", cfg="auth_http_addresses"),
    _f("auth-http-request-method", "auth_http_request_method", "str", "(nsqd 1.3.1+) how to ask the auth server: get or post"),
    _f("http-client-connect-timeout", "http_client_connect_timeout", "duration", "timeout for HTTP connect"),
    _f("http-client-request-timeout", "http_client_request_timeout", "duration", "timeout for HTTP request"),
    _f("data-path", "data_path", "str", "directory of disk-backed messages (default: the current directory)"),
    _f("mem-queue-size", "mem_queue_size", "int", "messages kept in memory per topic and per channel"),
    _f("max-bytes-per-file", "max_bytes_per_file", "int", "bytes per disk queue file before rolling"),
    _f("sync-every", "sync_every", "int", "messages per disk queue fsync"),
    _f("sync-timeout", "sync_timeout", "duration", "longest time between disk queue fsyncs"),
    _f("durable-publish", "durable_publish", "bool", "(beyond nsqd) answer PUB/MPUB/DPUB only after the fsync that covers the message; durable topics and channels then keep every message on disk"),
    _f("max-disk-bytes-per-queue", "max_disk_bytes_per_queue", "int", "(beyond nsqd) most bytes one topic's or channel's disk queue may hold; past it publishes are refused (0: unlimited)"),
    _f("queue-scan-interval", "queue_scan_interval", "duration", "accepted for compatibility: timers replace the queue scan loop"),
    _f("queue-scan-refresh-interval", "queue_scan_refresh_interval", "duration", "accepted for compatibility: timers replace the queue scan loop"),
    _f("queue-scan-selection-count", "queue_scan_selection_count", "int", "accepted for compatibility: timers replace the queue scan loop"),
    _f("queue-scan-worker-pool-max", "queue_scan_worker_pool_max", "int", "accepted for compatibility: timers replace the queue scan loop"),
    _f("queue-scan-dirty-percent", "queue_scan_dirty_percent", "float", "accepted for compatibility: timers replace the queue scan loop"),
    _f("msg-timeout", "msg_timeout", "duration", "default time a message may be in flight before it is requeued"),
    _f("max-msg-timeout", "max_msg_timeout", "duration", "largest msg_timeout a client may ask for"),
    _f("max-msg-size", "max_msg_size", "int", "largest message body in bytes", aliases=("max-message-size",)),
    _f("max-body-size", "max_body_size", "int", "largest command body in bytes"),
    _f("max-req-timeout", "max_req_timeout", "duration", "largest requeue or defer delay"),
    _f("max-heartbeat-interval", "max_heartbeat_interval", "duration", "largest heartbeat interval a client may ask for"),
    _f("max-rdy-count", "max_rdy_count", "int", "largest RDY count a client may send"),
    _f("max-output-buffer-size", "max_output_buffer_size", "int", "largest output buffer a client may ask for, in bytes"),
    _f("max-output-buffer-timeout", "max_output_buffer_timeout", "duration", "longest output buffer timeout a client may ask for"),
    _f("min-output-buffer-timeout", "min_output_buffer_timeout", "duration", "shortest output buffer timeout a client may ask for"),
    _f("output-buffer-timeout", "output_buffer_timeout", "duration", "default time between flushes to a client"),
    _f("max-channel-consumers", "max_channel_consumers", "int", "most consumers per channel (0: unlimited)"),
    _f("statsd-address", "statsd_address", "str", "UDP <addr>:<port> of a statsd daemon"),
    _f("statsd-prefix", "statsd_prefix", "str", "prefix of statsd keys (%s: the broadcast address)"),
    _f("statsd-interval", "statsd_interval", "duration", "time between pushes to statsd"),
    _f("statsd-mem-stats", "statsd_mem_stats", "bool", "push memory stats to statsd"),
    _f("statsd-udp-packet-size", "statsd_udp_packet_size", "int", "largest statsd UDP packet"),
    _f("statsd-exclude-ephemeral", "statsd_exclude_ephemeral", "bool", "leave ephemeral topics and channels out of statsd"),
    _f("e2e-processing-latency-window-time", "e2e_processing_latency_window_time", "duration", "window of the end-to-end latency percentiles"),
    _f("e2e-processing-latency-percentile", "e2e_processing_latency_percentiles", "float_list", "end-to-end latency percentile to report (repeatable or comma list)", cfg="e2e_processing_latency_percentiles"),
    _f("tls-cert", "tls_cert", "str", "path to a certificate file"),
    _f("tls-key", "tls_key", "str", "path to a key file"),
    _f("tls-client-auth-policy", "tls_client_auth_policy", "str", "client certificate policy: require or require-verify"),
    _f("tls-root-ca-file", "tls_root_ca_file", "str", "path to a certificate authority file"),
    _f("tls-required", "tls_required", "str", "require TLS for clients: false, true or tcp-https"),
    _f("tls-min-version", "tls_min_version", "str", "lowest TLS version: ssl3.0, tls1.0, tls1.1, tls1.2 or tls1.3"),
    _f("deflate", "deflate", "bool", "let clients negotiate deflate compression"),
    _f("max-deflate-level", "max_deflate_level", "int", "highest deflate level a client may ask for"),
    _f("snappy", "snappy", "bool", "let clients negotiate snappy compression"),
)

# Flags that decide who may connect and whether traffic is encrypted: while one
# has no effect, a value other than its default stops the daemon at start.
SECURITY_FLAGS = frozenset({
    "https-address", "auth-http-address",
    "tls-cert", "tls-key", "tls-client-auth-policy", "tls-root-ca-file", "tls-required", "tls-min-version",
})

_BY_FLAG = {s.flag: s for s in FLAGS} | {a: s for s in FLAGS for a in s.deprecated_aliases}
_BY_CFG = {s.cfg_name: s for s in FLAGS}


def spec_by_flag(name: str) -> FlagSpec | None:
    """The flag called ``name`` (no dashes), or one of its deprecated aliases."""
    return _BY_FLAG.get(name)


def spec_by_cfg_name(name: str) -> FlagSpec | None:
    """The flag whose config-file name is ``name`` (as ``/config/:opt`` takes it)."""
    return _BY_CFG.get(name)
