"""The guarantees, as checks of the specification's states and steps.

Each check is a named function with the guarantee in its docstring.  State
checks take ``(cfg, s)``; step checks take ``(cfg, before, action, after)``;
both return None when the guarantee holds and a sentence saying what broke
when it does not.  They judge by the ghost state (what clients were told and
did) and by where messages are, never by re-running the specification's own
rules, so a wrong rule in ``spec.py`` shows up as a broken guarantee here.

Losses at a crash are judged by where the message was just before it,
against the loss window of the durability mode (``loss_rule``).  The rules
(``checker.py`` uses the same names, though from a history it cannot tell the
first two apart and reports ``memory_at_crash`` for both):

================================  ==============================================
``memory_at_crash``               default mode: queued, in flight or deferred in
                                  memory (nsqd's memory queue and heaps)
``read_position_synced``          default mode: read from disk, in flight or
                                  requeued in memory, and the read position past
                                  it is fsynced, so no restart reads it again
                                  (nsqio/nsq#1142)
``unsynced_at_power_loss``        any mode: its record was written but no fsync
                                  covered it, and the power failed
``ephemeral_at_restart``          its channel was ephemeral: not saved
``dead_letter_at_crash``          default mode: it was dead-lettered, and its
                                  envelope is a new message of the dead-letter
                                  topic, inside default mode's window (the
                                  model does not follow it there)
================================  ==============================================

A dead letter waiting in a disk-only channel for its envelope's fsync is
judged as the record that channel still holds: lost only with that record.

Liveness is a property of the explored graph, not of one state: ``goal`` is
the predicate the explorer must be able to reach from every state by a fair
path without faults (see ``explore.py``).
"""

from __future__ import annotations

from collections.abc import Callable

from model.state import (
    ACKED,
    LETTER_WRITTEN,
    NO_RECORD,
    READ_SYNCED,
    Action,
    Config,
    Mode,
    State,
    copies,
    holds,
    pending,
    pending_messages,
)

__all__ = [
    "STATE_INVARIANTS",
    "STEP_INVARIANTS",
    "acknowledged_survives_crash",
    "at_most_one_holder",
    "attempts_grow_by_one",
    "attempts_within_max",
    "check_state",
    "check_step",
    "clean_restart_loses_nothing",
    "crash_loses_only_what_the_mode_allows",
    "dead_letter_only_after_max",
    "deferred_never_early",
    "durable_publish_acks_after_fsync",
    "every_message_accounted_for",
    "finished_not_redelivered",
    "goal",
    "loss_rule",
    "never_deliver_unpublished",
    "rdy_bounds_in_flight",
    "ttl_never_late",
]

StateCheck = Callable[[Config, State], "str | None"]
StepCheck = Callable[[Config, State, Action, State], "str | None"]


def _i(cfg: Config, m: int, c: int) -> int:
    return m * len(cfg.channels) + c


# -- state invariants -------------------------------------------------------------------


def never_deliver_unpublished(cfg: Config, s: State) -> str | None:
    """No message that was never published is queued, held or in flight anywhere."""
    n = s.ghost.published
    msgs = [m for m, _ in s.topic.memory] + [r.msg for r in s.topic.log.records]
    for ch in s.channels:
        msgs += [h.msg for h in ch.memory] + [f.msg for f in ch.in_flight] + [d.msg for d in ch.deferred]
        msgs += [r.msg for r in ch.log.records]
    bad = sorted({m for m in msgs if not 0 <= m < n})
    return f"unpublished messages {bad} are in the broker" if bad else None


def at_most_one_holder(cfg: Config, s: State) -> str | None:
    """A message is in flight to at most one consumer per channel (and held at most once)."""
    for c, ch in enumerate(s.channels):
        held = [h.msg for h in ch.memory] + [f.msg for f in ch.in_flight] + [d.msg for d in ch.deferred]
        dup = sorted({m for m in held if held.count(m) > 1})
        if dup:
            where = "in flight" if any(sum(1 for f in ch.in_flight if f.msg == m) > 1 for m in dup) else "held"
            return f"channel {cfg.channels[c]} has message(s) {dup} {where} more than once"
    return None


def every_message_accounted_for(cfg: Config, s: State) -> str | None:
    """Every acknowledged message is, in every channel that existed at publish, still to be
    delivered, finished, dead-lettered, expired (past the TTL), or lost by a rule that allows
    it; one a topic holds is still there or lost."""
    g = s.ghost
    nc = len(cfg.channels)
    for m in range(g.published):
        if g.ack[m] != ACKED:
            continue
        if g.topic_held[m] and not g.topic_lost[m] and not _in_topic(s, m):
            return f"message {m}, held by the topic, vanished"
        for c in range(nc):
            i = m * nc + c
            if g.expected[i] and not (g.lost[i] or g.finished[i] or g.dead[i] or g.expired[i] or pending(s, m, c)):
                return f"message {m} vanished from channel {cfg.channels[c]} without a FIN or a reason"
    return None


