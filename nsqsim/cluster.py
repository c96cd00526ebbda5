"""Builds a simulated cluster from a configuration and runs it: the real broker on simulated hosts.

One run, from its seed:

1. Every host joins the network; nsqlookupd and nsqd processes start at t=0
   and the consumers begin discovering nodes.
2. At ``warmup`` the producers start, and the nemesis begins its schedule.
3. At ``warmup + duration`` the load stops: producers stop publishing and
   every fault in force ends (partitions heal, dead nodes start again).
4. For ``drain`` seconds the consumers keep consuming what is left.
5. The end: each nsqd's channels are read as /stats would show them
   (``final`` events), and the history is complete.

Everything random comes from the seed (``SeedTree``), and the schedule of
faults is drawn before the run starts, so the same seed and configuration
give the same history, byte for byte.

An exception escaping the broker (or the simulator) stops the run and is
recorded as an ``exception`` event, which the checkers report as a violation:
a failure is never swallowed.  A ``SimulatedCrash`` raised by a disk armed
with a torn write is not a failure: it is the machine dying part way through a
write, and the node is crashed there.
"""

from __future__ import annotations

import gc
import time
import traceback
from dataclasses import dataclass, field

import simpy

from broker.nsqd.message import decode_message_record
from broker.nsqd.nsqd import NSQD
from broker.storage.diskqueue import DiskQueue
from broker.storage.memfs import SimulatedCrash
from nsqsim.clock import SimClock, run_until
from nsqsim.config import LOOKUPD_HTTP_PORT, ClusterConfig
from nsqsim.history import History
from nsqsim.nemesis import FaultModel, Nemesis, ScheduledFault, Targets, draw_schedule
from nsqsim.network import SimNetwork
from nsqsim.nodes import PROCESS_START, LookupdNode, NsqdNode
from nsqsim.randomness import SeedTree
from nsqsim.security import AuthNode, server_context
from nsqsim.workload import Consumer, Producer
from nsqsim.workload.process import message_key

__all__ = ["Cluster", "RunResult", "run"]

_GC_YOUNG = 50_000  # allocations between collections of the youngest generation, during a run


@dataclass
class RunResult:
    seed: int
    config: ClusterConfig
    history: History
    schedule: list[ScheduledFault]
    sim_seconds: float
    wall_seconds: float
    events: int
    logs: dict[str, list[tuple[float, str, str]]] = field(default_factory=dict)


