"""Which event loop a daemon runs on: asyncio's own, or uvloop when it is installed.

uvloop (libuv under asyncio's API; ``pip install nsqsim[fast]``) carries the
same protocols with less per-read and per-write overhead: the adapter in
``broker.runtime.stream`` works on either unchanged.  It is optional: without
it the daemon runs on asyncio's loop, as it always has.

``NSQD_EVENT_LOOP`` chooses: ``auto`` (the default: uvloop if it imports),
``asyncio``, or ``uvloop`` (an error if it is not installed).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["ENV", "EventLoopError", "choose_loop", "run"]

ENV = "NSQD_EVENT_LOOP"
_CHOICES = ("auto", "asyncio", "uvloop")

T = TypeVar("T")


class EventLoopError(Exception):
    """The loop asked for cannot be had."""


def choose_loop(choice: str | None = None) -> tuple[str, Callable[[], asyncio.AbstractEventLoop] | None]:
    """(name, loop factory) for ``choice`` (default: the environment's); factory None is asyncio's."""
    if choice is None:
        choice = os.environ.get(ENV, "auto") or "auto"
    if choice not in _CHOICES:
        raise EventLoopError(f"{ENV}={choice!r}: expected one of {', '.join(_CHOICES)}")
    if choice == "asyncio":
        return "asyncio", None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise EventLoopError(f"{ENV}=uvloop but uvloop is not installed (pip install uvloop)") from None
        return "asyncio", None
    return "uvloop", uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], factory: Callable[[], asyncio.AbstractEventLoop] | None) -> T:
    """``asyncio.run(main)`` on a loop from ``factory`` (None: asyncio's default loop)."""
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
