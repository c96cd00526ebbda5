"""The mypyc-compiled build (``nsqsim.compiled``) runs the same simulation as the pure-Python tree.

Compiling takes about a minute, so the build is made once for the module and
the test is marked slow (CI runs it).  The runs on it are separate processes
started the way ``--compiled`` starts them (``python -P`` with the build first
on ``PYTHONPATH``), so that every import comes from the build.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nsqsim import compiled
from nsqsim.cluster import run
from nsqsim.config import load_config

ROOT = Path(__file__).resolve().parents[2]
CASES = [("examples/ci-sweep.toml", 3), ("examples/ci-sweep-disk-only.toml", 5)]


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compiled.build(build_dir=tmp_path_factory.mktemp("compiled") / "tree", quiet=True)


def _in_build(build: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(build))
    return subprocess.run([sys.executable, "-P", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600, check=True)


@pytest.mark.slow
def test_the_build_is_current_and_its_hot_modules_are_extensions(build: Path) -> None:
    assert compiled.current(build_dir=build)
    names = [m.removesuffix(".py").replace("/", ".") for m in compiled.MODULES]
    code = f"import importlib, json; print(json.dumps([importlib.import_module(n).__file__ for n in {names!r}]))"
    files = json.loads(_in_build(build, "-c", code).stdout)
    assert all(f.startswith(str(build)) and not f.endswith(".py") for f in files), files


@pytest.mark.slow
@pytest.mark.parametrize(("config", "seed"), CASES)
def test_a_compiled_run_writes_the_same_history(build: Path, tmp_path: Path, config: str, seed: int) -> None:
    out = tmp_path / "summary.json"
    _in_build(build, "-m", "nsqsim.cli", "run", "--config", config, "--seed", str(seed), "--summary-json", str(out))
    summary = json.loads(out.read_text())
    assert summary["history_digest"] == run(load_config(str(ROOT / config)), seed).history.digest()
    assert summary["violations"] == 0


def test_the_stamp_changes_with_any_source(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "c.toml").write_text("k = 1\n")
    files = ["a.py", "c.toml"]
    before = compiled.source_digest(tmp_path, files)
    (tmp_path / "c.toml").write_text("k = 2\n")
    assert compiled.source_digest(tmp_path, files) != before
