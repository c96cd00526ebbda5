"""The layers a V2 connection can grow after IDENTIFY: TLS, then snappy or deflate.

Each layer is pure bytes in, bytes out: ``decode`` takes what arrived from
below (the wire, or the layer under it) and returns what it carries for the
layer above; ``encode`` takes bytes from above and returns what goes below.
A ``Stack`` holds them bottom first, so a connection passes every read
through ``receive`` and every write through ``send`` and knows nothing of what
is in between::

    Connection (port) <-> TLS <-> snappy | deflate <-> V2 codec

TLS is ``ssl.SSLObject`` over two ``ssl.MemoryBIO``: no socket, so it runs
on the asyncio runtime and in the simulator alike.  It writes on its own
during a handshake (and a TLS 1.3 server sends its session tickets after
one), so ``receive`` returns the bytes to send back along with the
plaintext.  What is written before the handshake has finished waits in the
layer and goes out, in order, once it has.

Snappy is the framing format of go-nsq and pynsq (python-snappy's stream
classes, on cramjam); deflate is raw deflate (no zlib header), each write
ended with a sync flush, as Go's ``flate.Writer.Flush`` ends it.
"""

from __future__ import annotations

import ssl
import zlib
from typing import Protocol

import snappy

from broker.ports import Connection, ConnectionHandler

__all__ = [
    "DeflateLayer",
    "Layer",
    "LayerError",
    "SnappyLayer",
    "Stack",
    "TLSConnection",
    "TLSLayer",
    "go_cipher_suite",
    "go_tls_version",
]

# What one read may inflate to before the connection is judged hostile (a
# deflate or snappy bomb); nsqd reads through a 16 KiB buffer, so it never
# holds more than that, whatever the ratio.
MAX_DECODED_PER_READ = 64 * 1024 * 1024


class LayerError(Exception):
    """The bytes from below are not what the layer speaks; the connection cannot go on."""


class Layer(Protocol):
    def decode(self, data: bytes) -> bytes:
        """What ``data`` from below carries for the layer above."""
        ...

    def encode(self, data: bytes) -> bytes:
        """What to send below for ``data`` from above."""
        ...


