import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from sparsetopo.cli.study import app
from sparsetopo.study.config import expand_runs, parse_config
from sparsetopo.study.runner import run_study
from sparsetopo.study.store import ResultsStore, load_runs

VOLATILE = ["prune_seconds", "train_seconds", "metrics_seconds", "started", "finished", "host",
            "images_per_second"]  # timings: differ between two runs of the same study
PREFIXES = ("density.", "ramanujan.", "rolled.", "rolled_channel.", "mge.", "paths.",
            "bottleneck.")

TINY = """
[study]
name = "tiny"
[grid]
models = ["mlp"]
datasets = ["digits"]
methods = {methods}
sparsities = {sparsities}
seeds = {seeds}
[training]
epochs = {epochs}
lr = 0.05
batch_size = 64
[data]
train_subset = {train_subset}
test_subset = 128
"""


def tiny_config(tmp_path, methods=("uniform", "snip"), sparsities=(0.5,), seeds=(0,), epochs=1,
                train_subset=256, name="study.toml"):
    text = TINY.format(methods=list(methods), sparsities=list(sparsities), seeds=list(seeds),
                       epochs=epochs, train_subset=train_subset).replace("'", '"')
    path = tmp_path / name
    path.write_text(text)
    return path


def stable(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=VOLATILE).reset_index(drop=True)


def test_network_features_match_naive_counts():
    from sparsetopo import models, pruning
    from sparsetopo.study.features import network_features
    from sparsetopo.study.vocabulary import FEATURE_PREFIXES

    model = models.create("mlp", num_classes=3, in_channels=1, input_size=4, hidden=(6, 5), seed=0)
    pruning.prune(model, "uniform", 0.5, seed=1)
    features = network_features(model, (1, 4, 4), seed=0)
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    present = [int(m.weight_mask.sum()) for _, m in layers]
    sizes = [m.weight_mask.numel() for _, m in layers]
    assert features["density.global"] == sum(present) / sum(sizes)
    for (name, _), p, n in zip(layers, present, sizes, strict=True):
        assert features[f"density.{name}"] == p / n
    # an MLP's MGE has one edge per present weight and one node per activation element
    assert features["mge.nodes"] == 16 + 6 + 5 + 3
    assert features["mge.edges"] == sum(present)
    # rolled and rolled-channel BGEs of a Linear layer: in + out nodes, one edge per weight
    for prefix in ("rolled", "rolled_channel"):
        assert features[f"{prefix}.edges"] == pytest.approx(sum(present) / 3)
        assert features[f"{prefix}.nodes"] == pytest.approx((16 + 6 + 6 + 5 + 5 + 3) / 3)
    assert features["ramanujan.density"] == pytest.approx(sum(p / n for p, n in zip(
        present, sizes, strict=True)) / 3)
    assert all(k.split(".", 1)[0] in FEATURE_PREFIXES for k in features)
    # paths (an MLP has no identity shortcut): forward and backward reachability by hand
    masks = [m.weight_mask.numpy() > 0 for _, m in layers]
    forward = [np.ones(16, bool)]
    for m in masks:
        forward.append((m.astype(int) @ forward[-1]) > 0)
    backward = [np.ones(3, bool)]
    for m in reversed(masks):
        backward.insert(0, (m.T.astype(int) @ backward[0]) > 0)
    alive = sum(int((m & np.outer(backward[i + 1], forward[i])).sum())
                for i, m in enumerate(masks))
    assert features["paths.alive_edges"] == alive
    count = np.ones(16)
    for m in masks:
        count = m.astype(float) @ count
    assert features["paths.log10_paths"] == pytest.approx(np.log10(count.sum()))
    assert "mge.log10_paths" not in features
    again = network_features(model, (1, 4, 4), seed=0)
    assert list(again) == list(features)
    assert all(again[k] == features[k] or (again[k] != again[k] and features[k] != features[k])
               for k in features)


