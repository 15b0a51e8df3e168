"""Read the per-network tables released with Cunegatti et al. (TMLR 2024) and fit them.

Expected files in the source folder (format: ``shared/data/published/README.md``):

- ``mge-<DATASET>.csv``: one row per network, MGE topometrics;
- ``rolled-<DATASET>-<MODEL>.csv`` and ``rolled-channel-<DATASET>-<MODEL>.csv``: one row per
  layer, topometrics of the rolled / rolled-channel BGE;
- ``ramanujan-<DATASET>-<MODEL>.csv``: one row per layer, Ramanujan metrics and layer density.

They become one runs-like table (one row per network, key model, dataset, method, sparsity,
seed; target ``accuracy``) with the feature prefixes of :mod:`sparsetopo.study.features_sets`:

- ``mge.<SPEC 4 key>``: the README's column mapping; the values stored divided by ``nodes`` or
  ``edges`` are multiplied back, so ``mge.*`` holds the raw SPEC 4 quantities (as in runs from
  ``study run``). Node counts include the public code's padding border of the input.
- ``rolled.<key>``, ``rolled_channel.<key>``: layer means (NaN skipped) of the columns in
  :data:`LAYER_TOPO_COLUMNS`, renamed to SPEC 4 keys; the other ~30 published columns
  (assortativity, directed spectra, degree statistics, ...) are not SPEC 4 metrics and are left
  out. Caveat: the published ``sink_nodes``, ``source_nodes``, ``lost_out_edges`` and
  ``lost_in_edges`` do not follow SPEC 4 on a BGE (where sinks and sources cannot exist; the
  published ``source_nodes`` are even negative); they are kept under the SPEC names as released.
- ``ramanujan.<key>``: layer means (NaN skipped) of :data:`RAMANUJAN_COLUMNS`; the published
  ``degree_bound`` is -inf on a few layers with 2-7 weights, read as NaN (undefined, SPEC 5).
- ``density.<layer name>`` (published ``layer_sparsity``, which is the density) and
  ``density.global`` = sum(no_weights) / sum(no_params), from the Ramanujan tables.

The Ramanujan tables have no pruning-method column: their rows are matched by position to the
rolled (else rolled-channel) table of the same model, after checking that accuracy, sparsity,
seed, layer id, layer name and layer density agree row by row.

There are no dense baselines, so the target is ``accuracy`` (within one model and dataset,
``accuracy_drop`` = constant - ``accuracy``: the same ranking, the same R^2 per model).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sparsetopo.study.features_sets import FeatureSetsArg
from sparsetopo.study.fit import FitResult, fit_study, write_atomic

MODEL_NAMES = {
    "CONV-6": "conv6",
    "Resnet-20": "resnet20",
    "Resnet-32": "resnet32",
    "Wide-Resnet-28-2": "wrn28_2",
    "MobileNetV2": "mobilenetv2",
}
DATASET_NAMES = {"CIFAR-10": "cifar10", "CIFAR-100": "cifar100", "Tiny-ImageNet": "tinyimagenet"}

# published column -> (SPEC 4 key, column it was divided by, or None when stored raw)
MGE_COLUMNS: dict[str, tuple[str, str | None]] = {
    "nodes": ("nodes", None),
    "edges": ("edges", None),
    "sink_nodes": ("sink_nodes", "nodes"),
    "source_nodes": ("source_nodes", "nodes"),
    "disc_nodes": ("disconnected_nodes", "nodes"),
    "r-out": ("removable_out_edges", "edges"),
    "r-in": ("removable_in_edges", "edges"),
    "1-hop_nei": ("one_hop", "nodes"),
    "2-hop_nei": ("two_hop", "nodes"),
    "motif": ("motifs", None),
    "avg_node_strength": ("strength", "nodes"),
    "k-core": ("k_core", "nodes"),
    "cut-edges": ("cut_edges", "edges"),
    "cut-nodes": ("cut_nodes", "edges"),
    "no_connected_components": ("connected_components", None),
    "mean_connected_components": ("mean_component_size", "nodes"),
    "spectral_gap": ("spectral_gap", None),
    "spectral_radius": ("spectral_radius", None),
}
# rolled / rolled-channel layer column -> SPEC 4 key (values raw, per layer)
LAYER_TOPO_COLUMNS: dict[str, str] = {
    "nodes": "nodes",
    "edges": "edges",
    "sink_nodes": "sink_nodes",
    "source_nodes": "source_nodes",
    "disconnected_nodes": "disconnected_nodes",
    "lost_out_edges": "removable_out_edges",
    "lost_in_edges": "removable_in_edges",
    "nei_one_hop": "one_hop",
    "nei_two_hop": "two_hop",
    "motifs_count": "motifs",
    "strenght_all": "strength",
    "coreness_all": "k_core",
    "bridges": "cut_edges",
    "a_point": "cut_nodes",
    "weak_clusters": "connected_components",
    "mean_weak": "mean_component_size",
    # SPEC 4 computes both on S = |A| + |A|^T: the weighted, undirected published variants
    "spectral_gap_weighted_undirected": "spectral_gap",
    "spectral_radius_laplacian_weighted_undirected": "spectral_radius",
}
# ramanujan layer column -> SPEC 5 key
RAMANUJAN_COLUMNS: dict[str, str] = {
    "iterative_spectral_gap": "iterative_spectral_gap",
    "iterative_degree_bound": "iterative_delta_r_norm",
    "degree_bound": "delta_r_norm",
    "layer_sparsity": "density",
}

NETWORK_KEY = ["model", "dataset", "method", "sparsity", "seed"]
_LAYER_KEY = ["layer_id", "layer_name"]
_FORMATS = {
    "mge": "one row per network with columns accuracy, pruning, sparsity, model, dataset, seed, "
    + ", ".join(MGE_COLUMNS),
    "rolled": "one row per layer with columns accuracy, pruning_algorithm, sparsity, model, "
    "dataset, seed, layer_id, layer_name, " + ", ".join(LAYER_TOPO_COLUMNS),
    "ramanujan": "one row per layer with columns accuracy, sparsity, seed, model, dataset, "
    "layer_id, layer_name, " + ", ".join(RAMANUJAN_COLUMNS) + ", no_weights, no_params",
}
_FORMATS["rolled_channel"] = _FORMATS["rolled"]
_PREFIX = {
    "mge": "mge.",
    "rolled": "rolled.",
    "rolled_channel": "rolled_channel.",
    "ramanujan": "ramanujan.",
}


class PublishedDataError(ValueError):
    """A published table is missing, unreadable or not in the expected format."""


def _fail(path: Path, problem: str, kind: str) -> PublishedDataError:
    return PublishedDataError(
        f"{path}: {problem}. Expected {_FORMATS[kind]} (format of the tables released with "
        "Cunegatti et al. 2024, see shared/data/published/README.md)"
    )


def _kind(path: Path) -> str | None:
    name = path.name
    if name.startswith("mge-"):
        return "mge"
    if name.startswith("rolled-channel-"):
        return "rolled_channel"
    if name.startswith("rolled-"):
        return "rolled"
    if name.startswith("ramanujan-"):
        return "ramanujan"
    return None


def _read(path: Path, kind: str, key_columns: list[str], value_columns: list[str]) -> pd.DataFrame:
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise _fail(path, f"cannot be read as CSV ({error})", kind) from error
    missing = [c for c in key_columns + value_columns if c not in table.columns]
    if missing:
        raise _fail(path, f"missing column(s) {missing}", kind)
    if table.empty:
        raise _fail(path, "has no rows", kind)
    if table[key_columns].isna().any().any():
        raise _fail(path, "has empty values in the key columns " + ", ".join(key_columns), kind)
    numeric = [c for c in ["accuracy", "sparsity", "seed", *value_columns] if c in table.columns]
    for column in numeric:
        try:
            table[column] = pd.to_numeric(table[column], errors="raise").astype(float)
        except (ValueError, TypeError) as error:
            raise _fail(path, f"column {column} is not numeric ({error})", kind) from error
    table = table.rename(columns={"pruning": "method", "pruning_algorithm": "method"})
    table["model"] = table["model"].astype(str).map(lambda m: MODEL_NAMES.get(m, m.lower()))
    table["dataset"] = table["dataset"].astype(str).map(lambda d: DATASET_NAMES.get(d, d.lower()))
    if "method" in table.columns:
        table["method"] = table["method"].astype(str).str.lower()
    table["seed"] = table["seed"].astype(np.int64)
    return table


def _check_unique(table: pd.DataFrame, key: list[str], path: Path, kind: str) -> None:
    duplicated = table.duplicated(key, keep=False)
    if duplicated.any():
        example = table.loc[duplicated, key].iloc[0].to_dict()
        raise _fail(path, f"{int(duplicated.sum())} rows share a key {key}, e.g. {example}", kind)


def _network_accuracy(table: pd.DataFrame, path: Path, kind: str) -> pd.Series:
    per_network = table.groupby(NETWORK_KEY, sort=True)["accuracy"]
    if (per_network.nunique(dropna=False) > 1).any():
        raise _fail(path, "layers of one network carry different accuracies", kind)
    return per_network.first()


def _load_mge(path: Path) -> pd.DataFrame:
    table = _read(
        path, "mge", ["model", "dataset", "pruning", "sparsity", "seed"], ["accuracy", *MGE_COLUMNS]
    )
    _check_unique(table, NETWORK_KEY, path, "mge")
    features = {
        f"mge.{key}": table[column] * (table[divisor] if divisor else 1.0)
        for column, (key, divisor) in MGE_COLUMNS.items()
    }
    return pd.concat([table[[*NETWORK_KEY, "accuracy"]], pd.DataFrame(features)], axis=1)


def _load_layer_topo(path: Path, kind: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-network layer means, the layer table itself for aligning Ramanujan rows)."""
    table = _read(
        path,
        kind,
        ["model", "dataset", "pruning_algorithm", "sparsity", "seed", *_LAYER_KEY],
        ["accuracy", "layer_sparsity", *LAYER_TOPO_COLUMNS],
    )
    _check_unique(table, NETWORK_KEY + ["layer_id"], path, kind)
    accuracy = _network_accuracy(table, path, kind)
    renamed = table[NETWORK_KEY + list(LAYER_TOPO_COLUMNS)].rename(
        columns={c: _PREFIX[kind] + key for c, key in LAYER_TOPO_COLUMNS.items()}
    )
    means = renamed.groupby(NETWORK_KEY, sort=True).mean()
    return pd.concat([accuracy, means], axis=1).reset_index(), table


