"""The simulated ports beyond what the conformance suite can ask of a real socket.

Partitions (black-hole, reset, one way), process death, latency and bandwidth,
write coalescing, the SYN timeout, lives that silence a dead process's timers,
the seeded streams, and the simulated disk's faults.
"""

from __future__ import annotations

import math
import random

import pytest
import simpy

from broker.ports import Connection
from broker.storage.segment import frame
from nsqsim.clock import EPOCH_NS, Life, SimClock
from nsqsim.disk import SimDisk
from nsqsim.dist import Dist
from nsqsim.network import LinkProfile, SimNetwork
from nsqsim.randomness import SeedTree


class Rec:
    def __init__(self) -> None:
        self.conn: Connection | None = None
        self.data = bytearray()
        self.arrivals: list[tuple[float, int]] = []
        self.calls: list[str] = []
        self.lost: list[Exception | None] = []
        self.env: simpy.Environment | None = None

    def connection_made(self, conn: Connection) -> None:
        self.conn = conn
        self.calls.append("made")

    def data_received(self, data: bytes) -> None:
        self.data += data
        self.calls.append("data")
        if self.env is not None:
            self.arrivals.append((self.env.now, len(data)))

    def eof_received(self) -> None:
        self.calls.append("eof")

    def connection_lost(self, exc: Exception | None) -> None:
        self.calls.append("lost")
        self.lost.append(exc)

    def pause_writing(self) -> None:
        self.calls.append("pause_writing")

    def resume_writing(self) -> None:
        self.calls.append("resume_writing")

    def c(self) -> Connection:
        assert self.conn is not None
        return self.conn


class World:
    def __init__(self, link: LinkProfile | None = None, **kw: float) -> None:
        self.env = simpy.Environment()
        self.net = SimNetwork(self.env, random.Random(1), link=link or LinkProfile(Dist.fixed(0.01)), **kw)  # type: ignore[arg-type]
        for h in ("a", "b", "c"):
            self.net.add_host(h)
        self.server_life = Life("b")
        self.client_life = Life("a")
        self.servers: list[Rec] = []

    def pair(self) -> tuple[Rec, Rec]:
        def factory() -> Rec:
            r = Rec()
            r.env = self.env
            self.servers.append(r)
            return r

        if ("b", 4150) not in self.net._listeners:
            self.net.listen("b", 4150, factory, self.server_life)
        client = Rec()
        client.env = self.env
        self.net.host("a", self.client_life).connect("b", 4150, client)
        self.env.run(until=self.env.now + 1)
        assert client.conn is not None
        return client, self.servers[-1]

    def run(self, seconds: float) -> None:
        if seconds > 0:
            self.env.run(until=self.env.now + seconds)
        while self.env.peek() <= self.env.now:  # what is due right now
            self.env.step()


def test_clock_reads_simulated_time_and_a_fixed_wall_epoch() -> None:
    env = simpy.Environment()
    clock = SimClock(env)
    fired: list[float] = []
    clock.call_later(2.5, lambda: fired.append(clock.now()))
    env.run(until=3)
    assert fired == [2.5]
    assert clock.wall_ns() == EPOCH_NS + 3_000_000_000


def test_a_dead_life_runs_none_of_its_timers() -> None:
    env = simpy.Environment()
    life = Life("p")
    clock = SimClock(env, life)
    fired: list[str] = []
    clock.call_later(1, lambda: fired.append("before"))
    clock.call_later(3, lambda: fired.append("after"))
    SimClock(env).call_later(2, life.end)
    env.run(until=5)
    assert fired == ["before"]


def test_latency_delays_each_chunk_and_same_instant_writes_coalesce() -> None:
    w = World()
    client, server = w.pair()
    t0 = w.env.now
    for _ in range(100):
        client.c().write(b"x" * 10)
    w.run(1)
    assert len(server.arrivals) == 1
    assert server.arrivals[0][0] == pytest.approx(t0 + 0.01)
    assert server.arrivals[0][1] == 1000


def test_bandwidth_spreads_a_large_write_over_time() -> None:
    w = World(LinkProfile(Dist.fixed(0.001), bandwidth=100_000))
    client, server = w.pair()
    t0 = w.env.now
    client.c().write(b"y" * 50_000)
    w.run(5)
    assert len(server.data) == 50_000
    assert server.arrivals[-1][0] == pytest.approx(t0 + 0.5 + 0.001)