def test_run_store_features_and_skip(tmp_path):
    from sparsetopo.study.config import load_config

    config = load_config(tiny_config(tmp_path))
    results = tmp_path / "r.sqlite"
    summary = run_study(config, results, progress=False)
    assert (summary.total, summary.ok, summary.failed, summary.skipped) == (3, 3, 0, 0)
    df = load_runs(results)
    assert sorted(df["method"]) == ["dense", "snip", "uniform"]
    assert df["accuracy"].between(0, 1).all()
    pruned = df[df["method"] != "dense"]
    for prefix in PREFIXES:
        cols = [c for c in df.columns if c.startswith(prefix)]
        assert cols, prefix
        assert pruned[cols].notna().any(axis=1).all(), prefix
    # oracle: exactly round(0.5 * total) weights kept over the three Linear layers of the mlp
    total = 1024 * 128 + 128 * 64 + 64 * 10
    assert (pruned["density.global"] == round(0.5 * total) / total).all()
    assert pruned["mge.edges"].gt(0).all()
    dense = df[df["method"] == "dense"].iloc[0]
    assert pd.isna(dense["mge.edges"])  # baselines are trained only
    assert (pruned["accuracy_drop"] == dense["accuracy"] - pruned["accuracy"]).all()
    assert (df["train_seconds"] > 0).all() and (pruned["metrics_seconds"] > 0).all()
    assert df["device"].notna().all() and (df["images_per_second"] > 0).all()

    again = run_study(config, results, progress=False)
    assert (again.ok, again.failed, again.skipped) == (0, 0, 3)
    pd.testing.assert_frame_equal(load_runs(results), df)


def test_failed_runs_are_kept_and_retried(tmp_path, monkeypatch):
    import sparsetopo.training

    config_path = tiny_config(tmp_path, methods=("uniform",))
    results = tmp_path / "r.sqlite"
    real_train = sparsetopo.training.train

    def boom(model, *args, **kwargs):
        if any(hasattr(m, "weight_mask") for m in model.modules()):
            raise RuntimeError("simulated divergence")
        return real_train(model, *args, **kwargs)

    monkeypatch.setattr(sparsetopo.training, "train", boom)
    result = CliRunner().invoke(app, ["run", str(config_path), "--results", str(results),
                                      "--quiet"])
    assert result.exit_code == 2
    assert "1 failed" in result.stdout and "simulated divergence" in result.stderr
    failed = load_runs(results, status="failed")
    assert len(failed) == 1 and failed["method"][0] == "uniform"
    assert failed["error"][0].startswith("RuntimeError: simulated divergence")
    assert "Traceback" in failed["error"][0]  # kept for debugging
    assert len(load_runs(results)) == 1  # the dense run is complete

    monkeypatch.setattr(sparsetopo.training, "train", real_train)
    from sparsetopo.study.config import load_config

    config = load_config(config_path)
    summary = run_study(config, results, progress=False)
    assert (summary.ok, summary.skipped) == (0, 2)  # failed runs are not retried by default
    summary = run_study(config, results, retry_failed=True, progress=False)
    assert (summary.ok, summary.failed, summary.skipped) == (1, 0, 1)
    df = load_runs(results, status="all")
    assert sorted(df["status"]) == ["ok", "ok"] and len(df) == 2


def test_bad_arguments(tmp_path):
    config = parse_config({"grid": {"models": ["mlp"], "datasets": ["digits"],
                                    "methods": ["er"], "sparsities": [0.5], "seeds": [0]}})
    with pytest.raises(ValueError, match="unknown backend 'dask'"):
        run_study(config, tmp_path / "r.sqlite", backend="dask")
    with pytest.raises(ValueError, match="workers"):
        run_study(config, tmp_path / "r.sqlite", workers=0)
    with pytest.raises(ValueError, match="--ray-address needs --backend ray"):
        run_study(config, tmp_path / "r.sqlite", ray_address="auto")
    assert not (tmp_path / "r.sqlite").exists()