STATE_INVARIANTS: tuple[StateCheck, ...] = (never_deliver_unpublished, at_most_one_holder, every_message_accounted_for)


# -- step invariants --------------------------------------------------------------------


def _delivered(cfg: Config, s: State, a: Action, t: State) -> tuple[int, int, int] | None:
    """(message, channel, attempts) of a delivery step."""
    if a.kind != "deliver":
        return None
    c, k = a.a, a.b
    new = [f for f in t.channels[c].in_flight if f.holder == k and f not in s.channels[c].in_flight]
    if not new:
        return None
    return new[0].msg, c, new[0].attempts


def rdy_bounds_in_flight(cfg: Config, s: State, a: Action, t: State) -> str | None:
    """A delivery never takes a consumer past its RDY count."""
    if a.kind != "deliver":
        return None
    k = a.b
    n = sum(1 for f in t.channels[a.a].in_flight if f.holder == k)
    rdy = t.consumers[k].rdy
    return f"consumer {k} has {n} in flight with RDY {rdy}" if n > rdy else None


def attempts_grow_by_one(cfg: Config, s: State, a: Action, t: State) -> str | None:
    """Each delivery of a message to a channel has one attempt more than the one before
    (the first has 1); only a crash, which may read an older record of it again, lets
    them go back, never below 1.  Attempts saturate at ``Config.attempts_bound``."""
    got = _delivered(cfg, s, a, t)
    if got is None:
        return None
    m, c, n = got
    i = _i(cfg, m, c)
    last = s.ghost.attempts[i]
    bound = cfg.attempts_bound
    want = min(last + 1, bound)
    ok = (1 <= n <= want) if s.ghost.reread[i] else (n == want or (n == bound and last >= bound))
    return None if ok else f"message {m} delivered on {cfg.channels[c]} with attempts {n} after {last}"


def attempts_within_max(cfg: Config, s: State, a: Action, t: State) -> str | None:
    """With max_attempts, no delivery has more attempts than it: a message that has had
    them is dead-lettered instead of delivered again."""
    got = _delivered(cfg, s, a, t)
    if got is None or not cfg.max_attempts:
        return None
    m, c, n = got
    return f"message {m} delivered on {cfg.channels[c]} with attempts {n}, past max_attempts {cfg.max_attempts}" if n > cfg.max_attempts else None


def dead_letter_only_after_max(cfg: Config, s: State, a: Action, t: State) -> str | None:
    """A message is dead-lettered only once its last delivery had max_attempts attempts
    (never with max_attempts off)."""
    if a.kind not in ("req", "timer", "dead_letter"):
        return None
    for i, (was, now) in enumerate(zip(s.ghost.dead, t.ghost.dead, strict=True)):
        if now and not was:
            m, c = divmod(i, len(cfg.channels))
            n = t.ghost.attempts[i]
            if not cfg.max_attempts or n < cfg.max_attempts:
                return f"message {m} dead-lettered from {cfg.channels[c]} after {n} attempt(s)"
    return None


def ttl_never_late(cfg: Config, s: State, a: Action, t: State) -> str | None:
    """With a TTL, no message is delivered when it is older than the TTL since its publish
    (one delivered in time is not recalled)."""
    got = _delivered(cfg, s, a, t)
    if got is None or not cfg.ttl:
        return None
    m, c, _ = got
    age = t.ages[m]
    return f"message {m} delivered on {cfg.channels[c]} {age} tick(s) after its publish, past the TTL of {cfg.ttl}" if age > cfg.ttl else None


def deferred_never_early(cfg: Config, s: State, a: Action, t: State) -> str | None:
    """A DPUB is never delivered before its delay has passed, even across crashes; a REQ
    with a delay is not either, unless a crash undid the REQ (a clean restart keeps it)."""
    got = _delivered(cfg, s, a, t)
    if got is None:
        return None
    m, c, _ = got
    if s.ghost.dpub_wait[m]:
        return f"DPUB message {m} delivered {s.ghost.dpub_wait[m]} tick(s) early on {cfg.channels[c]}"
    w = s.ghost.req_wait[_i(cfg, m, c)]
    return f"requeued message {m} delivered {w} tick(s) early on {cfg.channels[c]}" if w else None


