"""The CI-sized sweeps: short mixed-fault scenarios in every durability mode and with the
beyond-nsqd options, many seeds each, zero violations.

Sized to take about three minutes together on two cores (about 0.35 CPU-seconds a
seed).  A failure prints, for each failing seed, the ``nsqsim run`` command that
replays it; pin such a seed in ``test_regressions.py`` once its cause is known.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nsqsim.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# config, seeds, and what must have happened for the sweep to mean anything
SWEEPS = [
    ("ci-sweep", 300, {"lost_allowed", "duplicates"}),  # default mode: crashes may lose memory
    ("ci-sweep-disk-only", 150, {"duplicates"}),
    ("ci-sweep-durable", 150, {"duplicates"}),
    ("ci-sweep-beyond", 150, {"lost_allowed", "duplicates"}),  # dead letters and TTL: expired messages
    ("ci-sweep-secure", 150, {"lost_allowed", "duplicates"}),  # TLS, deflate and AUTH on every connection
    ("ci-sweep-nemesis", 150, {"lost_allowed", "duplicates"}),  # clock jumps and skew, stalls, net delay/cut, ENOSPC on fsync
]


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize(("name", "seeds", "happened"), SWEEPS, ids=[s[0] for s in SWEEPS])
def test_ci_sweep_has_no_violations(tmp_path: Path, name: str, seeds: int, happened: set[str]) -> None:
    out = tmp_path / "sweep.json"
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "--config", str(EXAMPLES / f"{name}.toml"), "--seeds", f"1..{seeds}", "--jobs", "2", "--summary-json", str(out)])
    doc = json.loads(out.read_text())
    failed = [r for r in doc["runs"] if r["violations"]]
    assert exit_info.value.code == 0, "\n".join(f"{r['replay']}: {r['violation_list'][:3]}" for r in failed)
    assert doc["seeds"] == seeds
    runs = doc["runs"]
    assert sum(r["published"] for r in runs) > 20 * seeds
    # The faults really happened: messages were duplicated by timeouts (and lost to crashes).
    for what in happened:
        assert sum(r[what] for r in runs) > 0, what
