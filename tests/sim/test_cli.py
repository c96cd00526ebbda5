"""The nsqsim command: run and sweep, their outputs, exit codes and replay commands."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from broker.version import PACKAGE_VERSION
from nsqsim.cli import apply_faults, check_output, main, parse_seeds, run_one
from nsqsim.nemesis import FaultModel
from nsqsim.summary import percentile, print_summary, replay_command

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "examples" / "ci-sweep.toml")

SUMMARY_KEYS = {
    "seed",
    "sim_seconds",
    "wall_seconds",
    "events",
    "published",
    "acknowledged",
    "delivered",
    "duplicates",
    "lost_allowed",
    "violations",
}


def test_run_writes_history_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    history, summary = tmp_path / "h.jsonl", tmp_path / "s.json"
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--config", CONFIG, "--seed", "3", "--history", str(history), "--summary-json", str(summary)])
    assert exit_info.value.code == 0
    doc = json.loads(summary.read_text())
    assert set(doc) >= SUMMARY_KEYS
    assert doc["seed"] == 3 and doc["violations"] == 0 and doc["published"] > 0
    assert doc["replay"] == f"nsqsim run --config {CONFIG} --seed 3"
    lines = history.read_text().splitlines()
    assert json.loads(lines[0])["type"] == "run" and json.loads(lines[-1])["type"] == "end"
    assert "violations" in capsys.readouterr().out


def test_sweep_runs_seeds_in_processes(tmp_path: Path) -> None:
    out = tmp_path / "sweep.json"
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "--config", CONFIG, "--seeds", "1..4", "--jobs", "2", "--summary-json", str(out)])
    assert exit_info.value.code == 0
    doc = json.loads(out.read_text())
    assert doc["seeds"] == 4 and doc["failed"] == []
    assert [r["seed"] for r in doc["runs"]] == [1, 2, 3, 4]


def test_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("durration = 3\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--config", str(bad), "--seed", "1"])
    assert exit_info.value.code == 2
    assert "unknown keys" in capsys.readouterr().err


def test_a_failing_run_prints_the_command_that_replays_it() -> None:
    summary = run_one(CONFIG, 5, "off")
    summary["violations"] = 1
    summary["violation_list"] = ["lost: p-0:7 acknowledged by nsqd-0 at 1.0, never delivered to channel work"]
    buf = io.StringIO()
    print_summary(summary, Console(file=buf, width=200))
    text = buf.getvalue()
    assert "lost: p-0:7" in text
    assert f"replay: nsqsim run --config {CONFIG} --seed 5 --faults off" in text


def test_faults_override_and_seed_ranges() -> None:
    model = FaultModel(enabled=True)
    assert not apply_faults(model, "off").enabled
    assert apply_faults(FaultModel(), "on").enabled
    assert set(apply_faults(model, "crash, disk").weights) == {"crash", "disk"}
    assert list(parse_seeds("3..5")) == [3, 4, 5] and list(parse_seeds("7")) == [7]
    with pytest.raises(ValueError):
        parse_seeds("5..3")
    assert replay_command("a b.toml", 1) == "nsqsim run --config 'a b.toml' --seed 1"


def test_percentiles_by_nearest_rank() -> None:
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([], 50) is None


@pytest.mark.parametrize("flag", ["--history", "--summary-json"])
def test_an_output_that_cannot_be_written_exits_2_before_running(flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "no" / "such" / "dir" / "out.json"
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--config", CONFIG, "--seed", "1", flag, str(target)])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.err == f"nsqsim: cannot write {flag} {target}: No such file or directory\n"
    assert captured.out == ""  # nothing ran


def test_a_sweep_summary_that_is_a_directory_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "--config", CONFIG, "--seeds", "1..2", "--summary-json", str(tmp_path)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"nsqsim: cannot write --summary-json {tmp_path}: it is a directory\n"


def test_checking_an_output_leaves_nothing_behind(tmp_path: Path) -> None:
    check_output("--history", str(tmp_path / "h.jsonl"))
    assert list(tmp_path.iterdir()) == []
    kept = tmp_path / "kept.json"
    kept.write_text("old")
    check_output("--summary-json", str(kept))
    assert kept.read_text() == "old"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("5-1", "expected a seed N or an inclusive range A..B (e.g. 1..100)"),
        ("a..b", "expected a seed N or an inclusive range A..B (e.g. 1..100)"),
        ("1..", "expected a seed N or an inclusive range A..B (e.g. 1..100)"),
        ("", "expected a seed N or an inclusive range A..B (e.g. 1..100)"),
        ("5..1", "the range is empty (5 > 1); write it low..high"),
    ],
)
def test_bad_seeds_exit_2_with_a_clear_message(text: str, why: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "--config", CONFIG, "--seeds", text])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"nsqsim: invalid --seeds {text!r}: {why}\n"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert re.fullmatch(
        rf"nsqsim v{re.escape(PACKAGE_VERSION)} \(NSQ v1\.3\.0, built w/[a-z]+\d+\.\d+\.\d+\S*\)\n", capsys.readouterr().out
    )
