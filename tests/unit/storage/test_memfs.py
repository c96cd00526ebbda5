"""The in-memory file system's crash model and faults."""

from __future__ import annotations

import errno
import random

import pytest

from broker.storage.memfs import MemoryFileSystem, SimulatedCrash

SEEDS = range(60)


def fs_with(path: str = "/d/f", durable: bytes = b"", volatile: bytes = b"") -> MemoryFileSystem:
    fs = MemoryFileSystem()
    fs.mkdir("/d")
    f = fs.open_append(path)
    f.write(durable)
    f.fsync()
    fs.fsync_dir("/d")
    f.write(volatile)
    f.close()
    return fs


def test_a_crash_keeps_the_fsynced_bytes_and_a_prefix_of_the_rest() -> None:
    seen = set()
    for seed in SEEDS:
        fs = fs_with(durable=b"durable|", volatile=b"0123456789")
        fs.crash(random.Random(seed))
        data = fs.contents("/d/f")
        assert (b"durable|" + b"0123456789").startswith(data)
        assert data.startswith(b"durable|")
        seen.add(len(data))
    # Nothing, everything, and torn lengths in between all happen.
    assert {8, 18} <= seen and len(seen) > 4


def test_what_a_crash_leaves_is_durable_for_the_next_crash() -> None:
    fs = fs_with(durable=b"a", volatile=b"bcdefgh")
    fs.crash(random.Random(5))
    after_first = fs.contents("/d/f")
    for seed in SEEDS:
        fs.crash(random.Random(seed))
        assert fs.contents("/d/f") == after_first


def test_a_new_name_needs_a_directory_fsync() -> None:
    outcomes = set()
    for seed in SEEDS:
        fs = MemoryFileSystem()
        fs.mkdir("/d")
        f = fs.open_append("/d/new")
        f.write(b"x")
        f.fsync()
        fs.crash(random.Random(seed))
        outcomes.add("new" in fs.listdir("/d"))
    assert outcomes == {True, False}

    fs = MemoryFileSystem()
    fs.mkdir("/d")
    fs.open_append("/d/new").fsync()
    fs.fsync_dir("/d")
    fs.crash(random.Random(0))
    assert fs.listdir("/d") == ["new"]


def test_directory_changes_survive_in_order() -> None:
    for seed in SEEDS:
        fs = MemoryFileSystem()
        fs.mkdir("/d")
        for name in "abcde":
            fs.open_append(f"/d/{name}").close()
        fs.crash(random.Random(seed))
        names = fs.listdir("/d")
        assert names == list("abcde"[: len(names)])


def test_rename_over_a_file_is_atomic() -> None:
    for seed in SEEDS:
        fs = fs_with("/d/meta", durable=b"old")
        tmp = fs.open_append("/d/meta.tmp")
        tmp.write(b"new")
        tmp.fsync()
        tmp.close()
        fs.rename("/d/meta.tmp", "/d/meta")
        fs.crash(random.Random(seed))
        assert fs.contents("/d/meta") in (b"old", b"new")


def test_a_removal_may_be_undone() -> None:
    outcomes = set()
    for seed in SEEDS:
        fs = fs_with(durable=b"abc")
        fs.remove("/d/f")
        fs.crash(random.Random(seed))
        outcomes.add(tuple(fs.listdir("/d")))
    assert outcomes == {(), ("f",)}


def test_an_unsynced_truncate_is_undone_or_kept_whole() -> None:
    outcomes = set()
    for seed in SEEDS:
        fs = fs_with(durable=b"0123456789")
        f = fs.open_append("/d/f")
        f.truncate(4)
        f.write(b"XY")
        f.close()
        fs.crash(random.Random(seed))
        outcomes.add(fs.contents("/d/f"))
    assert outcomes == {b"0123456789", b"0123", b"0123X", b"0123XY"}


def test_files_open_before_a_crash_are_dead_after_it() -> None:
    fs = fs_with(durable=b"abc")
    f = fs.open_read("/d/f")
    fs.crash(random.Random(0))
    with pytest.raises(OSError) as e:
        f.read_at(0, 3)
    assert e.value.errno == errno.EBADF


def test_a_failed_fsync_raises_and_makes_nothing_durable() -> None:
    lengths = set()
    for seed in SEEDS:
        fs = fs_with(durable=b"a")
        f = fs.open_append("/d/f")
        f.write(b"bcd")
        fs.fail_fsync(1)
        with pytest.raises(OSError) as e:
            f.fsync()
        assert e.value.errno == errno.EIO
        fs.crash(random.Random(seed))
        lengths.add(len(fs.contents("/d/f")))
    assert 1 in lengths and 4 in lengths


def test_fail_fsync_only_hits_matching_paths() -> None:
    fs = fs_with()
    fs.fail_fsync(1, match="other")
    fs.open_append("/d/f").fsync()
    f = fs.open_append("/d/other")
    with pytest.raises(OSError):
        f.fsync()
    f.fsync()


def test_a_full_disk_writes_what_fits_then_raises_enospc() -> None:
    fs = fs_with(durable=b"12345")
    fs.set_capacity(8)
    f = fs.open_append("/d/f")
    with pytest.raises(OSError) as e:
        f.write(b"abcdef")
    assert e.value.errno == errno.ENOSPC
    assert fs.contents("/d/f") == b"12345abc"
    fs.set_capacity(None)
    f.write(b"def")
    assert fs.contents("/d/f") == b"12345abcdef"


def test_bit_flips_and_overwrites_change_durable_bytes() -> None:
    fs = fs_with(durable=b"\x00\x00\x00")
    fs.flip_bit("/d/f", 1, bit=2)
    fs.overwrite("/d/f", 2, b"\xff")
    fs.crash(random.Random(0))
    assert fs.contents("/d/f") == b"\x00\x04\xff"


def test_read_faults_hit_opening_and_reading() -> None:
    fs = fs_with(durable=b"abc")
    f = fs.open_read("/d/f")
    fs.fail_reads("/d/f")
    with pytest.raises(OSError):
        f.read_at(0, 1)
    with pytest.raises(OSError):
        fs.open_read("/d/f")
    fs.fail_reads(None)
    assert f.read_at(0, 3) == b"abc"


def test_crash_after_stops_at_the_nth_mutation() -> None:
    fs = MemoryFileSystem()
    fs.mkdir("/d")
    f = fs.open_append("/d/f")
    fs.crash_after(2)
    f.write(b"a")
    with pytest.raises(SimulatedCrash):
        f.fsync()
    assert fs.contents("/d/f") == b"a"
    f.fsync()  # disarmed once fired


def test_simulated_crash_is_not_an_exception_a_handler_would_swallow() -> None:
    assert not issubclass(SimulatedCrash, Exception)


def test_missing_paths_raise_file_not_found() -> None:
    fs = MemoryFileSystem()
    with pytest.raises(FileNotFoundError):
        fs.open_append("/nodir/f")
    fs.mkdir("/d")
    with pytest.raises(FileNotFoundError):
        fs.open_read("/d/f")
    with pytest.raises(FileNotFoundError):
        fs.remove("/d/f")
    with pytest.raises(FileNotFoundError):
        fs.rename("/d/f", "/d/g")


def test_the_same_seed_gives_the_same_crash() -> None:
    results = []
    for _ in range(2):
        fs = fs_with(durable=b"x", volatile=bytes(range(200)))
        for name in "abc":
            fs.open_append(f"/d/{name}").write(b"data")
        fs.crash(random.Random(42))
        results.append((fs.listdir("/d"), [fs.contents(f"/d/{n}") for n in fs.listdir("/d")]))
    assert results[0] == results[1]
