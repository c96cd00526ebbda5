"""nsqadmin's options: every Go nsqadmin 1.3.0 flag, in nsqd's one-table form.

``FLAGS`` uses nsqd's ``FlagSpec``, so the Go-flag parser, the ``--config``
TOML reader and ``GET /config/:opt`` of nsqadmin all read the same table.
``--config`` and ``--version`` are the application's business, as for nsqd.
Durations are float seconds; ``/config`` answers them in nanoseconds, as Go's
``time.Duration`` marshals.

``implemented=False`` marks a flag without effect here; the daemon writes one
warning line for each such flag set away from its default.  None of them is
security-relevant: the two that are (``--admin-user`` with
``--acl-http-header``, and ``--allow-config-from-cidr``) are implemented.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from broker.nsqd.options import FlagSpec, Kind

__all__ = ["FLAGS", "LOG_LEVEL_NUMBERS", "AdminOptions", "normalize_base_path", "spec_by_cfg_name"]


@dataclass(slots=True)
class AdminOptions:
    """The nsqadmin configuration, with Go nsqadmin 1.3.0's defaults (``nsqadmin.NewOptions``)."""

    log_level: str = "info"
    log_prefix: str = "[nsqadmin] "
    verbose: bool = False  # deprecated in Go too: accepted, no effect
    http_address: str = "0.0.0.0:4171"
    base_path: str = "/"
    dev_static_dir: str = ""
    graphite_url: str = ""
    proxy_graphite: bool = False
    statsd_prefix: str = "nsq.%s"
    statsd_counter_format: str = "stats.counters.%s.count"
    statsd_gauge_format: str = "stats.gauges.%s"
    statsd_interval: float = 60.0
    nsqlookupd_http_addresses: list[str] = field(default_factory=list)
    nsqd_http_addresses: list[str] = field(default_factory=list)
    http_client_connect_timeout: float = 2.0
    http_client_request_timeout: float = 5.0
    http_client_tls_insecure_skip_verify: bool = False
    http_client_tls_root_ca_file: str = ""
    http_client_tls_cert: str = ""
    http_client_tls_key: str = ""
    allow_config_from_cidr: str = "127.0.0.1/8"
    notification_http_endpoint: str = ""
    acl_http_header: str = "X-Forwarded-User"
    admin_users: list[str] = field(default_factory=list)

    def replace(self, **changes: object) -> AdminOptions:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def _f(flag: str, attr: str, kind: Kind, help: str, *, cfg: str = "", implemented: bool = True) -> FlagSpec:
    return FlagSpec(flag, attr, kind, help, cfg=cfg, implemented=implemented)


_NO_TLS = "has no effect: nsqadmin here talks plain HTTP to nsqd and nsqlookupd"

# Help texts are Go's, apart from the notes on flags without effect.
FLAGS: tuple[FlagSpec, ...] = (
    _f("log-level", "log_level", "str", "set log verbosity: debug, info, warn, error, or fatal"),
    _f("log-prefix", "log_prefix", "str", "log message prefix"),
    _f("verbose", "verbose", "bool", "[deprecated] has no effect, use --log-level", implemented=False),
    _f("http-address", "http_address", "str", "<addr>:<port> to listen on for HTTP clients"),
    _f("base-path", "base_path", "str", "URL base path"),
    _f("dev-static-dir", "dev_static_dir", "str", "(development use only)"),
    _f("graphite-url", "graphite_url", "str", "graphite HTTP address"),
    _f("proxy-graphite", "proxy_graphite", "bool", "proxy HTTP requests to graphite"),
    _f("statsd-counter-format", "statsd_counter_format", "str", "The counter stats key formatting applied by the implementation of statsd. If no formatting is desired, set this to an empty string. (no effect here: the UI draws no graphite graphs)", implemented=False),
    _f("statsd-gauge-format", "statsd_gauge_format", "str", "The gauge stats key formatting applied by the implementation of statsd. If no formatting is desired, set this to an empty string. (no effect here: the UI draws no graphite graphs)", implemented=False),
    _f("statsd-prefix", "statsd_prefix", "str", "prefix used for keys sent to statsd (%s for host replacement, must match nsqd) (no effect here: the UI draws no graphite graphs)", implemented=False),
    _f("statsd-interval", "statsd_interval", "duration", "time interval nsqd is configured to push to statsd (must match nsqd)"),
    _f("notification-http-endpoint", "notification_http_endpoint", "str", "HTTP endpoint (fully qualified) to which POST notifications of admin actions will be sent"),
    _f("http-client-connect-timeout", "http_client_connect_timeout", "duration", "timeout for HTTP connect"),
    _f("http-client-request-timeout", "http_client_request_timeout", "duration", "timeout for HTTP request"),
    _f("http-client-tls-insecure-skip-verify", "http_client_tls_insecure_skip_verify", "bool", f"configure the HTTP client to skip verification of TLS certificates ({_NO_TLS})", implemented=False),
    _f("http-client-tls-root-ca-file", "http_client_tls_root_ca_file", "str", f"path to CA file for the HTTP client ({_NO_TLS})", implemented=False),
    _f("http-client-tls-cert", "http_client_tls_cert", "str", f"path to certificate file for the HTTP client ({_NO_TLS})", implemented=False),
    _f("http-client-tls-key", "http_client_tls_key", "str", f"path to key file for the HTTP client ({_NO_TLS})", implemented=False),
    _f("allow-config-from-cidr", "allow_config_from_cidr", "str", "A CIDR from which to allow HTTP requests to the /config endpoint"),
    _f("acl-http-header", "acl_http_header", "str", "HTTP header to check for authenticated admin users"),
    _f("lookupd-http-address", "nsqlookupd_http_addresses", "str_list", "lookupd HTTP address (may be given multiple times)", cfg="nsqlookupd_http_addresses"),
    _f("nsqd-http-address", "nsqd_http_addresses", "str_list", "nsqd HTTP address (may be given multiple times)", cfg="nsqd_http_addresses"),
    _f("admin-user", "admin_users", "str_list", "admin user (may be given multiple times; if specified, only these users will be able to perform privileged actions; acl-http-header is used to determine the authenticated user)", cfg="admin_users"),
)

# GET /config/log_level answers Go's lg.LogLevel, an int.
LOG_LEVEL_NUMBERS = {"debug": 1, "info": 2, "warn": 3, "error": 4, "fatal": 5}

_BY_CFG = {s.cfg_name: s for s in FLAGS}


def spec_by_cfg_name(name: str) -> FlagSpec | None:
    """The flag whose config-file (and ``/config``) name is ``name``; ``verbose`` is no option in Go."""
    spec = _BY_CFG.get(name)
    return None if spec is None or spec.flag == "verbose" else spec


def normalize_base_path(path: str) -> str:
    """Go's ``normalizeBasePath``: a leading slash, then ``path.Clean``."""
    if not path:
        return "/"
    if not path.startswith("/"):
        path = "/" + path
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)