def _attach_methods(
    table: pd.DataFrame, path: Path, references: list[tuple[Path, pd.DataFrame]]
) -> pd.DataFrame:
    """Method of each Ramanujan row, taken from the row at the same position of the layer table
    of the same (model, dataset) (rolled first, else rolled-channel), after verifying the rows
    describe the same layer of the same network."""
    parts = []
    for (model, dataset), rows in table.groupby(["model", "dataset"], sort=True):
        candidates = [
            (p, r[(r["model"] == model) & (r["dataset"] == dataset)]) for p, r in references
        ]
        candidates = [(p, r) for p, r in candidates if len(r)]
        if not candidates:
            raise _fail(
                path,
                f"no rolled or rolled-channel table for {model} on {dataset}: the "
                "Ramanujan tables carry no pruning-method column, so their rows are "
                "matched by position to that table",
                "ramanujan",
            )
        ref_path, ref = candidates[0]
        same = (
            len(ref) == len(rows)
            and all(
                np.array_equal(rows[c].to_numpy(), ref[c].to_numpy())
                for c in ["accuracy", "sparsity", "seed", *_LAYER_KEY]
            )
            and np.allclose(
                rows["layer_sparsity"], ref["layer_sparsity"], rtol=0, atol=1e-9, equal_nan=True
            )
        )
        if not same:
            raise _fail(
                path,
                f"rows of {model} on {dataset} do not match {ref_path.name} row by "
                "row (accuracy, sparsity, seed, layer_id, layer_name, layer_sparsity); "
                "the Ramanujan tables carry no pruning-method column, so their rows are "
                "matched by position",
                "ramanujan",
            )
        parts.append(rows.assign(method=ref["method"].to_numpy()))
    return pd.concat(parts)


