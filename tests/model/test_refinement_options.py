"""The broker refines the specification with the options beyond nsqd on: seeded runs.

Max attempts with a dead-letter topic, and a message TTL, in each mode
(``tests/model/bridge.py`` sets them on the broker's channels and topic as
they are created, and compares dead letters and expirations after every
step).  The hypothesis machine (``test_refinement.py``) rarely gets a message
delivered and answered by the consumer holding it often enough to spend its
attempts, so these runs pick their actions with weights that do: mostly
publishes, deliveries answered by their holder (REQ above all), time passing;
now and then an fsync, a crash, a clean restart or an operator.  A failing
run names its seed and prints what it did.
"""

from __future__ import annotations

import random

import pytest

from model.state import Mode
from tests.model.bridge import Pair

STEPS = 80
MAX_MESSAGES = 6


def drive(p: Pair, rng: random.Random, steps: int) -> list[str]:
    """``steps`` actions on ``p``; what each did, in order (an AssertionError says where they differ)."""
    done: list[str] = []
    nk, nc = len(p.cfg.consumers), len(p.cfg.channels)
    try:
        for _ in range(steps):
            held = p.in_flight()
            away = [k for k in range(nk) if not p.connected(k)]
            roll = rng.random()
            if away and (roll < 0.15 or len(away) == nk):
                done.append(p.subscribe(rng.choice(away)))
            elif roll < 0.3 and p.published() < MAX_MESSAGES:
                done.append(p.publish(rng.choice([0, 0, 2])))
            elif roll < 0.55 and held:
                k, m = rng.choice(held)
                done.append(p.req(k, m, rng.choice([0, 2])))
            elif roll < 0.65 and held:
                k, m = rng.choice(held)
                done.append(p.fin(k, m) if rng.random() < 0.7 else p.touch(k, m))
            elif roll < 0.85:
                done.append(p.advance())
            elif roll < 0.9:
                done.append(p.fsync(rng.randrange(nc + 1)))
            elif roll < 0.94:
                done.append(p.crash(power=rng.random() < 0.5, seed=rng.randrange(2**16)))
            elif roll < 0.97:
                done.append(p.restart())
            else:
                c = rng.randrange(nc)
                if p.channel_exists(c):
                    done.append(rng.choice([p.empty, p.delete, p.pause if not p.paused(c) else p.unpause])(c))
    except AssertionError as exc:
        raise AssertionError("\n".join([*done, f"then: {exc}"])) from None
    return done


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize(("max_attempts", "ttl"), [(1, 0), (2, 0), (0, 3), (2, 4)], ids=["attempts1", "attempts2", "ttl3", "both"])
def test_the_broker_refines_the_model_with_dead_letters_and_ttl(mode: Mode, max_attempts: int, ttl: int, seed: int) -> None:
    p = Pair(mode, max_attempts=max_attempts, ttl=ttl)
    drive(p, random.Random(seed), STEPS)
