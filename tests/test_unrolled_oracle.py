"""Unrolled BGE (SPEC 3.4) against independent oracles.

- Exactness: with ``B`` the signed biadjacency (out x in), ``B @ x.ravel()`` equals
  ``torch.nn.functional.conv2d(x, W_eff, bias=None, ...)`` (or ``W_eff @ x`` for Linear) to
  1e-9 relative in float64, for every layer of every zoo model and >= 200 random convolutions.
- Structure: edge counts equal a naive count over kernel offsets and output positions, and for
  tiny layers the edge set (with weights, including present weights whose value is 0) equals
  the one enumerated by explicit loops over the SPEC 3.4 formula.
"""

from __future__ import annotations

import math

import nets
import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import prune

from sparsetopo import models
from sparsetopo.encoding import unrolled

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")


# ----------------------------------------------------------------------------- oracles


def biadjacency(g) -> sp.csr_matrix:
    """``B = adjacency[left rows, right cols].T`` (out x in), float64."""
    left, right = g.partitions
    return nets.block(g.adjacency, left, right).T.tocsr()


def reference_output(module: nn.Module, x: torch.Tensor) -> np.ndarray:
    """What the layer computes without bias, in float64, by torch itself."""
    w = nets.effective_weight(module)
    if isinstance(module, nn.Linear):
        return (w @ x.reshape(-1)).numpy()
    y = F.conv2d(x[None], w, None, module.stride, module.padding, module.dilation, module.groups)
    return y.reshape(-1).numpy()


def assert_exact(g, module: nn.Module, in_shape, out_shape, seed: int = 0) -> None:
    left, right = g.partitions
    # padding is not a node: the left side is exactly the input activation
    assert tuple(left.shape) == tuple(in_shape) and left.size == math.prod(in_shape)
    assert tuple(right.shape) == tuple(out_shape)
    assert left.offset == 0 and right.offset == left.size
    assert g.n_nodes == left.size + right.size
    assert g.adjacency.dtype == np.float32
    assert g.adjacency.indices.dtype == np.int32 and g.adjacency.indptr.dtype == np.int32
    coo = g.adjacency.tocoo()
    assert (coo.row < left.stop).all() and (coo.col >= right.offset).all()
    x = torch.from_numpy(np.random.default_rng(seed).standard_normal(in_shape))
    got = biadjacency(g) @ x.numpy().reshape(-1)
    want = reference_output(module, x)
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * scale)


def naive_conv_count(mask: np.ndarray, in_hw, out_hw, stride, pad, dil) -> int:
    """Edges = sum over present weights of the output positions whose input is in bounds
    (explicit loops over kernel offsets and output positions)."""
    h, w = in_hw
    ho, wo = out_hw
    per_offset = mask.sum(axis=(0, 1))
    total = 0
    for ky in range(mask.shape[2]):
        for kx in range(mask.shape[3]):
            n = 0
            for oy in range(ho):
                for ox in range(wo):
                    iy = oy * stride[0] - pad[0] + ky * dil[0]
                    ix = ox * stride[1] - pad[1] + kx * dil[1]
                    n += 0 <= iy < h and 0 <= ix < w
            total += int(per_offset[ky, kx]) * n
    return total


def same_padding(kernel, dilation):
    """torch's 'same': total ``d*(k-1)`` zeros, the smaller half before."""
    return tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation, strict=True))


def resolved_padding(conv: nn.Conv2d):
    if conv.padding == "same":
        return same_padding(conv.kernel_size, conv.dilation)
    if conv.padding == "valid":
        return (0, 0)
    return tuple(conv.padding)


