"""JSON as Go's ``encoding/json`` writes and reads it, so answers match byte for byte.

Writing (``json.Marshal``): compact, no spaces; ``<``, ``>`` and ``&`` escaped as
``\\u003c`` ``\\u003e`` ``\\u0026`` (Marshal always HTML-escapes); U+2028 and
U+2029 escaped; control characters as ``\\u00XX`` except ``\\n``, ``\\r`` and
``\\t`` (nsq 1.3.0 is built with Go 1.19, which has no ``\\b``/``\\f`` short
forms). Key order is the caller's: a Go struct keeps its field order and a Go
map is sorted, so callers build dicts in the order Go emits them and this
encoder never reorders.

Reading (``json.Unmarshal``) is stricter than Python's ``json.loads`` in one
place (no ``NaN``/``Infinity``) and laxer in another (invalid UTF-8 becomes
U+FFFD instead of failing); ``loads`` bridges both, and hands back objects as
ordered key/value pairs because Go assigns struct fields in document order,
matching names case-insensitively.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import TypeAlias

__all__ = ["GoObject", "JSONDecodeError", "JSONValue", "dumps", "go_float", "loads"]

JSONValue: TypeAlias = "bool | int | float | str | list[JSONValue] | dict[str, JSONValue] | None"


class JSONDecodeError(ValueError):
    """The body is not JSON that Go's decoder would accept."""


class GoObject(list[tuple[str, object]]):
    """A decoded JSON object: its members in document order, duplicates kept."""


def dumps(value: JSONValue) -> bytes:
    parts: list[str] = []
    _encode(value, parts)
    return "".join(parts).encode("utf-8")


def loads(data: bytes) -> object:
    """Decode ``data``; objects come back as ``GoObject``, numbers as int or float."""
    text = data.decode("utf-8", errors="replace")
    try:
        return json.loads(text, object_pairs_hook=GoObject, parse_constant=_reject_constant)
    except RecursionError as exc:
        # Go nests up to 10000 levels; Python's recursion limit bites first.
        raise JSONDecodeError("json: exceeded max depth") from exc
    except ValueError as exc:
        raise JSONDecodeError(str(exc)) from exc


def go_float(f: float) -> str:
    """A float64 as ``json.Marshal`` writes it: the shortest round-tripping digits, fixed
    notation unless below 1e-6 or from 1e21 on, and exponents without padding (``1e-7``)."""
    if math.isnan(f) or math.isinf(f):
        raise ValueError(f"json: unsupported value: {f!r}")  # Go's UnsupportedValueError
    a = abs(f)
    if a != 0 and (a < 1e-6 or a >= 1e21):
        mantissa, _, exp = repr(f).partition("e")
        sign = "-" if exp.startswith("-") else "+"
        return f"{mantissa}e{sign}{int(exp.lstrip('+-'))}"
    text = format(Decimal(repr(f)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _reject_constant(name: str) -> object:
    raise JSONDecodeError(f"invalid character '{name[0]}' looking for beginning of value")


_ESCAPED = re.compile('[\x00-\x1f"\\\\<>&\u2028\u2029\ud800-\udfff]')
_SHORT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(m: re.Match[str]) -> str:
    c = m.group()
    short = _SHORT.get(c)
    if short is not None:
        return short
    if "\ud800" <= c <= "\udfff":
        return "\\ufffd"  # Go writes invalid UTF-8 as the replacement character
    return f"\\u{ord(c):04x}"


def _encode(value: JSONValue, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(go_float(value))
    elif isinstance(value, str):
        out.append('"' + _ESCAPED.sub(_escape_char, value) + '"')
    elif isinstance(value, list):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            if i:
                out.append(",")
            _encode(key, out)
            out.append(":")
            _encode(item, out)
        out.append("}")
