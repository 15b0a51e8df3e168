"""Read the per-network tables released with Cunegatti et al. (TMLR 2024) and fit them.

The tables (``shared/data/published/README.md``; the paper's repository ``graph_data/``) are
recognised by their columns, in any folder layout under the source folder:

- the MGE table (one row per network: ``pruning``, ``nodes``, ``edges``, ``1-hop_nei``, ...);
- rolled and rolled-channel layer tables (one row per layer; ``channel`` in the file name tells
  them apart), in either of the two released schemas: the usual one (``pruning_algorithm``,
  ``nei_one_hop``, ``bridges``, ...) and the short one of two Tiny-ImageNet tables
  (``pruning``, ``1-hop_nei``, ``cut-edges``, ..., values raw);
- Ramanujan layer tables (``iterative_degree_bound``, ``degree_bound``, ``layer_sparsity``).

They become one runs-like table, one row per network (model, dataset, method, sparsity, seed;
target ``accuracy``; ``sparsity`` is the nominal value), with the columns of
:mod:`sparsetopo.study.vocabulary`:

- ``mge.<topometrics key>``: de-normalised with the paper's divisors (the four means and the edge
  counts by ``edges``, the node counts and the component size by ``nodes``), so ``mge.*``
  holds raw topometrics as in ``study run``. Node counts include the public code's
  padding border of the input;
- ``rolled.<key>``, ``rolled_channel.<key>``: layer means (NaN skipped) of the layer columns
  that are topometrics on a BGE. The published ``sink_nodes`` / ``source_nodes`` are not
  (input-size dependent constants are subtracted) and the dead-end counts are 0 on a BGE: they
  are not imported;
- ``ramanujan.<key>``: layer means of the Ramanujan columns (``degree_bound`` = ``delta_r_norm``,
  ``iterative_degree_bound`` = IMDB; ``-inf`` bounds of near-empty layers read as NaN);
- ``density.<layer>`` (``layer_sparsity``, which is the density) and ``density.global`` =
  sum(no_weights) / sum(no_params), from the Ramanujan tables.

Irregularities handled (each counted in the notes): exact duplicate rows are dropped; the
Ramanujan tables have no method column, so their networks are joined to those of the layer
tables by content (model, dataset, sparsity, seed, accuracy and the sequence of layer
densities), never by position; networks that match nothing or more than one are left out.
There are no dense baselines, so the target is ``accuracy`` (within one (model, dataset)
``accuracy_drop`` = constant - ``accuracy``: the same ranking, the same R^2).

Every network is labelled with its method's category (``training.category``): the tables'
pruning-at-initialization methods are ``pai-data-free`` (``uniform``, ``er``, ``erk``,
``synflow``) or ``pai-data`` (``snip``, ``grasp``, ``prospr``), their dynamic sparse training
runs (``rigl``, ``itop``, ``snfs``, ``dsr``) ``dst``; so ``--methods all`` fits
leave-one-method-out over the 11 methods and leave-one-category-out over the 3 categories.

References
----------
Cunegatti, Farina, Bucur, Iacca (2024). Understanding Sparse Neural Networks from their
Topology via Multipartite Graph Representations. Transactions on Machine Learning Research.
Data: ``eliacunegatti/mge-snn``, ``graph_data/``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sparsetopo.errors import InputError, PublishedDataError
from sparsetopo.io import write_text
from sparsetopo.study.feature_sets import FeatureSetsArg
from sparsetopo.study.fit import DEFAULT_TRIALS, FitResult, fit_study
from sparsetopo.study.vocabulary import BGE_METRICS
from sparsetopo.training import category

MODEL_NAMES = {
    "CONV-6": "conv6",
    "Resnet-20": "resnet20",
    "Resnet-32": "resnet32",
    "Wide-Resnet-28-2": "wrn28_2",
    "MobileNetV2": "mobilenetv2",
}
DATASET_NAMES = {"CIFAR-10": "cifar10", "CIFAR-100": "cifar100", "tinyimagenet": "tinyimagenet",
                 "Tiny-ImageNet": "tinyimagenet"}
#: Pruning-at-initialization methods; the tables also hold dynamic sparse training runs.
PAI_METHODS = ("snip", "grasp", "synflow", "prospr", "uniform", "er", "erk")
#: The dynamic sparse training methods of the tables (category ``dst``).
DST_METHODS = ("rigl", "itop", "snfs", "dsr")

# published column -> (topometrics key, column it was divided by, or None when stored raw)
MGE_COLUMNS: dict[str, tuple[str, str | None]] = {
    "nodes": ("nodes", None),
    "edges": ("edges", None),
    "sink_nodes": ("sink_nodes", "nodes"),
    "source_nodes": ("source_nodes", "nodes"),
    "disc_nodes": ("disconnected_nodes", "nodes"),
    "r-out": ("removable_out_edges", "edges"),
    "r-in": ("removable_in_edges", "edges"),
    "1-hop_nei": ("one_hop", "edges"),
    "2-hop_nei": ("two_hop", "edges"),
    "motif": ("motifs", None),
    "avg_node_strength": ("strength", "edges"),
    "k-core": ("k_core", "edges"),
    "cut-edges": ("cut_edges", "edges"),
    "cut-nodes": ("cut_nodes", "edges"),
    "no_connected_components": ("connected_components", None),
    "mean_connected_components": ("mean_component_size", "nodes"),
    "spectral_gap": ("spectral_gap", None),
    "spectral_radius": ("spectral_radius", None),
}
# layer table column -> topometrics key (values raw, per layer), usual schema
LAYER_COLUMNS: dict[str, str] = {
    "nodes": "nodes",
    "edges": "edges",
    "disconnected_nodes": "disconnected_nodes",
    "nei_one_hop": "one_hop",
    "nei_two_hop": "two_hop",
    "motifs_count": "motifs",
    "strenght_all": "strength",
    "coreness_all": "k_core",
    "bridges": "cut_edges",
    "a_point": "cut_nodes",
    "weak_clusters": "connected_components",
    "mean_weak": "mean_component_size",
    # topometrics computes both on S = |A| + |A|^T: the weighted, undirected published variants
    "spectral_gap_weighted_undirected": "spectral_gap",
    "spectral_radius_laplacian_weighted_undirected": "spectral_radius",
}
# the short schema (two Tiny-ImageNet layer tables): MGE-style names, raw values
SHORT_LAYER_COLUMNS: dict[str, str] = {
    "nodes": "nodes",
    "edges": "edges",
    "1-hop_nei": "one_hop",
    "motif": "motifs",
    "avg_node_strength": "strength",
    "k-core": "k_core",
    "cut-edges": "cut_edges",
    "cut-nodes": "cut_nodes",
    "no_connected_components": "connected_components",
    "mean_connected_components": "mean_component_size",
    "spectral_gap": "spectral_gap",
    "spectral_radius": "spectral_radius",
}
assert set(LAYER_COLUMNS.values()) <= {"nodes", "edges", *BGE_METRICS}
# ramanujan layer column -> ramanujan key
RAMANUJAN_COLUMNS: dict[str, str] = {
    "iterative_spectral_gap": "iterative_spectral_gap",
    "iterative_degree_bound": "iterative_delta_r_norm",
    "degree_bound": "delta_r_norm",
    "layer_sparsity": "density",
}

NETWORK_KEY = ["model", "dataset", "method", "sparsity", "seed"]
#: Every published network was encoded at 32x32 (Tiny-ImageNet too: its MGE node counts equal
#: CIFAR's but for the 200 outputs).
PUBLISHED_IMAGE_SIZE = 32
_CONTENT_KEY = ["model", "dataset", "sparsity", "seed", "accuracy"]
_FORMATS = {
    "mge": "one row per network with columns accuracy, pruning, sparsity, model, dataset, seed, "
    + ", ".join(MGE_COLUMNS),
    "layers": "one row per layer with columns accuracy, pruning_algorithm (or pruning), "
    "sparsity, model, dataset, seed, layer_id, layer_name, layer_sparsity and either "
    + ", ".join(LAYER_COLUMNS) + " or " + ", ".join(SHORT_LAYER_COLUMNS),
    "ramanujan": "one row per layer with columns accuracy, sparsity, seed, model, dataset, "
    "layer_id, layer_name, " + ", ".join(RAMANUJAN_COLUMNS) + ", no_weights, no_params",
}




def _fail(path: Path, problem: str, kind: str) -> PublishedDataError:
    return PublishedDataError(
        f"{path}: {problem}. Expected {_FORMATS[kind]} (format of the tables released with "
        "Cunegatti et al. 2024, see shared/data/published/README.md)")


@dataclass
class _Tables:
    mge: list[pd.DataFrame] = field(default_factory=list)
    rolled: list[pd.DataFrame] = field(default_factory=list)
    rolled_channel: list[pd.DataFrame] = field(default_factory=list)
    ramanujan: list[tuple[Path, pd.DataFrame]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def dataset_name(name: str) -> str:
    """The project's name of a published dataset (``CIFAR-100`` -> ``cifar100``)."""
    name = str(name)
    return DATASET_NAMES.get(name, name.lower().replace("-", "").replace("_", ""))


