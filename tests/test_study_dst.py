"""Dynamic sparse training in a study: grid methods like any other, a ``[dst]`` section, run ids
of the other runs untouched, features on the final mask with the initial weights, categories
and trajectories stored, exported and reported."""

from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from sparsetopo import models
from sparsetopo.cli.study import app
from sparsetopo.pruning.masks import get_masks, prunable_layers
from sparsetopo.study.config import ConfigError, RunSpec, canonical_json, expand_runs, parse_config
from sparsetopo.study.store import (
    APPLICATION,
    SCHEMA_VERSION,
    ResultsStore,
    RunRecord,
    load_runs,
    load_trajectories,
)


def grid(methods=("uniform", "snip", "rigl", "dsr"), **extra) -> dict:
    return {"grid": {"models": ["mlp"], "datasets": ["digits"], "methods": list(methods),
                     "sparsities": [0.9], "seeds": [0]}, **extra}


def by_method(raw) -> dict[str, RunSpec]:
    return {r.method: r for r in expand_runs(parse_config(raw))}


def test_pai_run_ids_do_not_depend_on_the_dst_section():
    plain = by_method(grid())
    tuned = by_method(grid(dst={"update_interval": 0.05, "drop_fraction": 0.5,
                                "rigl": {"update_end": 0.5}}))
    for method in ("dense", "uniform", "snip"):
        assert plain[method].run_id == tuned[method].run_id
        assert "dst" not in plain[method].to_dict()
    # pinned: an ordinary run's id is the one it had before dynamic sparse training existed
    raw = grid(methods=["snip"])
    raw["training"] = {"epochs": 16, "lr": 0.05}
    snip = by_method(raw)["snip"]
    expected = {"model": "mlp", "dataset": "digits", "method": "snip", "sparsity": 0.9,
                "seed": 0, "training": {"epochs": 16, "lr": 0.05, "momentum": 0.9,
                                        "weight_decay": 0.0001, "batch_size": 128,
                                        "milestones": [8, 12], "gamma": 0.1, "augment": False},
                "data": {"train_subset": 0, "test_subset": 0, "image_size": 0},
                "metrics": {"identity_skips": False}}
    import hashlib

    text = json.dumps(expected, sort_keys=True, separators=(",", ":"))
    assert snip.run_id == hashlib.sha256(text.encode()).hexdigest()


def test_dst_run_ids_follow_the_parameters_their_method_reads():
    base = by_method(grid())
    assert base["rigl"].to_dict()["dst"] == {
        "drop_fraction": 0.3, "drop_decay": "cosine", "drop_fraction_min": 0.0,
        "update_interval": 0.001, "update_end": 0.75, "init_density": "erk",
        "grow_init": "zeros"}
    other = by_method(grid(dst={"dsr_threshold": 0.01}))  # a DSR parameter only
    assert other["rigl"].run_id == base["rigl"].run_id
    assert other["dsr"].run_id != base["dsr"].run_id
    interval = by_method(grid(dst={"update_interval": 0.05}))
    assert interval["rigl"].run_id != base["rigl"].run_id
    assert interval["rigl"].dst.update_interval == 0.05 == interval["dsr"].dst.update_interval
    local = by_method(grid(dst={"update_interval": 0.05, "rigl": {"update_interval": 0.2}}))
    assert local["rigl"].dst.update_interval == 0.2 and local["dsr"].dst.update_interval == 0.05
    for spec in local.values():
        assert RunSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize("dst, words", [
    ({"drop_fraction": "high"}, ["dst.drop_fraction must be float"]),
    ({"drop_fraction": 1.5}, ["drop_fraction must be a number in [0, 1]"]),
    ({"update_every": 3}, ["unknown key dst.update_every", "update_interval"]),
    ({"rigl": {"bogus": 1}}, ["unknown key dst.rigl.bogus"]),
    ({"rigl": 3}, ["[dst.rigl] must be a table"]),
    ({"reset_momentum": "yes"}, ["dst.reset_momentum must be bool"]),
    ({"dsr_interval_doubling": [0.5, 0.1]}, ["dsr_interval_doubling must be increasing"]),
    ({"init_density": "snip"}, ["init_density must be one of uniform, er, erk"]),
])
def test_bad_dst_sections_are_one_clear_error(dst, words):
    with pytest.raises(ConfigError) as info:
        parse_config(grid(dst=dst))
    for word in words:
        assert word in str(info.value), str(info.value)