def _load_ramanujan(path: Path, references: list[tuple[Path, pd.DataFrame]]) -> pd.DataFrame:
    table = _read(
        path,
        "ramanujan",
        ["model", "dataset", "sparsity", "seed", *_LAYER_KEY],
        ["accuracy", *RAMANUJAN_COLUMNS, "no_weights", "no_params"],
    )
    table = _attach_methods(table, path, references)
    _check_unique(table, NETWORK_KEY + ["layer_id"], path, "ramanujan")
    _check_unique(table, NETWORK_KEY + ["layer_name"], path, "ramanujan")
    accuracy = _network_accuracy(table, path, "ramanujan")
    # -inf degree bounds appear on layers with 2-7 weights; SPEC 5 leaves those undefined (NaN)
    metrics = list(RAMANUJAN_COLUMNS)
    table[metrics] = table[metrics].where(np.isfinite(table[metrics]))
    grouped = table.groupby(NETWORK_KEY, sort=True)
    means = (
        grouped[list(RAMANUJAN_COLUMNS)]
        .mean()
        .rename(columns={c: "ramanujan." + key for c, key in RAMANUJAN_COLUMNS.items()})
    )
    layers = table.pivot(index=NETWORK_KEY, columns="layer_name", values="layer_sparsity")
    layers.columns = [f"density.{name}" for name in layers.columns]
    sums = grouped[["no_weights", "no_params"]].sum()
    overall = (sums["no_weights"] / sums["no_params"]).rename("density.global")
    return pd.concat([accuracy, means, layers, overall], axis=1).reset_index()


