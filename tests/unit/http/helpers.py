"""Driving an HTTP connection handler through a fake connection, and reading its answers.

``HTTPClient`` sends raw request bytes (in any chunking) to a handler over a
``FakeConnection`` and parses what came back with a small, strict HTTP/1.1
response reader (Content-Length, chunked, or to-the-close bodies), so a test
sees each answer's status, headers and body exactly as the wire had them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from broker.nsqd.nsqd import NSQD
from broker.nsqd.options import Options
from broker.ports import ConnectionHandler
from broker.wire import v2
from tests.fakes import FakeClock, FakeConnection, FakeRandom, RecordingLogger


@dataclass
class Answer:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    raw: bytes = b""

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self) -> Any:
        assert self.header("Content-Type") == "application/json; charset=utf-8", self.headers
        return json.loads(self.body)

    @property
    def message(self) -> str:
        """The ``message`` of an nsqd error answer."""
        data = self.json()
        assert isinstance(data, dict) and list(data) == ["message"], data
        return str(data["message"])


class Incomplete(Exception):
    """The bytes end inside an answer."""


def read_answer(data: bytes, pos: int, head: bool = False, closed: bool = False) -> tuple[Answer, int]:
    """One answer starting at ``data[pos:]``; raises ``Incomplete`` if it is cut short."""
    end = data.find(b"\r\n\r\n", pos)
    if end < 0:
        raise Incomplete
    lines = data[pos:end].decode("latin-1").split("\r\n")
    version, status, reason = [*lines[0].split(" ", 2), ""][:3]
    assert version == "HTTP/1.1", lines[0]
    headers = [(k, v.strip()) for k, _, v in (line.partition(":") for line in lines[1:])]
    answer = Answer(int(status), reason, headers, b"")
    at = end + 4
    lengths = [v for k, v in headers if k.lower() == "content-length"]
    chunked = any(k.lower() == "transfer-encoding" and v.lower() == "chunked" for k, v in headers)
    # A raw error answer (no framing headers) runs to the close even after HEAD.
    if (head and (lengths or chunked)) or answer.status in (204, 304) or 100 <= answer.status < 200:
        body = b""
    elif chunked:
        parts = []
        while True:
            line_end = data.find(b"\r\n", at)
            if line_end < 0:
                raise Incomplete
            size = int(data[at:line_end], 16)
            at = line_end + 2
            if len(data) < at + size + 2:
                raise Incomplete
            parts.append(data[at : at + size])
            assert data[at + size : at + size + 2] == b"\r\n"
            at += size + 2
            if size == 0:
                break
        body = b"".join(parts)
    elif lengths:
        n = int(lengths[0])
        if len(data) < at + n:
            raise Incomplete
        body = data[at : at + n]
        at += n
    else:
        if not closed:
            raise Incomplete
        body = data[at:]
        at = len(data)
    answer.body = body
    answer.raw = data[pos:at]
    return answer, at


class HTTPClient:
    """One client connection to ``handler``."""

    def __init__(self, handler: ConnectionHandler, peer: tuple[str, int] = ("127.0.0.1", 50000)) -> None:
        self.conn = FakeConnection(handler, peer)
        self._read = 0

    def send(self, data: bytes) -> None:
        self.conn.send(data)

    def answers(self, heads: list[bool] | None = None) -> list[Answer]:
        """Every complete answer written since the last call (``heads``: which were to HEAD)."""
        data = bytes(self.conn.written)
        out = []
        i = 0
        while self._read < len(data):
            head = bool(heads and i < len(heads) and heads[i])
            try:
                answer, self._read = read_answer(data, self._read, head, self.conn.closed)
            except Incomplete:
                break
            out.append(answer)
            i += 1
        return out

    def request(self, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Answer:
        """Send one request and return its one answer."""
        self.conn.send(encode_request(method, target, body, headers))
        answers = self.answers([method == "HEAD"])
        assert len(answers) == 1, (answers, bytes(self.conn.written))
        return answers[0]

    @property
    def closed(self) -> bool:
        return self.conn.closed


def encode_request(method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: nsqd"]
    given = dict(headers or {})
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k in given):
        given["Content-Length"] = str(len(body))
    lines += [f"{k}: {v}" for k, v in given.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(*parts: bytes) -> bytes:
    """``parts`` as a chunked request body, ending with the zero chunk."""
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts if p) + b"0\r\n\r\n"


@dataclass
class Node:
    """An nsqd on fake ports, with its HTTP and TCP sides reachable."""

    opts: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.clock = FakeClock()
        self.logger = RecordingLogger()
        self.nsqd = NSQD(
            Options(**{"node_id": 7, **self.opts}), clock=self.clock, rand=FakeRandom(), logger=self.logger, hostname="testhost"
        )
        self.nsqd.set_listen_addresses(("127.0.0.1", 4150), ("127.0.0.1", 4151))
        self._port = 50000

    def http(self) -> HTTPClient:
        self._port += 1
        return HTTPClient(self.nsqd.http_handler(), ("127.0.0.1", self._port))

    def request(self, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Answer:
        return self.http().request(method, target, body, headers)

    def tcp(self, **identify: Any) -> FakeConnection:
        """A V2 client, identified (when fields are given) and drained of its answers."""
        self._port += 1
        conn = FakeConnection(self.nsqd.tcp_handler(), ("127.0.0.1", self._port))
        conn.send(v2.MAGIC_V2)
        if identify:
            conn.send(v2.encode_identify(identify))
        conn.frames()
        return conn


# -- JSON shapes as a real nsqd 1.3.0 returned them ------------------------------------

REFERENCE = Path("/work/shared/reference")


def reference(name: str) -> Any:
    path = REFERENCE / name
    if not path.exists():
        pytest.skip(f"reference {path} not available")
    return json.loads(path.read_text())


def assert_shape(ref: Any, got: Any, where: str = "$") -> None:
    """``got`` has every field of ``ref``, in nsqd's order, with the same JSON types, recursively.

    Fields beyond nsqd's are allowed after all of nsqd's (additive extensions).
    """
    if isinstance(ref, dict):
        assert isinstance(got, dict), f"{where}: {got!r} is not an object"
        assert list(got)[: len(ref)] == list(ref), f"{where}: fields {list(got)} != nsqd's {list(ref)} (+ additions)"
        for key in ref:
            assert_shape(ref[key], got[key], f"{where}.{key}")
    elif isinstance(ref, list):
        assert isinstance(got, list), f"{where}: {got!r} is not an array"
        if ref:
            assert got, f"{where}: empty where nsqd has entries"
            for i, item in enumerate(got):
                assert_shape(ref[0], item, f"{where}[{i}]")
    elif ref is None:
        assert got is None, f"{where}: {got!r} is not null"
    else:
        assert type(got) is type(ref), f"{where}: {got!r} is {type(got).__name__}, nsqd has {type(ref).__name__}"
