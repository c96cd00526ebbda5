"""The DatagramSender port in the simulator: datagrams are recorded, not delivered.

Nothing in a simulated cluster listens for UDP (statsd is outside NSQ's
guarantees), so each datagram an nsqd process sends is appended, with the
simulated time and both ends, to a list its node keeps across restarts.  A
process whose life has ended sends nothing, as a killed process cannot.
"""

from __future__ import annotations

from dataclasses import dataclass

from nsqsim.clock import Life, SimClock

__all__ = ["SentDatagram", "SimDatagramSender"]


@dataclass(frozen=True, slots=True)
class SentDatagram:
    at: float  # simulated seconds
    src: str  # the sending host
    host: str
    port: int
    data: bytes


class SimDatagramSender:
    __slots__ = ("_clock", "_life", "_src", "sent")

    def __init__(self, src: str, clock: SimClock, life: Life, sent: list[SentDatagram]) -> None:
        self._src = src
        self._clock = clock
        self._life = life
        self.sent = sent

    def send_to(self, host: str, port: int, data: bytes) -> None:
        if self._life.alive:
            self.sent.append(SentDatagram(self._clock.now(), self._src, host, port, bytes(data)))
