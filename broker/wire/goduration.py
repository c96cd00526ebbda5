"""Durations as Go's ``time.Duration.String()`` writes them, which nsqd's /stats, /info and
flag defaults show: ``0s``, ``1.5ms``, ``2µs``, ``1m0s``, ``1h2m3.5s``."""

from __future__ import annotations

__all__ = ["go_duration"]


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
