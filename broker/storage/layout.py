"""The names of a disk queue's files, which are Go nsqd's.

``<data path>/<name>.diskqueue.NNNNNN.dat`` for segments (six digits or more:
Go formats ``%06d``), ``<name>.diskqueue.meta.dat`` for the metadata, a
``.tmp`` beside it while it is being replaced, and ``.bad`` appended to a
segment that could not be read.
"""

from __future__ import annotations

__all__ = ["QueueFiles"]


class QueueFiles:
    def __init__(self, data_path: str, name: str) -> None:
        # Go joins an empty --data-path to a bare file name: the current directory.
        self.directory = data_path.rstrip("/") or ("/" if data_path.startswith("/") else ".")
        self.name = name
        self._prefix = f"{name}.diskqueue."
        self.meta = self._path(f"{name}.diskqueue.meta.dat")
        self.meta_tmp = self.meta + ".tmp"

    def segment(self, num: int) -> str:
        return self._path(f"{self._prefix}{num:06d}.dat")

    def segment_numbers(self, names: list[str]) -> list[int]:
        """The segment numbers among the names of the directory's entries, ascending."""
        nums = []
        for entry in names:
            if entry.startswith(self._prefix) and entry.endswith(".dat"):
                digits = entry[len(self._prefix) : -len(".dat")]
                if digits.isascii() and digits.isdigit():
                    nums.append(int(digits))
        return sorted(nums)

    def _path(self, filename: str) -> str:
        return f"{self.directory.rstrip('/')}/{filename}"
