"""The asyncio adapters of the ports, on real loopback sockets.

Every wait is on an event (a future a handler completes); ``run`` only bounds
a whole test so that a broken adapter fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import socket
import time
from asyncio.trsock import TransportSocket
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from broker.ports import Connection
from broker.runtime import (
    AddressError,
    AsyncioClock,
    AsyncioNetwork,
    ConnectionRegistry,
    ListenError,
    RuntimeRandom,
    ShutdownSignals,
    StderrLogger,
    StreamConnection,
    bind,
    join_host_port,
    listen,
    log_loop_errors,
    parse_log_level,
    split_host_port,
)

T = TypeVar("T")
BOUND = 30.0  # seconds a whole test may take before it counts as hung


def run(coro: Coroutine[Any, Any, T]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, BOUND)

    return asyncio.run(bounded())


class Recorder:
    """A ConnectionHandler that records each call and lets a test await it."""

    def __init__(self, echo: bool = False, keep: bool = True) -> None:
        loop = asyncio.get_running_loop()
        self.echo = echo
        self.keep = keep
        self.made: asyncio.Future[Connection] = loop.create_future()
        self.lost: asyncio.Future[Exception | None] = loop.create_future()
        self.paused: asyncio.Future[None] = loop.create_future()
        self.resumed: asyncio.Future[None] = loop.create_future()
        self.eof = False
        self.data = bytearray()
        self.count = 0
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []

    @property
    def conn(self) -> Connection:
        return self.made.result()

    def connection_made(self, conn: Connection) -> None:
        self.made.set_result(conn)

    def data_received(self, data: bytes) -> None:
        self.count += len(data)
        if self.keep:
            self.data += data
        if self.echo:
            self.conn.write(data)
        for n, fut in self._waiting:
            if self.count >= n and not fut.done():
                fut.set_result(None)

    async def received(self, n: int) -> None:
        if self.count < n:
            fut = asyncio.get_running_loop().create_future()
            self._waiting.append((n, fut))
            await fut

    def eof_received(self) -> None:
        self.eof = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(exc)

    def pause_writing(self) -> None:
        if not self.paused.done():
            self.paused.set_result(None)

    def resume_writing(self) -> None:
        if not self.resumed.done():
            self.resumed.set_result(None)


async def server_and_client(
    make_server: Callable[[], Recorder] | None = None,
    client: Recorder | None = None,
) -> tuple[Recorder, Recorder, Callable[[], None]]:
    """A listener on 127.0.0.1:0, one client connected to it, both handlers made."""
    servers: list[Recorder] = []

    def factory() -> Recorder:
        servers.append(make_server() if make_server else Recorder())
        return servers[-1]

    listener = await listen("127.0.0.1", 0, factory)
    client = client or Recorder()
    AsyncioNetwork(asyncio.get_running_loop()).connect(*listener.address, client)
    await client.made
    while not servers:  # the accept callback runs on a later loop iteration
        await asyncio.sleep(0)
    await servers[0].made
    return servers[0], client, listener.close


# -- streams ----------------------------------------------------------------------


def test_bytes_flow_both_ways_and_addresses_match() -> None:
    async def scenario() -> None:
        server, client, close = await server_and_client(lambda: Recorder(echo=True))
        client.conn.write(b"hello ")
        client.conn.write(bytearray(b"from "))
        client.conn.write(memoryview(b"the client"))
        await client.received(len(b"hello from the client"))
        assert bytes(client.data) == b"hello from the client"
        assert bytes(server.data) == b"hello from the client"
        assert server.conn.peer_address == client.conn.local_address
        assert server.conn.local_address == client.conn.peer_address
        assert server.conn.local_address[0] == "127.0.0.1"
        close()

    run(scenario())


def test_nagle_is_off_on_accepted_and_outgoing_sockets() -> None:
    async def scenario() -> None:
        server, client, close = await server_and_client()
        for rec in (server, client):
            assert isinstance(rec.conn, StreamConnection)
            sock = rec.conn.extra_info("socket")
            assert isinstance(sock, socket.socket | TransportSocket)
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        close()

    run(scenario())


def test_close_flushes_then_both_ends_lose_the_connection() -> None:
    async def scenario() -> None:
        server, client, close = await server_and_client()
        server.conn.write(b"bye")
        server.conn.close()
        server.conn.write(b"after close")  # harmless, and never sent
        server.conn.close()  # idempotent
        assert await client.lost is None
        assert client.eof
        assert bytes(client.data) == b"bye"
        assert await server.lost is None
        close()

    run(scenario())


def test_abort_reports_connection_lost() -> None:
    async def scenario() -> None:
        server, client, close = await server_and_client()
        server.conn.abort()
        assert await server.lost is None
        await client.lost
        server.conn.write(b"after abort")  # harmless
        close()

    run(scenario())


def test_peer_eof_closes_the_connection() -> None:
    async def scenario() -> None:
        server = Recorder()
        listener = await listen("127.0.0.1", 0, lambda: server)
        reader, writer = await asyncio.open_connection(*listener.address)
        writer.write(b"last words")
        writer.write_eof()
        assert await server.lost is None
        assert server.eof
        assert bytes(server.data) == b"last words"
        assert await reader.read() == b""
        writer.close()
        listener.close()

    run(scenario())


def test_pause_and_resume_writing_around_the_high_water_mark() -> None:
    async def scenario() -> None:
        high = 1024
        client = Recorder(keep=False)
        server, client, close = await server_and_client(client=client)
        client.conn.pause_reading()  # the peer stops reading: kernel buffers fill
        server.conn.set_write_buffer_limits(high)
        chunk = b"x" * 65536
        sent = 0
        while not server.paused.done():
            server.conn.write(chunk)
            sent += len(chunk)
            assert sent < 1 << 30, "pause_writing never came"
        assert server.conn.write_buffer_size() > high
        client.conn.resume_reading()
        await server.resumed
        assert server.conn.write_buffer_size() <= high
        await client.received(sent)
        close()

    run(scenario())


def test_listener_reports_the_real_port_and_stops_accepting_on_close() -> None:
    async def scenario() -> None:
        listener = await listen("127.0.0.1", 0, Recorder)
        host, port = listener.address
        assert host == "127.0.0.1"
        assert port != 0
        _, writer = await asyncio.open_connection(host, port)
        writer.close()
        listener.close()
        assert listener.address == (host, port)  # still known after close
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(host, port)

    run(scenario())


@pytest.mark.parametrize("host", ["", "0.0.0.0"])
def test_empty_host_and_zero_address_listen_on_all_ipv4(host: str) -> None:
    async def scenario() -> None:
        listener = await listen(host, 0, Recorder)
        assert listener.address[0] == "0.0.0.0"
        _, writer = await asyncio.open_connection("127.0.0.1", listener.address[1])
        writer.close()
        listener.close()

    run(scenario())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_connect_failure_reaches_connection_lost() -> None:
    async def scenario() -> None:
        handler = Recorder()
        AsyncioNetwork(asyncio.get_running_loop()).connect("127.0.0.1", free_port(), handler)
        exc = await handler.lost
        assert isinstance(exc, ConnectionRefusedError)
        assert not handler.made.done()

    run(scenario())


def test_registry_tracks_connections_until_they_close() -> None:
    async def scenario() -> None:
        registry = ConnectionRegistry()
        server = Recorder()
        listener = await listen("127.0.0.1", 0, lambda: server, registry=registry)
        _, writer = await asyncio.open_connection(*listener.address)
        await server.made
        assert len(registry) == 1
        assert not await registry.drained(0)
        registry.abort_all()
        assert await registry.drained(BOUND)
        assert len(registry) == 0
        writer.close()
        listener.close()

    run(scenario())


def test_a_handler_exception_is_logged_and_closes_only_that_connection() -> None:
    class Failing(Recorder):
        def data_received(self, data: bytes) -> None:
            raise RuntimeError("core bug")

    async def scenario() -> None:
        out = io.StringIO()
        log_loop_errors(asyncio.get_running_loop(), StderrLogger("[t] ", stream=out))
        server, client, close = await server_and_client(Failing)
        client.conn.write(b"boom")
        await server.lost
        await client.lost
        text = out.getvalue()
        assert " ERROR: Fatal error: protocol.data_received() call failed." in text
        assert "RuntimeError: core bug" in text
        close()

    run(scenario())


def test_a_failing_handler_factory_is_reported_not_swallowed() -> None:
    def factory() -> Recorder:
        raise RuntimeError("no handler")

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        reported: asyncio.Future[dict[str, Any]] = loop.create_future()
        loop.set_exception_handler(lambda _loop, context: reported.set_result(context))
        listener = await listen("127.0.0.1", 0, factory)
        reader, writer = await asyncio.open_connection(*listener.address)
        context = await reported
        assert context["message"] == "connection handler factory failed"
        assert str(context["exception"]) == "no handler"
        assert await reader.read() == b""  # and that connection is dropped
        writer.close()
        listener.close()

    run(scenario())


# -- daemon helpers ---------------------------------------------------------------


def test_bind_reports_a_port_in_use_like_go() -> None:
    async def scenario() -> None:
        first = await bind("127.0.0.1:0", Recorder)
        addr = join_host_port(*first.address)
        with pytest.raises(ListenError) as err:
            await bind(addr, Recorder)
        assert str(err.value) == f"listen ({addr}) failed - listen tcp {addr}: bind: address already in use"
        first.close()

    run(scenario())


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("4150", "listen (4150) failed - listen tcp: address 4150: missing port in address"),
        ("127.0.0.1:99999", "listen (127.0.0.1:99999) failed - listen tcp: address 99999: invalid port"),
        ("127.0.0.1:nope", "listen (127.0.0.1:nope) failed - listen tcp: lookup tcp/nope: unknown port"),
    ],
)
def test_bind_rejects_bad_addresses_like_go(address: str, message: str) -> None:
    async def scenario() -> None:
        with pytest.raises(ListenError) as err:
            await bind(address, Recorder)
        assert str(err.value) == message

    run(scenario())


def test_bind_takes_an_empty_port_as_any_port() -> None:
    async def scenario() -> None:
        listener = await bind("127.0.0.1:", Recorder)
        assert listener.address[1] != 0
        listener.close()

    run(scenario())


def test_shutdown_signals_first_requests_stop_second_calls_on_repeat() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        repeated: asyncio.Future[int] = loop.create_future()
        signals = ShutdownSignals(loop, (signal.SIGUSR1,), on_repeat=repeated.set_result)
        before = signal.getsignal(signal.SIGUSR1)
        signals.install()
        try:
            os.kill(os.getpid(), signal.SIGUSR1)
            assert await signals.wait() == signal.SIGUSR1
            os.kill(os.getpid(), signal.SIGUSR1)
            assert await repeated == signal.SIGUSR1
        finally:
            signals.uninstall()
        assert signal.getsignal(signal.SIGUSR1) == before

    run(scenario())


@pytest.mark.parametrize(
    ("hostport", "host", "port"),
    [
        ("0.0.0.0:4150", "0.0.0.0", "4150"),
        (":4150", "", "4150"),
        ("127.0.0.1:", "127.0.0.1", ""),
        ("[::1]:4150", "::1", "4150"),
        ("[fe80::1%eth0]:80", "fe80::1%eth0", "80"),
        ("nsqd-1.example:http", "nsqd-1.example", "http"),
    ],
)
def test_split_host_port(hostport: str, host: str, port: str) -> None:
    assert split_host_port(hostport) == (host, port)


@pytest.mark.parametrize(
    ("hostport", "message"),
    [
        ("localhost", "address localhost: missing port in address"),
        ("::1:4150", "address ::1:4150: too many colons in address"),
        ("[::1]", "address [::1]: missing port in address"),
        ("[::1]x:1", "address [::1]x:1: missing port in address"),
        ("[::1]:1:2", "address [::1]:1:2: too many colons in address"),
        ("[::1:4150", "address [::1:4150: missing ']' in address"),
        ("a[b:1", "address a[b:1: unexpected '[' in address"),
        ("a]b:1", "address a]b:1: unexpected ']' in address"),
    ],
)
def test_split_host_port_rejects_like_go(hostport: str, message: str) -> None:
    with pytest.raises(AddressError) as err:
        split_host_port(hostport)
    assert str(err.value) == message


def test_join_host_port_brackets_ipv6() -> None:
    assert join_host_port("127.0.0.1", 4150) == "127.0.0.1:4150"
    assert join_host_port("::1", "4150") == "[::1]:4150"


# -- clock and randomness ------------------------------------------------------------


def test_clock_reads_the_loop_and_unix_time() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        clock = AsyncioClock(loop)
        before = loop.time()
        assert before <= clock.now() <= loop.time()
        assert abs(clock.wall_ns() - time.time_ns()) < 60 * 10**9

    run(scenario())


def test_call_later_runs_in_schedule_order_and_cancel_prevents_a_call() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        clock = AsyncioClock(loop)
        calls: list[str] = []
        done: asyncio.Future[None] = loop.create_future()
        clock.call_later(0.02, lambda: calls.append("a"))
        cancelled = clock.call_later(0.01, lambda: calls.append("cancelled"))
        clock.call_later(0.02, lambda: calls.append("b"))
        clock.call_later(-1, lambda: calls.append("now"))
        clock.call_later(0.03, lambda: done.set_result(None))
        cancelled.cancel()
        cancelled.cancel()  # harmless twice
        await done
        assert calls == ["now", "a", "b"]

    run(scenario())


def test_random_is_reproducible_from_a_seed() -> None:
    a, b = RuntimeRandom(7), RuntimeRandom(7)
    draws = [(a.random(), a.randrange(10)) for _ in range(20)]
    assert draws == [(b.random(), b.randrange(10)) for _ in range(20)]
    assert all(0.0 <= r < 1.0 and 0 <= n < 10 for r, n in draws)


# -- the logger ---------------------------------------------------------------------

STAMP_NS = 1_795_000_000_123_456_789


def logged(level: str, *lines: tuple[str, str]) -> str:
    out = io.StringIO()
    logger = StderrLogger("[nsqd] ", level, stream=out, now_ns=lambda: STAMP_NS)
    for lvl, msg in lines:
        logger.log(lvl, msg)
    return out.getvalue()


def stamp() -> str:
    return time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(STAMP_NS // 10**9)) + ".123456"


def test_log_line_layout_is_nsqds() -> None:
    assert logged("info", ("INFO", "TCP: listening on 0.0.0.0:4150")) == (
        f"[nsqd] {stamp()} INFO: TCP: listening on 0.0.0.0:4150\n"
    )


def test_log_levels_print_as_lg_does_and_filter() -> None:
    text = logged(
        "warn",
        ("DEBUG", "d"),
        ("INFO", "i"),
        ("WARN", "w"),
        ("WARNING", "w2"),
        ("ERROR", "e"),
        ("FATAL", "f"),
    )
    assert text.splitlines() == [
        f"[nsqd] {stamp()} WARNING: w",
        f"[nsqd] {stamp()} WARNING: w2",
        f"[nsqd] {stamp()} ERROR: e",
        f"[nsqd] {stamp()} FATAL: f",
    ]


def test_log_level_can_change_at_run_time() -> None:
    out = io.StringIO()
    logger = StderrLogger("", "error", stream=out)
    logger.log("INFO", "hidden")
    assert not logger.enabled("INFO")
    logger.set_level("debug")
    logger.log("DEBUG", "shown")
    assert out.getvalue().endswith(" DEBUG: shown\n")
    assert "hidden" not in out.getvalue()


def test_log_rejects_unknown_levels() -> None:
    with pytest.raises(ValueError):
        StderrLogger("", stream=io.StringIO()).log("LOUD", "x")


@pytest.mark.parametrize(("text", "name"), [("debug", "debug"), ("INFO", "info"), ("Warn", "warn"), ("fatal", "fatal")])
def test_parse_log_level(text: str, name: str) -> None:
    assert parse_log_level(text) == name


@pytest.mark.parametrize("text", ["warning", "", "trace"])
def test_parse_log_level_rejects_like_lg(text: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_log_level(text)
    assert str(err.value) == f"invalid log level '{text}' (debug, info, warn, error, fatal)"
