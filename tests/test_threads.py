"""The metrics are safe to call from several threads at once, and importing them changes no
process-wide state.

Each check runs in a fresh interpreter: a library that aborts the process (numba's work-queue
threading layer does on concurrent parallel launches: exit 134) then fails the test instead of
killing pytest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    env.pop("NUMBA_THREADING_LAYER", None)  # numba's own default, as a user has it
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=ROOT)


#: Six small MGEs (resnet20 at 16x16, uniform masks at three sparsities, two seeds), built
#: serially (the encoders trace with torch.fx, which is not thread-safe), then measured once
#: serially and once from a pool of six threads.
THREAD_POOL_SCRIPT = """
import json, math
from concurrent.futures import ThreadPoolExecutor
import torch
import sparsetopo as st

torch.set_num_threads(1)
graphs, nets = [], []
for seed in (0, 1):
    for sparsity in (0.98, 0.9, 0.6):
        torch.manual_seed(seed)
        net = st.models.create("resnet20", num_classes=10)
        st.pruning.prune(net, "uniform", sparsity, seed=seed)
        nets.append(net)
        graphs.append(st.encoding.multipartite(net, (3, 16, 16)))

def measure(i):
    g = graphs[i]
    rows = st.metrics.ramanujan(nets[i], as_frame=False)
    return {"topometrics": st.metrics.topometrics(g, seed=i),
            "bottlenecks": st.metrics.path_bottlenecks(g),
            "ramanujan": [{k: v for k, v in r.items() if k != "shape"} for r in rows]}

serial = [measure(i) for i in range(len(graphs))]
with ThreadPoolExecutor(max_workers=len(graphs)) as pool:
    threaded = list(pool.map(measure, range(len(graphs))))
for _ in range(2):  # and again, every thread starting at once on different graphs
    with ThreadPoolExecutor(max_workers=len(graphs)) as pool:
        again = list(pool.map(measure, reversed(range(len(graphs)))))
    assert again[::-1] == threaded or print(json.dumps({"again_differs": True}))
print(json.dumps({"serial": serial, "threaded": threaded}, default=repr))
"""


def test_metrics_from_a_thread_pool_equal_the_serial_ones():
    proc = _run(THREAD_POOL_SCRIPT)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr.strip()[-2000:]}"
    lines = proc.stdout.strip().splitlines()
    assert not any("again_differs" in line for line in lines[:-1]), lines
    got = json.loads(lines[-1])
    assert len(got["serial"]) == 6
    # exactly equal (NaN compares equal through its JSON text), every key present
    assert json.dumps(got["threaded"], sort_keys=True) == json.dumps(got["serial"],
                                                                     sort_keys=True)
    spectral = [row["topometrics"]["spectral_gap"] for row in got["serial"]]
    assert all(s > 0 for s in spectral) and len(set(spectral)) == 6  # six different graphs


IMPORT_SCRIPT = """
import json, os
import numba
def state():
    return (numba.config.THREADING_LAYER, numba.config.NUMBA_NUM_THREADS,
            numba.config.CACHE_DIR, dict(os.environ))

before = state()
import sparsetopo.metrics  # noqa: E402, F401
print(json.dumps({"before": before, "after": state()}), flush=True)
import sparsetopo.metrics._warmup  # noqa: E402, F401  (the setup step's module too)
print(json.dumps({"before": before, "after": state()}))
"""


def test_importing_the_metrics_changes_no_numba_setting_nor_the_environment():
    proc = _run(IMPORT_SCRIPT)
    lines = proc.stdout.strip().splitlines()
    for line in lines:  # after ``sparsetopo.metrics``, then after its warm-up module
        got = json.loads(line)
        assert got["after"] == got["before"]
    assert got["before"][0] == "default"  # the check itself saw numba's untouched setting
    assert proc.returncode == 0 and len(lines) == 2, proc.stderr.strip()[-2000:]


NO_CACHE_SCRIPT = """
import numpy as np
import sparsetopo.metrics as m
from sparsetopo.encoding.graph import Partition, from_edges

parts = [Partition("input", 0, (2,)), Partition("a", 2, (2,)), Partition("out", 4, (1,))]
g = from_edges(np.array([0, 1, 0, 2]), np.array([2, 2, 3, 4]), np.ones(4, np.float32), parts)
print(m.topometrics(g, keys=["k_core", "cut_edges", "alive_edges"]))
"""


def test_metrics_work_where_numba_can_cache_nothing():
    """A read-only install without a writable home: numba finds no place for its cache (here:
    only the zip-file locator allowed, which never applies) and raises when a ``cache=True``
    kernel is defined; the kernels are then compiled in the process instead."""
    env_code = "import os; os.environ['NUMBA_CACHE_LOCATOR_CLASSES'] = 'ZipCacheLocator'\n"
    proc = _run(env_code + NO_CACHE_SCRIPT)
    assert proc.returncode == 0, proc.stderr.strip()[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "{'k_core': 1.0, 'cut_edges': 4, 'alive_edges': 3}"  # a tree
