"""Topic and channel names, validated as nsqd and nsqlookupd do.

A name is 1 to 64 characters of ``[.a-zA-Z0-9_-]``, optionally followed by the
``#ephemeral`` suffix (which counts toward the 64).
"""

from __future__ import annotations

import re

__all__ = ["EPHEMERAL_SUFFIX", "is_ephemeral", "is_valid_channel_name", "is_valid_topic_name"]

EPHEMERAL_SUFFIX = "#ephemeral"
_VALID = re.compile(r"[.a-zA-Z0-9_-]+(#ephemeral)?")


def _is_valid_name(name: str) -> bool:
    return 0 < len(name) <= 64 and _VALID.fullmatch(name) is not None


def is_valid_topic_name(name: str) -> bool:
    return _is_valid_name(name)


def is_valid_channel_name(name: str) -> bool:
    return _is_valid_name(name)


def is_ephemeral(name: str) -> bool:
    return name.endswith(EPHEMERAL_SUFFIX)
