"""The simulated network: named hosts, the links between them, listening, connecting, faults.

A ``SimNetwork`` joins named hosts.  ``HostNetwork`` is the ``Network`` port of
one process on one host; ``SimListener`` its ``Listener``; each connection is
a pair of ``SimConnection`` endpoints (``connection.py``, which describes the
byte pipes).  A connect to a port nobody listens on is refused after a round
trip (``ConnectionRefusedError``); to an unknown host, unreachable.

Partitions cut the directed links between two groups of hosts, one way or both:

* ``blackhole``: packets vanish.  TCP would retransmit them, so nothing is lost
  from the stream: chunks that reach a cut link wait there and arrive, in
  order, once it heals.  Connections stall; the application's own timeouts
  (heartbeats, read deadlines) decide what happens to them.  A connect across
  the cut completes if the cut heals within ``syn_timeout``, else fails with
  ``TimeoutError``.
* ``reset``: a firewall that rejects: open connections across the cut are reset
  at once and new ones are refused.

A stalled process (``stall`` / ``resume``: SIGSTOP, a GC pause) runs nothing,
but its kernel works on: connects to its listeners complete, and what its
peers send is held for it (counted against the window, so they feel back
pressure as from a process that does not read).  On ``resume`` it learns, in
this order, of its connections made and lost, then reads what arrived, then
runs the timers that came due (asyncio handles I/O before timers in a turn).

A process's endpoints and listeners belong to its ``Life``.  When it is killed
(``kill``), the kernel closes its sockets: its handlers are never called again,
what its user-space buffers held is gone, and each peer sees FIN, or RST where
the dead process left unread bytes or ``reset`` is asked for (a machine that
lost power answers the next packet with RST).
"""

from __future__ import annotations

import errno
import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from heapq import heappush
from typing import Any, Literal

import simpy
from simpy.events import NORMAL

from broker.ports import Connection, ConnectionHandler, HandlerFactory, Listener, Network
from nsqsim.clock import Life, SimClock, SimTimer, fire_late
from nsqsim.connection import Chunk, SimConnection
from nsqsim.dist import Dist

__all__ = [
    "DEFAULT_WINDOW",
    "HostNetwork",
    "LinkProfile",
    "Partition",
    "PartitionMode",
    "SimListener",
    "SimNetwork",
]

DEFAULT_WINDOW = 256 * 1024  # bytes the kernels hold per direction (send + receive buffers)
FIRST_EPHEMERAL_PORT = 32768

PartitionMode = Literal["blackhole", "reset"]
LAN_LATENCY = Dist.fixed(0.0005)


@dataclass(frozen=True, slots=True)
class LinkProfile:
    """One direction of the link between two hosts."""

    latency: Dist = LAN_LATENCY
    bandwidth: float = math.inf  # bytes per second


class _Link:
    __slots__ = ("blocked", "busy_until", "draw_latency", "profile", "rejecting", "rng")

    def __init__(self, profile: LinkProfile, rng: random.Random) -> None:
        self.rng = rng
        self.set_profile(profile)
        self.busy_until = 0.0
        self.blocked = 0  # partitions that black-hole this direction
        self.rejecting = 0  # partitions that reset this direction

    def set_profile(self, profile: LinkProfile) -> None:
        self.profile = profile
        self.draw_latency = profile.latency.sampler(self.rng)  # once per packet


@dataclass(eq=False)
class Partition:
    """A cut between two groups of hosts; pass it to ``SimNetwork.heal``."""

    side_a: tuple[str, ...]
    side_b: tuple[str, ...]
    mode: PartitionMode
    one_way: bool  # only a -> b is cut
    healed: bool = False

    def links(self) -> Iterable[tuple[str, str]]:
        for a in self.side_a:
            for b in self.side_b:
                if a != b:
                    yield a, b
                    if not self.one_way:
                        yield b, a


class SimListener:
    """A listening port of a simulated process; the ``Listener`` port."""

    def __init__(self, net: SimNetwork, life: Life, address: tuple[str, int], factory: HandlerFactory) -> None:
        self._net = net
        self.life = life
        self._address = address
        self.factory = factory
        self.closed = False

    @property
    def address(self) -> tuple[str, int]:
        return self._address

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._net._unlisten(self)


