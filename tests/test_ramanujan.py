"""Ramanujan metrics (SPEC 5) against a direct numpy implementation of the formulas: dense
``numpy.linalg.eigvalsh`` of the full symmetric bipartite adjacency, magnitudes sorted
descending, index 0 (largest) and index 2 (third largest)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from torch import nn
from torch.nn.utils import prune

# the module itself (sparsetopo.metrics re-exports a function of the same name)
import sparsetopo.metrics._ramanujan as mod
from sparsetopo.metrics._ramanujan import (
    COLUMNS,
    _top2_singular_values,
    bge_biadjacency,
    layer_ramanujan,
    ramanujan,
    ramanujan_summary,
)

RTOL = 1e-6
METRICS = COLUMNS[3:]


# --- oracle: the SPEC 5 formulas, written directly on dense numpy arrays -------------------
def magnitudes(b: np.ndarray) -> np.ndarray:
    """|eigenvalues| of [[0, b], [b^T, 0]], descending."""
    n_right, n_left = b.shape
    a = np.zeros((n_right + n_left, n_right + n_left))
    a[:n_right, n_right:] = b
    a[n_right:, :n_right] = b.T
    return np.sort(np.abs(np.linalg.eigvalsh(a)))[::-1]


def biadjacency(weight: torch.Tensor, mask: torch.Tensor) -> sp.csr_matrix:
    """``C_out x (C_in*kh*kw)`` CSR of the weights where ``mask`` is set, explicit zeros kept
    (a present weight of value 0 is still an edge)."""
    w = (weight * mask).detach().reshape(weight.shape[0], -1).numpy().astype(np.float64)
    m = mask.detach().reshape(mask.shape[0], -1).numpy().astype(bool)
    rows, cols = np.nonzero(m)
    return sp.csr_matrix((w[rows, cols], (rows, cols)), shape=m.shape)


def oracle_graph(present: np.ndarray, absw: np.ndarray) -> dict[str, float] | None:
    """SPEC 5 metrics of one bipartite graph (rows = right nodes, columns = left nodes), None
    when it has 3 or fewer nodes once zero-degree nodes are removed."""
    rows = present.sum(axis=1) > 0
    cols = present.sum(axis=0) > 0
    b = present[rows][:, cols].astype(np.float64)
    w = absw[rows][:, cols].astype(np.float64)
    if b.shape[0] + b.shape[1] <= 3:
        return None
    edges = b.sum()
    d_left, d_right = edges / b.shape[1], edges / b.shape[0]
    mu_hat = magnitudes(b)[2]
    bound = math.sqrt(d_left - 1) + math.sqrt(d_right - 1)
    mags_w = magnitudes(w)
    return {
        "d_left": d_left,
        "d_right": d_right,
        "mu_hat": mu_hat,
        "delta_r": bound - mu_hat,
        "delta_r_norm": (bound - mu_hat) / bound if bound > 0 else math.nan,
        "weighted_spectral_gap": mags_w[0] - mags_w[2],
        "bound": bound,
        "top": max(magnitudes(b)[0], mags_w[0]),
    }


def oracle_layer(weight: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """All columns of one layer; the iterative means by a naive loop over left degrees."""
    out_ch = weight.shape[0]
    present = mask.reshape(out_ch, -1).astype(bool)
    absw = np.abs(weight.reshape(out_ch, -1)) * present
    res = dict.fromkeys(METRICS, math.nan)
    res["density"] = present.mean()
    if present.sum() == 0:
        return res
    res["d_left"] = present.sum() / (present.sum(axis=0) > 0).sum()
    res["d_right"] = present.sum() / (present.sum(axis=1) > 0).sum()
    whole = oracle_graph(present, absw)
    if whole is not None:
        res.update({k: whole[k] for k in ("mu_hat", "delta_r", "delta_r_norm")})
        res["weighted_spectral_gap"] = whole["weighted_spectral_gap"]
        res["bound"], res["top"] = whole["bound"], whole["top"]
    left_degree = present.sum(axis=0)
    gaps, norms = [], []
    for d in sorted(set(left_degree.tolist())):
        if d < 3:
            continue
        cols = left_degree == d
        sub = oracle_graph(present[:, cols], absw[:, cols])
        if sub is None or sub["d_right"] < 3:  # dL = d >= 3; the group needs dR >= 3 too
            continue
        assert sub["d_left"] == d
        gaps.append(sub["weighted_spectral_gap"])
        norms.append(sub["delta_r_norm"])
    res["n_groups"] = len(gaps)
    if gaps:
        res["iterative_spectral_gap"] = float(np.mean(gaps))
        res["iterative_delta_r_norm"] = float(np.mean(norms))
    return res


def assert_matches(got: dict, want: dict) -> None:
    """Every metric to RTOL relative; values that are ~0 by cancellation against the scale of
    the quantities they were computed from (atol = 1e-9 * that scale)."""
    scale = max(want.get("top", 1.0), want.get("bound", 1.0), 1.0)
    scale = 1.0 if math.isnan(scale) else scale
    for key in METRICS:
        g, w = got[key], want[key]
        if math.isnan(w):
            assert math.isnan(g), f"{key}: expected NaN, got {g}"
        else:
            atol = 1e-9 * scale if key not in ("density", "d_left", "d_right") else 0.0
            assert g == pytest.approx(w, rel=RTOL, abs=atol), key


def random_layer(shape, density, seed):
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(shape, generator=g)
    mask = torch.rand(shape, generator=g) < density
    return weight, mask


SHAPES = [
    (8, 4, 3, 3),  # conv
    (16, 3, 3, 3),
    (16, 1, 3, 3),  # depthwise-like: 9 left nodes
    (24, 1, 3, 3),
    (12, 8, 1, 1),  # pointwise
    (6, 6, 3, 3),
    (20, 30),  # linear
    (30, 12),
    (5, 40),
]
CASES = [
    (shape, density, seed)
    for i, shape in enumerate(SHAPES)
    for density, seed in ((0.35, i), (0.7, 100 + i), (1.0, 200 + i))
]


# --- biadjacency ------------------------------------------------------------------------------
def test_bge_biadjacency_layout_and_present_zero_weights():
    weight = torch.arange(1.0, 2 * 3 * 2 * 2 + 1).reshape(2, 3, 2, 2)
    mask = torch.ones_like(weight, dtype=torch.bool)
    mask[1, 2, 1, 0] = False
    weight[0, 1, 0, 1] = 0.0  # present (mask 1) but zero: still an edge
    conv = nn.Conv2d(3, 2, 2, bias=False)
    conv.weight.data.copy_(weight)
    prune.custom_from_mask(conv, "weight", mask.float())
    from sparsetopo.encoding import rolled

    b = bge_biadjacency(rolled(nn.Sequential(conv))[0])
    assert b.shape == (2, 12)
    assert b.nnz == 23
    dense = b.toarray()
    # right node i = output channel, left node j = (c*kh + y)*kw + x
    assert dense[1, (2 * 2 + 1) * 2 + 0] == 0 and dense[0, (1 * 2 + 0) * 2 + 1] == 0
    assert dense[1, 0] == weight[1, 0, 0, 0]
    pattern = np.zeros((2, 12), dtype=bool)
    rows, cols = b.nonzero()  # nonzero() drops explicit zeros: rebuild from the structure
    pattern[np.repeat(np.arange(2), np.diff(b.indptr)), b.indices] = True
    np.testing.assert_array_equal(pattern, mask.reshape(2, -1).numpy())
    assert len(rows) == 22


# --- spectra: s2 is the third largest eigenvalue magnitude --------------------------------------
@pytest.mark.parametrize("shape", [(7, 19), (19, 7), (30, 30), (4, 3)])
@pytest.mark.parametrize("route", ["gram", "svds"])
def test_top2_singular_values_are_eigenvalue_magnitudes_0_and_2(shape, route, monkeypatch):
    if route == "svds":  # every shape has min(shape) >= 3 > k = 2, as svds needs
        monkeypatch.setattr(mod, "GRAM_MAX_DIM", 2)
        assert mod._route(*shape, 1) == "svds"
    rng = np.random.default_rng(sum(shape))
    dense = np.abs(rng.standard_normal(shape)) * (rng.random(shape) < 0.6)
    s1, s2 = _top2_singular_values(sp.csr_matrix(dense))
    mags = magnitudes(dense)
    assert s1 == pytest.approx(mags[0], rel=RTOL)
    assert s2 == pytest.approx(mags[2], rel=RTOL)
    assert mags[1] == pytest.approx(mags[0], rel=1e-9)  # the +-s1 pair


def test_top2_rank_one_gives_exact_zero_second_value():
    """Complete bipartite graph / rank-one |w|: s2 = 0 to the accuracy of an SVD."""
    u, v = np.arange(1.0, 9.0), np.linspace(0.5, 3.0, 13)
    s1, s2 = _top2_singular_values(sp.csr_matrix(np.outer(u, v)))
    assert s1 == pytest.approx(np.linalg.norm(u) * np.linalg.norm(v), rel=1e-12)
    assert abs(s2) < 1e-12 * s1


# --- whole layers against the oracle ------------------------------------------------------
@pytest.mark.parametrize(("shape", "density", "seed"), CASES)
def test_layer_matches_numpy_oracle(shape, density, seed):
    weight, mask = random_layer(shape, density, seed)
    got = layer_ramanujan(biadjacency(weight, mask))
    want = oracle_layer((weight * mask).numpy(), mask.numpy())
    assert_matches(got, want)


def test_oracle_cases_exercise_defined_values_and_iterative_groups():
    """Guard against a vacuous parametrisation: most cases define every metric, several
    iterative means average more than one degree group, and some groups are skipped."""
    defined = multi_group = 0
    for shape, density, seed in CASES:
        weight, mask = random_layer(shape, density, seed)
        want = oracle_layer((weight * mask).numpy(), mask.numpy())
        defined += not math.isnan(want["delta_r"])
        multi_group += want.get("n_groups", 0) > 1
    assert defined >= len(CASES) - 3
    assert multi_group >= 5


def test_iterative_skips_groups_with_small_right_degree():
    """Left degrees 3 (one node: dR = 1, skipped) and 4 (six nodes on 6 right nodes: dR = 4)."""
    present = np.zeros((6, 7), dtype=bool)
    present[:3, 0] = True
    for j in range(1, 7):
        present[[(j + k) % 6 for k in range(4)], j] = True
    weight = torch.from_numpy(np.where(present, np.linspace(-2, 2, 42).reshape(6, 7), 0.0))
    mask = torch.from_numpy(present)
    got = layer_ramanujan(biadjacency(weight.float(), mask))
    want = oracle_layer(weight.float().numpy(), present)
    assert want["n_groups"] == 1
    assert_matches(got, want)
    sub = oracle_graph(present[:, 1:], np.abs(weight.numpy()[:, 1:]))
    assert got["iterative_delta_r_norm"] == pytest.approx(sub["delta_r_norm"], rel=RTOL)
    assert got["iterative_spectral_gap"] == pytest.approx(sub["weighted_spectral_gap"], rel=RTOL)


def test_iterative_ignores_left_degrees_below_three():
    """15 left nodes of degree 2 (all pairs of 6 right nodes: that group alone has dR = 5) and 6
    of degree 6 (K_{6,6}); whole layer dL = 66/21 >= 3. Only the degree-6 group counts."""
    pairs = [(a, b) for a in range(6) for b in range(a + 1, 6)]
    present = np.zeros((6, 21), dtype=bool)
    present[[p[0] for p in pairs], np.arange(15)] = True
    present[[p[1] for p in pairs], np.arange(15)] = True
    present[:, 15:] = True
    weight = np.where(present, np.random.default_rng(5).standard_normal((6, 21)), 0.0)
    weight = weight.astype(np.float32)
    got = layer_ramanujan(biadjacency(torch.from_numpy(weight), torch.from_numpy(present)))
    assert_matches(got, oracle_layer(weight, present))
    assert got["iterative_delta_r_norm"] == pytest.approx(1.0, rel=RTOL)  # mu_hat(K_6,6) = 0
    full = oracle_graph(present[:, 15:], np.abs(weight[:, 15:]))
    assert got["iterative_spectral_gap"] == pytest.approx(full["weighted_spectral_gap"], rel=RTOL)


def test_iterative_nan_when_no_group_qualifies():
    """Every left node has its own degree 3..6 (one node per group, dR = 1): no group
    qualifies, while the whole layer has dL = 4.5 >= 3 and dR = 18/6 = 3."""
    present = np.zeros((6, 4), dtype=bool)
    for j, d in enumerate((3, 4, 5, 6)):
        present[:d, j] = True
    mask = torch.from_numpy(present)
    got = layer_ramanujan(biadjacency(torch.ones(6, 4), mask))
    assert not math.isnan(got["delta_r"])
    assert math.isnan(got["iterative_spectral_gap"]) and math.isnan(got["iterative_delta_r_norm"])


@pytest.mark.parametrize(
    ("shape", "density"),
    [((16, 4, 3, 3), 0.05), ((40, 40), 0.04), ((2, 8, 3, 3), 1.0), ((30, 2), 1.0)],
)
def test_whole_layer_values_defined_when_a_mean_degree_is_below_three(shape, density):
    """SPEC 5: no degree gate on the whole-layer values (the public code has none)."""
    weight, mask = random_layer(shape, density, 7)
    want = oracle_layer((weight * mask).numpy(), mask.numpy())
    got = layer_ramanujan(biadjacency(weight, mask))
    assert min(want["d_left"], want["d_right"]) < 3
    assert_matches(got, want)
    for key in ("mu_hat", "delta_r", "delta_r_norm", "weighted_spectral_gap"):
        assert not math.isnan(got[key]), key


def _layer_from_edges(n_right: int, n_left: int, edges: list[tuple[int, int]]) -> dict:
    rows, cols = zip(*edges, strict=True) if edges else ((), ())
    w = np.linspace(0.5, 1.5, max(len(edges), 1))[: len(edges)]
    return layer_ramanujan(sp.csr_matrix((w, (rows, cols)), shape=(n_right, n_left)))


@pytest.mark.parametrize(
    "edges",
    [[(0, 0)], [(0, 0), (0, 1)], [(0, 0), (1, 0)], [(0, 0), (0, 1), (0, 2)][:2]],
)
def test_three_or_fewer_nodes_leave_whole_layer_values_undefined(edges):
    got = _layer_from_edges(5, 7, edges)
    assert not math.isnan(got["d_left"])
    for key in ("mu_hat", "delta_r", "delta_r_norm", "weighted_spectral_gap",
                "iterative_spectral_gap", "iterative_delta_r_norm"):
        assert math.isnan(got[key]), key


def test_four_nodes_are_enough_and_a_matching_has_no_bound():
    """A star on 4 nodes: dL = 1, dR = 3, defined. Two disjoint edges: dL = dR = 1, bound 0,
    so delta_r_norm is NaN while mu_hat, delta_r and the weighted gap are defined."""
    star = _layer_from_edges(5, 7, [(0, 0), (0, 1), (0, 2)])
    assert star["mu_hat"] == pytest.approx(0.0, abs=1e-12)
    assert star["delta_r_norm"] == pytest.approx(1.0)  # bound sqrt(2), mu_hat 0
    matching = _layer_from_edges(5, 7, [(0, 0), (1, 1)])
    assert matching["mu_hat"] == pytest.approx(1.0)
    assert matching["delta_r"] == pytest.approx(-1.0)
    assert math.isnan(matching["delta_r_norm"])
    assert not math.isnan(matching["weighted_spectral_gap"])


def test_iterative_group_whose_right_side_falls_below_three():
    """Three left nodes of degree 3 all on right nodes 0..2 (dR = 3: kept) and, in a second
    layer, one left node of degree 3 (dR = 1: skipped, so the iterative means are NaN while
    the whole layer is defined)."""
    kept = _layer_from_edges(4, 5, [(r, c) for c in range(3) for r in range(3)])
    assert not math.isnan(kept["iterative_delta_r_norm"])
    skipped = _layer_from_edges(4, 5, [(0, 0), (1, 0), (2, 0), (3, 1)])
    assert not math.isnan(skipped["delta_r"])
    assert math.isnan(skipped["iterative_spectral_gap"])
    assert math.isnan(skipped["iterative_delta_r_norm"])


def test_empty_layer():
    got = layer_ramanujan(biadjacency(torch.ones(4, 5), torch.zeros(4, 5, dtype=bool)))
    assert got["density"] == 0.0
    assert all(math.isnan(got[k]) for k in METRICS[1:])


ROUTE_SETTINGS = {
    "svds-large": {"GRAM_MAX_DIM": 8},
    "svds-sparse": {"SVDS_MIN_DIM": 3, "SVDS_MAX_DENSITY": 1.0},
    "too-many-entries": {"DENSE_MAX_ENTRIES": 10},
}


@pytest.mark.parametrize("route", ROUTE_SETTINGS)
def test_other_routes_match_numpy_oracle(route, monkeypatch):
    """The routes for large or sparse layers, forced on a layer small enough for the oracle."""
    weight, mask = random_layer((16, 32, 3, 3), 0.4, 3)
    want = oracle_layer((weight * mask).numpy(), mask.numpy())
    assert want["n_groups"] > 3
    for setting, value in ROUTE_SETTINGS[route].items():
        monkeypatch.setattr(mod, setting, value)
    assert mod._route(16, 288, 100) != "dense"
    assert_matches(layer_ramanujan(biadjacency(weight, mask)), want)


@pytest.mark.parametrize("shape", [(2, 30), (30, 2), (1, 5)])
def test_sparse_gram_route_for_thin_matrices(shape, monkeypatch):
    monkeypatch.setattr(mod, "DENSE_MAX_ENTRIES", 4)
    assert mod._route(*shape, 10) == "sparse_gram"
    dense = np.abs(np.random.default_rng(1).standard_normal(shape))
    s1, s2 = _top2_singular_values(sp.csr_matrix(dense))
    mags = magnitudes(dense)
    assert s1 == pytest.approx(mags[0], rel=RTOL)
    assert s2 == pytest.approx(mags[2], rel=RTOL, abs=1e-12 * s1)


# --- model level ------------------------------------------------------------------------
def tiny_model(seed: int = 0) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, bias=False),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, groups=8),  # depthwise: weight (8, 1, 3, 3)
        nn.Conv2d(8, 16, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 12),
        nn.Linear(12, 10),
    )
    densities = {"0": 0.5, "2": 0.8, "3": 0.6, "6": 0.7, "7": 0.05}
    masks = {}
    g = torch.Generator().manual_seed(seed)
    for name, module in model.named_modules():
        if name in densities:
            mask = torch.rand(module.weight.shape, generator=g) < densities[name]
            prune.custom_from_mask(module, "weight", mask.float())
            masks[name] = mask
    return model, masks


def test_model_rows_match_oracle():
    model, masks = tiny_model()
    model[0].weight_orig.data[0, 0, 0, 0] = 0.0  # a present zero weight stays an edge
    masks["0"][0, 0, 0, 0] = True
    model[0].weight_mask.data[0, 0, 0, 0] = 1.0
    df = ramanujan(model)
    assert list(df.columns) == COLUMNS
    assert list(df["layer"]) == ["0", "2", "3", "6", "7"]
    assert list(df["kind"]) == ["Conv2d"] * 3 + ["Linear"] * 2
    assert list(df["shape"]) == [(8, 3, 3, 3), (8, 1, 3, 3), (16, 8, 1, 1), (12, 16), (10, 12)]
    for _, row in df.iterrows():
        module = model.get_submodule(row["layer"])
        mask = masks[row["layer"]].numpy()
        weight = (module.weight_orig.detach() * module.weight_mask).numpy()
        assert row["density"] == pytest.approx(mask.mean(), rel=1e-12)
        assert_matches(row.to_dict(), oracle_layer(weight, mask))
    assert df.loc[4, "d_left"] < 3  # 5% of a 10x12 layer: defined all the same (SPEC 5)
    assert df["delta_r"].notna().all()


def test_bge_biadjacency_agrees_with_masked_weights():
    """The edge ``left j -> right i`` of weight ``w`` of ``encoding.rolled`` is entry ``(i, j)``
    of the biadjacency the metrics use, present zero weights included."""
    from sparsetopo.encoding import rolled

    model, _ = tiny_model()
    model[3].weight_orig.data[0, 0, 0, 0] = 0.0
    model[3].weight_mask.data[0, 0, 0, 0] = 1.0  # present zero weight
    graphs = rolled(model)
    assert [g.layer for g in graphs] == ["0", "2", "3", "6", "7"]
    for g in graphs:
        module = model.get_submodule(g.layer)
        want = biadjacency(module.weight_orig, module.weight_mask.bool())
        got = bge_biadjacency(g)
        got.sort_indices()
        assert got.shape == want.shape
        np.testing.assert_array_equal(got.indptr, want.indptr)
        np.testing.assert_array_equal(got.indices, want.indices)
        np.testing.assert_allclose(got.data, want.data, rtol=1e-7)


def test_unmasked_model_uses_nonzero_weights():
    model, masks = tiny_model(1)
    for name, module in model.named_modules():
        if name in masks:
            prune.remove(module, "weight")  # plain weights, zero where pruned
    df = ramanujan(model)
    for _, row in df.iterrows():
        weight = model.get_submodule(row["layer"]).weight.detach().numpy()
        assert_matches(row.to_dict(), oracle_layer(weight, weight != 0))


def test_ramanujan_bad_input():
    with pytest.raises(TypeError, match="nn.Module"):
        ramanujan("resnet20")
    with pytest.raises(ValueError, match="no Conv2d or Linear"):
        ramanujan(nn.Sequential(nn.ReLU()))
    model = nn.Sequential(nn.Linear(4, 4))
    model[0].weight.data[0, 0] = float("nan")
    with pytest.raises(ValueError, match="'0' has NaN"):
        ramanujan(model)


# --- summary --------------------------------------------------------------------------------
def test_summary_aggregates():
    nan = math.nan
    df = pd.DataFrame(
        {
            "layer": ["a", "b", "c", "d"],
            "kind": ["Conv2d"] * 4,
            "shape": [(1,)] * 4,
            "density": [0.1, 0.2, 0.3, 0.4],
            "d_left": [3.0, 4.0, 2.0, 5.0],
            "d_right": [6.0, 4.0, 1.0, 5.0],
            "mu_hat": [1.0, 2.0, nan, 4.0],
            "delta_r": [0.5, -1.0, nan, 0.0],
            "delta_r_norm": [0.1, -0.2, nan, 0.0],
            "weighted_spectral_gap": [1.0, 2.0, nan, 6.0],
            "iterative_spectral_gap": [nan, 2.0, nan, 4.0],
            "iterative_delta_r_norm": [nan, nan, nan, nan],
        }
    )
    s = ramanujan_summary(df)
    assert s["density"] == pytest.approx(0.25)
    assert s["d_left"] == pytest.approx(3.5)
    assert s["mu_hat"] == pytest.approx(7 / 3)
    assert s["delta_r"] == pytest.approx(-0.5 / 3)
    assert s["delta_r_norm"] == pytest.approx(-0.1 / 3)
    assert s["weighted_spectral_gap"] == pytest.approx(3.0)
    assert s["iterative_spectral_gap"] == pytest.approx(3.0)
    assert math.isnan(s["iterative_delta_r_norm"])
    assert s["frac_ramanujan"] == pytest.approx(2 / 3)  # 0.5 and 0.0 of three defined
    assert s["n_layers"] == 4 and s["n_defined"] == 3 and s["n_defined_iterative"] == 0
    assert set(COLUMNS[3:]) <= set(s)


def test_summary_of_model_and_bad_table():
    model, _ = tiny_model()
    df = ramanujan(model)
    s = ramanujan_summary(df)
    assert s["delta_r_norm"] == pytest.approx(np.nanmean(df["delta_r_norm"]), rel=1e-12)
    defined = df["delta_r"].dropna()
    assert s["frac_ramanujan"] == pytest.approx((defined >= 0).mean())
    with pytest.raises(ValueError, match="missing columns"):
        ramanujan_summary(df.drop(columns=["mu_hat"]))


def test_rows_are_the_frame_and_summarise_the_same():
    """``as_frame=False`` (what ``analyze`` uses, to skip importing pandas) gives the
    DataFrame's rows, and ``ramanujan_summary`` of them is the summary of the frame."""
    model, _ = tiny_model()
    df = ramanujan(model)
    rows = ramanujan(model, as_frame=False)
    assert isinstance(rows, list) and [list(r) for r in rows] == [COLUMNS] * len(df)
    pd.testing.assert_frame_equal(pd.DataFrame(rows, columns=COLUMNS), df)
    by_rows, by_frame = ramanujan_summary(rows), ramanujan_summary(df)
    assert by_rows.keys() == by_frame.keys()
    for k, v in by_frame.items():
        assert by_rows[k] == pytest.approx(v, rel=1e-15, nan_ok=True), k
    assert ramanujan_summary([])["n_layers"] == 0
    with pytest.raises(ValueError, match=r"missing columns \['mu_hat'\]"):
        ramanujan_summary([{k: v for k, v in r.items() if k != "mu_hat"} for r in rows])
