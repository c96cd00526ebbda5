"""Our asyncio Producer and Consumer against our nsqd (and nsqlookupd, and pynsq).

Every test runs inside ``asyncio.run`` and awaits the events it checks
(messages arriving, connections coming and going), each under ``BOUND``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from broker.client.aio import (
    ClientConfig,
    Consumer,
    Message,
    NotConnectedError,
    Producer,
    client_config,
    fetch,
)
from broker.client.errors import BadMessageError
from tests.integration.conftest import Daemon
from tests.integration.test_pynsq import Publisher, Received, reader

pytestmark = pytest.mark.integration

BOUND = 20.0  # seconds any awaited event may take before the test fails
# Fast retries, so a requeue comes straight back and a backoff is short.
FAST = ClientConfig(default_requeue_delay=0.0, backoff_multiplier=0.02)


def tcp(daemon: Daemon) -> str:
    host, port = daemon.tcp_address
    return f"{host}:{port}"


def http(daemon: Daemon) -> str:
    host, port = daemon.http_address
    return f"{host}:{port}"


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, BOUND * 3))


class Inbox:
    """Messages a handler was given, and a way to await how many."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._changed = asyncio.Event()

    def add(self, msg: Message) -> None:
        self.messages.append(msg)
        self._changed.set()

    async def until(self, count: int) -> list[Message]:
        async def wait() -> None:
            while len(self.messages) < count:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), BOUND)
        return self.messages

    def bodies(self) -> list[bytes]:
        return [m.body for m in self.messages]


async def channel_stats(daemon: Daemon, topic: str, channel: str) -> dict[str, Any]:
    resp = await fetch(f"http://{http(daemon)}/stats?format=json&topic={topic}&channel={channel}")
    [t] = resp.json()["topics"]  # type: ignore[index]
    [c] = t["channels"]
    return c  # type: ignore[no-any-return]


def test_published_messages_reach_a_handler(nsqd: Daemon) -> None:
    async def main() -> None:
        inbox = Inbox()
        async with Producer(tcp(nsqd)) as producer, Consumer("t", "c", inbox.add, nsqd_tcp_addresses=[tcp(nsqd)], max_in_flight=50) as consumer:
            await producer.pub("t", b"one")
            await producer.mpub("t", [b"m%d" % i for i in range(100)])
            await asyncio.gather(*(producer.pub("t", b"p%d" % i) for i in range(20)))
            await inbox.until(121)
            assert consumer.stats.messages_finished == 121
        assert sorted(inbox.bodies()) == sorted([b"one", *(b"m%d" % i for i in range(100)), *(b"p%d" % i for i in range(20))])
        stats = await channel_stats(nsqd, "t", "c")
        assert (stats["depth"], stats["in_flight_count"], stats["message_count"]) == (0, 0, 121)

    run(main())


def test_a_deferred_message_comes_after_one_published_later(nsqd: Daemon) -> None:
    async def main() -> None:
        inbox = Inbox()
        async with Producer(tcp(nsqd)) as producer, Consumer("t", "c", inbox.add, nsqd_tcp_addresses=[tcp(nsqd)]):
            await producer.dpub("t", 500, b"deferred")
            await producer.pub("t", b"now")
            await inbox.until(2)
        assert inbox.bodies() == [b"now", b"deferred"]
        assert [m.attempts for m in inbox.messages] == [1, 1]

    run(main())


def test_async_iteration_leaves_the_answers_to_the_caller(nsqd: Daemon) -> None:
    async def main() -> None:
        async with Producer(tcp(nsqd)) as producer:
            await producer.mpub("t", [b"a", b"b", b"c"])
        consumer = Consumer("t", "c", nsqd_tcp_addresses=[tcp(nsqd)], max_in_flight=3)
        seen = []
        async with consumer:
            async for msg in consumer:
                seen.append(msg.body)
                msg.touch()
                msg.finish()
                if len(seen) == 3:
                    break
        assert sorted(seen) == [b"a", b"b", b"c"]
        stats = await channel_stats(nsqd, "t", "c")
        assert (stats["depth"], stats["in_flight_count"], stats["requeue_count"]) == (0, 0, 0)

    run(main())


