"""One simulated TCP connection: two endpoints, and a byte pipe each way.

Each direction behaves like TCP as asyncio shows it:

* Bytes arrive in order, in chunks.  A write puts its bytes in a chunk that
  travels to the peer with a latency drawn from the link's distribution, after
  the link has had time to carry the chunk at its bandwidth (links are per
  ordered pair of hosts, shared by the connections between them).  Writes made
  in the same instant ride in the same chunk, so a burst of small writes costs
  one event, not one per write: no simpy process per packet, only callbacks.
* The kernel holds at most ``window`` bytes per direction (in flight, plus what
  arrived while the peer was not reading).  Past that, bytes wait in the
  endpoint's write buffer (``write_buffer_size``); past the high-water mark the
  handler's ``pause_writing`` is called, and ``resume_writing`` once the
  buffer drains to a quarter of it, as asyncio's transports do.  A peer that
  calls ``pause_reading`` therefore pushes back on the writer.
* ``close`` flushes the write buffer, then sends FIN and reports
  ``connection_lost(None)`` locally; the peer sees every byte, then
  ``eof_received`` and ``connection_lost(None)``.  ``abort`` drops the buffer
  and closes the socket at once, which (as on Linux) sends RST when bytes the
  process never read are left in it, and FIN otherwise; on RST the peer sees
  ``connection_lost(ConnectionResetError)``.

Two faults act on one connection (``SimNetwork.delay`` and ``cut``): an
endpoint whose arrivals are *delayed* holds what reaches it, as a black-holed
link does, until the delay ends; an endpoint armed to be *cut* sends, on its
next write, a prefix of what it had to send and then RST, and reports the
reset to its own process too (a middlebox dropped the connection mid-frame).

Where chunks go between the endpoints (partitions, delivery, process death,
a stalled process) is ``SimNetwork``'s business, in ``network.py``.
"""

from __future__ import annotations

import errno
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from broker.ports import ConnectionHandler
from nsqsim.clock import Life

if TYPE_CHECKING:
    from nsqsim.network import SimNetwork, _Link

__all__ = ["DEFAULT_HIGH_WATER", "SimConnection"]

DEFAULT_HIGH_WATER = 64 * 1024  # asyncio's default write-buffer high-water mark


class Chunk:
    """Bytes travelling one way on one connection, with what follows them (FIN, RST).

    The chunk is itself the event of its arrival in simpy's queue (one object
    per packet); like ``SimTimer`` it carries just the slots simpy reads.
    """

    __slots__ = (
        "arrival",
        "callbacks",
        "data",
        "delivered",
        "dst",
        "fin",
        "latency",
        "next",
        "prev",
        "rst",
        "sent_at",
        "src",
    )

    def __init__(self, src: SimConnection, dst: SimConnection, sent_at: float, latency: float) -> None:
        self.src = src
        self.dst = dst
        self.sent_at = sent_at
        self.latency = latency
        self.arrival = sent_at + latency
        # The first write's bytes as they are; a bytearray once a second write joins.
        self.data: bytes | bytearray = b""
        self.fin = False
        self.rst = False
        self.delivered = False
        self.callbacks: tuple[Callable[[Any], None], ...] | None = None  # None until scheduled
        # The connection's chunk before this one while that is still on its way, and the
        # one after this one if it came first: a chunk that grew after it was scheduled
        # is scheduled again, behind a later chunk due at the same instant.
        self.prev: Chunk | None = None
        self.next: Chunk | None = None

    _ok = True  # read by simpy, never changed: a packet cannot fail
    _value = None