def _kind(path: Path, columns: list[str]) -> str | None:
    """Which published table a CSV header is; None for a CSV that is none of them (no
    ``accuracy`` column). A table missing some of its columns is still recognised, so that
    reading it names the file and the missing columns."""
    cols = set(columns)
    if "accuracy" not in cols:
        return None
    if {"iterative_degree_bound", "degree_bound", "iterative_spectral_gap"} & cols:
        return "ramanujan"
    if "layer_id" in cols or "layer_name" in cols:
        return "rolled_channel" if "channel" in path.name.lower() else "rolled"
    return "mge"


def _read(path: Path, kind: str, required: list[str], notes: list[str],
          datasets: set[str] | None) -> pd.DataFrame:
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise _fail(path, f"cannot be read as CSV ({error})", kind) from error
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise _fail(path, f"missing column(s) {missing}", kind)
    if table.empty:
        raise _fail(path, "has no rows", kind)
    duplicates = int(table.duplicated().sum())
    if duplicates:
        notes.append(f"{path.name}: {duplicates} exact duplicate row(s) dropped.")
        table = table.drop_duplicates().reset_index(drop=True)
    keys = [c for c in ("model", "dataset", "sparsity", "seed", "pruning", "pruning_algorithm",
                        "layer_id") if c in table.columns]
    if table[keys].isna().any().any():
        raise _fail(path, "has empty values in the key columns " + ", ".join(keys), kind)
    for column in table.columns:
        if column in ("model", "dataset", "pruning", "pruning_algorithm", "layer_name"):
            continue
        try:
            table[column] = pd.to_numeric(table[column], errors="raise").astype(float)
        except (ValueError, TypeError) as error:
            raise _fail(path, f"column {column} is not numeric ({error})", kind) from error
    table = table.rename(columns={"pruning": "method", "pruning_algorithm": "method"})
    table["model"] = table["model"].astype(str).map(lambda m: MODEL_NAMES.get(m, m.lower()))
    table["dataset"] = table["dataset"].astype(str).map(dataset_name)
    if "method" in table.columns:
        table["method"] = table["method"].astype(str).str.lower()
    table["seed"] = table["seed"].astype(np.int64)
    if datasets is not None:
        table = table[table["dataset"].isin(datasets)].reset_index(drop=True)
    return table