class _Syn:
    __slots__ = ("done", "dst", "handler", "life", "port", "src", "started", "timer")

    def __init__(self, src: str, dst: str, port: int, handler: ConnectionHandler, life: Life, started: float) -> None:
        self.src = src
        self.dst = dst
        self.port = port
        self.handler = handler
        self.life = life
        self.done = False
        self.started = started
        self.timer: SimTimer | None = None  # armed only if the SYN waits at a cut


class HostNetwork:
    """The ``Network`` port of one process on one host: where its connections come from."""

    __slots__ = ("host", "life", "net")

    def __init__(self, net: SimNetwork, host: str, life: Life) -> None:
        self.net = net
        self.host = host
        self.life = life

    def connect(self, host: str, port: int, handler: ConnectionHandler) -> None:
        self.net.connect(self.host, host, port, handler, self.life)

    def listen(self, port: int, factory: HandlerFactory) -> SimListener:
        return self.net.listen(self.host, port, factory, self.life)


class SimNetwork:
    def __init__(
        self,
        env: simpy.Environment,
        rng: random.Random,
        *,
        link: LinkProfile | None = None,
        window: int = DEFAULT_WINDOW,
        syn_timeout: float = 127.0,  # Linux's default SYN retries give up after about this long
    ) -> None:
        self.env = env
        self.rng = rng
        self.clock = SimClock(env)
        self.window = window
        self.syn_timeout = syn_timeout
        self.default_link = link if link is not None else LinkProfile()
        self.hosts: dict[str, None] = {}
        self.chunks_delivered = 0
        self.bytes_delivered = 0
        self._links: dict[tuple[str, str], _Link] = {}
        self._listeners: dict[tuple[str, int], SimListener] = {}
        self._next_port: dict[str, int] = {}
        self._by_life: dict[Life, dict[SimConnection, None]] = {}
        self._stalled: dict[tuple[str, str], dict[SimConnection, None]] = {}
        self._pending_syns: list[_Syn] = []
        self._partitions: list[Partition] = []
        self._deliver_callbacks: tuple[Callable[[Chunk], None], ...] = (self._deliver,)

    # -- hosts and links ----------------------------------------------------------------

    def add_host(self, name: str) -> None:
        self.hosts[name] = None

    def host(self, name: str, life: Life) -> HostNetwork:
        """The Network port of the process ``life`` on host ``name``."""
        if name not in self.hosts:
            raise KeyError(f"unknown host {name!r}")
        return HostNetwork(self, name, life)

    def link(self, src: str, dst: str) -> _Link:
        key = (src, dst)
        link = self._links.get(key)
        if link is None:
            link = self._links[key] = _Link(self.default_link, self.rng)
        return link

    def set_link(self, src: str, dst: str, profile: LinkProfile | None) -> None:
        """Change one direction of a link (None: back to the default)."""
        self.link(src, dst).set_profile(profile if profile is not None else self.default_link)

    # -- listening and connecting -------------------------------------------------------

    def listen(self, host: str, port: int, factory: HandlerFactory, life: Life) -> SimListener:
        if host not in self.hosts:
            raise OSError(errno.EADDRNOTAVAIL, f"cannot assign requested address {host}")
        if port == 0:
            port = self._ephemeral_port(host)
        key = (host, port)
        if key in self._listeners:
            raise OSError(errno.EADDRINUSE, "address already in use")
        listener = SimListener(self, life, key, factory)
        self._listeners[key] = listener
        return listener

    def _unlisten(self, listener: SimListener) -> None:
        if self._listeners.get(listener.address) is listener:
            del self._listeners[listener.address]

    def connect(self, src: str, dst: str, port: int, handler: ConnectionHandler, life: Life) -> None:
        syn = _Syn(src, dst, port, handler, life, self.clock.now())
        if dst not in self.hosts:
            self._fail_syn(syn, OSError(errno.EHOSTUNREACH, f"no route to host {dst}"), 0.0)
            return
        self._try_syn(syn)

    def _try_syn(self, syn: _Syn) -> None:
        there, back = self.link(syn.src, syn.dst), self.link(syn.dst, syn.src)
        if there.rejecting or back.rejecting:
            self._fail_syn(syn, ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), 0.0)
            return
        if there.blocked or back.blocked:
            self._pending_syns.append(syn)
            if syn.timer is None:
                # Only a SYN held at a cut can time out (one in flight is answered within
                # a round trip), so the timer is armed here rather than for every connect.
                left = syn.started + self.syn_timeout - self.clock.now()
                syn.timer = self.clock.call_later(left, lambda: self._syn_timed_out(syn))
            return
        l1 = there.draw_latency()
        l2 = back.draw_latency()
        self.clock.call_later(l1, lambda: self._syn_arrives(syn, l2))

    def _syn_arrives(self, syn: _Syn, back_latency: float) -> None:
        if syn.done:
            return
        listener = self._listeners.get((syn.dst, syn.port))
        if listener is None or not listener.life.alive:
            self._fail_syn(syn, ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), back_latency)
            return
        self._settle(syn)
        client_port = self._ephemeral_port(syn.src)
        server = SimConnection(self, listener.life, listener.factory(), (syn.dst, syn.port), (syn.src, client_port))
        client = SimConnection(self, syn.life, syn.handler, (syn.src, client_port), (syn.dst, syn.port))
        server.peer, client.peer = client, server
        made_at: float = self.env.now + back_latency
        server._last_arrival = made_at  # nothing the server sends may overtake the SYN-ACK
        self._track(server)
        self._track(client)
        listener.life.call(lambda: server.handler.connection_made(server))

        def client_made() -> None:
            if server._lost:
                # The server side went away before the handshake finished: the client sees a reset.
                client._lost = True
                self._forget(client)
                syn.life.call(lambda: syn.handler.connection_lost(ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")))
            elif not syn.life.alive:
                client._kill(reset=True)
            else:
                syn.life.call(lambda: syn.handler.connection_made(client))

        self.clock.call_later(back_latency, client_made)

    def _settle(self, syn: _Syn) -> None:
        syn.done = True
        if syn.timer is not None:
            syn.timer.cancel()

    def _fail_syn(self, syn: _Syn, exc: Exception, delay: float) -> None:
        self._settle(syn)

        def fail() -> None:
            syn.life.call(lambda: syn.handler.connection_lost(exc))

        self.clock.call_later(delay, fail)

    def _syn_timed_out(self, syn: _Syn) -> None:
        if syn.done:
            return
        if syn in self._pending_syns:
            self._pending_syns.remove(syn)
        self._fail_syn(syn, TimeoutError(errno.ETIMEDOUT, "Connection timed out"), 0.0)

    def _ephemeral_port(self, host: str) -> int:
        port = self._next_port.get(host, FIRST_EPHEMERAL_PORT)
        while (host, port) in self._listeners:
            port += 1
        self._next_port[host] = port + 1
        return port

    # -- delivery -----------------------------------------------------------------------

    def _schedule_delivery(self, chunk: Chunk) -> None:
        chunk.callbacks = self._deliver_callbacks
        env = self.env
        now: float = env._now
        arrival = chunk.arrival
        # env.schedule, inlined: this runs once per packet.
        queue: list[Any] = env._queue
        heappush(queue, (arrival if arrival > now else now, NORMAL, next(env._eid), chunk))

    def _deliver(self, chunk: Chunk) -> None:
        if chunk.arrival > self.env._now:  # the chunk grew after it was scheduled (a write in the same instant)
            self._schedule_delivery(chunk)
            return
        prev = chunk.prev
        if prev is not None:
            chunk.prev = None
            if not prev.delivered:
                # The chunk before it grew and was scheduled again, behind this one: bytes
                # of one stream never overtake each other, so this one follows it in.
                prev.next = chunk
                return
        chunk.delivered = True
        src, dst = chunk.src, chunk.dst
        if src._chunk is chunk:
            src._chunk = None
        if dst._held or src.link.blocked or dst._delayed or dst.life.stalled:
            dst._held.append(chunk)
            self._stalled.setdefault((src._local[0], dst._local[0]), {})[dst] = None
        else:
            self.chunks_delivered += 1
            self.bytes_delivered += len(chunk.data)
            dst._arrive(chunk)
        after = chunk.next
        if after is not None:
            chunk.next = None
            self._deliver(after)

    def _flush_held(self, dst: SimConnection) -> None:
        if dst._delayed or dst.life.stalled:
            return  # held on: undelay or resume flushes it
        while dst._held:
            chunk = dst._held[0]
            src = chunk.src
            if src.link.blocked:  # cut again before the retransmission got through
                self._stalled.setdefault((src._local[0], dst._local[0]), {})[dst] = None
                return
            del dst._held[0]
            self.chunks_delivered += 1
            self.bytes_delivered += len(chunk.data)
            dst._arrive(chunk)

    def _track(self, conn: SimConnection) -> None:
        self._by_life.setdefault(conn.life, {})[conn] = None

    def _forget(self, conn: SimConnection) -> None:
        conns = self._by_life.get(conn.life)
        if conns is not None:
            conns.pop(conn, None)

    # -- faults -------------------------------------------------------------------------

    def kill(self, life: Life, *, reset: bool = False) -> None:
        """The process ``life`` is gone: close its sockets as its kernel would."""
        life.end()
        for listener in [lst for lst in self._listeners.values() if lst.life is life]:
            listener.close()
        for conn in list(self._by_life.pop(life, {})):
            conn._kill(reset)
        for syn in [s for s in self._pending_syns if s.life is life]:
            self._pending_syns.remove(syn)
            self._settle(syn)

    def stall(self, life: Life) -> None:
        """The process ``life`` stops running (SIGSTOP); its kernel goes on (see the module doc)."""
        if life.alive:
            life.stalled = True

    def resume(self, life: Life) -> None:
        """The stalled process runs again: the news of its connections, then their bytes, then its timers."""
        if not life.alive or not life.stalled:
            return
        life.stalled = False
        deferred, life.deferred = life.deferred, []
        for fn in deferred:
            life.call(fn)
        for conn in list(self._by_life.get(life, {})):
            if conn._held:
                self._flush_held(conn)
            conn._refill()
        timers, life.timers = life.timers, []
        for timer in timers:
            fire_late(timer)

    def connections(self, host: str) -> list[SimConnection]:
        """The open endpoints on ``host``, in the order they were made."""
        return [
            conn
            for conns in self._by_life.values()
            for conn in conns
            if conn._local[0] == host and conn.peer is not None and not (conn._closing or conn._lost or conn.peer._closing)
        ]

    def delay(self, conn: SimConnection) -> None:
        """What reaches ``conn`` waits, in order, until ``undelay``."""
        conn._delayed = True

    def undelay(self, conn: SimConnection) -> None:
        conn._delayed = False
        self._flush_held(conn)

    def cut(self, conn: SimConnection, fraction: float, on_cut: Callable[[int, int], None]) -> None:
        """Cut ``conn``'s next write after ``fraction`` of its bytes; ``on_cut(sent, written)`` then."""
        conn._cut = (fraction, on_cut)

    def uncut(self, conn: SimConnection) -> None:
        conn._cut = None

    def partition(
        self,
        side_a: Iterable[str],
        side_b: Iterable[str],
        *,
        mode: PartitionMode = "blackhole",
        one_way: bool = False,
    ) -> Partition:
        """Cut a -> b (and b -> a unless ``one_way``) until ``heal``."""
        part = Partition(tuple(side_a), tuple(side_b), mode, one_way)
        self._partitions.append(part)
        for src, dst in part.links():
            link = self.link(src, dst)
            if mode == "blackhole":
                link.blocked += 1
            else:
                link.rejecting += 1
        if mode == "reset":
            cut = set(part.links())
            for conns in list(self._by_life.values()):
                for conn in list(conns):
                    ends = (conn._local[0], conn._peer_addr[0])
                    if (ends in cut or ends[::-1] in cut) and not conn._lost:
                        conn._reset()
        return part

    def heal(self, part: Partition | None = None) -> None:
        """Undo one partition (None: every partition)."""
        parts = [part] if part is not None else list(self._partitions)
        for p in parts:
            if p.healed:
                continue
            p.healed = True
            self._partitions.remove(p)
            for src, dst in p.links():
                link = self.link(src, dst)
                if p.mode == "blackhole":
                    link.blocked -= 1
                else:
                    link.rejecting -= 1
        self._release()

    def partitions(self) -> list[Partition]:
        return list(self._partitions)

    def _release(self) -> None:
        """Deliver what waited at links that are open again, and let waiting SYNs through."""
        for key in list(self._stalled):
            if self.link(*key).blocked:
                continue
            conns = self._stalled.pop(key)
            latency = self.link(*key).profile.latency
            for dst in conns:
                # Retransmitted: everything held arrives together, after a fresh latency.
                # Chunks that reach dst meanwhile queue behind them, so order holds.
                self.clock.call_later(latency.sample(self.rng), lambda dst=dst: self._flush_held(dst))  # type: ignore[misc]
        waiting, self._pending_syns = self._pending_syns, []
        for syn in waiting:
            if not syn.done:
                self._try_syn(syn)


def _conforms(net: SimNetwork, life: Life, conn: SimConnection, listener: SimListener) -> tuple[Network, Connection, Listener]:
    return net.host("h", life), conn, listener  # mypy checks here that the classes satisfy the ports

