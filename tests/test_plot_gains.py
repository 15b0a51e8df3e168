"""The forest plot of the gains over the baselines: every point and bar where comparison.csv
puts it, filled exactly when the interval lies above 0; the PNG; bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgb
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure
from test_plot import assert_not_blank, read_png

from sparsetopo.plot import gain_forest
from sparsetopo.plot._gains import _baseline_colours
from sparsetopo.study.vocabulary import BASELINES, baseline_columns

SETS = ("sparsity", "density", "effective_sparsity", "mge", "paths")


def comparison_table(protocols=("random", "grouped", "leave-one-method-out"), seed=0):
    """Mean rows (and per-pair rows, which must not be drawn) with random gains and
    asymmetric intervals (``gain - a``, ``gain + b``), so a bar drawn symmetric, swapped or
    from the wrong row is seen."""
    rng = np.random.default_rng(seed)
    rows = []
    for protocol in protocols:
        for scope in ("mean", "conv6"):
            for name in SETS:
                row = {"feature_set": name, "protocol": protocol, "model": scope,
                       "dataset": scope, "r2": 0.5}
                for b in BASELINES:
                    names = baseline_columns(b)
                    gain = 0.0 if name == b else float(rng.normal(0.05, 0.1))
                    a, c = (0.0, 0.0) if name == b else rng.uniform(0.01, 0.12, 2)
                    row.update({names["gain"]: gain + (5.0 if scope != "mean" else 0.0),
                                names["ci_low"]: gain - a, names["ci_high"]: gain + c})
                rows.append(row)
    return pd.DataFrame(rows)


def drawn_points(fig: Figure) -> dict:
    """``{(protocol, set, baseline): (gain, low, high, filled)}`` read back from the figure's
    error bars (y tick labels name the sets, colours the baselines, titles the protocols)."""
    colours = {tuple(np.round(to_rgb(c), 4)): b for b, c in _baseline_colours().items()}
    axes = [ax for ax in fig.axes if ax.get_visible()]
    ticks = axes[0].get_yticks()
    names = [t.get_text() for t in axes[0].get_yticklabels()]
    points = {}
    for ax in axes:
        for container in ax.containers:
            assert isinstance(container, ErrorbarContainer)
            line, _, bars = container.lines
            baseline = colours[tuple(np.round(to_rgb(line.get_color()), 4))]
            filled = to_rgb(line.get_markerfacecolor()) != (1.0, 1.0, 1.0)
            segments = bars[0].get_segments() if container.has_xerr else None
            for i, (x, y) in enumerate(zip(line.get_xdata(), line.get_ydata(), strict=True)):
                name = names[int(np.argmin(np.abs(ticks - y)))]
                xs = segments[i][:, 0] if segments is not None else np.array([np.nan])
                points[(ax.get_title(), name, baseline)] = (x, xs.min(), xs.max(), filled)
    return points


def test_every_gain_is_drawn_with_its_interval_and_filled_iff_above_zero():
    table = comparison_table()
    for name, gain, low in (("mge", 0.1, 0.02), ("paths", 0.1, -0.01)):  # above 0, just below
        rows = (table["feature_set"] == name) & (table["model"] == "mean")
        table.loc[rows, ["gain_over_sparsity", "gain_over_sparsity_ci_low",
                         "gain_over_sparsity_ci_high"]] = gain, low, gain + 0.05
    fig = gain_forest(table)
    assert isinstance(fig, Figure)
    points = drawn_points(fig)
    head = table[table["model"] == "mean"]
    expected = {}
    for _, row in head.iterrows():
        for b in BASELINES:
            if row["feature_set"] == b:
                continue  # not against itself
            names = baseline_columns(b)
            expected[(row["protocol"], row["feature_set"], b)] = (
                row[names["gain"]], row[names["ci_low"]], row[names["ci_high"]],
                row[names["ci_low"]] > 0)
    assert set(points) == set(expected)
    for key, (gain, low, high, filled) in expected.items():
        got = points[key]
        assert got[:3] == pytest.approx((gain, low, high), abs=1e-12), key
        assert got[3] == filled, key
    assert points[("random", "mge", "sparsity")][3]
    assert not points[("random", "paths", "sparsity")][3]


def test_one_panel_per_protocol_with_a_line_at_zero(tmp_path):
    table = comparison_table(protocols=("leave-one-category-out", "random", "grouped"))
    fig = gain_forest(table, baselines=["sparsity"])
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["random", "grouped", "leave-one-category-out"]
    for ax in axes:
        assert any(np.allclose(line.get_xdata(), 0) for line in ax.lines
                   if len(line.get_xdata()) == 2)
    assert {b for *_, b in drawn_points(fig)} == {"sparsity"}
    path = gain_forest(table, tmp_path / "g.png", dpi=60)
    rgb = read_png(path)
    assert_not_blank(rgb)
    assert rgb.shape[1] == round(fig.get_figwidth() * 60)


def test_a_table_without_intervals_draws_points_without_bars():
    table = comparison_table(protocols=("grouped",))
    table = table.drop(columns=[c for c in table.columns if c.endswith(("_ci_low", "_ci_high"))])
    points = drawn_points(gain_forest(table))
    assert points and all(np.isnan(low) and np.isnan(high) and not filled
                          for _, low, high, filled in points.values())


def test_gain_forest_rejects_bad_input(tmp_path):
    table = comparison_table()
    with pytest.raises(ValueError, match="mean rows"):
        gain_forest(table[table["model"] != "mean"], tmp_path / "g.png")
    with pytest.raises(ValueError, match="no gain column"):
        gain_forest(table[["feature_set", "protocol", "model"]], tmp_path / "g.png")
    with pytest.raises(ValueError, match="no gain over"):
        gain_forest(table.drop(columns=["gain_over_density"]), tmp_path / "g.png",
                    baselines=["density"])
    with pytest.raises(ValueError, match="protocol"):
        gain_forest(table.drop(columns=["protocol"]), tmp_path / "g.png")
    assert not (tmp_path / "g.png").exists()
