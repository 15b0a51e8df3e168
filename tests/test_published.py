"""Tests of the import of the tables published with Cunegatti et al. (TMLR 2024):
``sparsetopo.study.published``.

The fixtures (``tests/data/published``, README there) are real extracts of the released tables,
each reproducing one irregularity; the oracles below read them with pandas directly. One test
reads the full CIFAR-10 tables when ``shared/data/published`` is next to the repository."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from published_tables import synthetic_mge_table

from sparsetopo.study.fit import COMPARISON_COLUMNS
from sparsetopo.study.published import (
    CAVEATS,
    MGE_COLUMNS,
    PAI_METHODS,
    PublishedDataError,
    import_published,
    load_published,
)

FIXTURES = Path(__file__).parent / "data" / "published"
MGE_FILE = FIXTURES / "unrolled.csv"
ROLLED_R20 = FIXTURES / "rolled" / "rolled-CIFAR-10-Resnet-20.csv"
RAMANUJAN_R20 = FIXTURES / "ramanunjan_results" / "Resnet-20" / "rolled-CIFAR-10-Resnet-20.csv"
ROLLED_SHORT = FIXTURES / "rolled" / "rolled-tinyimagenet-CONV-6.csv"
CHANNEL_SHORT = FIXTURES / "rolled_channel" / "rolled_channel-tinyimagenet-Resnet-32.csv"
FULL = Path(__file__).parents[2] / "shared/data/published"

MODELS = {"CONV-6": "conv6", "Resnet-20": "resnet20", "Resnet-32": "resnet32",
          "Wide-Resnet-28-2": "wrn28_2"}
DATASETS = {"CIFAR-10": "cifar10", "CIFAR-100": "cifar100", "tinyimagenet": "tinyimagenet"}
KEY = ["model", "dataset", "method", "sparsity", "seed"]


def _keyed(frame: pd.DataFrame) -> pd.DataFrame:
    """A published table with the project's names for model, dataset and method."""
    frame = frame.rename(columns={"pruning": "method", "pruning_algorithm": "method"})
    return frame.assign(model=frame["model"].map(MODELS), dataset=frame["dataset"].map(DATASETS))


@pytest.fixture(scope="module")
def loaded():
    notes: list[str] = []
    return load_published(FIXTURES, notes=notes), notes


# ---------------------------------------------------------------------------------- networks
def test_one_row_per_network(loaded):
    runs, _ = loaded
    expected = set()
    for path in (MGE_FILE, ROLLED_R20, ROLLED_SHORT, CHANNEL_SHORT):
        table = _keyed(pd.read_csv(path))
        expected |= set(table[KEY].itertuples(index=False, name=None))
    assert len(expected) == 14
    got = set(runs[KEY].itertuples(index=False, name=None))
    assert len(runs) == len(got) == 14 and got == expected
    assert runs["run_id"].is_unique
    assert set(runs["model"]) == {"conv6", "resnet20", "resnet32", "wrn28_2"}
    assert set(runs["dataset"]) == {"cifar10", "cifar100", "tinyimagenet"}
    assert set(runs["method"]) == {"snip", "grasp", "prospr", "er", "rigl"}
    for column in ("run_id", *KEY, "accuracy"):
        assert column in runs.columns
    # accuracy of every network as the tables give it
    mge = _keyed(pd.read_csv(MGE_FILE)).drop_duplicates(KEY).set_index(KEY)["accuracy"]
    ours = runs.set_index(KEY)["accuracy"]
    np.testing.assert_allclose(ours.loc[mge.index], mge)


def test_exact_duplicate_row_dropped_and_noted(loaded):
    runs, notes = loaded
    raw = pd.read_csv(MGE_FILE)
    assert int(raw.duplicated().sum()) == 1
    twice = runs[(runs["model"] == "wrn28_2") & (runs["method"] == "snip")
                 & (runs["sparsity"] == 0.8) & (runs["seed"] == 1)]
    assert len(twice) == 1
    assert any("unrolled.csv" in n and "1 exact duplicate" in n for n in notes), notes


