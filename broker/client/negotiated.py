"""nsqd's answer to IDENTIFY: the settings it negotiated for the connection.

The client always asks for ``feature_negotiation``, so nsqd answers with JSON
(nsqd 1.3.0: ``max_rdy_count``, ``version``, ``max_msg_timeout``,
``msg_timeout``, ``tls_v1``, ``deflate``, ``deflate_level``,
``max_deflate_level``, ``snappy``, ``sample_rate``, ``auth_required``,
``output_buffer_size``, ``output_buffer_timeout``); an nsqd too old to
negotiate answers ``OK``, and its defaults are assumed.  A key of the wrong
JSON type is a protocol violation; unknown keys are ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from broker.client.errors import ProtocolViolation
from broker.wire import v2

__all__ = ["Negotiated"]


@dataclass(frozen=True, slots=True)
class Negotiated:
    """nsqd's answer to IDENTIFY (its defaults when it answered a plain ``OK``)."""

    max_rdy_count: int = 2500
    version: str = ""
    max_msg_timeout: int = 900000  # ms
    msg_timeout: int = 60000  # ms
    tls_v1: bool = False
    deflate: bool = False
    deflate_level: int = 0
    snappy: bool = False
    auth_required: bool = False
    sample_rate: int = 0
    output_buffer_size: int = 16384
    output_buffer_timeout: int = 250  # ms

    @classmethod
    def from_response(cls, data: bytes) -> Negotiated:
        if data == v2.OK:
            return cls()
        try:
            raw = json.loads(data)
        except ValueError as exc:
            raise ProtocolViolation(f"IDENTIFY answered with invalid JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise ProtocolViolation("IDENTIFY answered with JSON that is not an object")
        values: dict[str, object] = {}
        for name, default in (
            ("max_rdy_count", 0),
            ("version", ""),
            ("max_msg_timeout", 0),
            ("msg_timeout", 0),
            ("tls_v1", False),
            ("deflate", False),
            ("deflate_level", 0),
            ("snappy", False),
            ("auth_required", False),
            ("sample_rate", 0),
            ("output_buffer_size", 0),
            ("output_buffer_timeout", 0),
        ):
            if name in raw:
                value = raw[name]
                if type(value) is not type(default):
                    raise ProtocolViolation(f"IDENTIFY answered {name}={value!r}")
                values[name] = value
        return cls(**values)  # type: ignore[arg-type]
