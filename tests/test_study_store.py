import math
import sqlite3

import pandas as pd
import pytest

from sparsetopo.study.config import expand_runs, parse_config
from sparsetopo.study.store import ResultsStore, RunRecord, StoreError, export, load_runs


def specs(**training):
    raw = {"grid": {"models": ["mlp"], "datasets": ["digits"], "methods": ["uniform", "snip"],
                    "sparsities": [0.9], "seeds": [0, 1]},
           "training": {"epochs": 2, **training}}
    return {(r.method, r.seed): r for r in expand_runs(parse_config(raw))}


def record(spec, accuracy, status="ok", features=None, error=None):
    return RunRecord(spec.run_id, spec.to_dict(), status, error, accuracy,
                     features if features is not None else {},
                     {"prune": 0.1, "features": 0.2, "train": 1.5, "total": 2.0},
                     "2024-01-01T00:00:00+00:00", "2024-01-01T00:00:02+00:00", "host")


def test_load_runs_accuracy_drop_and_feature_columns(tmp_path):
    path = tmp_path / "r.sqlite"
    s = specs()
    other = specs(lr=0.01)  # other training config: its dense run must not be used
    with ResultsStore(path) as store:
        store.write(record(s["dense", 0], 0.90))
        store.write(record(s["uniform", 0], 0.70, features={"density.global": 0.1, "mge.edges": 5.0,
                                                              "rolled.k_core": float("nan")}))
        store.write(record(s["snip", 0], 0.80, features={"density.global": 0.1,
                                                           "ramanujan.delta_r": 1.5}))
        store.write(record(s["uniform", 1], 0.60))  # no dense run for seed 1
        store.write(record(other["dense", 1], 0.99))
        store.write(record(s["snip", 1], None, status="failed", error="ValueError: boom"))
    df = load_runs(path)
    assert len(df) == 5 and set(df["status"]) == {"ok"}
    row = df.set_index(["method", "seed", "lr"])
    assert row.loc[("uniform", 0, 0.1), "accuracy_drop"] == pytest.approx(0.20)
    assert row.loc[("snip", 0, 0.1), "accuracy_drop"] == pytest.approx(0.10)
    assert row.loc[("dense", 0, 0.1), "accuracy_drop"] == 0.0
    assert math.isnan(row.loc[("uniform", 1, 0.1), "accuracy_drop"])
    assert row.loc[("snip", 0, 0.1), "dense_accuracy"] == 0.90
    feats = [c for c in df.columns if "." in c]
    assert feats == ["density.global", "ramanujan.delta_r", "rolled.k_core", "mge.edges"]
    assert math.isnan(row.loc[("uniform", 0, 0.1), "rolled.k_core"])
    assert math.isnan(row.loc[("snip", 0, 0.1), "mge.edges"])
    for col in ("run_id", "model", "dataset", "method", "sparsity", "seed", "epochs",
                "milestones", "status", "error", "accuracy", "dense_accuracy", "accuracy_drop",
                "train_seconds", "metrics_seconds"):
        assert col in df.columns
    assert row.loc[("uniform", 0, 0.1), "train_seconds"] == 1.5
    failed = load_runs(path, status="failed")
    assert list(failed["method"]) == ["snip"] and failed["error"][0] == "ValueError: boom"
    assert len(load_runs(path, status="all")) == 6
    with pytest.raises(ValueError, match="status"):
        load_runs(path, status="done")


def test_failed_run_is_replaced_not_duplicated(tmp_path):
    path = tmp_path / "r.sqlite"
    s = specs()
    with ResultsStore(path) as store:
        store.write(record(s["snip", 0], None, status="failed", error="boom"))
    with ResultsStore(path) as store:
        assert store.statuses() == {s["snip", 0].run_id: "failed"}
        store.write(record(s["snip", 0], 0.5))
        assert store.statuses() == {s["snip", 0].run_id: "ok"}
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM runs").fetchone() == (1,)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


def test_schema_mismatch_and_foreign_files(tmp_path):
    path = tmp_path / "r.sqlite"
    ResultsStore(path).close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.close()
    for action in (lambda: ResultsStore(path), lambda: load_runs(path)):
        with pytest.raises(StoreError, match="schema version 99.*version 1"):
            action()

    other = tmp_path / "other.sqlite"
    conn = sqlite3.connect(other)
    with conn:
        conn.execute("CREATE TABLE runs (x)")
    conn.close()
    with pytest.raises(StoreError, match="not a sparsetopo results file"):
        load_runs(other)

    text = tmp_path / "notes.sqlite"
    text.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(StoreError, match="not a sparsetopo results file"):
        ResultsStore(text)
    assert text.read_text().startswith("these are my notes")  # nothing overwritten

    with pytest.raises(StoreError, match="missing.sqlite"):
        load_runs(tmp_path / "missing.sqlite")
    assert not (tmp_path / "missing.sqlite").exists()


