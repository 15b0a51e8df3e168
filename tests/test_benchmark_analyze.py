"""benchmarks/analyze.py: the main job's benchmark measures real ``analyze`` processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "analyze.py"


def test_against_a_directory_without_the_package_is_refused(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--against", str(tmp_path), "--out",
                           str(tmp_path / "a.json")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"--against {tmp_path}: no sparsetopo package there" in done.stderr
    assert not (tmp_path / "a.json").exists()


@pytest.mark.slow
def test_one_counted_run_is_recorded(tmp_path):
    out = tmp_path / "analyze.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--repeats", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert list(result["results"]) == ["this"] and list(tmp_path.iterdir()) == [out]
    row = result["results"]["this"]
    (run,) = row["runs"]
    assert row["tree"] == str(ROOT) and row["median_wall_s"] == run["wall_s"]
    assert result["met"] == (run["wall_s"] <= result["target_s"] == 3.0)
    # the child's own figures: its CPU, its peak (torch alone is ~0.3 GB), its phases
    assert run["user_s"] > 0.5 and run["minor_faults"] > 10_000
    assert 0.3 < run["peak_rss_gb"] < 8 and run["wall_s"] > run["phases_s"]["total_s"]
    assert {"encode_s", "topometrics_s", "picture_s"} <= set(run["phases_s"])
