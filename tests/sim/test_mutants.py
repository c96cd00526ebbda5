"""The mutation-testing harness: its catalogue still fits the code, and a planted bug is caught."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from nsqsim import mutants
from nsqsim.mutants import (
    CATALOGUE,
    AnchorError,
    Mutant,
    Settings,
    apply,
    check_anchors,
    copy_tree,
    run_mutant,
)

ROOT = Path(__file__).resolve().parents[2]


def test_every_anchor_occurs_exactly_once_in_the_tree() -> None:
    assert check_anchors(ROOT) == []


def test_the_catalogue_has_a_dozen_distinct_one_line_changes_that_still_parse() -> None:
    assert len(CATALOGUE) >= 12
    assert len({m.id for m in CATALOGUE}) == len(CATALOGUE)
    for m in CATALOGUE:
        before, after = m.find.splitlines(), m.replace.splitlines()
        assert len(before) == len(after), m.id
        assert sum(a != b for a, b in zip(before, after, strict=True)) == 1, f"{m.id} changes more than one line"
        # A mutant that does not parse would be killed by any import, and prove nothing.
        ast.parse((ROOT / m.path).read_text(encoding="utf-8").replace(m.find, m.replace), m.path)


def test_a_stale_anchor_fails_loudly(tmp_path: Path) -> None:
    (tmp_path / "f.py").write_text("x = 1\nx = 1\ny = 2\n")
    twice = Mutant("twice", "", "f.py", "x = 1\n", "x = 2\n")
    gone = Mutant("gone", "", "f.py", "z = 3\n", "z = 4\n")
    with pytest.raises(AnchorError, match="occurs 2 times"):
        apply(twice, tmp_path)
    with pytest.raises(AnchorError, match="does not occur"):
        apply(gone, tmp_path)
    assert check_anchors(tmp_path, [twice, gone]) == [
        "mutant twice: its source text occurs 2 times in f.py, not once",
        "mutant gone: its source text occurs 0 times in f.py, not once",
    ]
    apply(Mutant("once", "", "f.py", "y = 2\n", "y = 3\n"), tmp_path)
    assert (tmp_path / "f.py").read_text() == "x = 1\nx = 1\ny = 3\n"


def test_a_copy_imports_its_own_packages(tmp_path: Path) -> None:
    copy_tree(tmp_path / "tree")
    assert not list((tmp_path / "tree").rglob("__pycache__"))
    mutants.check_copy_imports_itself(tmp_path / "tree")


def test_a_planted_bug_is_killed_by_a_fast_stage_and_the_baseline_is_not() -> None:
    # One unit test file that covers REQ, so the end-to-end run stays a few seconds.
    settings = Settings(stages=("unit",), unit_tests=("tests/unit/nsqd/test_protocol_v2.py",))
    baseline = run_mutant(None, settings)
    assert (baseline.killed_by, baseline.kills) == ("nothing", {})
    mutant = next(m for m in CATALOGUE if m.id == "req-delay-ignored")
    result = run_mutant(mutant, settings)
    assert result.killed_by == "unit test"
    assert result.what.startswith("tests/unit/nsqd/test_protocol_v2.py::")
    assert result.kills == {"unit": result.what}


def test_the_command_refuses_an_unknown_mutant_and_lists_the_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    assert mutants.main(["--only", "no-such-bug"]) == 2
    assert "unknown mutant no-such-bug" in capsys.readouterr().err
    assert mutants.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert all(m.id in out for m in CATALOGUE)
