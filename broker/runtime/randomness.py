"""The Random port for the daemon: one ``random.Random``, seeded on request.

Each instance owns its generator, so two brokers in one process never share a
stream, and a seed given on construction replays the same choices.
"""

from __future__ import annotations

import random

__all__ = ["RuntimeRandom"]


class RuntimeRandom:
    __slots__ = ("_rng",)

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)

    def random(self) -> float:
        return self._rng.random()

    def randrange(self, n: int) -> int:
        return self._rng.randrange(n)