def finished_not_redelivered(cfg: Config, s: State, a: Action, t: State) -> str | None:
    """A finished message is never delivered again on that channel, unless a crash undid
    the FIN: it re-read the message's record because the read position past it was not
    fsynced (in the disk modes: a disk-only channel's durable read position stays at its
    oldest unfinished message, so FINs after it are undone).  A clean restart undoes none."""
    got = _delivered(cfg, s, a, t)
    if got is not None:
        m, c, _ = got
        if s.ghost.finished[_i(cfg, m, c)]:
            return f"finished message {m} delivered again on {cfg.channels[c]}"
        return None
    if a.kind == "restart":
        for m in range(s.ghost.published):
            for c in range(len(cfg.channels)):
                if s.ghost.finished[_i(cfg, m, c)] and pending(t, m, c):
                    return f"a clean restart brought back finished message {m} on {cfg.channels[c]}"
    return None


def loss_rule(cfg: Config, s: State, m: int, c: int, power: bool) -> str | None:
    """The rule under which a crash may lose message ``m`` from channel ``c`` in state ``s``
    (every copy of it must be losable), or None when losing it breaks a guarantee."""
    ch = s.channels[c]
    if not (holds(ch, m) or ch.log.holds(m)):
        return _letter_loss_rule(cfg, s, m, c, power)
    if cfg.ephemeral(c):
        return "ephemeral_at_restart"
    rules: list[str | None] = []
    for x in copies(ch):
        if x.msg != m:
            continue
        if x.ref == NO_RECORD and not cfg.tracked:
            rules.append("memory_at_crash")
        elif x.ref == READ_SYNCED and not cfg.tracked:
            rules.append("read_position_synced")
        elif power and x.ref >= ch.log.synced:
            rules.append("unsynced_at_power_loss")
        else:
            rules.append(None)
    for j in range(ch.log.read, len(ch.log.records)):
        if ch.log.records[j].msg == m and not ch.log.records[j].stale:
            rules.append("unsynced_at_power_loss" if power and j >= ch.log.synced else None)
    if None in rules:
        return None
    return rules[0]


def _letter_loss_rule(cfg: Config, s: State, m: int, c: int, power: bool) -> str | None:
    """The rule under which a crash may lose message ``m``, dead-lettered from channel ``c``
    with its envelope not yet fsynced: in default mode, the envelope's; in the disk modes,
    the record the channel kept for it."""
    if s.ghost.dead[_i(cfg, m, c)] != LETTER_WRITTEN:
        return None
    if not cfg.tracked:
        return "dead_letter_at_crash"
    ch = s.channels[c]
    for x in ch.letters:
        if x.msg == m and x.ref >= 0:
            return "unsynced_at_power_loss" if power and x.ref >= ch.log.synced else None
    return None


def _topic_loss_rule(cfg: Config, s: State, m: int, power: bool) -> str | None:
    t = s.topic
    rules: list[str | None] = ["memory_at_crash" for x, _ in t.memory if x == m]
    for j, r in enumerate(t.log.records):
        if r.msg == m and j >= t.log.read:
            rules.append("unsynced_at_power_loss" if power and j >= t.log.synced else None)
    return None if not rules or None in rules else rules[0]


def _in_topic(s: State, m: int) -> bool:
    return any(x == m for x, _ in s.topic.memory) or any(r.msg == m for r in s.topic.log.unread)


def _losses(cfg: Config, s: State, t: State, *, crash: bool = False) -> list[tuple[int, int]]:
    """(message, channel, or -1 for the topic) for each acknowledged message the step lost.

    With ``crash``, a dead letter whose envelope was not yet known to be fsynced,
    and whose message the channel does not have again, counts as lost too.
    """
    g = s.ghost
    out: list[tuple[int, int]] = []
    was = [pending_messages(ch) for ch in s.channels]
    now = [pending_messages(ch) for ch in t.channels]
    for m in range(g.published):
        if g.ack[m] != ACKED:
            continue
        for c in range(len(cfg.channels)):
            i = _i(cfg, m, c)
            if (g.expected[i] and m in was[c] and m not in now[c]) or (crash and g.dead[i] == LETTER_WRITTEN and not g.lost[i] and m not in now[c]):
                out.append((m, c))
        if g.topic_held[m] and _in_topic(s, m) and t.ghost.topic_held[m] and not _in_topic(t, m):
            out.append((m, -1))
    return out