def test_mge_denormalisation_follows_spec4(loaded):
    runs, _ = loaded
    raw = _keyed(pd.read_csv(MGE_FILE)).drop_duplicates()
    both = raw.merge(runs, on=KEY, how="left", validate="one_to_one")
    assert len(both) == 10 and both["mge.nodes"].notna().all()
    has = both["1-hop_nei"].notna()
    assert has.all()
    # the published identity: 1-hop_nei * edges == 1 + edges / nodes
    np.testing.assert_allclose(both["mge.one_hop"], 1 + both["mge.edges"] / both["mge.nodes"],
                               rtol=1e-12)
    np.testing.assert_allclose(both["mge.one_hop"], both["1-hop_nei"] * both["edges"], rtol=1e-12)
    np.testing.assert_array_equal(both["mge.nodes"], both["nodes"])
    np.testing.assert_array_equal(both["mge.edges"], both["edges"])
    pairs = {  # SPEC key: (published column, divisor)
        "sink_nodes": ("sink_nodes", "nodes"),
        "source_nodes": ("source_nodes", "nodes"),
        "disconnected_nodes": ("disc_nodes", "nodes"),
        "removable_out_edges": ("r-out", "edges"),
        "cut_edges": ("cut-edges", "edges"),
        "cut_nodes": ("cut-nodes", "edges"),
        "strength": ("avg_node_strength", "edges"),
        "k_core": ("k-core", "edges"),
        "two_hop": ("2-hop_nei", "edges"),
        "mean_component_size": ("mean_connected_components", "nodes"),
    }
    for key, (column, divisor) in pairs.items():
        values = both[column].notna()
        np.testing.assert_allclose(both.loc[values, f"mge.{key}"],
                                   both.loc[values, column] * both.loc[values, divisor],
                                   rtol=1e-12, err_msg=key)
        assert both.loc[~values, f"mge.{key}"].isna().all()  # empty fields stay missing
    for key, column in (("motifs", "motif"), ("spectral_gap", "spectral_gap"),
                        ("connected_components", "no_connected_components"),
                        ("spectral_radius", "spectral_radius")):
        np.testing.assert_allclose(both[f"mge.{key}"], both[column], rtol=1e-12)
    # SPEC 4: mean_component_size = nodes / connected_components; counts come back whole
    np.testing.assert_allclose(both["mge.mean_component_size"],
                               both["mge.nodes"] / both["mge.connected_components"], rtol=1e-6)
    for key in ("sink_nodes", "cut_edges", "removable_out_edges"):
        values = both[f"mge.{key}"].dropna().to_numpy()
        np.testing.assert_allclose(values, np.round(values), atol=1e-4)
    prospr = both[(both["model"] == "resnet32") & (both["method"] == "prospr")]
    assert prospr["mge.sink_nodes"].isna().all() and prospr["mge.one_hop"].notna().all()


def _ramanujan_blocks() -> list[pd.DataFrame]:
    """The networks of the Ramanujan fixture: blocks of rows whose layer ids restart at 0."""
    table = pd.read_csv(RAMANUJAN_R20)
    block = (table["layer_id"] == 0).cumsum()
    return [part.sort_values("layer_id") for _, part in table.groupby(block)]


