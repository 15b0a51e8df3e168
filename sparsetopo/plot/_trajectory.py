"""The topology of dynamic sparse training masks over training: one panel per metric and
sparsity, one line per method.

Input: a trajectory table (``sparsetopo.study.store.load_trajectories``, or one run's
``trajectory_frame``): ``method``, ``sparsity``, ``step``, ``fraction`` (of the training steps)
and the recorded metrics (``effective_density``, ``log10_paths``, ``alive_edges``,
``exploration_rate``, ``initial_mask_kept``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from sparsetopo.errors import InputError
from sparsetopo.plot._common import method_styles, require_columns, save_png
from sparsetopo.plot.metrics import _grid

#: Metrics drawn by default, in order, with their panel titles.
TRAJECTORY_PANELS = {
    "effective_density": "effective density",
    "log10_paths": "log10 paths",
    "alive_edges": "alive edges",
    "exploration_rate": "exploration rate R_s",
    "initial_mask_kept": "initial mask kept",
}
LINESTYLES = ("-", "--", ":", "-.")


def trajectory(
    trajectory_df: pd.DataFrame,
    path: str | os.PathLike,
    metrics: list[str] | None = None,
    *,
    title: str | None = None,
    dpi: int = 110,
) -> Path:
    """The topology of dynamic sparse training masks against the fraction of training.

    One column of panels per metric, one row per sparsity, one colour per method: the mean
    over seeds at each mask update with a band of +- one standard deviation (``ddof=1``; none
    for one seed). Several (model, dataset) pairs get one line style each. Non-finite values
    (``log10_paths`` of a mask without a path) are left out. The recorded quantities are
    defined in ``docs/sparse-training.md`` (*Topology over training*).

    Parameters
    ----------
    trajectory_df : pandas.DataFrame
        A trajectory table (``sparsetopo.study.load_trajectories``, or one run's
        ``sparsetopo.study.store.trajectory_frame`` with ``method`` and ``sparsity`` added):
        ``method``, ``sparsity``, ``step``, ``fraction`` and the metric columns.
    path : str or path-like
        PNG file, written atomically.
    metrics : list of str, optional
        Columns to draw; default: those of :data:`TRAJECTORY_PANELS` with a value.
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
        A table lacking a column asked for.
    ValueError
        A table without a value of any default metric.
    """
    require_columns(trajectory_df, ["method", "sparsity", "step", "fraction"],
                    "trajectory table")
    frame = trajectory_df.replace([np.inf, -np.inf], np.nan)
    if metrics is None:
        metrics = [m for m in TRAJECTORY_PANELS if m in frame.columns
                   and pd.to_numeric(frame[m], errors="coerce").notna().any()]
        if not metrics:
            raise InputError("trajectory table has no recorded metric with a value; it has "
                             f"{list(trajectory_df.columns)}")
    else:
        require_columns(frame, metrics, "trajectory table")
    sparsities = sorted(frame["sparsity"].unique())
    pairs = [c for c in ("model", "dataset") if c in frame.columns]
    pair_names = sorted(frame.groupby(pairs).groups) if pairs else [None]
    linestyles = dict(zip(pair_names, LINESTYLES * 8, strict=False))
    styles = method_styles(frame["method"].unique())
    fig, axes, legend_y = _grid(len(metrics) * len(sparsities), len(metrics), (2.8, 2.0), dpi,
                                title=title)
    for row, sparsity in enumerate(sparsities):
        at = frame[frame["sparsity"] == sparsity]
        for col, metric in enumerate(metrics):
            ax = axes[row * len(metrics) + col]
            for pair, part in (at.groupby(pairs, sort=True) if pairs else [(None, at)]):
                linestyle = linestyles[pair]
                for method, rows in part.groupby("method", sort=True):
                    values = pd.to_numeric(rows[metric], errors="coerce")
                    stats = values.groupby(rows["step"]).agg(["mean", "std"])
                    x = rows.groupby("step")["fraction"].mean().reindex(stats.index)
                    keep = stats["mean"].notna()
                    if not keep.any():
                        continue
                    mean = stats["mean"][keep].to_numpy(float)
                    std = stats["std"][keep].fillna(0.0).to_numpy(float)
                    xs = x[keep].to_numpy(float)
                    color = styles[str(method)]["color"]
                    ax.plot(xs, mean, color=color, linestyle=linestyle, lw=1.3,
                            marker=styles[str(method)]["marker"], ms=2.5)
                    ax.fill_between(xs, mean - std, mean + std, color=color, alpha=0.18, lw=0)
            name = TRAJECTORY_PANELS.get(metric, metric)
            ax.set_title(f"{name}, s={sparsity:g}" if len(sparsities) > 1 else name, fontsize=9)
            ax.set_xlabel("fraction of training", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3, lw=0.5)
    handles = [Line2D([], [], color=s["color"], marker=s["marker"], lw=1.3, label=m)
               for m, s in styles.items()]
    if len(pair_names) > 1:
        handles += [Line2D([], [], color="0.3", ls=ls, label="/".join(map(str, p)))
                    for p, ls in linestyles.items()]
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, legend_y),
               ncol=min(len(handles), 9), fontsize=8, frameon=False)
    return save_png(fig, path, dpi)
