"""SQLite results store of a study: one row per run, written in one transaction when it finishes.

Tables: ``meta(key, value)`` records ``application = sparsetopo-results`` and
``schema_version``; ``runs(run_id PK, config_json, status ('ok'|'failed'), error, accuracy,
features_json, timings_json, started, finished, host, resources_json, category,
trajectory_json)``. A run is therefore either complete or absent, whatever happens to the
writer. Columns added after schema version 1 first shipped: ``resources_json`` (where the run
trained: device, GPU ids, peak accelerator memory, images/s), ``category`` (of the run's
method: ``pai-data-free``, ``pai-data``, ``dst``; ``dense`` for the dense baselines) and
``trajectory_json`` (a dynamic sparse training run's topology at every mask update, a JSON
list of records). A writer adds missing columns to an older file (``ALTER TABLE``); a reader
of such a file sees no resources, no trajectory, and the category of each run's method. WAL
journal and a busy timeout let readers work while the study runs (only the driver process
writes).
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sparsetopo.errors import StoreError, UsageError
from sparsetopo.io import atomic_path, ensure_dir, json_value
from sparsetopo.study.config import DST_KEYS, canonical_json, hashed_part
from sparsetopo.study.vocabulary import DENSE, FEATURE_PREFIXES
from sparsetopo.training import category
from sparsetopo.training.single_run import trajectory_rows

APPLICATION = "sparsetopo-results"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 60.0
STATUSES = ("ok", "failed")
CONFIG_COLUMNS = ("model", "dataset", "method", "category", "sparsity", "seed")
TRAINING_COLUMNS = ("epochs", "lr", "momentum", "weight_decay", "batch_size", "milestones",
                    "gamma", "augment", "amp", "channels_last")
#: Training options absent from configurations written before they existed: their default.
TRAINING_DEFAULTS = {"amp": False, "channels_last": False}
#: Where and how fast a run trained (``RunRecord.resources``), as exported.
RESOURCE_COLUMNS = ("device", "peak_accelerator_memory_mb", "images_per_second")
OTHER_CONFIG_COLUMNS = ("train_subset", "test_subset", "image_size", "identity_skips")
#: A method name's parts: ``snip+layer-shuffle`` -> base ``snip``, control ``layer-shuffle``
#: (empty for a run of the method itself).
METHOD_PART_COLUMNS = ("base_method", "control")
#: A dynamic sparse training run's hyper-parameters (``dst_<field>``; empty for other runs).
DST_COLUMNS = tuple(f"dst_{k}" for k in DST_KEYS)
#: What training did to the mask: the number of mask updates, the exploration rate ``R_s``
#: (fraction of all prunable weights ever present) and the fraction of the initial mask still
#: present at the end (a fixed mask: no update, ``R_s`` = its density, 1).
MASK_COLUMNS = ("mask_updates", "exploration_rate", "initial_mask_kept")
#: Columns added to the runs table after schema version 1 first shipped.
ADDED_COLUMNS = ("resources_json", "category", "trajectory_json")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    config_json TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    error TEXT,
    accuracy REAL,
    features_json TEXT,
    timings_json TEXT,
    started TEXT,
    finished TEXT,
    host TEXT,
    resources_json TEXT,
    category TEXT,
    trajectory_json TEXT
)""",
)
ROW_COLUMNS = ("run_id", "config_json", "status", "error", "accuracy", "features_json",
               "timings_json", "started", "finished", "host", *ADDED_COLUMNS)




@dataclass
class RunRecord:
    """What one finished run leaves in the store.

    Parameters
    ----------
    run_id : str
        ``RunSpec.run_id``.
    config : dict
        ``RunSpec.to_dict()``.
    status : {"ok", "failed"}
        Whether the run finished.
    error : str, optional
        A failed run's error and traceback.
    accuracy : float, optional
        Test accuracy in [0, 1].
    features : dict of str to float
        The run's features (``study.features.network_features``).
    timings : dict of str to float
        Seconds of each phase.
    started, finished : str, optional
        ISO timestamps (UTC).
    host : str, optional
        Machine the run ran on.
    resources : dict
        Where it trained: ``device``, ``device_name``, ``gpus_per_run``, ``gpu_ids`` Ray
        assigned, ``cuda_visible_devices`` it saw, ``peak_accelerator_memory_mb``,
        ``images_per_second``, ...
    trajectory : list of dict
        A dynamic sparse training run's records, one per mask update
        (``TrainResult.trajectory``).
    """

    run_id: str
    config: dict[str, Any]
    status: str
    error: str | None = None
    accuracy: float | None = None
    features: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    started: str | None = None
    finished: str | None = None
    host: str | None = None
    resources: dict[str, Any] = field(default_factory=dict)
    trajectory: list[dict[str, Any]] = field(default_factory=list)


