"""The picture of ``sparsetopo compare``: masks of one network side by side, layer by layer."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sparsetopo.plot._common import method_styles, save_png

ANNOTATE_MAX_CELLS = 400  # Jaccard cells beyond this are too small for their values


def compare(result: dict, path: str | os.PathLike | None = None, *, dpi: int = 110
            ) -> Path | Figure:
    """Three panels over the conv/linear layers (in the order of the network's modules), one
    colour per network: the density of each layer (log scale), its effective density (the
    fraction of its present weights on an input->output path, identity skips included; no
    point where a layer keeps no weight), and the Jaccard index of the present weights of every
    pair of networks (one row per pair, the index over all layers in its label).

    Parameters
    ----------
    result
        What :func:`sparsetopo.comparison.compare_networks` returns.
    path
        PNG file, written atomically; ``None`` returns the ``matplotlib.figure.Figure``
        instead (to show in a notebook).
    dpi
        Resolution.

    Returns
    -------
    Path or Figure
        ``path``, or the figure when ``path`` is None.
    """
    layers = [row["layer"] for row in result["layers"]]
    labels = result["labels"]
    pairs = result["overlap"]
    n = len(layers)
    x = np.arange(n)
    width = min(max(7.5, 0.32 * n + 2.6), 24.0)
    heights = (2.3, 2.0, 0.32 * len(pairs) + 0.5)
    top, bottom = 0.75, 0.15 + 0.066 * max(map(len, layers), default=4)  # inches
    gap = 0.35
    height = top + bottom + sum(heights) + 2 * gap
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    left = 0.25 + 0.075 * max(len(_pair_label(p)) for p in pairs)
    fig.subplots_adjust(left=left / width, right=1 - 0.45 / width, bottom=bottom / height,
                        top=1 - top / height, hspace=gap / (sum(heights) / 3))
    axes = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": heights})
    styles = method_styles(labels)
    sparsity = {net["label"]: net["sparsity"] for net in result["networks"]}
    for label in labels:
        st = styles[label]
        density = np.array([row["networks"][label]["density"] for row in result["layers"]])
        effective = np.array([np.nan if (v := row["networks"][label]["effective_density"])
                              is None else v for row in result["layers"]], dtype=float)
        axes[0].plot(x, np.where(density > 0, density, np.nan), color=st["color"],
                     marker=st["marker"], ms=4, lw=1.3,
                     label=f"{label} (sparsity {sparsity[label]:.3f})")
        axes[1].plot(x, effective, color=st["color"], marker=st["marker"], ms=4, lw=1.3)
        empty = x[density == 0]
        if empty.size:  # no point on a log axis: a cross on its floor
            axes[0].plot(empty, np.full(empty.size, 0.03), ls="none", marker="x", ms=6,
                         color=st["color"], transform=axes[0].get_xaxis_transform(),
                         clip_on=False)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("density", fontsize=9)
    axes[0].set_title("x on the floor: the layer keeps no weight", fontsize=7, loc="right",
                      color="0.35")
    axes[1].set_ylim(-0.04, 1.04)
    axes[1].set_ylabel("effective\ndensity", fontsize=9)
    for ax in axes[:2]:
        ax.grid(True, axis="both", lw=0.4, alpha=0.5)
        ax.tick_params(labelsize=8)
    _jaccard_panel(axes[2], pairs, n)
    axes[2].set_xticks(x)
    axes[2].set_xticklabels(layers, rotation=90, fontsize=7)
    axes[2].set_xlim(-0.5, n - 0.5)
    shape = "x".join(map(str, result["input_shape"]))
    fig.suptitle(f"{result['model']} on {shape} inputs: {len(labels)} masks compared",
                 fontsize=11, y=1 - 0.08 / height, va="top")
    fig.legend(loc="upper center", bbox_to_anchor=(0.5, 1 - 0.32 / height),
               ncol=min(len(labels), 4), fontsize=8, frameon=False)
    if path is None:
        return fig
    return save_png(fig, path, dpi)


def _pair_label(pair: dict) -> str:
    return f"{pair['a']} / {pair['b']} ({pair['jaccard']:.2f})"


def _jaccard_panel(ax, pairs: list[dict], n_layers: int) -> None:
    grid = np.array([[row["jaccard"] for row in pair["layers"]] for pair in pairs], dtype=float)
    image = ax.imshow(grid, aspect="auto", cmap=colormaps["viridis"], vmin=0.0, vmax=1.0,
                      interpolation="nearest", extent=(-0.5, n_layers - 0.5, len(pairs) - 0.5,
                                                       -0.5))
    if grid.size <= ANNOTATE_MAX_CELLS:
        for (i, j), value in np.ndenumerate(grid):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6,
                    color="black" if value > 0.6 else "white")
    ax.set_yticks(np.arange(len(pairs)))
    ax.set_yticklabels([_pair_label(p) for p in pairs], fontsize=8)
    ax.set_ylabel("Jaccard", fontsize=9)
    cbar = ax.figure.colorbar(image, cax=ax.inset_axes((1.006, 0.0, 0.008, 1.0)))
    cbar.ax.tick_params(labelsize=7)