def test_ramanujan_networks_joined_by_content_not_position(loaded):
    runs, _ = loaded
    rolled = pd.read_csv(ROLLED_R20)
    blocks = _ramanujan_blocks()
    assert len(blocks) == 3
    found = []
    for method in ("er", "prospr", "snip"):
        layers = rolled[rolled["pruning_algorithm"] == method].sort_values("layer_id")
        matches = [b for b in blocks if len(b) == len(layers) and np.allclose(
            b["layer_sparsity"].to_numpy(), layers["layer_sparsity"].to_numpy(), atol=1e-9)]
        assert len(matches) == 1, method
        block = matches[0]
        found.append(block.index[0])
        ours = runs[(runs["model"] == "resnet20") & (runs["method"] == method)]
        assert len(ours) == 1
        row = ours.iloc[0]
        assert row["density.global"] == pytest.approx(
            block["no_weights"].sum() / block["no_params"].sum(), rel=1e-12)
        assert row["ramanujan.delta_r_norm"] == pytest.approx(block["degree_bound"].mean(),
                                                              rel=1e-12)
        assert row["ramanujan.iterative_delta_r_norm"] == pytest.approx(
            block["iterative_degree_bound"].mean(), rel=1e-12)
        assert row["ramanujan.density"] == pytest.approx(block["layer_sparsity"].mean(),
                                                         rel=1e-12)
        for name, density in zip(block["layer_name"], block["layer_sparsity"], strict=True):
            assert row[f"density.{name}"] == pytest.approx(density, rel=1e-12)
    assert len(set(found)) == 3
    er, prospr = (runs.set_index(["model", "method"]).loc[("resnet20", m)] for m in ("er", "prospr"))
    assert er["accuracy"] == prospr["accuracy"] == pytest.approx(0.8653)  # told apart by layers
    assert abs(er["density.global"] - prospr["density.global"]) > 1e-3
    # networks without layer tables have no Ramanujan or density features
    rigl = runs[runs["method"] == "rigl"].iloc[0]
    assert np.isnan(rigl["density.global"]) and np.isnan(rigl["ramanujan.delta_r_norm"])


def test_layer_means_usual_schema(loaded):
    runs, _ = loaded
    rolled = pd.read_csv(ROLLED_R20).groupby("pruning_algorithm")
    ours = runs[runs["model"] == "resnet20"].set_index("method")
    for key, column in (("cut_edges", "bridges"), ("k_core", "coreness_all"),
                        ("one_hop", "nei_one_hop"), ("strength", "strenght_all"),
                        ("spectral_gap", "spectral_gap_weighted_undirected"),
                        ("connected_components", "weak_clusters")):
        expected = rolled[column].mean()
        np.testing.assert_allclose(ours.loc[expected.index, f"rolled.{key}"], expected,
                                   rtol=1e-12, err_msg=key)


def test_short_schema_tables_are_read_and_noted(loaded):
    runs, notes = loaded
    short = pd.read_csv(ROLLED_SHORT)
    conv6 = runs[(runs["model"] == "conv6") & (runs["dataset"] == "tinyimagenet")]
    assert len(conv6) == 1
    row = conv6.iloc[0]
    assert row["method"] == "grasp" and row["accuracy"] == pytest.approx(0.3182)
    assert row["rolled.one_hop"] == pytest.approx(short["1-hop_nei"].mean(), rel=1e-12)
    assert row["rolled.cut_edges"] == pytest.approx(short["cut-edges"].mean(), rel=1e-12)
    assert row["rolled.k_core"] == pytest.approx(short["k-core"].mean(), rel=1e-12)
    assert np.isnan(row["rolled.disconnected_nodes"]) and np.isnan(row["rolled.two_hop"])
    channel = pd.read_csv(CHANNEL_SHORT)
    r32 = runs[(runs["model"] == "resnet32") & (runs["dataset"] == "tinyimagenet")].iloc[0]
    assert r32["rolled_channel.strength"] == pytest.approx(
        channel["avg_node_strength"].mean(), rel=1e-12)
    for name in (ROLLED_SHORT.name, CHANNEL_SHORT.name):
        assert any(name in n and "short" in n for n in notes), notes


def test_dataset_filter(loaded):
    for names in (["cifar100"], ["CIFAR-100"]):
        runs = load_published(FIXTURES, datasets=names)
        assert set(runs["dataset"]) == {"cifar100"} and len(runs) == 3
        assert set(runs["seed"]) == {0, 1, 2}
    both = load_published(FIXTURES, datasets=["cifar10", "tinyimagenet"])
    full, _ = loaded
    assert len(both) == len(full) - 3 and "cifar100" not in set(both["dataset"])


