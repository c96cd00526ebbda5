"""The daemon's choice of event loop (``broker.runtime.loop``): asyncio's, or uvloop when installed."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from broker.runtime import loop as event_loop

HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None


async def _loop_type() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_asyncio_is_asked_for_by_name() -> None:
    name, factory = event_loop.choose_loop("asyncio")
    assert (name, factory) == ("asyncio", None)
    assert event_loop.run(_loop_type(), factory).startswith("asyncio")


def test_an_unknown_choice_is_an_error_naming_the_choices() -> None:
    with pytest.raises(event_loop.EventLoopError, match="auto, asyncio, uvloop"):
        event_loop.choose_loop("tokio")


def test_the_environment_chooses_when_no_argument_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(event_loop.ENV, "asyncio")
    assert event_loop.choose_loop() == ("asyncio", None)
    monkeypatch.setenv(event_loop.ENV, "")
    assert event_loop.choose_loop()[0] == ("uvloop" if HAS_UVLOOP else "asyncio")


@pytest.mark.skipif(not HAS_UVLOOP, reason="uvloop is not installed (pip install nsqsim[fast])")
def test_auto_and_uvloop_run_on_uvloop_when_it_is_installed() -> None:
    for choice in ("auto", "uvloop"):
        name, factory = event_loop.choose_loop(choice)
        assert name == "uvloop"
        assert event_loop.run(_loop_type(), factory).startswith("uvloop")


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    assert event_loop.choose_loop("auto") == ("asyncio", None)
    with pytest.raises(event_loop.EventLoopError, match="not installed"):
        event_loop.choose_loop("uvloop")