def _find_tables(src: Path, datasets: set[str] | None) -> _Tables:
    tables = _Tables()
    for path in sorted(p for p in src.rglob("*.csv") if p.is_file()):
        try:
            header = list(pd.read_csv(path, nrows=0).columns)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
            tables.notes.append(f"{path.name}: not a CSV table, ignored.")
            continue
        kind = _kind(path, header)
        if kind is None:
            tables.notes.append(f"{path.name}: not a published table (columns {header[:5]}...), "
                                "ignored.")
            continue
        if kind == "mge":
            table = _read(path, "mge", ["accuracy", *NETWORK_KEY[:2], "pruning", "sparsity",
                                        "seed", *MGE_COLUMNS], tables.notes, datasets)
            _check_unique(table, NETWORK_KEY, path, "mge")
            tables.mge.append(_mge_features(table))
        elif kind == "ramanujan":
            required = ["accuracy", "model", "dataset", "sparsity", "seed", "layer_id",
                        "layer_name", *RAMANUJAN_COLUMNS, "no_weights", "no_params"]
            table = _read(path, "ramanujan", required, tables.notes, datasets)
            tables.ramanujan.append((path, table))
        else:
            short = "pruning" in header and "nei_one_hop" not in header
            columns = SHORT_LAYER_COLUMNS if short else LAYER_COLUMNS
            required = ["accuracy", "pruning" if short else "pruning_algorithm", "sparsity",
                        "model", "dataset", "seed", "layer_id", "layer_name", "layer_sparsity",
                        *columns]
            table = _read(path, "layers", required, tables.notes, datasets)
            if short:
                tables.notes.append(f"{path.name}: short layer-table schema (MGE-style names, "
                                    "raw values) read; it lacks disconnected_nodes and "
                                    "two_hop.")
            _check_unique(table, NETWORK_KEY + ["layer_id"], path, "layers")
            getattr(tables, kind).append(_layer_features(table, columns, kind, path))
    return tables


