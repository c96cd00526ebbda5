"""Seeded randomness: one root generator per run, one derived stream per component.

Every component (the network, each disk, the nemesis, each producer and
consumer, each nsqd's ``Random`` port) draws from its own ``random.Random``,
derived from the run's seed and the component's name.  Streams are derived by
name rather than handed out in construction order, so that adding a producer
to a configuration does not change what the network draws: a seed keeps
meaning the same faults as far as that is possible.
"""

from __future__ import annotations

import hashlib
import random

__all__ = ["SeedTree"]


class SeedTree:
    """The root generator of a run and the streams derived from it."""

    __slots__ = ("_material", "root", "seed")

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.root = random.Random(seed)
        # Drawn once from the root, so every stream depends on the root generator.
        self._material = self.root.getrandbits(128).to_bytes(16, "big")

    def stream(self, name: str) -> random.Random:
        """A generator for the component called ``name``: the same for the same seed and name."""
        digest = hashlib.sha256(self._material + name.encode()).digest()
        return random.Random(int.from_bytes(digest[:16], "big"))
