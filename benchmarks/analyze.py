"""Wall time and peak memory of the main job, ``sparsetopo analyze`` at its defaults (resnet20,
SNIP at 0.98, digits; speed issue target: <= 3 s after setup).

    .venv/bin/python benchmarks/analyze.py [--repeats 5] [--against TREE] [--check] [--out PATH]

Each run is a fresh process, ``python -m sparsetopo analyze --quiet --out DIR`` (the console
script's own entry point, ``sparsetopo.__main__.main``), started in an empty directory with
``PYTHONPATH`` set to the checkout timed; one run per checkout comes first and is not counted
(it fills the numba kernel cache and the digits split cache, as ``make run`` does once after
setup). Per run: wall seconds (process start to exit), user and system CPU seconds, peak RSS and
minor page faults of that process (``os.wait4``; GB = 1e9 bytes), and the job's own phase timings
(``timings`` of ``metrics.json``). ``--against TREE`` also times another checkout of the
package (a ``git worktree`` of an older commit), its runs alternated with this one's, so that
both see the same machine. Results: ``benchmarks/results/analyze.json`` (written atomically)
and a printed table; ``--check`` exits 1 when this checkout's median misses the target.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sparsetopo.io import write_text

TARGET_S = 3.0
ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).parent / "results" / "analyze.json"


def run_once(tree: Path) -> dict:
    """One ``analyze`` process on the checkout ``tree``: wall, CPU, peak RSS, page faults."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        cmd = [sys.executable, "-m", "sparsetopo", "analyze", "--quiet", "--out", str(out)]
        with open(Path(tmp) / "stderr", "w+b") as err:
            t = time.perf_counter()
            proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=err)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t
            proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
            if proc.returncode != 0:
                err.seek(0)
                tail = err.read().decode(errors="replace").strip().splitlines()[-1:]
                raise RuntimeError(f"analyze on {tree} exited {proc.returncode}: {tail}")
        phases = json.loads((out / "metrics.json").read_text()).get("timings", {})
    return {"wall_s": wall, "user_s": usage.ru_utime, "sys_s": usage.ru_stime,
            "peak_rss_gb": usage.ru_maxrss * 1024 / 1e9, "minor_faults": usage.ru_minflt,
            "phases_s": phases}


def summary(runs: list[dict]) -> dict:
    walls = [r["wall_s"] for r in runs]
    peaks = [r["peak_rss_gb"] for r in runs]
    return {"median_wall_s": statistics.median(walls), "min_wall_s": min(walls),
            "max_wall_s": max(walls), "min_peak_rss_gb": min(peaks),
            "max_peak_rss_gb": max(peaks)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="counted runs per checkout")
    parser.add_argument("--against", type=Path, help="another checkout, timed alternately")
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    trees = {"this": ROOT}
    if args.against is not None:
        if not (args.against / "sparsetopo" / "__main__.py").is_file():
            parser.error(f"--against {args.against}: no sparsetopo package there")
        trees["against"] = args.against.resolve()
    load_before = os.getloadavg()[0]
    for tree in trees.values():
        run_once(tree)  # caches filled, not counted
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    for _ in range(args.repeats):
        for name, tree in trees.items():
            runs[name].append(run_once(tree))
    rows = {name: {"tree": str(tree), **summary(runs[name]), "runs": runs[name]}
            for name, tree in trees.items()}
    met = rows["this"]["median_wall_s"] <= TARGET_S
    print(f"{'checkout':8} {'median s':>9} {'min-max s':>12} {'peak GB':>11}  runs (s)")
    for name, row in rows.items():
        walls = " ".join(f"{r['wall_s']:.2f}" for r in row["runs"])
        print(f"{name:8} {row['median_wall_s']:>9.2f} {row['min_wall_s']:>5.2f}-"
              f"{row['max_wall_s']:<5.2f} {row['min_peak_rss_gb']:>5.2f}-"
              f"{row['max_peak_rss_gb']:<5.2f}  {walls}")
    print(f"target <= {TARGET_S} s: {'met' if met else 'MISSED'} (median of this checkout)")
    result = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "load_avg_1m": [load_before, os.getloadavg()[0]]},
              "command": "python -m sparsetopo analyze --quiet --out DIR",
              "target_s": TARGET_S, "met": met, "results": rows}
    write_text(args.out, json.dumps(result, indent=2) + "\n")
    return 1 if (args.check and not met) else 0


if __name__ == "__main__":
    sys.exit(main())