def test_blackhole_partition_stalls_then_delivers_everything_in_order() -> None:
    w = World()
    client, server = w.pair()
    part = w.net.partition(["a"], ["b"])
    client.c().write(b"during ")
    w.run(10)
    assert server.data == b""
    client.c().write(b"partition")
    w.net.heal(part)
    client.c().write(b" and after")
    w.run(1)
    assert bytes(server.data) == b"during partition and after"
    assert "lost" not in server.calls


def test_blackhole_fills_the_window_and_pauses_the_writer() -> None:
    w = World(window=1000)
    client, server = w.pair()
    client.c().set_write_buffer_limits(high=2000)
    w.net.partition(["a"], ["b"])
    for _ in range(10):
        client.c().write(b"z" * 500)
    assert "pause_writing" in client.calls
    assert client.c().write_buffer_size() == 4000
    w.net.heal()
    w.run(2)
    assert len(server.data) == 5000
    assert "resume_writing" in client.calls


def test_one_way_partition_cuts_one_direction_only() -> None:
    w = World()
    client, server = w.pair()
    w.net.partition(["b"], ["a"], one_way=True)
    client.c().write(b"up")
    server.c().write(b"down")
    w.run(1)
    assert server.data == b"up"
    assert client.data == b""


def test_reset_partition_resets_open_connections_and_refuses_new_ones() -> None:
    w = World()
    client, server = w.pair()
    w.net.partition(["a"], ["b", "c"], mode="reset")
    w.run(0)
    assert isinstance(client.lost[0], ConnectionResetError)
    assert isinstance(server.lost[0], ConnectionResetError)
    again = Rec()
    w.net.host("a", w.client_life).connect("b", 4150, again)
    w.run(1)
    assert again.calls == ["lost"] and isinstance(again.lost[0], ConnectionRefusedError)


def test_connect_across_a_blackhole_waits_for_the_heal_or_times_out() -> None:
    w = World(syn_timeout=5.0)
    w.net.listen("b", 4150, Rec, w.server_life)
    w.net.partition(["a"], ["b"])
    healed, timed_out = Rec(), Rec()
    w.net.host("a", w.client_life).connect("b", 4150, healed)
    w.run(3)
    w.net.heal()
    w.run(1)
    assert healed.calls == ["made"]
    w.net.partition(["a"], ["b"])
    w.net.host("a", w.client_life).connect("b", 4150, timed_out)
    w.run(10)
    assert timed_out.calls == ["lost"] and isinstance(timed_out.lost[0], TimeoutError)


def test_killed_process_sends_fin_and_its_handlers_hear_nothing_more() -> None:
    w = World()
    client, server = w.pair()
    w.net.kill(w.server_life)
    client.c().write(b"to the dead")
    w.run(1)
    assert server.calls == ["made"]
    assert client.calls == ["made", "eof", "lost"] and client.lost == [None]
    refused = Rec()
    w.net.host("a", w.client_life).connect("b", 4150, refused)
    w.run(1)
    assert isinstance(refused.lost[0], ConnectionRefusedError)


def test_power_loss_resets_the_peers() -> None:
    w = World()
    client, _server = w.pair()
    w.net.kill(w.server_life, reset=True)
    w.run(1)
    assert isinstance(client.lost[0], ConnectionResetError)


def test_unknown_host_is_unreachable() -> None:
    w = World()
    r = Rec()
    w.net.host("a", w.client_life).connect("nowhere", 1, r)
    w.run(1)
    assert r.calls == ["lost"] and isinstance(r.lost[0], OSError)


def test_listening_twice_on_a_port_fails() -> None:
    w = World()
    w.net.listen("b", 4150, Rec, w.server_life)
    with pytest.raises(OSError):
        w.net.listen("b", 4150, Rec, w.server_life)


def test_slow_link_profile_applies_to_one_direction() -> None:
    w = World()
    client, server = w.pair()
    w.net.set_link("a", "b", LinkProfile(Dist.fixed(0.5)))
    t0 = w.env.now
    client.c().write(b"slow")
    server.c().write(b"fast")
    w.run(1)
    assert server.arrivals[0][0] == pytest.approx(t0 + 0.5)
    assert client.arrivals[0][0] == pytest.approx(t0 + 0.01)


def test_seed_tree_streams_are_stable_and_independent() -> None:
    a, b = SeedTree(5), SeedTree(5)
    assert a.stream("network").random() == b.stream("network").random()
    assert a.stream("network").random() != a.stream("disk").random()
    assert SeedTree(6).stream("network").random() != SeedTree(5).stream("network").random()