def test_dataset_filter_matching_nothing_is_an_error():
    """``load_published`` has a message for this case ("no published table found for
    dataset(s) ..."); a filter that selects no network must not give an empty table."""
    with pytest.raises(PublishedDataError, match=r"imagenet"):
        load_published(FIXTURES, datasets=["imagenet"])


def test_layer_table_dead_end_columns_are_not_imported(loaded, tmp_path):
    runs, _ = loaded
    assert not [c for c in runs.columns if c.split(".", 1)[-1] in
                ("sink_nodes", "source_nodes", "removable_out_edges", "removable_in_edges")
                and not c.startswith("mge.")]
    copy = tmp_path / "published"
    shutil.copytree(FIXTURES, copy)
    rolled = pd.read_csv(ROLLED_R20)
    rolled["sink_nodes"] = 5.0  # the released tables have them (constants subtracted)
    rolled["source_nodes"] = -3000.0
    rolled.to_csv(copy / "rolled" / ROLLED_R20.name, index=False)
    again = load_published(copy)
    for prefix in ("rolled.", "rolled_channel."):
        assert f"{prefix}sink_nodes" not in again.columns
        assert f"{prefix}source_nodes" not in again.columns
    assert "mge.sink_nodes" in again.columns


# ---------------------------------------------------------------------------------- errors
def _copy_without(tmp_path: Path, source: Path, column: str) -> Path:
    folder = tmp_path / f"without-{column}"
    folder.mkdir()
    pd.read_csv(source).drop(columns=column).to_csv(folder / source.name, index=False)
    return folder


def test_bad_folders(tmp_path):
    with pytest.raises(PublishedDataError, match="absent: not a folder"):
        load_published(tmp_path / "absent")
    with pytest.raises(PublishedDataError, match="no published table found"):
        load_published(tmp_path)
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    notes: list[str] = []
    with pytest.raises(PublishedDataError, match="no published table found"):
        load_published(tmp_path, notes=notes)
    assert issubclass(PublishedDataError, ValueError)


@pytest.mark.parametrize("source, column", [
    (MGE_FILE, "k-core"), (MGE_FILE, "spectral_radius"), (ROLLED_R20, "bridges"),
    (ROLLED_R20, "layer_sparsity"), (RAMANUJAN_R20, "no_params"), (ROLLED_SHORT, "cut-edges"),
])
def test_missing_column_names_the_file(tmp_path, source, column):
    folder = _copy_without(tmp_path, source, column)
    if source == RAMANUJAN_R20:  # a Ramanujan table is only read next to a layer table
        shutil.copy(ROLLED_R20, folder / "rolled-layers.csv")
    with pytest.raises(PublishedDataError) as info:
        load_published(folder)
    message = str(info.value)
    assert source.name in message
    assert f"missing column(s) ['{column}']" in message


def test_unrecognised_table_is_named_in_the_error(tmp_path):
    """Without one of the columns that identify an MGE table (here ``pruning``) the only table
    of the folder is ignored; the error must then say which file was ignored and why, not only
    "no published table found"."""
    folder = _copy_without(tmp_path, MGE_FILE, "pruning")
    notes: list[str] = []
    with pytest.raises(PublishedDataError) as info:
        load_published(folder, notes=notes)
    assert MGE_FILE.name in str(info.value)


def test_conflicting_rows_of_one_network(tmp_path):
    table = pd.read_csv(MGE_FILE)
    twice = table.duplicated(keep="last")
    table.loc[twice, "accuracy"] = 0.5  # same network key, other values
    folder = tmp_path / "conflict"
    folder.mkdir()
    table.to_csv(folder / "unrolled.csv", index=False)
    with pytest.raises(PublishedDataError, match=r"unrolled\.csv: 2 rows share a key"):
        load_published(folder)
    # the same network in two MGE tables
    other = tmp_path / "two"
    other.mkdir()
    shutil.copy(MGE_FILE, other / "a.csv")
    shutil.copy(MGE_FILE, other / "b.csv")
    with pytest.raises(PublishedDataError, match="more than one mge table"):
        load_published(other)


