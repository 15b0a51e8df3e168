"""Rolled (SPEC 3.2) and rolled-channel (SPEC 3.3) BGEs against naive oracles.

Per layer: left/right sizes from the weight's shape, biadjacency equal to the masked weight
reshaped to ``(C_out, C_in/groups * kh * kw)`` (rolled) or to the matrix of L2 norms of the
present weights of each kernel slice (rolled-channel), computed by explicit loops for tiny
layers and by torch norms over each group for the zoo.
"""

from __future__ import annotations

import math

import nets
import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from sparsetopo import models
from sparsetopo.encoding import rolled, rolled_channel


def biadjacency(g) -> np.ndarray:
    left, right = g.partitions
    return nets.block(g.adjacency, left, right).T.toarray()


def structure(g) -> np.ndarray:
    """Boolean ``(right, left)`` matrix of the stored edges (explicit zeros included)."""
    left, right = g.partitions
    coo = g.adjacency.tocoo()
    out = np.zeros((right.size, left.size), dtype=bool)
    out[coo.col - right.offset, coo.row] = True
    return out


def check_common(g, layer: str, kind: str, n_left: int, n_right: int) -> None:
    assert g.kind == kind and g.layer == layer
    assert len(g.partitions) == 2
    left, right = g.partitions
    assert left.size == n_left and right.size == n_right
    assert left.offset == 0 and right.offset == n_left and g.n_nodes == n_left + n_right
    assert g.adjacency.dtype == np.float32
    assert g.adjacency.indices.dtype == np.int32
    coo = g.adjacency.tocoo()
    assert (coo.row < n_left).all() and (coo.col >= n_left).all()