def test_a_failing_handler_requeues_backs_off_and_gets_it_again(nsqd: Daemon) -> None:
    async def main() -> None:
        inbox = Inbox()
        levels = []

        async def handle(msg: Message) -> None:
            inbox.add(msg)
            levels.append(consumer.backoff_level)
            if msg.attempts == 1:
                raise RuntimeError("first try fails")

        consumer = Consumer("t", "c", handle, nsqd_tcp_addresses=[tcp(nsqd)], config=FAST, max_in_flight=5)
        async with Producer(tcp(nsqd)) as producer, consumer:
            await producer.pub("t", b"retry me")
            await inbox.until(2)
            await consumer.wait_for(lambda: consumer.stats.messages_finished == 1, BOUND)
        assert [(m.body, m.attempts) for m in inbox.messages] == [(b"retry me", 1), (b"retry me", 2)]
        assert inbox.messages[0].id == inbox.messages[1].id
        assert levels == [0, 1]  # the second delivery was the backoff's test message
        assert consumer.backoff_level == 0

    run(main())


def test_a_message_past_max_attempts_is_given_up(nsqd: Daemon) -> None:
    async def main() -> None:
        inbox = Inbox()
        given_up: list[Message] = []
        done = asyncio.Event()

        def give_up(msg: Message) -> None:
            given_up.append(msg)
            done.set()

        def fail(msg: Message) -> bool:
            inbox.add(msg)
            return False  # requeue

        config = FAST.replace(max_attempts=2, max_backoff_duration=0)
        consumer = Consumer("t", "c", fail, nsqd_tcp_addresses=[tcp(nsqd)], config=config, on_give_up=give_up)
        async with Producer(tcp(nsqd)) as producer, consumer:
            await producer.pub("t", b"poison")
            await asyncio.wait_for(done.wait(), BOUND)
            await consumer.wait_for(lambda: consumer.stats.messages_finished == 1, BOUND)
        assert [m.attempts for m in inbox.messages] == [1, 2]
        assert [(m.body, m.attempts) for m in given_up] == [(b"poison", 3)]
        stats = await channel_stats(nsqd, "t", "c")
        assert (stats["depth"], stats["in_flight_count"], stats["requeue_count"]) == (0, 0, 2)

    run(main())


def test_max_in_flight_is_split_over_two_nsqd_and_moves_when_one_goes(nsqd_factory: Callable[..., Daemon]) -> None:
    a, b = nsqd_factory(), nsqd_factory()

    async def main() -> None:
        inbox = Inbox()
        release = asyncio.Event()

        async def hold(msg: Message) -> None:
            inbox.add(msg)
            await release.wait()

        consumer = Consumer("t", "c", hold, nsqd_tcp_addresses=[tcp(a), tcp(b)], max_in_flight=10)
        async with Producer(tcp(a)) as producer, consumer:
            await consumer.wait_connections(2, BOUND)
            assert sorted(c.rdy for c in consumer.connections) == [5, 5]
            await producer.mpub("t", [b"m%d" % i for i in range(10)])
            await inbox.until(5)
            stats = await channel_stats(a, "t", "c")
            assert (stats["in_flight_count"], stats["depth"]) == (5, 5)  # nsqd a holds to RDY 5
            b.stop()
            await consumer.wait_for(lambda: len(consumer.connections) == 1, BOUND)
            assert [c.rdy for c in consumer.connections] == [10]
            await inbox.until(10)  # the rest flow once a has all ten
            release.set()
        assert sorted(inbox.bodies()) == sorted(b"m%d" % i for i in range(10))

    run(main())


def test_stop_waits_for_handlers_then_closes(nsqd: Daemon) -> None:
    async def main() -> None:
        inbox = Inbox()
        release = asyncio.Event()
        events: list[str] = []

        async def slow(msg: Message) -> None:
            inbox.add(msg)
            await release.wait()
            events.append("handled")

        consumer = Consumer("t", "c", slow, nsqd_tcp_addresses=[tcp(nsqd)], max_in_flight=10)
        async with Producer(tcp(nsqd)) as producer:
            await consumer.start()
            await producer.mpub("t", [b"a", b"b", b"c"])
            await inbox.until(3)
            stopping = asyncio.ensure_future(consumer.stop())
            await consumer.wait_for(lambda: not consumer.connections, BOUND)  # CLS sent on each
            events.append("stop requested")
            release.set()
            await stopping
            events.append("stopped")
        assert events == ["stop requested", "handled", "handled", "handled", "stopped"]
        assert consumer.stats.messages_finished == 3
        stats = await channel_stats(nsqd, "t", "c")
        assert (stats["depth"], stats["in_flight_count"], stats["requeue_count"], stats["client_count"]) == (0, 0, 0, 0)

    run(main())


