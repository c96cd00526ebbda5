"""A topic: a named stream that copies every message to each of its channels.

nsqd runs a goroutine per topic that moves messages from the topic's queue to
its channels.  Here the hand-off is a plain call: a message published to a
topic that has channels and is not paused goes straight to every channel.  A
topic with no channels, or a paused one, holds its messages (in memory up to
--mem-queue-size, then in its backend) and hands them on when its first channel
appears or it is unpaused.

Publishing is all or nothing: before anything is put, every queue the messages
would land in is asked whether it has room, so an MPUB is either wholly
accepted or refused with E_MPUB_FAILED and nothing of it delivered.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from broker.nsqd.backend import BackendError, BackendQueue, is_durable
from broker.nsqd.channel import Channel, wall_drift
from broker.nsqd.message import (
    RECORD_OVERHEAD,
    Message,
    decode_message_record,
    encode_message_record,
)

if TYPE_CHECKING:
    from broker.nsqd.nsqd import NSQD

__all__ = ["PublishRefused", "Topic"]


class PublishRefused(Exception):
    """The messages were not accepted (no room, or the topic is going away).

    ``disk_bound`` says the room that ran out was ``--max-disk-bytes-per-queue``'s
    (beyond nsqd), which the HTTP answer then names instead of nsqd's EXITING.
    """

    def __init__(self, reason: str, disk_bound: bool = False) -> None:
        super().__init__(reason)
        self.disk_bound = disk_bound


class Topic:
    def __init__(self, name: str, nsqd: NSQD, backend: BackendQueue, on_empty: Callable[[Topic], None]) -> None:
        self.name = name
        self.ephemeral = name.endswith("#ephemeral")
        self.paused = False
        self.channels: dict[str, Channel] = {}
        # The channels in order, rebuilt when one comes or goes: publishing walks
        # it without copying, and a channel leaving in the middle of a walk (its
        # last consumer gone) does not disturb the walk.
        self._fan: tuple[Channel, ...] = ()
        self.memory: deque[Message] = deque()
        self.backend = backend
        self.message_count = 0
        self.message_bytes = 0
        self.closed = False
        self._nsqd = nsqd
        self._durable_publish = nsqd.opts.durable_publish and is_durable(backend)
        self._mem_queue_size = 0 if self._durable_publish else nsqd.opts.mem_queue_size
        self._on_empty = on_empty  # an ephemeral topic's last channel went away
        self.ttl_ns = 0  # beyond nsqd: messages older than this are dropped, not delivered (0: never)
        self._due_here: dict[bytes, tuple[int, float]] = {}  # deferred records this life spilled: both clocks (see Channel)

    def depth(self) -> int:
        return len(self.memory) + self.backend.depth()

    def set_ttl(self, ttl_ns: int) -> None:
        """A message older than ``ttl_ns`` (since its publish) is dropped by each channel, never delivered."""
        self.ttl_ns = max(0, ttl_ns)
        for channel in self.channels.values():
            channel.ttl_ns = self.ttl_ns

    def expired_count(self) -> int:
        return sum(c.expired_count for c in self.channels.values())

    def durable_queues(self) -> list[BackendQueue]:
        """The disk queues a message put now would be written to (its channels', or the topic's own)."""
        if self._fan and not self.paused:
            return [c.backend for c in self._fan if is_durable(c.backend)]
        return [self.backend] if is_durable(self.backend) else []

    def new_message(self, body: bytes, deferred: float = 0.0) -> Message:
        """The message for one PUB/DPUB; the same as ``new_messages([body])[0]``."""
        nsqd = self._nsqd
        wall = nsqd.clock.wall_ns()
        return Message(nsqd.guid.new(wall), body, wall, 0, deferred)

    def new_messages(self, bodies: list[bytes], deferred: float = 0.0) -> list[Message]:
        """Messages for one publish: one timestamp, consecutive ids."""
        nsqd = self._nsqd
        wall = nsqd.clock.wall_ns()
        ids = nsqd.guid.new_batch(wall, len(bodies))
        return [Message(i, b, wall, 0, deferred) for i, b in zip(ids, bodies, strict=True)]

    # -- channels -------------------------------------------------------------------

    def get_channel(self, name: str) -> Channel:
        """The channel called ``name``, created if it does not exist."""
        channel = self.channels.get(name)
        if channel is not None:
            return channel
        channel = Channel(self.name, name, self._nsqd, self._nsqd.new_backend(self.name, name), self._channel_empty)
        channel.ttl_ns = self.ttl_ns
        self.channels[name] = channel
        self._fan = tuple(self.channels.values())
        self._nsqd.notify("channel_created", self, channel)
        self._nsqd.persist_metadata()
        if len(self.channels) == 1:
            self.drain()
        return channel

    def get_existing_channel(self, name: str) -> Channel | None:
        return self.channels.get(name)

    def delete_existing_channel(self, name: str) -> bool:
        channel = self.channels.pop(name, None)
        if channel is None:
            return False
        self._fan = tuple(self.channels.values())
        channel.close(deleted=True)
        self._nsqd.notify("channel_deleted", self, channel)
        self._nsqd.persist_metadata()
        if not self.channels and self.ephemeral:
            self._on_empty(self)
        return True

    def _channel_empty(self, channel: Channel) -> None:
        if self.channels.get(channel.name) is channel:
            self.delete_existing_channel(channel.name)

    # -- publishing -----------------------------------------------------------------

    def put_messages(self, msgs: list[Message]) -> list[BackendQueue]:
        """Accept every message or none (raises ``PublishRefused``).

        Returns the durable queues the messages were written to, which a
        durable publish waits to see fsynced before it answers.
        """
        if self.closed:
            raise PublishRefused("exiting")
        count = len(msgs)
        nbytes = 0
        for m in msgs:
            nbytes += len(m.body)
        fan_out = bool(self.channels) and not self.paused
        if fan_out:
            for channel in self.channels.values():
                if not channel.has_room(count, nbytes):
                    raise self._full(f"channel {channel.name}", channel.backend)
        elif len(self.memory) + count > self._mem_queue_size and not self.backend.can_accept(count, nbytes + RECORD_OVERHEAD * count):
            raise self._full("topic", self.backend)
        self.message_count += count
        self.message_bytes += nbytes
        try:
            if fan_out:
                self._fan_out(msgs)
            else:
                for m in msgs:
                    self._hold(m)
        except BackendError as exc:
            self._nsqd.backend_failed(self.backend, exc)
            raise PublishRefused(str(exc)) from None
        if not self._durable_publish:
            return []
        if fan_out:
            return [c.backend for c in self.channels.values() if is_durable(c.backend)]
        return [self.backend]

    def _full(self, what: str, backend: BackendQueue) -> PublishRefused:
        bound = self._nsqd.opts.max_disk_bytes_per_queue
        if bound and is_durable(backend):
            return PublishRefused(
                f"{what} queue full (mem-queue-size {self._mem_queue_size},"
                f" disk queue at max-disk-bytes-per-queue {bound})",
                disk_bound=True,
            )
        return PublishRefused(f"{what} queue full (mem-queue-size {self._mem_queue_size})")

    def put_message(self, msg: Message) -> list[BackendQueue]:
        """``put_messages([msg])`` without the lists: a PUB's path to its channels."""
        fan = self._fan
        if not fan or self.paused or self.closed:
            return self.put_messages([msg])
        nbytes = len(msg.body)
        for channel in fan:
            if len(channel.memory) >= channel.mem_queue_size and not channel.has_room(1, nbytes):
                raise self._full(f"channel {channel.name}", channel.backend)
        self.message_count += 1
        self.message_bytes += nbytes
        try:
            deferred = msg.deferred
            if deferred > 0:
                for i, channel in enumerate(fan):
                    channel.put_deferred(msg if i == 0 else msg.copy(), deferred)
            else:
                # The first channel takes the message itself, the others copies that share the body.
                fan[0].put(msg)
                for channel in fan[1:]:
                    channel.put(msg.copy())
            for channel in fan:
                channel.dispatch()
        except BackendError as exc:
            self._nsqd.backend_failed(self.backend, exc)
            raise PublishRefused(str(exc)) from None
        if not self._durable_publish:
            return []
        return [c.backend for c in fan if is_durable(c.backend)]

    def _hold(self, msg: Message) -> None:
        if len(self.memory) < self._mem_queue_size:
            self.memory.append(msg)
        elif self.backend.can_accept(1, len(msg.body) + RECORD_OVERHEAD):
            wall = self._nsqd.clock.wall_ns()
            due = wall + int(msg.deferred * 1e9) if msg.deferred > 0 else 0
            self.backend.put(encode_message_record(msg, due))
            if due:
                self._due_here[msg.id] = (wall, self._nsqd.clock.now())
        else:
            self.memory.append(msg)  # already accepted: never drop (see Channel._put_back)

    def _fan_out(self, msgs: list[Message]) -> None:
        channels = self._fan
        deferred = [m for m in msgs if m.deferred > 0]
        ready = [m for m in msgs if m.deferred <= 0] if deferred else msgs
        for i, channel in enumerate(channels):
            # The first channel takes the messages themselves, the others copies
            # that share the body.
            if ready:
                channel.put_many(ready if i == 0 else [m.copy() for m in ready])
            for m in deferred:
                channel.put_deferred(m if i == 0 else m.copy(), m.deferred)
        for channel in channels:
            channel.dispatch()

    def drain(self) -> None:
        """Hand what the topic holds to its channels (first channel, or unpause).

        From the topic's disk queue to the channels' the hand-off is made
        durable in order: the channels' queues are synced before the topic's
        read position moves on disk, so a crash between the two repeats
        messages rather than losing them.
        """
        if not self.channels or self.paused or self.closed:
            return
        held: list[Message] = list(self.memory)
        self.memory.clear()
        from_disk = False
        wall = self._nsqd.clock.wall_ns()
        while self.backend.depth():
            record = self.backend.read()
            if record is None:
                break
            from_disk = True
            try:
                msg, due = decode_message_record(record)
            except ValueError as exc:
                self._nsqd.log("ERROR", f"TOPIC({self.name}): failed to decode message - {exc}")
                continue
            if due:
                drift = wall_drift(self._due_here.pop(msg.id, None), wall, self._nsqd.clock.now())
                msg.deferred = max(0.0, (due - wall + drift) / 1e9)
            held.append(msg)
        if not held:
            return
        self._fan_out(held)
        if from_disk:
            try:
                for channel in self.channels.values():
                    if is_durable(channel.backend):
                        channel.backend.sync()
                self.backend.sync()
            except BackendError as exc:
                self._nsqd.backend_failed(self.backend, exc)

    # -- administration -------------------------------------------------------------

    def pause(self) -> None:
        self.paused = True
        self._nsqd.persist_metadata()

    def unpause(self) -> None:
        self.paused = False
        self._nsqd.persist_metadata()
        self.drain()

    def empty(self) -> None:
        self.memory.clear()
        self._due_here.clear()
        self.backend.empty()

    def close(self, deleted: bool) -> None:
        if self.closed:
            return
        self.closed = True
        for channel in list(self.channels.values()):
            channel.close(deleted)
            if deleted:
                self._nsqd.notify("channel_deleted", self, channel)
        if deleted:
            self.channels.clear()
            self._fan = ()
            self.backend.delete()
            return
        if is_durable(self.backend):
            # A clean exit keeps what the topic holds in memory, as nsqd does.
            wall = self._nsqd.clock.wall_ns()
            try:
                while self.memory:
                    msg = self.memory.popleft()
                    due = wall + int(msg.deferred * 1e9) if msg.deferred > 0 else 0
                    self.backend.put(encode_message_record(msg, due), bounded=False)  # accepted already
            except BackendError as exc:
                self._nsqd.backend_failed(self.backend, exc)
        try:
            self.backend.close()
        except BackendError as exc:
            self._nsqd.backend_failed(self.backend, exc)
