"""One client connection to nsqd: the V2 handshake, frames in, commands out.

``NSQConnection`` is a ``ConnectionHandler`` (``broker.ports``): a runtime (the
asyncio one, or the simulator's) opens a stream for it with ``Network.connect``
and feeds it bytes; it writes commands to the ``Connection`` it is given and
reports what happens to a ``ConnectionDelegate`` (the consumer or producer
core).  Time comes from a ``Clock``.  Nothing here blocks or awaits, so one
object serves both runtimes.

A connection goes through these states, and only forward::

    CONNECTING -> IDENTIFYING [-> AUTHENTICATING] [-> SUBSCRIBING] -> READY
               -> CLOSING (CLS sent) -> DRAINING -> CLOSED

IDENTIFY always asks for ``feature_negotiation``, so nsqd answers with its JSON
settings (an nsqd too old to negotiate answers ``OK``, and nsqd's defaults are
assumed).  AUTH follows when nsqd says ``auth_required``; SUB follows when the
connection is a consumer's.  In READY every ``OK`` answers the oldest publish
still waiting (nsqd answers PUB, MPUB and DPUB strictly in order), a heartbeat
is answered with NOP, and a message frame becomes a ``Message`` counted in
flight until it is finished or requeued.

A clean close is nsqd's: a consumer sends CLS, nsqd stops sending and answers
``CLOSE_WAIT``, the in-flight messages are answered (DRAINING), then the
stream is closed.  A producer has no CLS (nsqd refuses it from an unsubscribed
client): it waits for its outstanding answers, then closes.  An error frame
that nsqd treats as fatal fails the publish it answers and closes the
connection; the non-fatal ones (``E_FIN_FAILED``, ``E_REQ_FAILED``,
``E_TOUCH_FAILED``) are reported and the connection stays.  Whatever ends the
connection, every publish still waiting fails with ``ConnectionClosedError``
and the delegate hears ``on_close`` exactly once.

Writes are batched: commands go to an output buffer that is handed to the
``Connection`` once per read batch, or once per clock tick (a zero-delay
timer) for commands issued outside a read, so a consumer finishing a burst of
messages makes one write, not one per FIN.

Two deadlines guard the connection: the handshake must complete within
``read_timeout``, and once READY, silence longer than ``read_timeout`` (nsqd
heartbeats every ``heartbeat_interval``, which must be shorter) aborts it.
"""

from __future__ import annotations

import enum
import struct
from collections import deque
from collections.abc import Callable
from typing import Protocol

from broker.client.address import split_address
from broker.client.config import ClientConfig
from broker.client.errors import (
    ConnectionClosedError,
    NotConnectedError,
    NSQClientError,
    NSQError,
    ProtocolViolation,
    error_from_frame,
)
from broker.client.message import Message
from broker.client.negotiated import Negotiated
from broker.ports import Clock, Connection, Logger, Network, Timer
from broker.wire import v2
from broker.wire.layers import DeflateLayer, Layer, LayerError, SnappyLayer, Stack, TLSLayer

__all__ = ["AckCallback", "ConnState", "ConnectionDelegate", "NSQConnection", "Negotiated"]

AckCallback = Callable[[NSQClientError | None], None]

_FRAME_HEADER = struct.Struct(">ii")
_MESSAGE_HEADER = struct.Struct(">qH")


class ConnState(enum.IntEnum):
    CONNECTING = 0
    IDENTIFYING = 1
    AUTHENTICATING = 2
    SUBSCRIBING = 3
    READY = 4
    CLOSING = 5  # CLS sent, waiting for CLOSE_WAIT
    DRAINING = 6  # waiting for in-flight messages and outstanding publishes
    CLOSED = 7


_HANDSHAKE = (ConnState.CONNECTING, ConnState.IDENTIFYING, ConnState.AUTHENTICATING, ConnState.SUBSCRIBING)


class ConnectionDelegate(Protocol):
    """What a connection reports; the consumer and producer cores implement it."""

    def on_ready(self, conn: NSQConnection) -> None:
        """Handshake done (identified, authenticated, and subscribed if a consumer's)."""

    def on_message(self, conn: NSQConnection, msg: Message) -> None: ...

    def on_message_done(self, conn: NSQConnection, msg: Message, success: bool, backoff: bool) -> None:
        """``msg`` was finished (``success``) or requeued (with ``backoff`` or without)."""

    def on_error(self, conn: NSQConnection, err: NSQError) -> None:
        """nsqd sent an error frame; after a fatal one the connection closes."""

    def on_close(self, conn: NSQConnection, exc: BaseException | None) -> None:
        """The connection is gone (``exc`` says why; None for a clean close)."""