def run_category(method: str) -> str:
    """The category of a run's method (``training.category``), ``dense`` for the dense
    baselines."""
    return DENSE if method == DENSE else category(method)


def _json(obj: Any) -> str:
    """JSON with non-finite floats stored as null (SQLite/JSON have no NaN)."""
    return json.dumps(json_value(obj), sort_keys=True)


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    return conn


def _check_meta(conn: sqlite3.Connection, path: str) -> None:
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not a sparsetopo results file ({exc})") from None
    if "meta" not in tables:
        raise StoreError(f"{path} is not a sparsetopo results file (no 'meta' table)")
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    if meta.get("application") != APPLICATION:
        raise StoreError(f"{path} is not a sparsetopo results file (application="
                         f"{meta.get('application')!r})")
    version = meta.get("schema_version")
    if version != str(SCHEMA_VERSION):
        raise StoreError(f"{path} has results schema version {version}, this sparsetopo reads "
                         f"version {SCHEMA_VERSION}; use a new results file")
    if "runs" not in tables:
        raise StoreError(f"{path} is damaged: no 'runs' table")


def _columns(conn: sqlite3.Connection) -> set[str]:
    return {r[1] for r in conn.execute("PRAGMA table_info(runs)")}


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """Bring a results file written by an older sparsetopo (same schema version, fewer
    columns) up to date; the runs it holds are kept as they are."""
    if set(ADDED_COLUMNS) <= _columns(conn):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for column in ADDED_COLUMNS:
            if column not in _columns(conn):  # another writer may have added it
                conn.execute(f"ALTER TABLE runs ADD COLUMN {column} TEXT")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


class ResultsStore:
    """A results file open for writing runs (created when absent; a context manager).

    The file is SQLite: one row per run, each written in one transaction (module docstring),
    so that a run is either complete or absent whatever happens to the writer.

    Parameters
    ----------
    path : str or path-like
        The results file.

    Raises
    ------
    StoreError
        A file that is not a sparsetopo results file, or of another schema version.
    OutputError
        A folder that cannot be created.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        ensure_dir(Path(self.path).parent)
        exists = Path(self.path).exists() and Path(self.path).stat().st_size > 0
        self.conn = _connect(self.path)
        try:
            if exists:
                _check_meta(self.conn, self.path)
                _add_missing_columns(self.conn)
            else:
                self._create()
            self.conn.execute("PRAGMA journal_mode=WAL")
        except BaseException:
            self.conn.close()
            raise

    def _create(self) -> None:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA:
                c.execute(statement)
            c.executemany(
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
                [("application", APPLICATION), ("schema_version", str(SCHEMA_VERSION))],
            )
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        _check_meta(c, self.path)

    def statuses(self) -> dict[str, str]:
        """``{run_id: status}`` of every stored run."""
        return dict(self.conn.execute("SELECT run_id, status FROM runs").fetchall())

    def write(self, record: RunRecord) -> None:
        """Insert (or replace a failed) run in a single transaction."""
        if record.status not in STATUSES:
            raise StoreError(f"status must be one of {STATUSES}, got {record.status!r}")
        accuracy = record.accuracy
        if accuracy is not None and not math.isfinite(accuracy):
            accuracy = None
        row = (record.run_id, canonical_json(record.config), record.status, record.error,
               accuracy, _json(record.features), _json(record.timings), record.started,
               record.finished, record.host, _json(record.resources),
               run_category(record.config["method"]),
               _json(record.trajectory) if record.trajectory else None)
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute(f"INSERT OR REPLACE INTO runs ({', '.join(ROW_COLUMNS)}) VALUES "
                      f"({', '.join('?' * len(ROW_COLUMNS))})", row)
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close the file."""
        self.conn.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _read_rows(path: str | os.PathLike) -> list[tuple]:
    path = os.fspath(path)
    if not Path(path).is_file():
        raise StoreError(f"results file not found: {path}")
    conn = _connect(path)
    try:
        _check_meta(conn, path)
        present = _columns(conn)
        select = ", ".join(c if c in present else f"NULL AS {c}" for c in ROW_COLUMNS)
        return conn.execute(f"SELECT {select} FROM runs").fetchall()
    finally:
        conn.close()


