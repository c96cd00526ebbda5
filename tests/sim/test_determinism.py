"""Same seed and configuration, same history, byte for byte; in this process and in fresh ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from nsqsim.cluster import run
from nsqsim.config import load_config

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "examples" / "ci-sweep.toml")
SEED = 11


def test_a_seed_replays_byte_for_byte_and_another_seed_differs() -> None:
    cfg = load_config(CONFIG)
    first = run(cfg, SEED)
    second = run(cfg, SEED)
    assert len(first.history.events) > 500
    assert list(first.history.lines()) == list(second.history.lines())
    assert first.history.digest() == second.history.digest()
    assert run(cfg, SEED + 1).history.digest() != first.history.digest()


def test_fresh_processes_with_different_hash_seeds_agree(tmp_path: Path) -> None:
    expected = run(load_config(CONFIG), SEED).history.digest()
    digests = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"summary-{hash_seed}.json"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run(
            [sys.executable, "-m", "nsqsim.cli", "run", "--config", CONFIG, "--seed", str(SEED), "--summary-json", str(out)],
            check=True,
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            timeout=120,
        )
        digests.append(json.loads(out.read_text())["history_digest"])
    assert digests == [expected, expected]
