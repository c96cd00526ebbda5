"""Mutation testing: plant one plausible broker bug at a time and see what catches it.

    python -m nsqsim.mutants                       the whole catalogue, every stage
    python -m nsqsim.mutants --list                the catalogue (and whether each anchor still holds)
    python -m nsqsim.mutants --only fsync-skipped,attempts-not-counted --stages sweep
    python -m nsqsim.mutants --seeds 1..3 --jobs 1 --json out.json --markdown

Why
---
The simulator, the workload and the checker exist to find broker bugs; the
only way to know they would is to give them some.  Each mutant below is a
one-line change a tired programmer could make (a FIN that finishes the wrong
message, an fsync skipped, a deferred message released early), written as the
exact source text to find and what to put instead.  The text must occur
exactly once in its file: when the code changes under the catalogue, the
harness (and ``tests/sim/test_mutants.py``) fails and says which anchor went
stale, rather than silently testing nothing.

How
---
For each mutant the packages (``broker/``, ``model/``, ``nsqsim/``,
``tests/``, ``examples/`` and ``pyproject.toml``) are copied to a temporary
directory, the change is made there, and these stages run in the copy
(``PYTHONPATH`` is the copy, the interpreter this one), stopping at the first
that fails:

``unit``     the fast unit tests of nsqd, the disk queue and nsqlookupd;
``model``    the refinement tests (``tests/model``: the broker driven beside
             the specification, hypothesis with a fixed seed);
``sweep``    ``nsqsim sweep`` over a few seeds of each reference
             configuration, seed by seed (``--jobs`` seeds at a time), so the
             first violating seed is named.

Before any mutant, the same stages run on an unmodified copy (the baseline):
a stage that fails without a mutant would "kill" every mutant, so the harness
stops there instead.  A mutant that no stage kills is a survivor and the
command exits 1: a survivor is a gap in the simulator, the workload or the
checker, to be closed there (never by changing the mutant).  A stage that
hangs past its timeout counts as a kill (``(hang)``): the baseline showed the
stage finishes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from nsqsim.cli import parse_seeds

__all__ = [
    "CATALOGUE",
    "STAGES",
    "AnchorError",
    "Mutant",
    "Result",
    "apply",
    "check_anchors",
    "copy_tree",
    "main",
    "run_mutant",
]

ROOT = Path(__file__).resolve().parents[1]

# What a copy holds: enough to import the packages and run the stages' tests.
COPIED_DIRS = ("broker", "model", "nsqsim", "tests", "examples")
COPIED_FILES = ("pyproject.toml", "conftest.py")
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", ".pytest_cache", ".mypy_cache", "*.so")

UNIT_TESTS = ("tests/unit/nsqd", "tests/unit/storage", "tests/unit/lookupd")
MODEL_TESTS = ("tests/model",)
# reference-full-queues fills the memory and disk queues, which the others never do.
SWEEP_CONFIGS = ("reference-cluster", "reference-disk-only", "reference-durable", "reference-full-queues")
STAGES = ("unit", "model", "sweep")
DEFAULT_SEEDS = "1..3"
# Generous: a stage that passed on the baseline and now runs this long is hung.
PYTEST_TIMEOUT = 900.0
SEED_TIMEOUT = 600.0


class AnchorError(Exception):
    """A mutant's source text is not in its file exactly once: the catalogue is stale."""


@dataclass(frozen=True)
class Mutant:
    """One planted bug: in ``path``, the text ``find`` (exactly once) becomes ``replace``.

    ``find`` may span a few lines so that it is unique; the change itself is one line.
    """

    id: str
    description: str
    path: str
    find: str
    replace: str


def _m(id: str, description: str, path: str, find: str, replace: str) -> Mutant:
    if find == replace:
        raise ValueError(f"mutant {id} changes nothing")
    return Mutant(id, description, path, find, replace)


_CHANNEL = "broker/nsqd/channel.py"
_TOPIC = "broker/nsqd/topic.py"
_PROTOCOL = "broker/nsqd/protocol_v2.py"
_NSQD = "broker/nsqd/nsqd.py"
_DISKQUEUE = "broker/storage/diskqueue.py"
_LOOKUPD_DB = "broker/lookupd/registration_db.py"