def test_a_stop_that_runs_out_of_time_drops_the_connection_and_nsqd_redelivers(nsqd: Daemon) -> None:
    async def main() -> None:
        inbox = Inbox()
        forever = asyncio.Event()

        async def stuck(msg: Message) -> None:
            inbox.add(msg)
            await forever.wait()

        # nsqd redelivers a dropped connection's messages when they time out: make that 1s.
        consumer = Consumer("t", "c", stuck, nsqd_tcp_addresses=[tcp(nsqd)], config=client_config(msg_timeout=1.0))
        async with Producer(tcp(nsqd)) as producer:
            await consumer.start()
            await producer.pub("t", b"stuck")
            await inbox.until(1)
            await consumer.stop(timeout=0.2)
        assert consumer.connections == []
        again = Inbox()
        async with Consumer("t", "c", again.add, nsqd_tcp_addresses=[tcp(nsqd)]):
            [msg] = await again.until(1)
        assert (msg.body, msg.attempts) == (b"stuck", 2)

    run(main())


def test_an_error_frame_becomes_the_publishs_exception(nsqd_factory: Callable[..., Daemon]) -> None:
    small = nsqd_factory("--max-msg-size=100")

    async def main() -> None:
        async with Producer(tcp(small)) as producer:
            with pytest.raises(BadMessageError, match="E_BAD_MESSAGE PUB message too big 200 > 100"):
                await producer.pub("t", b"x" * 200)
            await producer.pub("t", b"small enough")  # on a new connection: nsqd closed the old one

    run(main())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_a_producer_fails_over_to_an_nsqd_that_answers(nsqd: Daemon) -> None:
    async def main() -> None:
        dead = f"127.0.0.1:{free_port()}"
        async with Producer([dead, tcp(nsqd)]) as producer:
            assert producer.address == tcp(nsqd)
            await producer.pub("t", b"via the second")
        with pytest.raises(NotConnectedError):
            await Producer(dead).connect()
        with pytest.raises(NotConnectedError):
            await Producer(dead).pub("t", b"nowhere")

    run(main())


def test_a_consumer_finds_nsqd_through_nsqlookupd(
    nsqd_factory: Callable[..., Daemon], nsqlookupd_factory: Callable[..., Daemon]
) -> None:
    lookupd = nsqlookupd_factory()
    node = nsqd_factory(f"--lookupd-tcp-address={tcp(lookupd)}", "--broadcast-address=127.0.0.1")

    async def main() -> None:
        inbox = Inbox()
        async with Producer(tcp(node)) as producer:
            await producer.pub("t", b"found")
        config = client_config(lookupd_poll_interval=0.2)
        async with Consumer("t", "c", inbox.add, lookupd_http_addresses=[http(lookupd)], config=config) as consumer:
            [msg] = await inbox.until(1)
            assert msg.nsqd_address == tcp(node)
            assert [c.address for c in consumer.connections] == [tcp(node)]

    run(main())


# -- interop with pynsq -------------------------------------------------------------------------


def test_pynsq_writer_to_our_consumer(nsqd: Daemon) -> None:
    async def main() -> None:
        inbox = Inbox()
        async with Consumer("t", "c", inbox.add, nsqd_tcp_addresses=[tcp(nsqd)], max_in_flight=20):
            writer = Publisher(nsqd)
            await writer.pub("t", b"from pynsq")
            await writer.mpub("t", [b"w%d" % i for i in range(30)])
            await inbox.until(31)
        assert sorted(inbox.bodies()) == sorted([b"from pynsq", *(b"w%d" % i for i in range(30))])

    run(main())


def test_our_producer_to_a_pynsq_reader(nsqd: Daemon) -> None:
    async def main() -> None:
        got = Received()
        r = reader(nsqd, "t", "c", got.finish)
        try:
            async with Producer(tcp(nsqd)) as producer:
                await producer.pub("t", b"to pynsq")
                await producer.mpub("t", [b"r%d" % i for i in range(30)])
                await producer.dpub("t", 10, b"deferred")
            await got.until(lambda items: len(items) >= 32)
        finally:
            r.close()
        assert sorted(got.bodies()) == sorted([b"to pynsq", b"deferred", *(b"r%d" % i for i in range(30))])

    run(main())
