"""How well each feature set tells pruning methods apart, and method categories apart.

The paper asks whether the topology of a sparse network carries the signature of the algorithm
that made it, and of its category (``training.category``: pruning at initialization without
data, with data, dynamic sparse training). Here, at each (model, dataset) and sparsity (a
*case*: global sparsity is fixed, so the ``sparsity`` set can only guess), a classifier
predicts each run's label from one feature set, out of fold:

- classifier: ``LogisticRegression`` (multinomial, L2, ``C = 1``, balanced class weights) after
  median imputation of missing values and standardisation, all fitted on the training part
  only; a training part without a usable (finite, non-constant) feature predicts its most
  frequent label;
- targets: ``method`` (a mask control is a label of its own) and ``category``;
- splits: ``seed`` (every run of one seed in the same fold: leave one seed out, or
  ``GroupKFold`` over seeds when there are more seeds than folds), or ``stratified``
  (``StratifiedKFold``) when the case has a single seed; for the category also ``method``
  (leave one method out, a control with its method: can the category of a method never seen
  in training be told?), over the categories with at least 2 methods in the case;
- score: the balanced accuracy of the out-of-fold predictions, the mean over labels of the
  recall, whose chance level is ``1 / labels`` whatever the label frequencies.

Each score sits next to chance and to the scores of the ``sparsity`` and ``density`` sets on
the same case, target and split: a set that tells methods apart no better than the layer
densities knows nothing of the method beyond how it spreads the weights over layers.

References
----------
Cunegatti, Farina, Bucur, Iacca (2024). Understanding Sparse Neural Networks from their Topology
via Multipartite Graph Representations. Transactions on Machine Learning Research.

Brodersen, Ong, Stephan, Buhmann (2010). The Balanced Accuracy and Its Posterior Distribution.
20th International Conference on Pattern Recognition (ICPR).

Pedregosa et al. (2011). Scikit-learn: Machine Learning in Python. Journal of Machine Learning
Research 12.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GroupKFold, LeaveOneGroupOut, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from sparsetopo.errors import InputError
from sparsetopo.io import show_progress
from sparsetopo.study.feature_sets import feature_columns, is_monotone
from sparsetopo.study.splits import method_categories, method_column
from sparsetopo.study.vocabulary import BASELINE

#: What is told apart.
TARGETS = ("method", "category")
#: How a case is split, in report order.
SPLITS = ("seed", "stratified", "method")
#: The reference sets every set's balanced accuracy is compared with.
REFERENCES = (BASELINE, "density")
MEAN = "mean"
SEPARABILITY_COLUMNS = [
    "target", "split", "feature_set", "model", "dataset", "sparsity", "cases", "n", "classes",
    "folds", "chance", "balanced_accuracy", "gain_over_chance", "gain_over_sparsity",
    "gain_over_density", "cases_above_chance", "cases_above_density",
]
_CASE = ["model", "dataset", "sparsity"]


def classify(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """Labels of ``x_test`` predicted by the module's classifier fitted on the training part
    (infinite values read as missing)."""
    x_train = np.where(np.isfinite(x_train), x_train, np.nan)
    x_test = np.where(np.isfinite(x_test), x_test, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        usable = np.nan_to_num(np.nanstd(x_train, axis=0), nan=0.0) > 0
    labels, counts = np.unique(y_train, return_counts=True)
    if not usable.any() or len(labels) < 2:
        return np.full(len(x_test), labels[np.argmax(counts)], dtype=object)
    model = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(),
                          LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x_train[:, usable], y_train)
    return model.predict(x_test[:, usable])


def case_splits(case: pd.DataFrame, y: np.ndarray, target: str, folds: int, seed: int
                ) -> list[tuple[str, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]]:
    """The splits of one case for ``target`` (module docstring): ``(split, rows, folds)``, the
    rows (positions) it scores and its (train, test) positions among them; a split that
    cannot be made is left out."""
    out = []
    n = np.arange(len(case))
    seeds = case["seed"].to_numpy()
    if len(np.unique(seeds)) >= 2:
        k = len(np.unique(seeds))
        splitter = LeaveOneGroupOut() if k <= folds else GroupKFold(
            n_splits=folds, shuffle=True, random_state=seed)
        out.append(("seed", n, list(splitter.split(n, y, groups=seeds))))
    else:
        smallest = int(np.unique(y, return_counts=True)[1].min())
        if smallest >= 2:
            kfold = StratifiedKFold(n_splits=min(folds, smallest), shuffle=True,
                                    random_state=seed)
            out.append(("stratified", n, list(kfold.split(n, y))))
    if target == "category":
        methods = case[method_column(case)].astype(str).to_numpy()
        per_category = pd.Series(methods).groupby(y).nunique()
        kept = np.isin(y, per_category.index[per_category >= 2])
        if len(np.unique(y[kept])) >= 2:
            rows = n[kept]
            folds_ = list(LeaveOneGroupOut().split(rows, y[kept], groups=methods[kept]))
            out.append(("method", rows, folds_))
    return out


def _labels(frame: pd.DataFrame, notes: list[str]) -> dict[str, np.ndarray]:
    labels = {"method": frame["method"].astype(str).to_numpy()}
    try:
        labels["category"] = method_categories(frame)
    except InputError as exc:
        notes.append(f"separability of categories skipped ({exc}).")
    return labels


def _case_rows(key: tuple, case: pd.DataFrame, labels: dict[str, np.ndarray],
               columns: dict[str, list[str]], folds: int, seed: int) -> tuple[list[dict], list]:
    """The rows of one case, and the targets skipped there (fewer than 2 labels). BLAS on one
    thread: the fits are tiny, and two threads per fit make them several times slower on a
    busy machine."""
    model, dataset, sparsity = key
    rows, skipped = [], []
    with threadpool_limits(limits=1, user_api="blas"):
        for target, y in labels.items():
            if len(np.unique(y)) < 2:
                skipped.append(target)
                continue
            for split, positions, fold_list in case_splits(case, y, target, folds, seed):
                part, truth = case.iloc[positions], y[positions]
                classes = len(np.unique(truth))
                for name, cols in columns.items():
                    x = part[cols].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
                    predicted = np.empty(len(part), dtype=object)
                    for train, test in fold_list:
                        predicted[test] = classify(x[train], truth[train], x[test])
                    rows.append({
                        "target": target, "split": split, "feature_set": name, "model": model,
                        "dataset": dataset, "sparsity": float(sparsity), "cases": 1,
                        "n": len(part), "classes": classes, "folds": len(fold_list),
                        "chance": 1.0 / classes,
                        "balanced_accuracy": float(balanced_accuracy_score(
                            truth.astype(str), predicted.astype(str)))})
    return rows, skipped


def separability(frame: pd.DataFrame, sets: dict[str, tuple[str, ...]], *, folds: int = 5,
                 seed: int = 0, notes: list[str] | None = None, jobs: int = 1,
                 progress: bool = False) -> pd.DataFrame:
    """Balanced accuracy of telling methods and categories apart from each feature set.

    Parameters
    ----------
    frame : pandas.DataFrame
        Pruned runs (no dense baseline): ``model``, ``dataset``, ``method``, ``sparsity``,
        ``seed``, optionally ``category`` and ``base_method``, and feature columns.
    sets : dict
        Feature set name -> column patterns (``feature_sets.resolve_feature_sets``); sets with
        monotone constraints are left out (their columns are those of their base set).
    folds : int
        Most folds of a split (module docstring).
    seed : int
        Seed of the shuffled K-fold splits.
    notes : list of str, optional
        Receives what was skipped, and why.
    jobs : int
        Processes sharing the cases; the result does not depend on it.
    progress : bool
        Show a progress bar over the cases.

    Returns
    -------
    pandas.DataFrame
        :data:`SEPARABILITY_COLUMNS`: one row per (target, split, feature set, model, dataset,
        sparsity) with ``cases = 1``, then per (target, split, feature set) the mean over
        cases (``model = dataset = "mean"``, ``sparsity`` NaN), ``cases_above_*`` the
        fraction of cases where the set beats chance or ``density``.

    References
    ----------
    Brodersen, Ong, Stephan, Buhmann (2010). The Balanced Accuracy and Its Posterior
    Distribution. ICPR.
    """
    notes = notes if notes is not None else []
    free = {name: patterns for name, patterns in sets.items() if not is_monotone(name)}
    frame = frame.reset_index(drop=True)
    labels = _labels(frame, notes)
    calls = []
    for key, case in frame.groupby(_CASE, sort=True):
        columns = {name: cols for name, patterns in free.items()
                   if (cols := feature_columns(case.columns, patterns))}
        mine = {target: y[case.index.to_numpy()] for target, y in labels.items()}
        calls.append(delayed(_case_rows)(key, case.reset_index(drop=True), mine, columns,
                                         folds, seed))
    with tqdm(total=len(calls), desc="separability", unit="case",
              disable=not show_progress(progress)) as bar:
        results = []
        for result in Parallel(n_jobs=jobs, backend="loky", return_as="generator")(calls):
            results.append(result)
            bar.update(1)
    rows = [row for case_rows, _ in results for row in case_rows]
    skipped = pd.Series([t for _, targets in results for t in targets], dtype=object)
    plural = {"method": "methods", "category": "categories"}
    notes += [f"separability of {plural[target]} skipped in {count} case(s) (model, dataset, "
              f"sparsity) with fewer than 2 {plural[target]}."
              for target, count in skipped.value_counts(sort=False).items()]
    return _with_comparisons(pd.DataFrame(rows))


def _with_comparisons(table: pd.DataFrame) -> pd.DataFrame:
    if table.empty:
        return pd.DataFrame(columns=SEPARABILITY_COLUMNS)
    key = ["target", "split", *_CASE]
    table["gain_over_chance"] = table["balanced_accuracy"] - table["chance"]
    for reference in REFERENCES:
        ref = table[table["feature_set"] == reference].set_index(key)["balanced_accuracy"]
        base = ref.reindex(pd.MultiIndex.from_frame(table[key])).to_numpy()
        table[f"gain_over_{reference}"] = table["balanced_accuracy"].to_numpy() - base
    table["cases_above_chance"] = (table["gain_over_chance"] > 0).astype(float)
    table["cases_above_density"] = (table["gain_over_density"] > 0).astype(float).where(
        table["gain_over_density"].notna())
    means = []
    for (target, split, name), part in table.groupby(["target", "split", "feature_set"],
                                                     sort=False):
        row = {"target": target, "split": split, "feature_set": name, "model": MEAN,
               "dataset": MEAN, "sparsity": np.nan, "cases": len(part),
               "n": int(part["n"].sum())}
        for column in ("classes", "folds", "chance", "balanced_accuracy", "gain_over_chance",
                       "gain_over_sparsity", "gain_over_density", "cases_above_chance",
                       "cases_above_density"):
            values = part[column].astype(float)
            row[column] = float(values.mean()) if values.notna().any() else np.nan
        means.append(row)
    order = {s: i for i, s in enumerate(SPLITS)}
    out = pd.concat([table, pd.DataFrame(means)], ignore_index=True)
    out["_t"] = out["target"].map({t: i for i, t in enumerate(TARGETS)})
    out["_s"] = out["split"].map(order)
    out["_m"] = out["model"] == MEAN
    out = out.sort_values(["_t", "_s", "_m"], kind="stable", ascending=[True, True, False])
    return out[SEPARABILITY_COLUMNS].reset_index(drop=True)
