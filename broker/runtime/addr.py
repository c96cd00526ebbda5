"""``host:port`` strings, read and written as Go's ``net`` package does.

Every nsqd address flag (``--tcp-address``, ``--lookupd-tcp-address``, ...) is
such a string; IPv6 hosts are bracketed (``[::1]:4150``), an empty host means
every interface and an empty port means "any free port".

nsqd 1.3.0's ``--tcp-address`` and ``--http-address`` may instead name a
Unix-domain socket: Go's rule (``util.TypeOfAddr``) is that any value
``net.SplitHostPort`` cannot split is a socket path, so ``/run/nsqd.sock``,
``nsqd.sock`` and even a mistyped ``localhost`` are all paths
(``type_of_addr``).  Where Go listens or dials TCP only, ``is_socket_path``
(``broker.wire.netaddr``) is the narrower rule.
"""

from __future__ import annotations

from typing import Literal

from broker.wire.netaddr import is_socket_path

__all__ = ["AddressError", "is_socket_path", "join_host_port", "split_host_port", "type_of_addr"]


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


def type_of_addr(addr: str) -> Literal["tcp", "unix"]:
    """Go nsqd's ``util.TypeOfAddr``: "tcp" for what ``net.SplitHostPort`` splits, else "unix"."""
    try:
        split_host_port(addr)
    except AddressError:
        return "unix"
    return "tcp"