def _check_unique(table: pd.DataFrame, key: list[str], path: Path, kind: str) -> None:
    duplicated = table.duplicated(key, keep=False)
    if duplicated.any():
        example = table.loc[duplicated, key].iloc[0].to_dict()
        raise _fail(path, f"{int(duplicated.sum())} rows share a key {key} but differ in "
                    f"their values, e.g. {example}", kind)


def _mge_features(table: pd.DataFrame) -> pd.DataFrame:
    features = {f"mge.{key}": table[column] * (table[divisor] if divisor else 1.0)
                for column, (key, divisor) in MGE_COLUMNS.items()}
    return pd.concat([table[[*NETWORK_KEY, "accuracy"]], pd.DataFrame(features)], axis=1)


def _network_accuracy(table: pd.DataFrame, key: list[str], path: Path, kind: str) -> pd.Series:
    per_network = table.groupby(key, sort=True)["accuracy"]
    if (per_network.nunique(dropna=False) > 1).any():
        raise _fail(path, "layers of one network carry different accuracies", kind)
    return per_network.first()


def _layer_features(table: pd.DataFrame, columns: dict[str, str], kind: str, path: Path
                    ) -> pd.DataFrame:
    """Per network: accuracy, layer means and the density signature used to join the
    Ramanujan tables (``_signature``)."""
    accuracy = _network_accuracy(table, NETWORK_KEY, path, "layers")
    renamed = table[NETWORK_KEY + list(columns)].rename(
        columns={c: f"{kind}.{key}" for c, key in columns.items()})
    means = renamed.groupby(NETWORK_KEY, sort=True).mean()
    signature = _signature(table, NETWORK_KEY)
    return pd.concat([accuracy, means, signature], axis=1).reset_index()


def _signature(table: pd.DataFrame, key: list[str]) -> pd.Series:
    """Per value of ``key``: the layer densities in layer order, to 1e-9, as a string."""
    ordered = table.sort_values([*key, "layer_id"], kind="stable")
    return ordered.groupby(key, sort=True)["layer_sparsity"].agg(
        lambda s: ",".join(f"{v:.9f}" for v in s)).rename("_signature")


def _networks_in_file_order(table: pd.DataFrame) -> pd.Series:
    """Network number of every row of a Ramanujan table: the rows of one network follow each
    other, layer ids increasing; a new network starts where the id does not increase or the
    model, dataset, sparsity, seed or accuracy changes. (The number only delimits networks
    inside the file; they are matched to other tables by content.)"""
    key = table[_CONTENT_KEY]
    changed = (key != key.shift()).any(axis=1)
    restarted = table["layer_id"].diff().fillna(-1) <= 0
    return (changed | restarted).cumsum().rename("_net")