class SimConnection:
    """One endpoint of a simulated TCP connection: the core's ``Connection``."""

    def __init__(
        self,
        net: SimNetwork,
        life: Life,
        handler: ConnectionHandler,
        local: tuple[str, int],
        peer: tuple[str, int],
    ) -> None:
        self.net = net
        self.life = life
        self.handler = handler
        self._local = local
        self._peer_addr = peer
        self.peer: SimConnection | None = None
        self.link: _Link = net.link(local[0], peer[0])
        self._buffer = bytearray()  # user space: what write_buffer_size reports
        self._chunk: Chunk | None = None  # the chunk still taking writes this instant
        self._in_transit = 0  # bytes sent and not yet taken by the peer's kernel
        self._last_arrival = 0.0
        self._rbuf = bytearray()  # arrived while reading was paused
        self._held: list[Chunk] = []  # arrived at a black-holed link
        self._high = DEFAULT_HIGH_WATER
        self._low = DEFAULT_HIGH_WATER // 4
        self._write_paused = False
        self._read_paused = False
        self._eof_pending = False
        self._closing = False  # close() or abort() called, or the peer's FIN/RST arrived
        self._fin_sent = False
        self._lost = False  # connection_lost delivered (or the process is gone)
        self._delayed = False  # arrivals wait in _held (a net_delay fault)
        self._cut: tuple[float, Callable[[int, int], None]] | None = None  # the next write is cut at this fraction

    def __repr__(self) -> str:
        return f"SimConnection({self._local[0]}:{self._local[1]} -> {self._peer_addr[0]}:{self._peer_addr[1]})"

    # -- the Connection port ------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or self._lost or not data:
            return
        if self._cut is not None:
            self._write_cut(data)
            return
        if self._buffer:
            self._buffer += data
        else:
            peer = self.peer
            room = self.net.window - self._in_transit - (len(peer._rbuf) if peer is not None else 0)  # _room()
            if room >= len(data):
                self._send(data)
                return  # nothing left in the buffer: no high-water mark to pass
            view = memoryview(data)
            if room > 0:
                self._send(view[:room])
            self._buffer += view[max(room, 0) :]
        if not self._write_paused and len(self._buffer) > self._high:
            self._write_paused = True
            if self.life.alive:
                self.handler.pause_writing()

    def _write_cut(self, data: bytes | bytearray | memoryview) -> None:
        """The connection is cut part way through this write: a prefix goes, then RST both ways."""
        fraction, on_cut = self._cut or (0.0, None)
        self._cut = None
        pending = bytes(self._buffer) + bytes(data)
        self._buffer.clear()
        n = len(pending)
        sent = min(max(1, int(n * fraction)), n - 1) if n > 1 else 0
        if sent:
            self._send(pending[:sent])  # past the window if need be: a few bytes, once
        self._send_control(rst=True)
        self._closing = True
        if on_cut is not None:
            on_cut(sent, n)
        self._lost_soon(ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"))

    def close(self) -> None:
        if self._closing or self._lost:
            return
        self._closing = True
        self._rbuf.clear()
        if not self._buffer:
            self._send_fin()

    def abort(self) -> None:
        # As asyncio's abort on a real socket: the buffer is dropped and the socket
        # closed, which sends RST if unread bytes are left in it and FIN otherwise.
        if self._lost:
            return
        self._closing = True
        self._buffer.clear()
        unread = bool(self._rbuf) or self._eof_pending
        self._rbuf.clear()
        if not self._fin_sent:
            self._send_control(rst=unread, fin=not unread)
        self._lost_soon(None)

    def write_buffer_size(self) -> int:
        return len(self._buffer)

    def set_write_buffer_limits(self, high: int) -> None:
        self._high = max(high, 0)
        self._low = self._high // 4

    def pause_reading(self) -> None:
        self._read_paused = True

    def resume_reading(self) -> None:
        if not self._read_paused:
            return
        self._read_paused = False
        if self._rbuf and not self._closing:
            data = bytes(self._rbuf)
            self._rbuf.clear()
            if self.life.alive:
                self.handler.data_received(data)
        peer = self.peer
        if peer is not None:
            peer._refill()
        if self._eof_pending and not self._read_paused:
            self._eof_pending = False
            self._eof()

    @property
    def peer_address(self) -> tuple[str, int]:
        return self._peer_addr

    @property
    def local_address(self) -> tuple[str, int]:
        return self._local

    # -- sending ------------------------------------------------------------------------

    def _room(self) -> int:
        peer = self.peer
        unread = len(peer._rbuf) if peer is not None else 0
        return self.net.window - self._in_transit - unread

    def _open_chunk(self) -> Chunk:
        now: float = self.net.env._now
        chunk = self._chunk
        if chunk is not None and chunk.sent_at == now and not (chunk.delivered or chunk.fin or chunk.rst):
            return chunk
        return self._new_chunk(now)

    def _new_chunk(self, now: float) -> Chunk:
        peer = self.peer
        assert peer is not None
        chunk = Chunk(self, peer, now, self.link.draw_latency())
        prev = self._chunk
        if prev is not None and not prev.delivered:
            chunk.prev = prev
        if chunk.arrival < self._last_arrival:
            chunk.arrival = self._last_arrival
        self._chunk = chunk
        return chunk

    def _send(self, data: bytes | bytearray | memoryview) -> None:
        now: float = self.net.env._now
        chunk = self._chunk
        if chunk is None or chunk.sent_at != now or chunk.delivered or chunk.fin or chunk.rst:  # _open_chunk()
            chunk = self._new_chunk(now)
        n = len(data)
        if not chunk.data:
            chunk.data = bytes(data)  # a copy unless it is bytes already: the writer may reuse its buffer
        elif type(chunk.data) is bytes:
            chunk.data = bytearray(chunk.data) + data
        else:
            chunk.data += data
        self._in_transit += n
        link = self.link
        bandwidth = link.profile.bandwidth
        if bandwidth != math.inf:
            start = max(chunk.sent_at, link.busy_until)
            link.busy_until = start + n / bandwidth
            arrival = link.busy_until + chunk.latency
            if arrival > chunk.arrival:
                chunk.arrival = arrival
        if chunk.arrival > self._last_arrival:
            self._last_arrival = chunk.arrival
        if chunk.callbacks is None:
            # Scheduled once its first bytes set its arrival: scheduling it when it
            # opens would fire it before the bandwidth delay and schedule it twice.
            self.net._schedule_delivery(chunk)

    def _send_control(self, *, fin: bool = False, rst: bool = False) -> None:
        if self.peer is None:
            return
        chunk = self._open_chunk()
        chunk.fin = chunk.fin or fin
        chunk.rst = chunk.rst or rst
        self._fin_sent = True
        if chunk.callbacks is None:
            self.net._schedule_delivery(chunk)

    def _send_fin(self) -> None:
        if not self._fin_sent:
            self._send_control(fin=True)
        self._lost_soon(None)

    def _refill(self) -> None:
        """The peer took bytes: move more of the write buffer into the window."""
        if self.life.stalled:
            return  # the process's event loop moves its buffer; SimNetwork.resume calls this again
        buf = self._buffer
        if buf and not self._lost:
            room = self._room()
            if room > 0:
                take = buf[:room]
                del buf[:room]
                self._send(take)
        if self._write_paused and len(buf) <= self._low and not self._lost:
            self._write_paused = False
            if self.life.alive and not self._closing:
                self.handler.resume_writing()  # not stalled: checked above
        if self._closing and not buf and not self._fin_sent and not self._lost:
            self._send_fin()

    # -- receiving ----------------------------------------------------------------------

    def _arrive(self, chunk: Chunk) -> None:
        src = chunk.src
        data = chunk.data
        src._in_transit -= len(data)
        if chunk.rst:
            if data and not self._closing and not self._read_paused and self.life.alive:
                self.handler.data_received(bytes(data))
            self._reset()
            return
        if self._lost or self._closing:
            pass  # a closed socket drops what arrives
        elif data:
            if self._read_paused or self._rbuf:
                self._rbuf += data
            elif self.life.alive:
                self.handler.data_received(data if type(data) is bytes else bytes(data))
        if chunk.fin and not self._lost:
            if self._read_paused and not self._closing:
                self._eof_pending = True
            else:
                self._eof()
        if src._buffer or src._write_paused or src._closing:
            src._refill()  # the window opened: more may go, or the FIN behind it

    def _eof(self) -> None:
        if self._lost:
            return
        if self._closing:
            # Both sides closed: our own close already reported (or will report) the loss.
            return
        if self.life.alive:
            self.handler.eof_received()
        # asyncio closes the transport after eof_received returns a false value.
        self.close()

    def _reset(self) -> None:
        if self._lost:
            return
        self._closing = True
        self._buffer.clear()
        self._rbuf.clear()
        self._finish(ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"))

    def _lost_soon(self, exc: Exception | None) -> None:
        self.net.clock.call_later(0, lambda: self._finish(exc))

    def _finish(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._closing = True
        self.net._forget(self)
        life = self.life
        if life.stalled:
            life.call(lambda: self.handler.connection_lost(exc))  # read when the process resumes
        elif life.alive:
            self.handler.connection_lost(exc)

    def _kill(self, reset: bool) -> None:
        """The owning process died: the kernel closes the socket behind its back."""
        if self._lost:
            return
        unread = bool(self._rbuf)
        self._buffer.clear()
        self._rbuf.clear()
        if not self._fin_sent:
            self._send_control(rst=reset or unread, fin=not (reset or unread))
        self._closing = True
        self._lost = True
        self.net._forget(self)