def crash_loses_only_what_the_mode_allows(cfg: Config, s: State, a: Action, t: State) -> str | None:
    """A crash loses an acknowledged message only inside its mode's loss window: in default
    mode what was in memory, what was read from disk with the read position fsynced past
    it, and, on power loss, records no fsync covered; in the disk modes only, on power
    loss, records no fsync covered; ephemeral channels always (see ``loss_rule``)."""
    if a.kind != "crash":
        return None
    power = a.a == 1
    for m, c in _losses(cfg, s, t, crash=True):
        rule = loss_rule(cfg, s, m, c, power) if c >= 0 else _topic_loss_rule(cfg, s, m, power)
        if rule is None:
            where = cfg.channels[c] if c >= 0 else "the topic"
            return f"a {'power loss' if power else 'process kill'} lost acknowledged message {m} from {where}"
    return None


def acknowledged_survives_crash(cfg: Config, s: State, a: Action, t: State) -> str | None:
    """With --durable-publish an acknowledged message survives any crash; with
    --mem-queue-size=0 it survives a process kill (a power loss may take unsynced puts)."""
    if a.kind != "crash":
        return None
    if cfg.mode is Mode.DURABLE or (cfg.mode is Mode.DISK_ONLY and a.a == 0):
        for m, c in _losses(cfg, s, t, crash=True):
            if c < 0 or not cfg.ephemeral(c):
                where = cfg.channels[c] if c >= 0 else "the topic"
                return f"acknowledged message {m} lost from {where} in {cfg.mode.value} mode"
    return None


def clean_restart_loses_nothing(cfg: Config, s: State, a: Action, t: State) -> str | None:
    """A clean shutdown and start loses no message of a durable channel or of the topic."""
    if a.kind != "restart":
        return None
    for m, c in _losses(cfg, s, t):
        if c < 0 or not cfg.ephemeral(c):
            where = cfg.channels[c] if c >= 0 else "the topic"
            return f"a clean restart lost message {m} from {where}"
    return None


def durable_publish_acks_after_fsync(cfg: Config, s: State, a: Action, t: State) -> str | None:
    """With --durable-publish, PUB/DPUB is answered only once a record of the message is
    fsynced in every channel's queue (or the topic's, when it has no channel)."""
    for m in range(t.ghost.published):
        if t.ghost.ack[m] == ACKED and s.ghost.ack[m] != ACKED and cfg.mode is Mode.DURABLE:
            why = _acked_before_fsync(cfg, t, m)
            if why:
                return why
    return None


def _acked_before_fsync(cfg: Config, t: State, m: int) -> str | None:
    for c, ch in enumerate(t.channels):
        on_disk = any(r.msg == m and not r.stale for r in ch.log.records[: ch.log.synced])
        if ch.exists and not cfg.ephemeral(c) and pending(t, m, c) and not on_disk:
            return f"message {m} acknowledged before its record in {cfg.channels[c]} was fsynced"
    if t.ghost.topic_held[m] and not any(r.msg == m for r in t.topic.log.records[: t.topic.log.synced]):
        return f"message {m} acknowledged before its record in the topic was fsynced"
    return None


STEP_INVARIANTS: tuple[StepCheck, ...] = (
    rdy_bounds_in_flight,
    attempts_grow_by_one,
    attempts_within_max,
    dead_letter_only_after_max,
    ttl_never_late,
    deferred_never_early,
    finished_not_redelivered,
    crash_loses_only_what_the_mode_allows,
    acknowledged_survives_crash,
    clean_restart_loses_nothing,
    durable_publish_acks_after_fsync,
)


def check_state(cfg: Config, s: State) -> tuple[str, str] | None:
    """(invariant name, what broke) for the first state invariant ``s`` breaks."""
    for inv in STATE_INVARIANTS:
        why = inv(cfg, s)
        if why is not None:
            return inv.__name__, why
    return None


def check_step(cfg: Config, s: State, a: Action, t: State) -> tuple[str, str] | None:
    """(invariant name, what broke) for the first step invariant the step breaks."""
    for inv in STEP_INVARIANTS:
        why = inv(cfg, s, a, t)
        if why is not None:
            return inv.__name__, why
    return None


# -- liveness ----------------------------------------------------------------------------


def goal(cfg: Config, s: State) -> bool:
    """Every acknowledged message is finished (or dead-lettered, expired, or lost by an allowed
    rule: none of them is pending) on every channel that existed when it was published.  The liveness guarantee (at-least-once delivery
    under fairness, once faults stop) is that this is reachable from every state."""
    g = s.ghost
    nc = len(cfg.channels)
    for c in range(nc):
        for m in pending_messages(s.channels[c]):
            i = m * nc + c
            if g.ack[m] == ACKED and g.expected[i] and not g.lost[i]:
                return False
    return True