# ---------------------------------------------------------------------------------- import
@pytest.fixture(scope="module")
def synthetic_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("published-synthetic")
    table, raw = synthetic_mge_table()
    table.sample(frac=1.0, random_state=0).to_csv(folder / "mge-CIFAR-10.csv", index=False)
    return folder, raw


def test_import_published_end_to_end(synthetic_folder, tmp_path):
    src, raw = synthetic_folder
    out = tmp_path / "out"
    result = import_published(src, out, n_trials=1, jobs=1, progress=False)
    runs = pd.read_csv(out / "published_runs.csv")
    for column in ("sparsity", "method", "model", "dataset", "seed", "accuracy",
                   *(f"mge.{key}" for key, _ in MGE_COLUMNS.values())):
        assert column in runs.columns, column
    assert set(runs["method"]) == set(PAI_METHODS)  # rigl left out by default
    assert len(runs) == 2 * 7 * 3 * 2
    assert set(runs["model"]) == {"conv6", "resnet20"} and set(runs["dataset"]) == {"cifar10"}
    assert any("rigl" in note and "left out" in note for note in result.notes), result.notes
    assert "rigl" in result.summary
    # the de-normalised columns are the raw values the table was made of
    both = runs.merge(raw.assign(model=raw["model"].map(MODELS)),
                      on=["model", "method", "sparsity", "seed"], suffixes=("", "_raw"))
    assert len(both) == len(runs)
    for key, _ in MGE_COLUMNS.values():
        np.testing.assert_allclose(both[f"mge.{key}"], both[f"mge.{key}_raw"], rtol=1e-9,
                                   err_msg=key)
    comparison = pd.read_csv(out / "comparison.csv")
    assert list(comparison.columns) == COMPARISON_COLUMNS
    # every SPEC 6 set by default; those without columns in an MGE-only table are skipped
    assert set(comparison["feature_set"]) == {"sparsity", "mge", "mge+sparsity", "all"}
    for name in ("density", "ramanujan", "rolled", "rolled_channel", "paths"):
        assert any(f"feature set {name} skipped" in note for note in result.notes), name
    assert set(comparison["protocol"]) == {"random", "grouped", "leave-one-method-out",
                                           "leave-one-category-out"}
    predictions = pd.read_csv(out / "predictions.csv")
    by_id = runs.set_index("run_id")
    np.testing.assert_allclose(predictions["measured"],
                               by_id.loc[predictions["run_id"], "accuracy"])
    index = json.loads((out / "models" / "index.json").read_text())
    assert index["caveats"] == list(CAVEATS)
    assert {r["target"] for r in index["regressors"]} == {"accuracy"}
    assert index["config"]["lower_is_better"] is False
    head = comparison[(comparison["model"] == "mean") & (comparison["feature_set"] == "mge")]
    assert (head["r2"] > 0.5).all()  # the accuracy follows the spectral gap


def test_import_published_methods_option(synthetic_folder, tmp_path):
    src, _ = synthetic_folder
    result = import_published(src, tmp_path / "all", methods=None, n_trials=1, jobs=1,
                              progress=False, feature_sets=["mge"], folds=2)
    runs = pd.read_csv(tmp_path / "all" / "published_runs.csv")
    assert "rigl" in set(runs["method"]) and len(runs) == 2 * 8 * 3 * 2
    assert "rigl" in set(result.predictions["method"])
    with pytest.raises(ValueError, match=r"unknown method\(s\) \['magic'\]"):
        import_published(src, tmp_path / "x", methods=["snip", "magic"], progress=False)
    assert not (tmp_path / "x").exists()


