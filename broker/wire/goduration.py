"""Durations as Go's ``time.Duration.String()`` writes them, which nsqd's /stats, /info and
flag defaults show: ``0s``, ``1.5ms``, ``2µs``, ``1m0s``, ``1h2m3.5s``."""

from __future__ import annotations

__all__ = ["go_duration", "parse_go_duration_ns"]


def go_duration(ns: int) -> str:
    """``ns`` nanoseconds as ``time.Duration.String()`` writes them."""
    if ns == 0:
        return "0s"
    sign, u = ("-", -ns) if ns < 0 else ("", ns)
    if u < 1_000:
        return f"{sign}{u}ns"
    if u < 1_000_000:
        return f"{sign}{_decimal(u, 3)}\u00b5s"
    if u < 1_000_000_000:
        return f"{sign}{_decimal(u, 6)}ms"
    mins, sub = divmod(u, 60_000_000_000)
    text = _decimal(sub, 9) + "s"
    if mins:
        hours, mins = divmod(mins, 60)
        text = f"{mins}m{text}"
        if hours:
            text = f"{hours}h{text}"
    return sign + text


def _decimal(v: int, digits: int) -> str:
    """``v / 10**digits`` with no trailing zeros (and no point for a whole number)."""
    whole, frac = divmod(v, 10**digits)
    tail = f"{frac:0{digits}d}".rstrip("0")
    return f"{whole}.{tail}" if tail else str(whole)


# -- parsing: time.ParseDuration ---------------------------------------------------

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
