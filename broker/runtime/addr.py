"""``host:port`` strings, read and written as Go's ``net`` package does.

Every nsqd address flag (``--tcp-address``, ``--lookupd-tcp-address``, ...) is
such a string; IPv6 hosts are bracketed (``[::1]:4150``), an empty host means
every interface and an empty port means "any free port".
"""

from __future__ import annotations

__all__ = ["AddressError", "join_host_port", "split_host_port"]


class AddressError(ValueError):
    """A malformed ``host:port``; ``str()`` reads like Go's ``net.AddrError``."""

    def __init__(self, addr: str, why: str) -> None:
        super().__init__(f"address {addr}: {why}")
        self.addr = addr
        self.why = why


def split_host_port(hostport: str) -> tuple[str, str]:
    """``(host, port)`` of ``hostport``, with the rules and messages of ``net.SplitHostPort``."""
    colon = hostport.rfind(":")
    if colon < 0:
        raise AddressError(hostport, "missing port in address")
    start, end_search = 0, 0
    if hostport.startswith("["):
        close = hostport.find("]")
        if close < 0:
            raise AddressError(hostport, "missing ']' in address")
        if close + 1 == len(hostport):
            raise AddressError(hostport, "missing port in address")
        if close + 1 != colon:
            if hostport[close + 1] == ":":
                raise AddressError(hostport, "too many colons in address")
            raise AddressError(hostport, "missing port in address")
        host = hostport[1:close]
        start, end_search = 1, close + 1
    else:
        host = hostport[:colon]
        if ":" in host:
            raise AddressError(hostport, "too many colons in address")
    if "[" in hostport[start:]:
        raise AddressError(hostport, "unexpected '[' in address")
    if "]" in hostport[end_search:]:
        raise AddressError(hostport, "unexpected ']' in address")
    return host, hostport[colon + 1 :]


def join_host_port(host: str, port: int | str) -> str:
    """``host:port``, bracketing an IPv6 host (``net.JoinHostPort``)."""
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"
