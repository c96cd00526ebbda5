"""The deployment files: the Dockerfile, the systemd units, run as far as this machine can.

Docker cannot build here, so the Dockerfile is parsed and checked line by
line; the commands it runs are checked to exist (the console script in
pyproject, the files it copies) and its healthcheck is run for real against
a started nsqd.  The systemd units go through ``systemd-analyze verify``
where it is installed, with their command lines parsed by the daemons' own
flag sets.
"""

from __future__ import annotations

import configparser
import json
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from broker.apps import nsqd as nsqd_app
from broker.apps import nsqlookupd as nsqlookupd_app
from broker.apps.goflags import FlagSet
from tests.integration.conftest import ROOT, Daemon

pytestmark = pytest.mark.integration

BOUND = 30.0


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each instruction, continuations joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, "a continuation at the end of the Dockerfile"
    return out


def instructions(name: str) -> list[str]:
    return [args for word, args in dockerfile() if word == name]


def console_scripts() -> dict[str, str]:
    scripts: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    return scripts


# -- Dockerfile ------------------------------------------------------------------------------------


def test_dockerfile_builds_on_slim_python_and_runs_nsqd_as_a_user_with_a_data_volume() -> None:
    froms = instructions("FROM")
    assert froms and all(re.fullmatch(r"python:3\.1[1-9]-slim( AS \w+)?", f) for f in froms), froms
    [user] = instructions("USER")
    assert user not in ("root", "0")
    assert instructions("VOLUME") == ["/data"]
    assert instructions("WORKDIR")[-1] == "/data"
    assert sorted(instructions("EXPOSE")[0].split()) == ["4150", "4151"]
    [entrypoint] = instructions("ENTRYPOINT")
    [cmd] = instructions("CMD")
    assert json.loads(entrypoint) == ["nsqd"]
    args = json.loads(cmd)
    assert "--data-path=/data" in args
    nsqd_app.flag_set("host").parse_or_exit(args)  # nsqd's own parser takes them
    assert instructions("STOPSIGNAL") == ["SIGTERM"]


def test_dockerfile_copies_what_exists_and_runs_commands_that_exist() -> None:
    for args in instructions("COPY"):
        words = args.split()
        if words[0].startswith("--from="):
            continue
        for source in words[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    assert "nsqd" in console_scripts() and "nsqlookupd" in console_scripts()  # ENTRYPOINT and the docs' --entrypoint
    runs = " && ".join(instructions("RUN"))
    assert "pip wheel" in runs and "pip install" in runs
    assert "[dev" not in runs and "analysis" not in runs  # runtime dependencies only
    # every package the image needs is copied into the build stage
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = {a.split()[0] for a in instructions("COPY")}
    assert {p.rstrip("*") for p in packages} <= copied


def healthcheck_argv() -> list[str]:
    [check] = instructions("HEALTHCHECK")
    options, _, command = check.partition("CMD ")
    assert re.search(r"--interval=\d+s", options) and re.search(r"--timeout=\d+s", options)
    argv: list[str] = json.loads(command)
    assert argv[0] == "python" and "http://127.0.0.1:4151/ping" in argv[-1]
    return argv


def test_the_healthcheck_passes_on_a_healthy_nsqd_and_fails_without_one(
    nsqd_factory: Callable[..., Daemon], tmp_path: Path
) -> None:
    argv = healthcheck_argv()
    nsqd = nsqd_factory()
    port = nsqd.http_address[1]
    probe = [sys.executable, *argv[1:-1], argv[-1].replace(":4151/", f":{port}/")]
    assert subprocess.run(probe, capture_output=True, timeout=BOUND, check=False).returncode == 0
    assert nsqd.stop(signal.SIGTERM) == 0
    failed = subprocess.run(probe, capture_output=True, timeout=BOUND, check=False)
    assert failed.returncode == 1 and failed.stderr == b""


# -- systemd ---------------------------------------------------------------------------------------


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((ROOT / "deploy" / name).read_text())
    return parser


@pytest.mark.parametrize(
    ("name", "flags"),
    [("nsqd.service", nsqd_app.flag_set("host")), ("nsqlookupd.service", nsqlookupd_app.flag_set("host"))],
)
def test_systemd_unit_runs_the_console_script_with_flags_it_takes(name: str, flags: FlagSet[Any]) -> None:
    service = unit(name)["Service"]
    argv = shlex.split(service["ExecStart"])
    assert Path(argv[0]).name == name.removesuffix(".service")
    assert Path(argv[0]).name in console_scripts()
    flags.parse_or_exit(argv[1:])
    assert service["User"] != "root"
    assert service["KillSignal"] == "SIGTERM"
    assert unit(name)["Install"]["WantedBy"] == "multi-user.target"
    config = next(a for a in argv if a.startswith("--config=")).removeprefix("--config=")
    assert (ROOT / "deploy" / Path(config).name).exists()  # the example it points at ships in deploy/


def test_nsqd_unit_keeps_its_data_in_its_state_directory() -> None:
    service = unit("nsqd.service")["Service"]
    argv = shlex.split(service["ExecStart"])
    assert f"--data-path=/var/lib/{service['StateDirectory']}" in argv
    assert service["ReadWritePaths"] == f"/var/lib/{service['StateDirectory']}"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("name", ["nsqd.service", "nsqlookupd.service"])
def test_systemd_analyze_verify_finds_nothing(name: str, tmp_path: Path) -> None:
    # The unit as installed, with the install path pointed at this environment's console scripts.
    text = (ROOT / "deploy" / name).read_text().replace("/opt/nsqsim/bin/", f"{Path(sys.executable).parent}/")
    (tmp_path / name).write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(tmp_path / name)],
        capture_output=True, text=True, timeout=BOUND, check=False,
    )
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
