"""Go's value syntaxes, for flags and config files: durations, integers, booleans, floats.

Each reader accepts what its Go counterpart (``time.ParseDuration``,
``strconv.ParseInt(s, 0, 64)``, ``strconv.ParseBool``, ``strconv.ParseFloat``)
accepts and fails where it fails, with the text Go's ``flag`` package prints
after ``invalid value "x" for flag -name:`` (``parse error``, ``value out of
range``); ``parse_go_duration_ns`` keeps ``time``'s own messages, which the flag
layer replaces with ``parse error`` as Go's does.  The writers print as
``Duration.String()``, ``strconv.Quote`` and ``%v`` of a float64 do.
"""

from __future__ import annotations

import decimal
import json
import math

from broker.wire.goduration import go_duration, parse_go_duration_ns

__all__ = [
    "format_go_duration",
    "format_go_duration_ns",
    "go_float_text",
    "go_quote",
    "parse_go_bool",
    "parse_go_duration",
    "parse_go_duration_ns",
    "parse_go_float",
    "parse_go_int",
]

# -- Go's duration syntax (parsing lives in broker.wire.goduration, for the core) ----

_MAX_INT64 = (1 << 63) - 1

def parse_go_duration(text: str) -> float:
    """Seconds in ``text`` (Go syntax: ``250ms``, ``1m0s``, ``-1.5h``, ``0``)."""
    return parse_go_duration_ns(text) / 1e9


def format_go_duration_ns(ns: int) -> str:
    """``ns`` as ``time.Duration.String()`` prints it: ``1m0s``, ``250ms``, ``2µs``."""
    return go_duration(ns)


def format_go_duration(seconds: float) -> str:
    return format_go_duration_ns(round(seconds * 1e9))


# -- other Go value syntaxes ------------------------------------------------------

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_INT_DIGITS = {2: "01", 8: "01234567", 10: "0123456789", 16: "0123456789abcdefABCDEF"}


def parse_go_bool(text: str) -> bool:
    """``strconv.ParseBool``; a ValueError's text is what Go's flag package prints."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("parse error")


def parse_go_int(text: str) -> int:
    """``strconv.ParseInt(text, 0, 64)``: Go's literal syntax, int64's range."""
    body = text[1:] if text[:1] in ("+", "-") else text
    low = body[:2].lower()
    if low in ("0x", "0o", "0b"):
        base, digits, checked = {"0x": 16, "0o": 8, "0b": 2}[low], body[2:], "0" + body[2:]
    elif len(body) > 1 and body[0] == "0":
        base, digits, checked = 8, body[1:], body
    else:
        base, digits, checked = 10, body, body
    bare = digits.replace("_", "")
    if not bare or any(c not in _INT_DIGITS[base] for c in bare):
        raise ValueError("parse error")
    # An underscore only separates digits (the base prefix counts as one).
    if "_" in checked and (checked[0] == "_" or checked[-1] == "_" or "__" in checked):
        raise ValueError("parse error")
    value = int(bare, base) * (-1 if text[:1] == "-" else 1)
    if not -(1 << 63) <= value <= _MAX_INT64:
        raise ValueError("value out of range")
    return value


def parse_go_float(text: str) -> float:
    """``strconv.ParseFloat(text, 64)``, for decimal, hex and Inf/NaN spellings."""
    if not text or text != text.strip():
        raise ValueError("parse error")
    try:
        value = float(text)
    except ValueError:
        try:
            value = float.fromhex(text) if "p" in text.lower() else math.nan
        except (ValueError, OverflowError):
            raise ValueError("parse error") from None
        if math.isnan(value):
            raise ValueError("parse error") from None
    if math.isinf(value) and "inf" not in text.lower():
        raise ValueError("value out of range")
    return value


def go_quote(s: str) -> str:
    # strconv.Quote for the printable strings a command line holds.
    return json.dumps(s, ensure_ascii=False)


def go_float_text(f: float) -> str:
    # strconv.FormatFloat(f, 'g', -1, 64), what %v prints for a float64.
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if math.isnan(f):
        return "NaN"
    if f == 0:
        return "0"
    sign, digits, exp = decimal.Decimal(repr(f)).normalize().as_tuple()
    assert isinstance(exp, int)
    mant = "".join(map(str, digits))
    point = len(mant) + exp  # position of the decimal point within mant
    text: str
    if point - 1 < -4 or point - 1 >= 6:  # %e past these exponents, as 'g' does
        frac = mant[1:]
        text = mant[0] + (f".{frac}" if frac else "") + f"e{point - 1:+03d}"
    elif point <= 0:
        text = "0." + "0" * -point + mant
    elif point >= len(mant):
        text = mant + "0" * (point - len(mant))
    else:
        text = f"{mant[:point]}.{mant[point:]}"
    return ("-" if sign else "") + text
