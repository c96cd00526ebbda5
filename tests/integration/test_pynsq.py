"""pynsq, the official Python NSQ client, against our nsqd: a third-party client, unchanged.

pynsq runs on tornado, which runs on asyncio: each test runs its readers and
writers inside ``asyncio.run`` and awaits what they receive, under a bound.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import nsq
import nsq.protocol
import pytest

from tests.integration.conftest import Daemon

pytestmark = pytest.mark.integration

BOUND = 20.0  # seconds any awaited delivery may take before the test fails


def _addr(daemon: Daemon) -> str:
    host, port = daemon.tcp_address
    return f"{host}:{port}"


class Received:
    """Messages a reader was handed: (body, attempts, id, monotonic time)."""

    def __init__(self, changed: asyncio.Event | None = None) -> None:
        self.items: list[tuple[bytes, int, bytes, float]] = []
        # Readers whose progress is awaited together share one event.
        self._changed = changed or asyncio.Event()

    def add(self, msg: Any) -> None:
        self.items.append((bytes(msg.body), int(msg.attempts), bytes(msg.id), time.monotonic()))
        self._changed.set()

    def finish(self, msg: Any) -> bool:
        """A pynsq handler: record the message and let pynsq FIN it."""
        self.add(msg)
        return True

    async def until(self, done: Callable[[list[tuple[bytes, int, bytes, float]]], bool]) -> None:
        async def wait() -> None:
            while not done(self.items):
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), BOUND)

    def bodies(self) -> list[bytes]:
        return [b for b, _, _, _ in self.items]


def reader(daemon: Daemon, topic: str, channel: str, handler: Callable[[Any], Any], **kw: Any) -> Any:
    kw.setdefault("max_in_flight", 10)
    return nsq.Reader(topic=topic, channel=channel, message_handler=handler, nsqd_tcp_addresses=[_addr(daemon)], **kw)


class Publisher:
    """An nsq.Writer whose publishes can be awaited."""

    def __init__(self, daemon: Daemon, **kw: Any) -> None:
        self.writer = nsq.Writer([_addr(daemon)], **kw)

    async def _call(self, method: str, *args: Any) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(int(BOUND / 0.05)):
            # The writer connects in the background; until then it answers with an error.
            fut: asyncio.Future[Any] = loop.create_future()

            def callback(conn: Any, data: Any, fut: asyncio.Future[Any] = fut) -> None:
                if not fut.done():
                    fut.set_result(data)

            getattr(self.writer, method)(*args, callback=callback)
            result = await asyncio.wait_for(fut, BOUND)
            if result == b"OK":
                return
            if not isinstance(result, nsq.protocol.SendError):
                raise AssertionError(f"{method} answered {result!r}")
            await asyncio.sleep(0.05)
        raise AssertionError(f"{method} never succeeded")

    async def pub(self, topic: str, body: bytes) -> None:
        await self._call("pub", topic, body)

    async def mpub(self, topic: str, bodies: list[bytes]) -> None:
        await self._call("mpub", topic, bodies)

    async def dpub(self, topic: str, delay_ms: int, body: bytes) -> None:
        await self._call("dpub", topic, delay_ms, body)


def run(coro: Any) -> None:
    asyncio.run(coro)


def test_publish_and_consume(nsqd: Daemon) -> None:
    async def main() -> None:
        got = Received()
        r = reader(nsqd, "t", "c", got.finish)
        await Publisher(nsqd).pub("t", b"hello")
        await got.until(lambda items: len(items) >= 1)
        r.close()
        assert [(b, a) for b, a, _, _ in got.items] == [(b"hello", 1)]

    run(main())


def test_mpub_delivers_every_message(nsqd: Daemon) -> None:
    async def main() -> None:
        got = Received()
        r = reader(nsqd, "t", "c", got.finish)
        bodies = [b"m%d" % i for i in range(50)]
        await Publisher(nsqd).mpub("t", bodies)
        await got.until(lambda items: len(items) >= 50)
        r.close()
        assert sorted(got.bodies()) == sorted(bodies)

    run(main())


def test_dpub_is_not_delivered_before_its_delay(nsqd: Daemon) -> None:
    async def main() -> None:
        got = Received()
        r = reader(nsqd, "t", "c", got.finish)
        pub = Publisher(nsqd)
        await pub.pub("t", b"warm-up")  # the reader is connected once this arrives
        await got.until(lambda items: len(items) >= 1)
        sent = time.monotonic()
        await pub.dpub("t", 800, b"deferred")
        await got.until(lambda items: len(items) >= 2)
        r.close()
        body, attempts, _, at = got.items[1]
        assert (body, attempts) == (b"deferred", 1)
        assert at - sent >= 0.8  # a deferred message is never early

    run(main())


def test_requeue_redelivers_with_the_next_attempt(nsqd: Daemon) -> None:
    async def main() -> None:
        got = Received()

        def handler(m: Any) -> None:
            got.add(m)
            m.enable_async()
            if m.attempts == 1:
                m.requeue(delay=0, backoff=False)
            else:
                m.finish()

        r = reader(nsqd, "t", "c", handler)
        await Publisher(nsqd).pub("t", b"again")
        await got.until(lambda items: len(items) >= 2)
        r.close()
        assert [(b, a) for b, a, _, _ in got.items] == [(b"again", 1), (b"again", 2)]
        assert got.items[0][2] == got.items[1][2]

    run(main())


def test_a_message_not_finished_in_time_is_redelivered(nsqd: Daemon) -> None:
    async def main() -> None:
        got = Received()

        def handler(m: Any) -> None:
            got.add(m)
            m.enable_async()  # and never answer the first delivery
            if m.attempts > 1:
                m.finish()

        r = reader(nsqd, "t", "c", handler, msg_timeout=1)  # pynsq takes seconds
        await Publisher(nsqd).pub("t", b"slow")
        await got.until(lambda items: len(items) >= 2)
        r.close()
        assert [(b, a) for b, a, _, _ in got.items] == [(b"slow", 1), (b"slow", 2)]

    run(main())


def test_two_channels_each_get_every_message(nsqd: Daemon) -> None:
    async def main() -> None:
        a, b = Received(), Received()
        ra = reader(nsqd, "t", "a", a.finish)
        rb = reader(nsqd, "t", "b", b.finish)
        pub = Publisher(nsqd)
        await pub.pub("t", b"first")  # both channels exist once both have it
        await a.until(lambda items: len(items) >= 1)
        await b.until(lambda items: len(items) >= 1)
        bodies = [b"x%d" % i for i in range(20)]
        await pub.mpub("t", bodies)
        await a.until(lambda items: len(items) >= 21)
        await b.until(lambda items: len(items) >= 21)
        ra.close()
        rb.close()
        assert sorted(a.bodies()) == sorted(b.bodies()) == sorted([b"first", *bodies])

    run(main())


def test_two_consumers_split_a_channel(nsqd: Daemon) -> None:
    async def main() -> None:
        either = asyncio.Event()
        a, b = Received(either), Received(either)
        ra = reader(nsqd, "t", "c", a.finish, max_in_flight=5)
        rb = reader(nsqd, "t", "c", b.finish, max_in_flight=5)
        bodies = [b"s%d" % i for i in range(200)]
        pub = Publisher(nsqd)
        for i in range(0, 200, 20):
            await pub.mpub("t", bodies[i : i + 20])
        await a.until(lambda items: len(items) + len(b.items) >= 200)
        ra.close()
        rb.close()
        assert sorted(a.bodies() + b.bodies()) == sorted(bodies)
        assert a.items and b.items  # both consumers took part

    run(main())
