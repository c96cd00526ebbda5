"""One client connection speaking the TCP protocol V2: its state, its settings, its commands.

nsqd splits this between two goroutines per connection (an IOLoop reading
commands and a messagePump writing messages); here it is one object driven by
calls: ``data_received`` runs commands, the channel calls ``send_message``, and
two timers (heartbeat/read deadline, output-buffer flush) do the rest.

Output is buffered as nsqd's bufio.Writer does it: responses and errors are
flushed at the end of the read batch that produced them (nsqd flushes each at
once; the bytes reach the client no later), messages are flushed when the
buffer reaches the client's output_buffer_size, when the client stops being
ready (RDY reached), or output_buffer_timeout after the first unflushed one.

State transitions (nsqd's numbering, which /stats reports):

    INIT --SUB--> SUBSCRIBED --CLS--> CLOSING
    any  --fatal error, read timeout, disconnect--> closed
"""

from __future__ import annotations

import json
import struct
from functools import partial
from typing import TYPE_CHECKING, NamedTuple

from broker.nsqd.auth import AuthError, AuthQuery, AuthState
from broker.nsqd.identify import IdentifyDecodeError, decode_identify
from broker.nsqd.message import Message
from broker.nsqd.topic import PublishRefused
from broker.ports import Connection, Timer
from broker.wire import gojson, v2
from broker.wire.gojson import JSONValue
from broker.wire.layers import DeflateLayer, LayerError, SnappyLayer, Stack, TLSLayer
from broker.wire.netaddr import go_addr_string, is_unix
from broker.wire.v2 import ClientError

if TYPE_CHECKING:
    from broker.nsqd.backend import BackendQueue
    from broker.nsqd.channel import Channel
    from broker.nsqd.nsqd import NSQD

__all__ = ["STATE_CLOSING", "STATE_INIT", "STATE_SUBSCRIBED", "ClientV2"]

STATE_INIT = 0
STATE_DISCONNECTED = 1
STATE_CONNECTED = 2
STATE_SUBSCRIBED = 3
STATE_CLOSING = 4

_pack_header = struct.Struct(">iiqH16s").pack  # [size][type=2][timestamp][attempts][id]
_HEARTBEAT_FRAME = v2.encode_frame(v2.FRAME_RESPONSE, v2.HEARTBEAT)
_OK_FRAME = v2.encode_frame(v2.FRAME_RESPONSE, v2.OK)
_CLOSE_WAIT_FRAME = v2.encode_frame(v2.FRAME_RESPONSE, v2.CLOSE_WAIT)
_BAD_PROTOCOL_FRAME = v2.encode_frame(v2.FRAME_ERROR, b"E_BAD_PROTOCOL")
_DEFAULT_OUTPUT_BUFFER_SIZE = 16 * 1024
# Time checks allow for a timer that fires a hair early.
_SLACK = 1e-3


class _Ack:
    """A response held back behind a durable publish whose fsync has not happened yet."""

    __slots__ = ("cmd", "frame", "waiting")

    def __init__(self, frame: bytes, waiting: int = 0, cmd: str = "") -> None:
        self.frame = frame
        self.waiting = waiting
        self.cmd = cmd


class _Refuse(NamedTuple):
    """Not a command: an error to raise where the next command would run (an auth answer's)."""

    error: ClientError


_AUTHORIZED: dict[type, str] = {v2.Pub: "PUB", v2.Mpub: "MPUB", v2.Dpub: "DPUB", v2.Sub: "SUB"}


def _go_q(s: str) -> str:
    # Go's %q of a topic or channel name (names are validated: nothing to escape)
    return f'"{s}"'


