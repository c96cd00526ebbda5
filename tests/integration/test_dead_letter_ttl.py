"""Dead letters and TTL (beyond nsqd) seen by pynsq, a third-party client, against the real daemon."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

import pytest

from broker.nsqd.deadletter import decode_envelope
from tests.integration.conftest import Daemon
from tests.integration.test_pynsq import BOUND, Publisher, Received, reader, run

pytestmark = pytest.mark.integration


def http(daemon: Daemon, method: str, target: str) -> Any:
    host, port = daemon.http_address
    req = urllib.request.Request(f"http://{host}:{port}{target}", method=method)
    with urllib.request.urlopen(req, timeout=BOUND) as resp:
        body = resp.read()
    return json.loads(body) if body.startswith(b"{") else body


def channel_stats(daemon: Daemon, topic: str, channel: str) -> dict[str, Any]:
    doc = http(daemon, "GET", f"/stats?format=json&topic={topic}&channel={channel}")
    stats: dict[str, Any] = doc["topics"][0]["channels"][0]
    return stats


async def stats_until(daemon: Daemon, topic: str, channel: str, key: str, value: int) -> dict[str, Any]:
    """Poll /stats (off the event loop) until ``key`` reaches ``value``, under the bound."""

    async def poll() -> dict[str, Any]:
        while True:
            got = await asyncio.to_thread(channel_stats, daemon, topic, channel)
            if got.get(key) == value:
                return got
            await asyncio.sleep(0.05)

    return await asyncio.wait_for(poll(), BOUND)


def test_a_message_requeued_max_attempts_times_reaches_the_dead_letter_topic(nsqd: Daemon) -> None:
    http(nsqd, "POST", "/topic/create?topic=orders")
    http(nsqd, "POST", "/channel/create?topic=orders&channel=billing&max_attempts=3&dead_letter_topic=orders-dead")

    async def main() -> None:
        changed = asyncio.Event()  # either reader's progress wakes the wait
        tries = Received(changed)
        dead = Received(changed)

        def always_fails(m: Any) -> None:
            tries.add(m)
            m.enable_async()
            m.requeue(delay=0, backoff=False)

        r = reader(nsqd, "orders", "billing", always_fails)
        d = reader(nsqd, "orders-dead", "inspect", dead.finish)
        await Publisher(nsqd).pub("orders", b"order 42")
        await dead.until(lambda items: len(items) >= 1)
        r.close()
        d.close()
        assert [(b, a) for b, a, _, _ in tries.items] == [(b"order 42", 1), (b"order 42", 2), (b"order 42", 3)]
        letter = decode_envelope(dead.items[0][0])
        assert (letter.topic, letter.channel, letter.attempts, letter.reason, letter.body) == ("orders", "billing", 3, "requeued", b"order 42")
        assert letter.id == tries.items[0][2]

    run(main())
    stats = channel_stats(nsqd, "orders", "billing")
    assert (stats["dead_lettered_count"], stats["depth"], stats["in_flight_count"]) == (1, 0, 0)


def test_a_message_past_its_ttl_is_never_delivered(nsqd: Daemon) -> None:
    http(nsqd, "POST", "/topic/create?topic=quotes&ttl=300ms")

    async def main() -> None:
        got = Received()
        r = reader(nsqd, "quotes", "screen", got.finish)
        pub = Publisher(nsqd)
        await pub.pub("quotes", b"warm-up")  # the reader is connected once this arrives
        await got.until(lambda items: len(items) >= 1)
        await pub.dpub("quotes", 600, b"stale by the time it is due")
        await pub.pub("quotes", b"fresh")
        await stats_until(nsqd, "quotes", "screen", "expired_count", 1)
        await got.until(lambda items: len(items) >= 2)
        r.close()
        assert got.bodies() == [b"warm-up", b"fresh"]

    run(main())
    stats = channel_stats(nsqd, "quotes", "screen")
    assert (stats["expired_count"], stats["depth"], stats["deferred_count"]) == (1, 0, 0)