def test_export_parquet_csv_atomic(tmp_path):
    path = tmp_path / "r.sqlite"
    s = specs()
    with ResultsStore(path) as store:
        store.write(record(s["dense", 0], 0.9))
        store.write(record(s["uniform", 0], 0.7, features={"mge.edges": 3.0}))
        store.write(record(s["snip", 0], None, status="failed", error="boom"))
    expected = load_runs(path, status="all")
    pq = export(path, tmp_path / "out" / "runs.parquet")
    got = pd.read_parquet(pq)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    csv = export(path, tmp_path / "runs.csv", status="ok")
    got = pd.read_csv(csv)
    assert len(got) == 2 and got["accuracy_drop"].tolist() == pytest.approx([0.0, 0.2])
    leftovers = [p.name for p in tmp_path.rglob("*") if "tmp" in p.name]
    assert leftovers == []
    with pytest.raises(ValueError, match=r"runs.xlsx.*\.parquet, \.csv"):
        export(path, tmp_path / "runs.xlsx")
    assert not (tmp_path / "runs.xlsx").exists()


def test_cli_export_and_bad_results_file(tmp_path):
    from typer.testing import CliRunner

    from sparsetopo.cli.study import app

    path = tmp_path / "r.sqlite"
    with ResultsStore(path) as store:
        store.write(record(specs()["dense", 0], 0.9))
    runner = CliRunner()
    result = runner.invoke(app, ["export", str(path), "--out", str(tmp_path / "runs.csv")])
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "runs.csv")) == 1
    bad = tmp_path / "bad.sqlite"
    bad.write_text("hello")
    for args in (["export", str(bad), "--out", str(tmp_path / "x.csv")],
                 ["fit", str(bad), "--out", str(tmp_path / "fit")],
                 ["run", "--preset", "smoke", "--results", str(bad)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2
        assert result.stderr.startswith("error: ") and "not a sparsetopo results file" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert bad.read_text() == "hello"


def test_cli_fit_needs_two_methods(tmp_path):
    from typer.testing import CliRunner

    from sparsetopo.cli.study import app

    path = tmp_path / "r.sqlite"
    s = specs()
    with ResultsStore(path) as store:
        store.write(record(s["dense", 0], 0.9))
        store.write(record(s["dense", 1], 0.9))
        store.write(record(s["uniform", 0], 0.7, features={"mge.edges": 3.0}))
        store.write(record(s["uniform", 1], 0.6, features={"mge.edges": 4.0}))
    result = CliRunner().invoke(app, ["fit", str(path), "--quiet"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: ranking needs at least 2 pruning methods, got 1: ['uniform']"]
    assert not (tmp_path / "r-fit").exists()
    result = CliRunner().invoke(app, ["fit", str(tmp_path / "none.sqlite")])
    assert result.exit_code == 2 and "results file not found" in result.stderr


OLD_RUNS_TABLE = """CREATE TABLE runs (run_id TEXT PRIMARY KEY, config_json TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')), error TEXT, accuracy REAL,
    features_json TEXT, timings_json TEXT, started TEXT, finished TEXT, host TEXT)"""


def test_resources_columns_and_results_files_from_before_them(tmp_path):
    """Where a run trained is exported (device, peak accelerator memory, images/s); a file
    written before ``resources_json`` existed (same schema version) is read as it is and gains
    the column when a study writes to it again, keeping its runs."""
    import json

    from sparsetopo.study.config import canonical_json
    from sparsetopo.study.store import APPLICATION, SCHEMA_VERSION

    s = specs()
    old = tmp_path / "old.sqlite"
    conn = sqlite3.connect(old)
    with conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.executemany("INSERT INTO meta VALUES (?, ?)",
                         [("application", APPLICATION), ("schema_version", str(SCHEMA_VERSION))])
        conn.execute(OLD_RUNS_TABLE)
        conn.execute("INSERT INTO runs VALUES (?, ?, 'ok', NULL, 0.9, '{}', ?, 't0', 't1', 'h')",
                     (s["dense", 0].run_id, canonical_json(s["dense", 0].to_dict()),
                      json.dumps({"train": 1.0})))
    conn.close()
    before = load_runs(old)
    assert len(before) == 1 and before["device"].isna().all()
    assert before["images_per_second"].isna().all() and not before["amp"].any()

    with ResultsStore(old) as store:  # a study resumes on the old file
        assert store.statuses() == {s["dense", 0].run_id: "ok"}
        gpu = record(s["uniform", 0], 0.7)
        gpu.resources = {"device": "cuda:0", "peak_accelerator_memory_mb": 812.5,
                         "images_per_second": 5400.0, "gpu_ids": ["1"], "gpus_per_run": 0.25}
        store.write(gpu)
        cpu = record(s["snip", 0], 0.8)
        cpu.resources = {"device": "cpu", "peak_accelerator_memory_mb": None,
                         "images_per_second": 900.0}
        store.write(cpu)
    conn = sqlite3.connect(old)
    assert "resources_json" in {r[1] for r in conn.execute("PRAGMA table_info(runs)")}
    stored = dict(conn.execute("SELECT run_id, resources_json FROM runs").fetchall())
    conn.close()
    assert stored[s["dense", 0].run_id] is None
    assert json.loads(stored[gpu.run_id])["gpu_ids"] == ["1"]

    df = load_runs(old).set_index("method")
    assert df.loc["uniform", "device"] == "cuda:0"
    assert df.loc["uniform", "peak_accelerator_memory_mb"] == 812.5
    assert df.loc["uniform", "images_per_second"] == 5400.0
    assert df.loc["snip", "device"] == "cpu" and math.isnan(df.loc["snip",
                                                                   "peak_accelerator_memory_mb"])
    assert df.loc["dense", "accuracy"] == 0.9 and pd.isna(df.loc["dense", "device"])
    csv = pd.read_csv(export(old, tmp_path / "runs.csv"))
    assert {"device", "peak_accelerator_memory_mb", "images_per_second", "amp",
            "channels_last"} <= set(csv.columns)
    assert sorted(csv["device"].dropna()) == ["cpu", "cuda:0"]


def test_training_options_are_columns(tmp_path):
    path = tmp_path / "r.sqlite"
    plain, fast = specs(), specs(amp=True, channels_last=True)
    assert plain["uniform", 0].run_id != fast["uniform", 0].run_id
    with ResultsStore(path) as store:
        store.write(record(plain["uniform", 0], 0.7))
        store.write(record(fast["uniform", 0], 0.71))
    df = load_runs(path).set_index("accuracy")
    assert df.loc[0.7, "amp"] == False and df.loc[0.71, "amp"] == True  # noqa: E712
    assert df.loc[0.71, "channels_last"] == True  # noqa: E712


def test_control_runs_store_their_method_and_control(tmp_path):
    """``snip+layer-shuffle`` is stored as its method name; the runs table and ``study
    export`` split it into ``base_method`` and ``control`` (empty for the method itself)."""
    raw = {"grid": {"models": ["mlp"], "datasets": ["digits"], "methods": ["snip"],
                    "sparsities": [0.9], "seeds": [0], "controls": ["layer-shuffle",
                                                                    "fanin-shuffle"]},
           "training": {"epochs": 2}}
    runs = {r.method: r for r in expand_runs(parse_config(raw))}
    assert set(runs) == {"dense", "snip", "snip+layer-shuffle", "snip+fanin-shuffle"}
    path = tmp_path / "r.sqlite"
    with ResultsStore(path) as store:
        for i, spec in enumerate(runs.values()):
            store.write(record(spec, 0.9 - 0.1 * i))
    df = load_runs(path).set_index("method")
    assert df.loc["snip+layer-shuffle", ["base_method", "control"]].tolist() == [
        "snip", "layer-shuffle"]
    assert df.loc["snip+fanin-shuffle", ["base_method", "control"]].tolist() == [
        "snip", "fanin-shuffle"]
    assert df.loc["snip", "base_method"] == "snip" and pd.isna(df.loc["snip", "control"])
    assert df.loc["dense", "base_method"] == "dense" and pd.isna(df.loc["dense", "control"])
    # the dense run is every control run's baseline too
    assert df["accuracy_drop"].notna().all()
    got = pd.read_csv(export(path, tmp_path / "runs.csv")).set_index("method")
    assert got.loc["snip+fanin-shuffle", "control"] == "fanin-shuffle"
    assert got.loc["snip+fanin-shuffle", "base_method"] == "snip"
