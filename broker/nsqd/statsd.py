"""nsqd's statsd push: every ``--statsd-interval``, the node's figures as statsd lines over UDP.

This follows nsqd 1.3.0's ``statsdLoop`` (``nsqd/statsd.go``) and the writers
it stacks (``internal/statsd``, ``internal/writers``), so that a statsd or
graphite set up for a Go nsqd sees the same keys, types and packets:

* Keys are ``<prefix><stat>``.  The prefix is ``--statsd-prefix`` with every
  ``%s`` replaced by the node's ``broadcast-address:broadcast-http-port`` with
  ``.`` and ``:`` turned into ``_`` (``nsq.%s`` on host ``a.b`` port 4151 gives
  ``nsq.a_b_4151.``), and a ``.`` appended unless it ends in one; an empty
  prefix stays empty.  nsqd stores the result back into its options, so
  ``GET /config/statsd_prefix`` shows it substituted; so does this node.
* Lines are ``<key>:<value>|g`` for gauges (depths, in-flight and deferred
  counts, clients, e2e percentiles, memory) and ``<key>:<value>|c`` for
  counters, whose value is the change since the previous push (a topic or
  channel not seen at the previous push counts from zero, and nsqd's unsigned
  subtraction cast to int64 is the signed difference).  ``STATSD_METRICS``
  lists them.
* Packing: lines are gathered in a buffer of ``--statsd-udp-packet-size``
  bytes; a line that does not fit in what is left sends the buffer as one
  datagram first, and a line longer than the whole buffer goes out alone, in a
  datagram of its own (Go's ``bufio.Writer`` writes such a line straight
  through).  A datagram never splits a line.
* Spreading: the datagrams of one push are spread evenly over the interval
  less one second, the first at once (nsqd's ``SpreadWriter``).  With an
  interval of one second or less nsqd's ticker panics; here they all go at once.

Each push first checks ``--statsd-address``: one that is not ``host:port``
logs nsqd's ``failed to create UDP socket to statsd(...)`` and skips the push
(and, as in nsqd, the counters then cover two intervals at the next one).  A
host that does not resolve is the datagram port's business: its datagrams are
lost, as UDP's are.

Memory figures (``--statsd-mem-stats``) come from ``nsqd.memory_stats`` as in
``/stats``; ``docs/metrics.md`` lists how each of Go's maps to this process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from broker.nsqd.stats import StatsQuery, stats_json
from broker.ports import DatagramSender, Timer
from broker.wire.gojson import JSONValue

if TYPE_CHECKING:
    from broker.nsqd.nsqd import NSQD

__all__ = ["STATSD_METRICS", "StatsdPusher", "host_key", "pack", "statsd_prefix"]

# Every stat nsqd's statsdLoop sends: (name pattern, type).  ``<topic>`` and
# ``<channel>`` are the names, ``<NN>`` a percentile (quantile * 100, "%.0f").
STATSD_METRICS: tuple[tuple[str, str], ...] = (
    ("topic.<topic>.message_count", "c"),
    ("topic.<topic>.message_bytes", "c"),
    ("topic.<topic>.depth", "g"),
    ("topic.<topic>.backend_depth", "g"),
    ("topic.<topic>.e2e_processing_latency_<NN>", "g"),
    ("topic.<topic>.channel.<channel>.message_count", "c"),
    ("topic.<topic>.channel.<channel>.depth", "g"),
    ("topic.<topic>.channel.<channel>.backend_depth", "g"),
    ("topic.<topic>.channel.<channel>.in_flight_count", "g"),
    ("topic.<topic>.channel.<channel>.deferred_count", "g"),
    ("topic.<topic>.channel.<channel>.requeue_count", "c"),
    ("topic.<topic>.channel.<channel>.timeout_count", "c"),
    ("topic.<topic>.channel.<channel>.clients", "g"),
    ("topic.<topic>.channel.<channel>.e2e_processing_latency_<NN>", "g"),
    ("mem.heap_objects", "g"),
    ("mem.heap_idle_bytes", "g"),
    ("mem.heap_in_use_bytes", "g"),
    ("mem.heap_released_bytes", "g"),
    ("mem.gc_pause_usec_100", "g"),
    ("mem.gc_pause_usec_99", "g"),
    ("mem.gc_pause_usec_95", "g"),
    ("mem.next_gc_bytes", "g"),
    ("mem.gc_runs", "c"),
)

_MEM_GAUGES = (
    "heap_objects",
    "heap_idle_bytes",
    "heap_in_use_bytes",
    "heap_released_bytes",
    "gc_pause_usec_100",
    "gc_pause_usec_99",
    "gc_pause_usec_95",
    "next_gc_bytes",
)

# The counters of one push, to take the next push's differences from:
# topic -> (message_count, message_bytes, channel -> (message_count, requeue_count, timeout_count)).
_Last = dict[str, tuple[int, int, dict[str, tuple[int, int, int]]]]


def host_key(host_port: str) -> str:
    """nsqd's ``statsd.HostKey``: ``.`` and ``:`` become ``_``."""
    return host_port.replace(".", "_").replace(":", "_")


