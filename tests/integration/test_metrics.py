"""The real daemon's /metrics scraped and parsed by prometheus_client, and its e2e percentiles in /stats."""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from broker.wire import v2
from tests.integration.conftest import Daemon

pytestmark = pytest.mark.integration

IO_BOUND = 30.0  # seconds one socket read may wait before the test fails


def get(daemon: Daemon, path: str) -> tuple[str, bytes]:
    host, port = daemon.http_address
    with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=IO_BOUND) as r:
        return r.headers["Content-Type"], r.read()


def consume_and_finish(daemon: Daemon, topic: str, count: int) -> None:
    """Publish ``count`` messages over HTTP, receive them on a V2 connection and FIN each."""
    host, port = daemon.http_address
    for i in range(count):
        req = urllib.request.Request(f"http://{host}:{port}/pub?topic={topic}", data=b"m%d" % i, method="POST")
        with urllib.request.urlopen(req, timeout=IO_BOUND):
            pass
    with socket.create_connection(daemon.tcp_address, timeout=IO_BOUND) as sock:
        sock.sendall(v2.MAGIC_V2 + f"SUB {topic} c\nRDY {count}\n".encode())
        frames = v2.FrameParser()
        got = 0
        fin_failed = False
        while not fin_failed:
            data = sock.recv(65536)
            assert data, "nsqd closed the connection"
            frames.feed(data)
            while (frame := frames.next_frame()) is not None:
                kind, payload = frame
                if kind == v2.FRAME_MESSAGE:
                    sock.sendall(b"FIN " + v2.decode_message(payload)[2] + b"\n")
                    got += 1
                    if got == count:
                        # an answered FIN of an unknown id: every FIN before it has been handled
                        sock.sendall(b"FIN " + b"0" * 16 + b"\n")
                elif kind == v2.FRAME_ERROR:
                    assert payload.startswith(b"E_FIN_FAILED"), payload
                    fin_failed = True


def test_metrics_parse_and_carry_stats_process_and_e2e(nsqd_factory: Callable[..., Daemon]) -> None:
    daemon = nsqd_factory("--e2e-processing-latency-percentile=0.99,0.5", "--e2e-processing-latency-percentile=1.0")
    consume_and_finish(daemon, "scraped", 5)
    _, body = get(daemon, "/stats?format=json")
    doc: Any = json.loads(body)
    [topic] = doc["topics"]
    e2e = topic["channels"][0]["e2e_processing_latency"]
    assert [p["quantile"] for p in e2e["percentiles"]] == [1, 0.99, 0.5]  # Go's FloatArray sorts them, largest first
    assert e2e["count"] == 5 and all(p["value"] > 0 for p in e2e["percentiles"])
    assert topic["e2e_processing_latency"]["count"] == 5

    content_type, body = get(daemon, "/metrics")
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert families["nsq_topic_messages"].type == "counter"
    [sample] = families["nsq_topic_messages"].samples
    assert (sample.name, sample.labels, sample.value) == ("nsq_topic_messages_total", {"topic": "scraped"}, 5.0)
    quantiles = {s.labels["quantile"] for s in families["nsq_channel_e2e_processing_latency_seconds"].samples}
    assert quantiles == {"0.99", "0.5", "1"}
    for name in ("process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds", "nsq_memory_heap_in_use_bytes"):
        assert families[name].samples[0].value > 0, name