def test_resize_dataset_block_means_and_preflight(tmp_path):
    from sparsetopo import data
    from sparsetopo.data import resize_dataset

    base = data.get_dataset("digits", "train")
    small = resize_dataset(base, 8)
    assert small.images.shape == (len(base), 1, 8, 8) and small.info.input_shape == (1, 8, 8)
    blocks = base.images.reshape(len(base), 1, 8, 4, 8, 4).mean(dim=(3, 5))  # naive 4x4 means
    torch.testing.assert_close(small.images, blocks)
    assert torch.equal(small.labels, base.labels)
    x, _ = small.batch(torch.tensor([0, 1]))
    x0, _ = base.batch(torch.tensor([0, 1]))
    torch.testing.assert_close(x.mean(dim=(1, 2, 3)), x0.mean(dim=(1, 2, 3)))  # same statistics
    assert resize_dataset(base, 0) is base and resize_dataset(base, 32) is base
    cached = data.get_dataset("digits", "train", image_size=8)
    assert torch.equal(cached.images, small.images) and cached.info.input_shape == (1, 8, 8)
    loader = data.make_loader("digits", "train", 64, image_size=8, indices=torch.arange(100))
    assert len(loader.dataset) == 100 and len(loader) == 2
    assert next(iter(loader))[0].shape == (64, 1, 8, 8)

    config = parse_config({"grid": {"models": ["conv6"], "datasets": ["digits"],
                                    "methods": ["er"], "sparsities": [0.5], "seeds": [0]},
                           "data": {"image_size": 12}})
    with pytest.raises(ValueError, match=r"cannot build conv6 for digits images of shape "
                                         r"\(1, 12, 12\).*divisible by 8"):
        run_study(config, tmp_path / "r.sqlite", progress=False)
    assert load_runs(tmp_path / "r.sqlite", status="all").empty


def _count(path) -> int:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute("SELECT count(*) FROM runs").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


