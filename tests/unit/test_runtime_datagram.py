"""The asyncio DatagramSender (real UDP on 127.0.0.1) and the runtime's memory figures."""

from __future__ import annotations

import asyncio
import gc
import socket

from broker.runtime.datagram import AsyncioDatagramSender
from broker.runtime.memstats import GCPauses, ProcessMemoryStats, go_percentile


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self, want: int) -> None:
        self.got: list[bytes] = []
        self.want = want
        self.done = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.got.append(data)
        if len(self.got) >= self.want and not self.done.done():
            self.done.set_result(None)


def test_datagrams_to_an_ip_and_to_a_name_arrive_in_order() -> None:
    async def main() -> list[bytes]:
        loop = asyncio.get_running_loop()
        transport, receiver = await loop.create_datagram_endpoint(
            lambda: _Receiver(4), local_addr=("127.0.0.1", 0), family=socket.AF_INET
        )
        port = transport.get_extra_info("sockname")[1]
        sender = AsyncioDatagramSender(loop)
        try:
            sender.send_to("127.0.0.1", port, b"one")
            sender.send_to("127.0.0.1", port, b"two")
            sender.send_to("localhost", port, b"three")
            sender.send_to("localhost", port, b"four")
            sender.send_to("no-such-host.invalid", port, b"lost")  # lost, never raised
            await asyncio.wait_for(receiver.done, 30.0)
            return receiver.got
        finally:
            sender.close()
            transport.close()

    got = asyncio.run(main())
    assert got[:2] == [b"one", b"two"]
    assert sorted(got) == sorted([b"one", b"two", b"three", b"four"]) and got.index(b"three") < got.index(b"four")


def test_go_percentile_is_nsqds() -> None:
    assert go_percentile(99.0, []) == 0
    values = list(range(10))
    assert go_percentile(100.0, values) == 9  # index clamped to n-1
    assert go_percentile(95.0, values) == 9  # floor(9.5 + 0.5) = 10 -> 9
    assert go_percentile(50.0, values) == 5  # floor(5.5) = 5
    assert go_percentile(0.0, values) == 0


def test_gc_pauses_are_timed_and_mapped() -> None:
    pauses = GCPauses(kept=4)
    pauses.install()
    try:
        for _ in range(6):
            gc.collect()
    finally:
        pauses.uninstall()
    assert len(pauses.pauses) == 4 and all(p > 0 for p in pauses.pauses)
    figures = ProcessMemoryStats(pauses)()
    assert figures["gc_pause_usec_100"] == max(pauses.pauses) // 1000
    assert figures["gc_total_runs"] >= 6 and figures["heap_objects"] > 0 and figures["heap_in_use_bytes"] > 0
