"""The two versions this package has.

``NSQ_VERSION`` is the Go NSQ release whose wire protocols, HTTP APIs and
flags these daemons and tools reproduce; it is what ``--version`` prints, what
``/info`` and nsqlookupd registrations carry as ``version``, because client
libraries and their test harnesses gate features on it.  ``PACKAGE_VERSION``
is this project's own release (``pyproject.toml`` reads it from here); it is
reported additively, as ``/info``'s ``nsqsim_version``.
"""

from __future__ import annotations

from typing import Final

__all__ = ["NSQ_VERSION", "PACKAGE_VERSION"]

NSQ_VERSION: Final = "1.3.0"
PACKAGE_VERSION: Final = "0.1.0"
