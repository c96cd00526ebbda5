"""The statsd push through fake ports: keys, types, counter deltas, packing and spreading as nsqd's."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from broker.nsqd.nsqd import NSQD
from broker.nsqd.options import Options
from broker.nsqd.statsd import host_key, pack, statsd_prefix
from broker.wire import v2
from tests.fakes import FakeClock, FakeConnection, FakeRandom, RecordingLogger
from tests.unit.http.helpers import HTTPClient


@dataclass
class RecordingDatagrams:
    sent: list[tuple[float, str, int, bytes]] = field(default_factory=list)
    clock: FakeClock | None = None

    def send_to(self, host: str, port: int, data: bytes) -> None:
        assert self.clock is not None
        self.sent.append((self.clock.now(), host, port, data))

    def lines(self) -> list[str]:
        return [line for _, _, _, data in self.sent for line in data.decode().splitlines()]


class Node:
    def __init__(self, **opts: Any) -> None:
        self.clock = FakeClock()
        self.logger = RecordingLogger()
        self.datagrams = RecordingDatagrams(clock=self.clock)
        options = Options(**{"node_id": 7, "statsd_address": "127.0.0.1:8125", "statsd_mem_stats": False, **opts})
        self.nsqd = NSQD(
            options, clock=self.clock, rand=FakeRandom(), logger=self.logger, hostname="test.host", datagrams=self.datagrams
        )
        self.nsqd.set_listen_addresses(("127.0.0.1", 4150), ("127.0.0.1", 4151))
        self.nsqd.start()
        self._port = 50000

    def tcp(self) -> FakeConnection:
        self._port += 1
        conn = FakeConnection(self.nsqd.tcp_handler(), ("127.0.0.1", self._port))
        conn.send(v2.MAGIC_V2)
        return conn

    def http(self, target: str) -> Any:
        self._port += 1
        return HTTPClient(self.nsqd.http_handler(), ("127.0.0.1", self._port)).request("GET", target)


def values(lines: list[str]) -> dict[str, str]:
    return {line.split(":")[0]: line.split(":")[1] for line in lines}


def test_host_key_and_prefix_as_nsqd_new_makes_them() -> None:
    assert host_key("a.b.c:4151") == "a_b_c_4151"
    assert statsd_prefix("nsq.%s", "test.host", 4151) == "nsq.test_host_4151."
    assert statsd_prefix("nsq.%s.x.%s", "h", 1) == "nsq.h_1.x.h_1."
    assert statsd_prefix("nsq.", "h", 1) == "nsq."
    assert statsd_prefix("plain", "h", 1) == "plain."
    assert statsd_prefix("", "h", 1) == ""
    assert statsd_prefix("%s", "::1", 4151) == "[__1]_4151."  # net.JoinHostPort brackets IPv6


def test_pack_never_splits_a_line_and_keeps_packets_within_the_size() -> None:
    lines = [f"nsq.h.topic.t{i}.depth:{i}|g\n".encode() for i in range(100)]
    packets = pack(lines, 64)
    assert b"".join(packets) == b"".join(lines)
    assert all(len(p) <= 64 and p.endswith(b"\n") for p in packets)
    # each packet is full: the next line would not have fitted
    for p, nxt in itertools.pairwise(packets):
        assert len(p) + len(nxt.split(b"\n")[0]) + 1 > 64
    assert pack([b"x" * 10 + b"\n", b"y" * 100 + b"\n", b"z\n"], 20) == [b"x" * 10 + b"\n", b"y" * 100 + b"\n", b"z\n"]
    assert pack([b"a\n", b"b\n"], 4) == [b"a\nb\n"]  # a line that exactly fills what is left still goes in


def test_a_push_sends_nsqds_keys_and_types_with_counters_as_deltas() -> None:
    node = Node(statsd_interval=10.0)
    assert node.nsqd.opts.statsd_prefix == "nsq.test_host_4151."
    assert node.http("/config/statsd_prefix").body == b"nsq.test_host_4151."
    consumer = node.tcp()
    consumer.send(b"SUB t c\nRDY 10\n")
    producer = node.tcp()
    for body in (b"a", b"bb", b"ccc"):
        producer.send(v2.encode_pub("t", body))
    node.clock.advance(19.0)  # the push at 10 s, spread over the 9 s after it
    assert ("INFO", "STATSD: pushing stats to 127.0.0.1:8125") in node.logger.lines
    got = values(node.datagrams.lines())
    p = "nsq.test_host_4151."
    assert got == {
        f"{p}topic.t.message_count": "3|c",
        f"{p}topic.t.message_bytes": "6|c",
        f"{p}topic.t.depth": "0|g",
        f"{p}topic.t.backend_depth": "0|g",
        f"{p}topic.t.channel.c.message_count": "3|c",
        f"{p}topic.t.channel.c.depth": "0|g",
        f"{p}topic.t.channel.c.backend_depth": "0|g",
        f"{p}topic.t.channel.c.in_flight_count": "3|g",
        f"{p}topic.t.channel.c.deferred_count": "0|g",
        f"{p}topic.t.channel.c.requeue_count": "0|c",
        f"{p}topic.t.channel.c.timeout_count": "0|c",
        f"{p}topic.t.channel.c.clients": "1|g",
    }
    assert all(host == "127.0.0.1" and port == 8125 for _, host, port, _ in node.datagrams.sent)
    node.datagrams.sent.clear()
    producer.send(v2.encode_pub("t", b"dddd"))
    node.clock.advance(10.0)  # the push at 20 s and its spread
    got = values(node.datagrams.lines())
    assert got[f"{p}topic.t.message_count"] == "1|c"
    assert got[f"{p}topic.t.message_bytes"] == "4|c"
    assert got[f"{p}topic.t.channel.c.message_count"] == "1|c"
    assert got[f"{p}topic.t.channel.c.in_flight_count"] == "4|g"


def test_datagrams_are_spread_over_the_interval_less_a_second() -> None:
    node = Node(statsd_interval=11.0, statsd_udp_packet_size=100)
    for i in range(10):
        node.nsqd.get_topic(f"topic{i}")
    node.clock.advance(21.0)
    sent = node.datagrams.sent
    n = len(sent)
    assert n > 3
    assert all(len(data) <= 100 for _, _, _, data in sent)
    start = sent[0][0]
    assert start == 1011.0
    for i, (at, _, _, _) in enumerate(sent):
        assert abs(at - (start + i * 10.0 / n)) < 1e-9


def test_ephemeral_topics_and_channels_left_out_on_request() -> None:
    node = Node(statsd_interval=5.0, statsd_exclude_ephemeral=True)
    node.nsqd.get_topic("eph#ephemeral")
    node.nsqd.get_topic("t").get_channel("c#ephemeral")
    node.nsqd.get_topic("t").get_channel("d")
    node.clock.advance(5.0)
    keys = "".join(node.datagrams.lines())
    assert "ephemeral" not in keys and ".channel.d." in keys


def test_mem_stats_from_the_runtime_with_gc_runs_as_a_delta() -> None:
    node = Node(statsd_interval=5.0, statsd_mem_stats=True, statsd_prefix="")
    runs = iter([40, 45])
    node.nsqd.memory_stats = lambda: {"heap_objects": 123, "gc_total_runs": next(runs)}
    node.clock.advance(5.0)
    got = values(node.datagrams.lines())
    assert got["mem.heap_objects"] == "123|g" and got["mem.next_gc_bytes"] == "0|g"
    assert got["mem.gc_runs"] == "40|c"
    node.datagrams.sent.clear()
    node.clock.advance(5.0)
    assert values(node.datagrams.lines())["mem.gc_runs"] == "5|c"


def test_a_bad_address_logs_nsqds_error_and_skips_the_push() -> None:
    node = Node(statsd_interval=5.0, statsd_address="nohostport")
    node.clock.advance(5.0)
    assert ("ERROR", "failed to create UDP socket to statsd(nohostport)") in node.logger.lines
    assert node.datagrams.sent == []


def test_close_stops_the_loop_and_sends_what_was_still_to_spread() -> None:
    node = Node(statsd_interval=60.0, statsd_udp_packet_size=64)
    for i in range(5):
        node.nsqd.get_topic(f"topic{i}")
    node.clock.advance(60.0)
    first = len(node.datagrams.sent)
    node.nsqd.close()
    assert ("INFO", "STATSD: closing") in node.logger.lines
    total = len(node.datagrams.sent)
    assert total > first
    node.clock.advance(600.0)
    assert len(node.datagrams.sent) == total
