"""The hot modules compiled with mypyc, in a copy of the tree: the simulator at full speed.

The simulator runs the real broker and client, and in CPython their cost is
mostly the interpreter's: a published message passes through about 270
Python calls.  The code is typed throughout (``mypy --strict``), which is what
mypyc (part of mypy) needs to compile a module to a C extension that does the
same thing without the interpreter's dispatch.  The histories it gives are
byte for byte those of the pure-Python tree (``tests/sim/test_compiled.py``).

The compiled build lives in a copy of the tracked files (``.build/compiled``,
never beside the sources, where a stale extension would shadow an edited
``.py``), stamped with a hash of the sources it was built from; ``run``
refuses a stale one.  Commands:

    python -m nsqsim.compiled           build (or rebuild) the copy; ./dev.sh compile
    python -m bench.bench_sim --compiled    the benchmark on it (builds if stale)
    nsqsim run|sweep ... --compiled         the simulator on it

A C compiler and the Python headers are needed (the machine's gcc does).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["BUILD", "MARK", "MODULES", "build", "current", "exec_compiled", "running_compiled", "source_digest"]

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / ".build" / "compiled"
STAMP = ".sources-sha256"
MARK = "NSQSIM_COMPILED"  # set in the environment of a process exec_compiled started

# What a simulated message passes through: the broker core's V2 path, the
# client core, the simulated clock, network and workloads, and the history.
# The rest stays Python (start-up, HTTP, storage, the checker).
MODULES = (
    "broker/wire/v2.py",
    "broker/wire/names.py",
    "broker/nsqd/message.py",
    "broker/nsqd/channel.py",
    "broker/nsqd/topic.py",
    "broker/nsqd/protocol_v2.py",
    "broker/nsqd/nsqd.py",
    "broker/client/message.py",
    "broker/client/conn.py",
    "broker/client/consumer.py",
    "broker/client/producer.py",
    "nsqsim/connection.py",
    "nsqsim/network.py",
    "nsqsim/workload/process.py",
    "nsqsim/workload/producer.py",
    "nsqsim/workload/consumer.py",
    "nsqsim/clock.py",
    "nsqsim/dist.py",
    "nsqsim/history.py",
    "broker/nsqd/backend.py",
)


def _tracked(root: Path) -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=root, check=True, capture_output=True).stdout
    return sorted(p for p in out.decode().split("\0") if p and (root / p).is_file())


def source_digest(root: Path, files: Sequence[str]) -> str:
    """A hash of the Python and TOML files among ``files`` (paths relative to ``root``)."""
    h = hashlib.sha256()
    for rel in files:
        if rel.endswith(".py") or rel.endswith(".toml"):
            h.update(rel.encode() + b"\0" + (root / rel).read_bytes() + b"\0")
    return h.hexdigest()


def current(root: Path = ROOT, build_dir: Path = BUILD) -> bool:
    """Whether ``build_dir`` holds a build of the sources as they are now."""
    stamp = build_dir / STAMP
    return stamp.is_file() and stamp.read_text() == source_digest(root, _tracked(root))


def build(root: Path = ROOT, build_dir: Path = BUILD, *, quiet: bool = False) -> Path:
    """Copy the tracked files to ``build_dir`` and compile ``MODULES`` there; the build's path."""
    files = _tracked(root)
    if build_dir.exists():
        shutil.rmtree(build_dir)
    for rel in files:
        dest = build_dir / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, dest)
    mypyc = Path(sys.executable).with_name("mypyc")
    out = subprocess.DEVNULL if quiet else None
    subprocess.run([str(mypyc), *MODULES], cwd=build_dir, check=True, stdout=out)
    (build_dir / STAMP).write_text(source_digest(root, files))
    return build_dir


def exec_compiled(module: str, argv: Sequence[str], *, root: Path = ROOT, build_dir: Path = BUILD) -> None:
    """Run ``python -m module argv`` on the compiled build (built first if stale); never returns.

    ``-P`` keeps the current directory off ``sys.path``, so the build's copy,
    first on ``PYTHONPATH``, is what every import finds, in sweep workers too.
    """
    if not current(root, build_dir):
        print(f"building the compiled tree in {build_dir} (about a minute)...", file=sys.stderr)
        build(root, build_dir, quiet=True)
    path = os.pathsep.join(p for p in (str(build_dir), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, PYTHONPATH=path, **{MARK: "1"})
    os.execve(sys.executable, [sys.executable, "-P", "-m", module, *argv], env)


def running_compiled() -> bool:
    """Whether this process runs on the compiled build (its hot modules are extensions)."""
    import broker.nsqd.channel

    return os.environ.get(MARK) == "1" and not broker.nsqd.channel.__file__.endswith(".py")


def main() -> int:
    path = build()
    print(f"compiled {len(MODULES)} modules into {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
