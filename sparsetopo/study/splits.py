"""Cross-validation splits of the study's protocols (``docs/study.md``), built on ``sklearn.model_selection``.

- ``random``: ``KFold`` over networks, shuffled (the paper's setting: the seeds of one
  configuration may fall in different folds);
- ``grouped``: ``GroupKFold`` (shuffled) over configurations: every seed of one (method,
  sparsity) of a (model, dataset) is in the same fold;
- ``leave-one-method-out``: ``LeaveOneGroupOut`` over methods, pruning at initialization and
  dynamic sparse training alike; a mask control (``snip+layer-shuffle``, column ``base_method``
  = ``snip``) is held out with its method, since it shares the method's layer densities;
- ``leave-one-category-out``: ``LeaveOneGroupOut`` over method categories
  (``training.category``: ``pai-data-free``, ``pai-data``, ``dst``): each category is
  predicted by a regressor trained on the other categories only (e.g. dynamic sparse training
  predicted from pruning at initialization); a control goes with its method's category. It
  needs at least 2 categories.

The inner splits that tune a predictor on the training part of an outer split follow the same
rule, so that tuning never sees what the outer protocol holds out: grouped inner folds keep
configurations together and, under leave-one-method-out (leave-one-category-out), each inner
fold leaves one method (category) out; a training part of a single category is not tuned.

References
----------
Cunegatti, Farina, Bucur, Iacca (2024). Understanding Sparse Neural Networks from their Topology
via Multipartite Graph Representations. Transactions on Machine Learning Research.

Pedregosa et al. (2011). Scikit-learn: Machine Learning in Python. Journal of Machine Learning
Research 12.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, KFold, LeaveOneGroupOut

from sparsetopo.errors import InputError
from sparsetopo.study.vocabulary import PROTOCOLS
from sparsetopo.training import category

#: Columns that identify a configuration (the seeds of one configuration form a group).
CONFIGURATION = ("model", "dataset", "method", "sparsity")

Split = tuple[str, np.ndarray, np.ndarray]  # (fold name, train positions, test positions)


def group_ids(runs: pd.DataFrame, by: Sequence[str] = CONFIGURATION) -> np.ndarray:
    """Integer id per row of its value of the columns ``by`` (ids follow sorted values)."""
    keys = runs[list(by)].astype(str).agg("\x1f".join, axis=1).to_numpy()
    return np.unique(keys, return_inverse=True)[1].astype(np.int64)


def method_column(runs: pd.DataFrame) -> str:
    """The column that names a run's pruning method for leave-one-method-out:
    ``base_method`` when the table has it (controls go with their method), else ``method``."""
    return "base_method" if "base_method" in runs.columns else "method"


def method_categories(runs: pd.DataFrame) -> np.ndarray:
    """The category of every row's method: the ``category`` column where it has a value, else
    ``training.category`` of the method (a control has its method's category). Raises
    ``InputError`` naming the methods that have none."""
    methods = runs["method"].astype(str)
    derived = {}
    for method in methods.unique():
        try:
            derived[method] = category(method)
        except InputError:
            continue
    stored = (runs["category"] if "category" in runs.columns
              else pd.Series(np.nan, index=runs.index, dtype=object))
    stored = stored.where(stored.notna() & (stored.astype(str) != ""))
    out = stored.fillna(methods.map(derived))
    missing = sorted(set(methods[out.isna()]))
    if missing:
        raise InputError(f"no method category for {missing}: leave-one-category-out needs the "
                         "category of every method (pai-data-free, pai-data or dst)")
    return out.astype(str).to_numpy()


def check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise InputError(f"unknown protocol {protocol!r}; supported: {', '.join(PROTOCOLS)}")


def splits(runs: pd.DataFrame, protocol: str, folds: int = 5, seed: int = 0) -> list[Split]:
    """The folds of ``protocol`` on the rows of ``runs`` (positions, not labels).

    ``folds`` is the number of K-fold splits (capped at the number of rows, or of
    configurations); leave-one-method-out has one split per method. Raises ``ValueError`` when
    the protocol cannot split the rows (fewer than 2 rows, configurations, methods or
    categories). Folds of the leave-one-out protocols are named by what they hold out."""
    check_protocol(protocol)
    n = len(runs)
    x = np.zeros((n, 1))
    if protocol == "random":
        if n < 2:
            raise InputError(f"random K-fold needs at least 2 runs, got {n}")
        kfold = KFold(n_splits=min(folds, n), shuffle=True, random_state=seed)
        return [(f"fold{k}", tr, te) for k, (tr, te) in enumerate(kfold.split(x))]
    if protocol == "grouped":
        groups = group_ids(runs)
        n_groups = len(np.unique(groups))
        if n_groups < 2:
            raise InputError(f"grouped K-fold needs at least 2 configurations "
                             f"({', '.join(CONFIGURATION)}), got {n_groups}")
        kfold = GroupKFold(n_splits=min(folds, n_groups), shuffle=True, random_state=seed)
        return [(f"fold{k}", tr, te) for k, (tr, te) in enumerate(kfold.split(x, groups=groups))]
    if protocol == "leave-one-category-out":
        held, what = method_categories(runs), "method categories"
    else:
        held, what = runs[method_column(runs)].astype(str).to_numpy(), "pruning methods"
    distinct = np.unique(held)
    if len(distinct) < 2:
        raise InputError(f"{protocol} needs at least 2 {what}, got {len(distinct)}: "
                         f"{list(distinct)}")
    return [(str(held[te[0]]), tr, te) for tr, te in LeaveOneGroupOut().split(x, groups=held)]


def inner_splits(runs: pd.DataFrame, protocol: str, folds: int = 3, seed: int = 0
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Tuning folds on a training part ``runs`` under the rule of ``protocol`` (module
    docstring); empty when the part cannot be split that way (then nothing is tuned)."""
    check_protocol(protocol)
    try:
        return [(tr, te) for _, tr, te in splits(runs, protocol, folds, seed)]
    except ValueError:
        return []