def test_dst_method_names_in_the_grid():
    assert by_method(grid(methods=["set", "snfs", "itop"]))["itop"].dst.drop_fraction == 0.5
    with pytest.raises(ConfigError, match="unknown pruning method 'sett'"):
        parse_config(grid(methods=["sett"]))


TINY = """
[study]
name = "dst"
[grid]
models = ["mlp"]
datasets = ["digits"]
methods = ["uniform", "rigl"]
sparsities = [0.9]
seeds = [0]
[training]
epochs = 2
lr = 0.05
batch_size = 64
[data]
train_subset = 256
test_subset = 128
image_size = 8
[dst]
update_interval = 0.125
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A tiny study with one pruning-at-initialization and one dynamic method, run once; the
    models handed to the feature computation and returned by training are kept."""
    from sparsetopo.study import features as features_module
    from sparsetopo.study.config import load_config
    from sparsetopo.study.runner import run_study

    tmp = tmp_path_factory.mktemp("dst-study")
    path = tmp / "dst.toml"
    path.write_text(TINY)
    seen: dict[str, list] = {"features": [], "trained": []}
    real_features = features_module.timed_network_features
    import sparsetopo.training as training_module

    real_train = training_module.train

    def spy_features(model, *args, **kwargs):
        seen["features"].append({n: (m.weight_orig.detach().clone(), m.weight_mask.clone())
                                 for n, m in prunable_layers(model)})
        return real_features(model, *args, **kwargs)

    def spy_train(model, *args, **kwargs):
        result = real_train(model, *args, **kwargs)
        seen["trained"].append((kwargs.get("dst"), {n: m.detach().cpu().clone() for n, m in
                                                   get_masks(model).items()}))
        return result

    mp = pytest.MonkeyPatch()
    mp.setattr(features_module, "timed_network_features", spy_features)
    mp.setattr(training_module, "train", spy_train)
    try:
        config = load_config(path)
        summary = run_study(config, tmp / "r.sqlite", progress=False, gpus_per_run=0)
    finally:
        mp.undo()
    assert summary.failed == 0, summary.failures
    return {"path": tmp / "r.sqlite", "config": config, "seen": seen, "tmp": tmp}


def test_runs_carry_their_category_and_mask_history(study):
    df = load_runs(study["path"]).set_index("method")
    assert df.loc["dense", "category"] == "dense"
    assert df.loc["uniform", "category"] == "pai-data-free"
    assert df.loc["rigl", "category"] == "dst"
    assert df.loc["rigl", "dst_update_interval"] == 0.125
    assert pd.isna(df.loc["uniform", "dst_update_interval"])
    assert df.loc["rigl", "mask_updates"] > 0
    assert df.loc["rigl", "exploration_rate"] > 0.1
    assert df.loc["uniform", "mask_updates"] == 0
    assert df.loc["uniform", "exploration_rate"] == pytest.approx(0.1)
    assert pd.notna(df.loc["rigl", "accuracy_drop"])  # the dense baseline is found
    assert df.loc["rigl", "density.global"] == df.loc["uniform", "density.global"]


def test_dst_features_use_the_final_mask_and_the_initial_weights(study):
    spec = next(r for r in expand_runs(study["config"]) if r.method == "rigl")
    (dst, final), = [(d, m) for d, m in study["seen"]["trained"] if d is not None]
    assert dst.method == "rigl"
    initial = models.create("mlp", num_classes=10, in_channels=1, seed=spec.seed, image_size=8)
    initial_weights = {n: m.weight.detach() for n, m in prunable_layers(initial)}
    seen = study["seen"]["features"]
    assert len(seen) == 2  # one per pruned run: uniform (before training), rigl (after)
    rigl = [f for f in seen if all(torch.equal(f[n][1].bool(), final[f"{n}.weight"])
                                   for n in f)]
    assert len(rigl) == 1
    for name, (weight, _mask) in rigl[0].items():
        assert torch.equal(weight, initial_weights[name])  # initial, not trained, weights
    from sparsetopo.training import sparse_init

    start = models.create("mlp", num_classes=10, in_channels=1, seed=spec.seed, image_size=8)
    start_masks = sparse_init(start, "rigl", 0.9, seed=spec.seed, config=spec.dst)
    assert any(not torch.equal(start_masks[k], final[k]) for k in final)  # training moved it


