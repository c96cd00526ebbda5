"""The fault model: what may go wrong in a simulated cluster, when, and for how long.

Everything the simulator may do to a cluster is described by one typed
options object, ``FaultModel`` (the ``[faults]`` table of a configuration):

``enabled``
    Draw random faults at all.  An explicit ``schedule`` runs either way.
``start``, ``mean_interval``
    Random faults begin no earlier than ``start`` seconds into the run and
    then arrive as a Poisson process with this mean spacing, until the load
    stops (``duration`` of the run).  At most ``max_concurrent`` are in force
    at once; a fault drawn while that many are active is skipped.
``duration``
    How long a fault lasts (a ``Dist``): a partition heals, a crashed node
    restarts, a slow link speeds up, a stalled consumer resumes.
``weights``
    Relative frequency of each kind below; a kind missing or at 0 is never drawn.
``reset_fraction``
    The share of partitions that reset connections (a firewall rejecting)
    rather than black-hole them (a cable pulled).
``slow_factor``, ``slow_bandwidth``
    A slow link multiplies latency by the factor and caps bandwidth (bytes/s).
``disk_faults``
    The disk faults a random ``disk`` fault is drawn from (default: the four
    of ``DISK_FAULTS``, in that order; ``fsync_full`` only when listed).
``clock_jump``, ``clock_skew``
    How far a ``clock_jump`` steps a wall clock (a ``Dist`` of seconds, back
    or forward with equal odds) and how fast a ``clock_skew`` makes one run
    (a ``Dist`` of seconds gained, or lost, per second).
``schedule``
    Explicit faults: ``[[faults.schedule]]`` tables with ``at``, ``kind``,
    optional ``target`` (a host or consumer name; random when left out),
    ``duration``, ``mode`` (partitions), ``disk`` (disk faults), ``jump``
    (clock_jump: signed seconds) and ``rate`` (clock_skew: signed seconds
    per second); a ``jump`` or ``rate`` left out is drawn.

The kinds:

=====================  =====================================================
``crash``              an nsqd is killed (kill -9) and its machine loses power:
                       its memory is gone, its disk drops unsynced writes
                       (``SimDisk.crash``), its peers see their connections
                       reset; it starts again when the fault ends.
``kill``               an nsqd is killed (kill -9) and the machine stays up:
                       memory gone, everything written to files kept, peers
                       see the kernel close the sockets.
``restart``            an nsqd exits cleanly (``NSQD.close``) and starts again.
``lookupd_crash``      an nsqlookupd is killed; its registrations are gone.
``partition_halves``   the hosts split into two random halves.
``partition_node``     one nsqd is cut off from every other host.
``partition_lookupd``  the nsqlookupds are cut off from everyone else.
``one_way``            one nsqd stops hearing (or stops being heard by)
                       every other host: packets one way vanish.
``slow_link``          every link to and from one nsqd becomes slow.
``consumer_stall``     one consumer's handler stops returning: its messages
                       in flight time out and go to other consumers.
``disk``               a disk fault on one nsqd: ``fsync`` (the next fsyncs
                       fail with EIO), ``full`` (writes fail with ENOSPC),
                       ``fsync_full`` (writes succeed into the page cache,
                       fsyncs fail with ENOSPC: delayed allocation, a thin
                       volume), ``bitflip`` (one durable bit flips), ``torn``
                       (the machine dies part way through one of its next
                       writes).
``clock_jump``         one host's wall clock steps forward or back (an
                       operator, a VM restored, a bad NTP server); NTP steps
                       it back to true time when the fault ends.  Monotonic
                       time and timers are untouched (``nsqsim.clock``).
``clock_skew``         one host's wall clock runs fast or slow; stepped back
                       to true time at the end.
``stall``              one process (nsqd, nsqlookupd or consumer) stops, as
                       for SIGSTOP or a long GC pause: none of its timers
                       or reads run; its kernel still takes bytes (up to the
                       window) and connects, so peers notice nothing but
                       silence.  When it resumes, what arrived is read and
                       every timer that came due fires, at once.
``net_delay``          one established connection of the target (an nsqd by
                       default) holds the bytes going one way, then delivers
                       them, in order, when the fault ends (TCP stuck in
                       retransmission behind a bad path); the other
                       connections between the same hosts flow.
``net_cut``            one established connection of the target is cut in
                       the middle of its next write: the peer gets a prefix
                       of the bytes, then a reset, and so does the writer.
=====================  =====================================================

The kinds from ``clock_jump`` on have weight 0 by default, so a configuration
draws them only if its ``weights`` ask; configurations that do not draw the
same schedules as before they existed.

Random faults are not drawn as the run goes: the whole schedule is drawn from
the seed before the run starts (``draw_schedule``), so a failing seed's faults
can be printed, edited into an explicit schedule, and replayed.  Targets are
resolved at the same time.  When the load stops, every fault still in force
ends (``quiesce``): partitions heal, nodes restart, links recover, consumers
resume, disks stop failing; the cluster then drains.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal, get_args

from nsqsim.clock import Life
from nsqsim.dist import Dist
from nsqsim.network import LinkProfile, Partition, PartitionMode

if TYPE_CHECKING:
    from nsqsim.cluster import Cluster

__all__ = [
    "ALL_DISK_FAULTS",
    "DISK_FAULTS",
    "FAULT_KINDS",
    "DiskFault",
    "FaultKind",
    "FaultModel",
    "Nemesis",
    "ScheduledFault",
    "draw_schedule",
    "parse_fault_model",
]

FaultKind = Literal[
    "crash",
    "kill",
    "restart",
    "lookupd_crash",
    "partition_halves",
    "partition_node",
    "partition_lookupd",
    "one_way",
    "slow_link",
    "consumer_stall",
    "disk",
    "clock_jump",
    "clock_skew",
    "stall",
    "net_delay",
    "net_cut",
]
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
DiskFault = Literal["fsync", "full", "bitflip", "torn", "fsync_full"]
ALL_DISK_FAULTS: tuple[DiskFault, ...] = get_args(DiskFault)
# What a random disk fault is drawn from unless ``disk_faults`` says: these four, in
# this order, so that every seed draws what it drew before fsync_full existed.
DISK_FAULTS: tuple[DiskFault, ...] = ("fsync", "full", "bitflip", "torn")
_CLOCK_KINDS = ("clock_jump", "clock_skew")

_DEFAULT_WEIGHTS: Mapping[FaultKind, float] = {
    "crash": 2.0,
    "kill": 1.0,
    "restart": 1.0,
    "lookupd_crash": 0.5,
    "partition_halves": 1.0,
    "partition_node": 2.0,
    "partition_lookupd": 1.0,
    "one_way": 1.0,
    "slow_link": 1.0,
    "consumer_stall": 2.0,
    "disk": 1.0,
    # never drawn unless a configuration weighs them (see the module doc)
    "clock_jump": 0.0,
    "clock_skew": 0.0,
    "stall": 0.0,
    "net_delay": 0.0,
    "net_cut": 0.0,
}
_DEFAULT_DURATION = Dist("uniform", low=2.0, high=15.0)
_DEFAULT_JUMP = Dist("uniform", low=1.0, high=30.0)
_DEFAULT_SKEW = Dist("uniform", low=0.05, high=0.5)


@dataclass(frozen=True, slots=True)
class ScheduledFault:
    at: float
    kind: FaultKind
    target: str | None = None
    duration: float = 5.0
    mode: PartitionMode = "blackhole"
    disk: DiskFault = "fsync"
    one_way_in: bool = True  # one_way: the target stops hearing (True) or being heard (False)
    file: str | None = None  # disk=bitflip: flip a bit of this file (a name in the data path), not a random one
    jump: float | None = None  # clock_jump: seconds the wall clock steps (negative: back)
    rate: float | None = None  # clock_skew: seconds the wall clock gains per second (negative: loses)

    def describe(self) -> str:
        extra = ""
        if self.kind.startswith("partition"):
            extra = f" mode={self.mode}"
        elif self.kind == "disk":
            extra = f" disk={self.disk}" + (f" file={self.file}" if self.file else "")
        elif self.kind == "one_way":
            extra = " in" if self.one_way_in else " out"
        elif self.kind == "clock_jump" and self.jump is not None:
            extra = f" jump={self.jump:+.3f}s"
        elif self.kind == "clock_skew" and self.rate is not None:
            extra = f" rate={self.rate:+.3f}"
        return f"t={self.at:.3f} {self.kind} {self.target or '*'} for {self.duration:.3f}s{extra}"


@dataclass(frozen=True, slots=True)
class FaultModel:
    enabled: bool = False
    start: float = 5.0
    mean_interval: float = 10.0
    duration: Dist = _DEFAULT_DURATION
    weights: Mapping[FaultKind, float] = field(default_factory=lambda: dict(_DEFAULT_WEIGHTS))
    reset_fraction: float = 0.25
    slow_factor: float = 20.0
    slow_bandwidth: float = 1_000_000.0
    max_concurrent: int = 2
    schedule: tuple[ScheduledFault, ...] = ()
    disk_faults: tuple[DiskFault, ...] = DISK_FAULTS
    clock_jump: Dist = _DEFAULT_JUMP
    clock_skew: Dist = _DEFAULT_SKEW

    def only(self, kinds: Sequence[str]) -> FaultModel:
        """The same model, drawing only ``kinds`` (at their weights, or 1)."""
        for kind in kinds:
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {kind!r} (one of {', '.join(FAULT_KINDS)})")
        weights = {k: (self.weights.get(k, 0.0) or 1.0) for k in kinds if k in FAULT_KINDS}
        return replace(self, enabled=True, weights=weights)


def parse_fault_model(table: Mapping[str, object]) -> FaultModel:
    """A ``FaultModel`` from the ``[faults]`` table of a configuration."""
    known = {f for f in FaultModel.__dataclass_fields__}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ValueError(f"[faults]: unknown keys {unknown}")
    kw: dict[str, object] = {}
    for key, value in table.items():
        if key in ("duration", "clock_jump", "clock_skew"):
            kw[key] = Dist.parse(value)
        elif key == "disk_faults":
            if not isinstance(value, list) or not value or any(d not in ALL_DISK_FAULTS for d in value):
                raise ValueError(f"[faults] disk_faults must be a non-empty list of {', '.join(ALL_DISK_FAULTS)}")
            kw[key] = tuple(value)
        elif key == "weights":
            if not isinstance(value, dict):
                raise ValueError("[faults] weights must be a table")
            weights: dict[str, float] = {}
            for kind, w in value.items():
                if kind not in FAULT_KINDS:
                    raise ValueError(f"[faults] weights: unknown fault kind {kind!r}")
                weights[kind] = float(w)
            kw[key] = weights
        elif key == "schedule":
            if not isinstance(value, list):
                raise ValueError("[faults] schedule must be an array of tables")
            kw[key] = tuple(_scheduled(entry) for entry in value)
        elif key in ("enabled",):
            kw[key] = bool(value)
        elif key == "max_concurrent":
            kw[key] = int(value)  # type: ignore[call-overload]
        else:
            kw[key] = float(value)  # type: ignore[arg-type]
    return FaultModel(**kw)  # type: ignore[arg-type]


def _scheduled(entry: object) -> ScheduledFault:
    if not isinstance(entry, dict):
        raise ValueError("[[faults.schedule]] entries must be tables")
    known = set(ScheduledFault.__dataclass_fields__)
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ValueError(f"[[faults.schedule]]: unknown keys {unknown}")
    kind = entry.get("kind")
    if kind not in FAULT_KINDS:
        raise ValueError(f"[[faults.schedule]]: unknown fault kind {kind!r}")
    mode = entry.get("mode", "blackhole")
    if mode not in ("blackhole", "reset"):
        raise ValueError(f"[[faults.schedule]]: unknown partition mode {mode!r}")
    disk = entry.get("disk", "fsync")
    if disk not in ALL_DISK_FAULTS:
        raise ValueError(f"[[faults.schedule]]: unknown disk fault {disk!r}")
    target = entry.get("target")
    file = entry.get("file")
    if file is not None and (disk != "bitflip" or not isinstance(file, str) or "/" in file):
        raise ValueError("[[faults.schedule]]: file names one file of the data path, for disk = \"bitflip\" only")
    return ScheduledFault(
        at=float(entry["at"]),
        kind=kind,
        target=str(target) if target is not None else None,
        duration=float(entry.get("duration", 5.0)),
        mode=mode,
        disk=disk,
        one_way_in=bool(entry.get("one_way_in", True)),
        file=file,
        jump=float(entry["jump"]) if "jump" in entry else None,
        rate=float(entry["rate"]) if "rate" in entry else None,
    )


@dataclass(frozen=True, slots=True)
class Targets:
    """The names faults may pick from."""

    nsqd: tuple[str, ...]
    lookupd: tuple[str, ...]
    consumers: tuple[str, ...]


def draw_schedule(model: FaultModel, rng: random.Random, targets: Targets, until: float) -> list[ScheduledFault]:
    """Every fault of the run, explicit and random, with targets resolved, in start order."""
    out = [_resolve(f, model, rng, targets) for f in model.schedule]
    kinds = [k for k in FAULT_KINDS if model.weights.get(k, 0.0) > 0 and _possible(k, targets)]
    if model.enabled and kinds and model.mean_interval > 0:
        weights = [model.weights[k] for k in kinds]
        t = model.start
        while True:
            t += rng.expovariate(1.0 / model.mean_interval)
            if t >= until:
                break
            kind = rng.choices(kinds, weights)[0]
            duration = model.duration.sample(rng)
            mode: PartitionMode = "reset" if rng.random() < model.reset_fraction else "blackhole"
            disks = model.disk_faults
            disk = disks[rng.randrange(len(disks))]
            fault = ScheduledFault(t, kind, None, duration, mode, disk, rng.random() < 0.5)
            out.append(_resolve(fault, model, rng, targets))
    out.sort(key=lambda f: f.at)
    return out


def _possible(kind: FaultKind, targets: Targets) -> bool:
    if kind == "lookupd_crash" or kind == "partition_lookupd":
        return bool(targets.lookupd)
    if kind == "consumer_stall":
        return bool(targets.consumers)
    return bool(targets.nsqd)


def _pool(kind: FaultKind, targets: Targets) -> tuple[str, ...]:
    if kind == "lookupd_crash":
        return targets.lookupd
    if kind == "consumer_stall":
        return targets.consumers
    if kind in _CLOCK_KINDS:
        return targets.nsqd + targets.lookupd  # the daemons read their wall clocks; the clients do not
    if kind == "stall":
        return targets.nsqd + targets.lookupd + targets.consumers
    return targets.nsqd


def _resolve(fault: ScheduledFault, model: FaultModel, rng: random.Random, targets: Targets) -> ScheduledFault:
    # Only the kinds that existed before clock faults draw nothing more, so a
    # configuration without the new kinds draws exactly the numbers it drew then.
    if fault.kind == "clock_jump" and fault.jump is None:
        size = model.clock_jump.sample(rng)
        fault = replace(fault, jump=-size if rng.random() < 0.5 else size)
    elif fault.kind == "clock_skew" and fault.rate is None:
        rate = model.clock_skew.sample(rng)
        fault = replace(fault, rate=-min(rate, 0.9) if rng.random() < 0.5 else rate)
    if fault.target is not None or fault.kind in ("partition_halves", "partition_lookupd"):
        return fault
    pool = _pool(fault.kind, targets)
    if not pool:
        return fault
    return replace(fault, target=pool[rng.randrange(len(pool))])


class Nemesis:
    """Carries out a drawn schedule on a cluster, and ends every fault at ``quiesce``."""

    def __init__(self, cluster: Cluster, model: FaultModel, schedule: list[ScheduledFault], rng: random.Random) -> None:
        self.cluster = cluster
        self.model = model
        self.schedule = schedule
        self.rng = rng
        self.active: dict[int, Callable[[], None]] = {}  # fault number -> how to end it
        self.applied = 0
        self.skipped = 0
        self._quiesced = False

    def start(self) -> None:
        clock = self.cluster.clock
        for i, fault in enumerate(self.schedule):
            clock.call_later(fault.at - clock.now(), lambda i=i, fault=fault: self._begin(i, fault))  # type: ignore[misc]

    def quiesce(self) -> None:
        """End every fault in force; no fault starts after this."""
        self._quiesced = True
        for i in sorted(self.active):
            self._end(i)

    # -- one fault ------------------------------------------------------------------------

    def _begin(self, i: int, fault: ScheduledFault) -> None:
        if self._quiesced:
            return
        if len(self.active) >= max(self.model.max_concurrent, 1):
            self.skipped += 1
            return
        undo = self._apply(fault)
        if undo is None:
            self.skipped += 1
            return
        self.applied += 1
        self.active[i] = undo
        self.cluster.clock.call_later(fault.duration, lambda: self._end(i))

    def _end(self, i: int) -> None:
        undo = self.active.pop(i, None)
        if undo is not None:
            undo()

    def _apply(self, fault: ScheduledFault) -> Callable[[], None] | None:
        c = self.cluster
        net = c.net
        rec = c.history.record
        kind, target = fault.kind, fault.target
        if kind in ("crash", "kill", "restart"):
            node = c.nsqd_nodes.get(target or "")
            if node is None or not node.up:
                return None
            if kind == "restart" and node.life is not None and node.life.stalled:
                return None  # a stopped process takes no SIGTERM until it resumes
            if kind == "crash":
                c.crash_nsqd(node.host)
            elif kind == "kill":
                c.kill_nsqd(node.host)
            else:
                c.stop_nsqd(node.host)

            def restart() -> None:
                if not node.up:
                    c.start_nsqd(node.host)

            return restart
        if kind == "lookupd_crash":
            lnode = c.lookupd_nodes.get(target or "")
            if lnode is None or not lnode.up:
                return None
            c.crash_lookupd(lnode.host)
            return lambda: c.start_lookupd(lnode.host)
        if kind.startswith("partition") or kind == "one_way":
            sides = self._sides(fault)
            if sides is None:
                return None
            a, b = sides
            one_way = kind == "one_way"
            if one_way and fault.one_way_in:
                a, b = b, a  # everyone -> target is cut: the target stops hearing
            part = net.partition(a, b, mode=fault.mode, one_way=one_way)
            rec("partition", kind=kind, side_a=sorted(a), side_b=sorted(b), mode=fault.mode, one_way=one_way)

            def heal(part: Partition = part) -> None:
                net.heal(part)
                rec("heal", kind=kind, side_a=sorted(part.side_a), side_b=sorted(part.side_b))

            return heal
        if kind == "slow_link":
            host = target or ""
            if host not in net.hosts:
                return None
            base = net.default_link
            slow = LinkProfile(base.latency.scaled(self.model.slow_factor), min(base.bandwidth, self.model.slow_bandwidth))
            others = [h for h in net.hosts if h != host]
            for other in others:
                net.set_link(host, other, slow)
                net.set_link(other, host, slow)
            rec("slow_link", host=host, factor=self.model.slow_factor, bandwidth=_finite(slow.bandwidth))

            def restore() -> None:
                for other in others:
                    net.set_link(host, other, None)
                    net.set_link(other, host, None)
                rec("slow_link_end", host=host)

            return restore
        if kind == "consumer_stall":
            consumer = c.consumers_by_name.get(target or "")
            if consumer is None or consumer.stalled:
                return None
            consumer.stall()
            return consumer.unstall
        if kind == "disk":
            dnode = c.nsqd_nodes.get(target or "")
            if dnode is None:
                return None
            disk = dnode.disk
            where: object = None
            if fault.disk == "fsync":
                disk.fail_fsyncs(1_000_000)
            elif fault.disk == "full":
                disk.fill(0)
            elif fault.disk == "fsync_full":
                disk.fail_fsyncs_full()
            elif fault.disk == "bitflip":
                where = disk.flip_bit(fault.file)
            else:
                disk.tear_next_write(50)
            rec("disk_fault", host=dnode.host, fault=fault.disk, where=list(where) if isinstance(where, tuple) else None)

            def heal_disk() -> None:
                disk.heal()
                rec("disk_heal", host=dnode.host, fault=fault.disk)
                if not dnode.up and dnode.nsqd is None:
                    # a torn write crashed the machine: it comes back with its disk
                    c.start_nsqd(dnode.host)

            return heal_disk
        if kind in _CLOCK_KINDS:
            return self._clock_fault(fault)
        if kind == "stall":
            return self._stall(fault)
        if kind in ("net_delay", "net_cut"):
            return self._connection_fault(fault)
        return None

    def _clock_fault(self, fault: ScheduledFault) -> Callable[[], None] | None:
        c = self.cluster
        node = c.nsqd_nodes.get(fault.target or "") or c.lookupd_nodes.get(fault.target or "")
        if node is None:
            return None
        wall, clock, rec = node.wall, c.clock, c.history.record
        if wall.base_ns or wall.rate:
            return None  # already wrong: one clock fault at a time per host
        if fault.kind == "clock_jump":
            jump = fault.jump or 0.0
            wall.step(clock.now(), jump)
            rec("clock_jump", host=node.host, by=jump)
        else:
            rate = fault.rate or 0.0
            wall.skew(clock.now(), rate)
            rec("clock_skew", host=node.host, rate=rate)

        def heal_clock() -> None:
            off = wall.reset(clock.now())
            rec("clock_heal", host=node.host, by=-off)

        return heal_clock

    def _stall(self, fault: ScheduledFault) -> Callable[[], None] | None:
        c = self.cluster
        host = fault.target or ""
        life = None
        node = c.nsqd_nodes.get(host) or c.lookupd_nodes.get(host)
        if node is not None:
            if node.up and not node.stopping:
                life = node.life
        elif host in c.consumers_by_name:
            life = c.consumers_by_name[host].life
        if life is None or not life.alive or life.stalled:
            return None
        c.net.stall(life)
        c.history.record("stall", host=host)

        def resume(life: Life = life) -> None:
            if life.alive:
                c.history.record("stall_end", host=host, timers=len(life.timers))
                # What its kernel held for it the process reads now, long after it came,
                # as at a mended cut: the checker's rules for held bytes apply.
                c.history.record("heal", kind="stall", side_a=[host], side_b=[h for h in c.net.hosts if h != host])
                c.net.resume(life)

        return resume

    def _connection_fault(self, fault: ScheduledFault) -> Callable[[], None] | None:
        c = self.cluster
        net, rec = c.net, c.history.record
        conns = net.connections(fault.target or "")
        if not conns:
            return None
        conn = conns[self.rng.randrange(len(conns))]
        end = conn if self.rng.random() < 0.5 else conn.peer
        if end is None:
            return None
        here, there = end.local_address, end.peer_address
        if fault.kind == "net_delay":
            # ``end`` stops receiving: what its peer sends waits, then arrives in order
            net.delay(end)
            rec("net_delay", side_a=[there[0]], side_b=[here[0]], src=f"{there[0]}:{there[1]}", dst=f"{here[0]}:{here[1]}")

            def deliver() -> None:
                net.undelay(end)
                # A held connection mended, as a black-holed link is: what it held arrives now.
                rec("heal", kind="net_delay", side_a=[there[0]], side_b=[here[0]])

            return deliver
        fraction = self.rng.random()

        def cut(sent: int, written: int) -> None:
            rec("net_cut", src=f"{here[0]}:{here[1]}", dst=f"{there[0]}:{there[1]}", side_a=[here[0]], side_b=[there[0]], sent=sent, written=written)

        net.cut(end, fraction, cut)  # ``end``'s next write is cut short
        return lambda: net.uncut(end)

    def _sides(self, fault: ScheduledFault) -> tuple[list[str], list[str]] | None:
        net = self.cluster.net
        hosts = list(net.hosts)
        if fault.kind == "partition_halves":
            shuffled = hosts[:]
            self.rng.shuffle(shuffled)
            half = max(1, len(shuffled) // 2)
            return sorted(shuffled[:half]), sorted(shuffled[half:])
        if fault.kind == "partition_lookupd":
            lookupds = list(self.cluster.lookupd_nodes)
            if not lookupds:
                return None
            return lookupds, [h for h in hosts if h not in lookupds]
        if fault.target is None or fault.target not in net.hosts:
            return None
        return [fault.target], [h for h in hosts if h != fault.target]


def _finite(x: float) -> float | None:
    return None if math.isinf(x) else x
