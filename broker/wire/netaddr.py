"""Stream addresses as the ports carry them, and as Go's ``net.Addr.String()`` writes them.

A TCP address is ``(host, port)``.  A Unix-domain socket (nsqd 1.3.0 listens
on one when ``--tcp-address`` or ``--http-address`` is a path) has no port: the
ports carry it as ``(path, UNIX_PORT)``, where the path is the socket file, or
"" for the unnamed end that a connecting client normally is.  A negative port
can never be a TCP one, so the same tuple type serves both, and ``UNIX_PORT``
is also the ``tcp_port``/``http_port`` Go nsqd's ``/info`` reports for a
listener on a socket file (-1).

Where Go dials or listens on TCP only (nsqlookupd, every client and
utility), a Unix socket is an addition of ours, and an address string names
one only when it unmistakably is a path: it holds a ``/`` (``./nsqd.sock``
for one in the current directory) or starts with ``@`` (Linux's abstract
namespace), so a ``host:port`` typo still gets Go's error
(``is_socket_path``).  An HTTP URL names one as ``http+unix://`` followed by
the percent-encoded path (``http+unix://%2Frun%2Fnsqd-http.sock/stats``), the
spelling of requests-unixsocket and others.
"""

from __future__ import annotations

from typing import Final

__all__ = ["UNIX_PORT", "go_addr_string", "is_socket_path", "is_unix"]

UNIX_PORT: Final = -1


def is_unix(addr: tuple[str, int]) -> bool:
    """Whether ``addr`` names a Unix-domain socket rather than a TCP endpoint."""
    return addr[1] == UNIX_PORT


def go_addr_string(addr: tuple[str, int]) -> str:
    """``addr`` as Go writes it: ``host:port``, ``[v6]:port``, or a socket's path.

    An unnamed Unix socket reads ``@``: Go on Linux takes the empty name the
    kernel returns for it for an abstract socket's leading NUL, and nsqd shows
    that as a Unix client's ``remote_address``.
    """
    host, port = addr[0], addr[1]
    if port == UNIX_PORT:
        return host or "@"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_socket_path(address: str) -> bool:
    """Whether ``address`` is plainly a Unix socket's path: it has a ``/`` or starts with ``@``."""
    return "/" in address or address.startswith("@")
