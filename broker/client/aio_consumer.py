"""The asyncio ``Consumer``: a handler called per message, or ``async for``.

A thin shell over ``ConsumerCore`` (see there for RDY distribution, backoff,
max attempts and discovery).  Two ways to take messages:

* a handler, ``Consumer(topic, channel, handler, ...)``: called with each
  message; it may be a plain function (called right in the read loop, the
  fastest) or a coroutine function (each message gets its own task; at most
  ``max_in_flight`` run at once, since nsqd sends no more).  When it returns,
  the message is finished, or requeued with backoff if it returned ``False``
  or raised; a handler that answered the message itself, or called
  ``msg.disable_auto_response()``, is left alone (go-nsq's rules).
* iteration, ``async for msg in consumer``: the caller answers every message
  (``finish()``, ``requeue()``, ``touch()``); nothing is answered for it.

``start()`` connects (to every ``nsqd_tcp_addresses`` entry and through every
``lookupd_http_addresses`` nsqlookupd) and returns once each direct nsqd has
been tried; a failed one is retried in the background.  ``stop()`` is the
graceful stop: CLS on every connection (nsqd sends no more), messages not yet
taken by an iterator are requeued at once, handlers still running are waited
for, connections close as their in-flight messages are answered; after
``timeout`` seconds whatever is left is cancelled and the connections are
dropped (nsqd redelivers what they had in flight once it times out).

    async with Consumer("events", "archive", handle, nsqd_tcp_addresses=["127.0.0.1:4150"],
                        max_in_flight=100) as consumer:
        await stop_requested.wait()
"""

from __future__ import annotations

import asyncio
import inspect
import traceback
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType

from broker.client.address import split_address
from broker.client.aio_runtime import LoggingLogger, client_config
from broker.client.config import ClientConfig
from broker.client.conn import NSQConnection
from broker.client.consumer import ConsumerCore, ConsumerStats
from broker.client.http import HTTPRequest
from broker.client.lookupd import lookup_url
from broker.client.message import Message
from broker.ports import Logger
from broker.runtime import AsyncioClock, AsyncioNetwork, RuntimeRandom
from broker.wire.names import is_valid_channel_name, is_valid_topic_name

__all__ = ["Consumer", "Handler"]

Handler = Callable[[Message], "Awaitable[object] | object"]


