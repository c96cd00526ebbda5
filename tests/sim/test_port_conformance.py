"""One suite, two implementations: the asyncio ports on loopback sockets and the simulated ones.

Each test is written once against a small ``Runtime`` interface and runs
against both: ``AsyncioRuntime`` (``broker/runtime``, real TCP on 127.0.0.1,
port 0) and ``SimRuntime`` (``nsqsim``, a simpy environment).  A test never
sleeps: it waits on a condition that a handler's callback makes true, and the
runtime gives up (failing the test) after a bound, in wall-clock seconds for
asyncio and simulated seconds for the simulator.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator
from typing import Protocol

import pytest
import simpy

from broker.ports import Clock, Connection, ConnectionHandler, HandlerFactory
from broker.runtime import AsyncioClock, AsyncioListener, AsyncioNetwork, listen
from nsqsim.clock import Life, SimClock
from nsqsim.network import SimNetwork

BOUND = 30.0


class Runtime(Protocol):
    clock: Clock

    def serve(self, factory: HandlerFactory) -> int:
        """Listen on a free port; the port."""
        ...

    def connect(self, port: int, handler: ConnectionHandler) -> None: ...

    def free_port(self) -> int:
        """A port that nothing listens on."""
        ...

    def wait(self, cond: Callable[[], bool], what: str) -> None:
        """Run until ``cond()`` holds; fail the test after the bound."""
        ...

    def poke(self) -> None:
        """Handlers call this whenever something happened."""
        ...

    def close(self) -> None: ...


class AsyncioRuntime:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.clock: Clock = AsyncioClock(self.loop)
        self._net = AsyncioNetwork(self.loop)
        self._listeners: list[AsyncioListener] = []
        self._waiter: tuple[Callable[[], bool], asyncio.Future[None]] | None = None

    def serve(self, factory: HandlerFactory) -> int:
        listener = self.loop.run_until_complete(listen("127.0.0.1", 0, factory))
        self._listeners.append(listener)
        return listener.address[1]

    def connect(self, port: int, handler: ConnectionHandler) -> None:
        self._net.connect("127.0.0.1", port, handler)

    def free_port(self) -> int:
        listener = self.loop.run_until_complete(listen("127.0.0.1", 0, lambda: Recorder(self)))
        port = listener.address[1]
        listener.close()
        self.loop.run_until_complete(listener._server.wait_closed())
        return port

    def wait(self, cond: Callable[[], bool], what: str) -> None:
        if cond():
            return
        fut: asyncio.Future[None] = self.loop.create_future()
        self._waiter = (cond, fut)
        try:
            self.loop.run_until_complete(asyncio.wait_for(fut, BOUND))
        except TimeoutError:
            pytest.fail(f"timed out waiting for {what}")
        finally:
            self._waiter = None

    def poke(self) -> None:
        if self._waiter is not None:
            cond, fut = self._waiter
            if not fut.done() and cond():
                fut.set_result(None)

    def close(self) -> None:
        for listener in self._listeners:
            listener.close()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        # Let transports finish closing before the loop goes away.
        self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.close()


class SimRuntime:
    def __init__(self) -> None:
        self.env = simpy.Environment()
        self.net = SimNetwork(self.env, random.Random(7))
        self.net.add_host("server")
        self.net.add_host("client")
        self.server_life = Life("server")
        self.client_life = Life("client")
        self.clock: Clock = SimClock(self.env, self.client_life)

    def serve(self, factory: HandlerFactory) -> int:
        return self.net.listen("server", 0, factory, self.server_life).address[1]

    def connect(self, port: int, handler: ConnectionHandler) -> None:
        self.net.host("client", self.client_life).connect("server", port, handler)

    def free_port(self) -> int:
        return 4999

    def wait(self, cond: Callable[[], bool], what: str) -> None:
        start = self.env.now
        while not cond():
            if self.env.peek() == float("inf") or self.env.now - start > BOUND:
                pytest.fail(f"simulation idle or past the bound while waiting for {what}")
            self.env.step()

    def poke(self) -> None:
        pass

    def close(self) -> None:
        pass


class Recorder:
    """A ConnectionHandler that records every call, in order."""

    def __init__(self, rt: Runtime, *, pause_on_connect: bool = False) -> None:
        self.rt = rt
        self.conn: Connection | None = None
        self.data = bytearray()
        self.calls: list[str] = []
        self.lost: list[Exception | None] = []
        self.pause_on_connect = pause_on_connect

    def connection_made(self, conn: Connection) -> None:
        self.conn = conn
        self.calls.append("made")
        if self.pause_on_connect:
            conn.pause_reading()
        self.rt.poke()

    def data_received(self, data: bytes) -> None:
        if not self.calls or self.calls[-1] != "data":
            self.calls.append("data")
        self.data += data
        self.rt.poke()

    def eof_received(self) -> None:
        self.calls.append("eof")
        self.rt.poke()

    def connection_lost(self, exc: Exception | None) -> None:
        self.calls.append("lost")
        self.lost.append(exc)
        self.rt.poke()

    def pause_writing(self) -> None:
        self.calls.append("pause_writing")
        self.rt.poke()

    def resume_writing(self) -> None:
        self.calls.append("resume_writing")
        self.rt.poke()

    def connection(self) -> Connection:
        assert self.conn is not None
        return self.conn


@pytest.fixture(params=["asyncio", "sim"])
def rt(request: pytest.FixtureRequest) -> Iterator[Runtime]:
    runtime: Runtime = AsyncioRuntime() if request.param == "asyncio" else SimRuntime()
    yield runtime
    runtime.close()


def pair(rt: Runtime, *, server_paused: bool = False) -> tuple[Recorder, Recorder]:
    """A connected (client, server) pair of recorders."""
    servers: list[Recorder] = []

    def factory() -> Recorder:
        r = Recorder(rt, pause_on_connect=server_paused)
        servers.append(r)
        return r

    port = rt.serve(factory)
    client = Recorder(rt)
    rt.connect(port, client)
    rt.wait(lambda: client.conn is not None and bool(servers) and servers[0].conn is not None, "both ends connected")
    return client, servers[0]


def payload(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def test_bytes_arrive_in_order_both_ways(rt: Runtime) -> None:
    client, server = pair(rt)
    sizes = random.Random(1).choices([1, 7, 100, 1500, 40_000], k=200)
    up = payload(sum(sizes), 2)
    pos = 0
    for n in sizes:
        client.connection().write(up[pos : pos + n])
        pos += n
    down = payload(300_000, 3)
    server.connection().write(bytearray(down))
    rt.wait(lambda: len(server.data) >= len(up) and len(client.data) >= len(down), "all bytes")
    assert bytes(server.data) == up
    assert bytes(client.data) == down


def test_addresses_name_both_ends(rt: Runtime) -> None:
    client, server = pair(rt)
    assert client.connection().peer_address == server.connection().local_address
    assert server.connection().peer_address == client.connection().local_address


def test_close_delivers_data_before_eof(rt: Runtime) -> None:
    client, server = pair(rt)
    data = payload(500_000, 4)
    client.connection().write(data)
    client.connection().close()
    client.connection().write(b"dropped after close")
    rt.wait(lambda: "lost" in server.calls and "lost" in client.calls, "both ends closed")
    assert bytes(server.data) == data
    assert server.calls == ["made", "data", "eof", "lost"]
    assert server.lost == [None]
    assert client.lost == [None]


def test_abort_with_unread_bytes_resets_the_peer(rt: Runtime) -> None:
    client, server = pair(rt)
    client.connection().pause_reading()
    server.connection().write(b"never read")
    server.connection().write(b"x" * 10)
    # Give the bytes time to reach the client's socket: wait for an echo of a later round trip.
    client.connection().write(b"ping")
    rt.wait(lambda: len(server.data) == 4, "the ping")
    server.connection().write(b"after ping")
    client.connection().write(b"ping2")
    rt.wait(lambda: len(server.data) == 9, "the second ping")
    client.connection().abort()
    server.connection().write(b"provoke")
    rt.wait(lambda: "lost" in server.calls and "lost" in client.calls, "both ends lost")
    assert client.lost == [None]
    assert isinstance(server.lost[0], ConnectionResetError)
    assert "data" not in client.calls


def test_abort_drops_the_write_buffer(rt: Runtime) -> None:
    client, _server = pair(rt, server_paused=True)
    conn = client.connection()
    conn.set_write_buffer_limits(high=64 * 1024)
    chunk = b"z" * 65536
    for _ in range(4096):
        conn.write(chunk)
        if conn.write_buffer_size() > 0:
            break
    assert conn.write_buffer_size() > 0
    conn.abort()
    assert conn.write_buffer_size() == 0
    rt.wait(lambda: "lost" in client.calls, "the aborting end lost")
    assert client.lost == [None]


def test_connect_to_closed_port_is_refused(rt: Runtime) -> None:
    client = Recorder(rt)
    rt.connect(rt.free_port(), client)
    rt.wait(lambda: bool(client.lost), "the refusal")
    assert client.calls == ["lost"]
    assert isinstance(client.lost[0], ConnectionRefusedError)


def test_back_pressure_pauses_and_resumes_the_writer(rt: Runtime) -> None:
    client, server = pair(rt, server_paused=True)
    conn = client.connection()
    conn.set_write_buffer_limits(high=64 * 1024)
    sent = bytearray()
    block = payload(65536, 5)
    for _ in range(4096):  # at most 256 MiB: far past any kernel's buffers
        conn.write(block)
        sent += block
        if "pause_writing" in client.calls:
            break
    assert "pause_writing" in client.calls
    assert conn.write_buffer_size() > 64 * 1024
    server.connection().resume_reading()
    rt.wait(lambda: len(server.data) == len(sent), "every byte at the reader")
    rt.wait(lambda: "resume_writing" in client.calls, "resume_writing")
    assert bytes(server.data) == bytes(sent)
    assert client.calls.index("pause_writing") < client.calls.index("resume_writing")
    assert conn.write_buffer_size() == 0


def test_paused_reader_gets_nothing_until_resumed(rt: Runtime) -> None:
    client, server = pair(rt, server_paused=True)
    client.connection().write(b"held")
    client.connection().write(b"back")
    echo = Recorder(rt)
    port = rt.serve(lambda: echo)  # a second connection proves time moved on meanwhile
    other = Recorder(rt)
    rt.connect(port, other)
    rt.wait(lambda: other.conn is not None and echo.conn is not None, "another connection")
    other.connection().write(b"x" * 100)
    rt.wait(lambda: len(echo.data) == 100, "bytes on the other connection")
    assert server.data == b""
    server.connection().resume_reading()
    rt.wait(lambda: bytes(server.data) == b"heldback", "the held bytes")


def test_timers_fire_in_order_and_cancel(rt: Runtime) -> None:
    fired: list[str] = []

    def mark(name: str) -> Callable[[], None]:
        def fn() -> None:
            fired.append(name)
            rt.poke()

        return fn

    clock = rt.clock
    start = clock.now()
    clock.call_later(0.03, mark("c"))
    clock.call_later(0.01, mark("a1"))
    clock.call_later(0.01, mark("a2"))
    cancelled = clock.call_later(0.02, mark("cancelled"))
    clock.call_later(0.02, mark("b"))
    clock.call_later(-1, mark("now"))
    cancelled.cancel()
    cancelled.cancel()
    rt.wait(lambda: "c" in fired, "the last timer")
    assert fired == ["now", "a1", "a2", "b", "c"]
    assert clock.now() - start >= 0.03 - 1e-3


def test_wall_clock_moves_with_the_monotonic_clock(rt: Runtime) -> None:
    clock = rt.clock
    t0, w0 = clock.now(), clock.wall_ns()
    done: list[bool] = []

    def fn() -> None:
        done.append(True)
        rt.poke()

    clock.call_later(0.02, fn)
    rt.wait(lambda: bool(done), "the timer")
    assert clock.now() - t0 >= 0.02 - 1e-3
    assert clock.wall_ns() - w0 >= 19_000_000
