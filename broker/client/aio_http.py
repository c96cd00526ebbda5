"""``await fetch(url)``: the core's one-request HTTP client on the running loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from broker.client.http import DEFAULT_MAX_BODY, HTTPRequest, HTTPResponse
from broker.client.http import fetch as start_fetch
from broker.runtime import AsyncioClock, AsyncioNetwork

__all__ = ["fetch"]


async def fetch(
    url: str,
    *,
    method: str = "GET",
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    connect_timeout: float = 2.0,
    request_timeout: float = 5.0,
    max_body: int = DEFAULT_MAX_BODY,
    user_agent: str = "nsqsim",
) -> HTTPResponse:
    """The answer to one request (any status); raises what ended the exchange otherwise.

    ``connect_timeout`` bounds the TCP connect, ``request_timeout`` the whole
    exchange (the ``--http-client-*-timeout`` flags of NSQ's tools).
    """
    loop = asyncio.get_running_loop()
    request = HTTPRequest.from_url(url, method, headers, body)
    done: asyncio.Future[HTTPResponse | BaseException] = loop.create_future()

    def settle(result: HTTPResponse | BaseException) -> None:
        if not done.done():
            done.set_result(result)

    handler = start_fetch(
        AsyncioNetwork(loop, connect_timeout=connect_timeout),
        AsyncioClock(loop),
        request,
        settle,
        timeout=request_timeout,
        max_body=max_body,
        user_agent=user_agent,
    )
    try:
        result = await done
    except asyncio.CancelledError:
        handler.cancel()
        raise
    if isinstance(result, BaseException):
        raise result
    return result
