"""The asyncio ``Producer``: ``await producer.pub(topic, body)``.

A thin shell over ``ProducerCore`` (see there for failover, queueing and
reconnecting): each publish returns a future that resolves when nsqd answers
``OK`` and raises the typed error it answered otherwise (``PubFailedError``
for ``E_PUB_FAILED``, ...).  The futures are plain ``asyncio.Future``\\ s, so
many publishes can be in flight at once (``await asyncio.gather(...)``);
nsqd answers them in order on the one connection in use.

    async with Producer(["127.0.0.1:4150", "127.0.0.1:4152"]) as producer:
        await producer.pub("events", b"hello")
        await producer.mpub("events", [b"a", b"b"])
        await producer.dpub("events", 5000, b"in five seconds")

``connect()`` (or entering the ``async with``) connects at once and raises
``NotConnectedError`` if no address can be used; without it the first
publish connects.  ``close()`` waits for outstanding answers, at most
``timeout`` seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import TracebackType

from broker.client.address import split_address
from broker.client.aio_runtime import LoggingLogger, client_config
from broker.client.config import ClientConfig
from broker.client.conn import NSQConnection
from broker.client.errors import NotConnectedError, NSQClientError
from broker.client.producer import ProducerCore, encode_dpub, encode_mpub, encode_pub
from broker.ports import Logger
from broker.runtime import AsyncioClock, AsyncioNetwork

__all__ = ["Producer"]


class Producer:
    def __init__(
        self,
        nsqd_tcp_addresses: str | Sequence[str],
        *,
        config: ClientConfig | None = None,
        logger: Logger | None = None,
    ) -> None:
        addresses = [nsqd_tcp_addresses] if isinstance(nsqd_tcp_addresses, str) else list(nsqd_tcp_addresses)
        self.config = client_config(config)
        self._addresses = addresses
        self._logger = logger if logger is not None else LoggingLogger()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._core_obj: ProducerCore | None = None
        self._connected: asyncio.Future[None] | None = None
        self._closed: asyncio.Future[None] | None = None
        # Check the addresses now, not at the first publish.
        if not addresses:
            raise ValueError("a producer needs at least one nsqd address")
        for address in addresses:
            split_address(address)

    # -- publishing ----------------------------------------------------------------------

    def pub(self, topic: str, body: bytes) -> asyncio.Future[None]:
        return self._publish(encode_pub(topic, body))

    def mpub(self, topic: str, bodies: Sequence[bytes]) -> asyncio.Future[None]:
        return self._publish(encode_mpub(topic, bodies))

    def dpub(self, topic: str, delay_ms: int, body: bytes) -> asyncio.Future[None]:
        """Publish ``body`` to be delivered ``delay_ms`` milliseconds from now."""
        return self._publish(encode_dpub(topic, delay_ms, body))

    def _publish(self, command: bytes) -> asyncio.Future[None]:
        core = self._core()
        assert self._loop is not None
        fut: asyncio.Future[None] = self._loop.create_future()

        def settle(err: NSQClientError | None) -> None:
            if fut.done():
                return
            if err is None:
                fut.set_result(None)
            else:
                fut.set_exception(err)

        core.publish(command, settle)
        return fut

    # -- connection ------------------------------------------------------------------------

    @property
    def address(self) -> str | None:
        """The nsqd publishes currently go to."""
        conn = self._core_obj.connection if self._core_obj is not None else None
        return conn.address if conn is not None else None

    async def connect(self) -> None:
        """Connect now and stay connected; NotConnectedError if no address can be used."""
        core = self._core()
        if core.connection is not None:
            return
        assert self._loop is not None
        if self._connected is None or self._connected.done():
            self._connected = self._loop.create_future()
        waiter = self._connected
        core.start()
        await asyncio.shield(waiter)

    async def close(self, timeout: float = 30.0) -> None:
        """Wait (up to ``timeout``) for outstanding answers, then close."""
        if self._core_obj is None:
            return
        core = self._core_obj
        assert self._closed is not None
        core.close()
        try:
            await asyncio.wait_for(asyncio.shield(self._closed), timeout)
        except TimeoutError:
            core.abort()
            await self._closed

    async def __aenter__(self) -> Producer:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _core(self) -> ProducerCore:
        if self._core_obj is not None:
            return self._core_obj
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._closed = loop.create_future()
        self._core_obj = ProducerCore(
            self._addresses,
            self.config,
            clock=AsyncioClock(loop),
            network=AsyncioNetwork(loop, connect_timeout=self.config.dial_timeout),
            logger=self._logger,
            on_ready=self._on_ready,
            on_round_failed=self._on_round_failed,
            on_closed=self._on_closed,
        )
        return self._core_obj

    def _on_ready(self, conn: NSQConnection) -> None:
        if self._connected is not None and not self._connected.done():
            self._connected.set_result(None)

    def _on_round_failed(self, exc: BaseException | None) -> None:
        if self._connected is not None and not self._connected.done():
            self._connected.set_exception(NotConnectedError(f"no nsqd of {self._addresses} could be reached: {exc}"))

    def _on_closed(self) -> None:
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