def _merge(frames: list[tuple[str, pd.DataFrame]]) -> pd.DataFrame:
    merged: pd.DataFrame | None = None
    origin = ""
    for source, frame in frames:
        if merged is None:
            merged, origin = frame, source
            continue
        merged = merged.merge(frame, on=NETWORK_KEY, how="outer", suffixes=("", "__new"))
        both = merged["accuracy"].notna() & merged["accuracy__new"].notna()
        clash = both & ~np.isclose(merged["accuracy"], merged["accuracy__new"], rtol=0, atol=1e-9)
        if clash.any():
            example = merged.loc[clash, NETWORK_KEY].iloc[0].to_dict()
            raise PublishedDataError(
                f"{source} and {origin} give different accuracies for {int(clash.sum())} "
                f"network(s), e.g. {example}"
            )
        merged["accuracy"] = merged["accuracy"].fillna(merged.pop("accuracy__new"))
        origin = f"{origin} / {source}"
    assert merged is not None
    return merged


def load_published(src_dir: str | os.PathLike) -> pd.DataFrame:
    """One row per published network: ``run_id``, ``model``, ``dataset``, ``method``,
    ``sparsity``, ``seed``, ``accuracy`` and the feature columns described in the module
    docstring (outer join of every table found; features a network lacks are NaN).

    Raises :class:`PublishedDataError` (a ``ValueError``) naming the file and the expected format
    when a table is unreadable, lacks columns, has duplicate keys, or disagrees with another.
    """
    src = Path(src_dir)
    if not src.is_dir():
        raise PublishedDataError(
            f"{src}: not a folder; expected a folder with the tables released with Cunegatti "
            "et al. 2024: mge-<DATASET>.csv, rolled-<DATASET>-<MODEL>.csv, "
            "rolled-channel-<DATASET>-<MODEL>.csv, ramanujan-<DATASET>-<MODEL>.csv"
        )
    files: dict[str, list[Path]] = {"mge": [], "rolled": [], "rolled_channel": [], "ramanujan": []}
    for path in sorted(src.glob("*.csv")):
        kind = _kind(path)
        if kind is not None:
            files[kind].append(path)
    if not any(files.values()):
        raise PublishedDataError(
            f"{src}: no published table found; expected mge-<DATASET>.csv, "
            "rolled-<DATASET>-<MODEL>.csv, rolled-channel-<DATASET>-<MODEL>.csv or "
            "ramanujan-<DATASET>-<MODEL>.csv"
        )

    frames: list[tuple[str, pd.DataFrame]] = []
    references: list[tuple[Path, pd.DataFrame]] = []
    if files["mge"]:
        frames.append(
            (
                "mge tables",
                _concat_unique([_load_mge(p) for p in files["mge"]], files["mge"], "mge"),
            )
        )
    for kind in ("rolled", "rolled_channel"):
        loaded = [_load_layer_topo(p, kind) for p in files[kind]]
        references += [(p, layers) for p, (_, layers) in zip(files[kind], loaded, strict=True)]
        if loaded:
            frames.append(
                (f"{kind} tables", _concat_unique([m for m, _ in loaded], files[kind], kind))
            )
    if files["ramanujan"]:
        frames.append(
            (
                "ramanujan tables",
                _concat_unique(
                    [_load_ramanujan(p, references) for p in files["ramanujan"]],
                    files["ramanujan"],
                    "ramanujan",
                ),
            )
        )

    runs = _merge(frames).sort_values(NETWORK_KEY, kind="stable").reset_index(drop=True)
    run_id = pd.Series(
        [
            f"published/{d}/{m}/{meth}/{s:g}/{k}"
            for m, d, meth, s, k in runs[NETWORK_KEY].itertuples(index=False)
        ],
        name="run_id",
    )
    runs = pd.concat([run_id, runs], axis=1)
    features = sorted(c for c in runs.columns if "." in c)
    return runs[["run_id", *NETWORK_KEY, "accuracy", *features]]


