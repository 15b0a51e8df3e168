"""The GPU check script (scripts/gpu-check.sh) is ready for the next GPU: valid shell, and its
study check counts overlapping runs right and refuses runs that did not train on a GPU."""

from __future__ import annotations

import importlib.util
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_script_is_valid_shell():
    done = subprocess.run(["bash", "-n", str(ROOT / "scripts" / "gpu-check.sh")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_overlap_counts_runs_running_at_once():
    t0 = datetime(2026, 1, 1)
    at = [t0 + timedelta(seconds=s) for s in range(10)]
    # four runs on [0,4], [1,5], [2,6], [3,7], then one alone on [8,9]
    starts, ends = [at[0], at[1], at[2], at[3], at[8]], [at[4], at[5], at[6], at[7], at[9]]
    assert _module()._overlap(starts, ends) == 4
    assert _module()._overlap([at[0], at[2]], [at[1], at[3]]) == 1