CATEGORY_OF = {"snip": "pai-data", "grasp": "pai-data", "prospr": "pai-data",
               "synflow": "pai-data-free", "uniform": "pai-data-free", "er": "pai-data-free",
               "erk": "pai-data-free", "rigl": "dst", "itop": "dst", "snfs": "dst", "dsr": "dst"}


def test_every_network_is_labelled_with_its_category(loaded):
    runs, _ = loaded
    assert list(runs.columns[:7]) == ["run_id", "model", "dataset", "method", "category",
                                      "sparsity", "seed"]
    np.testing.assert_array_equal(runs["category"], runs["method"].map(CATEGORY_OF))
    assert set(runs.loc[runs["method"] == "rigl", "category"]) == {"dst"}


def test_all_methods_on_the_fixture_fit_every_method_and_category_out(tmp_path):
    """``--methods all`` on the extracts of the real tables: the rigl network is labelled
    ``dst``, held out alone by leave-one-method-out, and is the ``dst`` fold of
    leave-one-category-out; the separability of categories is reported."""
    out = tmp_path / "all"
    result = import_published(FIXTURES, out, methods="all", datasets=["cifar10"], n_trials=1,
                              jobs=1, progress=False, feature_sets=["mge"], folds=2)
    runs = pd.read_csv(out / "published_runs.csv")
    assert runs.loc[runs["method"] == "rigl", "category"].tolist() == ["dst"]
    predictions = result.predictions[(result.predictions["feature_set"] == "mge")
                                     & (result.predictions["model"] == "resnet20")]
    lomo = predictions[predictions["protocol"] == "leave-one-method-out"]
    assert lomo.groupby("fold")["method"].agg(set).to_dict() == {
        m: {m} for m in ("er", "prospr", "rigl", "snip")}
    loco = predictions[predictions["protocol"] == "leave-one-category-out"]
    assert loco.groupby("fold")["method"].agg(set).to_dict() == {
        "dst": {"rigl"}, "pai-data": {"prospr", "snip"}, "pai-data-free": {"er"}}
    assert any(note.startswith("Methods by category: dst: rigl; pai-data: prospr, snip; "
                               "pai-data-free: er") for note in result.notes), result.notes
    assert (out / "separability.csv").is_file()
    assert "**leave-one-category-out**" in result.summary


def test_all_methods_synthetic_categories_and_separability(synthetic_folder, tmp_path):
    src, _ = synthetic_folder
    result = import_published(src, tmp_path / "all", methods="all", n_trials=1, jobs=1,
                              progress=False, feature_sets=["mge"], folds=2)
    loco = result.predictions[(result.predictions["protocol"] == "leave-one-category-out")
                              & (result.predictions["feature_set"] == "mge")]
    held = loco.groupby("fold")["method"].agg(set).to_dict()
    assert held == {"dst": {"rigl"}, "pai-data": {"snip", "grasp", "prospr"},
                    "pai-data-free": {"synflow", "uniform", "er", "erk"}}
    table = result.separability
    cases = table[table["model"] != "mean"]
    # 2 models x 3 sparsities, 8 methods (2 seeds each), 3 categories
    assert len(cases[["model", "sparsity"]].drop_duplicates()) == 6
    assert set(cases.loc[cases["target"] == "method", "classes"]) == {8}
    assert set(cases.loc[cases["target"] == "category", "classes"]) <= {2, 3}


def test_default_methods_keep_the_pai_methods_present(tmp_path):
    """The default ``methods`` (the 7 PaI methods) selects the PaI networks of the tables; a
    table without some of them (e.g. one dataset's tables) must not fail as if the user had
    asked for a method that is not there."""
    src = tmp_path / "src"
    src.mkdir()
    table, _ = synthetic_mge_table(models=("CONV-6",), methods=("snip", "grasp", "er", "rigl"),
                                   sparsities=(0.8, 0.98))
    table.to_csv(src / "mge-CIFAR-100.csv", index=False)
    result = import_published(src, tmp_path / "out", n_trials=1, jobs=1, progress=False,
                              feature_sets=["mge"], folds=2)
    runs = pd.read_csv(tmp_path / "out" / "published_runs.csv")
    assert set(runs["method"]) == {"snip", "grasp", "er"}
    assert any("rigl" in note for note in result.notes)


