"""The client's settings: go-nsq's ``Config``, its option names and defaults.

Durations are float seconds.  ``OPTIONS`` maps each go-nsq option name (what
``--consumer-opt``/``--producer-opt`` take) to a field and its kind, so the
utilities can pass options through exactly as the Go ones do.

The identity fields (``client_id``, ``hostname``, ``user_agent``) default to
empty here because the core cannot ask the operating system for a host name;
the asyncio layer fills them in (short host name, host name, ``nsqsim/<version>``).

Three settings are this client's own: ``reconnect_delay`` and
``max_reconnect_delay`` (go-nsq retries a lost nsqd every
``lookupd_poll_interval``; here it doubles from the first to the second), and
``max_queued_publishes``, the bound on publishes held while no connection is up.
"""

from __future__ import annotations

import dataclasses
import ssl
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_USER_AGENT", "OPTIONS", "ClientConfig", "doubled"]

DEFAULT_USER_AGENT = "nsqsim"  # the runtime adds "/<version>"


@dataclass(frozen=True, slots=True)
class ClientConfig:
    # identity, sent in IDENTIFY
    client_id: str = ""
    hostname: str = ""
    user_agent: str = DEFAULT_USER_AGENT

    # connection
    dial_timeout: float = 1.0
    read_timeout: float = 60.0  # also bounds the handshake (connect, IDENTIFY, SUB)
    heartbeat_interval: float = 30.0  # -1 disables heartbeats
    output_buffer_size: int = 16384  # -1 disables nsqd's output buffering
    output_buffer_timeout: float = 0.25  # -1 disables the timeout
    msg_timeout: float | None = None  # None: nsqd's --msg-timeout
    sample_rate: int = 0
    auth_secret: str = ""
    max_frame_size: int = 64 * 1024 * 1024  # a larger frame from the peer is a protocol violation

    # TLS and compression, asked for in IDENTIFY and switched on as nsqd agrees (go-nsq's names)
    tls_v1: bool = False
    tls_insecure_skip_verify: bool = False
    tls_root_ca_file: str = ""  # these three are read by the runtime into tls_context
    tls_cert: str = ""
    tls_key: str = ""
    tls_min_version: str = "tls1.0"
    tls_context: ssl.SSLContext | None = None  # built by the runtime (the core reads no files)
    deflate: bool = False
    deflate_level: int = 6
    snappy: bool = False

    # consumer
    max_in_flight: int = 1
    max_attempts: int = 5  # 0: never give up
    backoff_multiplier: float = 1.0
    max_backoff_duration: float = 120.0  # 0: no backoff
    default_requeue_delay: float = 90.0
    max_requeue_delay: float = 900.0
    lookupd_poll_interval: float = 60.0
    lookupd_poll_jitter: float = 0.3
    lookupd_poll_timeout: float = 60.0
    low_rdy_idle_timeout: float = 10.0
    low_rdy_timeout: float = 30.0
    rdy_redistribute_interval: float = 5.0

    # reconnecting (both) and queueing (producer)
    reconnect_delay: float = 1.0
    max_reconnect_delay: float = 60.0
    max_queued_publishes: int = 10000

    def __post_init__(self) -> None:
        checks = [
            (self.dial_timeout > 0, "dial_timeout must be positive"),
            (self.read_timeout >= 0.1, "read_timeout must be at least 100ms"),
            (
                self.heartbeat_interval == -1 or 0 < self.heartbeat_interval < self.read_timeout,
                "heartbeat_interval must be -1 or below read_timeout",
            ),
            (0 <= self.sample_rate <= 99, "sample_rate must be within 0-99"),
            (self.max_in_flight >= 0, "max_in_flight must not be negative"),
            (0 <= self.max_attempts <= 65535, "max_attempts must be within 0-65535"),
            (self.backoff_multiplier >= 0, "backoff_multiplier must not be negative"),
            (self.max_backoff_duration >= 0, "max_backoff_duration must not be negative"),
            (self.default_requeue_delay >= 0, "default_requeue_delay must not be negative"),
            (self.max_requeue_delay >= 0, "max_requeue_delay must not be negative"),
            (self.lookupd_poll_interval > 0, "lookupd_poll_interval must be positive"),
            (0 <= self.lookupd_poll_jitter <= 1, "lookupd_poll_jitter must be within 0-1"),
            (self.lookupd_poll_timeout > 0, "lookupd_poll_timeout must be positive"),
            (self.low_rdy_idle_timeout > 0, "low_rdy_idle_timeout must be positive"),
            (self.low_rdy_timeout > 0, "low_rdy_timeout must be positive"),
            (self.rdy_redistribute_interval > 0, "rdy_redistribute_interval must be positive"),
            (0 < self.reconnect_delay <= self.max_reconnect_delay, "reconnect_delay must be positive and <= max_reconnect_delay"),
            (self.max_queued_publishes >= 0, "max_queued_publishes must not be negative"),
            (self.max_frame_size >= 1024, "max_frame_size must be at least 1024"),
            (self.msg_timeout is None or self.msg_timeout >= 0, "msg_timeout must not be negative"),
            (1 <= self.deflate_level <= 9, "deflate_level must be within 1-9"),
            (not (self.deflate and self.snappy), "deflate and snappy are mutually exclusive"),
            (
                self.tls_min_version in ("ssl3.0", "tls1.0", "tls1.1", "tls1.2", "tls1.3"),
                "tls_min_version must be ssl3.0, tls1.0, tls1.1, tls1.2 or tls1.3",
            ),
        ]
        for ok, why in checks:
            if not ok:
                raise ValueError(why)

    def replace(self, **changes: Any) -> ClientConfig:
        return dataclasses.replace(self, **changes)

    def identify_body(self) -> dict[str, object]:
        """The IDENTIFY JSON (go-nsq's field set)."""
        body: dict[str, object] = {
            "client_id": self.client_id,
            "hostname": self.hostname,
            "user_agent": self.user_agent,
            "feature_negotiation": True,
            "heartbeat_interval": _ms_or_disabled(self.heartbeat_interval),
            "output_buffer_size": self.output_buffer_size,
            "output_buffer_timeout": _ms_or_disabled(self.output_buffer_timeout),
            "sample_rate": self.sample_rate,
            "tls_v1": self.tls_v1,
            "snappy": self.snappy,
            "deflate": self.deflate,
        }
        if self.deflate:
            body["deflate_level"] = self.deflate_level
        if self.msg_timeout is not None:
            body["msg_timeout"] = round(self.msg_timeout * 1000)
        return body

    def backoff_duration(self, level: int) -> float:
        """go-nsq's exponential strategy: ``backoff_multiplier * 2**level``, capped."""
        return min(doubled(self.backoff_multiplier, level), self.max_backoff_duration)

    def reconnect_pause(self, failures: int) -> float:
        """The pause after ``failures`` failed tries in a row: ``reconnect_delay`` doubling, capped."""
        return min(doubled(self.reconnect_delay, failures - 1), self.max_reconnect_delay)

    def requeue_delay(self, attempts: int) -> float:
        """go-nsq's default requeue delay: ``default_requeue_delay * attempts``, capped."""
        return min(self.default_requeue_delay * attempts, self.max_requeue_delay)


