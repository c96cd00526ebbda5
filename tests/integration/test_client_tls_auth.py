"""Our Producer, Consumer and utilities speaking TLS, snappy, deflate and AUTH to our nsqd.

Negotiated as go-nsq does (TLS, then deflate or snappy, each after nsqd's OK;
AUTH after them), configured with go-nsq's option names: ``tls_v1``,
``tls_root_ca_file``, ``tls_insecure_skip_verify``, ``snappy``, ``deflate``,
``deflate_level``, ``auth_secret``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from broker.client.aio import ClientConfig, Consumer, Producer
from broker.client.errors import NSQClientError
from tests.integration.conftest import Daemon
from tests.integration.test_auth import AuthServer
from tests.integration.test_auth import auth_server as auth_server  # the fixture
from tests.integration.test_client import Inbox, run, tcp
from tests.integration.test_tls_compression import Certs, clients, expect_features, tls_flags
from tests.integration.test_tls_compression import certs as certs  # the fixture
from tests.integration.test_tools import run_tool

pytestmark = pytest.mark.integration

FEATURES = ["plain", "tls", "snappy", "deflate", "tls+snappy", "tls+deflate"]


@pytest.fixture
def secure_nsqd(nsqd_factory: Callable[..., Daemon], certs: Certs, auth_server: AuthServer) -> Daemon:
    return nsqd_factory(*tls_flags(certs), f"--auth-http-address={auth_server.address}", protocols=("TCP", "HTTP", "HTTPS"))


def config(feature: str, certs: Certs, **extra: Any) -> ClientConfig:
    kw: dict[str, Any] = {"auth_secret": "good"}
    if "tls" in feature:
        kw.update(tls_v1=True, tls_root_ca_file=str(certs.ca))
    if "snappy" in feature:
        kw["snappy"] = True
    if "deflate" in feature:
        kw.update(deflate=True, deflate_level=2)
    return ClientConfig(**kw | extra)


@pytest.mark.parametrize("feature", FEATURES)
def test_producer_and_consumer_negotiate_and_round_trip(secure_nsqd: Daemon, certs: Certs, feature: str) -> None:
    cfg = config(feature, certs)
    bodies = [b"order %d " % i * 50 for i in range(200)]

    async def main() -> None:
        inbox = Inbox()
        async with (
            Producer(tcp(secure_nsqd), config=cfg) as producer,
            Consumer("orders", "c", inbox.add, nsqd_tcp_addresses=[tcp(secure_nsqd)], config=cfg, max_in_flight=20),
        ):
            await producer.mpub("orders", bodies[:100])
            await asyncio.gather(*(producer.pub("orders", b) for b in bodies[100:]))
            await inbox.until(len(bodies))
            (client,) = clients(secure_nsqd)
            expect_features(client, feature if feature != "plain" else "")
            assert client["authed"] is True and client["auth_identity"] == "alice"
        assert sorted(inbox.bodies()) == sorted(bodies)

    run(main())


def test_a_client_that_does_not_trust_the_server_certificate_gives_up(secure_nsqd: Daemon, certs: Certs) -> None:
    async def main() -> None:
        untrusting = ClientConfig(tls_v1=True, auth_secret="good")  # the system's CAs: not our throwaway one
        producer = Producer(tcp(secure_nsqd), config=untrusting)
        try:
            with pytest.raises(NSQClientError, match=r"no nsqd of .* could be reached: .*CERTIFICATE_VERIFY_FAILED"):
                await producer.connect()
        finally:
            await producer.close()
        skip = ClientConfig(tls_v1=True, tls_insecure_skip_verify=True, auth_secret="good")
        async with Producer(tcp(secure_nsqd), config=skip) as producer:
            await producer.pub("orders", b"unverified but encrypted")

    run(main())


def test_the_utilities_take_go_nsqs_option_names(secure_nsqd: Daemon, certs: Certs) -> None:
    opts = [
        "--producer-opt=tls_v1,true",
        f"--producer-opt=tls_root_ca_file,{certs.ca}",
        "--producer-opt=snappy,true",
        "--producer-opt=auth_secret,good",
    ]
    done = run_tool("to_nsq", "--topic=orders", f"--nsqd-tcp-address={tcp(secure_nsqd)}", *opts, input=b"a\nb\nc\n")
    assert done.returncode == 0, done.stderr
    tail = run_tool(
        "nsq_tail", "--topic=orders", f"--nsqd-tcp-address={tcp(secure_nsqd)}", "-n", "3",
        *(o.replace("--producer-opt", "--consumer-opt").replace("snappy", "deflate") for o in opts),
    )
    assert tail.returncode == 0, tail.stderr
    assert sorted(tail.stdout.split()) == [b"a", b"b", b"c"]