CATALOGUE: tuple[Mutant, ...] = (
    _m(
        "fin-wrong-message",
        "FIN of an in-flight id finishes the channel's oldest in-flight message instead",
        _CHANNEL,
        "        # _pop_in_flight inlined: this runs once per message.\n        msg = self.in_flight.get(msg_id)\n",
        "        # _pop_in_flight inlined: this runs once per message.\n"
        "        msg = self.in_flight.get(msg_id) and next(iter(self.in_flight.values()))\n",
    ),
    _m(
        "requeue-dropped-when-full",
        "a requeue or timeout that finds the memory queue full is dropped instead of written to disk",
        _CHANNEL,
        "            try:\n                self.backend.put(encode_message_record(msg))\n                return\n",
        "            try:\n                pass\n                return\n",
    ),
    _m(
        "requeue-dropped-when-disk-full",
        "a requeue that finds memory and disk full is dropped instead of kept past the bound",
        _CHANNEL,
        "        # message already accepted; new publishes were refused before this.\n        self.memory.append(msg)\n",
        "        # message already accepted; new publishes were refused before this.\n        pass\n",
    ),
    _m(
        "read-pos-synced-before-delivery",
        "a disk-only channel syncs its read position past records still in flight or deferred",
        _DISKQUEUE,
        "            read_file, read_pos = self._commit\n",
        "            read_file, read_pos = self._read_file, self._read_pos\n",
    ),
    _m(
        "drain-skips-channel-sync",
        "a topic's drain syncs its own read position without syncing the channels' queues first",
        _TOPIC,
        "                    if is_durable(channel.backend):\n                        channel.backend.sync()\n",
        "                    if False:\n                        channel.backend.sync()\n",
    ),
    _m(
        "timeout-never-fires",
        "a message sent to a channel's only consumer never times out",
        _CHANNEL,
        "            deadline = now + client.msg_timeout\n            client_id = client.id\n",
        "            deadline = math.inf\n            client_id = client.id\n",
    ),
    _m(
        "timeout-not-credited",
        "a timed-out message keeps counting against its consumer's RDY",
        _PROTOCOL,
        "    def timed_out_message(self) -> None:\n        self.in_flight_count -= 1\n",
        "    def timed_out_message(self) -> None:\n        self.in_flight_count -= 0\n",
    ),
    _m(
        "durable-ok-before-fsync",
        "with --durable-publish a PUB is answered OK before its fsync",
        _PROTOCOL,
        "        counts[topic_name] = counts.get(topic_name, 0) + 1\n        if synced:\n",
        "        counts[topic_name] = counts.get(topic_name, 0) + 1\n        if False:\n",
    ),
    _m(
        "fsync-skipped",
        "the disk queue's sync writes the metadata but never fsyncs the segment",
        _DISKQUEUE,
        "                self._writer.fsync()\n",
        "                pass\n",
    ),
    _m(
        "deferred-early",
        "a deferred message (DPUB, REQ with a delay) is due after half its delay",
        _CHANNEL,
        "        due = self._clock.now() + delay\n",
        "        due = self._clock.now() + delay / 2\n",
    ),
    _m(
        "req-delay-ignored",
        "REQ with a delay puts the message straight back in the queue",
        _CHANNEL,
        "        elif delay <= 0:\n            self._put_back(got)\n",
        "        elif True:\n            self._put_back(got)\n",
    ),
    _m(
        "channel-without-buffered",
        "a topic's first channel does not get what the topic held before it existed",
        _TOPIC,
        "        if len(self.channels) == 1:\n            self.drain()\n",
        "        if len(self.channels) == 0:\n            self.drain()\n",
    ),
    _m(
        "rdy-off-by-one",
        "a lone consumer is sent one message more than its RDY count allows",
        _PROTOCOL,
        "        return self.ready_count - self.in_flight_count\n",
        "        return self.ready_count - self.in_flight_count + 1\n",
    ),
    _m(
        "attempts-not-counted",
        "a delivery to a lone consumer does not increment the message's attempts",
        _CHANNEL,
        "                msg.attempts += 1\n                msg.client_id = client_id\n",
        "                msg.attempts += 0\n                msg.client_id = client_id\n",
    ),
    _m(
        "message-shared-by-channels",
        "a PUB puts the same message object on every channel, not a copy each",
        _TOPIC,
        "                    channel.put(msg.copy())\n",
        "                    channel.put(msg)\n",
    ),
    _m(
        "clean-exit-drops-deferred",
        "a clean exit does not write a channel's deferred messages to disk",
        _CHANNEL,
        "        records += [encode_message_record(m, wall + max(1, int((m.deadline - now) * 1e9))) for m in self.deferred.values()]\n",
        "        records += []\n",
    ),
    _m(
        "metadata-forgets-channels",
        "nsqd.dat lists every topic with no channels",
        _NSQD,
        "            channels = [c for c in t.channels.values() if not c.ephemeral]\n",
        "            channels = []\n",
    ),
    _m(
        "read-advanced-twice",
        "a disk queue read moves the read position past the next record too",
        _DISKQUEUE,
        "                    return self._consumed(pos + HEADER_SIZE + len(data), data)\n",
        "                    return self._consumed(pos + 2 * (HEADER_SIZE + len(data)), data)\n",
    ),
    _m(
        "depth-decremented-twice",
        "a disk queue read takes two off the depth",
        _DISKQUEUE,
        "        self._depth = max(0, self._depth - 1)\n",
        "        self._depth = max(0, self._depth - 2)\n",
    ),
    _m(
        "held-segment-removed",
        "a finished segment is removed while a disk-only channel still holds records in it",
        _DISKQUEUE,
        "            if self._hold_reads and num >= self._commit[0]:\n",
        "            if False:\n",
    ),
    _m(
        "lookupd-forgets-producer",
        "nsqlookupd keeps only the first nsqd that registers a topic or channel",
        _LOOKUPD_DB,
        "        if peer_id in producers:\n            return False\n",
        "        if producers:\n            return False\n",
    ),
)


