"""The answer of a study as a picture: each feature set's gain in R^2 over the baselines, with
its 95% interval, one panel per protocol (a forest plot).

Input: ``comparison.csv`` of ``study fit``: per baseline ``b`` (``sparsity``, ``density``,
``effective_sparsity``), the gain ``gain_over_<b>`` = R^2(set) - R^2(b) on the same runs and
folds and its 95% Student-t interval over the outer folds ``gain_over_<b>_ci_low``,
``gain_over_<b>_ci_high`` (``docs/study.md``, *Gains, spread and intervals*). The rows with
``model = mean`` (the mean over (model, dataset) pairs) are drawn; nothing is recomputed.

References
----------
Lewis, S., Clarke, M. (2001). Forest plots: trying to see the wood and the trees. BMJ 322.

Nadeau, C., Bengio, Y. (2003). Inference for the Generalization Error. Machine Learning 52.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from sparsetopo.errors import InputError
from sparsetopo.plot._common import require_columns, save_png
from sparsetopo.study.vocabulary import (
    BASELINE_LABELS,
    BASELINES,
    PROTOCOLS,
    SET_ORDER,
    baseline_columns,
)

MEAN = "mean"
#: Vertical room of one feature set (inches) and the offset between its baselines' rows.
ROW_IN = 0.34
OFFSET = 0.22


def _gain_baselines(comparison: pd.DataFrame) -> list[str]:
    """The baselines whose gain ``comparison`` carries with a value, in report order.

    Parameters
    ----------
    comparison : pandas.DataFrame
        ``comparison.csv`` of ``study fit``.

    Returns
    -------
    list of str
        Names of :data:`~sparsetopo.study.vocabulary.BASELINES` whose ``gain_over_<b>`` column
        is present and not all NaN.
    """
    return [b for b in BASELINES if baseline_columns(b)["gain"] in comparison.columns
            and comparison[baseline_columns(b)["gain"]].notna().any()]


def _above_zero(comparison: pd.DataFrame, baseline: str) -> pd.Series:
    """Whether each row's 95% interval of the gain over ``baseline`` lies above 0.

    Parameters
    ----------
    comparison : pandas.DataFrame
        ``comparison.csv`` of ``study fit``.
    baseline : str
        One of :data:`~sparsetopo.study.vocabulary.BASELINES`.

    Returns
    -------
    pandas.Series of bool
        ``gain_over_<baseline>_ci_low > 0``; False where the table has no interval.
    """
    low = baseline_columns(baseline)["ci_low"]
    if low not in comparison.columns:
        return pd.Series(False, index=comparison.index)
    return pd.to_numeric(comparison[low], errors="coerce").gt(0).fillna(False).astype(bool)


def gain_forest(
    comparison: pd.DataFrame,
    path: str | os.PathLike | None = None,
    *,
    baselines: list[str] | None = None,
    dpi: int = 110,
) -> Path | Figure:
    """Forest plot of the gains of the feature sets over the baselines, one panel per protocol.

    In each panel (a protocol of :data:`~sparsetopo.study.vocabulary.PROTOCOLS` present in the
    table, in that order, two panels per row) the feature sets are on the y axis (report order)
    and the gain in R^2 over a baseline on the x axis: ``gain = R^2(set) - R^2(baseline)`` on
    the same runs and outer folds, mean over (model, dataset) pairs, drawn as a point with its
    95% Student-t interval over the outer folds as an error bar, one colour per baseline (a set
    is not drawn against itself). A vertical line marks 0 (no gain). A point whose whole
    interval lies above 0 is filled and its bar drawn thick; the others are hollow and thin.
    Every value is read from the table as ``study fit`` wrote it.

    Parameters
    ----------
    comparison : pandas.DataFrame
        ``comparison.csv`` of ``study fit``: ``feature_set``, ``protocol``, ``model`` and, per
        baseline, ``gain_over_<b>`` with ``gain_over_<b>_ci_low`` and ``gain_over_<b>_ci_high``
        (a table without intervals gets points without bars). The rows with ``model = mean``
        are drawn.
    path : str or path-like, optional
        PNG file, written atomically; ``None`` returns the ``matplotlib.figure.Figure``
        instead (to show in a notebook).
    baselines : list of str, optional
        Baselines to draw; default: every baseline whose gain the table carries
        (every ``gain_over_<b>`` column with a value).
    dpi : int
        Resolution.

    Returns
    -------
    pathlib.Path or matplotlib.figure.Figure
        ``path``, or the figure when ``path`` is None.

    Raises
    ------
    InputError
        A table lacking a column, without mean rows or without any gain, or an unknown
        baseline.

    References
    ----------
    .. [1] Lewis, S., Clarke, M. "Forest plots: trying to see the wood and the trees." BMJ 322
       (2001).
    .. [2] Nadeau, C., Bengio, Y. "Inference for the Generalization Error." Machine Learning 52
       (2003).
    """
    require_columns(comparison, ["feature_set", "protocol", "model"], "comparison table")
    head = comparison[comparison["model"].astype(str) == MEAN]
    if head.empty:
        raise InputError("comparison table has no mean rows (model 'mean'): give the "
                         "comparison.csv of `sparsetopo study fit`")
    present = _gain_baselines(head)
    if baselines is None:
        baselines = present
    unknown = [b for b in baselines if b not in present]
    if unknown:
        raise InputError(f"comparison table has no gain over {unknown}; it has gains over "
                         f"{present}")
    if not baselines:
        raise InputError("comparison table has no gain column (gain_over_sparsity, ...): give "
                         "the comparison.csv of `sparsetopo study fit`")
    protocols = _ordered(head["protocol"], PROTOCOLS)
    sets = _ordered(head["feature_set"], SET_ORDER)
    colours = _baseline_colours()
    ncols = min(2, len(protocols))
    nrows = -(-len(protocols) // ncols)
    label_in = 0.35 + 0.075 * max(map(len, sets))
    panel_h = ROW_IN * len(sets) + 0.2
    top_in, bottom_in, gap_in = 0.85, 0.5, 0.75
    width = label_in + 3.9 * ncols + 0.45 * (ncols - 1) + 0.25
    height = top_in + bottom_in + nrows * panel_h + (nrows - 1) * gap_in
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=label_in / width, right=1 - 0.25 / width,
                        bottom=bottom_in / height, top=1 - top_in / height,
                        wspace=0.45 / 3.9, hspace=gap_in / panel_h)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    y_of = {name: float(i) for i, name in enumerate(sets)}
    shift = {b: OFFSET * (i - (len(baselines) - 1) / 2) for i, b in enumerate(baselines)}
    for k, protocol in enumerate(protocols):
        ax = axes[k // ncols, k % ncols]
        part = head[head["protocol"].astype(str) == protocol]
        ax.axvline(0.0, color="0.25", lw=1.0, zorder=1)
        for baseline in baselines:
            _draw_baseline(ax, part, baseline, y_of, shift[baseline], colours[baseline])
        ax.set_title(protocol, fontsize=10)
        ax.grid(True, axis="x", lw=0.4, alpha=0.5)
        ax.tick_params(labelsize=8)
        if k // ncols == nrows - 1 or k + ncols >= len(protocols):
            ax.set_xlabel("gain in $R^2$ over the baseline", fontsize=8)
    for k in range(len(protocols), nrows * ncols):
        axes[k // ncols, k % ncols].set_visible(False)
    first = axes[0, 0]
    first.set_yticks(list(y_of.values()))
    first.set_yticklabels(sets, fontsize=8)
    first.set_ylim(len(sets) - 0.5, -0.5)
    handles = [Line2D([], [], color=colours[b], marker="o", ls="-", lw=2.2, ms=6,
                      label=f"over {BASELINE_LABELS[b]}") for b in baselines]
    handles.append(Line2D([], [], color="0.3", marker="o", mfc="white", ls="-", lw=0.9, ms=6,
                          label="interval contains or is below 0"))
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 1 - 0.38 / height),
               ncol=min(len(handles), 4), fontsize=8, frameon=False)
    fig.suptitle("Gain in R² over the baselines (mean over pairs; bars: 95% interval over "
                 "the outer folds; filled: interval above 0)", fontsize=10,
                 y=1 - 0.08 / height, va="top")
    if path is None:
        return fig
    return save_png(fig, path, dpi)


def _baseline_colours() -> dict[str, tuple]:
    """One fixed colour per baseline (tab10, in the order of
    :data:`~sparsetopo.study.vocabulary.BASELINES`).

    Returns
    -------
    dict of str to tuple
        ``{baseline: RGB}``.
    """
    palette = colormaps["tab10"].colors
    return {b: palette[i] for i, b in enumerate(BASELINES)}


def _draw_baseline(ax, part: pd.DataFrame, baseline: str, y_of: dict[str, float],
                   shift: float, colour) -> None:
    """The gains over ``baseline`` of the sets of one protocol: filled and thick where the
    interval lies above 0, hollow and thin elsewhere."""
    names = baseline_columns(baseline)
    rows = part[(part["feature_set"].astype(str) != baseline)
                & pd.to_numeric(part[names["gain"]], errors="coerce").notna()]
    if rows.empty:
        return
    gain = rows[names["gain"]].to_numpy(float)
    low = _column(rows, names["ci_low"])
    high = _column(rows, names["ci_high"])
    y = rows["feature_set"].astype(str).map(y_of).to_numpy(float) + shift
    good = _above_zero(rows, baseline).to_numpy()
    bounded = np.isfinite(low) & np.isfinite(high)
    for mask, filled in ((good & bounded, True), (~good & bounded, False),
                         (~good & ~bounded, False)):
        if not mask.any():
            continue
        # asymmetric bars from the written bounds; no bar where a bound is missing
        xerr = (np.clip(np.vstack([gain[mask] - low[mask], high[mask] - gain[mask]]), 0, None)
                if bounded[mask].all() else None)
        ax.errorbar(gain[mask], y[mask], xerr=xerr, fmt="o", ms=6 if filled else 5,
                    color=colour, mfc=colour if filled else "white", mec=colour,
                    elinewidth=2.2 if filled else 0.9, capsize=3 if filled else 2,
                    zorder=3 if filled else 2)


def _column(rows: pd.DataFrame, name: str) -> np.ndarray:
    if name not in rows.columns:
        return np.full(len(rows), np.nan)
    return pd.to_numeric(rows[name], errors="coerce").to_numpy(float)


def _ordered(values: pd.Series, preferred: tuple[str, ...]) -> list[str]:
    present = {str(v) for v in values.unique()}
    return [p for p in preferred if p in present] + sorted(present - set(preferred))
