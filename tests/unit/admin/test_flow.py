"""Flows: rounds of requests, merged by ``parallel``, driven by canned answers or over the ports."""

from __future__ import annotations

from broker.admin.flow import Flow, FlowRunner, Outcome, parallel, run_sync
from broker.client.http import HTTPRequest, HTTPResponse
from broker.ports import ConnectionHandler
from tests.fakes import FakeClock


def get(url: str) -> HTTPRequest:
    return HTTPRequest.from_url(url)


def two_rounds(name: str) -> Flow[list[str]]:
    (first,) = yield [get(f"http://{name}/a")]
    (second, third) = yield [get(f"http://{name}/b"), get(f"http://{name}/c")]
    return [str(o.status) if isinstance(o, HTTPResponse) else type(o).__name__ for o in (first, second, third)]


def answer(req: HTTPRequest) -> Outcome:
    if req.host == "down":
        return ConnectionRefusedError()
    return HTTPResponse(200 if req.target != "/c" else 404, (), b"")


def test_run_sync_answers_each_round() -> None:
    assert run_sync(two_rounds("x"), answer) == ["200", "200", "404"]


def test_parallel_merges_rounds_and_keeps_order() -> None:
    seen: list[list[str]] = []

    def recording(req: HTTPRequest) -> Outcome:
        seen.append([req.host, req.target])
        return answer(req)

    def instant() -> Flow[list[str]]:
        yield from ()  # a flow with no request at all
        return ["none"]

    result = run_sync(parallel([two_rounds("x"), two_rounds("down"), instant()]), recording)
    assert result == [["200", "200", "404"], ["ConnectionRefusedError"] * 3, ["none"]]
    # Two rounds in all: both flows' first requests, then both flows' second pairs.
    assert seen == [["x", "/a"], ["down", "/a"], ["x", "/b"], ["x", "/c"], ["down", "/b"], ["down", "/c"]]


class SilentNetwork:
    """Connects to nothing and says nothing: the request can only time out."""

    def __init__(self) -> None:
        self.handlers: list[ConnectionHandler] = []

    def connect(self, host: str, port: int, handler: ConnectionHandler) -> None:
        self.handlers.append(handler)


class RefusingNetwork:
    def connect(self, host: str, port: int, handler: ConnectionHandler) -> None:
        handler.connection_lost(ConnectionRefusedError(111, "Connection refused"))


def test_runner_bounds_each_round_by_the_timeout() -> None:
    clock = FakeClock()
    network = SilentNetwork()
    runner = FlowRunner(network, clock, timeout=2.0, user_agent="t")
    done: list[list[str]] = []
    runner.run(two_rounds("h"), done.append)
    assert len(network.handlers) == 1 and not done
    clock.advance(1.9)
    assert not done
    clock.advance(0.2)  # round one times out; round two starts
    assert len(network.handlers) == 3 and not done
    clock.advance(2.1)
    assert done == [["TimeoutError"] * 3]


def test_runner_with_a_refusing_network_finishes_at_once() -> None:
    runner = FlowRunner(RefusingNetwork(), FakeClock(), timeout=2.0, user_agent="t")
    done: list[list[str]] = []
    runner.run(two_rounds("h"), done.append)
    assert done == [["ConnectionRefusedError"] * 3]


def test_runner_close_gives_up_without_finishing() -> None:
    clock = FakeClock()
    runner = FlowRunner(SilentNetwork(), clock, timeout=2.0, user_agent="t")
    done: list[list[str]] = []
    runner.run(two_rounds("h"), done.append)
    runner.close()
    clock.advance(10)
    assert done == [] and clock.pending() == 0
