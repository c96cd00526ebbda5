"""Entry points: the daemons and command line tools, each compatible with its Go original."""

from __future__ import annotations

import importlib.metadata
import platform

__all__ = ["package_version", "version_string"]


def package_version() -> str:
    """The installed nsqsim version (``0.0.0`` when run from an uninstalled tree)."""
    try:
        return importlib.metadata.version("nsqsim")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


def version_string(app: str) -> str:
    """``<app> v<version> (built w/<runtime>)``, the shape of Go nsq's ``version.String``."""
    runtime = f"{platform.python_implementation()} {platform.python_version()}"
    return f"{app} v{package_version()} (built w/{runtime})"
