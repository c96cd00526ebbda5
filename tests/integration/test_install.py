"""Installing the package as a user would: ``./dev.sh nsqd``'s run environment, a wheel, an sdist.

Each test builds a fresh virtual environment in a temporary directory (pip
reads the package index the machine is configured with) and removes it after.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
INSTALL_BOUND = 600.0  # seconds a venv creation and pip install may take
VERSION_LINE = re.compile(r"nsqd v1\.3\.0 \(built w/[a-z]+\d+\.\d+\.\d+\S*\)\n")


def _name(requirement: str) -> str:
    """The canonical project name of a requirement string (PEP 503)."""
    m = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    assert m, requirement
    return re.sub(r"[-_.]+", "-", m.group(0)).lower()


def _declared() -> tuple[set[str], set[str]]:
    """(runtime dependencies, every extra's dependencies) from pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {_name(r) for r in project["dependencies"]}
    extras = {_name(r) for reqs in project["optional-dependencies"].values() for r in reqs}
    return runtime, extras - runtime - VENV_SEEDS


# What `python -m venv` puts in every environment (setuptools is also a dev extra, for mypyc).
VENV_SEEDS = {"pip", "setuptools"}


def installed(venv: Path) -> set[str]:
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
        capture_output=True, text=True, timeout=INSTALL_BOUND, check=True,
    )
    return {_name(p["name"]) for p in json.loads(done.stdout)}


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without what would let a venv borrow our modules."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return {**env, **extra}


def test_dev_sh_nsqd_installs_only_what_nsqd_needs(tmp_path: Path) -> None:
    venv = tmp_path / "run"
    done = subprocess.run(
        [str(ROOT / "dev.sh"), "nsqd", "--version"],
        env=clean_env(NSQSIM_RUN_VENV=str(venv), PYTHON=sys.executable),
        capture_output=True, text=True, timeout=INSTALL_BOUND, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert VERSION_LINE.fullmatch(done.stdout), done.stdout
    runtime, dev_only = _declared()
    have = installed(venv)
    assert runtime <= have
    assert "nsqsim" in have
    assert not have & dev_only, f"dev/analysis packages in the run environment: {sorted(have & dev_only)}"
    assert not (venv / "bin" / "pytest").exists()
