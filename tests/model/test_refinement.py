"""The broker core refines the specification: a hypothesis state machine drives both.

Every rule is one action on the broker (through fake ports and the in-memory
file system) and on the model (``tests/model/bridge.py`` compares what each
shows after every step).  Message ids live in a Bundle; rules that need a
connected consumer or an existing channel say so with ``@precondition``.
Every counterexample found is pinned in ``test_refinement_regressions.py``.

``Refinement`` runs nsqd as nsqd; ``RefinementBeyondNsqd`` runs the same rules
with the options beyond it turned on (max attempts with a dead-letter topic,
a message TTL), in each mode.
"""

from __future__ import annotations

from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, precondition, rule

from model.state import Mode
from tests.model.bridge import Pair

N_CONSUMERS = 3  # k0 and k1 share channel a, k2 reads b
N_CHANNELS = 2
MAX_MESSAGES = 5

consumers = st.integers(0, N_CONSUMERS - 1)
channels = st.integers(0, N_CHANNELS - 1)


class _Rules(RuleBasedStateMachine):
    """Every action, on a ``Pair`` its subclass's ``@initialize`` starts."""

    messages = Bundle("messages")

    def __init__(self) -> None:
        super().__init__()
        self.pair: Pair | None = None

    @property
    def p(self) -> Pair:
        assert self.pair is not None
        return self.pair

    # -- clients ----------------------------------------------------------------------

    @precondition(lambda self: self.p.published() < MAX_MESSAGES)
    @rule(target=messages, delay=st.sampled_from([0, 0, 2]))
    def publish(self, delay: int) -> int:
        m = self.p.published()
        note(self.p.publish(delay))
        return m

    def anyone(self) -> bool:
        return any(self.p.connected(k) for k in range(N_CONSUMERS))

    def any_channel(self) -> bool:
        return any(self.p.channel_exists(c) for c in range(N_CHANNELS))

    @precondition(lambda self: not all(self.p.connected(k) for k in range(N_CONSUMERS)))
    @rule(k=consumers)
    def subscribe(self, k: int) -> None:
        if not self.p.connected(k):
            note(self.p.subscribe(k))

    @precondition(lambda self: self.anyone())
    @rule(k=consumers, n=st.sampled_from([0, 2]))
    def rdy(self, k: int, n: int) -> None:
        if self.p.connected(k):
            note(self.p.rdy(k, n))

    @precondition(lambda self: self.anyone())
    @rule(k=consumers, m=messages)
    def fin(self, k: int, m: int) -> None:
        if self.p.connected(k):
            note(self.p.fin(k, m))

    @precondition(lambda self: self.anyone())
    @rule(k=consumers, m=messages, delay=st.sampled_from([0, 2]))
    def req(self, k: int, m: int, delay: int) -> None:
        if self.p.connected(k):
            note(self.p.req(k, m, delay))

    @precondition(lambda self: self.anyone())
    @rule(k=consumers, m=messages)
    def touch(self, k: int, m: int) -> None:
        if self.p.connected(k):
            note(self.p.touch(k, m))

    @precondition(lambda self: self.anyone())
    @rule(k=consumers)
    def disconnect(self, k: int) -> None:
        if self.p.connected(k):
            note(self.p.disconnect(k))

    # -- time, disk, faults -----------------------------------------------------------

    @rule()
    def advance(self) -> None:
        note(self.p.advance())

    @rule(q=st.integers(0, N_CHANNELS))
    def fsync(self, q: int) -> None:
        note(self.p.fsync(q))

    @rule(power=st.booleans(), seed=st.integers(0, 2**16))
    def crash(self, power: bool, seed: int) -> None:
        note(self.p.crash(power, seed))

    @rule()
    def restart(self) -> None:
        note(self.p.restart())

    # -- operators --------------------------------------------------------------------

    @precondition(lambda self: not all(self.p.channel_exists(c) for c in range(N_CHANNELS)))
    @rule(c=channels)
    def create(self, c: int) -> None:
        if not self.p.channel_exists(c):
            note(self.p.create(c))

    @precondition(lambda self: self.any_channel())
    @rule(c=channels)
    def delete(self, c: int) -> None:
        if self.p.channel_exists(c):
            note(self.p.delete(c))

    @precondition(lambda self: self.any_channel())
    @rule(c=channels)
    def empty(self, c: int) -> None:
        if self.p.channel_exists(c):
            note(self.p.empty(c))

    @precondition(lambda self: self.any_channel())
    @rule(c=channels)
    def pause(self, c: int) -> None:
        if self.p.channel_exists(c):
            note(self.p.unpause(c) if self.p.paused(c) else self.p.pause(c))


class Refinement(_Rules):
    @initialize(mode=st.sampled_from(list(Mode)), sync_every_op=st.booleans())
    def start(self, mode: Mode, sync_every_op: bool) -> None:
        self.pair = Pair(mode, sync_every_op=sync_every_op)
        note(f"nsqd in {mode.value} mode, {'--sync-every=1' if sync_every_op else 'fsync when the test says'}")


class RefinementBeyondNsqd(_Rules):
    @initialize(
        mode=st.sampled_from(list(Mode)),
        sync_every_op=st.booleans(),
        options=st.sampled_from([(1, 0), (2, 0), (0, 2), (0, 4), (2, 3)]),
    )
    def start(self, mode: Mode, sync_every_op: bool, options: tuple[int, int]) -> None:
        max_attempts, ttl = options
        self.pair = Pair(mode, sync_every_op=sync_every_op, max_attempts=max_attempts, ttl=ttl)
        sync = "--sync-every=1" if sync_every_op else "fsync when the test says"
        note(f"nsqd in {mode.value} mode, {sync}, max_attempts={max_attempts} (dead letters to dl), TTL {ttl}s")

    # Dead letters need a message to be delivered and answered by the consumer that holds
    # it, often: these pick one in flight (the rules above pick any consumer and any
    # message, and mostly miss), and bring every consumer back after a crash or restart.

    @precondition(lambda self: not all(self.p.connected(k) for k in range(N_CONSUMERS)))
    @rule()
    def subscribe_everyone(self) -> None:
        for k in range(N_CONSUMERS):
            if not self.p.connected(k):
                note(self.p.subscribe(k))

    @precondition(lambda self: bool(self.p.in_flight()))
    @rule(pick=st.integers(0, 15), delay=st.sampled_from([0, 2]))
    def requeue_one_in_flight(self, pick: int, delay: int) -> None:
        held = self.p.in_flight()
        k, m = held[pick % len(held)]
        note(self.p.req(k, m, delay))

    @precondition(lambda self: bool(self.p.in_flight()))
    @rule(pick=st.integers(0, 15), fin=st.booleans())
    def answer_one_in_flight(self, pick: int, fin: bool) -> None:
        held = self.p.in_flight()
        k, m = held[pick % len(held)]
        note(self.p.fin(k, m) if fin else self.p.touch(k, m))


_SETTINGS = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
Refinement.TestCase.settings = _SETTINGS
TestRefinement = Refinement.TestCase
RefinementBeyondNsqd.TestCase.settings = _SETTINGS
TestRefinementBeyondNsqd = RefinementBeyondNsqd.TestCase