@pytest.mark.parametrize(
    ("spec", "lo", "hi"),
    [
        (0.25, 0.25, 0.25),
        ({"kind": "uniform", "low": 1, "high": 2}, 1, 2),
        ({"kind": "exponential", "low": 1, "mean": 0.1, "cap": 3}, 1, 3),
        ({"kind": "lognormal", "mean": 0.01, "low": 0.001, "cap": 0.05}, 0.001, 0.05),
    ],
)
def test_distributions_stay_in_their_bounds(spec: object, lo: float, hi: float) -> None:
    d = Dist.parse(spec)
    rng = random.Random(3)
    samples = [d.sample(rng) for _ in range(1000)]
    assert lo <= min(samples) and max(samples) <= hi


def test_bad_distributions_are_rejected() -> None:
    for spec in ({"kind": "zipf"}, {"kind": "uniform", "low": 2, "high": 1}, {"nope": 1}, "x", True):
        with pytest.raises(ValueError):
            Dist.parse(spec)


def test_disk_crash_keeps_synced_bytes_only() -> None:
    disk = SimDisk("n", "/data", random.Random(2))
    f = disk.fs.open_append("/data/q.dat")
    f.write(b"durable")
    f.fsync()
    disk.fs.fsync_dir("/data")
    f.write(b"-volatile" * 100)
    disk.crash()
    content = disk.fs.contents("/data/q.dat")
    assert content.startswith(b"durable")
    assert len(content) < len(b"durable" + b"-volatile" * 100) or content.endswith(b"volatile")


def test_disk_faults_fail_fsync_fill_flip_and_heal() -> None:
    disk = SimDisk("n", "/data", random.Random(2))
    f = disk.fs.open_append("/data/q.dat")
    f.write(b"\x00" * 64)
    disk.fail_fsyncs(1)
    with pytest.raises(OSError):
        f.fsync()
    f.fsync()
    disk.fill(10)
    with pytest.raises(OSError):
        f.write(b"y" * 100)
    disk.heal()
    f.write(b"ok")
    where = disk.flip_bit()
    assert where is not None and where[0] == "/data/q.dat"
    assert disk.fs.contents("/data/q.dat") != b"\x00" * 64 + b"y" * 10 + b"ok"
    assert disk.files() == ["/data/q.dat"]


def test_disk_reports_each_record_once_when_no_crash_can_take_it() -> None:
    disk = SimDisk("n", "/data", random.Random(2))
    seg = "/data/t:c.diskqueue.000000.dat"
    f = disk.fs.open_append(seg)
    f.write(frame(b"one") + frame(b"two"))
    f.fsync()
    assert disk.durable_records() == {}  # the segment's name is not durable yet
    disk.fs.fsync_dir("/data")
    f.write(frame(b"three"))  # written, not fsynced
    assert disk.durable_records() == {"t:c": [b"one", b"two"]}
    f.fsync()
    other = disk.fs.open_append("/data/t.diskqueue.000003.dat")
    other.write(frame(b"topic") + b"\x00\x00\x00\x09torn")
    other.fsync()
    disk.fs.fsync_dir("/data")
    # only what is new, and a segment's records up to the first that fails its checks
    assert disk.durable_records() == {"t": [b"topic"], "t:c": [b"three"]}
    assert disk.durable_records() == {}


@pytest.mark.parametrize(
    "dist",
    [
        Dist("lognormal", mean=0.0005, sigma=0.6, low=0.0001, cap=0.05),
        Dist("lognormal", low=0.2),
        Dist("uniform", low=1.0, high=5.0, cap=3.0),
        Dist("exponential", mean=0.002, low=0.001),
        Dist("exponential"),
        Dist.fixed(3.0),
    ],
)
def test_a_bound_sampler_draws_what_sample_draws(dist: Dist) -> None:
    # The hot paths (a latency per packet, a handling time per message) use
    # sampler(); a seed must mean the same draws whichever is used.
    draw = dist.sampler(random.Random(5))
    rng = random.Random(5)
    assert [draw() for _ in range(500)] == [dist.sample(rng) for _ in range(500)]


def test_a_lognormal_has_its_median_and_shape() -> None:
    # Drawn by inversion (one uniform per draw): the median is ``mean`` and the
    # logarithms spread with ``sigma``, as random.lognormvariate's would.
    import statistics

    draws = [Dist("lognormal", mean=0.002, sigma=0.6).sample(random.Random(i)) for i in range(4000)]
    logs = [math.log(x) for x in draws]
    assert statistics.median(draws) == pytest.approx(0.002, rel=0.05)
    assert statistics.stdev(logs) == pytest.approx(0.6, rel=0.05)
    assert Dist("lognormal", mean=0.002, sigma=0.0).sample(random.Random(1)) == pytest.approx(0.002)