class Cluster:
    def __init__(self, cfg: ClusterConfig, seed: int, *, faults: FaultModel | None = None, log_level: str = "WARN") -> None:
        self.cfg = cfg
        self.seed = seed
        self.env = simpy.Environment(initial_time=0.0)  # a float from the start: every event time is one
        self.seeds = SeedTree(seed)
        self.clock = SimClock(self.env)
        self.history = History(self.clock)
        net_cfg = cfg.network
        self.net = SimNetwork(
            self.env,
            self.seeds.stream("network"),
            link=net_cfg.link(),
            window=net_cfg.window,
            syn_timeout=net_cfg.syn_timeout,
        )
        for host in cfg.hosts():
            self.net.add_host(host)

        lookupd_tcp = cfg.lookupd.tcp_addresses()
        self.lookupd_nodes = {
            host: LookupdNode(host, cfg.lookupd.options_for(i), self.net, self.clock, self.seeds, log_level)
            for i, host in enumerate(cfg.lookupd.hosts())
        }
        security = cfg.security
        secured = security.nsqd_options()
        tls_context = server_context() if security.tls else None
        self.nsqd_nodes = {
            host: NsqdNode(
                host,
                cfg.nsqd.options_for(i, lookupd_tcp).replace(**secured) if secured else cfg.nsqd.options_for(i, lookupd_tcp),
                self.net, self.clock, self.seeds, log_level, tls_context=tls_context,
            )
            for i, host in enumerate(cfg.nsqd.hosts())
        }
        self.auth_nodes = [AuthNode(h, self.net, self.clock, security.auth_ttl) for h in security.auth_hosts()]

        self.producers: list[Producer] = []
        for p in cfg.producers:
            for i, host in enumerate(p.hosts()):
                target = p.nsqd[i % len(p.nsqd)]
                self.producers.append(Producer(host, target, p, self.net, self.clock, self.seeds.stream(host), self.history))
        lookupd_http = [f"{h}:{LOOKUPD_HTTP_PORT}" for h in cfg.lookupd.hosts()]
        self.consumers: list[Consumer] = []
        for c in cfg.consumers:
            nsqds = list(c.nsqd) or cfg.nsqd.hosts()
            for host in c.hosts():
                rng, client_rng = self.seeds.stream(host), self.seeds.stream(f"{host}/client")
                published = c.topic in cfg.topic_ttls()
                self.consumers.append(
                    Consumer(host, c, nsqds, lookupd_http, self.net, self.clock, rng, client_rng, self.history, published)
                )
        self.consumers_by_name = {c.host: c for c in self.consumers}
        if security.enabled:
            settings = security.client_settings()
            for proc in [*self.producers, *self.consumers]:
                proc.secure(settings)

        self.fault_model = faults if faults is not None else cfg.faults
        targets = Targets(
            nsqd=tuple(self.nsqd_nodes),
            lookupd=tuple(self.lookupd_nodes),
            consumers=tuple(self.consumers_by_name),
        )
        load_end = cfg.warmup + cfg.duration
        self.schedule = draw_schedule(self.fault_model, self.seeds.stream("nemesis/draw"), targets, load_end)
        self.schedule = [f for f in self.schedule if f.at < load_end]
        self.nemesis = Nemesis(self, self.fault_model, self.schedule, self.seeds.stream("nemesis/apply"))

    # -- what the nemesis does to nodes ------------------------------------------------------

    def crash_nsqd(self, host: str) -> None:
        self._record_durable(self.nsqd_nodes[host])
        self.history.record("crash", host=host)
        self.nsqd_nodes[host].crash()

    def _record_durable(self, node: NsqdNode) -> None:
        """Before a power loss: ``fsync`` events for the records it cannot take (``SimDisk.durable_records``)."""
        for queue, records in node.disk.durable_records().items():
            topic, _, channel = queue.partition(":")  # nsqd names a channel's queue <topic>:<channel>
            keys: list[str] = []
            for record in records:
                try:
                    msg, _ = decode_message_record(record)
                except ValueError:
                    continue
                keys.append(message_key(msg.body))
            if keys:
                self.history.record("fsync", host=node.host, topic=topic, channel=channel, keys=keys)

    def kill_nsqd(self, host: str) -> None:
        self.history.record("kill", host=host)
        self.nsqd_nodes[host].kill()

    def stop_nsqd(self, host: str) -> None:
        node = self.nsqd_nodes[host]
        self.history.record("stop", host=host, held=_held(node.nsqd))
        node.stop()

    def start_nsqd(self, host: str) -> None:
        """Start ``host``'s nsqd again, at least ``PROCESS_START`` after its last process ended."""
        node = self.nsqd_nodes[host]
        wait = node.ended_at + PROCESS_START - self.clock.now()
        if wait > 0:

            def later() -> None:
                if not node.up:
                    self.start_nsqd(host)

            self.clock.call_later(wait, later)
            return
        node.start()
        self.history.record("start", host=host)

    def crash_lookupd(self, host: str) -> None:
        self.history.record("lookupd_crash", host=host)
        self.lookupd_nodes[host].crash()

    def start_lookupd(self, host: str) -> None:
        self.lookupd_nodes[host].start()
        self.history.record("lookupd_start", host=host)

    def _operate(self) -> None:
        """What an operator sets up before the load (beyond nsqd): topic TTLs, dead-letter channels.

        Through the same core calls as nsqd's HTTP API; nsqd.dat keeps them across restarts.
        """
        cfg = self.cfg
        record = self.history.record
        for host, node in self.nsqd_nodes.items():
            nsqd = node.nsqd
            assert nsqd is not None
            for topic, ttl in cfg.topic_ttls().items():
                nsqd.get_topic(topic).set_ttl(round(ttl * 1e9))
                record("topic_options", nsqd=host, topic=topic, ttl=ttl)
            for c in cfg.consumers:
                if c.dead_letter_attempts:
                    nsqd.get_topic(c.topic).get_channel(c.channel).set_dead_letter(c.dead_letter_attempts, c.dead_letter_topic)
                    record("channel_created", nsqd=host, topic=c.topic, channel=c.channel)
                    record(
                        "channel_options", nsqd=host, topic=c.topic, channel=c.channel,
                        max_attempts=c.dead_letter_attempts, dead_letter_topic=c.dead_letter_topic,
                    )
                if c.envelopes:
                    nsqd.get_topic(c.topic).get_channel(c.channel)
                    record("channel_created", nsqd=host, topic=c.topic, channel=c.channel)
            nsqd.persist_metadata()

    # -- the run -----------------------------------------------------------------------------

    def run(self) -> RunResult:
        cfg = self.cfg
        wall0 = time.perf_counter()
        # What each kind of stop may lose of what nsqd acknowledged (the README's table);
        # every simulated nsqd has a disk.
        persists = True
        self.history.record(
            "run",
            seed=self.seed,
            config=cfg.name,
            config_digest=cfg.digest(),
            nodes={
                host: {
                    "crash_loses": not (persists and node.opts.durable_publish),
                    "kill_loses": not persists or (node.opts.mem_queue_size > 0 and not node.opts.durable_publish),
                    "restart_loses": not persists,
                    # the settings themselves, for model.checker's exact rules
                    "mem_queue_size": node.opts.mem_queue_size,
                    "durable_publish": node.opts.durable_publish,
                    "sync_every": node.opts.sync_every,
                    "persistent": persists,
                    "timeout_bound": max([node.opts.msg_timeout, *(c.msg_timeout for c in cfg.consumers)]),
                }
                for host, node in self.nsqd_nodes.items()
            },
            faults=[f.describe() for f in self.schedule],
        )
        for lnode in self.lookupd_nodes.values():
            lnode.start()
        for node in self.nsqd_nodes.values():
            node.start()
        self._operate()
        for consumer in self.consumers:
            consumer.start()
        load_end = cfg.warmup + cfg.duration
        end = load_end + cfg.drain

        def start_load() -> None:
            for producer in self.producers:
                producer.start()

        def stop_load() -> None:
            for producer in self.producers:
                producer.stop()
            self.nemesis.quiesce()
            self.history.record("load_end")

        self.clock.call_later(cfg.warmup, start_load)
        self.clock.call_later(load_end, stop_load)
        self.nemesis.start()
        self._run_until(end)
        self._final()
        self.history.record("end")
        events = _scheduled_events(self.env)
        logs = {n.host: list(n.logger.lines) for n in [*self.nsqd_nodes.values(), *self.lookupd_nodes.values()]}
        return RunResult(
            seed=self.seed,
            config=cfg,
            history=self.history,
            schedule=self.schedule,
            sim_seconds=end,
            wall_seconds=time.perf_counter() - wall0,
            events=events,
            logs=logs,
        )

    def _run_until(self, end: float) -> None:
        # A run allocates a few objects per event and keeps many (the history):
        # the collector's default first generation (700 allocations) sends it
        # scanning young objects thousands of times a simulated second and
        # promotes the history into full collections.  Cycles are rare (a
        # closed connection and its handler); a larger first generation finds
        # them as well, less often.
        thresholds = gc.get_threshold()
        gc.set_threshold(max(thresholds[0], _GC_YOUNG), *thresholds[1:])
        try:
            self._run_events(end)
        finally:
            gc.set_threshold(*thresholds)

    def _run_events(self, end: float) -> None:
        env = self.env
        while True:
            try:
                run_until(env, end)
                return
            except SimulatedCrash:
                torn = [n for n in self.nsqd_nodes.values() if n.disk.torn_armed]
                for node in torn:
                    self._record_durable(node)
                    self.history.record("crash", host=node.host, torn_write=True)
                    node.crash()
            except Exception as exc:
                self.history.record("exception", error=repr(exc), traceback=traceback.format_exc())
                return

    def _final(self) -> None:
        for host, node in self.nsqd_nodes.items():
            nsqd = node.nsqd
            if nsqd is None:
                continue
            for topic in nsqd.topics.values():
                if not topic.channels:
                    self.history.record("final_topic", host=host, topic=topic.name, depth=topic.depth())
                for channel in topic.channels.values():
                    self.history.record(
                        "final",
                        host=host,
                        topic=topic.name,
                        channel=channel.name,
                        depth=channel.depth(),
                        in_flight=len(channel.in_flight),
                        deferred=channel.deferred_count(),
                        timeouts=channel.timeout_count,
                        requeues=channel.requeue_count,
                        messages=channel.message_count,
                    )


