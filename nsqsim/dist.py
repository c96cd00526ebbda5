"""Distributions of durations (link latency, handler time, fault lengths), as data.

A ``Dist`` is written in a configuration as a table (``{kind = "uniform",
low = 0.001, high = 0.005}``) or a bare number (a fixed value), and sampled
with a component's own generator.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

__all__ = ["Dist", "DistKind"]

_exp = math.exp
_log = math.log

DistKind = Literal["fixed", "uniform", "exponential", "lognormal"]


@dataclass(frozen=True, slots=True)
class Dist:
    """``fixed``: ``low``; ``uniform``: in [low, high]; ``exponential``: ``low`` plus an
    exponential of mean ``mean``; ``lognormal``: median ``mean``, shape ``sigma``,
    never below ``low``.  ``cap`` bounds every sample."""

    kind: DistKind = "fixed"
    low: float = 0.0
    high: float = 0.0
    mean: float = 0.0
    sigma: float = 0.5
    cap: float = math.inf

    def __post_init__(self) -> None:
        if self.kind not in ("fixed", "uniform", "exponential", "lognormal"):
            raise ValueError(f"unknown distribution {self.kind!r}")
        if self.low < 0 or self.high < 0 or self.mean < 0 or self.sigma < 0:
            raise ValueError(f"negative parameter in {self}")
        if self.kind == "uniform" and self.high < self.low:
            raise ValueError(f"uniform distribution with high < low: {self}")

    @staticmethod
    def fixed(value: float) -> Dist:
        return Dist("fixed", low=value)

    @staticmethod
    def parse(spec: object) -> Dist:
        """A ``Dist`` from a number or a TOML table."""
        if isinstance(spec, Dist):
            return spec
        if isinstance(spec, bool):
            raise ValueError(f"not a distribution: {spec!r}")
        if isinstance(spec, int | float):
            return Dist.fixed(float(spec))
        if isinstance(spec, dict):
            known = {"kind", "low", "high", "mean", "sigma", "cap"}
            unknown = sorted(set(spec) - known)
            if unknown:
                raise ValueError(f"unknown distribution keys {unknown}")
            kind = spec.get("kind", "fixed")
            nums = {k: float(v) for k, v in spec.items() if k != "kind"}
            return Dist(kind, **nums)
        raise ValueError(f"not a distribution: {spec!r}")

    def sample(self, rng: random.Random) -> float:
        # Most used first: network latency is drawn once per packet.
        kind = self.kind
        if kind == "lognormal":
            if self.mean > 0:
                value = _exp(_normal_quantile(_log(self.mean), self.sigma)(rng.random() or 0.5))
                if value < self.low:
                    value = self.low
            else:
                value = self.low
        elif kind == "uniform":
            value = self.low + (self.high - self.low) * rng.random()
        elif kind == "exponential":
            value = self.low + (rng.expovariate(1.0 / self.mean) if self.mean > 0 else 0.0)
        else:
            value = self.low
        return value if value < self.cap else self.cap

    def sampler(self, rng: random.Random) -> Callable[[], float]:
        """``sample`` bound to ``rng``, specialised to this kind: for the per-packet and per-message draws.

        Draws the same values as ``sample(rng)`` would, one for one.
        """
        low, high, cap, mean = self.low, self.high, self.cap, self.mean
        kind = self.kind
        if kind == "lognormal" and mean > 0:
            uniform, quantile = rng.random, _normal_quantile(_log(mean), self.sigma)

            def lognormal() -> float:
                value = _exp(quantile(uniform() or 0.5))
                if value < low:
                    value = low
                return value if value < cap else cap

            return lognormal
        if kind == "uniform":
            uniform, span = rng.random, high - low

            def draw_uniform() -> float:
                value = low + span * uniform()
                return value if value < cap else cap

            return draw_uniform
        if kind == "exponential" and mean > 0:
            expovariate, rate = rng.expovariate, 1.0 / mean

            def exponential() -> float:
                value = low + expovariate(rate)
                return value if value < cap else cap

            return exponential
        fixed = low if low < cap else cap
        return lambda: fixed

    def scaled(self, factor: float) -> Dist:
        """The same shape, every duration ``factor`` times longer (a slow link)."""
        return Dist(self.kind, self.low * factor, self.high * factor, self.mean * factor, self.sigma, self.cap * factor)


def _normal_quantile(mu: float, sigma: float) -> Callable[[float], float]:
    """The quantile function of a normal distribution, for drawing by inversion.

    One uniform draw and the standard library's C quantile cost a quarter of
    ``random.gauss`` (a latency is drawn per packet).  The caller maps a draw
    of exactly 0.0 (chance 2**-53) to 0.5, as the quantile of 0 is -inf.
    """
    if sigma <= 0:
        return lambda _u: mu
    return NormalDist(mu, sigma).inv_cdf
