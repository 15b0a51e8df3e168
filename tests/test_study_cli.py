"""Tests of ``sparsetopo study fit`` and ``sparsetopo study import-published`` (the CLI of
SPEC 6) on a tiny results file and a synthetic folder of published tables."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from cli_checks import one_line_error as _one_line_error
from published_tables import synthetic_mge_table
from typer.testing import CliRunner

from sparsetopo.cli import app
from sparsetopo.study.fit import COMPARISON_COLUMNS
from sparsetopo.study.published import CAVEATS
from sparsetopo.study.store import ResultsStore, RunRecord, load_runs

runner = CliRunner()
METHODS = ["snip", "grasp", "er"]
FAST = ["--trials", "1", "--jobs", "1", "--folds", "2", "--quiet"]


def one_line_error(result, *needles):
    _one_line_error(result, *needles, stream="stderr")


def invoke(*args):
    return runner.invoke(app, ["study", *map(str, args)])


@pytest.fixture(scope="module")
def results_file(tmp_path_factory):
    """A results file: mlp / digits, 3 methods x 2 sparsities x 2 seeds and the dense runs;
    the drop follows ``mge.spectral_gap``."""
    path = tmp_path_factory.mktemp("results") / "tiny.sqlite"
    rng = np.random.default_rng(0)
    with ResultsStore(path) as store:
        for seed in (0, 1):
            config = {"model": "mlp", "dataset": "digits", "method": "dense", "sparsity": 0.0,
                      "seed": seed}
            store.write(RunRecord(f"dense-{seed}", config, "ok", accuracy=0.95,
                                  features={"mge.spectral_gap": 9.0, "mge.motifs": 1.0}))
        for method, sparsity in itertools.product(METHODS, (0.5, 0.9)):
            level = rng.uniform(0, 4)
            for seed in (0, 1):
                gap = level + 0.01 * rng.normal()
                config = {"model": "mlp", "dataset": "digits", "method": method,
                          "sparsity": sparsity, "seed": seed}
                store.write(RunRecord(f"{method}-{sparsity}-{seed}", config, "ok",
                                      accuracy=0.95 - 0.05 * gap,
                                      features={"mge.spectral_gap": gap,
                                                "mge.motifs": rng.normal()}))
        store.write(RunRecord("broken", {"model": "mlp", "dataset": "digits", "method": "snip",
                                         "sparsity": 0.95, "seed": 0}, "failed",
                              error="diverged"))
    return path


def test_results_file_has_accuracy_drops(results_file):
    runs = load_runs(results_file)
    pruned = runs[runs["method"] != "dense"]
    assert len(pruned) == 12 and pruned["accuracy_drop"].notna().all()
    np.testing.assert_allclose(pruned["accuracy_drop"], 0.95 - pruned["accuracy"])


def test_study_fit(results_file, tmp_path):
    out = tmp_path / "fit"
    result = invoke("fit", results_file, "--out", out, "--sets", "mge", *FAST)
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.stdout
    for protocol in ("random", "grouped", "leave-one-method-out", "leave-one-category-out"):
        assert f"{protocol}: " in result.stdout
    assert "telling methods and categories apart" in result.stdout
    assert (out / "separability.csv").is_file()
    comparison = pd.read_csv(out / "comparison.csv")
    assert list(comparison.columns) == COMPARISON_COLUMNS
    assert set(comparison["feature_set"]) == {"sparsity", "mge"}
    assert set(comparison["model"]) == {"mlp", "mean"}
    predictions = pd.read_csv(out / "predictions.csv")
    assert set(predictions["method"]) == set(METHODS)  # dense and failed runs left out
    assert len(predictions) == 2 * 4 * 12  # sets x protocols x runs
    runs = load_runs(results_file).set_index("run_id")
    np.testing.assert_allclose(predictions["measured"],
                               runs.loc[predictions["run_id"], "accuracy_drop"])
    index = json.loads((out / "models" / "index.json").read_text())
    assert {e["feature_set"] for e in index["regressors"]} == {"sparsity", "mge"}
    assert (out / "summary.md").is_file()


def test_study_fit_default_out_next_to_results(results_file, tmp_path):
    copy = tmp_path / "r.sqlite"
    copy.write_bytes(results_file.read_bytes())
    result = invoke("fit", copy, "--sets", "mge", *FAST)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r-fit" / "comparison.csv").is_file()


def test_study_fit_bad_input(results_file, tmp_path):
    one_line_error(invoke("fit", results_file, "--out", tmp_path / "o", "--sets", "nope", *FAST),
                   "unknown feature set", "nope")
    one_line_error(invoke("fit", tmp_path / "missing.sqlite", "--out", tmp_path / "o", *FAST),
                   "results file not found", "missing.sqlite")
    one_line_error(invoke("fit", results_file, "--out", tmp_path / "o", "--sets", ",", *FAST),
                   "empty list")
    not_results = tmp_path / "other.sqlite"
    not_results.write_bytes(b"")
    import sqlite3

    sqlite3.connect(not_results).execute("CREATE TABLE t (a)").connection.close()
    one_line_error(invoke("fit", not_results, "--out", tmp_path / "o", *FAST),
                   "not a sparsetopo results file")
    assert not (tmp_path / "o").exists()
    bad_folds = invoke("fit", results_file, "--out", tmp_path / "o", "--folds", "1")
    assert bad_folds.exit_code == 2 and not (tmp_path / "o").exists()
    no_dense = tmp_path / "no-dense.sqlite"
    with ResultsStore(no_dense) as store:
        for method in METHODS:
            config = {"model": "mlp", "dataset": "digits", "method": method, "sparsity": 0.5,
                      "seed": 0}
            store.write(RunRecord(method, config, "ok", accuracy=0.5,
                                  features={"mge.spectral_gap": 1.0}))
    one_line_error(invoke("fit", no_dense, "--out", tmp_path / "o", *FAST),
                   "no pruned run with a value of accuracy_drop", "dense run")
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def published_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("published")
    table, _ = synthetic_mge_table(sparsities=(0.8, 0.98), seeds=(0, 1))
    table.to_csv(folder / "mge-CIFAR-10.csv", index=False)
    return folder


def test_study_import_published(published_folder, tmp_path):
    out = tmp_path / "pub"
    result = invoke("import-published", published_folder, "--out", out, "--sets", "mge", *FAST)
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.stdout
    runs = pd.read_csv(out / "published_runs.csv")
    assert "rigl" not in set(runs["method"]) and len(runs) == 2 * 7 * 2 * 2
    index = json.loads((out / "models" / "index.json").read_text())
    assert index["caveats"] == list(CAVEATS)
    everything = invoke("import-published", published_folder, "--out", tmp_path / "all",
                        "--methods", "all", "--sets", "mge", *FAST)
    assert everything.exit_code == 0, everything.output
    assert "rigl" in set(pd.read_csv(tmp_path / "all" / "published_runs.csv")["method"])


def test_study_import_published_default_methods_with_some_pai_methods_absent(tmp_path):
    """Without --methods the PaI networks are kept; tables lacking some PaI method (here
    synflow, prospr, uniform, erk) are not an error."""
    src = tmp_path / "src"
    src.mkdir()
    table, _ = synthetic_mge_table(models=("CONV-6",), methods=("snip", "grasp", "er", "rigl"),
                                   sparsities=(0.8, 0.98))
    table.to_csv(src / "mge-CIFAR-100.csv", index=False)
    result = invoke("import-published", src, "--out", tmp_path / "out", "--sets", "mge", *FAST)
    assert result.exit_code == 0, result.output
    runs = pd.read_csv(tmp_path / "out" / "published_runs.csv")
    assert set(runs["method"]) == {"snip", "grasp", "er"}


def test_study_import_published_bad_input(published_folder, tmp_path):
    one_line_error(invoke("import-published", tmp_path / "absent", "--out", tmp_path / "o",
                          *FAST), "not a folder")
    one_line_error(invoke("import-published", published_folder, "--out", tmp_path / "o",
                          "--methods", "snip,magic", *FAST), "unknown method", "magic")
    one_line_error(invoke("import-published", published_folder, "--out", tmp_path / "o",
                          "--sets", "nope", *FAST), "unknown feature set")
    broken = tmp_path / "broken"
    broken.mkdir()
    table = pd.read_csv(published_folder / "mge-CIFAR-10.csv").drop(columns="k-core")
    table.to_csv(broken / "mge-CIFAR-10.csv", index=False)
    one_line_error(invoke("import-published", broken, "--out", tmp_path / "o", *FAST),
                   "mge-CIFAR-10.csv", "missing column(s) ['k-core']")
