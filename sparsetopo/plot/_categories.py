"""Topometrics against sparsity coloured by method category: do the methods of a category
(pruning at initialization without data, with data, dynamic sparse training) share a topology?

Input: a runs table (``sparsetopo.study.store.load_runs``, or ``published_runs.csv`` of
``study import-published``): ``method``, ``sparsity`` and feature columns; ``category`` when
it has one (else ``training.category`` of each method).

References
----------
Cunegatti, Farina, Bucur, Iacca (2024). Understanding Sparse Neural Networks from their
Topology via Multipartite Graph Representations. Transactions on Machine Learning Research.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.lines import Line2D

from sparsetopo.errors import InputError
from sparsetopo.plot._common import method_styles, require_columns, save_png
from sparsetopo.plot.metrics import LOG_RATIO, _grid, _ok_runs
from sparsetopo.study.vocabulary import DENSE
from sparsetopo.training import CATEGORIES, category

#: Prefixes of the metrics drawn by default, in order.
DEFAULT_PREFIXES = ("paths.", "mge.")
OTHER = "other"


def category_colours() -> dict[str, tuple]:
    """One fixed colour per category (``training.CATEGORIES``), grey for a method without
    one."""
    palette = colormaps["Set1"].colors
    colours = {name: palette[i] for i, name in enumerate(CATEGORIES)}
    colours[OTHER] = (0.55, 0.55, 0.55)
    return colours


def _categories(frame: pd.DataFrame) -> pd.Series:
    """Each run's category: the ``category`` column where it has a value, else that of its
    method, else :data:`OTHER`."""
    def of(method: str) -> str:
        try:
            return category(method)
        except InputError:
            return OTHER

    derived = frame["method"].astype(str).map(
        {m: of(m) for m in frame["method"].astype(str).unique()})
    if "category" not in frame.columns:
        return derived
    stored = frame["category"].where(frame["category"].notna() & (frame["category"] != ""))
    return stored.fillna(derived).astype(str)


def metric_vs_sparsity_by_category(
    runs_df: pd.DataFrame,
    path: str | os.PathLike,
    metrics: list[str] | None = None,
    *,
    ncols: int = 4,
    title: str | None = None,
    dpi: int = 110,
) -> Path:
    """One panel per metric: the metric against sparsity, one line per method (mean over
    seeds, a band of +- one standard deviation, ddof 1) coloured by the method's category,
    the method told by its marker.

    Parameters
    ----------
    runs_df : pandas.DataFrame
        A runs table (module docstring). Only runs with status ``ok`` count when it has a
        ``status`` column; dense runs are left out.
    path : str or os.PathLike
        The PNG to write (atomically).
    metrics : list of str, optional
        Columns to draw; default every ``paths.*`` then ``mge.*`` column with a value.
    ncols : int
        Panels per row.
    title : str, optional
        Title of the figure.
    dpi : int
        Resolution.

    Returns
    -------
    pathlib.Path
        ``path``.

    References
    ----------
    Cunegatti, Farina, Bucur, Iacca (2024). Understanding Sparse Neural Networks from their
    Topology via Multipartite Graph Representations. TMLR.
    """
    require_columns(runs_df, ["method", "sparsity"], "runs table")
    frame = _ok_runs(runs_df)
    frame = frame[frame["method"].astype(str) != DENSE]
    if frame.empty:
        raise InputError("runs table has no pruned run to plot")
    if metrics is None:
        metrics = [c for prefix in DEFAULT_PREFIXES for c in frame.columns
                   if c.startswith(prefix) and pd.api.types.is_numeric_dtype(frame[c])
                   and np.isfinite(frame[c]).any()]
        if not metrics:
            raise InputError("runs table has no paths.* or mge.* column with a value; pass "
                             f"metrics=[...] from {list(runs_df.columns)}")
    else:
        require_columns(frame, metrics, "runs table")
    of_method = _categories(frame).groupby(frame["method"].astype(str)).first()
    colours = category_colours()
    markers = {m: s["marker"] for m, s in method_styles(frame["method"].unique()).items()}
    fig, axes, legend_y = _grid(len(metrics), ncols, (3.0, 2.1), dpi, title=title)
    for ax, metric in zip(axes, metrics, strict=False):
        values = pd.to_numeric(frame[metric], errors="coerce")
        values = values.where(np.isfinite(values))
        for method, rows in frame.groupby("method", sort=True):
            stats = values[rows.index].groupby(rows["sparsity"]).agg(["mean", "std"])
            stats = stats.dropna(subset=["mean"])
            if stats.empty:
                continue
            colour = colours.get(of_method[str(method)], colours[OTHER])
            x, mean = stats.index.to_numpy(float), stats["mean"].to_numpy(float)
            std = stats["std"].fillna(0.0).to_numpy(float)
            ax.plot(x, mean, marker=markers[str(method)], ms=3.5, lw=1.2, color=colour,
                    alpha=0.9)
            ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.12, lw=0)
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel("sparsity", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, lw=0.5)
        finite = values.dropna()
        if len(finite) and finite.min() > 0 and finite.max() / finite.min() > LOG_RATIO:
            ax.set_yscale("log")
    order = {c: i for i, c in enumerate((*CATEGORIES, OTHER))}
    handles = [Line2D([], [], color=colours.get(c, colours[OTHER]), lw=2.5, label=c)
               for c in sorted(set(of_method), key=lambda c: order.get(c, len(order)))]
    handles += [Line2D([], [], color="0.3", marker=markers[m], ls="", label=m)
                for m in sorted(of_method.index,
                                key=lambda m: (order.get(of_method[m], len(order)), m))]
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, legend_y),
               ncol=min(len(handles), 9), fontsize=8, frameon=False)
    return save_png(fig, path, dpi)
