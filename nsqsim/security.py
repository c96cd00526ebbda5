"""TLS, compression and AUTH in a simulated cluster: the ``[security]`` table, and the auth server.

``[security]``::

    tls = true                 # nsqd offers TLS, every client asks for it (and verifies nsqd)
    tls_required = false       # nsqd's --tls-required=true: plain commands refused
    compression = "snappy"     # or "deflate", or "none": asked for by every client
    auth = true                # nsqd's --auth-http-address=auth-0:4181; clients send a secret
    auth_ttl = 10.0            # seconds the auth server's answer holds before nsqd asks again

TLS is the real thing: nsqd's ``TLSLayer`` (``ssl.SSLObject`` over memory)
at both ends of every simulated connection, with a certificate for
``nsqd-0`` .. ``nsqd-31`` signed by a CA that ships with nsqsim
(``nsqsim/certs``; its key is thrown away, and the server key is public:
for simulations only).  The keys are RSA, so every handshake message has the
same size in every run; the bytes differ (OpenSSL draws its own randomness,
which the seed does not reach), but the simulated network sees only sizes and
times, so a seed replays the same history, event for event.

The auth server is a host of its own (``auth-0``, on port 4181), answering
nsqd's ``GET /auth`` from the same HTTP server nsqd's API uses: the workload's
secret may publish and subscribe everywhere, any other is refused with 403.
It is on the simulated network like every host, so partitions cut it off
(AUTH then fails, and clients retry); it is never crashed.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from functools import cache
from importlib.resources import as_file, files
from urllib.parse import parse_qs, urlsplit

from broker.ports import ConnectionHandler
from broker.wire.http import HTTPLimits, HTTPServerConnection, Request, RequestHead, Response
from nsqsim.clock import Life, SimClock
from nsqsim.network import SimNetwork

__all__ = [
    "AUTH_PORT",
    "SECRET",
    "AuthNode",
    "SecurityConfig",
    "client_context",
    "server_context",
]

AUTH_PORT = 4181
SECRET = "nsqsim-workload"
COMPRESSIONS = ("none", "snappy", "deflate")


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    tls: bool = False
    tls_required: bool = False
    compression: str = "none"
    auth: bool = False
    auth_ttl: float = 10.0

    @property
    def enabled(self) -> bool:
        return self.tls or self.auth or self.compression != "none"

    def auth_hosts(self) -> list[str]:
        return ["auth-0"] if self.auth else []

    def nsqd_options(self) -> dict[str, object]:
        """What an nsqd of the cluster runs with (its TLS context is passed beside the options)."""
        out: dict[str, object] = {}
        if self.tls:
            # the files are only named: the simulated nsqd gets its context directly
            out.update(tls_cert="nsqsim/certs/server.pem", tls_key="nsqsim/certs/server.pem")
            if self.tls_required:
                out["tls_required"] = "true"
        if self.auth:
            out["auth_http_addresses"] = [f"{h}:{AUTH_PORT}" for h in self.auth_hosts()]
        return out

    def client_settings(self) -> dict[str, object]:
        """What every workload client adds to its ``ClientConfig``."""
        out: dict[str, object] = {}
        if self.tls:
            out.update(tls_v1=True, tls_context=client_context())
        if self.compression == "snappy":
            out["snappy"] = True
        elif self.compression == "deflate":
            out.update(deflate=True, deflate_level=6)
        if self.auth:
            out["auth_secret"] = SECRET
        return out


def _cert_path(name: str) -> str:
    with as_file(files("nsqsim") / "certs" / name) as path:
        return str(path)


@cache
def server_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(_cert_path("server.pem"))
    ctx.num_tickets = 0  # no session tickets: nothing the handshake sends depends on timing
    return ctx


@cache
def client_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(_cert_path("ca.pem"))
    return ctx


class AuthApp:
    """The auth server's one endpoint, as an ``HTTPApp``."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.queries = 0

    def body_limit(self, head: RequestHead) -> int | None:
        return 0

    def handle(self, request: Request) -> Response:
        self.queries += 1
        parts = urlsplit(request.head.target.decode("latin-1"))
        secret = parse_qs(parts.query).get("secret", [""])[0]
        if parts.path != "/auth" or secret != SECRET:
            return Response(403, (("Content-Type", "application/json"),), b'{"message":"NOT_AUTHORIZED"}')
        doc = {
            "ttl": max(1, round(self.ttl)),
            "identity": "workload",
            "identity_url": "",
            "authorizations": [{"topic": ".*", "channels": [".*"], "permissions": ["subscribe", "publish"]}],
        }
        return Response(200, (("Content-Type", "application/json"),), json.dumps(doc).encode())


class AuthNode:
    """A host serving ``AuthApp`` on ``AUTH_PORT`` for the whole run."""

    def __init__(self, host: str, net: SimNetwork, clock: SimClock, ttl: float) -> None:
        self.host = host
        self.app = AuthApp(ttl)
        life = Life(host)
        self._clock = clock.for_life(life)

        def handler() -> ConnectionHandler:
            return HTTPServerConnection(self.app, HTTPLimits(), self._clock)

        net.listen(host, AUTH_PORT, handler, life)