def naive_conv_edges(conv: nn.Conv2d, in_shape, out_shape) -> dict:
    """``{(src, dst): weight}`` by explicit loops over SPEC 3.4 (tiny layers only)."""
    w = nets.effective_weight(conv).numpy()
    m = nets.presence(conv).numpy()
    c_out, cin_g = w.shape[:2]
    _, h, wd = in_shape
    _, ho, wo = out_shape
    (sy, sx), (py, px), (dy, dx) = conv.stride, resolved_padding(conv), conv.dilation
    per_group = c_out // conv.groups
    edges = {}
    for co in range(c_out):
        for cil in range(cin_g):
            ci = (co // per_group) * cin_g + cil
            for ky in range(w.shape[2]):
                for kx in range(w.shape[3]):
                    if not m[co, cil, ky, kx]:
                        continue
                    for oy in range(ho):
                        for ox in range(wo):
                            iy, ix = oy * sy - py + ky * dy, ox * sx - px + kx * dx
                            if 0 <= iy < h and 0 <= ix < wd:
                                src = (ci * h + iy) * wd + ix
                                dst = (co * ho + oy) * wo + ox
                                assert (src, dst) not in edges
                                edges[(src, dst)] = w[co, cil, ky, kx]
    return edges


def graph_edges(g) -> dict:
    left = g.partitions[0]
    coo = g.adjacency.tocoo()
    return {(int(r), int(c) - left.size): float(v)
            for r, c, v in zip(coo.row, coo.col, coo.data, strict=True)}


# ----------------------------------------------------------------------------- zoo models

# name -> (create kwargs, input shape, density range of the random masks)
ZOO = {
    "conv6": ({"input_size": 16}, (3, 16, 16), (0.01, 0.05)),
    "resnet20": ({}, (3, 32, 32), (0.02, 0.2)),
    "resnet32": ({}, (3, 16, 16), (0.02, 0.2)),
    "wrn28_2": ({}, (3, 16, 16), (0.01, 0.05)),
    "mobilenetv2": ({}, (3, 32, 32), (0.01, 0.1)),
    "mlp": ({}, (3, 32, 32), (0.01, 1.0)),
    "resnet18": ({}, (3, 64, 64), (0.005, 0.02)),
    "resnet50": ({}, (3, 32, 32), (0.005, 0.05)),
}


@pytest.mark.parametrize("name", list(ZOO))
def test_every_layer_of_zoo_model_is_exact(name):
    kwargs, shape, density = ZOO[name]
    model = models.create(name, seed=0, **kwargs)
    nets.apply_random_masks(model, density, seed=1, dense_below=2000)
    graphs = unrolled(model, shape)
    expected = nets.layer_io_shapes(model, shape)
    assert [g.layer for g in graphs] == [n for n, _, _ in expected]
    for i, (g, (layer, in_shape, out_shape)) in enumerate(zip(graphs, expected, strict=True)):
        module = model.get_submodule(layer)
        assert g.kind == "unrolled" and g.partitions[1].name == layer
        assert_exact(g, module, in_shape, out_shape, seed=i)
        mask = nets.presence(module).numpy()
        if isinstance(module, nn.Conv2d):
            want = naive_conv_count(mask, in_shape[1:], out_shape[1:], module.stride,
                                    resolved_padding(module), module.dilation)
        else:
            want = int(mask.sum())
        assert g.n_edges == want, layer
        assert g.meta["n_weights"] == int(mask.sum())
        ids = g.edge_weight_ids
        assert ids is not None and len(ids) == g.n_edges
        if g.n_edges:
            assert ids.min() >= 0 and ids.max() < g.meta["n_weights"]


# ----------------------------------------------------------------------------- random convs


def random_conv_configs(n: int, seed: int, max_hw: int = 16, max_c: int = 4) -> list[dict]:
    """Seeded random Conv2d configurations torch accepts (output size >= 1)."""
    rng = np.random.default_rng(seed)
    configs = []
    while len(configs) < n:
        kernel = tuple(int(k) for k in rng.integers(1, 8, 2))
        dilation = tuple(int(d) for d in rng.integers(1, 4, 2))
        kind = ("1", "2", "dw")[len(configs) % 3]
        if kind == "1":
            c_in, c_out, groups = int(rng.integers(1, max_c + 1)), int(rng.integers(1, max_c + 1)), 1
        elif kind == "2":
            c_in, c_out, groups = 2 * int(rng.integers(1, 3)), 2 * int(rng.integers(1, 3)), 2
        else:
            c_in = int(rng.integers(1, max_c + 1))
            c_out, groups = c_in * int(rng.integers(1, 3)), c_in
        if rng.random() < 0.2:
            stride, padding = (1, 1), "same"
            pad = same_padding(kernel, dilation)
        else:
            stride = tuple(int(s) for s in rng.integers(1, 4, 2))
            padding = tuple(int(p) for p in rng.integers(0, 4, 2))
            pad = padding
        hw = tuple(int(v) for v in rng.integers(1, max_hw + 1, 2))
        out = [(hw[i] + 2 * pad[i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1
               for i in range(2)]
        if padding != "same" and min(out) < 1:
            continue  # torch rejects it
        density = float(np.exp(rng.uniform(np.log(0.01), 0.0))) if rng.random() < 0.9 else 1.0
        configs.append(dict(c_in=c_in, c_out=c_out, kernel=kernel, stride=stride,
                            padding=padding, dilation=dilation, groups=groups, hw=hw,
                            density=density, seed=int(rng.integers(2**31))))
    return configs


def build_conv(cfg: dict, zero_some: bool = False) -> nn.Sequential:
    torch.manual_seed(cfg["seed"])
    conv = nn.Conv2d(cfg["c_in"], cfg["c_out"], cfg["kernel"], stride=cfg["stride"],
                     padding=cfg["padding"], dilation=cfg["dilation"], groups=cfg["groups"],
                     bias=True)
    gen = torch.Generator().manual_seed(cfg["seed"])
    mask = (torch.rand(conv.weight.shape, generator=gen) < cfg["density"]).float()
    prune.custom_from_mask(conv, "weight", mask)
    if zero_some:  # present weights whose value is exactly 0 are still edges
        with torch.no_grad():
            conv.weight_orig[torch.rand(conv.weight.shape, generator=gen) < 0.3] = 0.0
    return nn.Sequential(conv)


CONFIGS = random_conv_configs(210, seed=2024)


def _cfg_id(c: dict) -> str:
    pad = "same" if c["padding"] == "same" else "p{}x{}".format(*c["padding"])
    return (f"c{c['c_in']}-{c['c_out']}g{c['groups']}k{c['kernel'][0]}x{c['kernel'][1]}"
            f"s{c['stride'][0]}x{c['stride'][1]}{pad}d{c['dilation'][0]}x{c['dilation'][1]}"
            f"in{c['hw'][0]}x{c['hw'][1]}")


def test_random_configs_cover_the_space():
    assert len(CONFIGS) >= 200
    assert {c["groups"] == c["c_in"] and c["c_in"] > 1 for c in CONFIGS} == {True, False}
    assert any(c["groups"] == 2 for c in CONFIGS)
    assert any(c["padding"] == "same" for c in CONFIGS)
    assert any(c["padding"] == "same" and c["kernel"][0] % 2 == 0 and c["dilation"][0] > 1
               for c in CONFIGS)
    assert {c["kernel"][0] != c["kernel"][1] for c in CONFIGS} == {True, False}
    assert {c["hw"][0] != c["hw"][1] for c in CONFIGS} == {True, False}
    assert max(max(c["stride"]) for c in CONFIGS) == 3
    assert max(max(c["dilation"]) for c in CONFIGS) == 3
    assert min(c["density"] for c in CONFIGS) < 0.03


@pytest.mark.parametrize("cfg", CONFIGS, ids=[_cfg_id(c) for c in CONFIGS])
def test_random_conv_is_exact(cfg):
    net = build_conv(cfg)
    conv = net[0]
    in_shape = (cfg["c_in"], *cfg["hw"])
    with torch.no_grad():
        out_shape = tuple(net(torch.zeros((1, *in_shape))).shape[1:])
    (g,) = unrolled(net, in_shape)
    assert g.layer == "0"
    assert_exact(g, conv, in_shape, out_shape, seed=cfg["seed"])
    want = naive_conv_count(nets.presence(conv).numpy(), in_shape[1:], out_shape[1:],
                            conv.stride, resolved_padding(conv), conv.dilation)
    assert g.n_edges == want


TINY = random_conv_configs(40, seed=7, max_hw=7, max_c=3)


@pytest.mark.parametrize("cfg", TINY, ids=[_cfg_id(c) for c in TINY])
def test_tiny_conv_edge_set_equals_naive_loops(cfg):
    net = build_conv(cfg, zero_some=True)
    conv = net[0]
    in_shape = (cfg["c_in"], *cfg["hw"])
    with torch.no_grad():
        out_shape = tuple(net(torch.zeros((1, *in_shape))).shape[1:])
    (g,) = unrolled(net, in_shape)
    want = naive_conv_edges(conv, in_shape, out_shape)
    got = graph_edges(g)
    assert got.keys() == want.keys()
    for k, v in want.items():
        assert got[k] == np.float32(v), k


def test_unmasked_conv_uses_nonzero_weights():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, (2, 3), stride=(2, 1), padding=(1, 2), bias=False)
    with torch.no_grad():
        conv.weight[conv.weight.abs() < 0.1] = 0.0
    (g,) = unrolled(nn.Sequential(conv), (3, 6, 5))
    out_shape = (4, 4, 7)
    assert g.partitions[1].shape == out_shape
    assert graph_edges(g).keys() == naive_conv_edges(conv, (3, 6, 5), out_shape).keys()
    assert_exact(g, conv, (3, 6, 5), out_shape)


@pytest.mark.parametrize("seed", range(20))
def test_random_linear_is_exact(seed):
    rng = np.random.default_rng(seed)
    n_in, n_out = (int(v) for v in rng.integers(1, 60, 2))
    density = float(np.exp(rng.uniform(np.log(0.01), 0.0)))
    torch.manual_seed(seed)
    lin = nn.Linear(n_in, n_out)
    mask = (torch.rand(lin.weight.shape) < density).float()
    prune.custom_from_mask(lin, "weight", mask)
    (g,) = unrolled(nn.Sequential(lin), (n_in,))
    assert_exact(g, lin, (n_in,), (n_out,), seed=seed)
    assert g.n_edges == int(mask.sum())
    w = nets.effective_weight(lin).numpy()
    dense = biadjacency(g).toarray()
    np.testing.assert_array_equal(dense, w.astype(np.float32))


def test_layers_inside_a_network_see_their_real_input():
    # rectangular input, functional pooling, 'same', depthwise and grouped layers
    for net, shape in ((nets.VGGFunctional(), (3, 20, 28)), (nets.DepthwiseDilated(), (3, 12, 15)),
                       (nets.DenseBlockNet(), (3, 8, 10))):
        nets.apply_random_masks(net, (0.05, 1.0), seed=3)
        graphs = unrolled(net, shape)
        expected = nets.layer_io_shapes(net, shape)
        assert [g.layer for g in graphs] == [n for n, _, _ in expected]
        for g, (layer, in_shape, out_shape) in zip(graphs, expected, strict=True):
            assert_exact(g, net.get_submodule(layer), in_shape, out_shape)