def test_pai_features_are_those_of_the_pruned_initialization(study):
    from sparsetopo.study.features import timed_network_features
    from sparsetopo.study.runner import pruned_network

    spec = next(r for r in expand_runs(study["config"]) if r.method == "uniform")
    model, shape = pruned_network(spec)
    expected, _ = timed_network_features(model, shape, seed=spec.seed)
    stored = load_runs(study["path"]).set_index("method").loc["uniform"]
    for key, value in expected.items():
        assert stored[key] == pytest.approx(value, nan_ok=True), key


def test_trajectories_are_stored_exported_and_reported(study):
    traj = load_trajectories(study["path"])
    assert set(traj["method"]) == {"rigl"} and set(traj["category"]) == {"dst"}
    assert traj["step"].iloc[0] == 0 and traj["fraction"].is_monotonic_increasing
    for column in ("effective_density", "alive_edges", "log10_paths", "exploration_rate",
                   "initial_mask_kept", "density.layers.1"):
        assert traj[column].notna().all(), column
    runs = load_runs(study["path"]).set_index("method")
    assert traj["exploration_rate"].iloc[-1] == runs.loc["rigl", "exploration_rate"]
    assert len(traj) == runs.loc["rigl", "mask_updates"] + 1
    out = study["tmp"] / "runs.csv"
    result = CliRunner().invoke(app, ["export", str(study["path"]), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "runs-trajectory.csv" in result.output
    exported = pd.read_csv(study["tmp"] / "runs-trajectory.csv")
    assert len(exported) == len(traj) and "log10_paths" in exported.columns
    assert set(pd.read_csv(out)["category"]) == {"dense", "pai-data-free", "dst"}
    html = study["tmp"] / "report.html"
    result = CliRunner().invoke(app, ["report", str(study["path"]), "--out", str(html),
                                      "--quiet"])
    assert result.exit_code == 0, result.output
    text = html.read_text()
    assert "Topology over training" in text and "Topology of the masks of mlp / digits" in text


def test_results_files_from_before_categories_and_trajectories(tmp_path):
    """A file without the ``category`` and ``trajectory_json`` columns reads with the category
    of each run's method, and gains the columns when a study writes to it again."""
    specs = by_method(grid())
    old = tmp_path / "old.sqlite"
    conn = sqlite3.connect(old)
    with conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.executemany("INSERT INTO meta VALUES (?, ?)",
                         [("application", APPLICATION), ("schema_version", str(SCHEMA_VERSION))])
        conn.execute("""CREATE TABLE runs (run_id TEXT PRIMARY KEY, config_json TEXT NOT NULL,
            status TEXT NOT NULL, error TEXT, accuracy REAL, features_json TEXT,
            timings_json TEXT, started TEXT, finished TEXT, host TEXT, resources_json TEXT)""")
        for method in ("dense", "snip"):
            conn.execute("INSERT INTO runs VALUES (?, ?, 'ok', NULL, 0.9, '{}', '{}', 't0', "
                         "'t1', 'h', '{}')", (specs[method].run_id,
                                              canonical_json(specs[method].to_dict())))
    conn.close()
    df = load_runs(old).set_index("method")
    assert df.loc["snip", "category"] == "pai-data" and df.loc["dense", "category"] == "dense"
    assert load_trajectories(old).empty
    record = RunRecord(specs["rigl"].run_id, specs["rigl"].to_dict(), "ok", None, 0.8,
                       trajectory=[{"step": 0, "exploration_rate": 0.1, "density": {"a": 0.1}},
                                   {"step": 5, "exploration_rate": 0.2,
                                    "log10_paths": float("-inf"), "density": {"a": 0.1}}])
    with ResultsStore(old) as store:
        store.write(record)
    conn = sqlite3.connect(old)
    columns = {r[1] for r in conn.execute("PRAGMA table_info(runs)")}
    conn.close()
    assert {"category", "trajectory_json"} <= columns
    df = load_runs(old).set_index("method")
    assert df.loc["rigl", "category"] == "dst" and df.loc["rigl", "exploration_rate"] == 0.2
    traj = load_trajectories(old)
    assert list(traj["step"]) == [0, 5] and traj["log10_paths"].isna().iloc[1]
