"""Addresses as NSQ tools take them: ``host:port`` (IPv6 hosts in brackets) or a Unix socket's path.

A path (``is_socket_path``: it holds a ``/`` or starts with ``@``) is carried
as ``(path, UNIX_PORT)``; ``http_url`` spells an HTTP address of either kind
as a URL, ``http+unix://<percent-encoded path>`` for a socket.
"""

from __future__ import annotations

from urllib.parse import quote

from broker.wire.netaddr import UNIX_PORT, is_socket_path

__all__ = ["http_url", "join_address", "split_address"]


def split_address(address: str) -> tuple[str, int]:
    """(host, port) of ``host:port``, ``[v6host]:port`` or a socket path; ValueError if malformed."""
    if is_socket_path(address):
        return address, UNIX_PORT
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
    if port == UNIX_PORT:
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def http_url(address: str, target: str = "/") -> str:
    """The URL of ``target`` (path and query) at an HTTP ``address`` (``host:port`` or a socket path)."""
    if is_socket_path(address):
        return "http+unix://" + quote(address, safe="") + target
    return f"http://{address}{target}"
