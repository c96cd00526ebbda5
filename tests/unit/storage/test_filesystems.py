"""The FileSystem port's contract, checked on both implementations, and the queue on a real disk."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.ports import FileSystem
from broker.runtime.files import OSFileSystem
from broker.storage.memfs import MemoryFileSystem
from broker.storage.segment import HEADER_SIZE
from tests.unit.storage.helpers import body, drain, open_queue


@pytest.fixture(params=["memory", "os"])
def fs_and_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[FileSystem, str]]:
    if request.param == "memory":
        fs: FileSystem = MemoryFileSystem()
        root = "/data"
    else:
        fs = OSFileSystem()
        root = str(tmp_path / "data")
    fs.mkdir(root)
    yield fs, root


def test_append_read_size_truncate(fs_and_dir: tuple[FileSystem, str]) -> None:
    fs, root = fs_and_dir
    f = fs.open_append(f"{root}/a")
    f.write(b"hello ")
    f.write(memoryview(b"world"))
    assert f.size() == 11
    assert f.read_at(6, 100) == b"world"
    assert f.read_at(20, 5) == b""
    f.truncate(5)
    f.write(b"!")
    f.fsync()
    f.close()
    assert fs.file_size(f"{root}/a") == 6
    r = fs.open_read(f"{root}/a")
    assert r.read_at(0, 6) == b"hello!"
    r.close()


def test_open_append_keeps_existing_bytes(fs_and_dir: tuple[FileSystem, str]) -> None:
    fs, root = fs_and_dir
    f = fs.open_append(f"{root}/a")
    f.write(b"one")
    f.close()
    f = fs.open_append(f"{root}/a")
    f.write(b"two")
    assert f.read_at(0, 6) == b"onetwo"
    f.close()


def test_rename_replaces_and_listdir_sorts(fs_and_dir: tuple[FileSystem, str]) -> None:
    fs, root = fs_and_dir
    for name, data in [("b", b"new"), ("a", b"old"), ("c", b"")]:
        f = fs.open_append(f"{root}/{name}")
        f.write(data)
        f.close()
    fs.rename(f"{root}/b", f"{root}/a")
    fs.fsync_dir(root)
    assert fs.listdir(root) == ["a", "c"]
    r = fs.open_read(f"{root}/a")
    assert r.read_at(0, 10) == b"new"
    r.close()
    fs.remove(f"{root}/c")
    assert fs.listdir(root) == ["a"]


def test_missing_files_raise_file_not_found(fs_and_dir: tuple[FileSystem, str]) -> None:
    fs, root = fs_and_dir
    with pytest.raises(FileNotFoundError):
        fs.open_read(f"{root}/nope")
    with pytest.raises(FileNotFoundError):
        fs.remove(f"{root}/nope")
    with pytest.raises(FileNotFoundError):
        fs.file_size(f"{root}/nope")
    with pytest.raises(FileNotFoundError):
        fs.rename(f"{root}/nope", f"{root}/other")


def test_mkdir_makes_parents_and_tolerates_existing(fs_and_dir: tuple[FileSystem, str]) -> None:
    fs, root = fs_and_dir
    fs.mkdir(f"{root}/x/y")
    fs.mkdir(f"{root}/x/y")
    assert fs.listdir(f"{root}/x") == ["y"]
    assert fs.listdir(f"{root}/x/y") == []


def test_a_read_only_file_refuses_writes(fs_and_dir: tuple[FileSystem, str]) -> None:
    fs, root = fs_and_dir
    fs.open_append(f"{root}/a").close()
    r = fs.open_read(f"{root}/a")
    with pytest.raises(OSError):
        r.write(b"x")
    r.close()


def test_queue_round_trip_on_the_real_disk(tmp_path: Path) -> None:
    fs = OSFileSystem()
    data = str(tmp_path / "data")
    q = open_queue(fs, data_path=data, max_bytes_per_file=100)
    for i in range(10):
        q.put(body(i))
    assert [q.read() for _ in range(3)] == [body(0), body(1), body(2)]
    q.close()
    assert sorted(os.listdir(data)) == [
        "t.diskqueue.000000.dat",
        "t.diskqueue.000001.dat",
        "t.diskqueue.000002.dat",
        "t.diskqueue.meta.dat",
    ]
    q = open_queue(fs, data_path=data, max_bytes_per_file=100)
    assert q.depth() == 7
    assert drain(q) == [body(i) for i in range(3, 10)]
    q.delete()
    assert os.listdir(data) == []


def test_queue_on_the_real_disk_cuts_a_torn_tail_and_skips_a_flipped_bit(tmp_path: Path) -> None:
    fs = OSFileSystem()
    data = str(tmp_path / "data")
    q = open_queue(fs, data_path=data)
    for i in range(6):
        q.put(body(i))
    q.close()
    seg = os.path.join(data, "t.diskqueue.000000.dat")
    record = HEADER_SIZE + 20
    with open(seg, "r+b") as f:
        f.seek(record + HEADER_SIZE + 3)
        f.write(b"?")
        f.truncate(6 * record - 5)
    q = open_queue(fs, data_path=data)
    assert os.path.getsize(seg) == 5 * record
    assert drain(q) == [body(0), body(2), body(3), body(4)]
    assert q.corrupt_skipped == 1
    q.close()