def _feature_order(name: str) -> tuple[int, str]:
    prefix = name.split(".", 1)[0]
    return (FEATURE_PREFIXES.index(prefix) if prefix in FEATURE_PREFIXES else len(FEATURE_PREFIXES),
            name)


def _flat_row(row: tuple) -> tuple[dict[str, Any], dict[str, float], str]:
    run_id, config_json, status, error, accuracy, features_json, timings_json, started, finished, \
        host, resources_json, stored_category, trajectory_json = row
    config = json.loads(config_json)
    training = config.get("training", {})
    data = config.get("data", {})
    timings = json.loads(timings_json or "{}")
    out: dict[str, Any] = {"run_id": run_id}
    out.update({k: config.get(k) for k in CONFIG_COLUMNS})
    out.update(zip(METHOD_PART_COLUMNS, method_parts(config.get("method")), strict=True))
    out["category"] = stored_category or run_category(config["method"])
    out.update({k: training.get(k, TRAINING_DEFAULTS.get(k)) for k in TRAINING_COLUMNS})
    out["milestones"] = ",".join(str(m) for m in training.get("milestones", []))
    out["train_subset"] = data.get("train_subset")
    out["test_subset"] = data.get("test_subset")
    out["image_size"] = data.get("image_size")
    out["identity_skips"] = config.get("metrics", {}).get("identity_skips")
    dst = config.get("dst") or {}
    out.update({f"dst_{k}": _cell(dst.get(k)) for k in DST_KEYS})
    out.update(_mask_summary(config, json.loads(trajectory_json or "[]")))
    out.update(status=status, error=error,
               accuracy=np.nan if accuracy is None else accuracy,
               prune_seconds=timings.get("prune", np.nan),
               train_seconds=timings.get("train", np.nan),
               metrics_seconds=timings.get("features", np.nan),
               started=started, finished=finished, host=host)
    resources = json.loads(resources_json or "{}")
    out["device"] = resources.get("device")
    for key in RESOURCE_COLUMNS[1:]:
        value = resources.get(key)
        out[key] = np.nan if value is None else float(value)
    features = {k: (np.nan if v is None else float(v))
                for k, v in json.loads(features_json or "{}").items()}
    baseline = hashed_part(config)
    for key in ("method", "sparsity", "metrics", "dst"):
        baseline.pop(key, None)
    return out, features, canonical_json(baseline)


def method_parts(method: object) -> tuple[str | None, str | None]:
    """``(base_method, control)`` of a stored method name (``control`` None for a run of the
    method itself)."""
    from sparsetopo.pruning import split_method

    return (None, None) if method is None else split_method(str(method))


def _category_or_none(method: Any) -> str | None:
    try:
        return run_category(str(method))
    except ValueError:  # a method this sparsetopo does not know (a file from a newer one)
        return None


def _cell(value: Any) -> Any:
    """A configuration value as one table cell (a list as comma-separated text)."""
    if isinstance(value, list | tuple):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return value


def _mask_summary(config: dict[str, Any], trajectory: list[dict[str, Any]]) -> dict[str, float]:
    """:data:`MASK_COLUMNS` of a run (NaN for a dense run)."""
    if trajectory:
        last = trajectory[-1]
        return {"mask_updates": float(len(trajectory) - 1),
                "exploration_rate": _number(last.get("exploration_rate")),
                "initial_mask_kept": _number(last.get("initial_mask_kept"))}
    if config.get("method") == DENSE:
        return dict.fromkeys(MASK_COLUMNS, np.nan)
    return {"mask_updates": 0.0, "exploration_rate": 1.0 - float(config.get("sparsity", 0.0)),
            "initial_mask_kept": 1.0}


def _number(value: Any) -> float:
    return np.nan if value is None else float(value)


