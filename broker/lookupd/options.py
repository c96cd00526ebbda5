"""nsqlookupd's options: every Go nsqlookupd 1.3.0 flag, in nsqd's one-table form.

``FLAGS`` uses nsqd's ``FlagSpec`` so the same Go-flag parser and ``--config``
TOML reader drive both daemons. ``--config`` and ``--version`` are the
application's business, as they are for nsqd. Durations are float seconds.
``implemented=False`` marks a flag without effect, which the daemon warns about
when it is set (nsqlookupd has no security flags to refuse).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from broker.nsqd.options import FlagSpec, Kind

__all__ = ["FLAGS", "LookupdOptions", "spec_by_cfg_name", "spec_by_flag"]


@dataclass(slots=True)
class LookupdOptions:
    """The nsqlookupd configuration, with Go nsqlookupd 1.3.0's defaults."""

    log_level: str = "info"
    log_prefix: str = "[nsqlookupd] "
    verbose: bool = False  # deprecated in Go too: accepted, no effect
    tcp_address: str = "0.0.0.0:4160"
    http_address: str = "0.0.0.0:4161"
    broadcast_address: str = ""  # empty: the hostname
    inactive_producer_timeout: float = 300.0
    tombstone_lifetime: float = 45.0

    def replace(self, **changes: object) -> LookupdOptions:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def _f(flag: str, attr: str, kind: Kind, help: str, implemented: bool = True) -> FlagSpec:
    return FlagSpec(flag, attr, kind, help, implemented=implemented)


FLAGS: tuple[FlagSpec, ...] = (
    _f("log-level", "log_level", "str", "log level: debug, info, warn, error or fatal"),
    _f("log-prefix", "log_prefix", "str", "prefix of every log line"),
    _f("verbose", "verbose", "bool", "deprecated: has no effect, use --log-level", implemented=False),
    _f("tcp-address", "tcp_address", "str", "<addr>:<port> to listen on for TCP clients (or a path with a '/' for a unix socket)"),
    _f("http-address", "http_address", "str", "<addr>:<port> to listen on for HTTP clients (or a path with a '/' for a unix socket)"),
    _f("broadcast-address", "broadcast_address", "str", "address of this lookupd node (default: the hostname)"),
    _f("inactive-producer-timeout", "inactive_producer_timeout", "duration", "how long a producer stays in the active list after its last ping"),
    _f("tombstone-lifetime", "tombstone_lifetime", "duration", "how long a producer stays tombstoned if its registration remains"),
)

_BY_FLAG = {s.flag: s for s in FLAGS}
_BY_CFG = {s.cfg_name: s for s in FLAGS}


def spec_by_flag(name: str) -> FlagSpec | None:
    """The flag called ``name`` (no dashes)."""
    return _BY_FLAG.get(name)


def spec_by_cfg_name(name: str) -> FlagSpec | None:
    """The flag whose config-file name is ``name``."""
    return _BY_CFG.get(name)
