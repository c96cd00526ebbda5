"""The broker processes of a simulated cluster: the real NSQD and NSQLookupd on simulated hosts.

A node is a host that outlives its processes.  ``start`` builds a new process
life: a clock, a network view and a random stream of its own, the broker
object built on them, and listeners on the node's ports.  ``crash`` ends the
life at once (no code of the old process ever runs again, see
``nsqsim.clock.Life``) and takes the disk through a power failure; ``stop``
asks the broker to exit cleanly first, then ends the life once its
connections have had ``STOP_GRACE`` seconds to flush.

``make_nsqd`` is the one place an ``NSQD`` is constructed, with every port:
the node's simulated disk (``fs``), its view of the network (for
nsqlookupd registration) and its datagram sender (statsd, recorded in the
node's ``datagrams``) beside the clock, randomness and logger.
"""

from __future__ import annotations

import ssl

from broker.lookupd.lookupd import NSQLookupd
from broker.lookupd.options import LookupdOptions
from broker.nsqd.nsqd import NSQD
from broker.nsqd.options import Options
from broker.ports import DatagramSender, FileSystem, HandlerFactory, Logger, Network, Random
from nsqsim.clock import Life, SimClock, WallClock
from nsqsim.config import LOOKUPD_HTTP_PORT, LOOKUPD_TCP_PORT, NSQD_HTTP_PORT, NSQD_TCP_PORT
from nsqsim.datagram import SentDatagram, SimDatagramSender
from nsqsim.disk import SimDisk
from nsqsim.logs import SimLogger
from nsqsim.network import SimListener, SimNetwork
from nsqsim.randomness import SeedTree

__all__ = ["PROCESS_START", "STOP_GRACE", "LookupdNode", "NsqdNode", "make_nsqd"]

STOP_GRACE = 1.0  # seconds a cleanly stopping process gets to flush its connections
# The least time from an nsqd process's end to its successor's start.  nsqd's
# message ids are its wall clock's pseudo-milliseconds (ns >> 20) and a counter
# that starts again with each process: a successor started within the same
# pseudo-millisecond would make ids its predecessor already gave out.  Go's nsqd
# relies on a real restart taking far longer; so does the simulated one.
PROCESS_START = 0.01


def make_nsqd(
    opts: Options,
    *,
    clock: SimClock,
    rand: Random,
    logger: Logger,
    hostname: str,
    fs: FileSystem,
    network: Network,
    datagrams: DatagramSender,
    tls_context: ssl.SSLContext | None = None,
) -> NSQD:
    return NSQD(
        opts, clock=clock, rand=rand, logger=logger, hostname=hostname, fs=fs, network=network, datagrams=datagrams,
        tls_context=tls_context,
    )


class _Node:
    def __init__(self, host: str, net: SimNetwork, clock: SimClock, seeds: SeedTree, log_level: str) -> None:
        self.host = host
        self.net = net
        self.base_clock = clock
        self.seeds = seeds
        self.log_level = log_level
        self.incarnation = 0
        self.life: Life | None = None
        self.up = False
        self.stopping = False
        self.listeners: list[SimListener] = []
        self.logger = SimLogger(host, clock, log_level)
        self.wall = WallClock()  # the host's wall clock: the nemesis may step or skew it

    def _new_life(self) -> tuple[Life, SimClock]:
        self.incarnation += 1
        life = Life(f"{self.host}#{self.incarnation}")
        self.life = life
        clock = self.base_clock.for_life(life, self.wall)
        self.logger = SimLogger(self.host, clock, self.log_level)
        return life, clock

    def _listen(self, life: Life, port: int, factory: HandlerFactory) -> SimListener:
        listener = self.net.listen(self.host, port, factory, life)
        self.listeners.append(listener)
        return listener

    def _kill(self, *, reset: bool) -> None:
        if self.life is not None:
            self.net.kill(self.life, reset=reset)
        self.listeners.clear()
        self.up = False
        self.stopping = False


class NsqdNode(_Node):
    def __init__(
        self,
        host: str,
        opts: Options,
        net: SimNetwork,
        clock: SimClock,
        seeds: SeedTree,
        log_level: str = "WARN",
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(host, net, clock, seeds, log_level)
        self.opts = opts
        self.tls_context = tls_context
        self.disk = SimDisk(host, opts.data_path, seeds.stream(f"{host}/disk"))
        self.nsqd: NSQD | None = None
        self.datagrams: list[SentDatagram] = []  # what its processes sent to statsd
        self.ended_at = float("-inf")  # when the last process was killed or began to exit

    def start(self) -> None:
        if self.stopping:  # restarted before the old process finished exiting
            self._kill(reset=False)
        life, clock = self._new_life()
        network = self.net.host(self.host, life)
        rand = self.seeds.stream(f"{self.host}/nsqd/{self.incarnation}")
        datagrams = SimDatagramSender(self.host, clock, life, self.datagrams)
        nsqd = make_nsqd(
            self.opts, clock=clock, rand=rand, logger=self.logger, hostname=self.host, fs=self.disk.fs,
            network=network, datagrams=datagrams, tls_context=self.tls_context,
        )
        tcp = self._listen(life, NSQD_TCP_PORT, nsqd.tcp_handler)
        http = self._listen(life, NSQD_HTTP_PORT, nsqd.http_handler)
        nsqd.set_listen_addresses(tcp.address, http.address)
        nsqd.start()
        self.nsqd = nsqd
        self.up = True

    def crash(self) -> None:
        """kill -9 and a power failure: memory gone, unsynced writes gone, peers reset."""
        self.ended_at = self.base_clock.now()
        self._kill(reset=True)
        self.disk.crash()
        self.nsqd = None

    def kill(self) -> None:
        """kill -9 alone: memory gone, files as written; the kernel closes the sockets."""
        self.ended_at = self.base_clock.now()
        self._kill(reset=False)
        self.nsqd = None

    def stop(self) -> None:
        """A clean exit: the broker closes its connections, then the process ends."""
        nsqd = self.nsqd
        if nsqd is None:
            return
        self.ended_at = self.base_clock.now()
        self.stopping = True
        self.up = False
        for listener in self.listeners:
            listener.close()
        nsqd.close()
        life = self.life

        def exit_process() -> None:
            if self.life is life and self.stopping:
                self._kill(reset=False)
                self.nsqd = None

        self.base_clock.call_later(STOP_GRACE, exit_process)


class LookupdNode(_Node):
    def __init__(
        self, host: str, opts: LookupdOptions, net: SimNetwork, clock: SimClock, seeds: SeedTree, log_level: str = "WARN"
    ) -> None:
        super().__init__(host, net, clock, seeds, log_level)
        self.opts = opts
        self.lookupd: NSQLookupd | None = None

    def start(self) -> None:
        life, clock = self._new_life()
        lookupd = NSQLookupd(self.opts, clock=clock, logger=self.logger, hostname=self.host)
        tcp = self._listen(life, LOOKUPD_TCP_PORT, lookupd.tcp_handler)
        http = self._listen(life, LOOKUPD_HTTP_PORT, lookupd.http_handler)
        lookupd.set_listen_addresses(tcp.address, http.address)
        self.lookupd = lookupd
        self.up = True

    def crash(self) -> None:
        self._kill(reset=True)
        self.lookupd = None
