"""What can go wrong for a client, as exceptions.

Two families, as in nsqd's own ``protocol.ClientErr``:

* ``NSQError``: an error frame nsqd sent, ``E_CODE description``.  Its
  ``fatal`` flag is nsqd's: only ``E_FIN_FAILED``, ``E_REQ_FAILED`` and
  ``E_TOUCH_FAILED`` leave the connection open; after any other error nsqd
  closes it.  Each code nsqd sends has its own subclass (``PubFailedError`` for
  ``E_PUB_FAILED``, ...), so callers can catch exactly what they mean; a code
  this module does not know still arrives, as a plain ``NSQError``.
* Everything else the client itself detects: the connection closed under a
  command (``ConnectionClosedError``), no nsqd could be reached
  (``NotConnectedError``), the peer broke the protocol (``ProtocolViolation``),
  the producer was closed (``ClosedError``).
"""

from __future__ import annotations

__all__ = [
    "NON_FATAL_CODES",
    "AuthDisabledError",
    "AuthFailedError",
    "AuthFirstError",
    "BadBodyError",
    "BadChannelError",
    "BadMessageError",
    "BadTopicError",
    "ClosedError",
    "ConnectionClosedError",
    "DpubFailedError",
    "FinFailedError",
    "InvalidError",
    "MpubFailedError",
    "NSQClientError",
    "NSQError",
    "NotConnectedError",
    "ProtocolViolation",
    "PubFailedError",
    "QueueFullError",
    "ReqFailedError",
    "TouchFailedError",
    "UnauthorizedError",
    "error_from_frame",
]

# The errors after which nsqd keeps the connection open (nsqd/protocol_v2.go).
NON_FATAL_CODES = frozenset({"E_FIN_FAILED", "E_REQ_FAILED", "E_TOUCH_FAILED"})


class NSQClientError(Exception):
    """Base of every error this client raises."""


class NSQError(NSQClientError):
    """An error frame from nsqd."""

    code = ""

    def __init__(self, code: str, desc: str = "") -> None:
        super().__init__(f"{code} {desc}" if desc else code)
        self.code = code
        self.desc = desc

    @property
    def fatal(self) -> bool:
        """Whether nsqd closes the connection after sending it."""
        return self.code not in NON_FATAL_CODES


class InvalidError(NSQError):
    code = "E_INVALID"


class BadBodyError(NSQError):
    code = "E_BAD_BODY"


class BadTopicError(NSQError):
    code = "E_BAD_TOPIC"


class BadChannelError(NSQError):
    code = "E_BAD_CHANNEL"


class BadMessageError(NSQError):
    code = "E_BAD_MESSAGE"


class PubFailedError(NSQError):
    code = "E_PUB_FAILED"


class MpubFailedError(NSQError):
    code = "E_MPUB_FAILED"


class DpubFailedError(NSQError):
    code = "E_DPUB_FAILED"


class FinFailedError(NSQError):
    code = "E_FIN_FAILED"


class ReqFailedError(NSQError):
    code = "E_REQ_FAILED"


class TouchFailedError(NSQError):
    code = "E_TOUCH_FAILED"


class AuthFailedError(NSQError):
    code = "E_AUTH_FAILED"


class AuthFirstError(NSQError):
    code = "E_AUTH_FIRST"


class AuthDisabledError(NSQError):
    code = "E_AUTH_DISABLED"


class UnauthorizedError(NSQError):
    code = "E_UNAUTHORIZED"


_BY_CODE: dict[str, type[NSQError]] = {
    cls.code: cls
    for cls in (
        InvalidError,
        BadBodyError,
        BadTopicError,
        BadChannelError,
        BadMessageError,
        PubFailedError,
        MpubFailedError,
        DpubFailedError,
        FinFailedError,
        ReqFailedError,
        TouchFailedError,
        AuthFailedError,
        AuthFirstError,
        AuthDisabledError,
        UnauthorizedError,
    )
}


def error_from_frame(data: bytes) -> NSQError:
    """The typed error for the data of an error frame (``E_CODE description``)."""
    text = data.decode("utf-8", "replace")
    code, _, desc = text.partition(" ")
    return _BY_CODE.get(code, NSQError)(code, desc)


class ConnectionClosedError(NSQClientError):
    """The connection closed before nsqd answered the command.

    Whether a publish was applied is then unknown: NSQ is at-least-once, and a
    caller that retries may publish the message twice.
    """


class NotConnectedError(NSQClientError):
    """Every nsqd address was tried and none could be used."""


class ProtocolViolation(NSQClientError):
    """The peer sent something no nsqd sends (a bad frame, an unexpected answer)."""


class ClosedError(NSQClientError):
    """The producer or consumer was closed."""


class QueueFullError(NSQClientError):
    """Too many publishes are waiting for a connection (``max_queued_publishes``)."""
