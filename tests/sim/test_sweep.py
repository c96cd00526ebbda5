"""The CI-sized sweep: 400 seeds of a short mixed-fault scenario, zero violations.

Sized to take a minute or two on two cores.  A failure prints, for each
failing seed, the ``nsqsim run`` command that replays it; pin such a seed in
``test_regressions.py`` once its cause is known.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nsqsim.cli import main

CONFIG = str(Path(__file__).resolve().parents[2] / "examples" / "ci-sweep.toml")
SEEDS = "1..400"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_ci_sweep_has_no_violations(tmp_path: Path) -> None:
    out = tmp_path / "sweep.json"
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "--config", CONFIG, "--seeds", SEEDS, "--jobs", "2", "--summary-json", str(out)])
    doc = json.loads(out.read_text())
    failed = [r for r in doc["runs"] if r["violations"]]
    assert exit_info.value.code == 0, "\n".join(f"{r['replay']}: {r['violation_list'][:3]}" for r in failed)
    assert doc["seeds"] == 400
    runs = doc["runs"]
    assert sum(r["published"] for r in runs) > 10_000
    # The faults really happened: messages were lost to crashes and duplicated by timeouts.
    assert sum(r["lost_allowed"] for r in runs) > 0
    assert sum(r["duplicates"] for r in runs) > 0
