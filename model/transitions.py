"""How each action changes the state: the mechanics behind ``spec.step``.

A step works on mutable copies of the parts it changes and builds a new
``State`` at the end; ghost fields are copied only when written, since most
steps touch one or two of them.  The rules themselves are described in
``spec.py``; the comments here say where they come from in the broker.
"""

from __future__ import annotations

from typing import Any

from model import disklog
from model.disklog import Log, Rec
from model.state import (
    ACKED,
    FAILED,
    LETTER_SYNCED,
    LETTER_WRITTEN,
    NO_RECORD,
    PENDING,
    READ_SYNCED,
    Action,
    Channel,
    Config,
    Consumer,
    Deferred,
    Held,
    InFlight,
    Letter,
    Mode,
    State,
    Topic,
    commit_point,
    durable,
    exhausted,
    holds,
    pending_messages,
)

__all__ = ["step"]


def step(cfg: Config, s: State, a: Action) -> State:
    t = _Step(cfg, s)
    getattr(t, "do_" + a.kind)(a)
    if cfg.sync_always:
        t.sync_everything()
    return t.state()


class _Step:
    def __init__(self, cfg: Config, s: State) -> None:
        self.cfg = cfg
        self.before = s
        self.nc = len(cfg.channels)
        self.topic = s.topic
        self.channels = list(s.channels)
        self.consumers = list(s.consumers)
        self.g = s.ghost
        self.ages = s.ages
        self.written: dict[str, list[Any]] = {}

    def w(self, name: str) -> list[Any]:
        """Ghost field ``name``, as a list this step may change."""
        got = self.written.get(name)
        if got is None:
            got = self.written[name] = list(getattr(self.g, name))
        return got

    def r(self, name: str) -> Any:
        """Ghost field ``name``, as this step has left it so far."""
        got = self.written.get(name)
        return got if got is not None else getattr(self.g, name)

    def state(self) -> State:
        g = self.g
        if self.written:
            changes: dict[str, Any] = {k: tuple(v) for k, v in self.written.items()}
            g = g._replace(**changes)
        return State(self.topic, tuple(self.channels), tuple(self.consumers), g, self.ages)

    def i(self, m: int, c: int) -> int:
        return m * self.nc + c

    # -- queues ---------------------------------------------------------------------

    def put(self, c: int, m: int, attempts: int) -> None:
        """A message from the topic: memory if there is room, else the disk queue."""
        ch = self.channels[c]
        cfg = self.cfg
        if len(ch.memory) < cfg.mem_size:
            ch = ch._replace(memory=(*ch.memory, Held(m, attempts)))
        elif durable(cfg, c):
            ch = ch._replace(log=disklog.append(ch.log, Rec(m, attempts)))
        else:
            self.lose(m, c, "ephemeral_overflow")
        self.channels[c] = ch

    def put_deferred(self, c: int, m: int, attempts: int, delay: int) -> None:
        ch = self.channels[c]
        if self.cfg.tracked and durable(self.cfg, c):
            ch = ch._replace(log=disklog.append(ch.log, Rec(m, attempts, delay)))
        else:
            ch = ch._replace(deferred=(*ch.deferred, Deferred(m, attempts, NO_RECORD, delay)))
        self.channels[c] = ch

    def put_back(self, c: int, m: int, attempts: int, ref: int) -> None:
        """A timed-out, requeued or due message (``Channel._put_back``)."""
        ch = self.channels[c]
        cfg = self.cfg
        if (cfg.tracked and durable(cfg, c)) or len(ch.memory) < cfg.mem_size:
            # A disk-only channel still holds its record: back in memory, nothing written.
            ch = ch._replace(memory=(*ch.memory, Held(m, attempts, ref)))
        elif durable(cfg, c):
            ch = ch._replace(log=disklog.append(ch.log, Rec(m, attempts)))
        else:
            self.lose(m, c, "ephemeral_overflow")
        self.channels[c] = ch

    def lose(self, m: int, c: int, why: str) -> None:
        i = self.i(m, c)
        if self.r("expected")[i] and not self.r("lost")[i]:
            self.w("lost")[i] = why

    def sync(self, c: int) -> None:
        """Fsync channel ``c``'s data and move its durable read position to the commit point."""
        ch = self.channels[c]
        log, shift = disklog.synced(ch.log, commit_point(self.cfg, ch))
        if shift:

            def moved(ref: int) -> int:
                if ref < 0:
                    return ref
                return ref - shift if ref >= shift else READ_SYNCED

            ch = Channel(
                ch.exists,
                ch.paused,
                tuple(Held(h.msg, h.attempts, moved(h.ref)) for h in ch.memory),
                tuple(f._replace(ref=moved(f.ref)) for f in ch.in_flight),
                tuple(Deferred(d.msg, d.attempts, moved(d.ref), d.due) for d in ch.deferred),
                log,
                tuple(Letter(x.msg, moved(x.ref)) for x in ch.letters),
            )
        else:
            ch = ch._replace(log=log)
        self.channels[c] = ch
        self.covered(c)

    def sync_topic(self) -> None:
        log = self.topic.log
        if log.records or log.read:
            self.topic = self.topic._replace(log=disklog.synced(log, log.read)[0])
        self.covered(self.nc)

    def covered(self, q: int) -> None:
        """Queue ``q`` was fsynced: a durable publish waiting for it need not any more.

        The answer goes out in the same turn as the last fsync it waited for
        (``ClientV2._synced``).
        """
        if not any(q in waits for waits in self.r("awaiting")):
            return
        awaiting = self.w("awaiting")
        for m, waits in enumerate(awaiting):
            if q in waits:
                awaiting[m] = waits - {q}
                if not awaiting[m] and self.r("ack")[m] == PENDING:
                    self.w("ack")[m] = ACKED

    def sync_everything(self) -> None:
        for c, ch in enumerate(self.channels):
            if ch.exists and durable(self.cfg, c):
                self.sync(c)
        self.sync_topic()

    def drain(self) -> None:
        """The topic's first channel appeared, or nsqd restarted: hand on what the topic held (``Topic.drain``)."""
        existing = [c for c, ch in enumerate(self.channels) if ch.exists]
        topic = self.topic
        if not existing or not (topic.memory or topic.log.unread):
            return
        items = [(m, 0, delay) for m, delay in topic.memory]
        items += [(r.msg, r.attempts, r.due) for r in topic.log.unread]
        from_disk = bool(topic.log.unread)
        self.topic = topic._replace(memory=(), log=topic.log._replace(read=len(topic.log.records)))
        topic_held = self.w("topic_held")
        expected = self.w("expected")
        for m, _, _ in items:
            topic_held[m] = False
        for c in existing:
            for m, attempts, delay in items:
                expected[self.i(m, c)] = True
                if delay <= 0:
                    self.put(c, m, attempts)
            for m, attempts, delay in items:
                if delay > 0:
                    self.put_deferred(c, m, attempts, delay)
        if from_disk:
            # The channels' queues are fsynced before the topic's read position moves.
            for c in existing:
                if durable(self.cfg, c):
                    self.sync(c)
            self.sync_topic()

    def take_in_flight(self, c: int, m: int) -> InFlight:
        ch = self.channels[c]
        f = next(f for f in ch.in_flight if f.msg == m)
        self.channels[c] = ch._replace(in_flight=tuple(x for x in ch.in_flight if x is not f))
        return f

    def create(self, c: int) -> None:
        self.topic = self.topic._replace(exists=True)
        self.channels[c] = Channel(exists=True)
        if sum(1 for ch in self.channels if ch.exists) == 1:
            self.drain()

    def drop_letters(self, c: int, why: str) -> None:
        """An operator's delete or empty lets go of the records dead letters were waiting with:
        the envelope, not yet fsynced, is all there is of them."""
        for x in self.channels[c].letters:
            if self.r("dead")[self.i(x.msg, c)] == LETTER_WRITTEN:
                self.lose(x.msg, c, why)

    def holds_now(self, c: int, m: int) -> bool:
        ch = self.channels[c]
        return holds(ch, m) or ch.log.holds(m)

    def remove_channel(self, c: int, why: str) -> None:
        self.drop_letters(c, why)
        for m in range(self.g.published):
            if self.holds_now(c, m):
                self.lose(m, c, why)
        self.channels[c] = Channel()
        for k, ck in enumerate(self.cfg.consumers):
            if ck == c:
                self.consumers[k] = Consumer()

    # -- clients --------------------------------------------------------------------

    def do_publish(self, a: Action) -> None:
        cfg = self.cfg
        m = self.g.published
        delay = a.a
        self.g = self.g._replace(published=m + 1)
        self.topic = self.topic._replace(exists=True)
        self.w("dpub_wait")[m] = delay
        existing = [c for c, ch in enumerate(self.channels) if ch.exists]
        expected = self.w("expected")
        for c in existing:
            expected[self.i(m, c)] = True
            if delay:
                self.put_deferred(c, m, 0, delay)
            else:
                self.put(c, m, 0)
        if existing:
            waits = frozenset(c for c in existing if durable(cfg, c))
        else:
            self.w("topic_held")[m] = True
            topic = self.topic
            if len(topic.memory) < cfg.mem_size:
                self.topic = topic._replace(memory=(*topic.memory, (m, delay)))
            else:
                self.topic = topic._replace(log=disklog.append(topic.log, Rec(m, 0, delay)))
            waits = frozenset({self.nc})
        if cfg.mode is Mode.DURABLE and waits:
            self.w("ack")[m] = PENDING
            self.w("awaiting")[m] = waits
        else:
            self.w("ack")[m] = ACKED

    def do_create(self, a: Action) -> None:
        self.create(a.a)

    def do_subscribe(self, a: Action) -> None:
        c = self.cfg.consumers[a.a]
        if not self.channels[c].exists:
            self.create(c)
        self.consumers[a.a] = Consumer(True, self.cfg.rdy)

    def do_rdy(self, a: Action) -> None:
        self.consumers[a.a] = Consumer(True, a.b)

    def do_disconnect(self, a: Action) -> None:
        k = a.a
        c = self.cfg.consumers[k]
        self.g = self.g._replace(disconnects=self.g.disconnects + 1)
        self.consumers[k] = Consumer()
        ch = self.channels[c]
        # Messages in flight to it stay in flight until they time out, as in nsqd.
        self.channels[c] = ch._replace(in_flight=tuple(f._replace(holder=-1) if f.holder == k else f for f in ch.in_flight))
        others = any(self.consumers[j].subscribed for j, cj in enumerate(self.cfg.consumers) if cj == c)
        if self.cfg.ephemeral(c) and not others:
            self.remove_channel(c, "ephemeral_gone")

    def take_next(self, c: int) -> tuple[int, int, int]:
        """(message, attempts, ref) of the next message a dispatch of ``c`` takes, taken."""
        ch = self.channels[c]
        if ch.memory:
            m, attempts, ref = ch.memory[0]
            self.channels[c] = ch._replace(memory=ch.memory[1:])
        else:
            log = ch.log
            ref = log.read
            rec = log.records[ref]
            m, attempts = rec.msg, rec.attempts
            self.channels[c] = ch._replace(log=log._replace(read=ref + 1))
        return m, attempts, ref

    def do_deliver(self, a: Action) -> None:
        c, k = a.a, a.b
        m, attempts, ref = self.take_next(c)
        attempts = min(attempts + 1, self.cfg.attempts_bound)
        flight = InFlight(m, attempts, ref, k, self.cfg.msg_timeout, 0)
        ch = self.channels[c]
        self.channels[c] = ch._replace(in_flight=(*ch.in_flight, flight))
        i = self.i(m, c)
        self.w("attempts")[i] = attempts
        if self.g.reread[i]:
            self.w("reread")[i] = False

    def do_read(self, a: Action) -> None:
        """The next record is deferred (it waits in memory) or stale (it is let go)."""
        c = a.a
        ch = self.channels[c]
        log = ch.log
        ref = log.read
        rec = log.records[ref]
        ch = ch._replace(log=log._replace(read=ref + 1))
        if not rec.stale:
            ch = ch._replace(deferred=(*ch.deferred, Deferred(rec.msg, rec.attempts, ref, rec.due)))
        self.channels[c] = ch

    def do_expire(self, a: Action) -> None:
        """The next message is past the TTL: dropped and its record let go, as a FIN would (``Channel._expire``)."""
        c = a.a
        m, _, _ = self.take_next(c)
        self.w("expired")[self.i(m, c)] = True

    def do_dead_letter(self, a: Action) -> None:
        """The next message already had max_attempts: dead-lettered where it would have been
        delivered.  Only a clean exit writes such a message (it was in flight)."""
        c = a.a
        m, _, ref = self.take_next(c)
        self.dead_letter(c, m, ref)

    def dead_letter(self, c: int, m: int, ref: int) -> None:
        """Published to the dead-letter topic instead of delivered again (``Channel._dead_letter``).

        A disk-only channel keeps the record until the envelope is fsynced (a
        ``Letter``); otherwise the message is gone from the channel at once.
        """
        self.w("dead")[self.i(m, c)] = LETTER_WRITTEN
        if self.cfg.tracked and durable(self.cfg, c):
            if "dead_letter_releases_early" in self.cfg.bugs:
                ref = NO_RECORD
            ch = self.channels[c]
            self.channels[c] = ch._replace(letters=(*ch.letters, Letter(m, ref)))

    def do_fin(self, a: Action) -> None:
        c = self.cfg.consumers[a.a]
        self.take_in_flight(c, a.b)
        self.w("finished")[self.i(a.b, c)] = True

    def do_req(self, a: Action) -> None:
        k, m, delay = a.a, a.b, a.c
        c = self.cfg.consumers[k]
        f = self.take_in_flight(c, m)
        if exhausted(self.cfg, f.attempts + ("dead_letter_one_early" in self.cfg.bugs)):
            self.dead_letter(c, m, f.ref)  # whatever the delay
            return
        i = self.i(m, c)
        if delay or self.g.req_wait[i]:
            self.w("req_wait")[i] = delay
        if delay == 0:
            self.put_back(c, m, f.attempts, f.ref)
        else:
            # Deferred in memory; a disk-only channel keeps holding its one record,
            # so a crash forgets the delay but not the message.
            ch = self.channels[c]
            self.channels[c] = ch._replace(deferred=(*ch.deferred, Deferred(m, f.attempts, f.ref, delay)))

    def do_touch(self, a: Action) -> None:
        """A new deadline, never past max_msg_timeout since delivery; it goes to the back of
        the timeout order, as its new heap entry does in the broker."""
        cfg = self.cfg
        c = cfg.consumers[a.a]
        f = self.take_in_flight(c, a.b)
        f = f._replace(deadline=min(cfg.msg_timeout, cfg.max_msg_timeout - f.age))
        ch = self.channels[c]
        self.channels[c] = ch._replace(in_flight=(*ch.in_flight, f))

    # -- timers ---------------------------------------------------------------------

    def do_timer(self, a: Action) -> None:
        """The channel's timer: every expired in-flight message times out, then every due
        deferred one is put back, in the order they were scheduled (``Channel._on_timer``)."""
        c = a.a
        ch = self.channels[c]
        expired = [f for f in ch.in_flight if f.deadline == 0]
        due = [d for d in ch.deferred if d.due == 0]
        if "lost_wakeup" in self.cfg.bugs:
            due = []
        self.channels[c] = ch._replace(
            in_flight=tuple(f for f in ch.in_flight if f.deadline != 0),
            deferred=tuple(d for d in ch.deferred if d.due != 0 or not due),
        )
        for f in expired:
            if exhausted(self.cfg, f.attempts):
                self.dead_letter(c, f.msg, f.ref)
            elif "timeout_drops" not in self.cfg.bugs:
                self.put_back(c, f.msg, f.attempts, f.ref)
        for d in due:
            self.put_back(c, d.msg, d.attempts, d.ref)

    def do_tick(self, a: Action) -> None:
        cap = self.cfg.max_msg_timeout
        for c, ch in enumerate(self.channels):
            if not ch.exists or not (ch.in_flight or ch.deferred or ch.log.records):
                continue
            self.channels[c] = Channel(
                ch.exists,
                ch.paused,
                ch.memory,
                tuple(InFlight(f.msg, f.attempts, f.ref, f.holder, f.deadline - 1, min(f.age + 1, cap)) for f in ch.in_flight),
                tuple(Deferred(d.msg, d.attempts, d.ref, d.due - 1) for d in ch.deferred),
                disklog.tick(ch.log),
                ch.letters,
            )
        if self.topic.log.records:
            self.topic = self.topic._replace(log=disklog.tick(self.topic.log))
        for name in ("dpub_wait", "req_wait"):
            if any(getattr(self.g, name)):
                self.written[name] = [max(0, x - 1) for x in getattr(self.g, name)]
        if self.cfg.ttl:
            # Published messages age (their timestamps stay put); past ttl + 1 nothing tells them apart.
            top = self.cfg.ttl + 1
            self.ages = tuple(min(x + 1, top) if m < self.g.published else x for m, x in enumerate(self.ages))

    def do_sync(self, a: Action) -> None:
        if a.a == self.nc:
            self.sync_topic()
        else:
            self.sync(a.a)

    def do_commit(self, a: Action) -> None:
        if a.a == self.cfg.dead_letter_queue:
            # The dead-letter topic's group commit: every envelope written so far is
            # durable, and each disk-only channel lets the original's record go.
            dead = self.w("dead")
            for c, ch in enumerate(self.channels):
                for x in ch.letters:
                    dead[self.i(x.msg, c)] = LETTER_SYNCED
                if ch.letters:
                    self.channels[c] = ch._replace(letters=())
            return
        if a.a == self.nc:
            self.topic = self.topic._replace(log=disklog.group_commit(self.topic.log))
        else:
            ch = self.channels[a.a]
            self.channels[a.a] = ch._replace(log=disklog.group_commit(ch.log))
        self.covered(a.a)

    # -- operators ------------------------------------------------------------------

    def do_pause(self, a: Action) -> None:
        self.g = self.g._replace(admin=self.g.admin + 1)
        self.channels[a.a] = self.channels[a.a]._replace(paused=True)

    def do_unpause(self, a: Action) -> None:
        self.channels[a.a] = self.channels[a.a]._replace(paused=False)

    def do_delete(self, a: Action) -> None:
        c = a.a
        self.g = self.g._replace(admin=self.g.admin + 1)
        if any(c in waits for waits in self.g.awaiting):
            ack = self.w("ack")
            awaiting = self.w("awaiting")
            for m, waits in enumerate(awaiting):
                if c in waits:
                    # The queue closes under the waiting publish: it is answered with an error.
                    ack[m] = FAILED
                    awaiting[m] = frozenset()
        self.remove_channel(c, "channel_deleted")

    def do_empty(self, a: Action) -> None:
        c = a.a
        self.g = self.g._replace(admin=self.g.admin + 1)
        self.drop_letters(c, "channel_emptied")
        for m in range(self.g.published):
            if self.holds_now(c, m):
                self.lose(m, c, "channel_emptied")
        self.channels[c] = Channel(exists=True, paused=self.channels[c].paused)
        self.covered(c)  # emptying syncs the (now empty) queue

    # -- faults ---------------------------------------------------------------------

    def do_crash(self, a: Action) -> None:
        power = a.a == 1
        self.g = self.g._replace(crashes=self.g.crashes + 1)
        keep: list[int | None] = list(a.keep) if power else [None] * (self.nc + 1)
        if PENDING in self.g.ack:
            ack = self.w("ack")
            awaiting = self.w("awaiting")
            for m, state in enumerate(ack):
                if state == PENDING:
                    ack[m] = FAILED  # the answer never came: the outcome is unknown to the client
                    awaiting[m] = frozenset()
        if "crash_loses_in_flight" in self.cfg.bugs:
            for c, ch in enumerate(self.channels):
                refs = {f.ref for f in ch.in_flight}
                records = tuple(r for n, r in enumerate(ch.log.records) if n not in refs)
                self.channels[c] = ch._replace(log=Log(records, 0, min(ch.log.synced, len(records))))
        self.come_back(keep, "crash")

    def do_restart(self, a: Action) -> None:
        """A clean exit writes what each channel holds in memory to its disk queue (deferred
        ones with their due time) and lets older records go; the topic's memory too."""
        cfg = self.cfg
        self.g = self.g._replace(restarts=self.g.restarts + 1)
        for c, ch in enumerate(self.channels):
            if not ch.exists or not durable(cfg, c):
                continue
            recs = [Rec(h.msg, h.attempts) for h in ch.memory]
            recs += [Rec(f.msg, f.attempts) for f in ch.in_flight]
            recs += [Rec(d.msg, d.attempts, d.due) for d in ch.deferred]
            log = ch.log
            for r in recs:
                log = disklog.append(log, r)
            self.channels[c] = Channel(True, ch.paused, log=log)
            self.sync(c)
        topic = self.topic
        log = topic.log
        for m, delay in topic.memory:
            log = disklog.append(log, Rec(m, 0, delay))
        self.topic = topic._replace(memory=(), log=log)
        self.sync_topic()
        if PENDING in self.g.ack:
            ack = self.w("ack")
            awaiting = self.w("awaiting")
            for m, state in enumerate(ack):
                if state == PENDING:
                    ack[m] = ACKED  # everything was fsynced on the way out
                    awaiting[m] = frozenset()
        if LETTER_WRITTEN in self.g.dead:
            # The dead-letter topic is fsynced on the way out too; a disk-only channel
            # let go of the records its letters waited with (``Channel.close``).
            self.written["dead"] = [LETTER_SYNCED if x == LETTER_WRITTEN else x for x in self.g.dead]
        self.come_back([None] * (self.nc + 1), "restart")

    def come_back(self, keep: list[int | None], why: str) -> None:
        """A new process on the same disk: memory is gone, disk queues are read from their base."""
        cfg = self.cfg
        topic = self.topic
        self.topic = Topic(topic.exists, (), disklog.after_crash(topic.log, keep[0]))
        for c, ch in enumerate(self.channels):
            if ch.exists and durable(cfg, c):
                log = disklog.after_crash(ch.log, keep[c + 1])
                # After a crash the records read again are deduplicated afresh; a clean
                # exit keeps the marks the last crash left (nsqd.dat's "replay" window:
                # Channel.replay_window), so a record still to be let go stays so.
                if why == "crash" and "no_reread_dedup" not in cfg.bugs:
                    log = disklog.dedupe(log)
                self.channels[c] = Channel(True, ch.paused, log=log)
            else:
                self.channels[c] = Channel()  # ephemeral channels are not saved
        self.consumers = [Consumer()] * len(self.consumers)
        self.drain()
        self.account_restart(why)

    def account_restart(self, why: str) -> None:
        """Ghost bookkeeping: what the restart lost, which FINs and REQ delays it undid,
        which records it read again (a clean exit writes each message anew, so only a
        crash does any of that)."""
        crash = why == "crash"
        topic = self.topic
        in_topic = {m for m, _ in topic.memory} | {r.msg for r in topic.log.unread}
        for m in range(self.g.published):
            if self.r("topic_held")[m] and not self.r("topic_lost")[m] and m not in in_topic:
                self.w("topic_lost")[m] = why
        for c in range(self.nc):
            was = pending_messages(self.before.channels[c])
            now = pending_messages(self.channels[c])
            for m in range(self.g.published):
                i = self.i(m, c)
                if m in now:
                    if crash:
                        self.w("reread")[i] = True
                    if self.r("finished")[i]:
                        self.w("finished")[i] = False  # the FIN is undone: it will come again
                    if self.r("dead")[i]:
                        self.w("dead")[i] = 0  # it will be delivered (and dead-lettered) again
                    if self.r("expired")[i]:
                        self.w("expired")[i] = False
                elif m in was:
                    self.lose(m, c, "ephemeral_at_restart" if self.cfg.ephemeral(c) else why)
                elif crash and self.r("dead")[i] == LETTER_WRITTEN:
                    # Neither its record nor (for all the model knows) its unsynced envelope is left.
                    self.lose(m, c, why)
                if crash and self.r("req_wait")[i]:
                    self.w("req_wait")[i] = 0