def doubled(base: float, times: int) -> float:
    """``base * 2**times``, at worst inf: a failure streak is unbounded, and an int
    power of two past 2**1023 cannot be converted to a float (OverflowError)."""
    return base * 2.0 ** max(0, min(times, 1023))


def _ms_or_disabled(seconds: float) -> int:
    return -1 if seconds < 0 else round(seconds * 1000)


# go-nsq option name -> (field, kind); kinds are those of the Go flag syntax.
OPTIONS: dict[str, tuple[str, str]] = {
    "client_id": ("client_id", "str"),
    "hostname": ("hostname", "str"),
    "user_agent": ("user_agent", "str"),
    "dial_timeout": ("dial_timeout", "duration"),
    "read_timeout": ("read_timeout", "duration"),
    "heartbeat_interval": ("heartbeat_interval", "duration"),
    "output_buffer_size": ("output_buffer_size", "int"),
    "output_buffer_timeout": ("output_buffer_timeout", "duration"),
    "msg_timeout": ("msg_timeout", "duration"),
    "sample_rate": ("sample_rate", "int"),
    "auth_secret": ("auth_secret", "str"),
    "tls_v1": ("tls_v1", "bool"),
    "tls_insecure_skip_verify": ("tls_insecure_skip_verify", "bool"),
    "tls_root_ca_file": ("tls_root_ca_file", "str"),
    "tls_cert": ("tls_cert", "str"),
    "tls_key": ("tls_key", "str"),
    "tls_min_version": ("tls_min_version", "str"),
    "deflate": ("deflate", "bool"),
    "deflate_level": ("deflate_level", "int"),
    "snappy": ("snappy", "bool"),
    "max_in_flight": ("max_in_flight", "int"),
    "max_attempts": ("max_attempts", "int"),
    "backoff_multiplier": ("backoff_multiplier", "duration"),
    "max_backoff_duration": ("max_backoff_duration", "duration"),
    "default_requeue_delay": ("default_requeue_delay", "duration"),
    "max_requeue_delay": ("max_requeue_delay", "duration"),
    "lookupd_poll_interval": ("lookupd_poll_interval", "duration"),
    "lookupd_poll_jitter": ("lookupd_poll_jitter", "float"),
    "lookupd_poll_timeout": ("lookupd_poll_timeout", "duration"),
    "low_rdy_idle_timeout": ("low_rdy_idle_timeout", "duration"),
    "low_rdy_timeout": ("low_rdy_timeout", "duration"),
    "rdy_redistribute_interval": ("rdy_redistribute_interval", "duration"),
}
