"""``host:port`` strings as NSQ tools take them (IPv6 hosts in brackets)."""

from __future__ import annotations

__all__ = ["join_address", "split_address"]


def split_address(address: str) -> tuple[str, int]:
    """(host, port) of ``host:port`` or ``[v6host]:port``; ValueError if malformed."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host:
        raise ValueError(f"address {address!r}: missing host or port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"address {address!r}: an IPv6 host must be in brackets")
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise ValueError(f"address {address!r}: invalid port {port_text!r}")
    return host, int(port_text)


def join_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
