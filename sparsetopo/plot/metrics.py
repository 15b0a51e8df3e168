"""Plots of a study: topometrics against sparsity, predicted vs measured accuracy drop, SHAP
importance (the study and its output files: ``docs/study.md``).

Inputs are the tables of the study: the runs table (``sparsetopo.study.store.load_runs``:
``model, dataset, method, sparsity, seed, status, accuracy_drop`` and feature columns
``density.*, ramanujan.*, rolled.*, rolled_channel.*, mge.*``), and the tables written by
``study fit``: ``predictions.csv`` and ``importance.csv``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from sparsetopo.errors import InputError
from sparsetopo.plot._common import method_styles, require_columns, save_png
from sparsetopo.study.vocabulary import DENSE, FEATURE_PREFIXES, PROTOCOLS, SET_ORDER

#: Feature families (the prefix before the first dot; ``sparsity`` has none), one colour each.
FAMILIES = ("sparsity", *FEATURE_PREFIXES, "arch")
#: Sets drawn by default in the predicted-against-measured figure.
SHOWN_SETS = ("sparsity", "density", "mge", "paths", "all")
LINESTYLES = ("-", "--", ":", "-.")
#: A panel whose positive values span more than this ratio gets a log y axis.
LOG_RATIO = 1e3


def metric_vs_sparsity(
    runs_df: pd.DataFrame,
    path: str | os.PathLike,
    metrics: list[str] | None = None,
    *,
    ncols: int = 4,
    title: str | None = None,
    dpi: int = 110,
) -> Path:
    """Metrics against sparsity, one panel per metric and one line per pruning method.

    Each line is the mean over seeds with a band of +- one standard deviation (``std`` with
    ``ddof=1``; no band for a single seed); dense runs (method ``dense``) are a dotted
    horizontal line at their mean. Only runs with status ``ok`` count when the table has a
    ``status`` column. Several (model, dataset) pairs get one line style each. A panel whose
    positive values span more than :data:`LOG_RATIO` gets a log axis.

    Parameters
    ----------
    runs_df : pandas.DataFrame
        A runs table (``sparsetopo.study.load_runs``): ``method``, ``sparsity`` and the metric
        columns; ``model``, ``dataset`` and ``status`` when present.
    path : str or path-like
        PNG file, written atomically.
    metrics : list of str, optional
        Columns to draw; default: every ``mge.*`` column with a value.
    ncols : int
        Panels per row.
    title : str, optional
        Figure title.
    dpi : int
        Resolution.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    InputError
        A table lacking a column asked for, or without an ``mge.*`` value to draw by default.
    """
    require_columns(runs_df, ["method", "sparsity"], "runs table")
    frame = _ok_runs(runs_df)
    if metrics is None:
        metrics = [c for c in frame.columns if c.startswith("mge.")
                   and pd.api.types.is_numeric_dtype(frame[c]) and frame[c].notna().any()]
        if not metrics:
            raise InputError("runs table has no mge.* column with a value; pass metrics=[...] "
                             f"from {list(runs_df.columns)}")
    else:
        require_columns(frame, metrics, "runs table")
    pairs = _pairs(frame)
    styles = method_styles(frame["method"].unique())
    fig, axes, legend_y = _grid(len(metrics), ncols, (3.0, 2.1), dpi, title=title)
    for ax, metric in zip(axes, metrics, strict=False):
        values = pd.to_numeric(frame[metric], errors="coerce")
        groups = [part for _, part in frame.groupby(pairs, sort=True)]
        for part, linestyle in zip(groups, LINESTYLES * 8, strict=False):
            dense = values[part.index[part["method"] == DENSE]].dropna()
            if len(dense):
                ax.axhline(float(dense.mean()), color="black", ls=":", lw=1.0)
            for method, rows in part[part["method"] != DENSE].groupby("method", sort=True):
                stats = values[rows.index].groupby(rows["sparsity"]).agg(["mean", "std"])
                stats = stats.dropna(subset=["mean"])
                if stats.empty:
                    continue
                x, mean = stats.index.to_numpy(float), stats["mean"].to_numpy(float)
                std = stats["std"].fillna(0.0).to_numpy(float)
                st = styles[str(method)]
                ax.plot(x, mean, linestyle=linestyle, marker=st["marker"], ms=3.5, lw=1.3,
                        color=st["color"])
                ax.fill_between(x, mean - std, mean + std, color=st["color"], alpha=0.18, lw=0)
        ax.set_title(metric.removeprefix("mge."), fontsize=9)
        ax.set_xlabel("sparsity", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, lw=0.5)
        finite = values[np.isfinite(values)]
        if len(finite) and finite.min() > 0 and finite.max() / finite.min() > LOG_RATIO:
            ax.set_yscale("log")
    handles = [Line2D([], [], color=s["color"], marker=s["marker"], lw=1.3, label=m)
               for m, s in styles.items() if m != DENSE]
    if DENSE in styles:
        handles.append(Line2D([], [], color="black", ls=":", lw=1.0, label="dense (mean)"))
    pair_names = sorted(frame.groupby(pairs).groups)
    if len(pair_names) > 1:
        handles += [Line2D([], [], color="0.3", ls=ls, label="/".join(map(str, p)))
                    for p, ls in zip(pair_names, LINESTYLES * 8, strict=False)]
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, legend_y),
               ncol=min(len(handles), 9), fontsize=8, frameon=False)
    return save_png(fig, path, dpi)


def predicted_vs_measured(
    predictions_df: pd.DataFrame, path: str | os.PathLike, *, sets: list[str] | None = None,
    dpi: int = 110,
) -> Path:
    """Out-of-fold predicted against measured accuracy drop, one panel per set and protocol.

    Columns of panels are feature sets, rows protocols; one colour per pruning method, the
    diagonal ``y = x``, and in each panel the mean over (model, dataset) pairs of ``R^2`` and
    ``MAE`` (each pair has its own regressor and its own scale).

    Parameters
    ----------
    predictions_df : pandas.DataFrame
        ``predictions.csv`` of ``study fit``: ``feature_set``, ``protocol``, ``method``,
        ``measured``, ``predicted`` (``model``, ``dataset`` when present).
    path : str or path-like
        PNG file, written atomically.
    sets : list of str, optional
        Feature sets to draw; default: those of :data:`SHOWN_SETS` present, else all.
    dpi : int
        Resolution.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    InputError
        A table lacking a column, or without a row holding both values.
    """
    require_columns(predictions_df, ["feature_set", "protocol", "method", "measured",
                                     "predicted"], "predictions table")
    frame = predictions_df.dropna(subset=["measured", "predicted"])
    if frame.empty:
        raise InputError("predictions table has no row with both measured and predicted values")
    present = _ordered(frame["feature_set"], SET_ORDER)
    sets = sets or [s for s in SHOWN_SETS if s in present] or present
    protocols = _ordered(frame["protocol"], PROTOCOLS)
    styles = method_styles(frame["method"].unique())
    both = np.concatenate([frame["measured"].to_numpy(float), frame["predicted"].to_numpy(float)])
    lo, hi = float(both.min()), float(both.max())
    pad = 0.05 * (hi - lo) if hi > lo else 1.0
    lims = (lo - pad, hi + pad)
    fig = Figure(figsize=(2.7 * len(sets) + 0.4, 2.7 * len(protocols) + 0.6), dpi=dpi,
                 layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(protocols), len(sets), squeeze=False, sharex=True, sharey=True)
    for r, protocol in enumerate(protocols):
        for c, feature_set in enumerate(sets):
            ax = axes[r, c]
            part = frame[(frame["protocol"] == protocol) & (frame["feature_set"] == feature_set)]
            ax.plot(lims, lims, color="0.5", lw=0.8, ls="--", zorder=1)
            for method, rows in part.groupby("method", sort=True):
                st = styles[str(method)]
                ax.scatter(rows["measured"], rows["predicted"], s=12, alpha=0.75,
                           color=st["color"], marker=st["marker"], lw=0, zorder=2)
            r2, mae = _mean_pair_scores(part)
            ax.text(0.04, 0.96, f"$R^2$ = {r2:.3f}\nMAE = {mae:.3g}\nn = {len(part)}",
                    transform=ax.transAxes, va="top", fontsize=7,
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.5})
            ax.set_xlim(lims)
            ax.set_ylim(lims)
            ax.set_aspect("equal")
            ax.grid(alpha=0.3, lw=0.5)
            ax.tick_params(labelsize=7)
            if r == 0:
                ax.set_title(feature_set, fontsize=9)
            if r == len(protocols) - 1:
                ax.set_xlabel("measured drop", fontsize=8)
            if c == 0:
                ax.set_ylabel(f"{protocol}\npredicted drop", fontsize=8)
    handles = [Line2D([], [], color=s["color"], marker=s["marker"], ls="", label=m)
               for m, s in styles.items()]
    fig.legend(handles=handles, loc="outside upper center", ncol=min(len(handles), 9),
               fontsize=8, frameon=False)
    return save_png(fig, path, dpi)


def shap_summary(
    importance_df: pd.DataFrame, path: str | os.PathLike, *, top: int = 10, dpi: int = 110
) -> Path:
    """Mean ``|SHAP|`` of the most important features of each feature set, as bars.

    One panel per feature set: the ``top`` features by mean ``|SHAP|`` overall (rows with
    ``scope == "overall"`` when the table has a ``scope`` column), as horizontal bars coloured
    by feature family (the prefix before the first dot, :data:`FAMILIES`).

    Parameters
    ----------
    importance_df : pandas.DataFrame
        ``importance.csv`` of ``study fit``: ``feature_set``, ``feature``, ``mean_abs_shap``
        (``scope`` when present).
    path : str or path-like
        PNG file, written atomically.
    top : int
        Features per set, at least 1.
    dpi : int
        Resolution.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    InputError
        A table lacking a column or an overall row, or ``top`` below 1.

    References
    ----------
    Lundberg, S. M., Lee, S.-I. (2017). A Unified Approach to Interpreting Model Predictions.
    *NeurIPS* (SHAP).
    """
    require_columns(importance_df, ["feature_set", "feature", "mean_abs_shap"],
                    "importance table")
    if top < 1:
        raise InputError(f"top must be >= 1, got {top}")
    frame = importance_df
    if "scope" in frame.columns:
        frame = frame[frame["scope"] == "overall"]
    if frame.empty:
        raise InputError("importance table has no overall (scope == 'overall') row")
    sets = _ordered(frame["feature_set"], SET_ORDER)
    palette = colormaps["tab10"].colors
    family_colour = {f: palette[i] for i, f in enumerate(FAMILIES)}
    ncols = min(3, len(sets))
    nrows = math.ceil(len(sets) / ncols)
    fig = Figure(figsize=(4.6 * ncols, (0.25 * top + 0.9) * nrows + 0.4), dpi=dpi,
                 layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    used = set()
    for ax, feature_set in zip(axes, sets, strict=False):
        part = frame[frame["feature_set"] == feature_set]
        means = part.groupby("feature")["mean_abs_shap"].mean().nlargest(top)[::-1]
        families = [str(f).split(".", 1)[0] for f in means.index]
        used.update(families)
        colours = [family_colour.get(f, "0.6") for f in families]
        ax.barh(np.arange(len(means)), means.to_numpy(float), color=colours)
        ax.set_yticks(np.arange(len(means)))
        ax.set_yticklabels([_feature_label(f) for f in means.index], fontsize=7)
        ax.set_ylim(len(means) - top - 0.5, len(means) - 0.5)  # same bar height in all panels
        ax.set_title(feature_set, fontsize=9)
        ax.set_xlabel("mean |SHAP|", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", alpha=0.3, lw=0.5)
    for ax in axes[len(sets):]:
        ax.set_visible(False)
    handles = [Patch(color=family_colour[f], label=f) for f in FAMILIES if f in used]
    if handles:
        fig.legend(handles=handles, loc="outside upper center", ncol=len(handles), fontsize=8,
                   frameon=False)
    return save_png(fig, path, dpi)


# --------------------------------------------------------------------------------- helpers
def _ok_runs(runs_df: pd.DataFrame) -> pd.DataFrame:
    """Runs with status ``ok`` (all runs when there is no ``status`` column)."""
    if "status" in runs_df.columns:
        return runs_df[runs_df["status"] == "ok"]
    return runs_df


def _pairs(frame: pd.DataFrame) -> list[str]:
    """Group-by keys separating (model, dataset) pairs (a constant key when absent)."""
    keys = [c for c in ("model", "dataset") if c in frame.columns]
    return keys or [pd.Series(0, index=frame.index)]


def _grid(
    n: int, ncols: int, panel: tuple[float, float], dpi: int, title: str | None = None
) -> tuple[Figure, list, float]:
    """A figure with ``n`` visible panels of ``panel`` inches, ``ncols`` per row, fixed margins
    (a layout engine costs seconds on a grid of 20 panels), an optional title, and the
    legend's top (figure fraction)."""
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    top, bottom, left, right, gap_w, gap_h = 0.7, 0.45, 0.6, 0.15, 0.6, 0.6  # inches
    top += 0.3 if title else 0.0
    width = left + right + ncols * panel[0] + (ncols - 1) * gap_w
    height = top + bottom + nrows * panel[1] + (nrows - 1) * gap_h
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                        top=1 - top / height, wspace=gap_w / panel[0], hspace=gap_h / panel[1])
    axes = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=11, y=1 - 0.08 / height, va="top")
    return fig, axes[:n], 1 - (0.4 if title else 0.1) / height


def _ordered(values: pd.Series, preferred: tuple[str, ...]) -> list[str]:
    """Distinct values, those in ``preferred`` first in that order, the rest sorted."""
    present = {str(v) for v in values.unique()}
    return [p for p in preferred if p in present] + sorted(present - set(preferred))


def _default(values: pd.Series, wanted: str, preferred: tuple[str, ...]) -> str:
    present = _ordered(values, preferred)
    return wanted if wanted in present else present[0]


def _mean_pair_scores(part: pd.DataFrame) -> tuple[float, float]:
    """Mean over (model, dataset) pairs of R^2 and MAE (NaN without rows)."""
    # here, not at the top: scoring imports scikit-learn (1.4 s), which analyze's MGE picture
    # (same package) does not need
    from sparsetopo.study.scoring import regression_scores

    scores = [regression_scores(g["measured"], g["predicted"])
              for _, g in part.groupby(_pairs(part), sort=True)]
    if not scores:
        return float("nan"), float("nan")
    r2 = [r for r, _ in scores if np.isfinite(r)]
    return (float(np.mean(r2)) if r2 else float("nan"), float(np.mean([m for _, m in scores])))


def _feature_label(name: str, limit: int = 34) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"
