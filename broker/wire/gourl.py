"""Request targets read as Go's ``net/url`` and httprouter read them.

nsqlookupd sees ``req.URL.Path`` (unescaped) and ``url.ParseQuery(RawQuery)``,
and these differ from Python's ``urllib.parse`` in ways a client can see:

* ``ParseQuery`` reports an error (and nsqlookupd answers ``INVALID_REQUEST``)
  for a bad ``%`` escape or a ``;`` in a pair, while still keeping every other
  pair; urllib silently keeps the bad escape or splits on ``;``.
* A bad escape in the path makes Go's server answer ``400 Bad Request``
  before any handler runs.

Go strings are bytes, so the work is done on bytes; results become ``str``
through UTF-8 with ``surrogateescape``, so bytes that are not UTF-8 survive
(and never match a route or a valid name).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "ParsedQuery",
    "RequestTarget",
    "URLError",
    "clean_path",
    "parse_query",
    "parse_target",
]

_HEX = frozenset(b"0123456789abcdefABCDEF")


class URLError(ValueError):
    """The request target is not one Go's server would route."""


@dataclass(slots=True)
class ParsedQuery:
    values: dict[str, list[str]] = field(default_factory=dict)
    ok: bool = True  # False where url.ParseQuery returned an error


@dataclass(frozen=True, slots=True)
class RequestTarget:
    path: str  # unescaped
    raw_query: str  # as sent, without the '?'


def parse_target(target: bytes) -> RequestTarget:
    """Split and unescape an origin-form (or absolute-form) request target.

    Raises ``URLError`` where ``url.ParseRequestURI`` fails.
    """
    if any(b < 0x20 or b == 0x7F for b in target):
        raise URLError("invalid control character in URL")
    if target == b"*":
        return RequestTarget("*", "")
    scheme_end = target.find(b"://")
    if scheme_end > 0 and target[:1].isalpha() and b"/" not in target[:scheme_end]:
        rest = target[scheme_end + 3 :]
        ends = [i for i in (rest.find(b"/"), rest.find(b"?")) if i >= 0]
        target = rest[min(ends) :] if ends else b""
    elif not target.startswith(b"/"):
        raise URLError("invalid URI for request")
    raw_path, _, raw_query = target.partition(b"?")
    return RequestTarget(
        _unescape(raw_path, plus_is_space=False), raw_query.decode("utf-8", "surrogateescape")
    )


def parse_query(raw: str) -> ParsedQuery:
    """``url.ParseQuery`` (Go 1.19): pairs split on ``&``; errors are noted, not fatal."""
    result = ParsedQuery()
    for pair in raw.encode("utf-8", "surrogateescape").split(b"&"):
        if b";" in pair:
            result.ok = False
            continue
        if not pair:
            continue
        key, _, value = pair.partition(b"=")
        try:
            k = _unescape(key, plus_is_space=True)
            v = _unescape(value, plus_is_space=True)
        except URLError:
            result.ok = False
            continue
        result.values.setdefault(k, []).append(v)
    return result


def clean_path(p: str) -> str:
    """httprouter's ``CleanPath``: ``path.Clean`` that keeps a trailing slash."""
    if not p:
        return "/"
    parts: list[str] = []
    for seg in p.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if parts:
                parts.pop()
            continue
        parts.append(seg)
    out = "/" + "/".join(parts)
    if out != "/" and p.endswith(("/", "/.", "/..")):
        out += "/"
    return out


def _unescape(s: bytes, *, plus_is_space: bool) -> str:
    if b"%" not in s and not (plus_is_space and b"+" in s):
        return s.decode("utf-8", "surrogateescape")
    out = bytearray()
    i, n = 0, len(s)
    while i < n:
        b = s[i]
        if b == 0x25:  # '%'
            if i + 2 >= n or s[i + 1] not in _HEX or s[i + 2] not in _HEX:
                raise URLError("invalid URL escape")
            out.append(int(s[i + 1 : i + 3], 16))
            i += 3
            continue
        out.append(0x20 if b == 0x2B and plus_is_space else b)  # '+'
        i += 1
    return out.decode("utf-8", "surrogateescape")