def _held(nsqd: NSQD | None) -> dict[str, dict[str, str]]:
    """What each channel had delivered and not finished as it stopped cleanly (the
    ``stop`` event's ``held``): a FIN or REQ sent just before the stop reached nsqd
    exactly when its message is no longer listed, which the checker cannot
    otherwise tell."""
    out: dict[str, dict[str, str]] = {}
    if nsqd is None:
        return out
    for topic in nsqd.topics.values():
        for channel in topic.channels.values():
            ids = {m.id.decode("ascii", "replace"): "queued" for m in channel.memory if m.attempts}
            # a delivered message requeued past --mem-queue-size waits on disk
            if isinstance(channel.backend, DiskQueue):
                for record in channel.backend.unread():
                    try:
                        msg, _ = decode_message_record(record)
                    except ValueError:
                        continue  # the channel skips it too
                    if msg.attempts:
                        ids.setdefault(msg.id.decode("ascii", "replace"), "queued")
            ids.update((m.id.decode("ascii", "replace"), "deferred") for m in channel.deferred.values() if m.attempts)
            ids.update((m.id.decode("ascii", "replace"), "in_flight") for m in channel.in_flight.values())
            out[f"{topic.name}/{channel.name}"] = ids
    return out


def _scheduled_events(env: simpy.Environment) -> int:
    # simpy numbers every event it schedules; the next number is the count so far.
    counter = env._eid
    return int(next(counter))


def run(cfg: ClusterConfig, seed: int, *, faults: FaultModel | None = None, log_level: str = "WARN") -> RunResult:
    """Build the cluster for ``cfg`` and run it with ``seed``."""
    return Cluster(cfg, seed, faults=faults, log_level=log_level).run()