@pytest.mark.slow
def test_crash_safety(tmp_path):
    """SIGKILL the runner once >= 1 run is stored, run again: same table as an uninterrupted
    run, no run lost or duplicated."""
    from sparsetopo.study.config import load_config

    config_path = tiny_config(tmp_path, methods=("uniform", "er", "snip"), seeds=(0, 1))
    config = load_config(config_path)
    expected_ids = {r.run_id for r in expand_runs(config)}
    total = len(expected_ids)

    reference = tmp_path / "reference.sqlite"
    run_study(config, reference, progress=False)

    crashed = tmp_path / "crashed.sqlite"
    cmd = [sys.executable, "-m", "sparsetopo", "study", "run", str(config_path), "--results",
           str(crashed), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while _count(crashed) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    stored = _count(crashed)
    assert 1 <= stored < total, f"{stored} of {total} runs stored when killed"

    with ResultsStore(crashed) as store:  # the file survives the kill and holds whole runs
        assert set(store.statuses()) <= expected_ids
    partial = load_runs(crashed, status="all")
    assert partial["status"].eq("ok").all() and partial["accuracy"].notna().all()

    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"{total - stored} done now" in proc.stdout and f"{stored} already" in proc.stdout

    final = load_runs(crashed, status="all")
    assert len(final) == total and set(final["run_id"]) == expected_ids
    pd.testing.assert_frame_equal(stable(final), stable(load_runs(reference, status="all")))


@pytest.mark.slow
def test_local_process_pool_matches_sequential(tmp_path):
    from sparsetopo.study.config import load_config

    config = load_config(tiny_config(tmp_path, methods=("uniform", "snip")))
    sequential, pooled = tmp_path / "seq.sqlite", tmp_path / "pool.sqlite"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the pool's workers each use cpu_count // workers threads
    try:
        run_study(config, sequential, progress=False)
    finally:
        torch.set_num_threads(threads)
    summary = run_study(config, pooled, workers=2, progress=False)
    assert (summary.ok, summary.failed) == (3, 0)
    pd.testing.assert_frame_equal(stable(load_runs(pooled)), stable(load_runs(sequential)))


@pytest.mark.slow
def test_ray_backend_local_instance(tmp_path):
    import ray  # in the dev extra (sparsetopo[ray]): never skipped

    from sparsetopo.study.config import load_config

    config = load_config(tiny_config(tmp_path, methods=("uniform", "snip"), seeds=(0, 1)))
    reference, results = tmp_path / "ref.sqlite", tmp_path / "ray.sqlite"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # Ray tasks use one thread each
    try:
        run_study(config, reference, progress=False)
    finally:
        torch.set_num_threads(threads)

    # run_study starts a local instance, ray.init(num_cpus=2, include_dashboard=False), and
    # shuts it down afterwards
    summary = run_study(config, results, backend="ray", workers=2, progress=False)
    assert (summary.total, summary.ok, summary.failed) == (6, 6, 0)
    assert not ray.is_initialized()
    again = run_study(config, results, backend="ray", workers=2, progress=False)
    assert (again.ok, again.skipped) == (0, 6)
    got = load_runs(results)
    assert len(got) == 6 and got["run_id"].is_unique
    pd.testing.assert_frame_equal(stable(got), stable(load_runs(reference)))


@pytest.mark.slow
def test_smoke_preset_end_to_end(tmp_path, monkeypatch):
    """`study run --preset smoke`, export and fit, with the real encodings and metrics."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["run", "--preset", "smoke", "--quiet"])
    assert result.exit_code == 0, result.output
    results = tmp_path / "sparsetopo-out" / "smoke.sqlite"
    df = load_runs(results)
    assert len(df) == 14 and df["status"].eq("ok").all()
    expected = "cuda:0" if torch.cuda.is_available() else "cpu"  # default: a GPU if any
    assert df["device"].eq(expected).all() and df["images_per_second"].gt(0).all()
    assert df["peak_accelerator_memory_mb"].isna().all() == (expected == "cpu")
    pruned = df[df["method"] != "dense"]
    assert pruned["accuracy_drop"].notna().all()
    for prefix in PREFIXES:
        assert pruned[[c for c in df.columns if c.startswith(prefix)]].notna().any(axis=1).all()
    result = runner.invoke(app, ["export", str(results), "--out", "runs.parquet"])
    assert result.exit_code == 0, result.output
    assert len(pd.read_parquet(tmp_path / "runs.parquet")) == 14
    result = runner.invoke(app, ["fit", str(results), "--out", "fit", "--trials", "3", "--quiet"])
    assert result.exit_code == 0, result.output
    comparison = pd.read_csv(tmp_path / "fit" / "comparison.csv")
    from sparsetopo.study.vocabulary import FEATURE_SETS

    assert set(comparison["feature_set"]) == set(FEATURE_SETS)
    assert set(comparison["protocol"]) == {"random", "grouped", "leave-one-method-out",
                                           "leave-one-category-out"}  # smoke: two categories
    assert (comparison["model"] == "mean").any()
    assert (tmp_path / "fit" / "importance.csv").exists()
    index = json.loads((tmp_path / "fit" / "models" / "index.json").read_text())
    assert {r["feature_set"] for r in index["regressors"]} == set(FEATURE_SETS)

    # predict the drop of a mask of this study's design before training
    from sparsetopo.cli import app as main_app

    def predict(*args):
        return runner.invoke(main_app, ["predict", "--fit", "fit", "--model", "mlp",
                                        "--dataset", "digits", *args, "--json"])

    result = predict("--pruning", "snip", "--sparsity", "0.7", "--seed", "5")
    assert result.exit_code == 0, result.output
    predictions = json.loads(result.stdout)["predictions"]
    assert [p["feature_set"] for p in predictions] == list(FEATURE_SETS)
    for p in predictions:
        assert np.isfinite(p["predicted_accuracy_drop"]) and p["cv_mae"] >= 0
    # the same network as a study run gives that run's features: the regressor of the
    # sparsity set predicts what it predicts for the run's sparsity
    run = df[(df["method"] == "snip") & (df["sparsity"] == 0.5) & (df["seed"] == 0)].iloc[0]
    again = json.loads(predict("--pruning", "snip", "--sparsity", "0.5", "--seed", "0").stdout)
    from sparsetopo.study import predictor
    from sparsetopo.study.features import network_features
    from sparsetopo.study.predict import load_fit, prune_as_the_study

    fit = load_fit(tmp_path / "fit")
    network, shape = prune_as_the_study(fit, "mlp", "digits", "snip", 0.5, 0)
    features = network_features(network, shape, seed=0)
    stored = {k: run[k] for k in features if k in run.index}
    assert all(np.isclose(features[k], v, equal_nan=True) for k, v in stored.items())
    entry = next(r for r in fit.regressors if r["feature_set"] == "mge")
    booster = predictor.load_model(tmp_path / "fit" / "models" / entry["file"])
    want = predictor.predict(booster, run[entry["features"]].to_numpy(float)[None])[0]
    got = next(p for p in again["predictions"] if p["feature_set"] == "mge")
    assert got["predicted_accuracy_drop"] == pytest.approx(want, rel=1e-6)
    outside = predict("--pruning", "snip", "--sparsity", "0.99")
    assert outside.exit_code == 2 and "outside what the regressors saw" in outside.stderr
    # the grid's top sparsity is inside the range (measured, not nominal)
    top = predict("--pruning", "snip", "--sparsity", "0.9")
    assert top.exit_code == 0, top.output
    assert all(p["method_seen"] is True for p in json.loads(top.stdout)["predictions"])
    assert "never seen in training" not in top.stderr
    unseen = predict("--pruning", "erk", "--sparsity", "0.7")  # not in the grid
    assert unseen.exit_code == 0, unseen.output
    assert all(p["method_seen"] is False for p in json.loads(unseen.stdout)["predictions"])
    assert "erk was never seen in training" in unseen.stderr
    ranked = runner.invoke(main_app, ["rank", "--fit", "fit", "--model", "mlp", "--dataset",
                                      "digits", "--pruning", "snip", "synflow", "uniform",
                                      "--sparsity", "0.8", "--json"])
    assert ranked.exit_code == 0, ranked.output
    table = json.loads(ranked.stdout)
    assert sorted(c["candidate"] for c in table["candidates"]) == ["snip", "synflow",
                                                                    "uniform"]
    key = table["ranked_by"]
    values = [next(p["predicted_accuracy_drop"] for p in c["predictions"]
                   if p["feature_set"] == key) for c in table["candidates"]]
    assert values == sorted(values)


# ------------------------------------------------------------------------------ GPUs


def test_gpu_slots_and_worker_devices():
    from sparsetopo.study.runner import gpu_slots, worker_devices

    assert gpu_slots(2, 0.5) == 4 and gpu_slots(2, 0.25) == 8 and gpu_slots(1, 1) == 1
    assert gpu_slots(3, 0.4) == 6  # 2 per GPU: a run never spans two GPUs
    assert gpu_slots(4, 2) == 2 and gpu_slots(3, 2) == 1 and gpu_slots(0, 0.5) == 0
    assert worker_devices(["0", "1"], 0.5, 8) == ["0", "1", "0", "1"]  # at most 4 slots
    assert worker_devices(["0", "1"], 0.25, 3) == ["0", "1", "0"]  # round-robin
    assert worker_devices(["0", "1"], 1, 8) == ["0", "1"]
    assert worker_devices(["4", "6"], 1, 2) == ["4", "6"]  # ids as the parent sees them
    assert worker_devices(["0", "1", "2", "3"], 2, 4) == ["0,1", "2,3"]
    assert worker_devices([], 0, 3) == ["", "", ""]  # no GPU: workers see none


def test_visible_gpu_ids_follow_the_parent(monkeypatch):
    from sparsetopo.study.runner import visible_gpu_ids

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert visible_gpu_ids(2) == ["3", "5"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert visible_gpu_ids(3) == ["0", "1", "2"]


def test_gpus_per_run_values_and_cluster_checks():
    from sparsetopo.errors import InputError, ResourceError
    from sparsetopo.study.runner import _ray_capacity, _resolve_gpus, check_gpus_per_run

    assert check_gpus_per_run(None) is None and check_gpus_per_run(0.25) == 0.25
    assert check_gpus_per_run(2) == 2.0
    for bad in (-1, 1.5, float("nan"), True, "1"):
        with pytest.raises(InputError, match="--gpus-per-run must be 0, a fraction"):
            check_gpus_per_run(bad)

    class FakeRay:  # what ray.cluster_resources() / ray.nodes() return
        def __init__(self, gpus_per_node):
            self.gpus = gpus_per_node

        def cluster_resources(self):
            return {"CPU": 8.0, **({"GPU": float(sum(self.gpus))} if sum(self.gpus) else {})}

        def nodes(self):
            return [{"Alive": True, "Resources": {"CPU": 4.0, **({"GPU": g} if g else {})}}
                    for g in self.gpus]

    assert _resolve_gpus(None, _ray_capacity(FakeRay([0, 0]))) == 0
    assert _resolve_gpus(None, _ray_capacity(FakeRay([0, 2]))) == 1
    assert _resolve_gpus(0.25, _ray_capacity(FakeRay([1, 1]))) == 0.25
    assert _resolve_gpus(0, _ray_capacity(FakeRay([]))) == 0
    with pytest.raises(ResourceError) as info:
        _resolve_gpus(0.5, _ray_capacity(FakeRay([0, 0])))
    assert str(info.value) == (
        "--gpus-per-run 0.5 asks for GPUs but the Ray cluster has none "
        "(ray.cluster_resources()['GPU'] == 0); use --gpus-per-run 0 to train on CPU")
    with pytest.raises(ResourceError, match="asks for 2 GPUs per run but no machine has that "
                                            "many.*at most 1 on one machine"):
        _resolve_gpus(2, _ray_capacity(FakeRay([1, 1])))


@pytest.mark.parametrize("extra", [["--gpus-per-run", "1"], ["--gpus-per-run", "0.5"],
                                   ["--gpus-per-run", "0.5", "--backend", "ray"]])
def test_gpus_per_run_without_gpu_fails_fast(tmp_path, monkeypatch, extra):
    """GPUs asked for where torch sees none: one line, exit 2, before any run or file."""
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    results = tmp_path / "r.sqlite"
    start = time.perf_counter()
    result = CliRunner().invoke(app, ["run", "--preset", "smoke", "--results", str(results),
                                      "--quiet", *extra])
    assert time.perf_counter() - start < 20  # nothing waits for GPUs that never come
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --gpus-per-run {extra[1]} asks for "
                                                   "GPUs but torch sees none")
    assert "torch.cuda.device_count() == 0" in lines[0] and "--gpus-per-run 0" in lines[0]
    assert not results.exists()


def _visible_devices(barrier) -> tuple[int, str]:
    barrier.wait()  # both tasks run at once: each in its own worker
    return os.getpid(), os.environ["CUDA_VISIBLE_DEVICES"]


def test_local_pool_gives_each_worker_its_gpu():
    from multiprocessing import get_context

    from sparsetopo.study.runner import worker_pool

    with get_context("spawn").Manager() as manager:
        barrier = manager.Barrier(2, timeout=120)
        with worker_pool(["0", "1"]) as pool:
            seen = [f.result(timeout=180) for f in
                    [pool.submit(_visible_devices, barrier) for _ in range(2)]]
    assert len({pid for pid, _ in seen}) == 2
    assert sorted(device for _, device in seen) == ["0", "1"]


@pytest.mark.slow
def test_local_backend_on_fake_gpus_with_amp(tmp_path, monkeypatch):
    """Two fake GPUs, one per run: two workers, CUDA_VISIBLE_DEVICES 0 and 1, every run
    records what it saw and where it trained (CPU here: the workers' torch sees no GPU, which
    the command reports); --amp reaches the runs' configuration."""
    from sparsetopo.study.config import load_config

    config_path = tiny_config(tmp_path, methods=("uniform",), seeds=(0, 1))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    results = tmp_path / "r.sqlite"
    result = CliRunner().invoke(app, ["run", str(config_path), "--results", str(results),
                                      "--workers", "4", "--gpus-per-run", "1", "--amp"])
    assert result.exit_code == 0, result.output
    assert "local: 2 workers, 1 GPU per run, CUDA_VISIBLE_DEVICES per worker: 0 1" in \
        result.stdout
    runs = load_runs(results)
    assert len(runs) == 4 and runs["amp"].all()
    assert {r.run_id for r in expand_runs(load_config(config_path))}.isdisjoint(runs["run_id"])
    conn = sqlite3.connect(results)
    resources = [json.loads(r) for (r,) in conn.execute("SELECT resources_json FROM runs")]
    conn.close()
    assert all(r["cuda_visible_devices"] in ("0", "1") and r["gpus_per_run"] == 1
               for r in resources)
    if not torch.cuda.is_available():
        assert set(runs["device"]) == {"cpu"}
        assert "4 runs asked for a GPU but torch saw none" in result.stderr
    assert runs["images_per_second"].gt(0).all()


@pytest.mark.slow
def test_ray_fake_gpus_pack_four_runs_at_a_time(tmp_path):
    """A Ray instance with 2 declared (fake) GPUs and 4 CPUs: --gpus-per-run 0.5 runs at most
    four at once, at most two per GPU, each run seeing the GPU id Ray assigned it."""
    import ray

    from sparsetopo.errors import ResourceError

    config = parse_config({
        "grid": {"models": ["mlp"], "datasets": ["digits"], "methods": ["uniform"],
                 "sparsities": [0.5], "seeds": list(range(8))},
        "training": {"epochs": 1, "batch_size": 64},
        "data": {"train_subset": 256, "test_subset": 64, "image_size": 8}})
    dense = [r for r in expand_runs(config) if r.method == "dense"]  # training only: short
    ray.init(num_cpus=4, num_gpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with pytest.raises(ResourceError, match="asks for 3 GPUs per run but no machine"):
            run_study(config, tmp_path / "no.sqlite", backend="ray", gpus_per_run=3,
                      progress=False)
        assert not (tmp_path / "no.sqlite").exists()
        results = tmp_path / "r.sqlite"
        summary = run_study(config, results, backend="ray", gpus_per_run=0.5, progress=False,
                            runs=dense)
        assert ray.is_initialized()  # not ours to shut down
    finally:
        ray.shutdown()
    assert (summary.total, summary.ok, summary.failed) == (8, 8, 0)
    assert "2 GPUs; each run 1 CPU and 0.5 GPU" in summary.placement
    conn = sqlite3.connect(results)
    rows = [json.loads(r) for (r,) in conn.execute("SELECT resources_json FROM runs")]
    spans = conn.execute("SELECT started, finished FROM runs").fetchall()
    conn.close()
    for r in rows:
        assert len(r["gpu_ids"]) == 1 and r["gpu_ids"][0] in ("0", "1")
        assert r["cuda_visible_devices"] == r["gpu_ids"][0]  # what Ray set for the run
        assert r["gpus_per_run"] == 0.5
    times = [(pd.Timestamp(a), pd.Timestamp(b)) for a, b in spans]
    events = sorted([(a, 1, i) for i, (a, _) in enumerate(times)] +
                    [(b, -1, i) for i, (_, b) in enumerate(times)])
    running: set[int] = set()
    peak = 0
    for _, step, i in events:
        running.add(i) if step > 0 else running.discard(i)
        peak = max(peak, len(running))
        per_gpu = [rows[j]["gpu_ids"][0] for j in running]
        assert max(per_gpu.count("0"), per_gpu.count("1")) <= 2  # 0.5 GPU each
    assert 2 <= peak <= 4


def test_ray_backend_without_ray_names_the_extra(tmp_path, monkeypatch):
    """Ray is an optional extra: ``--backend ray`` without it is one line naming
    ``pip install 'sparsetopo[ray]'``, exit 2, and no results file is written."""
    from cli_checks import one_line_error

    monkeypatch.setitem(sys.modules, "ray", None)  # ``import ray`` raises ImportError
    config = tiny_config(tmp_path, methods=("uniform",), seeds=(0,))
    results = tmp_path / "ray.sqlite"
    r = CliRunner().invoke(app, ["run", str(config), "--results", str(results),
                                 "--backend", "ray", "--quiet"])
    one_line_error(r, "pip install 'sparsetopo[ray]'")
    assert not results.exists()