class ClientV2:
    """A V2 client connection; a ``ConnectionHandler`` for the runtime, a ``Consumer`` for its channel."""

    # Slots: an idle connection costs no instance dict (about 1.5 KiB of the ~5 KiB it took).
    __slots__ = (
        "_acks",
        "_auth_enabled",
        "_auth_paused_reading",
        "_auth_pending",
        "_auth_query",
        "_auth_wait",
        "_clock",
        "_close_requested",
        "_closing",
        "_conn",
        "_flush_timer",
        "_last_read",
        "_lost",
        "_magic",
        "_magic_ok",
        "_needs_dispatch",
        "_next_heartbeat",
        "_nsqd",
        "_out",
        "_out_size",
        "_parser",
        "_pause_reading_at",
        "_reading_paused",
        "_respond",
        "_stack",
        "_tick_timer",
        "_tls_gate",
        "_writing_paused",
        "_writing_paused_at",
        "auth_secret",
        "auth_state",
        "channel",
        "client_id",
        "connect_ts",
        "deflate",
        "finish_count",
        "heartbeat_interval",
        "hostname",
        "id",
        "in_flight_count",
        "message_count",
        "msg_timeout",
        "output_buffer_size",
        "output_buffer_timeout",
        "pub_counts",
        "ready_count",
        "remote_address",
        "requeue_count",
        "sample_rate",
        "snappy",
        "state",
        "user_agent",
    )

    def __init__(self, nsqd: NSQD, client_id: int) -> None:
        opts = nsqd.opts
        self.id = client_id
        self.state = STATE_INIT
        self.ready_count = 0
        self.in_flight_count = 0
        self.message_count = 0
        self.finish_count = 0
        self.requeue_count = 0
        self.pub_counts: dict[str, int] = {}
        self.channel: Channel | None = None

        self.client_id = ""
        self.hostname = ""
        self.user_agent = ""
        self.remote_address = ""
        self.connect_ts = nsqd.clock.wall_ns() // 1_000_000_000
        self.heartbeat_interval = opts.client_timeout / 2
        self.msg_timeout = opts.msg_timeout
        self.output_buffer_size = _DEFAULT_OUTPUT_BUFFER_SIZE
        self.output_buffer_timeout = opts.output_buffer_timeout
        self.sample_rate = 0
        self.snappy = False
        self.deflate = False
        # TLS, then snappy or deflate, once IDENTIFY has switched them on (None: plain).
        self._stack: Stack | None = None
        # --tls-required: every command but IDENTIFY is refused until TLS is on.
        self._tls_gate = opts.tls_required != "false"
        # AUTH (--auth-http-address): what the auth server allows, and a query in progress,
        # during which the command that needed it waits and nothing after it is run.
        self._auth_enabled = bool(opts.auth_http_addresses)
        self.auth_secret = ""
        self.auth_state: AuthState | None = None
        self._auth_query: AuthQuery | None = None
        self._auth_pending: v2.Command | None = None
        self._auth_wait = False
        self._auth_paused_reading = False

        self._nsqd = nsqd
        self._clock = nsqd.clock
        self._conn: Connection | None = None
        self._magic = b""
        self._magic_ok = False
        self._parser = v2.V2Parser(
            max_msg_size=opts.max_msg_size,
            max_body_size=opts.max_body_size,
            max_req_timeout_ms=int(opts.max_req_timeout * 1000),
            precheck=self._precheck,
        )
        # What is buffered for the client, as the pieces it was written in, joined
        # once at flush: cheaper than growing one buffer a piece at a time, and a
        # lone response goes out without a copy.
        self._out: list[bytes] = []
        self._out_size = 0
        self._respond = False  # a response is buffered: flush at the end of this batch
        self._closing = False
        self._close_requested = False
        self._lost = False
        # With --durable-publish a publish is answered after its fsync; every
        # response after it waits in line so the client sees them in order.
        # A list, not a deque: empty, it costs 56 bytes where a deque costs 760.
        self._acks: list[_Ack] = []
        self._writing_paused = False
        self._writing_paused_at = 0.0
        self._reading_paused = False
        self._pause_reading_at = 4 * opts.max_output_buffer_size
        self._needs_dispatch = False
        self._flush_timer: Timer | None = None
        self._tick_timer: Timer | None = None
        self._last_read = 0.0
        self._next_heartbeat = 0.0

    def __repr__(self) -> str:
        return f"{self.remote_address}"

    @property
    def tls_layer(self) -> TLSLayer | None:
        """The connection's TLS session once its handshake has finished."""
        stack = self._stack
        if stack is None or stack.tls is None or not stack.tls.handshake_done:
            return None
        return stack.tls

    @property
    def tls(self) -> bool:
        return self.tls_layer is not None

    @property
    def authed(self) -> bool:
        """nsqd's HasAuthorizations."""
        return self.auth_state is not None and bool(self.auth_state.authorizations)

    @property
    def auth_identity(self) -> str:
        return self.auth_state.identity if self.auth_state is not None else ""

    @property
    def auth_identity_url(self) -> str:
        return self.auth_state.identity_url if self.auth_state is not None else ""

    # -- ConnectionHandler ----------------------------------------------------------

    def connection_made(self, conn: Connection) -> None:
        self._conn = conn
        peer = conn.peer_address
        self.remote_address = go_addr_string(peer)
        # newClientV2 names the client after the host part of its address, which a Unix socket has not.
        self.client_id = self.hostname = "" if is_unix(peer) else peer[0]
        conn.set_write_buffer_limits(self._nsqd.opts.max_output_buffer_size)
        now = self._clock.now()
        self._last_read = now
        self._next_heartbeat = now + self.heartbeat_interval
        self._schedule_tick(now)
        self._nsqd.log("INFO", f"TCP: new client({self.remote_address})")

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self._last_read = self._clock.now()
        if self._stack is not None:
            data = self._from_layers(data)
            if not data:
                return
        if not self._magic_ok:
            need = 4 - len(self._magic)
            self._magic += data[:need]
            data = data[need:]
            if len(self._magic) < 4:
                return
            if self._magic != v2.MAGIC_V2:
                self._nsqd.log("ERROR", f"client({self.remote_address}) bad protocol magic '{self._magic.decode('latin-1')}'")
                self._write(_BAD_PROTOCOL_FRAME)
                self.close()
                return
            self._magic_ok = True
            self._nsqd.log("INFO", f"CLIENT({self.remote_address}): desired protocol magic '  V2'")
            if not data:
                return
        self._parser.feed(data)
        if not self._auth_wait:
            self._run()

    def _run(self, first: v2.Command | _Refuse | None = None) -> None:
        """Run the commands read so far (``first`` before them), until one must wait for the auth server."""
        parser = self._parser
        fast_pub = not self._auth_enabled
        try:
            if first is not None:
                self._exec(first)
            while not self._closing and not self._auth_wait:
                if self._tls_gate:
                    self._enforce_tls_policy()
                if self.state >= STATE_SUBSCRIBED:
                    ids = parser.take_fins()
                    if ids:
                        self._fin_many(ids)
                cmd = parser.next_command()
                if cmd is None:
                    break
                if type(cmd) is v2.Pub and fast_pub:  # a producer's every command: spare it a call
                    self._publish_one("PUB", cmd.topic, cmd.body, 0.0)
                else:
                    self._exec(cmd)
        except ClientError as err:
            self._nsqd.log("ERROR", f"[{self.remote_address}] - {err}")
            self._write(err.frame())
            if err.fatal:
                self.close()
        except v2.LineTooLong:
            self._nsqd.log("ERROR", f"[{self.remote_address}] - failed to read command - line too long")
            self.close()
        finally:
            if self._needs_dispatch:
                self._needs_dispatch = False
                if self.channel is not None:
                    self.channel.dispatch()
            if self._respond:
                self._flush()
        conn = self._conn
        if conn is not None and not self._reading_paused and conn.write_buffer_size() > self._pause_reading_at:
            # The client is not reading what we send: stop reading what it sends.
            self._reading_paused = True
            conn.pause_reading()

    def eof_received(self) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._closing = True
        if self._auth_query is not None:
            self._auth_query.cancel()
            self._auth_query = None
        for timer in (self._flush_timer, self._tick_timer):
            if timer is not None:
                timer.cancel()
        self._flush_timer = self._tick_timer = None
        if self.channel is not None:
            self.channel.remove_client(self.id)
        self._nsqd.client_gone(self)
        self._nsqd.log("INFO", f"PROTOCOL(V2): [{self.remote_address}] exiting ioloop")

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._writing_paused_at = self._clock.now()

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._reading_paused and self._conn is not None:
            self._reading_paused = False
            self._conn.resume_reading()
        if self.channel is not None:
            self.channel.dispatch()

    # -- Consumer (called by the channel) --------------------------------------------

    def is_ready(self) -> bool:
        return self.in_flight_count < self.ready_count and not self._writing_paused and not self._closing

    def room(self) -> int:
        if self._writing_paused or self._closing:
            return 0
        return self.ready_count - self.in_flight_count

    def send_message(self, msg: Message) -> None:
        """``send_messages([msg])`` without the list: a channel with several consumers sends one at a time."""
        out = self._out
        body = msg.body
        out.append(_pack_header(len(body) + 30, 2, msg.timestamp, msg.attempts, msg.id))
        out.append(body)
        self._out_size += len(body) + 34
        self.in_flight_count += 1
        self.message_count += 1
        self._flush_when_due()

    def send_messages(self, msgs: list[Message]) -> None:
        out = self._out
        size = self._out_size
        for msg in msgs:
            body = msg.body
            out.append(_pack_header(len(body) + 30, 2, msg.timestamp, msg.attempts, msg.id))
            out.append(body)
            size += len(body) + 34
        self._out_size = size
        n = len(msgs)
        self.in_flight_count += n
        self.message_count += n
        self._flush_when_due()

    def _flush_when_due(self) -> None:
        # nsqd's bufio.Writer flushes when full; the message pump flushes when the
        # client stops being ready; otherwise the output buffer timeout does.
        if self.in_flight_count >= self.ready_count or self._out_size >= self.output_buffer_size:
            self._flush()
        elif self._flush_timer is None:
            if self.output_buffer_timeout > 0:
                self._flush_timer = self._clock.call_later(self.output_buffer_timeout, self._on_flush_timer)
            else:
                self._flush()

    def timed_out_message(self) -> None:
        self.in_flight_count -= 1
        self._needs_dispatch = True

    def empty(self) -> None:
        self.in_flight_count = 0

    def close(self) -> None:
        """Flush what is buffered and close the connection (after held-back answers)."""
        if self._close_requested:
            return
        self._close_requested = True
        self._closing = True
        if not self._acks:
            self._close_now()

    def _close_now(self) -> None:
        self._flush()
        if self._conn is not None:
            self._conn.close()

    # -- output ---------------------------------------------------------------------

    def _write(self, frame: bytes) -> None:
        if self._acks:
            self._acks.append(_Ack(frame))
            return
        self._out.append(frame)
        self._out_size += len(frame)
        self._respond = True

    def _await_sync(self, cmd: str, backends: list[BackendQueue]) -> None:
        ack = _Ack(_OK_FRAME, len(backends), cmd)
        self._acks.append(ack)
        for backend in backends:
            backend.on_synced(partial(self._synced, ack))

    def _synced(self, ack: _Ack, err: Exception | None) -> None:
        if err is not None and ack.frame is _OK_FRAME:
            failure = ClientError(f"E_{ack.cmd}_FAILED", f"{ack.cmd} failed {err}")
            self._nsqd.log("ERROR", f"[{self.remote_address}] - {failure}")
            ack.frame = failure.frame()
            self.close()  # a failed publish is fatal, as in nsqd
        ack.waiting -= 1
        released = False
        acks = self._acks
        while acks and acks[0].waiting == 0:
            frame = acks.pop(0).frame
            self._out.append(frame)
            self._out_size += len(frame)
            released = True
        if self._lost:
            return
        if released:
            self._flush()
        if not acks and self._close_requested:
            self._close_now()

    def _flush(self) -> None:
        self._respond = False
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        out = self._out
        if out and self._conn is not None:
            self._out = []
            self._out_size = 0
            data = out[0] if len(out) == 1 else b"".join(out)
            if self._stack is not None:
                try:
                    data = self._stack.send(data)
                except LayerError as exc:
                    self._layer_failed(exc)
                    return
                if not data:
                    return
            self._conn.write(data)

    # -- layers (TLS, snappy, deflate) ----------------------------------------------------

    def _from_layers(self, data: bytes) -> bytes:
        """What a read carries through the connection's layers; writes what TLS answers on its own."""
        stack = self._stack
        assert stack is not None
        try:
            data, reply = stack.receive(data)
        except LayerError as exc:
            self._layer_failed(exc)
            return b""
        if reply and self._conn is not None:
            self._conn.write(reply)
        tls = stack.tls
        if tls is not None and tls.closed_by_peer:
            self.close()
            return b""
        return data

    def _layer_failed(self, exc: LayerError) -> None:
        stack = self._stack
        tls = stack.tls if stack is not None else None
        self._out = []
        self._out_size = 0
        self._stack = None
        conn = self._conn
        if tls is not None and not tls.handshake_done:
            # nsqd's UpgradeTLS failed: IDENTIFY's fatal error, written on the plain connection.
            err = ClientError("E_IDENTIFY_FAILED", f"IDENTIFY failed {exc}")
            self._nsqd.log("ERROR", f"[{self.remote_address}] - {err}")
            if conn is not None:
                alert = tls.take_output()
                if alert:
                    conn.write(alert)
                conn.write(err.frame())
        else:
            self._nsqd.log("ERROR", f"[{self.remote_address}] - failed to read command - {exc}")
        self._closing = True
        self._close_requested = True
        self._acks.clear()
        if conn is not None:
            conn.close()

    def _enforce_tls_policy(self) -> None:
        # nsqd's enforceTLSPolicy, run on every command but IDENTIFY before it is read further.
        if self.tls:
            self._tls_gate = False
            return
        name = self._parser.peek_name()
        if name is not None and name != b"IDENTIFY":
            raise ClientError("E_INVALID", f"cannot {name.decode('utf-8', 'replace')} in current state (TLS required)")

    def _upgrade(self, tls: bool, snappy: bool, deflate: bool, deflate_level: int) -> None:
        """Switch on what IDENTIFY negotiated, each answered with OK through the layers below it."""
        self._flush()  # the IDENTIFY response goes out as the connection was
        rest = self._parser.take_unparsed()
        stack = self._stack = Stack()
        where = self.remote_address
        if tls:
            context = self._nsqd.tls_context
            assert context is not None
            self._nsqd.log("INFO", f"PROTOCOL(V2): [{where}] upgrading connection to TLS")
            stack.add_tls(TLSLayer(context, server_side=True))
            self._write(_OK_FRAME)
            self._flush()  # held by TLS until the handshake is done
        if snappy:
            self._nsqd.log("INFO", f"PROTOCOL(V2): [{where}] upgrading connection to snappy")
            stack.add(SnappyLayer())
            self.snappy = True
            self._write(_OK_FRAME)
            self._flush()
        if deflate:
            self._nsqd.log("INFO", f"PROTOCOL(V2): [{where}] upgrading connection to deflate (level {deflate_level})")
            stack.add(DeflateLayer(deflate_level))
            self.deflate = True
            self._write(_OK_FRAME)
            self._flush()
        if rest:
            self._parser.feed(self._from_layers(rest))

    def _on_flush_timer(self) -> None:
        self._flush_timer = None
        self._flush()

    # -- heartbeats and the read deadline ---------------------------------------------

    def _schedule_tick(self, now: float) -> None:
        if self._tick_timer is not None:
            self._tick_timer.cancel()
            self._tick_timer = None
        hb = self.heartbeat_interval
        if hb <= 0:
            return
        at = min(self._next_heartbeat, self._last_read + 2 * hb)
        self._tick_timer = self._clock.call_later(max(at - now, 0.0), self._on_tick)

    def _on_tick(self) -> None:
        self._tick_timer = None
        if self._closing:
            return
        now = self._clock.now()
        hb = self.heartbeat_interval
        if now + _SLACK >= self._last_read + 2 * hb:
            self._nsqd.log("ERROR", f"[{self.remote_address}] - failed to read command - read timeout")
            self.close()
            return
        if self._writing_paused and now + _SLACK >= self._writing_paused_at + hb:
            self._nsqd.log("ERROR", f"[{self.remote_address}] - write timeout: client is not reading")
            self.close()
            return
        if now + _SLACK >= self._next_heartbeat:
            self._out.append(_HEARTBEAT_FRAME)
            self._out_size += len(_HEARTBEAT_FRAME)
            self._flush()
            self._next_heartbeat = now + hb
        self._schedule_tick(now)

    # -- commands -------------------------------------------------------------------

    def _precheck(self, name: bytes, params: list[bytes]) -> None:
        """The checks nsqd makes before reading a command's parameters or body."""
        state = self.state
        if name in (b"FIN", b"REQ", b"TOUCH"):
            if state != STATE_SUBSCRIBED and state != STATE_CLOSING:
                raise ClientError("E_INVALID", f"cannot {name.decode()} in current state")
        elif name in (b"IDENTIFY", b"AUTH"):
            if state != STATE_INIT:
                raise ClientError("E_INVALID", f"cannot {name.decode()} in current state")
        elif name == b"SUB":
            if state != STATE_INIT:
                raise ClientError("E_INVALID", "cannot SUB in current state")
            if self.heartbeat_interval <= 0:
                raise ClientError("E_INVALID", "cannot SUB with heartbeats disabled")
        elif name == b"CLS" and state != STATE_SUBSCRIBED:
            raise ClientError("E_INVALID", "cannot CLS in current state")

    def _exec(self, cmd: v2.Command | _Refuse) -> None:
        # Ordered by frequency on a busy node (data_received runs PUB itself, and most
        # FINs come in runs, through _fin_many).
        if self._auth_enabled and type(cmd) in _AUTHORIZED and not self._authorized(cmd):  # type: ignore[arg-type]
            return
        if type(cmd) is v2.Fin:
            self._fin(cmd)
        elif type(cmd) is v2.Pub:
            self._publish_one("PUB", cmd.topic, cmd.body, 0.0)
        elif type(cmd) is v2.Mpub:
            self._publish("MPUB", cmd.topic, cmd.bodies, 0.0)
        elif type(cmd) is v2.Rdy:
            self._rdy(cmd)
        elif type(cmd) is v2.Req:
            self._req(cmd)
        elif type(cmd) is v2.Touch:
            self._touch(cmd)
        elif type(cmd) is v2.Nop:
            pass
        elif type(cmd) is _Refuse:
            raise cmd.error
        elif type(cmd) is v2.Dpub:
            self._publish_one("DPUB", cmd.topic, cmd.body, cmd.defer_ms / 1000)
        elif type(cmd) is v2.Sub:
            self._sub(cmd)
        elif type(cmd) is v2.Identify:
            self._identify(cmd)
        elif type(cmd) is v2.Cls:
            self.ready_count = 0
            self.state = STATE_CLOSING
            self._write(_CLOSE_WAIT_FRAME)
        elif type(cmd) is v2.Auth:
            self._auth(cmd)

    # -- AUTH ---------------------------------------------------------------------------

    def _auth(self, cmd: v2.Auth) -> None:
        if self.authed:
            raise ClientError("E_INVALID", "AUTH already set")
        if not self._auth_enabled:
            raise ClientError("E_AUTH_DISABLED", "AUTH disabled")
        self.auth_secret = cmd.secret.decode("utf-8", "replace")
        self._ask_auth(cmd)

    def _authorized(self, cmd: v2.Command) -> bool:
        """nsqd's CheckAuth; False when it had to ask the auth server again (``cmd`` runs after)."""
        name = _AUTHORIZED[type(cmd)]
        topic = cmd.topic  # type: ignore[union-attr]
        channel = cmd.channel if type(cmd) is v2.Sub else ""
        state = self.auth_state
        if state is None or not state.authorizations:
            raise ClientError("E_AUTH_FIRST", f"AUTH required before {name}")
        if state.is_expired(self._clock.now()):
            self._ask_auth(cmd)
            return False
        if not state.is_allowed(topic, channel):
            raise ClientError("E_UNAUTHORIZED", f"AUTH failed for {name} on {_go_q(topic)} {_go_q(channel)}")
        return True

    def _ask_auth(self, cmd: v2.Command) -> None:
        nsqd = self._nsqd
        opts = nsqd.opts
        tls = self.tls_layer
        conn = self._conn
        peer = conn.peer_address if conn is not None else ("", -1)
        self._auth_pending = cmd
        self._auth_wait = True
        if conn is not None and not self._reading_paused:
            self._auth_paused_reading = True
            conn.pause_reading()
        if nsqd.network is None:
            self._clock.call_later(0.0, partial(self._auth_answered, AuthError("no network to reach an auth server")))
            return
        query = self._auth_query = AuthQuery(
            list(opts.auth_http_addresses),
            remote_ip="" if is_unix(peer) else peer[0],
            tls=tls is not None,
            secret=self.auth_secret,
            common_name=tls.peer_common_name() if tls is not None else "",
            network=nsqd.network,
            clock=self._clock,
            rand=nsqd.rand,
            connect_timeout=opts.http_client_connect_timeout,
            request_timeout=opts.http_client_request_timeout,
            client_tls=nsqd.auth_tls_context,
            on_done=self._auth_answered,
            method=opts.auth_http_request_method,
        )
        query.start()

    def _auth_answered(self, result: AuthState | AuthError) -> None:
        self._auth_query = None
        cmd, self._auth_pending = self._auth_pending, None
        self._auth_wait = False
        if self._closing or cmd is None:
            return
        if self._auth_paused_reading:
            self._auth_paused_reading = False
            if self._conn is not None and not self._reading_paused:
                self._conn.resume_reading()
        if isinstance(result, AuthError):
            # nsqd keeps the auth server's errors from the client: they go to the log.
            self._nsqd.log("WARN", f"PROTOCOL(V2): [{self.remote_address}] AUTH failed {result}")
            self._run(_Refuse(ClientError("E_AUTH_FAILED", "AUTH failed")))
            return
        self.auth_state = result
        if type(cmd) is not v2.Auth:
            self._run(cmd)
            return
        if not result.authorizations:
            self._run(_Refuse(ClientError("E_UNAUTHORIZED", "AUTH no authorizations found")))
            return
        answer: dict[str, JSONValue] = {"identity": result.identity, "identity_url": result.identity_url, "permission_count": len(result.authorizations)}
        self._write(v2.encode_frame(v2.FRAME_RESPONSE, gojson.dumps(answer)))
        self._run()

    def _fin(self, cmd: v2.Fin) -> None:
        assert self.channel is not None
        err = self.channel.finish(self.id, cmd.id)
        if err is not None:
            self._nonfatal("E_FIN_FAILED", f"FIN {cmd.id.decode('latin-1')} failed {err}")
            return
        self.finish_count += 1
        self.in_flight_count -= 1
        self._needs_dispatch = True

    def _fin_many(self, ids: list[bytes]) -> None:
        assert self.channel is not None
        failed = self.channel.finish_many(self.id, ids)
        done = len(ids) - len(failed)
        for msg_id, err in failed:
            self._nonfatal("E_FIN_FAILED", f"FIN {msg_id.decode('latin-1')} failed {err}")
        self.finish_count += done
        self.in_flight_count -= done
        self._needs_dispatch = True

    def _req(self, cmd: v2.Req) -> None:
        assert self.channel is not None
        err = self.channel.requeue(self.id, cmd.id, cmd.timeout_ms / 1000)
        if err is not None:
            self._nonfatal("E_REQ_FAILED", f"REQ {cmd.id.decode('latin-1')} failed {err}")
            return
        self.requeue_count += 1
        self.in_flight_count -= 1
        self._needs_dispatch = True

    def _touch(self, cmd: v2.Touch) -> None:
        assert self.channel is not None
        err = self.channel.touch(self.id, cmd.id, self.msg_timeout)
        if err is not None:
            self._nonfatal("E_TOUCH_FAILED", f"TOUCH {cmd.id.decode('latin-1')} failed {err}")

    def _nonfatal(self, code: str, desc: str) -> None:
        err = ClientError(code, desc, fatal=False)
        self._nsqd.log("ERROR", f"[{self.remote_address}] - {err}")
        self._write(err.frame())

    def _rdy(self, cmd: v2.Rdy) -> None:
        if self.state == STATE_CLOSING:
            self._nsqd.log("INFO", f"PROTOCOL(V2): [{self.remote_address}] ignoring RDY after CLS in state ClientStateV2Closing")
            return
        if self.state != STATE_SUBSCRIBED:
            raise ClientError("E_INVALID", "cannot RDY in current state")
        self.ready_count = v2.rdy_count(cmd.raw_count, self._nsqd.opts.max_rdy_count)
        self._needs_dispatch = True

    def _publish(self, cmd: str, topic_name: str, bodies: list[bytes], deferred: float) -> None:
        topic = self._nsqd.get_topic(topic_name)
        msgs = topic.new_messages(bodies, deferred)
        try:
            synced = topic.put_messages(msgs)
        except PublishRefused as exc:
            raise ClientError(f"E_{cmd}_FAILED", f"{cmd} failed {exc}") from None
        self.pub_counts[topic_name] = self.pub_counts.get(topic_name, 0) + len(msgs)
        if synced:
            self._await_sync(cmd, synced)
        else:
            self._write(_OK_FRAME)

    def _publish_one(self, cmd: str, topic_name: str, body: bytes, deferred: float) -> None:
        """``_publish`` of one body (PUB, DPUB), without the lists."""
        nsqd = self._nsqd
        topic = nsqd.topics.get(topic_name)
        if topic is None:
            topic = nsqd.get_topic(topic_name)
        msg = topic.new_message(body, deferred)
        try:
            synced = topic.put_message(msg)
        except PublishRefused as exc:
            raise ClientError(f"E_{cmd}_FAILED", f"{cmd} failed {exc}") from None
        counts = self.pub_counts
        counts[topic_name] = counts.get(topic_name, 0) + 1
        if synced:
            self._await_sync(cmd, synced)
        else:
            self._write(_OK_FRAME)

    def _sub(self, cmd: v2.Sub) -> None:
        topic = self._nsqd.get_topic(cmd.topic)
        channel = topic.get_channel(cmd.channel)
        err = channel.add_client(self)
        if err is not None:
            raise ClientError("E_SUB_FAILED", f"SUB failed {err}")
        self.state = STATE_SUBSCRIBED
        self.channel = channel
        self._write(_OK_FRAME)

    def _identify(self, cmd: v2.Identify) -> None:
        try:
            data = decode_identify(cmd.body)
        except IdentifyDecodeError:
            raise ClientError("E_BAD_BODY", "IDENTIFY failed to decode JSON body") from None
        opts = self._nsqd.opts
        self._nsqd.log("DEBUG", f"PROTOCOL(V2): [{self.remote_address}] {data.go_text()}")  # nsqd's line
        self.client_id = data.client_id
        self.hostname = data.hostname
        self.user_agent = data.user_agent

        hb = data.heartbeat_interval
        if hb == -1:
            self.heartbeat_interval = 0.0
        elif hb == 0:
            pass
        elif 1000 <= hb <= opts.max_heartbeat_interval * 1000:
            self.heartbeat_interval = hb / 1000
        else:
            raise ClientError("E_BAD_BODY", f"IDENTIFY heartbeat interval ({hb}) is invalid")

        size, timeout = data.output_buffer_size, data.output_buffer_timeout
        if timeout == -1:
            self.output_buffer_timeout = 0.0
        elif timeout == 0:
            pass
        elif opts.min_output_buffer_timeout * 1000 <= timeout <= opts.max_output_buffer_timeout * 1000:
            self.output_buffer_timeout = timeout / 1000
        else:
            raise ClientError("E_BAD_BODY", f"IDENTIFY output buffer timeout ({timeout}) is invalid")
        if size == -1:
            self.output_buffer_size = 1
            self.output_buffer_timeout = 0.0
        elif size == 0:
            pass
        elif 64 <= size <= opts.max_output_buffer_size:
            self.output_buffer_size = size
        else:
            raise ClientError("E_BAD_BODY", f"IDENTIFY output buffer size ({size}) is invalid")

        if not 0 <= data.sample_rate <= 99:
            raise ClientError("E_BAD_BODY", f"IDENTIFY sample rate ({data.sample_rate}) is invalid")
        self.sample_rate = data.sample_rate

        mt = data.msg_timeout
        if mt == 0:
            pass
        elif 1000 <= mt <= opts.max_msg_timeout * 1000:
            self.msg_timeout = mt / 1000
        else:
            raise ClientError("E_BAD_BODY", f"IDENTIFY msg timeout ({mt}) is invalid")

        now = self._clock.now()
        self._next_heartbeat = now + self.heartbeat_interval
        self._schedule_tick(now)

        if not data.feature_negotiation:
            self._write(_OK_FRAME)
            return
        # A second IDENTIFY switches nothing on again (nsqd would wrap a layer in itself).
        fresh = self._stack is None
        tls = self._nsqd.tls_context is not None and data.tls_v1 and fresh
        deflate = opts.deflate and data.deflate and fresh
        deflate_level = data.deflate_level if deflate and data.deflate_level > 0 else 6
        deflate_level = min(deflate_level, opts.max_deflate_level)
        snappy = opts.snappy and data.snappy and fresh
        if deflate and snappy:
            raise ClientError("E_IDENTIFY_FAILED", "cannot enable both deflate and snappy compression")
        if (tls or snappy or deflate) and self._acks:
            # Only --durable-publish holds answers back; the layers must start after them.
            raise ClientError("E_IDENTIFY_FAILED", "IDENTIFY failed a publish is still waiting for its fsync")
        resp = {
            "max_rdy_count": opts.max_rdy_count,
            "version": self._nsqd.version,
            "max_msg_timeout": int(opts.max_msg_timeout * 1000),
            "msg_timeout": int(self.msg_timeout * 1000),
            "tls_v1": tls,
            "deflate": deflate,
            "deflate_level": deflate_level,
            "max_deflate_level": opts.max_deflate_level,
            "snappy": snappy,
            "sample_rate": self.sample_rate,
            "auth_required": self._auth_enabled,
            "output_buffer_size": self.output_buffer_size,
            "output_buffer_timeout": int(self.output_buffer_timeout * 1000),
        }
        self._write(v2.encode_frame(v2.FRAME_RESPONSE, json.dumps(resp, separators=(",", ":")).encode()))
        if tls or snappy or deflate:
            self._upgrade(tls, snappy, deflate, deflate_level)
