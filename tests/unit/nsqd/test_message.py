"""Message ids and disk records."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.nsqd.message import GUIDFactory, Message, decode_message_record, encode_message_record


@settings(max_examples=100, deadline=None)
@given(
    st.integers(0, 1023),
    st.integers(1_700_000_000_000_000_000, 1_900_000_000_000_000_000),
    st.lists(st.tuples(st.sampled_from([0, 1, 1 << 20, 7 << 20]), st.sampled_from([1, 2, 200, 4095, 4096, 9000])), min_size=1, max_size=4),
)
def test_a_batch_of_ids_is_the_ids_one_at_a_time(node: int, wall: int, steps: list[tuple[int, int]]) -> None:
    batched, single = GUIDFactory(node), GUIDFactory(node)
    for advance, count in steps:
        wall += advance
        ids = batched.new_batch(wall, count)
        assert ids == [single.new(wall) for _ in range(count)]
        assert len(set(ids)) == count


def test_ids_are_nsqds_layout() -> None:
    wall = 1_795_835_051_000_000_000
    raw = int(GUIDFactory(513).new(wall), 16)
    assert raw & 0xFFF == 0  # the sequence
    assert (raw >> 12) & 0x3FF == 513  # the node id
    assert raw >> 22 == (wall >> 20) - 1288834974288  # nsqd's pseudo-milliseconds since its epoch


def test_records_round_trip_with_and_without_a_due_time() -> None:
    msg = Message(b"0123456789abcdef", b"body", 42, 3)
    for due in (0, 1_800_000_000_000_000_000):
        got, got_due = decode_message_record(encode_message_record(msg, due))
        assert (got.id, got.body, got.timestamp, got.attempts, got_due) == (msg.id, msg.body, 42, 3, due)


def test_a_copy_shares_the_body_and_starts_with_fresh_delivery_state() -> None:
    msg = Message(b"0123456789abcdef", b"body", 123, 2, 0.5)
    msg.client_id, msg.deadline, msg.delivered_at, msg.flight, msg.disk_pos = 9, 1.0, 2.0, 3, (1, 2)
    other = msg.copy()
    fresh = Message(b"0123456789abcdef", b"body", 123, 2, 0.5)
    # every slot is set, to what a new message of the same content has
    assert {s: getattr(other, s) for s in Message.__slots__} == {s: getattr(fresh, s) for s in Message.__slots__}
    assert other.body is msg.body
