"""What the asyncio Producer and Consumer share: identity defaults and a logger.

The core leaves ``client_id``, ``hostname`` and ``user_agent`` to the runtime,
and the TLS context (the ``tls_*`` options name files), which can ask the
operating system: as go-nsq, the client id is the short host
name and the host name the full one; the user agent is ``nsqsim/<version>``.
Log lines go to the ``logging`` module (logger ``nsqsim.client``) unless a
``Logger`` port is given (the utilities pass nsq's stderr format).
"""

from __future__ import annotations

import importlib.metadata
import logging
import socket

from broker.client.config import DEFAULT_USER_AGENT, ClientConfig
from broker.runtime.tls import client_context

__all__ = ["LoggingLogger", "client_config", "client_version"]

_LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "FATAL": logging.CRITICAL,
}


def client_version() -> str:
    try:
        return importlib.metadata.version("nsqsim")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


def client_config(config: ClientConfig | None = None, **changes: object) -> ClientConfig:
    """``config`` (or the defaults) with ``changes`` applied and the identity filled in."""
    config = (config or ClientConfig()).replace(**changes)
    fill: dict[str, object] = {}
    hostname = config.hostname or socket.gethostname()
    if not config.hostname:
        fill["hostname"] = hostname
    if not config.client_id:
        fill["client_id"] = hostname.split(".")[0]
    if config.user_agent == DEFAULT_USER_AGENT:
        fill["user_agent"] = f"nsqsim/{client_version()}"
    if config.tls_v1 and config.tls_context is None:
        # the files go-nsq's tls_* options name are read here, not in the core
        fill["tls_context"] = client_context(
            root_ca_file=config.tls_root_ca_file,
            cert=config.tls_cert,
            key=config.tls_key,
            insecure_skip_verify=config.tls_insecure_skip_verify,
            min_version=config.tls_min_version,
        )
    return config.replace(**fill) if fill else config


class LoggingLogger:
    """The Logger port on the ``logging`` module."""

    def __init__(self, name: str = "nsqsim.client") -> None:
        self._logger = logging.getLogger(name)

    def log(self, level: str, msg: str) -> None:
        self._logger.log(_LEVELS.get(level, logging.INFO), msg)