class NSQConnection:
    """A client's side of one nsqd connection (a ``ConnectionHandler``)."""

    def __init__(
        self,
        address: str,
        config: ClientConfig,
        delegate: ConnectionDelegate,
        clock: Clock,
        *,
        topic: str | None = None,
        channel: str | None = None,
        logger: Logger | None = None,
    ) -> None:
        self.address = address
        self.config = config
        self.topic = topic
        self.channel = channel
        self.negotiated = Negotiated()
        self._delegate = delegate
        self._clock = clock
        self._logger = logger
        self._state = ConnState.CONNECTING
        self._transport: Connection | None = None
        self._ended = False  # the transport was closed or lost (_transport is None from then on)
        self._buf = bytearray()
        self._out = bytearray()
        self._in_read = False
        self._flush_timer: Timer | None = None
        self._handshake_timer: Timer | None = None
        self._read_timer: Timer | None = None
        self._last_read = clock.now()
        self._pending: deque[AckCallback] = deque()
        # TLS, then deflate or snappy, switched on one at a time as nsqd answers OK to each
        self._stack: Stack | None = None
        self._upgrades: list[str] | None = None  # still to switch on after the next OK
        self._new_layer: Layer | None = None  # just switched on: the rest of this read is its
        self._close_exc: BaseException | None = None
        self._notified_close = False
        self.was_ready = False  # the handshake completed at some point
        # consumer-side accounting
        self.rdy = 0
        self.in_flight = 0
        self.last_rdy_time = 0.0
        self.last_message_time = clock.now()
        self.messages_received = 0
        self.messages_finished = 0
        self.messages_requeued = 0

    def __repr__(self) -> str:
        return f"<NSQConnection {self.address} {self._state.name}>"

    # -- state ------------------------------------------------------------------------

    @property
    def state(self) -> ConnState:
        return self._state

    @property
    def is_ready(self) -> bool:
        return self._state is ConnState.READY

    @property
    def is_closing(self) -> bool:
        """CLS sent or close under way: no RDY, no new publishes."""
        return self._state > ConnState.READY

    @property
    def max_rdy_count(self) -> int:
        return self.negotiated.max_rdy_count

    @property
    def pending(self) -> int:
        """Publishes sent and not yet answered."""
        return len(self._pending)

    # -- starting -----------------------------------------------------------------------

    def start(self, network: Network) -> None:
        """Open the stream; the handshake follows as soon as it is up."""
        try:
            host, port = split_address(self.address)
        except ValueError as exc:
            self._closed(exc)
            return
        self._log("INFO", "connecting to nsqd")
        self._handshake_timer = self._clock.call_later(self.config.read_timeout, self._handshake_expired)
        network.connect(host, port, self)

    # -- ConnectionHandler -----------------------------------------------------------------

    def connection_made(self, conn: Connection) -> None:
        if self._state is not ConnState.CONNECTING:
            conn.abort()  # closed or timed out before the stream came up
            return
        self._transport = conn
        self._state = ConnState.IDENTIFYING
        self._last_read = self._clock.now()
        self._write(v2.MAGIC_V2 + v2.encode_identify(self.config.identify_body()))
        self._flush()

    def data_received(self, data: bytes) -> None:
        if self._transport is None:
            return  # closing: whatever nsqd still sends is moot
        self._last_read = now = self._clock.now()
        if self._stack is not None:
            data = self._from_wire(data)
        # Parse from immutable bytes, so each body is cut with one copy; only a
        # frame split across reads is carried over in _buf.
        if self._buf:
            self._buf += data
            data = bytes(self._buf)
            self._buf.clear()
        have = len(data)
        pos = 0
        header = _FRAME_HEADER.unpack_from
        message_header = _MESSAGE_HEADER.unpack_from
        max_frame = self.config.max_frame_size
        on_message = self._delegate.on_message
        self._in_read = True
        try:
            while have - pos >= 8:
                size, frame_type = header(data, pos)
                if size < 4 or size > max_frame:
                    self.abort(ProtocolViolation(f"invalid frame size {size}"))
                    return
                end = pos + 4 + size
                if end > have:
                    break
                if frame_type == v2.FRAME_MESSAGE:
                    # The hot path, inline: one Message per delivery and nothing else.
                    if self.topic is None or self._state < ConnState.READY or size < 30:
                        self.abort(ProtocolViolation(f"message frame of {size - 4} bytes in state {self._state.name}"))
                        return
                    timestamp, attempts = message_header(data, pos + 8)
                    msg = Message(data[pos + 18 : pos + 34], data[pos + 34 : end], attempts, timestamp, self)
                    self.in_flight += 1
                    self.messages_received += 1
                    self.last_message_time = now
                    on_message(self, msg)
                elif frame_type == v2.FRAME_RESPONSE:
                    self._on_response(data[pos + 8 : end])
                elif frame_type == v2.FRAME_ERROR:
                    self._on_error_frame(data[pos + 8 : end])
                else:
                    self.abort(ProtocolViolation(f"unknown frame type {frame_type}"))
                    return
                pos = end
                if self._ended:  # a callback closed the connection
                    return
                if self._new_layer is not None:
                    # what followed the OK in this read was sent through the new layer
                    decoded = self._through_new_layer(data[pos:])
                    if decoded is None:
                        return
                    data = decoded
                    have = len(data)
                    pos = 0
            if pos < have:
                self._buf += data[pos:]
        finally:
            self._in_read = False
        if self._out:
            self._flush()

    def eof_received(self) -> None:
        pass  # connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed(exc)

    def pause_writing(self) -> None:
        pass  # commands are small; publishers are bounded by their waiting answers

    def resume_writing(self) -> None:
        pass

    # -- frames in ------------------------------------------------------------------------

    def _on_response(self, data: bytes) -> None:
        if data == v2.OK and self._pending:
            # The common case first: an answer to a publish (publishes wait only once READY).
            self._pending.popleft()(None)
            if self._state is ConnState.DRAINING:
                self._maybe_drained()
            return
        if data == v2.HEARTBEAT:
            self._write(b"NOP\n")
            return
        state = self._state
        if state is ConnState.IDENTIFYING and self._upgrades is not None:
            if data != v2.OK:
                self.abort(ProtocolViolation(f"upgrade answered {data[:64]!r}"))
                return
            self._next_upgrade()
        elif state is ConnState.IDENTIFYING:
            self._on_identified(data)
        elif state is ConnState.AUTHENTICATING:
            self._log("INFO", f"AUTH accepted: {data.decode('utf-8', 'replace')}")
            self._after_auth()
        elif state is ConnState.SUBSCRIBING:
            if data != v2.OK:
                self.abort(ProtocolViolation(f"SUB answered {data!r}"))
                return
            self._become_ready()
        elif data == v2.CLOSE_WAIT and state is ConnState.CLOSING:
            self._log("INFO", "received CLOSE_WAIT from nsqd")
            self._state = ConnState.DRAINING
            self._maybe_drained()
        else:
            self.abort(ProtocolViolation(f"unexpected response {data[:64]!r} in state {state.name}"))

    def _on_identified(self, data: bytes) -> None:
        try:
            negotiated = Negotiated.from_response(data)
        except ProtocolViolation as exc:
            self.abort(exc)
            return
        unasked = [name for name in ("tls_v1", "snappy", "deflate") if getattr(negotiated, name) and not getattr(self.config, name)]
        if unasked:
            self.abort(ProtocolViolation(f"nsqd switched on {', '.join(unasked)}, which this client did not ask for"))
            return
        self.negotiated = negotiated
        # go-nsq's order: TLS, then deflate, then snappy (nsqd agrees to one compression at most)
        upgrades = [name for name in ("tls_v1", "deflate", "snappy") if getattr(negotiated, name)]
        if upgrades:
            self._upgrades = upgrades
            self._next_upgrade()
            return
        self._after_identify()

    def _next_upgrade(self) -> None:
        """Switch on the next layer nsqd agreed to, and wait for its OK; after the last, go on."""
        assert self._upgrades is not None
        if not self._upgrades:
            self._upgrades = None
            self._after_identify()
            return
        step = self._upgrades.pop(0)
        stack = self._stack = self._stack or Stack()
        layer: Layer
        if step == "tls_v1":
            context = self.config.tls_context
            if context is None:
                self.abort(NSQClientError("tls_v1 needs the client's tls_context (the runtime builds it from the tls_* options)"))
                return
            host = split_address(self.address)[0]
            tls = TLSLayer(context, server_side=False, server_hostname=host or None)
            stack.add_tls(tls)
            layer = tls
            try:
                hello = tls.start()
            except LayerError as exc:
                self.abort(NSQClientError(f"TLS: {exc}"))
                return
            if self._transport is not None and hello:
                self._transport.write(hello)
            self._log("INFO", "upgrading to TLS")
        elif step == "deflate":
            layer = DeflateLayer(self.negotiated.deflate_level or self.config.deflate_level)
            stack.add(layer)
            self._log("INFO", "upgrading to Deflate")
        else:
            layer = SnappyLayer()
            stack.add(layer)
            self._log("INFO", "upgrading to Snappy")
        self._new_layer = layer

    def _through_new_layer(self, rest: bytes) -> bytes | None:
        """``rest`` through the layer just switched on; None if that ended the connection."""
        layer, self._new_layer = self._new_layer, None
        assert layer is not None
        try:
            out = layer.decode(rest)
        except LayerError as exc:
            self.abort(ProtocolViolation(str(exc)))
            return None
        if isinstance(layer, TLSLayer):
            reply = layer.take_output()
            if reply and self._transport is not None:
                self._transport.write(reply)
        return out

    def _from_wire(self, data: bytes) -> bytes:
        assert self._stack is not None
        try:
            data, reply = self._stack.receive(data)
        except LayerError as exc:
            self.abort(ProtocolViolation(str(exc)))
            return b""
        if reply and self._transport is not None:
            self._transport.write(reply)
        return data

    def _after_identify(self) -> None:
        negotiated = self.negotiated
        if negotiated.auth_required:
            if not self.config.auth_secret:
                self.abort(NSQClientError("nsqd requires AUTH and no auth_secret is configured"))
                return
            self._state = ConnState.AUTHENTICATING
            self._write(v2.encode_command(b"AUTH", body=self.config.auth_secret.encode()))
            return
        self._after_auth()

    def _after_auth(self) -> None:
        if self.topic is None:
            self._become_ready()
            return
        self._state = ConnState.SUBSCRIBING
        self._write(b"SUB %s %s\n" % (self.topic.encode(), (self.channel or "").encode()))

    def _become_ready(self) -> None:
        self._state = ConnState.READY
        self.was_ready = True
        self._cancel(self._handshake_timer)
        self._handshake_timer = None
        if self.config.heartbeat_interval > 0:
            self._read_timer = self._clock.call_later(self.config.read_timeout, self._check_read)
        self._delegate.on_ready(self)

    def _on_error_frame(self, data: bytes) -> None:
        err = error_from_frame(data)
        if not err.fatal:
            self._log("WARN", f"protocol error - {err}")
            self._delegate.on_error(self, err)
            return
        self._log("ERROR", f"protocol error - {err}")
        if self._pending:
            self._pending.popleft()(err)
        self._delegate.on_error(self, err)
        # nsqd closes the connection after a fatal error; close our end too.
        if self._close_exc is None:
            self._close_exc = err
        self._end_transport(abort=False)

    # -- commands out ------------------------------------------------------------------------

    def publish(self, command: bytes, on_done: AckCallback) -> None:
        """Send an encoded PUB, MPUB or DPUB; ``on_done`` gets None or the error nsqd answered."""
        if self._state is not ConnState.READY:
            on_done(NotConnectedError(f"{self.address} is {self._state.name}, not READY"))
            return
        if self._transport is None:
            on_done(ConnectionClosedError(f"connection to {self.address} is closing"))
            return
        self._pending.append(on_done)
        self._write(command)

    def set_rdy(self, count: int) -> None:
        """Tell nsqd how many messages may be in flight on this connection (never above max_rdy_count)."""
        if self._state is not ConnState.READY or self.topic is None:
            return
        count = max(0, min(count, self.negotiated.max_rdy_count))
        if count == self.rdy:
            return
        self.rdy = count
        if count > 0:
            self.last_rdy_time = self._clock.now()
        self._write(b"RDY %d\n" % count)

    def close(self) -> None:
        """Close cleanly: CLS and drain for a consumer, wait for answers for a producer."""
        state = self._state
        if state >= ConnState.CLOSING:
            return
        if state is ConnState.CONNECTING:
            self._closed(None)
            return
        if self._transport is None:
            return  # already ending; connection_lost follows
        if state in _HANDSHAKE:
            self.abort()
            return
        if self.topic is not None:
            self._state = ConnState.CLOSING
            self._write(b"CLS\n")
        else:
            self._state = ConnState.DRAINING
            self._maybe_drained()

    def abort(self, exc: BaseException | None = None) -> None:
        """Close at once, dropping anything unsent."""
        if self._state is ConnState.CLOSED:
            return
        if exc is not None and self._close_exc is None:
            self._close_exc = exc
            self._log("ERROR", f"closing: {exc}")
        if self._state is ConnState.CONNECTING:
            self._closed(None)
            return
        self._end_transport(abort=True)

    # -- MessageResponder -------------------------------------------------------------------------

    def requeue_delay(self, attempts: int) -> float:
        return self.config.requeue_delay(attempts)

    def message_finished(self, msg: Message) -> None:
        # The other half of the hot path: _respond and _write inlined.
        self.messages_finished += 1
        if self._transport is not None:
            self.in_flight -= 1
            self._out += b"FIN " + msg.id + b"\n"
            if not self._in_read and self._flush_timer is None:
                self._flush_timer = self._clock.call_later(0, self._flush)
        elif self._state is not ConnState.CLOSED:
            self.in_flight -= 1
        self._delegate.on_message_done(self, msg, True, False)
        if self._state is ConnState.DRAINING:
            self._maybe_drained()

    def message_requeued(self, msg: Message, delay_ms: int, backoff: bool) -> None:
        self.messages_requeued += 1
        self._respond(b"REQ %s %d\n" % (msg.id, delay_ms))
        self._delegate.on_message_done(self, msg, False, backoff)
        self._maybe_drained()

    def message_touched(self, msg: Message) -> None:
        if self._state is not ConnState.CLOSED:
            self._write(b"TOUCH " + msg.id + b"\n")

    def _respond(self, command: bytes) -> None:
        if self._state is ConnState.CLOSED:
            return  # nsqd times out whatever was in flight on the connection and redelivers it
        self.in_flight -= 1
        self._write(command)

    # -- internals -----------------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self._transport is None or self._state is ConnState.CLOSED:
            return
        self._out += data
        if not self._in_read and self._flush_timer is None:
            self._flush_timer = self._clock.call_later(0, self._flush)

    def _flush(self) -> None:
        self._flush_timer = None
        if self._out and self._transport is not None and self._state is not ConnState.CLOSED:
            out = self._out
            self._out = bytearray()
            if self._stack is not None:
                try:
                    sent = self._stack.send(bytes(out))
                except LayerError as exc:
                    self.abort(ProtocolViolation(str(exc)))
                    return
                if sent:
                    self._transport.write(sent)
                return
            self._transport.write(out)

    def _maybe_drained(self) -> None:
        if self._state is not ConnState.DRAINING or self.in_flight > 0 or self._pending:
            return
        self._end_transport(abort=False)

    def _end_transport(self, *, abort: bool) -> None:
        """Close (after flushing) or abort the stream; ``connection_lost`` follows.

        The transport is forgotten at once, so nothing is parsed or written in
        the moment before the runtime reports the close.
        """
        transport = self._transport
        if transport is None:
            return
        if abort:
            self._out.clear()
        else:
            self._flush()
        self._transport = None
        self._ended = True
        if abort:
            transport.abort()
        else:
            transport.close()

    def _handshake_expired(self) -> None:
        self._handshake_timer = None
        if self._state in _HANDSHAKE:
            self.abort(TimeoutError(f"no handshake with {self.address} within {self.config.read_timeout}s"))

    def _check_read(self) -> None:
        self._read_timer = None
        if self._state is ConnState.CLOSED:
            return
        idle = self._clock.now() - self._last_read
        timeout = self.config.read_timeout
        if idle >= timeout:
            self.abort(TimeoutError(f"nothing from {self.address} for {idle:.1f}s"))
            return
        self._read_timer = self._clock.call_later(timeout - idle, self._check_read)

    def _closed(self, exc: BaseException | None) -> None:
        if self._notified_close:
            return
        self._notified_close = True
        self._state = ConnState.CLOSED
        for timer in (self._flush_timer, self._handshake_timer, self._read_timer):
            self._cancel(timer)
        self._flush_timer = self._handshake_timer = self._read_timer = None
        self._transport = None
        self._ended = True
        self._out.clear()
        self._buf.clear()
        reason = self._close_exc if self._close_exc is not None else exc
        pending, self._pending = self._pending, deque()
        for on_done in pending:
            on_done(ConnectionClosedError(f"connection to {self.address} closed" + (f": {reason}" if reason else "")))
        self.in_flight = 0
        self.rdy = 0
        self._log("INFO" if reason is None else "WARN", "connection closed" + (f": {reason}" if reason else ""))
        self._delegate.on_close(self, reason)

    @staticmethod
    def _cancel(timer: Timer | None) -> None:
        if timer is not None:
            timer.cancel()

    def _log(self, level: str, msg: str) -> None:
        if self._logger is not None:
            self._logger.log(level, f"({self.address}) {msg}")
