"""A channel: one consumer group's copy of a topic's stream.

Every message published to a topic after a channel exists is put to that
channel; the channel hands each message to one ready consumer, keeps it in
flight until the consumer finishes (FIN) or requeues (REQ) it, and requeues it
itself when the consumer's msg timeout passes.  Deferred messages (DPUB, REQ
with a delay) wait in a heap until due.

Time is driven by one timer per channel, armed at the earliest in-flight or
deferred deadline.  Both queues are heaps of ``(deadline, token, message)``;
FIN, REQ and TOUCH leave the old entry in the heap and invalidate it by giving
the message a new token, because removing from the middle of a heap costs a
Python-level sift per message while a stale entry costs one C-level pop later.
When stale entries outnumber live ones the heap is rebuilt, which keeps its
size bounded by twice the messages in flight.

Disk-only channels (``--mem-queue-size=0``, or ``--durable-publish``) keep every
message on disk until it is finished, which nsqd does not (nsqio/nsq#1142):
their disk queue holds its durable read position at the oldest record still
needed (in flight, deferred, requeued, or read and waiting), so a kill -9
delivers those again rather than losing them.  Each message has one record:
a requeue, a timeout or a REQ with a delay keeps it and only changes the
message's state in memory, so a crash forgets that state (a REQ's delay, a
FIN made after the oldest unfinished message was read, the attempts count)
and delivers the message again; a DPUB's due time is in its record and
survives.  A clean exit writes every held message again, with its state, and
lets the old records go.  Duplicates after a crash are allowed; a loss is not.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from broker.nsqd.backend import BackendError, BackendQueue, is_durable
from broker.nsqd.deadletter import DeadLetter, Reason, encode_envelope
from broker.nsqd.e2e import E2ELatency
from broker.nsqd.message import (
    RECORD_OVERHEAD,
    Message,
    decode_message_record,
    encode_message_record,
)
from broker.ports import Timer

if TYPE_CHECKING:
    from broker.nsqd.nsqd import NSQD

__all__ = ["Channel", "Consumer", "wall_drift"]

_COMPACT_MIN = 1024


class Consumer(Protocol):
    """What a channel needs of a subscribed client connection."""

    id: int
    sample_rate: int
    msg_timeout: float
    in_flight_count: int

    def is_ready(self) -> bool: ...

    def room(self) -> int:
        """How many more messages it may be given now (0 when not ready)."""
        ...

    def send_message(self, msg: Message) -> None: ...

    def send_messages(self, msgs: list[Message]) -> None: ...

    def timed_out_message(self) -> None: ...

    def empty(self) -> None: ...

    def close(self) -> None: ...


_Entry = tuple[float, int, Message]


class Channel:
    def __init__(
        self,
        topic_name: str,
        name: str,
        nsqd: NSQD,
        backend: BackendQueue,
        on_empty: Callable[[Channel], None],
    ) -> None:
        self.topic_name = topic_name
        self.name = name
        self.ephemeral = name.endswith("#ephemeral")
        self.paused = False
        self.backend = backend
        self.memory: deque[Message] = deque()
        self.in_flight: dict[bytes, Message] = {}
        self.deferred: dict[bytes, Message] = {}
        # Unread records in the disk queue that carry a due time (see restore_deferred).
        self.deferred_on_disk = 0
        self.message_count = 0
        self.requeue_count = 0
        self.timeout_count = 0
        # Beyond nsqd, off by default: server-side max attempts with a dead-letter topic
        # (set by /channel/create, kept in nsqd.dat) and the topic's TTL (Topic.set_ttl).
        self.max_attempts = 0
        self.dead_letter_topic = ""
        self.dead_lettered_count = 0
        self.ttl_ns = 0
        self.expired_count = 0
        self.clients: dict[int, Consumer] = {}
        self.closed = False

        self._nsqd = nsqd
        self._clock = nsqd.clock
        self._rand = nsqd.rand
        # With durable publishing every message of a durable channel goes through
        # its disk queue, so that an acknowledgement can wait for its fsync.
        durable_publish = nsqd.opts.durable_publish and is_durable(backend)
        # How many messages the memory queue holds before the backend takes them.
        self.mem_queue_size = 0 if durable_publish else nsqd.opts.mem_queue_size
        self._tracked = is_durable(backend) and self.mem_queue_size == 0
        # records read from disk and not yet let go, in reading order, and the
        # messages they hold by id (see the module doc)
        self._outstanding: dict[tuple[int, int], None] = {}
        self._held: dict[bytes, Message] = {}
        # Deferred records this life wrote, by id: both clocks as it wrote them.  The
        # record keeps its due time on the wall clock, the only one a restart keeps;
        # while this life lasts, a step or skew of that clock must not move it.
        self._due_here: dict[bytes, tuple[int, float]] = {}
        # After an unclean exit a default-mode queue may hold two records of one
        # message (one read before the crash and spilled again after a timeout);
        # both lie before the end of what was found at open.  Until the reader
        # passes that point the ids it read are remembered and a second record
        # of one is let go, as the model's dedupe rule says.
        self._replay_end: tuple[int, int] | None = None
        self._replayed: set[bytes] = set()
        if is_durable(backend) and not self._tracked and backend.depth():
            self._replay_end = backend.end_at_open()
        self._on_empty = on_empty  # an ephemeral channel's last consumer left
        self._consumers: list[Consumer] = []  # round-robin order
        self._rr = 0
        self._dispatching = False
        self._in_flight_pq: list[_Entry] = []
        self._deferred_pq: list[_Entry] = []
        self._stale = 0
        self._token = 0
        self._timer_at = math.inf
        self._timer: Timer | None = None
        # --e2e-processing-latency-percentile: the FIN latencies of a window (None: not asked for)
        opts = nsqd.opts
        self.e2e: E2ELatency | None = None
        if opts.e2e_processing_latency_percentiles:
            self.e2e = E2ELatency(
                int(opts.e2e_processing_latency_window_time * 1e9), list(opts.e2e_processing_latency_percentiles), self._clock
            )

    # -- stats ----------------------------------------------------------------------

    def depth(self) -> int:
        """Queued messages, in memory and on disk; deferred records on disk are not queued."""
        return max(0, len(self.memory) + self.backend.depth() - self.deferred_on_disk)

    def deferred_count(self) -> int:
        """Messages waiting for their due time: in the heap, or on disk since a clean restart."""
        return len(self.deferred) + self.deferred_on_disk

    def replay_window(self) -> tuple[tuple[int, int], list[str]] | None:
        """At a clean exit: the re-read window a crash left that is still open (its end, the ids read in it).

        nsqd.dat keeps it (``restore_replay``), so a record of it still to be read
        that duplicates one already read is let go by the next process too,
        instead of coming back with older attempts, or after its message was
        finished (the model's open issue, closed).
        """
        if self._replay_end is None or not self.backend.depth():
            return None
        return self._replay_end, sorted(i.decode("latin-1") for i in self._replayed)

    def restore_replay(self, end: tuple[int, int], ids: list[str]) -> None:
        """Go on with the re-read window the last process had open when it exited cleanly."""
        if self._tracked or not self.backend.depth():
            return
        self._replay_end = end
        self._replayed = {i.encode("latin-1") for i in ids}

    def restore_deferred(self, count: int) -> None:
        """nsqd.dat's count of the deferred records this channel left on disk at a clean exit.

        They wait on disk, unread, until the reader reaches them; meanwhile they
        count as deferred, not queued, so a clean restart shows the counts it had
        before.  After a crash there is no count (it is written only by a clean
        exit): such records count as queued until read, as they always did.
        """
        self.deferred_on_disk = max(0, min(count, self.backend.depth()))

    # -- consumers ------------------------------------------------------------------

    def add_client(self, client: Consumer) -> str | None:
        """Subscribe ``client``; an error text when --max-channel-consumers is reached."""
        if client.id in self.clients:
            return None
        limit = self._nsqd.opts.max_channel_consumers
        if limit and len(self.clients) >= limit:
            return f"consumers for {self.topic_name}:{self.name} exceeds limit of {limit}"
        self.clients[client.id] = client
        self._consumers.append(client)
        return None

    def remove_client(self, client_id: int) -> None:
        client = self.clients.pop(client_id, None)
        if client is None:
            return
        self._consumers.remove(client)
        # Messages in flight to the client stay in flight until they time out, as in nsqd.
        if not self.clients and self.ephemeral:
            self._on_empty(self)

    # -- putting messages -----------------------------------------------------------

    def has_room(self, count: int, nbytes: int) -> bool:
        return len(self.memory) + count <= self.mem_queue_size or self.backend.can_accept(count, nbytes + RECORD_OVERHEAD * count)

    def put(self, msg: Message) -> None:
        """``put_many([msg])``, the common case, without the list."""
        memory = self.memory
        if len(memory) < self.mem_queue_size:
            self.message_count += 1
            memory.append(msg)
        else:
            self.put_many([msg])

    def put_many(self, msgs: list[Message]) -> None:
        """Messages from the topic, in order (call ``dispatch()`` after).

        Raises ``BackendError`` if the disk queue fails part way.
        """
        self.message_count += len(msgs)
        if len(self.memory) + len(msgs) <= self.mem_queue_size:
            self.memory.extend(msgs)
            return
        if self.mem_queue_size == 0 and self.ephemeral:
            # nsqd's unbuffered channel: handed over if a consumer is ready now, else dropped.
            self.memory.extend(msgs)
            self.dispatch()
            while self.memory:
                self.backend.put(encode_message_record(self.memory.popleft()))
            return
        for msg in msgs:
            if len(self.memory) < self.mem_queue_size:
                self.memory.append(msg)
            else:
                self.backend.put(encode_message_record(msg))

    def put_deferred(self, msg: Message, delay: float) -> None:
        self.message_count += 1
        if self._tracked:
            # On disk with its due time; it waits in memory once the reader reaches it.
            wall = self._clock.wall_ns()
            self.backend.put(encode_message_record(msg, wall + max(1, int(delay * 1e9))))
            self._due_here[msg.id] = (wall, self._clock.now())
            self.deferred_on_disk += 1
        else:
            self._start_deferred(msg, delay)

    def _put_back(self, msg: Message) -> None:
        """Requeue a message this channel already holds: never lose it."""
        if self._tracked and msg.disk_pos is not None:
            self.memory.append(msg)  # its record is still held: nothing to write
            return
        if len(self.memory) < self.mem_queue_size:
            self.memory.append(msg)
            return
        if self.backend.can_accept(1, len(msg.body) + RECORD_OVERHEAD):
            try:
                self.backend.put(encode_message_record(msg))
                return
            except BackendError as exc:
                self._nsqd.backend_failed(self.backend, exc)
        # No room anywhere: keep it in memory past the bound rather than lose a
        # message already accepted; new publishes were refused before this.
        self.memory.append(msg)

    def _release(self, msg: Message) -> None:
        """The message's disk record is no longer needed: it is finished."""
        pos = msg.disk_pos
        if pos is None:
            return
        msg.disk_pos = None
        if self._held.get(msg.id) is msg:
            del self._held[msg.id]
        self._let_go(pos)

    def _let_go(self, pos: tuple[int, int]) -> None:
        outstanding = self._outstanding
        del outstanding[pos]
        self.backend.commit(next(iter(outstanding)) if outstanding else None)

    def _next_message(self) -> Message | None:
        """The next message from the disk queue; deferred records go back to waiting."""
        while self.backend.depth():
            record = self.backend.read()
            if record is None:
                return None
            try:
                msg, due = decode_message_record(record)
            except ValueError as exc:
                self._nsqd.log("ERROR", f"CHANNEL({self.topic_name}:{self.name}): failed to decode message - {exc}")
                continue
            if due and self.deferred_on_disk:
                self.deferred_on_disk -= 1
            if self._tracked:
                pos = self.backend.read_position()
                self._outstanding[pos] = None
                if msg.id in self._held:
                    # A second record of a message this channel already holds: after a
                    # restart the queue replays from the oldest unfinished record, and
                    # a message deferred again since then has a newer record too.  One
                    # copy at a time carries it; this one is let go.
                    self._let_go(pos)
                    continue
                msg.disk_pos = pos
                self._held[msg.id] = msg
            elif self._replay_end is not None:
                if self.backend.read_position() < self._replay_end:
                    if msg.id in self._replayed:
                        continue
                    self._replayed.add(msg.id)
                else:
                    self._replay_end = None
                    self._replayed.clear()
            if due:
                wall = self._clock.wall_ns()
                wait = (due - wall + wall_drift(self._due_here.pop(msg.id, None), wall, self._clock.now())) / 1e9
                if wait > 0:
                    self._start_deferred(msg, wait)
                    continue
            return msg
        return None

    # -- delivering -----------------------------------------------------------------

    def dispatch(self) -> None:
        """Hand queued messages to ready consumers, round robin, until one side runs out."""
        if self.paused or self._dispatching or not self._consumers:
            return
        if not self.memory and not self.backend.depth():
            return
        self._dispatching = True
        try:
            consumers = self._consumers
            if len(consumers) == 1:
                self._dispatch_to_one(consumers[0])
            else:
                self._dispatch_round_robin()
        finally:
            self._dispatching = False

    def _dispatch_to_one(self, client: Consumer) -> None:
        """The common case: one consumer gets as many messages as its RDY allows, in one batch."""
        memory = self.memory
        backend = self.backend
        while True:
            room = client.room()
            if room <= 0 or not (memory or backend.depth()):
                return
            batch: list[Message] = []
            rate = client.sample_rate
            now = self._clock.now()
            deadline = now + client.msg_timeout
            client_id = client.id
            in_flight = self.in_flight
            pq = self._in_flight_pq
            heappush = heapq.heappush
            token = self._token
            ttl = self.ttl_ns
            expire_before = self._clock.wall_ns() - ttl if ttl else 0
            max_attempts = self.max_attempts
            # Putting a message in flight is written out here and in _dispatch_round_robin
            # rather than called: this loop runs once per message delivered.
            while room > 0:
                if memory:
                    msg = memory.popleft()
                else:
                    self._token = token  # reading may defer a record, which takes a token
                    got = self._next_message()
                    token = self._token
                    if got is None:
                        break
                    msg = got
                if msg.timestamp < expire_before:
                    self._expire(msg)
                    continue
                if max_attempts and msg.attempts >= max_attempts and self._publish_dead_letter(msg, "exhausted"):
                    continue
                if rate > 0 and self._rand.randrange(100) > rate:
                    continue  # sampled out: consumed without delivery, as nsqd does
                msg.attempts += 1
                msg.client_id = client_id
                msg.delivered_at = now
                msg.deadline = deadline
                token += 1
                msg.flight = token
                in_flight[msg.id] = msg
                heappush(pq, (deadline, token, msg))
                batch.append(msg)
                room -= 1
            self._token = token
            if not batch:
                return
            if deadline < self._timer_at:
                self._arm(deadline)
            client.send_messages(batch)

    def _dispatch_round_robin(self) -> None:
        consumers = self._consumers
        n = len(consumers)
        memory = self.memory
        backend = self.backend
        in_flight = self.in_flight
        heappush = heapq.heappush
        now = self._clock.now()
        ttl = self.ttl_ns
        expire_before = self._clock.wall_ns() - ttl if ttl else 0
        max_attempts = self.max_attempts
        rr = self._rr % n
        try:
            while memory or backend.depth():
                # The next ready consumer in turn, starting after the last one served.
                for _ in consumers:
                    client = consumers[rr]
                    rr += 1
                    if rr == n:
                        rr = 0
                    if client.is_ready():
                        break
                else:
                    break
                if memory:
                    msg = memory.popleft()
                else:
                    got = self._next_message()
                    if got is None:
                        break
                    msg = got
                if msg.timestamp < expire_before:
                    self._expire(msg)
                    continue
                if max_attempts and msg.attempts >= max_attempts and self._publish_dead_letter(msg, "exhausted"):
                    continue
                rate = client.sample_rate
                if rate > 0 and self._rand.randrange(100) > rate:
                    continue  # sampled out: consumed without delivery, as nsqd does
                # In flight, written out as in _dispatch_to_one.
                msg.attempts += 1
                msg.client_id = client.id
                msg.delivered_at = now
                deadline = now + client.msg_timeout
                msg.deadline = deadline
                token = self._token + 1
                self._token = token
                msg.flight = token
                in_flight[msg.id] = msg
                heappush(self._in_flight_pq, (deadline, token, msg))
                if deadline < self._timer_at:
                    self._arm(deadline)
                client.send_message(msg)
        finally:
            self._rr = rr

    # -- acknowledgements -----------------------------------------------------------

    def _pop_in_flight(self, client_id: int, msg_id: bytes) -> Message | str:
        msg = self.in_flight.get(msg_id)
        if msg is None:
            return "ID not in flight"
        if msg.client_id != client_id:
            return "client does not own message"
        del self.in_flight[msg_id]
        msg.flight = 0
        self._stale += 1
        if self._stale > _COMPACT_MIN and self._stale > len(self.in_flight):
            self._compact()
        return msg

    def finish(self, client_id: int, msg_id: bytes) -> str | None:
        """FIN: an error text when the message is not in flight to this client."""
        # _pop_in_flight inlined: this runs once per message.
        msg = self.in_flight.get(msg_id)
        if msg is None:
            return "ID not in flight"
        if msg.client_id != client_id:
            return "client does not own message"
        del self.in_flight[msg_id]
        msg.flight = 0
        self._stale += 1
        if self._stale > _COMPACT_MIN and self._stale > len(self.in_flight):
            self._compact()
        if msg.disk_pos is not None:
            self._release(msg)
        e2e = self.e2e
        if e2e is not None:
            e2e.insert(msg.timestamp)
        return None

    def finish_many(self, client_id: int, msg_ids: list[bytes]) -> list[tuple[bytes, str]]:
        """FIN of each id in turn (a consumer's run of FINs); those that failed, with why."""
        failed: list[tuple[bytes, str]] = []
        finish = self.finish
        for msg_id in msg_ids:
            err = finish(client_id, msg_id)
            if err is not None:
                failed.append((msg_id, err))
        return failed

    def requeue(self, client_id: int, msg_id: bytes, delay: float) -> str | None:
        """REQ: back to the queue now, or after ``delay`` seconds."""
        got = self._pop_in_flight(client_id, msg_id)
        if isinstance(got, str):
            return got
        self.requeue_count += 1
        if self.max_attempts and got.attempts >= self.max_attempts:
            self._dead_letter(got, "requeued")
        elif delay <= 0:
            self._put_back(got)
        else:
            self._start_deferred(got, delay)
        return None

    def touch(self, client_id: int, msg_id: bytes, msg_timeout: float) -> str | None:
        """TOUCH: restart the timeout, never past --max-msg-timeout since delivery."""
        msg = self.in_flight.get(msg_id)
        if msg is None:
            return "ID not in flight"
        if msg.client_id != client_id:
            return "client does not own message"
        now = self._clock.now()
        deadline = now + msg_timeout
        max_timeout = self._nsqd.opts.max_msg_timeout
        if deadline - msg.delivered_at >= max_timeout:
            deadline = msg.delivered_at + max_timeout
        msg.deadline = deadline
        self._token += 1
        msg.flight = self._token
        self._stale += 1
        heapq.heappush(self._in_flight_pq, (deadline, self._token, msg))
        if deadline < self._timer_at:
            self._arm(deadline)
        return None

    def _start_deferred(self, msg: Message, delay: float) -> None:
        due = self._clock.now() + delay
        msg.deadline = due
        self._token += 1
        msg.flight = self._token
        self.deferred[msg.id] = msg
        heapq.heappush(self._deferred_pq, (due, self._token, msg))
        if due < self._timer_at:
            self._arm(due)

    def _compact(self) -> None:
        self._in_flight_pq = [e for e in self._in_flight_pq if e[2].flight == e[1]]
        heapq.heapify(self._in_flight_pq)
        self._stale = 0

    # -- beyond nsqd: dead letters and TTL --------------------------------------------

    def set_dead_letter(self, max_attempts: int, topic: str) -> None:
        """After ``max_attempts`` deliveries a REQ or timeout moves a message to ``topic`` (0: never)."""
        self.max_attempts = max_attempts
        self.dead_letter_topic = topic if max_attempts else ""

    def _dead_letter(self, msg: Message, reason: Reason) -> None:
        """A REQ or timeout after the last attempt: to the dead-letter topic, or requeued if it refuses."""
        if not self._publish_dead_letter(msg, reason):
            self._put_back(msg)

    def _publish_dead_letter(self, msg: Message, reason: Reason) -> bool:
        """Publish ``msg`` in an envelope to the dead-letter topic, then let it go.

        A disk-only channel keeps the message's record until the envelope is
        fsynced in every queue it went to, so no crash loses both; if that
        fsync fails, the message is requeued (a dead letter may then come
        twice; none is lost).  False, with the message still this channel's
        to place, when the topic refuses the envelope.

        A message comes to be delivered with its attempts already spent
        ("exhausted") when a clean exit wrote it while it was in flight, or
        when max_attempts was lowered; delivering it would pass max_attempts.
        """
        nsqd = self._nsqd
        letter = DeadLetter(self.topic_name, self.name, msg.id, msg.attempts, msg.timestamp, reason, msg.body)
        try:
            topic = nsqd.get_topic(self.dead_letter_topic)
            topic.put_message(topic.new_message(encode_envelope(letter)))
        except Exception as exc:  # PublishRefused, BackendError: keep the message here
            nsqd.log("WARNING", f"CHANNEL({self.topic_name}:{self.name}): dead letter to {self.dead_letter_topic} failed, kept - {exc}")
            return False
        self.dead_lettered_count += 1
        nsqd.notify("message_dead_lettered", topic, (self, msg))
        pos = msg.disk_pos
        if not self._tracked or pos is None:
            return True
        queues = topic.durable_queues()
        if not queues:
            self._release(msg)
            return True
        waiting = [len(queues), 0]  # callbacks to come, failures

        def synced(exc: Exception | None) -> None:
            waiting[0] -= 1
            waiting[1] += exc is not None
            if waiting[0] or self.closed or pos not in self._outstanding:
                return  # closed, or emptied meanwhile: its record is gone already
            if waiting[1]:
                self._put_back(msg)
                self.dispatch()
            else:
                self._release(msg)

        for queue in queues:
            queue.on_synced(synced)
        return True

    def _expire(self, msg: Message) -> None:
        """Past the topic's TTL: dropped and counted, never delivered."""
        self.expired_count += 1
        msg.flight = 0
        self._release(msg)
        topic = self._nsqd.topics.get(self.topic_name)
        if topic is not None:
            self._nsqd.notify("message_expired", topic, (self, msg))

    # -- the timer ------------------------------------------------------------------

    def _arm(self, at: float) -> None:
        timer = self._timer
        if timer is not None:
            timer.cancel()
        self._timer_at = at
        self._timer = self._clock.call_later(at - self._clock.now(), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        if self.closed:
            return
        now = self._clock.now()
        pq = self._in_flight_pq
        while pq and pq[0][0] <= now:
            _, token, msg = heapq.heappop(pq)
            if msg.flight != token:
                self._stale -= 1
                continue
            if self.in_flight.get(msg.id) is msg:
                del self.in_flight[msg.id]
            msg.flight = 0
            self.timeout_count += 1
            owner = self.clients.get(msg.client_id)
            if owner is not None:
                owner.timed_out_message()
            if self.max_attempts and msg.attempts >= self.max_attempts:
                self._dead_letter(msg, "timed_out")
            else:
                self._put_back(msg)
        dq = self._deferred_pq
        while dq and dq[0][0] <= now:
            _, token, msg = heapq.heappop(dq)
            if msg.flight != token:
                continue
            del self.deferred[msg.id]
            msg.flight = 0
            self._put_back(msg)
        self._arm_next()
        self.dispatch()

    def _arm_next(self) -> None:
        pq = self._in_flight_pq
        while pq and pq[0][2].flight != pq[0][1]:
            heapq.heappop(pq)
            self._stale -= 1
        at = pq[0][0] if pq else math.inf
        if self._deferred_pq:
            at = min(at, self._deferred_pq[0][0])
        if at < math.inf and at < self._timer_at:
            self._arm(at)

    # -- administration -------------------------------------------------------------

    def pause(self) -> None:
        self.paused = True
        self._nsqd.persist_metadata()

    def unpause(self) -> None:
        self.paused = False
        self._nsqd.persist_metadata()
        self.dispatch()

    def empty(self) -> None:
        """Drop every queued, in-flight and deferred message, as nsqd's channel empty does."""
        for msg in self.in_flight.values():
            msg.flight = 0
        for msg in self.deferred.values():
            msg.flight = 0
        self.memory.clear()
        self.in_flight.clear()
        self.deferred.clear()
        self._in_flight_pq.clear()
        self._deferred_pq.clear()
        self._stale = 0
        self._due_here.clear()  # the records go with the queue
        self._outstanding.clear()
        self._held.clear()
        self.deferred_on_disk = 0
        self.backend.empty()
        for client in self._consumers:
            client.empty()
        self.dispatch()

    def close(self, deleted: bool) -> None:
        """Stop: disconnect consumers; drop the backend if ``deleted``, else save everything to it.

        On a clean exit every message the channel holds (queued, in flight,
        deferred) is written to its disk queue, as nsqd does; deferred ones keep
        their due time, which nsqd loses.
        """
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for client in list(self._consumers):
            client.close()
        if deleted:
            self.backend.delete()
            return
        if is_durable(self.backend) and self._flush_to_backend() and self._tracked:
            # Every held message was just written again: let the old records go,
            # so a clean restart delivers each of them once.
            self._outstanding.clear()
            self._held.clear()
            self.backend.commit(None)
        try:
            self.backend.close()
        except BackendError as exc:
            self._nsqd.backend_failed(self.backend, exc)

    def _flush_to_backend(self) -> bool:
        now = self._clock.now()
        wall = self._clock.wall_ns()
        records = [encode_message_record(m) for m in self.memory]
        records += [encode_message_record(m) for m in self.in_flight.values()]
        records += [encode_message_record(m, wall + max(1, int((m.deadline - now) * 1e9))) for m in self.deferred.values()]
        for record in records:
            try:
                # past --max-disk-bytes-per-queue if need be: these were accepted already
                self.backend.put(record, bounded=False)
            except BackendError as exc:
                self._nsqd.backend_failed(self.backend, exc)
                return False
        self.deferred_on_disk += len(self.deferred)
        self.memory.clear()
        self.in_flight.clear()
        self.deferred.clear()
        return True


def wall_drift(written: tuple[int, float] | None, wall_ns: int, now: float) -> int:
    """How far the wall clock moved against the monotonic one since ``written`` (both
    clocks then; None: another life wrote it), in ns; 0 below a millisecond, which is
    rounding, not a clock that was stepped or skewed."""
    if written is None:
        return 0
    drift = (wall_ns - written[0]) - round((now - written[1]) * 1e9)
    return drift if abs(drift) > 1_000_000 else 0
