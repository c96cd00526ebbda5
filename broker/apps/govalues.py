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

from broker.wire.goduration import go_duration

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

# -- Go's duration syntax ---------------------------------------------------------

_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign, what Duration.String() prints
    "\u03bcs": 1_000,  # Greek mu, also accepted by time.ParseDuration
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DIGITS = frozenset("0123456789")
_MAX_INT64 = (1 << 63) - 1


def parse_go_duration_ns(text: str) -> int:
    """Nanoseconds in ``text``, read as ``time.ParseDuration`` reads it."""
    invalid = ValueError(f'time: invalid duration "{text}"')
    s, neg = text, False
    if s[:1] in ("+", "-"):
        neg, s = s[0] == "-", s[1:]
    if s == "0":
        return 0
    if not s:
        raise invalid
    total = 0
    while s:
        i = _span(s, 0, _DIGITS)
        whole, s = s[:i], s[i:]
        frac, scale = 0, 1.0
        has_frac = False
        if s.startswith("."):
            j = _span(s, 1, _DIGITS)
            frac, scale = _leading_fraction(s[1:j])
            has_frac, s = j > 1, s[j:]
        if not whole and not has_frac:
            raise invalid
        k = 0
        while k < len(s) and s[k] != "." and s[k] not in _DIGITS:
            k += 1
        if k == 0:
            raise ValueError(f'time: missing unit in duration "{text}"')
        unit_name, s = s[:k], s[k:]
        unit = _UNIT_NS.get(unit_name)
        if unit is None:
            raise ValueError(f'time: unknown unit "{unit_name}" in duration "{text}"')
        v = int(whole or "0")
        if v > (1 << 63) // unit:
            raise invalid
        v *= unit
        if frac:
            # Go adds the fraction through float64; doing the same keeps results identical.
            v += int(float(frac) * (float(unit) / scale))
            if v > 1 << 63:
                raise invalid
        total += v
        if total > 1 << 63:
            raise invalid
    if neg:
        return -total
    if total > _MAX_INT64:
        raise invalid
    return total


def _span(s: str, start: int, chars: frozenset[str]) -> int:
    i = start
    while i < len(s) and s[i] in chars:
        i += 1
    return i


def _leading_fraction(digits: str) -> tuple[int, float]:
    # Digits past int64's precision are dropped, as time.leadingFraction does.
    x, scale = 0, 1.0
    for c in digits:
        y = x * 10 + ord(c) - 48
        if x > _MAX_INT64 // 10 or y > 1 << 63:
            break
        x, scale = y, scale * 10
    return x, scale


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