# -- applying ---------------------------------------------------------------------


def apply(mutant: Mutant, root: Path) -> None:
    """Make the mutant's change in the tree at ``root``; ``AnchorError`` unless its text occurs once."""
    path = root / mutant.path
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AnchorError(f"mutant {mutant.id}: {mutant.path} does not exist") from None
    n = text.count(mutant.find)
    if n != 1:
        where = "does not occur" if n == 0 else f"occurs {n} times"
        raise AnchorError(f"mutant {mutant.id}: its source text {where} in {mutant.path}: {mutant.find!r}")
    path.write_text(text.replace(mutant.find, mutant.replace), encoding="utf-8")


def check_anchors(root: Path = ROOT, catalogue: Iterable[Mutant] = CATALOGUE) -> list[str]:
    """What is wrong with the catalogue against the tree at ``root`` (empty: every anchor holds)."""
    problems: list[str] = []
    seen: set[str] = set()
    for m in catalogue:
        if m.id in seen:
            problems.append(f"mutant id {m.id} is used twice")
        seen.add(m.id)
        try:
            text = (root / m.path).read_text(encoding="utf-8")
        except FileNotFoundError:
            problems.append(f"mutant {m.id}: {m.path} does not exist")
            continue
        n = text.count(m.find)
        if n != 1:
            problems.append(f"mutant {m.id}: its source text occurs {n} times in {m.path}, not once")
    return problems


def copy_tree(dest: Path, src: Path = ROOT) -> None:
    """Copy the packages, tests and examples of ``src`` into ``dest`` (which must not exist)."""
    dest.mkdir(parents=True)
    for d in COPIED_DIRS:
        shutil.copytree(src / d, dest / d, ignore=_IGNORED)
    for f in COPIED_FILES:
        if (src / f).exists():
            shutil.copy2(src / f, dest / f)


# -- running the stages -----------------------------------------------------------


@dataclass
class Kill:
    stage: str
    what: str  # the failing test, or config and seed
    detail: str = ""


@dataclass
class Result:
    mutant: str
    killed_by: str  # "unit test", "refinement test", "sweep seed", "nothing", or "error"
    what: str = ""
    detail: str = ""
    seconds: float = 0.0  # to the first kill (to the end, for a survivor)
    stage_seconds: dict[str, float] = field(default_factory=dict)  # from the start to the end of each stage
    kills: dict[str, str] = field(default_factory=dict)  # stage -> what failed, for every stage that killed

    @property
    def killed(self) -> bool:
        return self.killed_by not in ("nothing", "error")