def statsd_prefix(prefix: str, broadcast_address: str, http_port: int) -> str:
    """``--statsd-prefix`` as ``nsqd.New`` rewrites it (see the module doc)."""
    if not prefix:
        return prefix
    host = f"[{broadcast_address}]" if ":" in broadcast_address else broadcast_address  # net.JoinHostPort
    out = prefix.replace("%s", host_key(f"{host}:{http_port}"))
    return out if out.endswith(".") else out + "."


def pack(lines: list[bytes], packet_size: int) -> list[bytes]:
    """The datagrams nsqd's ``BoundaryBufferedWriter`` makes of ``lines`` (see the module doc)."""
    packets: list[bytes] = []
    buf = bytearray()
    for line in lines:
        if len(line) > packet_size - len(buf) and buf:
            packets.append(bytes(buf))
            buf.clear()
        if len(line) > packet_size:
            packets.append(line)  # bufio's large write: straight through, in one piece
        else:
            buf += line
    if buf:
        packets.append(bytes(buf))
    return packets


class StatsdPusher:
    """The statsd loop of one node: armed by ``start``, stopped by ``close``."""

    def __init__(self, nsqd: NSQD, sender: DatagramSender) -> None:
        self._nsqd = nsqd
        self._sender = sender
        self._timer: Timer | None = None
        self._sends: dict[int, tuple[Timer, Callable[[], None]]] = {}  # datagrams still to spread
        self._send_seq = 0
        self._next_at = 0.0
        self._last: _Last = {}
        self._last_gc_runs = 0
        self.closed = False

    def start(self) -> None:
        clock = self._nsqd.clock
        self._next_at = clock.now() + self._nsqd.opts.statsd_interval
        self._timer = clock.call_later(self._nsqd.opts.statsd_interval, self._tick)

    def close(self) -> None:
        """nsqd's exit: no more pushes; datagrams of a push still being spread go at once."""
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending = [self._sends[seq] for seq in sorted(self._sends)]
        self._sends.clear()
        for timer, send in pending:
            timer.cancel()
            send()
        self._nsqd.log("INFO", "STATSD: closing")

    # -- one push -------------------------------------------------------------------

    def _tick(self) -> None:
        if self.closed:
            return
        nsqd = self._nsqd
        interval = nsqd.opts.statsd_interval
        # a ticker: pushes stay on the grid start + k * interval
        self._next_at += interval
        self._timer = nsqd.clock.call_later(self._next_at - nsqd.clock.now(), self._tick)
        self.push()

    def push(self) -> None:
        """One push: compute the lines, pack them, send them spread over the interval."""
        nsqd = self._nsqd
        opts = nsqd.opts
        addr = opts.statsd_address
        target = _split_host_port(addr)
        if target is None:
            nsqd.log("ERROR", f"failed to create UDP socket to statsd({addr})")
            return
        nsqd.log("INFO", f"STATSD: pushing stats to {addr}")
        lines = self.lines()
        packets = pack(lines, opts.statsd_udp_packet_size)
        if not packets:
            return
        host, port = target
        spread = (opts.statsd_interval - 1.0) / len(packets)
        self._sender.send_to(host, port, packets[0])
        if spread <= 0:
            for packet in packets[1:]:
                self._sender.send_to(host, port, packet)
            return
        for i, packet in enumerate(packets[1:], start=1):
            self._schedule_send(i * spread, host, port, packet)

    def lines(self) -> list[bytes]:
        """The lines of one push, in nsqd's order; remembers the counters for the next."""
        nsqd = self._nsqd
        opts = nsqd.opts
        prefix = opts.statsd_prefix
        exclude_ephemeral = opts.statsd_exclude_ephemeral
        out: list[bytes] = []

        def counter(stat: str, value: int) -> None:
            out.append(f"{prefix}{stat}:{value}|c\n".encode("utf-8", "surrogateescape"))

        def gauge(stat: str, value: int) -> None:
            out.append(f"{prefix}{stat}:{value}|g\n".encode("utf-8", "surrogateescape"))

        stats = stats_json(nsqd, StatsQuery(include_clients=False, include_mem=False))
        topics = stats["topics"]
        last: _Last = {}
        for t in topics if isinstance(topics, list) else []:
            assert isinstance(t, dict)
            name = str(t["topic_name"])
            if exclude_ephemeral and name.endswith("#ephemeral"):
                continue
            prev_msgs, prev_bytes, prev_channels = self._last.get(name, (0, 0, {}))
            msgs, nbytes = _int(t["message_count"]), _int(t["message_bytes"])
            counter(f"topic.{name}.message_count", msgs - prev_msgs)
            counter(f"topic.{name}.message_bytes", nbytes - prev_bytes)
            gauge(f"topic.{name}.depth", _int(t["depth"]))
            gauge(f"topic.{name}.backend_depth", _int(t["backend_depth"]))
            for q, v in _percentiles(t["e2e_processing_latency"]):
                gauge(f"topic.{name}.e2e_processing_latency_{q * 100.0:.0f}", int(v))
            channels: dict[str, tuple[int, int, int]] = {}
            last[name] = (msgs, nbytes, channels)
            chans = t["channels"]
            for c in chans if isinstance(chans, list) else []:
                assert isinstance(c, dict)
                cname = str(c["channel_name"])
                if exclude_ephemeral and cname.endswith("#ephemeral"):
                    continue
                stem = f"topic.{name}.channel.{cname}"
                p_msgs, p_requeue, p_timeout = prev_channels.get(cname, (0, 0, 0))
                c_msgs, requeue, timeout = _int(c["message_count"]), _int(c["requeue_count"]), _int(c["timeout_count"])
                counter(f"{stem}.message_count", c_msgs - p_msgs)
                gauge(f"{stem}.depth", _int(c["depth"]))
                gauge(f"{stem}.backend_depth", _int(c["backend_depth"]))
                gauge(f"{stem}.in_flight_count", _int(c["in_flight_count"]))
                gauge(f"{stem}.deferred_count", _int(c["deferred_count"]))
                counter(f"{stem}.requeue_count", requeue - p_requeue)
                counter(f"{stem}.timeout_count", timeout - p_timeout)
                gauge(f"{stem}.clients", _int(c["client_count"]))
                for q, v in _percentiles(c["e2e_processing_latency"]):
                    gauge(f"{stem}.e2e_processing_latency_{q * 100.0:.0f}", int(v))
                channels[cname] = (c_msgs, requeue, timeout)
        self._last = last

        if opts.statsd_mem_stats:
            source: Callable[[], Mapping[str, int]] | None = nsqd.memory_stats
            figures: Mapping[str, int] = source() if source is not None else {}
            for key in _MEM_GAUGES:
                gauge(f"mem.{key}", int(figures.get(key, 0)))
            runs = int(figures.get("gc_total_runs", 0))
            counter("mem.gc_runs", runs - self._last_gc_runs)
            self._last_gc_runs = runs
        return out

    # -- spreading --------------------------------------------------------------------

    def _schedule_send(self, delay: float, host: str, port: int, packet: bytes) -> None:
        self._send_seq += 1
        seq = self._send_seq

        def send() -> None:
            self._sends.pop(seq, None)
            self._sender.send_to(host, port, packet)

        self._sends[seq] = (self._nsqd.clock.call_later(delay, send), send)


def _int(value: JSONValue) -> int:
    return value if isinstance(value, int) else 0


def _percentiles(e2e: JSONValue) -> list[tuple[float, float]]:
    """(quantile, value) of an ``e2e_processing_latency`` object, in its order."""
    if not isinstance(e2e, dict):
        return []
    items = e2e.get("percentiles")
    out: list[tuple[float, float]] = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            q, v = item.get("quantile"), item.get("value")
            if isinstance(q, int | float) and isinstance(v, int | float):
                out.append((float(q), float(v)))
    return out


def _split_host_port(addr: str) -> tuple[str, int] | None:
    """(host, port) of ``--statsd-address``, or None where Go's UDP dial fails to parse it."""
    host, sep, port = addr.rpartition(":")
    if not sep:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        return None
    if not (port.isascii() and port.isdigit()) or int(port) > 65535:
        return None
    return host, int(port)