def _join_ramanujan(path: Path, table: pd.DataFrame, references: pd.DataFrame,
                    notes: list[str]) -> pd.DataFrame:
    """The Ramanujan rows with the method of the layer-table network of the same content
    (model, dataset, sparsity, seed, accuracy and layer densities); networks that match none
    or several are left out (counted in ``notes``)."""
    table = table.assign(_net=_networks_in_file_order(table))
    content = table.groupby("_net", sort=True)[_CONTENT_KEY].first()
    content["_signature"] = _signature(table, ["_net"])
    candidates = content.reset_index().merge(
        references[[*_CONTENT_KEY, "_signature", "method"]], on=[*_CONTENT_KEY, "_signature"],
        how="left")
    count = candidates.groupby("_net")["method"].count()
    ambiguous, unmatched = int((count > 1).sum()), int((count == 0).sum())
    if ambiguous or unmatched:
        notes.append(f"{path.name}: {unmatched} network(s) match no layer-table network and "
                     f"{ambiguous} match several (same model, dataset, sparsity, seed, "
                     "accuracy and layer densities); left out.")
    unique = candidates[candidates["_net"].isin(count.index[count == 1])]
    return table.merge(unique[["_net", "method"]], on="_net", how="inner").drop(columns="_net")


def _ramanujan_features(path: Path, table: pd.DataFrame, references: pd.DataFrame,
                        notes: list[str]) -> pd.DataFrame:
    table = _join_ramanujan(path, table, references, notes)
    _check_unique(table, NETWORK_KEY + ["layer_id"], path, "ramanujan")
    metrics = list(RAMANUJAN_COLUMNS)
    # -inf degree bounds appear on layers with 2-7 weights (bound 0): undefined, NaN (docs/metrics.md)
    table[metrics] = table[metrics].where(np.isfinite(table[metrics]))
    grouped = table.groupby(NETWORK_KEY, sort=True)
    means = grouped[metrics].mean().rename(
        columns={c: "ramanujan." + key for c, key in RAMANUJAN_COLUMNS.items()})
    layers = table.pivot(index=NETWORK_KEY, columns="layer_name", values="layer_sparsity")
    layers.columns = [f"density.{name}" for name in layers.columns]
    sums = grouped[["no_weights", "no_params"]].sum()
    overall = (sums["no_weights"] / sums["no_params"]).rename("density.global")
    accuracy = grouped["accuracy"].first()
    return pd.concat([accuracy, means, layers, overall], axis=1).reset_index()


def _concat_unique(frames: list[pd.DataFrame], kind: str) -> pd.DataFrame:
    table = pd.concat(frames, ignore_index=True)
    duplicated = table.duplicated(NETWORK_KEY, keep=False)
    if duplicated.any():
        example = table.loc[duplicated, NETWORK_KEY].iloc[0].to_dict()
        raise PublishedDataError(f"the same network appears in more than one {kind} table, "
                                 f"e.g. {example}")
    return table


def _merge(frames: list[tuple[str, pd.DataFrame]]) -> pd.DataFrame:
    merged: pd.DataFrame | None = None
    origin = ""
    for source, frame in frames:
        frame = frame.drop(columns=["_signature"], errors="ignore")
        if merged is None:
            merged, origin = frame, source
            continue
        merged = merged.merge(frame, on=NETWORK_KEY, how="outer", suffixes=("", "__new"))
        both = merged["accuracy"].notna() & merged["accuracy__new"].notna()
        clash = both & ~np.isclose(merged["accuracy"], merged["accuracy__new"], rtol=0, atol=1e-9)
        if clash.any():
            example = merged.loc[clash, NETWORK_KEY].iloc[0].to_dict()
            raise PublishedDataError(f"{source} and {origin} give different accuracies for "
                                     f"{int(clash.sum())} network(s), e.g. {example}")
        merged["accuracy"] = merged["accuracy"].fillna(merged.pop("accuracy__new"))
        origin = f"{origin} / {source}"
    assert merged is not None
    return merged


