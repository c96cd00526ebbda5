"""Entry points: the daemons and command line tools, each compatible with its Go original."""

from __future__ import annotations

import platform

from broker.version import NSQ_VERSION, PACKAGE_VERSION

__all__ = ["package_version", "runtime_token", "version_string"]


def package_version() -> str:
    """This project's own version (``broker.version.PACKAGE_VERSION``)."""
    return PACKAGE_VERSION


def runtime_token() -> str:
    """The interpreter as one lowercase token, in the place of Go's ``runtime.Version()``: ``cpython3.11.7``."""
    return f"{platform.python_implementation().lower()}{platform.python_version()}"


def version_string(app: str) -> str:
    """``<app> v1.3.0 (built w/cpython3.11.7)``: Go nsq's ``version.String``, with the NSQ version matched.

    Client test harnesses parse this line (``NAME vX.Y.Z (built w/TOKEN)``) and
    gate features on the version, so it carries the NSQ release these daemons
    are compatible with; the project's own version is in ``/info``.
    """
    return f"{app} v{NSQ_VERSION} (built w/{runtime_token()})"
