"""The asyncio runtime on Unix-domain sockets: listen_unix, connect to UNIX_PORT, bind's refusals.

Real sockets in a short directory under /tmp (a socket path holds at most
107 bytes), each test under ``BOUND``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.runtime import AsyncioNetwork, ListenError, bind, listen_unix
from broker.wire.netaddr import UNIX_PORT
from tests.unit.test_runtime import Recorder, run


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(dir="/tmp", prefix="nsq-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def _echo_once(address: str) -> tuple[Recorder, Recorder]:
    servers: list[Recorder] = []

    def factory() -> Recorder:
        servers.append(Recorder(echo=True))
        return servers[-1]

    listener = await listen_unix(address, factory)
    assert listener.address == (address, UNIX_PORT)
    client = Recorder()
    AsyncioNetwork(asyncio.get_running_loop()).connect(address, UNIX_PORT, client)
    await client.made
    client.conn.write(b"ping")
    await client.received(4)
    assert bytes(client.data) == b"ping"
    listener.close()
    client.conn.close()
    return servers[0], client


def test_a_stream_over_a_socket_file_and_its_addresses(sock_dir: Path) -> None:
    path = str(sock_dir / "s.sock")

    async def scenario() -> None:
        server, client = await _echo_once(path)
        assert server.conn.peer_address == ("", UNIX_PORT)  # the unnamed connecting end
        assert server.conn.local_address == (path, UNIX_PORT)
        assert client.conn.peer_address == (path, UNIX_PORT)

    run(scenario())
    assert not os.path.exists(path)  # closing the listener removed its file


def test_an_abstract_socket_has_no_file(sock_dir: Path) -> None:
    name = f"@nsqsim-test-{os.getpid()}"

    async def scenario() -> None:
        server, _client = await _echo_once(name)
        assert server.conn.local_address == (name, UNIX_PORT)

    run(scenario())
    assert os.listdir(sock_dir) == []


def test_close_leaves_a_file_that_replaced_its_socket(sock_dir: Path) -> None:
    path = sock_dir / "s.sock"

    async def scenario() -> None:
        listener = await listen_unix(str(path), Recorder)
        path.unlink()
        path.write_text("someone else's")
        listener.close()

    run(scenario())
    assert path.read_text() == "someone else's"


def test_connecting_to_a_missing_socket_reports_it(sock_dir: Path) -> None:
    async def scenario() -> None:
        handler = Recorder()
        AsyncioNetwork(asyncio.get_running_loop()).connect(str(sock_dir / "none.sock"), UNIX_PORT, handler)
        assert isinstance(await handler.lost, FileNotFoundError)
        assert not handler.made.done()

    run(scenario())


def test_bind_refuses_whatever_holds_the_path_and_says_what(sock_dir: Path) -> None:
    stale, plain, live = sock_dir / "stale.sock", sock_dir / "plain", sock_dir / "live.sock"
    left = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    left.bind(str(stale))
    left.close()  # the file stays, as after a crash
    plain.write_text("x")

    async def refused(path: Path) -> str:
        with pytest.raises(ListenError) as err:
            await bind(str(path), Recorder, unix=True)
        prefix = f"listen ({path}) failed - listen unix {path}: bind: address already in use ("
        assert str(err.value).startswith(prefix)
        return str(err.value)[len(prefix) : -1]

    async def scenario() -> None:
        assert await refused(stale) == "a stale socket file, left by a process that did not exit cleanly: remove it and start again"
        assert await refused(plain) == f"{plain} exists and is not a socket; nothing was changed"
        first = await bind(str(live), Recorder, unix=True)
        assert await refused(live) == "another process is listening on it"
        first.close()
        with pytest.raises(ListenError, match=r"^listen \(\) failed - listen unix: an empty socket path$"):
            await bind("", Recorder, unix=True)

    run(scenario())
    assert stale.exists() and plain.read_text() == "x" and not live.exists()
