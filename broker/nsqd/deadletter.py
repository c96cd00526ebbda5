"""The dead-letter envelope: what a channel with ``max_attempts`` publishes instead of a redelivery.

Beyond nsqd (nsqio/nsq#974).  A channel created with ``max_attempts=N`` and
``dead_letter_topic=T`` moves a message that is requeued (REQ) or times out
after its N-th delivery to topic ``T`` instead of delivering it again; so too
one that comes to be delivered with N attempts already (it was in flight at
a clean exit, which writes it with its attempts, or N was lowered).  The
message published to ``T`` is a new message (its own id, timestamp and
attempts) whose body is this envelope, a JSON object any consumer can read
without knowing NSQ's framing:

    {"topic": "<original topic>", "channel": "<original channel>",
     "id": "<original message id, 16 characters>", "attempts": N,
     "timestamp": <original publish time, ns since the epoch>,
     "reason": "requeued" | "timed_out" | "exhausted", "body": "<original body, base64>"}

Keys come in that order; ``body`` is standard base64 (RFC 4648, with padding).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Literal

__all__ = ["DeadLetter", "Reason", "decode_envelope", "encode_envelope"]

Reason = Literal["requeued", "timed_out", "exhausted"]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    channel: str
    id: bytes
    attempts: int
    timestamp: int
    reason: str
    body: bytes


def encode_envelope(letter: DeadLetter) -> bytes:
    doc = {
        "topic": letter.topic,
        "channel": letter.channel,
        "id": letter.id.decode("ascii", "replace"),
        "attempts": letter.attempts,
        "timestamp": letter.timestamp,
        "reason": letter.reason,
        "body": base64.b64encode(letter.body).decode("ascii"),
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def decode_envelope(raw: bytes) -> DeadLetter:
    """The envelope in ``raw``; ValueError if it is not one."""
    try:
        doc = json.loads(raw)
        return DeadLetter(
            str(doc["topic"]),
            str(doc["channel"]),
            str(doc["id"]).encode("ascii"),
            int(doc["attempts"]),
            int(doc["timestamp"]),
            str(doc["reason"]),
            base64.b64decode(doc["body"], validate=True),
        )
    except (ValueError, TypeError, KeyError, UnicodeEncodeError) as exc:
        raise ValueError(f"not a dead-letter envelope: {exc}") from None