def expected_rolled(module: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    w = nets.effective_weight(module).numpy()
    m = nets.presence(module).numpy()
    w2, m2 = w.reshape(w.shape[0], -1), m.reshape(m.shape[0], -1)
    return np.where(m2, w2, 0.0).astype(np.float32), m2


def expected_rolled_channel(module: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """Dense ``(C_out, C_in)`` matrix of L2 norms of the present weights per kernel slice, and
    which slices have a present weight; grouped convs fill only the group's block."""
    w = nets.effective_weight(module)
    m = nets.presence(module)
    if isinstance(module, nn.Linear):  # SPEC 3.3 "Linear as in 3.2": signed weights
        return w.numpy(), m.numpy()
    c_out, cin_g = w.shape[:2]
    groups = module.groups
    dense = np.zeros((c_out, cin_g * groups))
    present = np.zeros((c_out, cin_g * groups), dtype=bool)
    per = c_out // groups
    for grp in range(groups):
        rows = slice(grp * per, (grp + 1) * per)
        cols = slice(grp * cin_g, (grp + 1) * cin_g)
        dense[rows, cols] = torch.linalg.vector_norm(w[rows] * m[rows], dim=(2, 3)).numpy()
        present[rows, cols] = m[rows].flatten(2).any(dim=2).numpy()
    return dense.astype(np.float32), present


# --------------------------------------------------------------------------- zoo models

# name -> density range of the random masks
ZOO = {"conv6": (0.02, 0.5), "resnet20": (0.02, 0.5), "resnet32": (0.02, 0.5),
       "wrn28_2": (0.02, 0.5), "mobilenetv2": (0.02, 0.5), "mlp": (0.02, 0.5),
       "resnet18": (0.005, 0.1), "resnet50": (0.005, 0.1)}


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_rolled_and_rolled_channel(name):
    model = models.create(name, seed=0)
    nets.apply_random_masks(model, ZOO[name], seed=1, dense_below=500)
    layers = list(nets.conv_linear_modules(model))
    r, rc = rolled(model), rolled_channel(model)
    assert [g.layer for g in r] == [n for n, _ in layers]
    assert [g.layer for g in rc] == [n for n, _ in layers]
    for (layer, module), g, h in zip(layers, r, rc, strict=True):
        shape = tuple(module.weight.shape)
        n_left = math.prod(shape[1:])
        n_in = shape[1] * (module.groups if isinstance(module, nn.Conv2d) else 1)
        check_common(g, layer, "rolled", n_left, shape[0])
        check_common(h, layer, "rolled_channel", n_in, shape[0])
        dense, present = expected_rolled(module)
        np.testing.assert_array_equal(structure(g), present, err_msg=layer)
        np.testing.assert_array_equal(biadjacency(g), dense)
        dense, present = expected_rolled_channel(module)
        np.testing.assert_array_equal(structure(h), present, err_msg=layer)
        got = biadjacency(h)
        np.testing.assert_allclose(got, dense, rtol=1e-6, atol=1e-7)


def test_mobilenetv2_depthwise_sizes():
    model = models.create("mobilenetv2", seed=0)
    r = {g.layer: g for g in rolled(model)}
    rc = {g.layer: g for g in rolled_channel(model)}
    depthwise = [(n, m) for n, m in nets.conv_linear_modules(model)
                 if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == 17
    for name, m in depthwise:
        c = m.in_channels
        assert m.groups == c == m.out_channels
        assert r[name].partitions[0].size == 9 and r[name].partitions[1].size == c
        assert rc[name].partitions[0].size == c and rc[name].partitions[1].size == c
        np.testing.assert_array_equal(structure(rc[name]), np.eye(c, dtype=bool))  # c -> c


# --------------------------------------------------------------------------- naive loops


def naive_rolled(conv: nn.Conv2d) -> dict:
    w = nets.effective_weight(conv).numpy()
    m = nets.presence(conv).numpy()
    c_out, cin_g, kh, kw = w.shape
    edges = {}
    for co in range(c_out):
        for j in range(cin_g * kh * kw):
            cil, rest = divmod(j, kh * kw)
            ky, kx = divmod(rest, kw)
            if m[co, cil, ky, kx]:
                edges[(co, j)] = w[co, cil, ky, kx]
    return edges


def naive_rolled_channel(conv: nn.Conv2d) -> dict:
    w = nets.effective_weight(conv).numpy()
    m = nets.presence(conv).numpy()
    c_out, cin_g, kh, kw = w.shape
    per = c_out // conv.groups
    edges = {}
    for co in range(c_out):
        grp = co // per
        for ci in range(cin_g * conv.groups):
            if not grp * cin_g <= ci < (grp + 1) * cin_g:
                continue
            total, any_present = 0.0, False
            for ky in range(kh):
                for kx in range(kw):
                    if m[co, ci - grp * cin_g, ky, kx]:
                        any_present = True
                        total += float(w[co, ci - grp * cin_g, ky, kx]) ** 2
            if any_present:
                edges[(co, ci)] = math.sqrt(total)
    return edges


def as_dict(g) -> dict:
    left, right = g.partitions
    coo = g.adjacency.tocoo()
    return {(int(c) - right.offset, int(r)): float(v)
            for r, c, v in zip(coo.row, coo.col, coo.data, strict=True)}


CONVS = {
    "plain": lambda: nn.Conv2d(3, 4, 3),
    "rect": lambda: nn.Conv2d(2, 3, (1, 5)),
    "depthwise": lambda: nn.Conv2d(4, 4, 3, groups=4),
    "multiplier": lambda: nn.Conv2d(3, 6, (2, 3), groups=3),
    "grouped": lambda: nn.Conv2d(4, 6, 3, groups=2),
    "pointwise": lambda: nn.Conv2d(5, 2, 1),
}


@pytest.mark.parametrize("kind", list(CONVS))
@pytest.mark.parametrize("density", [0.05, 0.4, 1.0])
def test_tiny_conv_against_naive_loops(kind, density):
    torch.manual_seed(0)
    conv = CONVS[kind]()
    gen = torch.Generator().manual_seed(1)
    mask = (torch.rand(conv.weight.shape, generator=gen) < density).float()
    prune.custom_from_mask(conv, "weight", mask)
    with torch.no_grad():  # present weights of value 0: still edges
        conv.weight_orig[torch.rand(conv.weight.shape, generator=gen) < 0.2] = 0.0
    net = nn.Sequential(nn.Identity(), conv)
    (g,), (h,) = rolled(net), rolled_channel(net)
    c_out, cin_g, kh, kw = conv.weight.shape
    check_common(g, "1", "rolled", cin_g * kh * kw, c_out)
    check_common(h, "1", "rolled_channel", conv.in_channels, c_out)
    want = naive_rolled(conv)
    got = as_dict(g)
    assert got.keys() == want.keys()
    assert all(got[k] == np.float32(v) for k, v in want.items())
    want = naive_rolled_channel(conv)
    got = as_dict(h)
    assert got.keys() == want.keys()
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-6, abs=1e-7), k


def test_unmasked_layers_use_nonzero_weights():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, groups=1), nn.Flatten(), nn.Linear(12, 4))
    with torch.no_grad():
        net[0].weight[net[0].weight.abs() < 0.15] = 0.0
        net[2].weight[net[2].weight.abs() < 0.1] = 0.0
    (g, gl), (h, hl) = rolled(net), rolled_channel(net)
    assert as_dict(g).keys() == naive_rolled(net[0]).keys()
    assert as_dict(h).keys() == naive_rolled_channel(net[0]).keys()
    w = net[2].weight.detach().numpy()
    assert gl.n_edges == hl.n_edges == int((w != 0).sum())
    np.testing.assert_array_equal(biadjacency(gl), w)
    np.testing.assert_array_equal(biadjacency(hl), w)
