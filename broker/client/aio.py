"""The Python NSQ client on asyncio: everything an application imports.

    from broker.client.aio import Consumer, Producer

``broker.client`` itself is the sans-IO core (no asyncio), which the
simulator drives directly; this module puts it on the running event loop.
See docs/client.md.
"""

from __future__ import annotations

from broker.client.aio_consumer import Consumer, Handler
from broker.client.aio_http import fetch
from broker.client.aio_producer import Producer
from broker.client.aio_runtime import client_config
from broker.client.config import ClientConfig
from broker.client.consumer import ConsumerStats
from broker.client.errors import (
    ClosedError,
    ConnectionClosedError,
    NotConnectedError,
    NSQClientError,
    NSQError,
    PubFailedError,
    QueueFullError,
)
from broker.client.message import Message

__all__ = [
    "ClientConfig",
    "ClosedError",
    "ConnectionClosedError",
    "Consumer",
    "ConsumerStats",
    "Handler",
    "Message",
    "NSQClientError",
    "NSQError",
    "NotConnectedError",
    "Producer",
    "PubFailedError",
    "QueueFullError",
    "client_config",
    "fetch",
]
