"""The broker core and the specification, driven with the same actions and compared.

``Pair`` runs one nsqd on fake ports (``tests/unit/nsqd/harness.py``: the
fake clock, fake connections and the in-memory file system, so that a crash
can be a process kill or a power loss) and the model (``model.spec``) side by
side.  Each method is one action on both; afterwards every observable is
compared, and an ``AssertionError`` says where they differ:

* the messages each consumer received, with their attempts, in order;
* whether FIN, REQ and TOUCH were accepted;
* per channel: existence, paused, depth, in-flight and deferred counts; the
  topic's depth; which consumers are still connected;
* which messages each channel dead-lettered and which it dropped past the
  TTL (the broker's ``message_dead_lettered`` and ``message_expired``
  notifications against the model's ghost ``dead`` and ``expired``).

With ``max_attempts`` or ``ttl`` every channel of the topic gets the option
the moment it is created, through the core calls ``/channel/create`` and
``/topic/create`` make (``Channel.set_dead_letter``, ``Topic.set_ttl``), and
a restarted nsqd must have them back from nsqd.dat.  Dead letters go to topic
``dl``, which the model does not follow; its group commit (the fsync a
disk-only channel waits for) runs when the fake clock next moves, as it
would on nsqd's next turn of the loop, so a crash or an fsync may come first.

The model is nondeterministic where the broker's choices are its own (which
ready consumer gets a message; how much of an unsynced file a power loss
keeps), so the bridge keeps the set of model states consistent with what was
observed so far, a "belief set", and fails when it becomes empty.  It is
almost always one state.

Time: one model tick is one second; the broker's TTL is half a second more
than the model's, so that the few milliseconds a restart moves the wall clock
on (``_next_process``) never tip a message over it.  Messages are published
with bodies ``m0``, ``m1``, ... so a delivery names its model message.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from broker.nsqd.channel import Channel
from broker.nsqd.message import Message
from broker.nsqd.topic import Topic
from broker.storage.memfs import MemoryFileSystem
from broker.wire import v2
from model import disklog
from model.spec import enabled, initial, step
from model.state import Action, Config, Mode, State
from tests.fakes import FakeClock
from tests.unit.nsqd.harness import Client, Node

__all__ = ["Pair"]

TOPIC = "t"
DEAD_LETTER_TOPIC = "dl"
_BIG = 10**6
_NO_ID = b"0" * 16
_ID_TICK = 4 << 20  # four of nsqd's pseudo-milliseconds (wall ns >> 20), in ns


Events = tuple[tuple[str, int, int], ...]  # ("dead" | "expired", message, channel), sorted


@dataclass
class _Seen:
    deliveries: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # consumer -> (message, attempts)
    errors: dict[int, list[bytes]] = field(default_factory=dict)
    responses: dict[int, list[bytes]] = field(default_factory=dict)  # heartbeats left out
    events: Events = ()


def _events(cfg: Config, s: State, t: State) -> Events:
    """What the model's step from ``s`` to ``t`` dead-lettered or expired."""
    nc = len(cfg.channels)
    out = [("dead", i // nc, i % nc) for i, (was, now) in enumerate(zip(s.ghost.dead, t.ghost.dead, strict=True)) if now and not was]
    out += [("expired", i // nc, i % nc) for i, (was, now) in enumerate(zip(s.ghost.expired, t.ghost.expired, strict=True)) if now and not was]
    return tuple(sorted(out))


def _minus(have: Events, take: Events) -> Events | None:
    """``have`` without ``take`` (as multisets), or None when ``take`` is not part of it."""
    if not take:
        return have
    left = Counter(have)
    left.subtract(take)
    if any(n < 0 for n in left.values()):
        return None
    return tuple(sorted(left.elements()))


class Pair:
    def __init__(
        self,
        mode: Mode,
        *,
        sync_every_op: bool = False,
        channels: tuple[str, ...] = ("a", "b"),
        consumers: tuple[int, ...] = (0, 0, 1),
        max_attempts: int = 0,
        ttl: int = 0,
    ) -> None:
        self.cfg = Config(
            mode,
            mem_queue_size=1,
            messages=8,
            channels=channels,
            consumers=consumers,
            rdy=2,
            rdy_changes=True,
            msg_timeout=3,
            max_msg_timeout=5,
            dpub_delays=(2,),
            req_delays=(0, 2),
            crashes=_BIG,
            restarts=_BIG,
            admin=_BIG,
            disconnects=_BIG,
            sync_always=sync_every_op,
            attempts_bound=_BIG,
            max_attempts=max_attempts,
            ttl=ttl,
        )
        self.opts = {
            "mem_queue_size": 1 if mode is Mode.DEFAULT else 0,
            "durable_publish": mode is Mode.DURABLE,
            "sync_every": 1 if sync_every_op else 10**9,
            "sync_timeout": 1e6,  # no timed syncs: the test decides when to fsync
            "msg_timeout": 3.0,
            "max_msg_timeout": 5.0,
        }
        self.fs = MemoryFileSystem()
        self.node = Node(self.fs, FakeClock(), **self.opts)
        self._broker_events: list[tuple[str, int, int]] = []
        self._listen()
        self.clients: list[Client | None] = [None] * len(consumers)
        self.beliefs: set[State] = {initial(self.cfg)}
        self.ids: dict[int, bytes] = {}  # model message -> nsqd's id, once delivered

    # -- the beyond-nsqd options -------------------------------------------------------

    def _listen(self) -> None:
        """Give every channel of the topic its options as it is created, and record what the
        channels dead-letter and expire."""
        self.node.nsqd.listeners.append(self._on_event)

    def _on_event(self, event: str, topic: Topic, obj: object) -> None:
        cfg = self.cfg
        nsqd = self.node.nsqd
        if event == "topic_created" and topic.name == TOPIC and cfg.ttl:
            topic.set_ttl(int((cfg.ttl + 0.5) * 1e9))
            nsqd.persist_metadata()
        elif event == "channel_created" and topic.name == TOPIC and cfg.max_attempts:
            assert isinstance(obj, Channel)
            obj.set_dead_letter(cfg.max_attempts, DEAD_LETTER_TOPIC)
            nsqd.persist_metadata()
        elif event in ("message_dead_lettered", "message_expired"):
            assert isinstance(obj, tuple)
            channel, msg = obj
            assert isinstance(channel, Channel) and isinstance(msg, Message)
            if channel.topic_name == TOPIC:
                kind = "dead" if event == "message_dead_lettered" else "expired"
                self._broker_events.append((kind, int(msg.body[1:]), cfg.channels.index(channel.name)))

    def _check_restored(self) -> None:
        """A new process has every option back from nsqd.dat."""
        topic = self.node.nsqd.topics.get(TOPIC)
        if topic is None:
            return
        assert topic.ttl_ns == (int((self.cfg.ttl + 0.5) * 1e9) if self.cfg.ttl else 0)
        for channel in topic.channels.values():
            want = (self.cfg.max_attempts, DEAD_LETTER_TOPIC if self.cfg.max_attempts else "")
            assert (channel.max_attempts, channel.dead_letter_topic) == want, channel.name
            assert channel.ttl_ns == topic.ttl_ns

    def _commit_letters(self) -> None:
        """The fake clock moved: the dead-letter topic's group commit ran, if one was due."""
        a = Action("commit", self.cfg.dead_letter_queue)
        self.beliefs = {step(self.cfg, s, a) if a in enabled(self.cfg, s) else s for s in self.beliefs}

    # -- what both sides show ---------------------------------------------------------

    @property
    def state(self) -> State:
        """One of the model states consistent with everything seen (any, if several)."""
        return min(self.beliefs, key=repr)

    def published(self) -> int:
        return self.state.ghost.published

    def in_flight(self) -> list[tuple[int, int]]:
        """(consumer, message) for each message in flight to a connected consumer (in the model)."""
        s = self.state
        return sorted((f.holder, f.msg) for ch in s.channels for f in ch.in_flight if f.holder >= 0 and self.connected(f.holder))

    def connected(self, k: int) -> bool:
        c = self.clients[k]
        return c is not None and not c.closed

    def _collect(self) -> _Seen:
        seen = _Seen()
        for k, client in enumerate(self.clients):
            if client is None:
                continue
            for kind, data in client.frames():
                if kind == v2.FRAME_MESSAGE:
                    _, attempts, msg_id, body = v2.decode_message(data)
                    m = int(body[1:])
                    self.ids[m] = msg_id
                    seen.deliveries.setdefault(k, []).append((m, attempts))
                elif kind == v2.FRAME_ERROR:
                    seen.errors.setdefault(k, []).append(data)
                elif data != v2.HEARTBEAT:
                    seen.responses.setdefault(k, []).append(data)
            if client.closed:
                self.clients[k] = None
        seen.events = tuple(sorted(self._broker_events))
        self._broker_events.clear()
        return seen

    def _broker_view(self) -> tuple[object, ...]:
        topic = self.node.nsqd.topics.get(TOPIC)
        chans: list[object] = []
        for name in self.cfg.channels:
            ch = topic.channels.get(name) if topic is not None else None
            # raw queue lengths: /stats's depth leaves out deferred records on disk (deferred_count has them)
            chans.append(None if ch is None else (ch.paused, len(ch.memory) + ch.backend.depth(), len(ch.in_flight), len(ch.deferred)))
        return (None if topic is None else topic.depth(), tuple(chans), tuple(self.connected(k) for k in range(len(self.clients))))

    def _model_view(self, s: State) -> tuple[object, ...]:
        t = s.topic
        chans = tuple(
            (ch.paused, len(ch.memory) + len(ch.log.unread), len(ch.in_flight), len(ch.deferred)) if ch.exists else None for ch in s.channels
        )
        return (len(t.memory) + len(t.log.unread) if t.exists else None, chans, tuple(con.subscribed for con in s.consumers))

    def _moved(self, s: State, a: Action) -> tuple[State, Events]:
        t = step(self.cfg, s, a)
        return t, _events(self.cfg, s, t)

    def _settle(self, starts: set[tuple[State, Events]], seen: _Seen, *, timers: bool = False) -> None:
        """Keep the states that, by dispatching (and firing due timers), show what the broker showed.

        ``starts``: the candidate states, each with what it dead-lettered or expired
        on the way there (part of what the broker showed).
        """
        nk = len(self.cfg.consumers)
        deliveries = tuple(tuple(seen.deliveries.get(k, [])) for k in range(nk))
        todo = []
        for s, shown in starts:
            left = _minus(seen.events, shown)
            if left is not None:
                todo.append((s, deliveries, left))
        visited = set()
        out: set[State] = set()
        dispatching = ("deliver", "read", "expire", "dead_letter")
        while todo:
            item = todo.pop()
            if item in visited:
                continue
            visited.add(item)
            s, rest, events = item
            moves = [a for a in enabled(self.cfg, s) if a.kind in dispatching or (timers and a.kind == "timer")]
            if not moves:
                if not any(rest) and not events:
                    out.add(s)
                continue
            for a in moves:
                t, shown = self._moved(s, a)
                left = _minus(events, shown)
                if left is None:
                    continue
                if a.kind != "deliver":
                    todo.append((t, rest, left))
                    continue
                k = a.b
                got = next(f for f in t.channels[a.a].in_flight[::-1] if f.holder == k)
                if rest[k] and rest[k][0] == (got.msg, got.attempts):
                    todo.append((t, (*rest[:k], rest[k][1:], *rest[k + 1 :]), left))
        view = self._broker_view()
        matching = {s for s in out if self._model_view(s) == view}
        assert matching, self._diverged(seen, out, view)
        self.beliefs = matching

    def _diverged(self, seen: _Seen, candidates: set[State], view: tuple[object, ...]) -> str:
        lines = [
            f"the broker and the model diverge: broker delivered {seen.deliveries}, errors {seen.errors}, events {seen.events}",
            f"broker view {view}",
        ]
        for s in sorted(candidates, key=repr)[:3]:
            lines.append(f"model view  {self._model_view(s)}")
        if not candidates:
            lines.append("no model state delivers that")
        return "\n".join(lines)

    def _apply(self, a: Action, *, timers: bool = False) -> None:
        states = {self._moved(s, a) for s in self.beliefs if a in enabled(self.cfg, s)}
        assert states, f"{a} is not possible in the model"
        self._settle(states, self._collect(), timers=timers)

    @staticmethod
    def _unmoved(states: set[State]) -> set[tuple[State, Events]]:
        return {(s, ()) for s in states}

    # -- clients ----------------------------------------------------------------------

    def publish(self, delay: int = 0) -> str:
        m = self.published()
        p = self.node.client()
        body = b"m%d" % m
        p.conn.send(v2.encode_dpub(TOPIC, delay * 1000, body) if delay else v2.encode_pub(TOPIC, body))
        states = {self._moved(s, Action("publish", delay)) for s in self.beliefs}
        self._settle(states, self._collect())
        if self.cfg.mode is Mode.DURABLE:
            self.node.clock.advance(0)  # the group commit runs on the next turn of the loop
            self._commit_letters()
            for q in sorted(set().union(*(s.ghost.awaiting[m] for s in self.beliefs))):
                self._apply(Action("commit", q))
        frames = p.frames()
        p.conn.close()
        assert frames == [(v2.FRAME_RESPONSE, v2.OK)], frames
        return f"{'DPUB' if delay else 'PUB'} m{m}" + (f" +{delay}s" if delay else "")

    def subscribe(self, k: int) -> str:
        assert not self.connected(k)
        client = self.node.client()
        client.conn.send(v2.encode_identify({"heartbeat_interval": 60000, "output_buffer_timeout": -1}))
        client.conn.send(f"SUB {TOPIC} {self.cfg.channels[self.cfg.consumers[k]]}\n".encode())
        client.conn.send(f"RDY {self.cfg.rdy}\n".encode())
        self.clients[k] = client
        a = Action("subscribe", k)
        states = {self._moved(s, a) for s in self.beliefs}
        seen = self._collect()
        assert seen.responses.get(k) == [v2.OK, v2.OK] and not seen.errors, (seen.responses, seen.errors)
        self._settle(states, seen)
        return f"k{k} subscribes"

    def rdy(self, k: int, n: int) -> str:
        client = self.clients[k]
        assert client is not None
        client.conn.send(b"RDY %d\n" % n)
        if all(s.consumers[k].rdy == n for s in self.beliefs):
            self._settle(self._unmoved(self.beliefs), self._collect())
        else:
            self._apply(Action("rdy", k, n))
        return f"k{k} RDY {n}"

    def _answer(self, k: int, m: int, command: bytes, action: Action) -> str:
        """FIN, REQ or TOUCH: accepted by both sides, or refused by both."""
        client = self.clients[k]
        assert client is not None
        client.conn.send(command)
        seen = self._collect()
        refused = any(e.split(b" ", 1)[0] in (b"E_FIN_FAILED", b"E_REQ_FAILED", b"E_TOUCH_FAILED") for e in seen.errors.get(k, []))
        c = self.cfg.consumers[k]
        holding = {s for s in self.beliefs if any(f.msg == m and f.holder == k for f in s.channels[c].in_flight)}
        keep = self.beliefs - holding if refused else holding
        assert keep, f"broker {'refused' if refused else 'accepted'} {command!r}; the model {'did not' if refused else 'did'} expect it to"
        if refused:
            self._settle(self._unmoved(keep), seen)
            return f"k{k} {command.decode().strip()} refused"
        if action.kind == "touch":
            keep = {s for s in keep if action in enabled(self.cfg, s)} or keep  # a TOUCH that changes nothing
            states = {self._moved(s, action) if action in enabled(self.cfg, s) else (s, ()) for s in keep}
        else:
            states = {self._moved(s, action) for s in keep}
        self._settle(states, seen)
        return f"k{k} {command.decode().strip()}"

    def _id(self, m: int) -> bytes:
        return self.ids.get(m, _NO_ID)

    def fin(self, k: int, m: int) -> str:
        return self._answer(k, m, b"FIN " + self._id(m) + b"\n", Action("fin", k, m))

    def req(self, k: int, m: int, delay: int) -> str:
        return self._answer(k, m, b"REQ " + self._id(m) + b" %d\n" % (delay * 1000), Action("req", k, m, delay))

    def touch(self, k: int, m: int) -> str:
        return self._answer(k, m, b"TOUCH " + self._id(m) + b"\n", Action("touch", k, m))

    def disconnect(self, k: int) -> str:
        client = self.clients[k]
        assert client is not None
        client.conn.close()
        self.clients[k] = None
        self._apply(Action("disconnect", k))
        return f"k{k} disconnects"

    # -- time and the disk ------------------------------------------------------------

    def advance(self) -> str:
        """One second: timers fire, then whatever they make possible is dispatched."""
        self.node.clock.advance(1.0)
        states = {self._moved(s, Action("tick")) for s in self.beliefs}
        self._settle(states, self._collect(), timers=True)
        self._commit_letters()
        return "a second passes"

    def fsync(self, q: int) -> str:
        """The sync timer (or --sync-every) fires for queue ``q`` (``len(channels)``: the topic's)."""
        topic = self.node.nsqd.topics.get(TOPIC)
        name = "the topic" if q == len(self.cfg.channels) else self.cfg.channels[q]
        queue = None
        if topic is not None:
            queue = topic if q == len(self.cfg.channels) else topic.channels.get(self.cfg.channels[q])
        if queue is None or not hasattr(queue.backend, "pending_sync_count"):
            return f"no queue to fsync for {name}"
        queue.backend.sync()
        a = Action("sync", q)
        self.beliefs = {step(self.cfg, s, a) if a in enabled(self.cfg, s) else s for s in self.beliefs}
        self._settle(self._unmoved(self.beliefs), self._collect())
        return f"fsync {name}"

    def _next_process(self) -> None:
        """A new nsqd process on the same disk: new connections, and a new clock, so that
        nothing the old process scheduled runs.

        Its wall clock is a few milliseconds on: nsqd's message ids are made of the
        wall clock's milliseconds and a counter that starts again with the process,
        so a process started in the same millisecond would reuse ids (pinned in
        ``test_refinement_regressions``).  Monotonic time, which every timeout uses,
        does not move; due times of deferred records fire that much earlier within
        the same second, which the model cannot tell apart.
        """
        old = self.node.clock
        self.node = Node(self.fs, FakeClock(start=old.t, wall_ns=old.wall_ns() + _ID_TICK), **self.opts)
        self.clients = [None] * len(self.clients)
        self._check_restored()
        self._listen()

    def crash(self, power: bool, seed: int = 0) -> str:
        """kill -9 (the file system keeps what was written) or a power loss (it keeps what was fsynced)."""
        if power:
            self.fs.crash(random.Random(seed))
        self._next_process()
        acts = {a for s in self.beliefs for a in enabled(self.cfg, s) if a.kind == "crash" and a.a == int(power)}
        states = {self._moved(s, a) for s in self.beliefs for a in acts if a in enabled(self.cfg, s)}
        self._settle(states, self._collect())
        return "power loss" if power else "kill -9"

    def restart(self) -> str:
        self.node.nsqd.close()
        self._next_process()
        self._apply(Action("restart"))
        return "clean restart"

    def rereads_twice(self) -> bool:
        """Whether a crash now would read two records of one message again.

        The model lets the second go (``model.disklog.dedupe``), and so does the
        broker since the bug ``test_refinement_regressions`` pins was fixed.
        """
        for s in self.beliefs:
            for ch in s.channels:
                if any(r.stale for r in disklog.dedupe(ch.log).records):
                    return True
        return False

    # -- operators --------------------------------------------------------------------

    def create(self, c: int) -> str:
        self.node.nsqd.get_topic(TOPIC).get_channel(self.cfg.channels[c])
        self._apply(Action("create", c))
        return f"create {self.cfg.channels[c]}"

    def _channel(self, c: int) -> object:
        topic = self.node.nsqd.topics[TOPIC]
        return topic.channels[self.cfg.channels[c]]

    def delete(self, c: int) -> str:
        assert self.node.nsqd.topics[TOPIC].delete_existing_channel(self.cfg.channels[c])
        self._apply(Action("delete", c))
        return f"delete {self.cfg.channels[c]}"

    def empty(self, c: int) -> str:
        self.node.nsqd.topics[TOPIC].channels[self.cfg.channels[c]].empty()
        self._apply(Action("empty", c))
        return f"empty {self.cfg.channels[c]}"

    def pause(self, c: int) -> str:
        self.node.nsqd.topics[TOPIC].channels[self.cfg.channels[c]].pause()
        self._apply(Action("pause", c))
        return f"pause {self.cfg.channels[c]}"

    def unpause(self, c: int) -> str:
        self.node.nsqd.topics[TOPIC].channels[self.cfg.channels[c]].unpause()
        self._apply(Action("unpause", c))
        return f"unpause {self.cfg.channels[c]}"

    def channel_exists(self, c: int) -> bool:
        return self.state.channels[c].exists

    def paused(self, c: int) -> bool:
        return self.state.channels[c].paused