# ---------------------------------------------------------------------------------- full data
@pytest.mark.skipif(not FULL.is_dir(), reason=f"published tables not found at {FULL}")
def test_full_cifar10_tables():
    import warnings

    notes: list[str] = []
    with warnings.catch_warnings():  # pandas warned of a fragmented frame on these tables
        warnings.simplefilter("error")
        runs = load_published(FULL, notes=notes)
    mge = runs[runs["mge.nodes"].notna()]
    assert len(mge) == 770
    assert set(PAI_METHODS) <= set(runs["method"])
    assert len(set(runs["method"]) & set(PAI_METHODS)) == 7
    assert set(runs["model"]) == {"conv6", "resnet20", "resnet32", "wrn28_2", "mobilenetv2"}
    assert set(runs["dataset"]) == {"cifar10"}
    np.testing.assert_allclose(mge["mge.one_hop"], 1 + mge["mge.edges"] / mge["mge.nodes"],
                               rtol=1e-12)
    assert runs["run_id"].is_unique


def _ramanujan_copy(tmp_path: Path, edit) -> Path:
    folder = tmp_path / "ramanujan-edit"
    shutil.copytree(FIXTURES, folder)
    table = pd.read_csv(RAMANUJAN_R20)
    edit(table)
    table.to_csv(folder / RAMANUJAN_R20.relative_to(FIXTURES), index=False)
    return folder


def test_infinite_degree_bounds_read_as_missing(tmp_path):
    er_start = _er_block().index[0]

    def edit(table):
        table.loc[er_start + 3, "degree_bound"] = -np.inf
        table.loc[er_start + 4, "iterative_degree_bound"] = -np.inf

    runs = load_published(_ramanujan_copy(tmp_path, edit))
    er = runs[(runs["model"] == "resnet20") & (runs["method"] == "er")].iloc[0]
    block = _er_block()
    finite = block["degree_bound"].drop(index=er_start + 3)
    assert er["ramanujan.delta_r_norm"] == pytest.approx(finite.mean(), rel=1e-12)
    finite = block["iterative_degree_bound"].drop(index=er_start + 4)
    assert er["ramanujan.iterative_delta_r_norm"] == pytest.approx(finite.mean(), rel=1e-12)


def test_ramanujan_network_without_a_match_is_left_out_and_noted(tmp_path):
    er_start = _er_block().index[0]

    def edit(table):
        table.loc[er_start + 5, "layer_sparsity"] += 0.01  # no layer table has these densities

    notes: list[str] = []
    runs = load_published(_ramanujan_copy(tmp_path, edit), notes=notes)
    by_method = runs[runs["model"] == "resnet20"].set_index("method")
    assert np.isnan(by_method.loc["er", "ramanujan.delta_r_norm"])
    assert np.isnan(by_method.loc["er", "density.global"])
    assert by_method.loc["er", "rolled.edges"] > 0  # the network itself is kept
    assert by_method[["ramanujan.delta_r_norm"]].drop(index=["er", "rigl"]).notna().all().all()
    assert any(RAMANUJAN_R20.name in n and "1 network(s) match no" in n for n in notes), notes


def _er_block() -> pd.DataFrame:
    rolled = pd.read_csv(ROLLED_R20)
    er = rolled[rolled["pruning_algorithm"] == "er"].sort_values("layer_id")
    (block,) = [b for b in _ramanujan_blocks() if np.allclose(
        b["layer_sparsity"].to_numpy(), er["layer_sparsity"].to_numpy(), atol=1e-9)]
    return block

