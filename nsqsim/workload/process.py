"""What producers and consumers share: a client process on its own host, and the message key.

A ``ClientProcess`` is one application process: a host, a ``Life`` (see
``nsqsim.clock``), and the ports the client core is built on, all tied to
that life.  When the process dies, ``new_life`` gives the next incarnation
fresh ports; nothing the old client core scheduled or received runs again.
"""

from __future__ import annotations

from broker.client.config import ClientConfig
from nsqsim.clock import Life, SimClock
from nsqsim.network import HostNetwork, SimNetwork

__all__ = ["USER_AGENT", "ClientProcess", "error_text", "host_of", "message_body", "message_key"]

USER_AGENT = "nsqsim-workload/0.2"


def message_key(body: bytes) -> str:
    """The key a body starts with: ``<producer host>:<sequence>``."""
    bar = body.find(b"|")
    return (body[:bar] if bar >= 0 else body).decode("ascii", "replace")


def message_body(key: str, size: int) -> bytes:
    """A body of ``size`` bytes (at least the key and its bar) that starts with ``key|``."""
    return (key + "|").encode().ljust(size, b"x")


def host_of(address: str) -> str:
    """``nsqd-0`` of ``nsqd-0:4150``: histories name nodes by host."""
    return address.rpartition(":")[0] or address


def error_text(exc: BaseException | None) -> str:
    if exc is None:
        return "EOF"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class ClientProcess:
    """A client application's process: host, life, and the ports of that life."""

    def __init__(self, host: str, net: SimNetwork, base_clock: SimClock) -> None:
        self.host = host
        self.net = net
        self.base_clock = base_clock
        self.incarnation = 0
        self.life = Life(host)
        self.clock = base_clock.for_life(self.life)
        self.network: HostNetwork = net.host(host, self.life)

    def new_life(self) -> None:
        self.incarnation += 1
        self.life = Life(f"{self.host}#{self.incarnation}")
        self.clock = self.base_clock.for_life(self.life)
        self.network = self.net.host(self.host, self.life)

    _config: ClientConfig

    def client_config(self, **settings: object) -> ClientConfig:
        """go-nsq's settings with this process's identity."""
        return ClientConfig(client_id=self.host, hostname=self.host, user_agent=USER_AGENT).replace(**settings)

    def secure(self, settings: dict[str, object]) -> None:
        """Add the cluster's TLS, compression and AUTH settings (``nsqsim.security``) to the client's."""
        self._config = self._config.replace(**settings)