class Consumer:
    def __init__(
        self,
        topic: str,
        channel: str,
        handler: Handler | None = None,
        *,
        nsqd_tcp_addresses: Sequence[str] = (),
        lookupd_http_addresses: Sequence[str] = (),
        max_in_flight: int | None = None,
        config: ClientConfig | None = None,
        on_give_up: Callable[[Message], object] | None = None,
        logger: Logger | None = None,
        stop_timeout: float = 30.0,
    ) -> None:
        config = client_config(config)
        if max_in_flight is not None:
            config = config.replace(max_in_flight=max_in_flight)
        if not nsqd_tcp_addresses and not lookupd_http_addresses:
            raise ValueError("give nsqd_tcp_addresses or lookupd_http_addresses")
        self.topic = topic
        self.channel = channel
        self.config = config
        self._handler = handler
        self._nsqd = list(nsqd_tcp_addresses)
        self._lookupd = list(lookupd_http_addresses)
        self._on_give_up_cb = on_give_up
        self._logger = logger if logger is not None else LoggingLogger()
        self._stop_timeout = stop_timeout
        self._core_obj: ConsumerCore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._queue: asyncio.Queue[Message | None] = asyncio.Queue()
        self._closed = asyncio.Event()
        self._changed = asyncio.Event()
        self._unsettled: set[str] = set()
        self._stopping = False
        self._stop_task: asyncio.Task[None] | None = None
        # Bad names and addresses are refused now, not when start() runs.
        if not is_valid_topic_name(topic):
            raise ValueError(f"invalid topic name {topic!r}")
        if not is_valid_channel_name(channel):
            raise ValueError(f"invalid channel name {channel!r}")
        for address in self._nsqd:
            split_address(address)
        for address in self._lookupd:
            HTTPRequest.from_url(lookup_url(address, topic))

    # -- running -------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect; returns once every direct nsqd has been tried (connected or not)."""
        if self._core_obj is not None:
            return
        loop = asyncio.get_running_loop()
        self._loop = loop
        core = self._core_obj = ConsumerCore(
            self.topic,
            self.channel,
            self.config,
            clock=AsyncioClock(loop),
            network=AsyncioNetwork(loop, connect_timeout=self.config.dial_timeout),
            random=RuntimeRandom(),
            on_message=self._on_message,
            on_give_up=self._on_give_up,
            on_closed=self._on_closed,
            on_ready=self._on_ready,
            on_disconnect=self._on_disconnect,
            logger=self._logger,
        )
        self._unsettled = set(self._nsqd)
        for address in self._nsqd:
            core.connect_to_nsqd(address)
        for address in self._lookupd:
            core.connect_to_lookupd(address)
        while self._unsettled and not self._stopping:
            await self._wait_changed()

    async def stop(self, timeout: float | None = None) -> None:
        """Stop gracefully (see the module docstring); safe to call more than once."""
        if self._stop_task is None:
            self._stop_task = asyncio.ensure_future(self._stop(self._stop_timeout if timeout is None else timeout))
        await asyncio.shield(self._stop_task)

    async def wait_closed(self) -> None:
        """Until a stop has completed."""
        await self._closed.wait()

    async def wait_connections(self, count: int = 1, timeout: float | None = None) -> None:
        """Until at least ``count`` connections are subscribed (TimeoutError after ``timeout``)."""
        await self.wait_for(lambda: len(self.connections) >= count, timeout)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float | None = None) -> None:
        """Until ``predicate()`` holds, checked whenever a connection comes or goes or a handler ends."""

        async def until() -> None:
            while not predicate():
                await self._wait_changed()

        await asyncio.wait_for(until(), timeout)

    async def __aenter__(self) -> Consumer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def __aiter__(self) -> Consumer:
        if self._handler is not None:
            raise TypeError("a consumer with a handler cannot also be iterated")
        return self

    async def __anext__(self) -> Message:
        msg = await self._queue.get()
        if msg is None:
            self._queue.put_nowait(None)  # let every other iterator end too
            raise StopAsyncIteration
        return msg

    # -- what it is doing ------------------------------------------------------------------

    @property
    def connections(self) -> list[NSQConnection]:
        return [] if self._core_obj is None else self._core_obj.connections

    @property
    def stats(self) -> ConsumerStats:
        if self._core_obj is None:
            return ConsumerStats(0, 0, 0, 0, 0)
        return self._core_obj.stats()

    @property
    def backoff_level(self) -> int:
        """0 unless handlers are failing (see ``ConsumerCore``)."""
        return 0 if self._core_obj is None else self._core_obj.backoff_level

    @property
    def is_starved(self) -> bool:
        return self._core_obj is not None and self._core_obj.is_starved

    @property
    def max_in_flight(self) -> int:
        return self.config.max_in_flight if self._core_obj is None else self._core_obj.max_in_flight

    def change_max_in_flight(self, max_in_flight: int) -> None:
        if self._core_obj is None:
            self.config = self.config.replace(max_in_flight=max_in_flight)
        else:
            self._core_obj.change_max_in_flight(max_in_flight)

    # -- from the core ---------------------------------------------------------------------

    def _on_message(self, msg: Message) -> None:
        if self._handler is None:
            if self._stopping:
                msg.requeue(0, backoff=False)
            else:
                self._queue.put_nowait(msg)
            return
        try:
            result = self._handler(msg)
        except Exception as exc:  # the user's handler failed: requeue, as go-nsq does
            self._handler_failed(msg, exc)
            return
        if result is None or result is True:  # the common answers, without isawaitable()
            if msg.auto_response:
                msg.finish()  # a no-op if the handler answered already
        elif inspect.isawaitable(result):
            assert self._loop is not None
            task = self._loop.create_task(self._run(msg, result))
            self._tasks.add(task)
            task.add_done_callback(self._task_done)
        else:
            self._respond(msg, result)

    async def _run(self, msg: Message, handling: Awaitable[object]) -> None:
        try:
            result = await handling
        except asyncio.CancelledError:
            raise  # the stop timed out: nsqd redelivers the message after its timeout
        except Exception as exc:
            self._handler_failed(msg, exc)
            return
        self._respond(msg, result)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._notify()

    def _respond(self, msg: Message, result: object) -> None:
        if msg.has_responded or not msg.auto_response:
            return
        if result is False:
            msg.requeue()
        else:
            msg.finish()

    def _handler_failed(self, msg: Message, exc: Exception) -> None:
        text = "".join(traceback.format_exception(exc)).rstrip()
        self._logger.log("ERROR", f"[{self.topic}/{self.channel}] handler failed for msg {msg.id.decode('ascii', 'replace')}: {text}")
        if not msg.has_responded and msg.auto_response:
            msg.requeue()

    def _on_give_up(self, msg: Message) -> None:
        if self._on_give_up_cb is None:
            return
        try:
            result = self._on_give_up_cb(msg)
            if inspect.isawaitable(result):
                assert self._loop is not None
                self._loop.create_task(_await(result))
        except Exception as exc:
            self._logger.log("ERROR", f"[{self.topic}/{self.channel}] on_give_up failed: {exc!r}")

    def _on_ready(self, conn: NSQConnection) -> None:
        self._unsettled.discard(conn.address)
        self._notify()

    def _on_disconnect(self, conn: NSQConnection, exc: BaseException | None) -> None:
        self._unsettled.discard(conn.address)
        self._notify()

    def _on_closed(self) -> None:
        self._closed.set()
        self._notify()

    # -- stopping ------------------------------------------------------------------------------

    async def _stop(self, timeout: float) -> None:
        self._stopping = True
        self._notify()
        core = self._core_obj
        if core is None:
            self._queue.put_nowait(None)
            self._closed.set()
            return
        core.stop()
        while not self._queue.empty():
            queued = self._queue.get_nowait()
            if queued is not None:
                queued.requeue(0, backoff=False)
        self._queue.put_nowait(None)

        async def drained() -> None:
            while self._tasks or not self._closed.is_set():
                await self._wait_changed()

        try:
            await asyncio.wait_for(drained(), timeout)
        except TimeoutError:
            self._logger.log(
                "WARN",
                f"[{self.topic}/{self.channel}] stop timed out after {timeout:g}s; dropping {len(self._tasks)} handlers and the connections",
            )
            for task in list(self._tasks):
                task.cancel()
            core.abort()
            await self._closed.wait()

    async def _wait_changed(self) -> None:
        self._changed.clear()
        await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()


async def _await(awaitable: Awaitable[object]) -> None:
    await awaitable