def load_runs(path: str | os.PathLike, status: str | None = "ok") -> pd.DataFrame:
    """The runs of a results file as a table, one row per run.

    Columns: ``run_id``, the configuration (model, dataset, method, category, sparsity, seed,
    ``base_method`` and ``control`` (the parts of ``METHOD+CONTROL``, control empty for a run
    of the method itself), epochs, lr, momentum, weight_decay, batch_size, milestones, gamma,
    augment, amp, channels_last, train_subset, test_subset, image_size, identity_skips, the
    ``dst_*`` hyper-parameters of a dynamic sparse training run), ``mask_updates``,
    ``exploration_rate``, ``initial_mask_kept`` (:data:`MASK_COLUMNS`), ``status``, ``error``,
    ``accuracy``, ``dense_accuracy``, ``accuracy_drop``
    (= dense accuracy of the run with the same model, dataset, seed, training and data settings
    minus ``accuracy``; NaN without a successful dense run), ``prune_seconds``,
    ``train_seconds``, ``metrics_seconds``, ``started``, ``finished``, ``host``, ``device``
    (``cpu``, ``cuda:0``, ...; None for runs stored before it was recorded),
    ``peak_accelerator_memory_mb`` (NaN on CPU), ``images_per_second`` (training throughput),
    then every
    feature column (``density.*``, ``ramanujan.*``, ``rolled.*``, ``rolled_channel.*``,
    ``mge.*``, ``paths.*``, ``bottleneck.*``; defined in ``docs/study.md``).

    Parameters
    ----------
    path : str or path-like
        The results file.
    status : {"ok", "failed", "all"} or None
        Which runs: ``"ok"`` or ``"failed"`` ones, ``None`` or ``"all"`` every run.

    Returns
    -------
    pandas.DataFrame
        Sorted by model, dataset, method, sparsity, seed.

    Raises
    ------
    UsageError
        An unknown ``status``.
    StoreError
        A missing file, or one that is not a sparsetopo results file.
    """
    if status not in (None, "all", *STATUSES):
        raise UsageError(f"status must be 'ok', 'failed' or 'all', got {status!r}")
    flat = [_flat_row(r) for r in _read_rows(path)]
    dense = {key: row["accuracy"] for row, _, key in flat
             if row["method"] == DENSE and row["status"] == "ok"}
    rows, feature_rows = [], []
    for row, features, key in flat:
        if status not in (None, "all") and row["status"] != status:
            continue
        row["dense_accuracy"] = dense.get(key, np.nan)
        row["accuracy_drop"] = row["dense_accuracy"] - row["accuracy"]
        rows.append(row)
        feature_rows.append(features)
    base_cols = (["run_id", *CONFIG_COLUMNS, *METHOD_PART_COLUMNS, *TRAINING_COLUMNS,
                  *OTHER_CONFIG_COLUMNS, *DST_COLUMNS, *MASK_COLUMNS, "status", "error",
                  "accuracy", "dense_accuracy", "accuracy_drop", "prune_seconds",
                  "train_seconds", "metrics_seconds", "started", "finished", "host",
                  *RESOURCE_COLUMNS])
    feature_cols = sorted({k for f in feature_rows for k in f}, key=_feature_order)
    df = pd.DataFrame(rows, columns=base_cols)
    feats = pd.DataFrame(feature_rows, columns=feature_cols, dtype=float, index=df.index)
    df = pd.concat([df, feats], axis=1)
    for col in ("sparsity", "accuracy", "dense_accuracy", "accuracy_drop", "lr", "momentum",
                "weight_decay", "gamma", "prune_seconds", "train_seconds", "metrics_seconds",
                *RESOURCE_COLUMNS[1:], *MASK_COLUMNS):
        df[col] = df[col].astype(float)
    df = df.sort_values(["model", "dataset", "method", "sparsity", "seed", "run_id"],
                        kind="stable").reset_index(drop=True)
    return df


EXPORT_FORMATS = (".parquet", ".csv")


