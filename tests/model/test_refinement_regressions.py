"""Counterexamples the refinement check found, pinned as plain tests.

Each replays, through ``tests/model/bridge.py``, a sequence that once made the
broker and the model disagree.  The ones marked ``xfail`` are broker bugs
still open (strict: when the broker is fixed they pass, and the mark must go).
"""

from __future__ import annotations

from model.state import Mode
from tests.model.bridge import Pair
from tests.unit.nsqd.harness import Node


def test_a_topic_hands_memory_and_disk_to_its_first_channel_after_a_restart() -> None:
    # Driver seed 1: the restart wrote the topic's memory to its disk queue; the
    # hand-off to the first channel then mixes what is on disk with a newer
    # publish in memory, and the DPUB stays deferred.
    for mode in Mode:
        p = Pair(mode)
        p.publish()
        p.publish(delay=2)
        p.restart()
        p.publish()
        p.subscribe(1)
        for _ in range(3):
            p.advance()


def test_a_clean_restart_writes_held_messages_again_in_disk_only_mode() -> None:
    # Driver seed 4: in flight and deferred messages of a disk-only channel are
    # written anew at a clean exit, with their attempts, and nothing is repeated.
    p = Pair(Mode.DISK_ONLY)
    p.subscribe(1)
    p.publish(delay=2)
    p.publish()
    p.advance()
    p.advance()
    p.publish()
    p.restart()
    p.subscribe(0)
    a = p.state.channels[0]
    # m1 and m0 were in flight (attempts 1): written again, each one's next delivery is its second
    assert [(f.msg, f.attempts) for f in a.in_flight] == [(2, 1), (1, 2)]
    assert [(r.msg, r.attempts) for r in a.log.unread] == [(0, 1)]


def test_records_written_before_a_kill_and_never_fsynced_may_survive_a_later_power_loss() -> None:
    # Driver seed 41: records written before a kill -9 and never fsynced stay in
    # the page cache.  The model allows a later power loss to take them (its
    # ``Log.written``: they were never fsynced); the broker now fsyncs them when
    # the new process opens the queue, one of the outcomes the model allows.
    p = Pair(Mode.DEFAULT)
    p.subscribe(1)
    p.publish()
    p.publish()
    p.publish()  # m0 in memory; m1, m2 on disk, not fsynced
    p.disconnect(1)
    p.crash(power=False)
    p.fsync(0)
    p.crash(power=True, seed=3)
    assert len(p.beliefs) == 1


def test_a_timer_times_out_every_expired_message_before_dispatching() -> None:
    # Two messages time out in the same instant: nsqd puts both back (the second
    # spills past --mem-queue-size) before it dispatches either.
    p = Pair(Mode.DEFAULT)
    p.subscribe(0)
    p.publish()
    p.publish()
    p.publish()
    for _ in range(3):
        p.advance()
    assert [f.msg for f in p.state.channels[0].in_flight] == [2, 0]


def test_default_mode_does_not_redeliver_a_finished_message_after_a_crash() -> None:
    # Found here (fixed: Channel._replayed). m1 is read from disk and times out while the memory queue is full, so it is
    # written again; a crash before the read position is fsynced reads both
    # records.  The broker had m1 in flight twice under one id: a FIN accepted
    # after the restart was followed at once by another delivery.  Like the
    # specification (model.disklog.dedupe) it now lets the second record go.
    p = Pair(Mode.DEFAULT)
    p.publish()
    p.publish()
    p.subscribe(0)
    p.publish()
    for _ in range(3):
        p.advance()
    assert p.rereads_twice()
    p.crash(power=False)
    p.subscribe(0)
    p.fin(0, 1)


def test_message_ids_stay_unique_across_a_restart() -> None:
    # Found here: nsqd's ids are its wall clock's pseudo-milliseconds (ns >> 20)
    # and a counter that a new process starts again, so a successor started in
    # the same pseudo-millisecond repeats ids (the bridge once did; two messages
    # then shared one in-flight entry).  Go's nsqd has the same contract: ids are
    # unique when a restart takes longer than that, which the bridge
    # (``_next_process``) and the simulator (``nsqsim.nodes.PROCESS_START``) keep.
    from broker.storage.memfs import MemoryFileSystem

    node = Node(MemoryFileSystem())
    c = node.consumer("t", "c", rdy=1)  # RDY reached: flushed at once, no time passes
    node.publish("t", b"before")
    first = c.messages(c.log) + c.messages()
    node.clock.advance(2**20 / 1e9)  # the process ends one pseudo-millisecond later
    node = node.restart()
    c = node.consumer("t", "c", rdy=10)
    node.publish("t", b"after")
    node.clock.advance(1)
    got = first + c.messages(c.log) + c.messages()
    assert sorted(m[3] for m in got) == [b"after", b"before", b"before"]  # "before" again: unfinished at exit
    assert {m[2] for m in got if m[3] == b"after"}.isdisjoint(m[2] for m in got if m[3] == b"before")


def test_a_message_in_flight_at_a_clean_exit_with_its_last_attempt_is_dead_lettered_after_it() -> None:
    # Found here (fixed: Channel._publish_dead_letter at dispatch, reason "exhausted"): a
    # clean exit writes a message in flight with its attempts, and the next process
    # delivered it once past max_attempts (invariant attempts_within_max; the seeded bug
    # redeliver_exhausted is the old behaviour).
    for mode in Mode:
        p = Pair(mode, max_attempts=1)
        p.subscribe(2)
        p.publish()
        p.restart()
        p.subscribe(2)
        s = p.state
        assert not s.channels[1].in_flight, mode
        assert s.ghost.dead[0 * 2 + 1], mode  # m0 on channel b


def test_emptying_a_channel_while_a_dead_letter_waits_for_its_fsync() -> None:
    # Found here (fixed): the dead-letter topic's group commit let go of a record the
    # channel's empty had already let go, and the KeyError escaped from the fsync's callback.
    for mode in (Mode.DISK_ONLY, Mode.DURABLE):
        p = Pair(mode, max_attempts=1)
        p.subscribe(2)
        p.publish()
        p.req(2, 0, 0)
        assert p.state.channels[1].letters, mode  # the group commit runs when the clock next moves
        p.empty(1)
        p.advance()
        p.publish()
        p.fin(2, 1)
