"""The IDENTIFY body: decoded with the strictness of Go's encoding/json into nsqd's struct.

Go matches JSON keys to struct fields case-insensitively, ignores unknown keys,
treats ``null`` as "leave the zero value", and fails the whole decode on a value
of the wrong type (a string for an int, 1.5 for an int, an int out of range).
nsqd answers any such failure with E_BAD_BODY, so this module does the same.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["IdentifyData", "IdentifyDecodeError", "decode_identify"]


class IdentifyDecodeError(ValueError):
    pass


@dataclass(slots=True)
class IdentifyData:
    client_id: str = ""
    hostname: str = ""
    heartbeat_interval: int = 0
    output_buffer_size: int = 0
    output_buffer_timeout: int = 0
    feature_negotiation: bool = False
    tls_v1: bool = False
    deflate: bool = False
    deflate_level: int = 0
    snappy: bool = False
    sample_rate: int = 0
    user_agent: str = ""
    msg_timeout: int = 0

    def go_text(self) -> str:
        """The struct as Go's ``%+v`` prints nsqd's ``identifyDataV2``: ``{ClientID:a Hostname:b ...}``."""
        parts = []
        for name, go_name in _GO_NAMES.items():
            value = getattr(self, name)
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            parts.append(f"{go_name}:{text}")
        return "{" + " ".join(parts) + "}"


# field -> nsqd's Go field name, in the struct's order
_GO_NAMES = {
    "client_id": "ClientID",
    "hostname": "Hostname",
    "heartbeat_interval": "HeartbeatInterval",
    "output_buffer_size": "OutputBufferSize",
    "output_buffer_timeout": "OutputBufferTimeout",
    "feature_negotiation": "FeatureNegotiation",
    "tls_v1": "TLSv1",
    "deflate": "Deflate",
    "deflate_level": "DeflateLevel",
    "snappy": "Snappy",
    "sample_rate": "SampleRate",
    "user_agent": "UserAgent",
    "msg_timeout": "MsgTimeout",
}


_INT64 = (-(1 << 63), (1 << 63) - 1)
_INT32 = (-(1 << 31), (1 << 31) - 1)

# field -> (type, bounds for ints)
_FIELDS: dict[str, tuple[type, tuple[int, int] | None]] = {
    "client_id": (str, None),
    "hostname": (str, None),
    "heartbeat_interval": (int, _INT64),
    "output_buffer_size": (int, _INT64),
    "output_buffer_timeout": (int, _INT64),
    "feature_negotiation": (bool, None),
    "tls_v1": (bool, None),
    "deflate": (bool, None),
    "deflate_level": (int, _INT64),
    "snappy": (bool, None),
    "sample_rate": (int, _INT32),
    "user_agent": (str, None),
    "msg_timeout": (int, _INT64),
}


def _no_constants(text: str) -> Any:
    raise ValueError(f"invalid character in JSON: {text}")


def _number(text: str) -> Any:
    # Keep JSON numbers as written so 1.0 and 1e3 can be judged the way Go does
    # (an integer field takes only an integer literal).
    return ("num", text)


def decode_identify(body: bytes) -> IdentifyData:
    try:
        # Go replaces invalid UTF-8 inside strings rather than failing.
        text = body.decode("utf-8", "replace")
        raw = json.loads(text, parse_float=_number, parse_int=_number, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        raise IdentifyDecodeError(str(exc)) from None
    if raw is None:
        return IdentifyData()
    if not isinstance(raw, dict):
        raise IdentifyDecodeError("cannot unmarshal into IDENTIFY struct")
    data = IdentifyData()
    seen: dict[str, str] = {}
    for key, value in raw.items():
        lowered = key.lower()
        name = lowered if lowered in _FIELDS else None
        if name is None:
            continue
        # Go prefers an exact match of the tag; among case-insensitive matches the last wins.
        if name in seen and seen[name] == name and key != name:
            continue
        seen[name] = key
        if value is None:
            continue
        kind, bounds = _FIELDS[name]
        setattr(data, name, _convert(name, kind, bounds, value))
    return data


def _convert(name: str, kind: type, bounds: tuple[int, int] | None, value: Any) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is str:
        if isinstance(value, str):
            return value
    elif isinstance(value, tuple) and value[0] == "num":
        text: str = value[1]
        if text.lstrip("-").isdigit():
            n = int(text)
            assert bounds is not None
            if bounds[0] <= n <= bounds[1]:
                return n
    raise IdentifyDecodeError(f"json: cannot unmarshal into Go struct field identifyDataV2.{name}")