class TLSLayer:
    """One side of a TLS session over memory buffers."""

    def __init__(self, context: ssl.SSLContext, *, server_side: bool, server_hostname: str | None = None) -> None:
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = context.wrap_bio(self._in, self._out, server_side=server_side, server_hostname=server_hostname)
        self._context = context
        self._pending: list[bytes] = []
        self.handshake_done = False
        self.closed_by_peer = False

    def start(self) -> bytes:
        """Begin the handshake; what to send first (a client's hello; nothing for a server)."""
        self._handshake()
        return self._out.read()

    def _handshake(self) -> None:
        try:
            self._obj.do_handshake()
        except ssl.SSLWantReadError:
            return
        except ssl.SSLError as exc:
            raise LayerError(_reason(exc)) from None
        self.handshake_done = True
        pending, self._pending = self._pending, []
        for data in pending:
            self._obj.write(data)

    def decode(self, data: bytes) -> bytes:
        if data:
            self._in.write(data)
        if not self.handshake_done:
            self._handshake()
            if not self.handshake_done:
                return b""
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                chunk = self._obj.read(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self.closed_by_peer = True
                break
            except ssl.SSLError as exc:
                raise LayerError(_reason(exc)) from None
            if not chunk:
                self.closed_by_peer = True
                break
            chunks.append(chunk)
            size += len(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def encode(self, data: bytes) -> bytes:
        if not self.handshake_done:
            self._pending.append(bytes(data))
            return b""
        try:
            self._obj.write(data)
        except ssl.SSLError as exc:
            raise LayerError(_reason(exc)) from None
        return self._out.read()

    def take_output(self) -> bytes:
        """What the session wrote on its own (handshake, tickets, alerts) since last asked."""
        return self._out.read()

    # -- what /stats reports ----------------------------------------------------------

    def version(self) -> str:
        """nsqd's name for the negotiated version (``TLS1.2``), or "" before the handshake."""
        return go_tls_version(self._obj.version()) if self.handshake_done else ""

    def cipher_suite(self) -> str:
        """nsqd's name for the negotiated cipher suite (Go's constant name, or ``Unknown <id>``)."""
        if not self.handshake_done:
            return ""
        cipher = self._obj.cipher()
        if cipher is None:
            return ""
        return go_cipher_suite(cipher[0], self._context)

    def negotiated_protocol(self) -> str:
        return (self._obj.selected_alpn_protocol() or "") if self.handshake_done else ""

    def peer_common_name(self) -> str:
        """The CN of the peer's certificate, if it sent one that was verified."""
        cert = self._obj.getpeercert() if self.handshake_done else None
        if not cert:
            return ""
        subject: tuple[tuple[tuple[str, str], ...], ...] = cert.get("subject", ())  # type: ignore[assignment]
        for rdn in subject:
            for key, value in rdn:
                if key == "commonName":
                    return value
        return ""


def _reason(exc: ssl.SSLError) -> str:
    return exc.reason or exc.strerror or str(exc)


_GO_VERSIONS = {"TLSv1": "TLS1.0", "TLSv1.1": "TLS1.1", "TLSv1.2": "TLS1.2", "TLSv1.3": "TLS1.3"}
# nsqd's prettyConnectionState names these suites (OpenSSL name -> Go's constant name);
# any other suite, TLS 1.3's included, it reports as "Unknown <IANA id>".
_GO_SUITES = {
    "RC4-SHA": "TLS_RSA_WITH_RC4_128_SHA",
    "DES-CBC3-SHA": "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "AES128-SHA": "TLS_RSA_WITH_AES_128_CBC_SHA",
    "AES256-SHA": "TLS_RSA_WITH_AES_256_CBC_SHA",
    "ECDHE-ECDSA-RC4-SHA": "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "ECDHE-ECDSA-AES128-SHA": "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "ECDHE-ECDSA-AES256-SHA": "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "ECDHE-RSA-RC4-SHA": "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "ECDHE-RSA-DES-CBC3-SHA": "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "ECDHE-RSA-AES128-SHA": "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "ECDHE-RSA-AES256-SHA": "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "ECDHE-RSA-AES128-GCM-SHA256": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-ECDSA-AES128-GCM-SHA256": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
}


def go_tls_version(name: str | None) -> str:
    if name is None:
        return ""
    return _GO_VERSIONS.get(name, f"Unknown {name}")


def go_cipher_suite(openssl_name: str, context: ssl.SSLContext) -> str:
    known = _GO_SUITES.get(openssl_name)
    if known is not None:
        return known
    for cipher in context.get_ciphers():
        if cipher.get("name") == openssl_name:
            return f"Unknown {int(cipher['id']) & 0xFFFF}"
    return f"Unknown {openssl_name}"


class SnappyLayer:
    """The snappy framing format, one stream each way."""

    def __init__(self) -> None:
        self._compressor = snappy.StreamCompressor()
        self._decompressor = snappy.StreamDecompressor()

    def decode(self, data: bytes) -> bytes:
        try:
            out: bytes = self._decompressor.decompress(data)
        except Exception as exc:  # python-snappy raises UncompressError, cramjam's errors, ValueError
            raise LayerError(f"snappy: {exc}") from None
        if len(out) > MAX_DECODED_PER_READ:
            raise LayerError("snappy: a read inflated past the limit")
        return out

    def encode(self, data: bytes) -> bytes:
        out: bytes = self._compressor.add_chunk(bytes(data))
        return out


class DeflateLayer:
    """Raw deflate at ``level``, a sync flush after every write."""

    def __init__(self, level: int) -> None:
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._decompressor = zlib.decompressobj(-zlib.MAX_WBITS)

    def decode(self, data: bytes) -> bytes:
        try:
            out = self._decompressor.decompress(data, MAX_DECODED_PER_READ)
        except zlib.error as exc:
            raise LayerError(f"flate: {exc}") from None
        if self._decompressor.unconsumed_tail:
            raise LayerError("flate: a read inflated past the limit")
        return out

    def encode(self, data: bytes) -> bytes:
        c = self._compressor
        return c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)


class Stack:
    """The layers of one connection, bottom (TLS) first; empty, it passes bytes through."""

    __slots__ = ("layers", "tls")

    def __init__(self) -> None:
        self.layers: list[Layer] = []
        self.tls: TLSLayer | None = None

    def add_tls(self, layer: TLSLayer) -> None:
        if self.layers:
            raise ValueError("TLS goes below every other layer")
        self.tls = layer
        self.layers.append(layer)

    def add(self, layer: Layer) -> None:
        self.layers.append(layer)

    def receive(self, data: bytes) -> tuple[bytes, bytes]:
        """(what ``data`` from the wire carries for the protocol, what to send back on the wire now)."""
        for layer in self.layers:
            if not data and layer is not self.tls:
                break
            data = layer.decode(data)
        reply = self.tls.take_output() if self.tls is not None else b""
        return data, reply

    def send(self, data: bytes) -> bytes:
        """What to write on the wire for ``data`` from the protocol."""
        for layer in reversed(self.layers):
            data = layer.encode(data)
        return data


class TLSConnection:
    """TLS around a whole connection (HTTPS; a client's TLS from the first byte).

    To the network it is a ``ConnectionHandler``; to ``inner`` it is the
    ``Connection``, carrying plaintext.  ``inner`` is told of the connection at
    once and may write straight away: what it writes waits for the handshake.
    A peer that does not speak TLS, or fails verification, is dropped; the
    inner handler sees the connection lost with the reason.
    """

    def __init__(
        self,
        inner: ConnectionHandler,
        context: ssl.SSLContext,
        *,
        server_side: bool,
        server_hostname: str | None = None,
    ) -> None:
        self.inner = inner
        self.layer = TLSLayer(context, server_side=server_side, server_hostname=server_hostname)
        self._conn: Connection | None = None
        self.error: LayerError | None = None

    # -- ConnectionHandler (the network's side) ------------------------------------------

    def connection_made(self, conn: Connection) -> None:
        self._conn = conn
        try:
            first = self.layer.start()
        except LayerError as exc:
            self._fail(exc)
            return
        if first:
            conn.write(first)
        self.inner.connection_made(self)

    def data_received(self, data: bytes) -> None:
        conn = self._conn
        if conn is None or self.error is not None:
            return
        try:
            plain = self.layer.decode(data)
        except LayerError as exc:
            self._fail(exc)
            return
        out = self.layer.take_output()
        if out:
            conn.write(out)
        if plain:
            self.inner.data_received(plain)
        if self.layer.closed_by_peer:
            self.inner.eof_received()

    def eof_received(self) -> None:
        if self.error is None:
            self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.inner.connection_lost(exc if exc is not None else self.error)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def _fail(self, exc: LayerError) -> None:
        self.error = exc
        conn = self._conn
        if conn is not None:
            alert = self.layer.take_output()
            if alert:
                conn.write(alert)
            conn.close()

    # -- Connection (the inner handler's side) ---------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        conn = self._conn
        if conn is None or self.error is not None:
            return
        try:
            out = self.layer.encode(bytes(data))
        except LayerError as exc:
            self._fail(exc)
            return
        if out:
            conn.write(out)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def abort(self) -> None:
        if self._conn is not None:
            self._conn.abort()

    def write_buffer_size(self) -> int:
        return self._conn.write_buffer_size() if self._conn is not None else 0

    def set_write_buffer_limits(self, high: int) -> None:
        if self._conn is not None:
            self._conn.set_write_buffer_limits(high)

    def pause_reading(self) -> None:
        if self._conn is not None:
            self._conn.pause_reading()

    def resume_reading(self) -> None:
        if self._conn is not None:
            self._conn.resume_reading()

    @property
    def peer_address(self) -> tuple[str, int]:
        assert self._conn is not None
        return self._conn.peer_address

    @property
    def local_address(self) -> tuple[str, int]:
        assert self._conn is not None
        return self._conn.local_address