def method_category(method: str) -> str | None:
    """``training.category`` of a published method; None for a method it does not know."""
    try:
        return category(method)
    except InputError:
        return None


def load_published(src_dir: str | os.PathLike, *, datasets: Sequence[str] | None = None,
                   notes: list[str] | None = None) -> pd.DataFrame:
    """One row per published network: ``run_id``, ``model``, ``dataset``, ``method``,
    ``category`` (of the method; empty for a method the toolkit does not know), ``sparsity``,
    ``seed``, ``accuracy`` and the feature columns of the module docstring (outer
    join of every table found under ``src_dir``; features a network lacks are NaN).
    ``datasets`` keeps only those (names as ``cifar10``, ``cifar100``, ``tinyimagenet``);
    ``notes`` (a list) receives what was dropped or read differently, and why.

    Raises :class:`PublishedDataError` (a ``ValueError``) naming the file and the expected format
    when a table is unreadable, lacks columns, has conflicting rows, or disagrees with another.
    """
    src = Path(src_dir)
    if not src.is_dir():
        raise PublishedDataError(
            f"{src}: not a folder; expected a folder with the tables released with Cunegatti et "
            "al. 2024 (the MGE table, rolled, rolled-channel and Ramanujan layer tables)")
    wanted = None if datasets is None else {dataset_name(d) for d in datasets}
    tables = _find_tables(src, wanted)
    notes = notes if notes is not None else []
    notes += tables.notes
    frames: list[tuple[str, pd.DataFrame]] = []
    if tables.mge:
        frames.append(("mge tables", _concat_unique(tables.mge, "mge")))
    layer_networks = []
    for kind in ("rolled", "rolled_channel"):
        found = getattr(tables, kind)
        if found:
            frame = _concat_unique(found, kind)
            frames.append((f"{kind} tables", frame))
            layer_networks.append(frame[[*NETWORK_KEY, "accuracy", "_signature"]])
    if tables.ramanujan:
        if not layer_networks:
            notes.append("Ramanujan tables ignored: they carry no pruning-method column and no "
                         "rolled or rolled-channel table is there to join them to.")
        else:
            references = pd.concat(layer_networks).drop_duplicates(
                [*NETWORK_KEY, "accuracy", "_signature"])
            parts = [_ramanujan_features(p, t, references, notes) for p, t in tables.ramanujan]
            frames.append(("ramanujan tables", _concat_unique(parts, "ramanujan")))
    if not frames:
        raise PublishedDataError(
            f"{src}: no published table found" + (f" for dataset(s) {sorted(wanted)}" if wanted
                                                 else "") +
            "; expected the MGE table and/or rolled, rolled-channel and Ramanujan layer tables")
    runs = _merge(frames).sort_values(NETWORK_KEY, kind="stable").reset_index(drop=True)
    if runs.empty:
        raise PublishedDataError(
            f"{src}: no published network for dataset(s) {', '.join(sorted(wanted or []))}; "
            f"the tables hold {', '.join(_datasets_in(src)) or 'none'}")
    run_id = pd.Series([f"published/{d}/{m}/{meth}/{s:g}/{k}" for m, d, meth, s, k in
                        runs[NETWORK_KEY].itertuples(index=False)], name="run_id")
    image_size = pd.Series(PUBLISHED_IMAGE_SIZE, index=runs.index, name="image_size")
    categories = runs["method"].map({m: method_category(m) for m in runs["method"].unique()})
    runs = pd.concat([run_id, runs, image_size, categories.rename("category")],
                     axis=1)  # one concat: no fragmented frame
    features = sorted(c for c in runs.columns if "." in c)
    return runs[["run_id", *NETWORK_KEY[:3], "category", *NETWORK_KEY[3:], "accuracy",
                 "image_size", *features]]


