"""Broker processes on simulated hosts: construction through the ports NSQD asks for, and life cycles."""

from __future__ import annotations

import random
from typing import Any

import pytest
import simpy

import nsqsim.nodes as nodes
from broker.nsqd.options import Options
from nsqsim.clock import Life, SimClock
from nsqsim.datagram import SimDatagramSender
from nsqsim.disk import SimDisk
from nsqsim.logs import SimLogger
from nsqsim.network import SimNetwork
from nsqsim.nodes import STOP_GRACE, NsqdNode, make_nsqd
from nsqsim.randomness import SeedTree


class _RecordingNSQD:
    """Keeps the ports it was built with."""

    def __init__(
        self,
        opts: Options,
        *,
        clock: Any,
        rand: Any,
        logger: Any,
        hostname: str,
        fs: Any,
        network: Any,
        datagrams: Any,
        tls_context: Any = None,
    ) -> None:
        self.tls_context = tls_context
        self.fs = fs
        self.network = network
        self.datagrams = datagrams


def test_make_nsqd_passes_the_disk_the_network_and_the_datagram_sender(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nodes, "NSQD", _RecordingNSQD)
    env = simpy.Environment()
    disk = SimDisk("n", "/data/n", random.Random(1))
    net = SimNetwork(env, random.Random(1))
    net.add_host("n")
    network = net.host("n", Life("n"))
    datagrams = SimDatagramSender("n", SimClock(env), Life("n"), [])
    built: Any = make_nsqd(
        Options(), clock=SimClock(env), rand=random.Random(1), logger=SimLogger("n", SimClock(env)), hostname="n", fs=disk.fs,
        network=network, datagrams=datagrams,
    )
    assert built.fs is disk.fs and built.network is network and built.datagrams is datagrams
    assert built.tls_context is None  # a cluster with [security] tls passes nsqsim's server context


def state(node: NsqdNode) -> dict[str, bool]:
    # Read through a call: mypy would otherwise narrow these attributes across node.crash().
    return {
        "up": node.up,
        "alive": node.life is not None and node.life.alive,
        "nsqd": node.nsqd is not None,
        "stopping": node.stopping,
    }


def _node() -> tuple[simpy.Environment, SimNetwork, NsqdNode]:
    env = simpy.Environment()
    net = SimNetwork(env, random.Random(1))
    net.add_host("nsqd-0")
    opts = Options(node_id=0, data_path="/data/nsqd-0")
    return env, net, NsqdNode("nsqd-0", opts, net, SimClock(env), SeedTree(1))


def test_crash_ends_the_life_closes_the_ports_and_loses_unsynced_writes() -> None:
    _env, net, node = _node()
    node.start()
    life = node.life
    assert state(node) == {"up": True, "alive": True, "nsqd": True, "stopping": False}
    f = node.disk.fs.open_append("/data/nsqd-0/x.dat")
    f.write(b"never synced")
    node.crash()
    assert life is not None and not life.alive
    assert state(node) == {"up": False, "alive": False, "nsqd": False, "stopping": False}
    assert node.disk.fs.crashes == 1
    assert ("nsqd-0", 4150) not in net._listeners
    node.start()
    assert state(node)["up"] and node.incarnation == 2 and node.life is not life


def test_clean_stop_lets_connections_flush_then_exits() -> None:
    env, _net, node = _node()
    node.start()
    node.stop()
    assert state(node) == {"up": False, "alive": True, "nsqd": True, "stopping": True}
    env.run(until=STOP_GRACE + 0.1)
    assert state(node) == {"up": False, "alive": False, "nsqd": False, "stopping": False}


def test_restart_before_the_old_process_finished_exiting() -> None:
    env, _net, node = _node()
    node.start()
    node.stop()
    node.start()
    env.run(until=STOP_GRACE + 0.1)
    assert state(node) == {"up": True, "alive": True, "nsqd": True, "stopping": False}


def test_statsd_pushes_are_recorded_and_a_crashed_process_sends_none() -> None:
    env = simpy.Environment()
    net = SimNetwork(env, random.Random(1))
    net.add_host("nsqd-0")
    opts = Options(node_id=0, data_path="/data/nsqd-0", statsd_address="statsd:8125", statsd_interval=10.0)
    node = NsqdNode("nsqd-0", opts, net, SimClock(env), SeedTree(1))
    node.start()
    assert node.nsqd is not None
    node.nsqd.get_topic("t").get_channel("c")
    env.run(until=10.5)
    assert node.datagrams, "no push at the first interval"
    first = node.datagrams[0]
    assert (first.at, first.src, first.host, first.port) == (10.0, "nsqd-0", "statsd", 8125)
    assert b"nsq.nsqd-0_4151.topic.t.channel.c.depth:0|g\n" in b"".join(d.data for d in node.datagrams)
    env.run(until=20.0)  # the spread of the first push ends before the second
    sent = len(node.datagrams)
    node.crash()
    env.run(until=60.0)
    assert len(node.datagrams) == sent
