"""A message as a consumer holds it, and the three answers it can give nsqd.

A message is answered exactly once: ``finish()`` (FIN) or ``requeue()`` (REQ);
``touch()`` (TOUCH) only buys time before the answer.  A second answer is
ignored, as go-nsq ignores it, so a handler and the consumer's automatic
response never both reach nsqd.  Answers go to the connection the message came
on; if that connection has gone, the answer is dropped: nsqd redelivers the
message once its timeout passes, as it does for any message left in flight.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Message", "MessageResponder"]


class MessageResponder(Protocol):
    """The connection a message came on (``NSQConnection``)."""

    @property
    def address(self) -> str: ...

    def requeue_delay(self, attempts: int) -> float: ...

    def message_finished(self, msg: Message) -> None: ...

    def message_requeued(self, msg: Message, delay_ms: int, backoff: bool) -> None: ...

    def message_touched(self, msg: Message) -> None: ...


class Message:
    # Slots, not a dataclass: one is built per delivery on the consumer's hot path.
    __slots__ = ("_conn", "_responded", "attempts", "auto_response", "body", "id", "timestamp")

    def __init__(self, msg_id: bytes, body: bytes, attempts: int, timestamp: int, conn: MessageResponder) -> None:
        self.id = msg_id  # 16 ASCII hex bytes, as nsqd sends it
        self.body = body
        self.attempts = attempts  # 1 on first delivery
        self.timestamp = timestamp  # unix ns, when nsqd accepted it
        self.auto_response = True
        self._conn = conn
        self._responded = False

    def __repr__(self) -> str:
        return f"<Message {self.id.decode('ascii', 'replace')} attempts={self.attempts} {len(self.body)} bytes>"

    @property
    def nsqd_address(self) -> str:
        """``host:port`` of the nsqd that delivered it."""
        return self._conn.address

    @property
    def has_responded(self) -> bool:
        return self._responded

    def disable_auto_response(self) -> None:
        """Leave the answer to the code holding the message, even after its handler returns."""
        self.auto_response = False

    def finish(self) -> None:
        """Tell nsqd the message is done (FIN)."""
        if self._responded:
            return
        self._responded = True
        self._conn.message_finished(self)

    def requeue(self, delay: float | None = None, backoff: bool = True) -> None:
        """Give the message back (REQ), to be redelivered after ``delay`` seconds.

        ``delay=None`` picks go-nsq's default, ``default_requeue_delay`` times
        the attempts so far, capped at ``max_requeue_delay``.  ``backoff=True``
        tells the consumer that processing failed, so it slows down.
        """
        if self._responded:
            return
        self._responded = True
        seconds = self._conn.requeue_delay(self.attempts) if delay is None else max(0.0, delay)
        self._conn.message_requeued(self, round(seconds * 1000), backoff)

    def touch(self) -> None:
        """Reset the message's timeout on nsqd (TOUCH); harmless once answered."""
        if not self._responded:
            self._conn.message_touched(self)