@dataclass(frozen=True)
class Settings:
    stages: tuple[str, ...] = STAGES
    seeds: range = range(1, 4)
    jobs: int = 1
    configs: tuple[str, ...] = SWEEP_CONFIGS
    unit_tests: tuple[str, ...] = UNIT_TESTS
    model_tests: tuple[str, ...] = MODEL_TESTS
    pytest_timeout: float = PYTEST_TIMEOUT
    seed_timeout: float = SEED_TIMEOUT
    every_stage: bool = False  # run every stage even after a kill, to see what each catches


_STAGE_NAMES = {"unit": "unit test", "model": "refinement test", "sweep": "sweep seed"}
_FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)(?: - (.*))?$", re.MULTILINE)


def _env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(root)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("NSQSIM_COMPILED", None)
    return env


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


def check_copy_imports_itself(root: Path) -> None:
    """Make sure the copy, not the installed tree, is what the stages import; RuntimeError if not."""
    code = "import broker, model, nsqsim; print(broker.__file__); print(model.__file__); print(nsqsim.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=_env(root), capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"the copy in {root} does not import: {_last_line(out.stderr)}")
    for line in out.stdout.split():
        if not Path(line).resolve().is_relative_to(root.resolve()):
            raise RuntimeError(f"the copy in {root} imports {line} from outside it: the stages would not test the mutant")


