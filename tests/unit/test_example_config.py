"""deploy/nsqd.toml and deploy/nsqlookupd.toml: complete, current, and read back as the defaults."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from broker.apps import nsqd as nsqd_app
from broker.apps import nsqlookupd as nsqlookupd_app
from broker.apps.example_config import render
from broker.apps.goflags import load_toml
from broker.lookupd.options import FLAGS as LOOKUPD_FLAGS
from broker.nsqd.options import FLAGS as NSQD_FLAGS
from broker.nsqd.options import FlagSpec

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("app", ["nsqd", "nsqlookupd"])
def test_the_file_is_what_the_flag_table_gives(app: str) -> None:
    path = ROOT / "deploy" / f"{app}.toml"
    assert path.read_text() == render(app), f"regenerate: python -m broker.apps.example_config {app} > {path.relative_to(ROOT)}"


@pytest.mark.parametrize(("app", "flags"), [("nsqd", NSQD_FLAGS), ("nsqlookupd", LOOKUPD_FLAGS)])
def test_every_option_is_listed_once(app: str, flags: tuple[FlagSpec, ...]) -> None:
    text = (ROOT / "deploy" / f"{app}.toml").read_text()
    keys = re.findall(r"^#? ?([a-z0-9_]+) = ", text, flags=re.MULTILINE)
    assert sorted(keys) == sorted(spec.cfg_name for spec in flags)


def test_nsqd_reads_the_file_back_as_its_defaults() -> None:
    flags = nsqd_app.flag_set("somehost")
    config = load_toml(str(ROOT / "deploy" / "nsqd.toml"))
    assert flags.resolve(flags.parse([]), config) == flags.defaults
    assert "id" not in config and "broadcast_address" not in config  # derived from each host, left to it


def test_nsqlookupd_reads_the_file_back_as_its_defaults() -> None:
    flags = nsqlookupd_app.flag_set("somehost")
    config = load_toml(str(ROOT / "deploy" / "nsqlookupd.toml"))
    assert flags.resolve(flags.parse([]), config) == flags.defaults


def test_values_are_toml() -> None:
    for app in ("nsqd", "nsqlookupd"):
        tomllib.loads(render(app))
