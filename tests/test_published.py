"""Tests of the import of the tables published with Cunegatti et al. (TMLR 2024)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sparsetopo.study.fit import COMPARISON_COLUMNS
from sparsetopo.study.published import PublishedDataError, import_published, load_published

DATA = Path(__file__).parents[2] / "shared/data/published"
pytestmark = pytest.mark.skipif(
    not (DATA / "mge-CIFAR-10.csv").is_file(),
    reason=f"published tables not found at {DATA} (shared/data/published next to the repo)",
)
SPEC4_PAPER_KEYS = {
    "nodes",
    "edges",
    "sink_nodes",
    "source_nodes",
    "disconnected_nodes",
    "removable_out_edges",
    "removable_in_edges",
    "one_hop",
    "two_hop",
    "motifs",
    "strength",
    "k_core",
    "cut_edges",
    "cut_nodes",
    "connected_components",
    "mean_component_size",
    "spectral_gap",
    "spectral_radius",
}


@pytest.fixture(scope="module")
def runs() -> pd.DataFrame:
    return load_published(DATA)


def test_one_row_per_network(runs):
    mge = pd.read_csv(DATA / "mge-CIFAR-10.csv")
    networks = {
        (m, p, s, k)
        for m, p, s, k in mge[["model", "pruning", "sparsity", "seed"]].itertuples(index=False)
    }
    for path in DATA.glob("rolled-CIFAR-10-*.csv"):
        layers = pd.read_csv(path)[["model", "pruning_algorithm", "sparsity", "seed"]]
        networks |= set(layers.itertuples(index=False, name=None))
    assert len(runs) == len(networks) == runs["run_id"].nunique()
    assert set(runs["model"]) == {"conv6", "resnet20", "resnet32", "wrn28_2", "mobilenetv2"}
    assert set(runs["dataset"]) == {"cifar10"}
    assert {"snip", "grasp", "synflow", "prospr", "uniform", "er", "erk"} <= set(runs["method"])
    assert runs["accuracy"].between(0, 1).all()


def test_mge_columns_are_spec4_keys_with_raw_counts(runs):
    assert {c.removeprefix("mge.") for c in runs if c.startswith("mge.")} == SPEC4_PAPER_KEYS
    # counts stored divided by nodes or edges must come back as whole numbers
    for key in (
        "sink_nodes",
        "source_nodes",
        "disconnected_nodes",
        "removable_out_edges",
        "removable_in_edges",
        "cut_edges",
        "cut_nodes",
    ):
        values = runs[f"mge.{key}"].dropna().to_numpy()
        np.testing.assert_allclose(values, np.round(values), atol=1e-6)
        assert values.max() > 10  # not left as fractions
    ratio = runs["mge.nodes"] / runs["mge.connected_components"]
    np.testing.assert_allclose(runs["mge.mean_component_size"], ratio, rtol=1e-9)


def test_layer_tables_and_ramanujan_alignment(runs):
    rolled = pd.read_csv(DATA / "rolled-CIFAR-10-Resnet-20.csv")
    ours = runs[runs["model"] == "resnet20"].set_index(["method", "sparsity", "seed"])
    expected = rolled.groupby(["pruning_algorithm", "sparsity", "seed"])
    # layer means of the rolled table, under SPEC 4 names
    np.testing.assert_allclose(
        ours["rolled.cut_edges"].sort_index(), expected["bridges"].mean().sort_index()
    )
    np.testing.assert_allclose(
        ours["rolled.k_core"].sort_index(), expected["coreness_all"].mean().sort_index()
    )
    # Ramanujan rows carry no method: matched to the rolled rows, so per-network layer densities
    # must equal those of the rolled table of the same network
    np.testing.assert_allclose(
        ours["ramanujan.density"].sort_index(), expected["layer_sparsity"].mean().sort_index()
    )
    assert ours["density.layer1.0.conv1"].notna().all()
    # global density vs the published sparsity (within 0.03% for the score-based PaI methods;
    # the largest gap, 2.5e-4, is synflow on CONV-6)
    exact = runs[
        runs["method"].isin(["snip", "grasp", "synflow", "prospr", "uniform"])
        & runs["density.global"].notna()
    ]
    np.testing.assert_allclose(exact["density.global"], 1 - exact["sparsity"], atol=3e-4)
    mobilenet = runs[runs["model"] == "mobilenetv2"]  # only in the mge table
    assert mobilenet["rolled.edges"].isna().all() and mobilenet["mge.edges"].notna().all()


def _copy(tmp_path: Path, names: list[str]) -> Path:
    for name in names:
        shutil.copy(DATA / name, tmp_path / name)
    return tmp_path


def test_bad_or_missing_files(tmp_path):
    with pytest.raises(PublishedDataError, match="not a folder"):
        load_published(tmp_path / "absent")
    with pytest.raises(PublishedDataError, match="no published table found"):
        load_published(tmp_path)

    broken = tmp_path / "broken"
    broken.mkdir()
    mge = pd.read_csv(DATA / "mge-CIFAR-10.csv").drop(columns="k-core")
    mge.to_csv(broken / "mge-CIFAR-10.csv", index=False)
    with pytest.raises(
        PublishedDataError,
        match=r"mge-CIFAR-10.csv: missing column\(s\) "
        r"\['k-core'\]\. Expected one row per network",
    ):
        load_published(broken)
    (broken / "mge-CIFAR-10.csv").write_text("")
    with pytest.raises(PublishedDataError, match="mge-CIFAR-10.csv: cannot be read as CSV"):
        load_published(broken)

    lone = tmp_path / "lone"
    lone.mkdir()
    _copy(lone, ["ramanujan-CIFAR-10-CONV-6.csv"])
    with pytest.raises(
        PublishedDataError,
        match="ramanujan-CIFAR-10-CONV-6.csv: no rolled or rolled-channel table for conv6",
    ):
        load_published(lone)

    shuffled = tmp_path / "shuffled"
    shuffled.mkdir()
    _copy(shuffled, ["rolled-CIFAR-10-CONV-6.csv"])
    ram = pd.read_csv(DATA / "ramanujan-CIFAR-10-CONV-6.csv")
    ram.iloc[::-1].to_csv(shuffled / "ramanujan-CIFAR-10-CONV-6.csv", index=False)
    with pytest.raises(PublishedDataError, match="do not match rolled-CIFAR-10-CONV-6.csv row by"):
        load_published(shuffled)


def test_import_published_end_to_end(tmp_path):
    methods = ["snip", "synflow", "uniform", "erk"]
    result = import_published(
        DATA,
        tmp_path,
        folds=2,
        n_trials=1,
        seed=0,
        progress=False,
        feature_sets=["mge", "ramanujan"],
        methods=methods,
    )
    comparison = pd.read_csv(tmp_path / "comparison.csv")
    assert list(comparison.columns) == COMPARISON_COLUMNS
    assert set(comparison["feature_set"]) == {"mge", "ramanujan"}
    assert set(comparison["protocol"]) == {"grouped", "leave-one-method-out"}
    mge_models = set(comparison.loc[comparison["feature_set"] == "mge", "model"])
    assert mge_models == {"conv6", "resnet20", "resnet32", "wrn28_2", "mobilenetv2", "all"}
    assert "mobilenetv2" not in set(
        comparison.loc[comparison["feature_set"] == "ramanujan", "model"]
    )
    predictions = pd.read_csv(tmp_path / "predictions.csv")
    runs = pd.read_csv(tmp_path / "published_runs.csv").set_index("run_id")
    np.testing.assert_allclose(predictions["measured"], runs.loc[predictions["run_id"], "accuracy"])
    assert set(predictions["method"]) == set(methods)
    assert "target is accuracy" in result.summary
    pooled = comparison[(comparison["model"] == "all") & (comparison["feature_set"] == "mge")]
    assert (pooled["r2"] > 0).all()  # topology carries signal about the accuracy
    with pytest.raises(ValueError, match="unknown method"):
        import_published(DATA, tmp_path / "x", methods=["snip", "magic"], progress=False)