def _pytest(root: Path, stage: str, paths: Sequence[str], timeout: float) -> Kill | None:
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--hypothesis-seed=0", *paths]
    try:
        out = subprocess.run(cmd, cwd=root, env=_env(root), capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return Kill(stage, "(hang)", f"pytest {' '.join(paths)} ran past {timeout:.0f}s")
    if out.returncode == 0:
        return None
    m = _FAILED.search(out.stdout)
    if m is not None:
        return Kill(stage, m.group(1), (m.group(2) or "").strip())
    return Kill(stage, f"pytest exit {out.returncode}", _last_line(out.stdout) or _last_line(out.stderr))


def _sweep(root: Path, settings: Settings, log: Callable[[str], None]) -> Kill | None:
    seeds = list(settings.seeds)
    step = max(1, settings.jobs)
    with tempfile.TemporaryDirectory(prefix="nsqsim-sweep-") as tmp:
        summary = Path(tmp) / "summary.json"
        for i in range(0, len(seeds), step):
            chunk = seeds[i : i + step]
            span = f"{chunk[0]}..{chunk[-1]}"
            for cfg in settings.configs:
                config = f"examples/{cfg}.toml"
                cmd = [sys.executable, "-m", "nsqsim.cli", "sweep", "--config", config, "--seeds", span]
                cmd += ["--jobs", str(settings.jobs), "--summary-json", str(summary)]
                summary.unlink(missing_ok=True)
                log(f"    sweep {cfg} seeds {span}")
                try:
                    out = subprocess.run(
                        cmd, cwd=root, env=_env(root), capture_output=True, text=True, timeout=settings.seed_timeout * len(chunk), check=False
                    )
                except subprocess.TimeoutExpired:
                    return Kill("sweep", f"{cfg} seeds {span} (hang)", f"ran past {settings.seed_timeout * len(chunk):.0f}s")
                if out.returncode == 0:
                    continue
                if out.returncode == 1 and summary.exists():
                    doc = json.loads(summary.read_text(encoding="utf-8"))
                    if doc["failed"]:
                        seed = doc["failed"][0]
                        run = next(r for r in doc["runs"] if r["seed"] == seed)
                        first = run["violation_list"][0] if run["violation_list"] else ""
                        return Kill("sweep", f"{cfg} seed {seed}", f"{run['violations']} violations: {first}")
                # No summary: the simulation itself failed (the broker raised out of a handler, say).
                return Kill("sweep", f"{cfg} seeds {span} (crash)", _last_line(out.stderr) or _last_line(out.stdout))
    return None


def run_stages(root: Path, settings: Settings, log: Callable[[str], None]) -> tuple[list[Kill], dict[str, float]]:
    """Run the stages in the tree at ``root`` until one fails (every one, with ``every_stage``).

    The kills, in stage order, and each stage's time since the start (the time to kill).
    """
    times: dict[str, float] = {}
    kills: list[Kill] = []
    t0 = time.monotonic()
    for stage in settings.stages:
        log(f"  {stage}")
        if stage == "unit":
            kill = _pytest(root, stage, settings.unit_tests, settings.pytest_timeout)
        elif stage == "model":
            kill = _pytest(root, stage, settings.model_tests, settings.pytest_timeout)
        else:
            kill = _sweep(root, settings, log)
        times[stage] = time.monotonic() - t0
        if kill is not None:
            kills.append(kill)
            if not settings.every_stage:
                break
    return kills, times


def run_mutant(mutant: Mutant | None, settings: Settings, log: Callable[[str], None] = lambda s: None, keep: bool = False) -> Result:
    """Copy the tree, apply ``mutant`` (None: the baseline) and run the stages in the copy."""
    name = mutant.id if mutant is not None else "(baseline)"
    tmp = Path(tempfile.mkdtemp(prefix=f"nsqsim-mutant-{name.strip('()')}-"))
    t0 = time.monotonic()
    try:
        root = tmp / "tree"
        copy_tree(root)
        if mutant is not None:
            apply(mutant, root)
        check_copy_imports_itself(root)
        setup = time.monotonic() - t0
        kills, times = run_stages(root, settings, log)
    except (AnchorError, RuntimeError, OSError) as exc:
        return Result(name, "error", detail=str(exc), seconds=time.monotonic() - t0)
    finally:
        if keep:
            log(f"  kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    times = {stage: setup + t for stage, t in times.items()}
    if not kills:
        return Result(name, "nothing", seconds=time.monotonic() - t0, stage_seconds=times)
    first = kills[0]
    every = {k.stage: k.what for k in kills}
    return Result(name, _STAGE_NAMES[first.stage], first.what, first.detail, times[first.stage], times, every)


# -- the command ------------------------------------------------------------------


def _table(results: Sequence[Result], settings: Settings, title: str) -> Table:
    table = Table(title=title)
    for col in ("mutant", "killed by", "where", "time"):
        table.add_column(col, no_wrap=col == "mutant")
    every = settings.every_stage
    if every:
        for stage in settings.stages:
            table.add_column(f"{stage}?")
    for r in results:
        style = "" if r.killed else "bold red"
        row = [r.mutant, r.killed_by, (r.what + (f": {r.detail}" if r.detail else ""))[:100], f"{r.seconds:.0f}s"]
        if every:
            row += [r.kills.get(stage, "-")[:40] for stage in settings.stages]
        table.add_row(*row, style=style)
    return table


def markdown(results: Sequence[Result], settings: Settings, catalogue: Sequence[Mutant] = CATALOGUE) -> str:
    """The results as the README's table (with ``every_stage``, a column per stage: what it killed with)."""
    described = {m.id: m.description for m in catalogue}
    head = ["mutant", "the bug", "killed by", "time"]
    stages = list(settings.stages) if settings.every_stage else []
    head += [f"{_STAGE_NAMES[s]}s" for s in stages]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        where = f"{r.killed_by} `{r.what}`" if r.what else r.killed_by
        row = [f"`{r.mutant}`", described.get(r.mutant, ""), where, f"{r.seconds:.0f} s"]
        row += [f"`{r.kills[s]}`" if s in r.kills else "survives" for s in stages]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _select(only: str | None) -> list[Mutant]:
    if not only:
        return list(CATALOGUE)
    ids = [s.strip() for s in only.split(",") if s.strip()]
    known = {m.id: m for m in CATALOGUE}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise ValueError(f"unknown mutant {', '.join(unknown)} (see --list)")
    return [known[i] for i in ids]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nsqsim.mutants", description="plant each catalogued broker bug and see which stage catches it")
    p.add_argument("--list", action="store_true", help="print the catalogue and check its anchors; run nothing")
    p.add_argument("--only", help="comma-separated mutant ids")
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, in order (default {','.join(STAGES)})")
    p.add_argument("--seeds", default=DEFAULT_SEEDS, help=f"sweep seeds A..B (default {DEFAULT_SEEDS})")
    p.add_argument("--jobs", type=int, default=1, help="sweep worker processes (default 1: the machine is shared)")
    p.add_argument("--configs", default=",".join(SWEEP_CONFIGS), help="examples/<name>.toml to sweep, comma-separated")
    p.add_argument("--every-stage", action="store_true", help="run every stage even after one kills, to see what each catches")
    p.add_argument("--no-baseline", action="store_true", help="skip running the stages on the unmodified tree first")
    p.add_argument("--keep", action="store_true", help="keep each mutated copy (its path is printed)")
    p.add_argument("--json", dest="json_out", help="write the results here")
    p.add_argument("--markdown", action="store_true", help="also print the results as a markdown table")
    return p


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # Unwinds like ^C: the running stage's process is killed and the copy removed.
    sys.exit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if threading.current_thread() is not threading.main_thread():
        return _main(args)
    before = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        return _main(args)
    finally:
        signal.signal(signal.SIGTERM, before)


def _main(args: argparse.Namespace) -> int:
    # A log file gets whole lines, not a table folded to 80 columns.
    console = Console() if sys.stdout.isatty() else Console(width=200)
    problems = check_anchors()
    if args.list:
        table = Table(title="mutants")
        for col in ("id", "file", "the bug"):
            table.add_column(col, no_wrap=col == "id")
        for m in CATALOGUE:
            table.add_row(m.id, m.path, m.description)
        console.print(table)
        for p in problems:
            console.print(f"[red]{p}[/red]")
        return 2 if problems else 0
    try:
        mutants = _select(args.only)
        stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
        bad = [s for s in stages if s not in STAGES]
        if bad or not stages:
            raise ValueError(f"invalid --stages {args.stages!r}: choose from {', '.join(STAGES)}")
        configs = tuple(c.strip() for c in args.configs.split(",") if c.strip())
        missing = [c for c in configs if not (ROOT / "examples" / f"{c}.toml").exists()]
        if missing:
            raise ValueError(f"no examples/{missing[0]}.toml")
        settings = Settings(
            stages=stages, seeds=parse_seeds(args.seeds), jobs=max(1, args.jobs), configs=configs, every_stage=args.every_stage
        )
    except ValueError as exc:
        print(f"nsqsim.mutants: {exc}", file=sys.stderr)
        return 2
    chosen = {m.id for m in mutants}
    stale = [p for p in problems if any(f"mutant {i}:" in p for i in chosen) or "used twice" in p]
    if stale:
        for p in stale:
            print(f"nsqsim.mutants: {p}", file=sys.stderr)
        return 2

    def log(line: str) -> None:
        console.print(line, style="dim", highlight=False)

    if not args.no_baseline:
        console.print("[bold]baseline[/bold] (no mutant)")
        base = run_mutant(None, settings, log)
        if base.killed_by != "nothing":
            console.print(f"[red]the unmodified tree fails {base.killed_by} {base.what}: {base.detail}[/red]")
            console.print("every mutant would look killed; fix the tree (or choose --stages) first")
            return 2
        console.print(f"  passes every stage in {base.seconds:.0f}s")
    results: list[Result] = []
    for m in mutants:
        console.print(f"[bold]{m.id}[/bold]: {m.description}")
        r = run_mutant(m, settings, log, keep=args.keep)
        results.append(r)
        console.print(f"  -> {r.killed_by} {r.what} ({r.seconds:.0f}s) {r.detail[:150]}", highlight=False)
        for stage, what in r.kills.items():
            console.print(f"     {stage}: {what}", highlight=False)
        if args.json_out:
            _write_json(args.json_out, settings, results)
    console.print(_table(results, settings, f"mutants: stages {','.join(settings.stages)}, seeds {args.seeds}"))
    if args.markdown:
        print(markdown(results, settings))
    survivors = [r.mutant for r in results if not r.killed]
    if survivors:
        console.print(f"[red]{len(survivors)} not killed: {', '.join(survivors)}[/red]")
        return 1
    console.print(f"[green]all {len(results)} killed[/green]")
    return 0


def _write_json(path: str, settings: Settings, results: Sequence[Result]) -> None:
    doc = {
        "stages": list(settings.stages),
        "seeds": [settings.seeds.start, settings.seeds.stop - 1],
        "configs": list(settings.configs),
        "every_stage": settings.every_stage,
        "results": [asdict(r) for r in results],
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    sys.exit(main())
