"""Installing the package as a user would: ``./dev.sh nsqd``'s run environment, a wheel, an sdist.

Each test builds a fresh virtual environment in a temporary directory (pip
reads the package index the machine is configured with) and removes it after.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import urllib.request
import zipfile
from pathlib import Path

import pytest

from broker.version import PACKAGE_VERSION
from tests.integration.conftest import Daemon

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


# -- a wheel and an sdist, installed in clean environments -------------------------------------------

SOURCES = ("pyproject.toml", "README.md", "broker", "model", "nsqsim")
PACKAGE_DATA = ("broker/py.typed", "model/py.typed", "nsqsim/py.typed")


def make_venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(path)], env=clean_env(), timeout=INSTALL_BOUND, check=True)
    return path


def pip(venv: Path, *args: str) -> None:
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "install", "--quiet", *args],
        env=clean_env(), capture_output=True, text=True, timeout=INSTALL_BOUND, check=False,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python -m build`` of a copy of the sources: dist/ with one wheel and one sdist."""
    root = tmp_path_factory.mktemp("build")
    src = root / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, src / name)
    builder = make_venv(root / "builder")
    pip(builder, "build")
    done = subprocess.run(
        [str(builder / "bin" / "python"), "-m", "build", "--outdir", str(root / "dist"), str(src)],
        env=clean_env(), capture_output=True, text=True, timeout=INSTALL_BOUND, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return root / "dist"


def test_the_sdist_carries_the_sources_and_package_data(dist: Path) -> None:
    [sdist] = dist.glob("nsqsim-*.tar.gz")
    assert sdist.name == f"nsqsim-{PACKAGE_VERSION}.tar.gz"
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {"pyproject.toml", "README.md", *PACKAGE_DATA, "broker/apps/nsqd.py", "broker/version.py"} <= names


def test_the_wheel_carries_the_package_data(dist: Path) -> None:
    [wheel] = dist.glob("nsqsim-*.whl")
    assert wheel.name.startswith(f"nsqsim-{PACKAGE_VERSION}-py3-none-any")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert set(PACKAGE_DATA) <= names
    assert not any(n.startswith("tests/") for n in names)


@pytest.mark.parametrize("kind", ["whl", "tar.gz"])
def test_installed_in_a_clean_venv_nsqd_runs_and_answers_ping(
    kind: str, dist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    [artifact] = dist.glob(f"nsqsim-*.{kind}")
    venv = make_venv(tmp_path / "venv")
    pip(venv, str(artifact))
    for name in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"):
        monkeypatch.delenv(name, raising=False)  # the daemons below import only what was installed
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import broker, model, nsqsim; print(broker.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, timeout=INSTALL_BOUND, check=True,
    )
    assert where.stdout.startswith(str(venv))
    version = subprocess.run([str(venv / "bin" / "nsqd"), "--version"], capture_output=True, text=True, timeout=INSTALL_BOUND, check=False)
    assert version.returncode == 0 and VERSION_LINE.fullmatch(version.stdout), version
    for script in ("nsqlookupd", "nsq_tail", "to_nsq", "nsq_stat", "nsq_to_file", "nsq_to_nsq", "nsq_to_http", "nsqsim"):
        assert (venv / "bin" / script).exists(), script
    data = tmp_path / "data"
    data.mkdir()
    daemon = Daemon([str(venv / "bin" / "nsqd"), "--tcp-address=127.0.0.1:0", "--http-address=127.0.0.1:0", f"--data-path={data}"])
    try:
        daemon.wait_listening()
        host, port = daemon.http_address
        with urllib.request.urlopen(f"http://{host}:{port}/ping", timeout=30) as resp:
            assert (resp.status, resp.read()) == (200, b"OK")
        with urllib.request.urlopen(f"http://{host}:{port}/info", timeout=30) as resp:
            assert json.loads(resp.read())["nsqsim_version"] == PACKAGE_VERSION
        assert daemon.stop() == 0
    finally:
        daemon.close()