def export(path: str | os.PathLike, out: str | os.PathLike, status: str | None = "all") -> Path:
    """Write the runs table of a results file to a Parquet or CSV file.

    Parameters
    ----------
    path : str or path-like
        The results file.
    out : str or path-like
        ``.parquet`` or ``.csv`` file, written atomically (temporary file in the same folder,
        then ``os.replace``).
    status : {"ok", "failed", "all"} or None
        Which runs (:func:`load_runs`); all by default.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    UsageError
        Another extension, or an unknown ``status``.
    StoreError
        A results file that cannot be read.
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in EXPORT_FORMATS:
        raise UsageError(f"cannot export to {out.name!r}: supported extensions are "
                         f"{', '.join(EXPORT_FORMATS)}")
    df = load_runs(path, status=status)
    with atomic_path(out) as tmp:
        if suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)
    return out


#: The leading columns of :func:`load_trajectories`.
TRAJECTORY_ID_COLUMNS = ("run_id", "model", "dataset", "method", "category", "sparsity", "seed")


def trajectory_frame(trajectory: list[dict[str, Any]]) -> pd.DataFrame:
    """A trajectory as a table.

    Parameters
    ----------
    trajectory : list of dict
        ``TrainResult.trajectory``.

    Returns
    -------
    pandas.DataFrame
        One row per record, the per-layer densities flattened to ``density.<layer>`` columns;
        non-finite values as NaN.
    """
    header, rows = trajectory_rows(trajectory)  # the layout of ``trajectory.csv``
    frame = pd.DataFrame(rows, columns=header)
    numeric = frame.select_dtypes(include="number").columns
    frame[numeric] = frame[numeric].astype(float).replace([np.inf, -np.inf], np.nan)
    return frame


def load_trajectories(path: str | os.PathLike, status: str | None = "ok") -> pd.DataFrame:
    """The topology trajectories of a results file's dynamic sparse training runs.

    The fields are defined in ``docs/sparse-training.md`` (*Topology over training*).

    Parameters
    ----------
    path : str or path-like
        The results file.
    status : {"ok", "failed", "all"} or None
        Which runs, as in :func:`load_runs`.

    Returns
    -------
    pandas.DataFrame
        One row per mask update (the first at step 0, the initial mask):
        :data:`TRAJECTORY_ID_COLUMNS`, then ``step``, ``epoch``, ``fraction`` (of the training
        steps), ``present``, ``exploration_rate``, ``initial_mask_kept``, ``dropped``,
        ``replaced``, ``drop_fraction`` (or ``dsr_threshold``), the path metrics
        (``effective_density``, ``alive_edges``, ``log10_paths``; NaN where -inf: no path),
        ``record_seconds`` and ``density.<layer>``. Empty (with the id columns) when no run
        has a trajectory.

    Raises
    ------
    UsageError
        An unknown ``status``.
    StoreError
        A results file that cannot be read.
    """
    if status not in (None, "all", *STATUSES):
        raise UsageError(f"status must be 'ok', 'failed' or 'all', got {status!r}")
    frames = []
    for row in _read_rows(path):
        flat, _, _ = _flat_row(row)
        trajectory = json.loads(row[ROW_COLUMNS.index("trajectory_json")] or "[]")
        if not trajectory or (status not in (None, "all") and flat["status"] != status):
            continue
        frame = trajectory_frame(trajectory)
        for i, key in enumerate(TRAJECTORY_ID_COLUMNS):
            frame.insert(i, key, flat[key])
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=list(TRAJECTORY_ID_COLUMNS))
    df = pd.concat(frames, ignore_index=True)
    return df.sort_values(["model", "dataset", "method", "sparsity", "seed", "run_id", "step"],
                          kind="stable").reset_index(drop=True)


def trajectory_path(out: str | os.PathLike) -> Path:
    """Where :func:`export_trajectories` writes next to an export ``out``:
    ``<stem>-trajectory<suffix>``."""
    out = Path(out)
    return out.with_name(f"{out.stem}-trajectory{out.suffix}")


def export_trajectories(path: str | os.PathLike, out: str | os.PathLike,
                        status: str | None = "all") -> Path | None:
    """Write the trajectories of a results file to a Parquet or CSV file.

    Parameters
    ----------
    path : str or path-like
        The results file.
    out : str or path-like
        ``.parquet`` or ``.csv`` file, written atomically (:func:`trajectory_path` names the
        one ``study export`` writes next to the runs table).
    status : {"ok", "failed", "all"} or None
        Which runs (:func:`load_trajectories`); all by default.

    Returns
    -------
    Path or None
        ``out``; ``None`` (nothing written) when no run has a trajectory.

    Raises
    ------
    UsageError
        Another extension, or an unknown ``status``.
    StoreError
        A results file that cannot be read.
    """
    out = Path(out)
    if out.suffix.lower() not in EXPORT_FORMATS:
        raise UsageError(f"cannot export to {out.name!r}: supported extensions are "
                         f"{', '.join(EXPORT_FORMATS)}")
    df = load_trajectories(path, status=status)
    if df.empty:
        return None
    with atomic_path(out) as tmp:
        if out.suffix.lower() == ".parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)
    return out