def _datasets_in(src: Path) -> list[str]:
    found = set()
    for path in src.rglob("*.csv"):
        try:
            column = pd.read_csv(path, usecols=["dataset"])["dataset"]
        except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
            continue
        found |= {dataset_name(d) for d in column.dropna().unique()}
    return sorted(found)


#: Shown with every regressor fitted on published data (``sparsetopo predict``).
CAVEATS = (
    "Fitted on the published tables (Cunegatti et al. 2024), whose metrics come from the "
    "paper's public code: its MGE input includes the first layer's padding border, and its MGEs "
    "of networks with stride-2 convolutions (resnet20, resnet32, wrn28_2, mobilenetv2) contain "
    "misplaced edges (docs/encodings.md); this project's features of those networks differ slightly.",
    "Target: the trained accuracy of the published runs (160 epochs, paper settings), not an "
    "accuracy drop; sparsity is the nominal value.",
)


def import_published(
    src_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    datasets: Sequence[str] | None = None,
    methods: Sequence[str] | str | None = "pai",
    folds: int = 5,
    n_trials: int = DEFAULT_TRIALS,
    seed: int = 0,
    jobs: int | None = None,
    pooled: bool = False,
    progress: bool = True,
    feature_sets: FeatureSetsArg = None,
) -> FitResult:
    """:func:`load_published`, then :func:`sparsetopo.study.fit.fit_study` with target
    ``accuracy`` (higher is better). ``methods``: ``"pai"`` (default) keeps the
    pruning-at-initialization methods (:data:`PAI_METHODS`) the tables hold, ``"all"`` every
    method (the dynamic sparse training runs of :data:`DST_METHODS` included, category
    ``dst``; also ``None``), a list exactly those (each must be present). Every protocol of
    the fit runs, leave-one-category-out included where 2 categories are present, and the
    separability of methods and categories. Also writes ``out_dir/published_runs.csv``."""
    notes: list[str] = []
    runs = load_published(src_dir, datasets=datasets, notes=notes)
    present = sorted(runs["method"].unique())
    if isinstance(methods, str) and methods not in ("pai", "all"):
        methods = [methods]
    if methods == "pai":
        wanted = [m for m in PAI_METHODS if m in present]
        if not wanted:
            raise PublishedDataError(f"{src_dir}: no pruning-at-initialization run "
                                     f"({', '.join(PAI_METHODS)}); the tables hold "
                                     f"{', '.join(present)} (use --methods)")
    elif methods is None or methods == "all":
        wanted = present
    else:
        wanted = [str(m).lower() for m in methods]
        unknown = sorted(set(wanted) - set(present))
        if unknown:
            raise PublishedDataError(f"unknown method(s) {unknown}; the published tables have "
                                     f"{', '.join(present)}")
    dropped = runs[~runs["method"].isin(wanted)]
    if len(dropped):
        notes.append(f"{len(dropped)} network(s) of other methods left out "
                     f"({', '.join(sorted(dropped['method'].unique()))}); opt in with "
                     "--methods.")
    runs = runs[runs["method"].isin(wanted)].reset_index(drop=True)
    counts = runs.groupby(runs["category"].fillna("none"))["method"].agg(
        lambda m: ", ".join(sorted(m.unique())))
    notes.append("Methods by category: " + "; ".join(f"{c}: {m}" for c, m in counts.items())
                 + ".")
    notes += [
        "Published tables (Cunegatti et al. 2024): no dense baseline, so the target is accuracy "
        "(higher is better); within one (model, dataset) the accuracy drop is a constant minus "
        "the accuracy.",
        "Published metrics were computed on initialization weights with the public code (MGE "
        "input with padding border; misplaced edges after stride-2 convolutions).",
    ]
    out = Path(out_dir)
    write_text(out / "published_runs.csv", runs.to_csv(index=False))
    return fit_study(runs, out, target="accuracy", feature_sets=feature_sets, folds=folds,
                     n_trials=n_trials, seed=seed, jobs=jobs, pooled=pooled, progress=progress,
                     extra_notes=notes, caveats=CAVEATS)