def _concat_unique(frames: list[pd.DataFrame], paths: list[Path], kind: str) -> pd.DataFrame:
    table = pd.concat(frames, ignore_index=True)
    duplicated = table.duplicated(NETWORK_KEY, keep=False)
    if duplicated.any():
        example = table.loc[duplicated, NETWORK_KEY].iloc[0].to_dict()
        raise PublishedDataError(
            f"{', '.join(p.name for p in paths)}: the same network appears in more than one "
            f"{kind} table, e.g. {example}"
        )
    return table


def import_published(
    src_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    folds: int = 5,
    n_trials: int = 20,
    seed: int = 0,
    progress: bool = True,
    feature_sets: FeatureSetsArg = None,
    methods: Sequence[str] | None = None,
    n_jobs: int = 1,
) -> FitResult:
    """:func:`load_published`, then :func:`sparsetopo.study.fit.fit_study` with target
    ``accuracy`` (higher is better) on it; ``methods`` keeps only those pruning methods (all by
    default, dynamic sparse training ones included). Also writes ``out_dir/published_runs.csv``."""
    runs = load_published(src_dir)
    if methods is not None:
        wanted = [str(m).lower() for m in methods]
        unknown = sorted(set(wanted) - set(runs["method"]))
        if unknown:
            raise ValueError(
                f"unknown method(s) {unknown}; the published tables have "
                f"{sorted(runs['method'].unique())}"
            )
        runs = runs[runs["method"].isin(wanted)].reset_index(drop=True)
    notes = [
        "Published tables (Cunegatti et al. 2024): no dense baseline, so the target is accuracy "
        "(higher is better); within one (model, dataset) the accuracy drop is a constant minus "
        "the accuracy.",
        "Published metrics were computed on initialization weights with the public code (MGE "
        "input with padding border; misplaced edges after stride-2 convolutions).",
    ]
    result = fit_study(
        runs,
        out_dir,
        target="accuracy",
        feature_sets=feature_sets,
        folds=folds,
        n_trials=n_trials,
        seed=seed,
        progress=progress,
        n_jobs=n_jobs,
        extra_notes=notes,
    )
    write_atomic(Path(out_dir) / "published_runs.csv", runs.to_csv(index=False))
    return result
