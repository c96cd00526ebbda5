"""Flows: nsqadmin's upstream conversations, written as plain generators.

Every nsqadmin answer is a few rounds of HTTP requests to nsqlookupd and nsqd
(ask lookupd for the producers of a topic, then ask each producer for its
stats, ...).  Go writes them as goroutines that block; the core may not block,
so a handler is a generator that *yields* a round of requests (a list of
``HTTPRequest``) and is *sent* back their outcomes, in the same order: an
``HTTPResponse`` or the exception that ended the exchange.  What it returns is
the result of the flow.  Flows compose with ``yield from``, and ``parallel``
runs several in lockstep, their rounds merged into one.

This keeps the handlers readable top to bottom, like Go's, and pure: a unit
test drives a flow with canned answers (``run_sync``), the daemon and the
simulator with ``FlowRunner``, which starts each request through
``broker.client.http.HTTPFetch`` on the ``Network`` port with a ``Clock``
timer (``--http-client-request-timeout``), so a node that does not answer
costs at most one timeout per round and never hangs an answer.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import TypeVar

from broker.client.http import HTTPFetch, HTTPRequest, HTTPResponse
from broker.ports import Clock, Network

__all__ = ["Flow", "FlowRunner", "Outcome", "parallel", "run_sync"]

T = TypeVar("T")

Outcome = HTTPResponse | BaseException
Flow = Generator[list[HTTPRequest], list[Outcome], T]


def parallel(flows: Sequence[Flow[T]]) -> Flow[list[T]]:
    """Run ``flows`` together: each round holds every unfinished flow's requests."""
    results: dict[int, T] = {}
    waiting: dict[int, list[HTTPRequest]] = {}
    for i, flow in enumerate(flows):
        try:
            waiting[i] = next(flow)
        except StopIteration as stop:
            results[i] = stop.value
    while waiting:
        batch = [req for reqs in waiting.values() for req in reqs]
        outcomes = yield batch
        at = 0
        current, waiting = waiting, {}
        for i, reqs in current.items():
            mine = outcomes[at : at + len(reqs)]
            at += len(reqs)
            try:
                waiting[i] = flows[i].send(mine)
            except StopIteration as stop:
                results[i] = stop.value
    return [results[i] for i in range(len(flows))]


def run_sync(flow: Flow[T], answer: Callable[[HTTPRequest], Outcome]) -> T:
    """Drive ``flow`` to its end with ``answer`` for each request (tests, tools)."""
    try:
        batch = next(flow)
        while True:
            batch = flow.send([answer(req) for req in batch])
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


class FlowRunner:
    """Drives flows over the network: each round's requests at once, each bounded by ``timeout``."""

    def __init__(self, network: Network, clock: Clock, *, timeout: float, user_agent: str) -> None:
        self.network = network
        self.clock = clock
        self.timeout = timeout
        self.user_agent = user_agent
        self._open: dict[HTTPFetch, None] = {}

    def run(self, flow: Flow[T], done: Callable[[T], None]) -> None:
        """Start ``flow``; ``done`` gets its result once every round is answered."""
        self._step(flow, None, done)

    def close(self) -> None:
        """Give up every request under way (nsqadmin exiting); their flows never finish."""
        for fetch in list(self._open):
            fetch.cancel()
        self._open.clear()

    def _step(self, flow: Flow[T], outcomes: list[Outcome] | None, done: Callable[[T], None]) -> None:
        try:
            batch = next(flow) if outcomes is None else flow.send(outcomes)
        except StopIteration as stop:
            done(stop.value)
            return
        if not batch:
            self._step(flow, [], done)
            return
        answers: list[Outcome | None] = [None] * len(batch)
        left = [len(batch)]

        def settle(i: int, fetch: HTTPFetch, outcome: Outcome) -> None:
            self._open.pop(fetch, None)
            answers[i] = outcome
            left[0] -= 1
            if left[0] == 0:
                self._step(flow, [a for a in answers if a is not None], done)

        for i, request in enumerate(batch):
            self._start(i, request, settle)

    def _start(self, i: int, request: HTTPRequest, settle: Callable[[int, HTTPFetch, Outcome], None]) -> None:
        holder: list[HTTPFetch] = []

        def on_done(outcome: Outcome) -> None:
            settle(i, holder[0], outcome)

        fetch = HTTPFetch(request, self.clock, on_done, timeout=self.timeout, user_agent=self.user_agent)
        holder.append(fetch)
        self._open[fetch] = None
        fetch.start(self.network)
