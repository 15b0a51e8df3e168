"""Multipartite graph encoding (SPEC 3.5) against independent oracles.

Oracles: partition sizes derived from the architectures; torch.nn.functional on blocks of the
adjacency; naive loops for pooling contraction; the network's own forward for linear networks
(no nonlinearity, no bias), which the MGE read as a linear network must reproduce; composition
of the per-layer unrolled BGEs (themselves checked against conv2d in test_unrolled_oracle.py).
"""

from __future__ import annotations

import copy
import math

import nets
import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from sparsetopo import models
from sparsetopo.encoding import (
    EncodingError,
    _multipartite,
    multipartite,
    multipartite_pair,
    unrolled,
)


def rand(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def conv_ref(conv: nn.Conv2d, x: np.ndarray) -> np.ndarray:
    """conv2d of ``x`` (C x H x W) with the layer's effective weight, no bias, float64."""
    y = F.conv2d(torch.from_numpy(x)[None], nets.effective_weight(conv), None, conv.stride,
                 conv.padding, conv.dilation, conv.groups)
    return y.reshape(-1).numpy()


def assert_close(got, want, rtol=1e-9):
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale)


def assert_invariants(g, model: nn.Module, identity: bool = False) -> None:
    """SPEC 1 invariants: DAG from lower to higher partitions, no duplicate pairs, dtypes,
    provenance ids in range."""
    adj = g.adjacency
    assert sp.issparse(adj) and adj.format == "csr"
    assert adj.dtype == np.float32
    assert adj.indices.dtype == np.int32 and adj.indptr.dtype == np.int32
    offsets = np.array([p.offset for p in g.partitions])
    assert offsets[0] == 0
    for a, b in zip(g.partitions[:-1], g.partitions[1:], strict=True):
        assert a.stop == b.offset and a.size == math.prod(a.shape)
    assert g.n_nodes == g.partitions[-1].stop
    coo = adj.tocoo()
    part_of = lambda v: np.searchsorted(offsets, v, side="right") - 1  # noqa: E731
    assert (part_of(coo.row) < part_of(coo.col)).all()
    keys = coo.row.astype(np.int64) * g.n_nodes + coo.col
    assert len(np.unique(keys)) == g.n_edges
    present = sum(int(nets.presence(m).sum()) for _, m in nets.conv_linear_modules(model))
    assert g.meta["n_weights"] == present
    ids = g.edge_weight_ids
    assert ids is not None and len(ids) == g.n_edges
    assert ids.max(initial=-1) < present
    assert ids.min(initial=0) >= (-1 if identity else 0)
    if identity:
        assert (adj.data[ids == -1] == 1).all()
    assert g.input_partition.name == "input" and g.input_index == 0


# --------------------------------------------------------------------------- node counts


def resnet20_partitions(size: int = 32, classes: int = 10) -> list[tuple[str, tuple]]:
    parts = [("input", (3, size, size)), ("conv1", (16, size, size))]
    for stage, (c, s) in enumerate(((16, size), (32, size // 2), (64, size // 4)), start=1):
        for b in range(3):
            parts += [(f"layer{stage}.{b}.conv1", (c, s, s)), (f"layer{stage}.{b}.conv2", (c, s, s))]
    return parts + [("fc", (classes,))]


def conv6_partitions(size: int = 32, classes: int = 10) -> list[tuple[str, tuple]]:
    parts = [("input", (3, size, size))]
    index = 0
    for c, s in ((64, size), (128, size // 2), (256, size // 4)):
        parts += [(f"features.{index}", (c, s, s)), (f"features.{index + 3}", (c, s, s))]
        index += 7
    return parts + [("classifier.0", (256,)), ("classifier.2", (256,)),
                    ("classifier.4", (classes,))]


@pytest.fixture(scope="module")
def resnet20_32():
    model = models.create("resnet20", seed=0)
    nets.apply_random_masks(model, 0.01, seed=0)
    return model, multipartite(model, (3, 32, 32))


def check_partitions(g, expected, total):
    assert [(p.name, tuple(p.shape)) for p in g.partitions] == expected
    sizes = [math.prod(s) for _, s in expected]
    assert [p.size for p in g.partitions] == sizes
    assert sum(sizes) == total == g.n_nodes
    assert g.output_partition.name == expected[-1][0]


def test_resnet20_node_count(resnet20_32):
    model, g = resnet20_32
    check_partitions(g, resnet20_partitions(), 191_498)
    assert_invariants(g, model)


def test_conv6_node_count():
    model = models.create("conv6", seed=0)
    nets.apply_random_masks(model, 0.002, seed=0)
    g = multipartite(model, (3, 32, 32))
    check_partitions(g, conv6_partitions(), 232_970)
    assert_invariants(g, model)


# --------------------------------------------------------------------------- residuals


@pytest.mark.parametrize("stage", [2, 3])
def test_resnet20_projection_shortcut_jumps_two_partitions(resnet20_32, stage):
    model, g = resnet20_32
    names = [p.name for p in g.partitions]
    assert not any("shortcut" in n for n in names)  # the shortcut conv has no partition
    src = g.partition(f"layer{stage - 1}.2.conv2")  # the block input: previous block's nodes
    mid = g.partition(f"layer{stage}.0.conv1")
    dst = g.partition(f"layer{stage}.0.conv2")
    assert names.index(dst.name) - names.index(src.name) == 2
    assert names.index(mid.name) == names.index(src.name) + 1
    block = model.get_submodule(f"layer{stage}.0")
    x = rand(src.shape, seed=stage)
    assert_close(nets.block(g.adjacency, src, dst).T @ x.ravel(), conv_ref(block.shortcut[0], x))
    assert nets.block(g.adjacency, src, dst).nnz > 0
    y = rand(mid.shape, seed=stage + 10)
    assert_close(nets.block(g.adjacency, mid, dst).T @ y.ravel(), conv_ref(block.conv2, y))
    # nothing else enters the block's output nodes
    into = sp.csc_matrix(g.adjacency)[:, dst.offset:dst.stop].nnz
    assert into == (nets.block(g.adjacency, src, dst).nnz + nets.block(g.adjacency, mid, dst).nnz)


def test_resnet20_identity_skips_only_with_the_flag(resnet20_32):
    model, g = resnet20_32
    gi = multipartite(model, (3, 32, 32), identity_skips=True)
    assert gi.partitions == g.partitions
    assert_invariants(gi, model, identity=True)
    # (block input partition, block output partition) of every identity-skip block
    pairs = [("conv1", "layer1.0.conv2"), ("layer1.0.conv2", "layer1.1.conv2"),
             ("layer1.1.conv2", "layer1.2.conv2"), ("layer2.0.conv2", "layer2.1.conv2"),
             ("layer2.1.conv2", "layer2.2.conv2"), ("layer3.0.conv2", "layer3.1.conv2"),
             ("layer3.1.conv2", "layer3.2.conv2")]
    rows, cols = [], []
    for a, b in pairs:
        pa, pb = gi.partition(a), gi.partition(b)
        assert pa.size == pb.size
        rows.append(np.arange(pa.offset, pa.stop))
        cols.append(np.arange(pb.offset, pb.stop))
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    assert len(rows) == 3 * 16 * 32 * 32 + 2 * 32 * 16 * 16 + 2 * 64 * 8 * 8
    expected = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=gi.adjacency.shape)
    diff = (sp.csr_matrix(gi.adjacency, dtype=np.float64)
            - sp.csr_matrix(g.adjacency, dtype=np.float64))
    diff.eliminate_zeros()
    assert (diff != expected).nnz == 0
    assert gi.n_edges - g.n_edges == len(rows)
    assert (gi.edge_weight_ids == -1).sum() == len(rows)
    assert (g.edge_weight_ids >= 0).all()
    ident = sp.csr_matrix(gi.adjacency)
    ident.data = (gi.edge_weight_ids == -1).astype(np.float64)
    ident.eliminate_zeros()
    assert (ident != expected).nnz == 0


@pytest.mark.parametrize("skip_first", [False, True])
def test_skip_named_oddly_and_main_path_named_shortcut(skip_first):
    torch.manual_seed(0)
    net = nets.OddNames(skip_first=skip_first, names=("shortcut", "zebra"))
    torch.manual_seed(0)
    renamed = nets.OddNames(skip_first=skip_first, names=("main_path", "shortcut"))
    for m in (net, renamed):
        nets.apply_random_masks(m, 0.5, seed=1)
    g, h = multipartite(net, (3, 8, 8)), multipartite(renamed, (3, 8, 8))
    assert [p.name for p in g.partitions] == ["input", "stem", "shortcut.0", "shortcut.3", "fc"]
    assert [p.name for p in h.partitions] == ["input", "stem", "main_path.0", "main_path.3", "fc"]
    assert [p.shape for p in g.partitions] == [p.shape for p in h.partitions]
    assert (g.adjacency != h.adjacency).nnz == 0
    np.testing.assert_array_equal(g.adjacency.data, h.adjacency.data)
    # the skip's edges go from the stem straight into the main path's output nodes
    stem, out = g.partition("stem"), g.partition("shortcut.3")
    x = rand(stem.shape)
    assert_close(nets.block(g.adjacency, stem, out).T @ x.ravel(), conv_ref(net.zebra, x))
    assert_invariants(g, net)


def test_conv_named_shortcut_in_a_chain_is_a_layer():
    net = nets.NotAShortcut()
    g = multipartite(net, (3, 6, 7))
    assert [p.name for p in g.partitions] == ["input", "conv", "shortcut", "head"]
    a, s = g.partition("conv"), g.partition("shortcut")
    x = rand(a.shape)
    assert_close(nets.block(g.adjacency, a, s).T @ x.ravel(), conv_ref(net.shortcut, x))


# --------------------------------------------------------------------------- linear chains


def test_linear_chain_is_the_stacked_bges():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(7, 6), nn.ReLU(), nn.Linear(6, 5), nn.Dropout(),
                        nn.Linear(5, 3))
    nets.apply_random_masks(net, 0.5, seed=2)
    g = multipartite(net, (7,))
    assert [(p.name, p.shape) for p in g.partitions] == [
        ("input", (7,)), ("0", (6,)), ("2", (5,)), ("4", (3,))]
    expected = np.zeros((g.n_nodes, g.n_nodes), dtype=np.float32)
    for (a, b), layer in zip(((0, 1), (1, 2), (2, 3)), ("0", "2", "4"), strict=True):
        pa, pb = g.partitions[a], g.partitions[b]
        w = nets.effective_weight(net.get_submodule(layer)).numpy().astype(np.float32)
        expected[pa.offset:pa.stop, pb.offset:pb.stop] = w.T
    np.testing.assert_array_equal(g.adjacency.toarray(), expected)
    n_present = sum(int(nets.presence(m).sum()) for _, m in nets.conv_linear_modules(net))
    assert g.n_edges == n_present
    assert_invariants(g, net)


def test_zoo_mlp_is_the_stacked_bges():
    net = models.create("mlp", input_size=4, hidden=(9, 7), seed=0)
    nets.apply_random_masks(net, (0.1, 1.0), seed=3)
    g = multipartite(net, (3, 4, 4))
    layers = [n for n, _ in nets.conv_linear_modules(net)]
    assert [p.name for p in g.partitions] == ["input", *layers]
    assert g.partitions[0].shape == (3, 4, 4)
    expected = np.zeros((g.n_nodes, g.n_nodes), dtype=np.float32)
    for pa, pb in zip(g.partitions[:-1], g.partitions[1:], strict=True):
        w = nets.effective_weight(net.get_submodule(pb.name)).numpy().astype(np.float32)
        expected[pa.offset:pa.stop, pb.offset:pb.stop] = w.T
    np.testing.assert_array_equal(g.adjacency.toarray(), expected)


# --------------------------------------------------------------------------- pooling


def naive_pooled_conv_edges(conv, pre_shape, k):
    """Edges of ``conv`` reading ``maxpool(k, stride k)`` of a ``pre_shape`` activation, with
    every pooled element replaced by its k x k window (naive loops; padding of the conv and of
    the pooled map excluded)."""
    c, h, w = pre_shape
    hp, wp = h // k, w // k
    wt = nets.effective_weight(conv).numpy()
    m = nets.presence(conv).numpy()
    (py, px), (sy, sx), (dy, dx) = conv.padding, conv.stride, conv.dilation
    ho = (hp + 2 * py - dy * (wt.shape[2] - 1) - 1) // sy + 1
    wo = (wp + 2 * px - dx * (wt.shape[3] - 1) - 1) // sx + 1
    edges, unrolled_count = {}, 0
    for co, ci, ky, kx in zip(*np.nonzero(m), strict=True):
        for oy in range(ho):
            for ox in range(wo):
                iy, ix = oy * sy - py + ky * dy, ox * sx - px + kx * dx
                if not (0 <= iy < hp and 0 <= ix < wp):
                    continue
                unrolled_count += 1
                for a in range(k):
                    for b in range(k):
                        src = (ci * h + iy * k + a) * w + ix * k + b
                        dst = (co * ho + oy) * wo + ox
                        assert (src, dst) not in edges
                        edges[(src, dst)] = wt[co, ci, ky, kx]
    return edges, unrolled_count


@pytest.mark.parametrize("pool", ["module-max", "module-avg"])
def test_pooling_multiplies_the_consumers_edges_by_the_window(pool):
    torch.manual_seed(0)
    pool_module = nn.MaxPool2d(2) if pool == "module-max" else nn.AvgPool2d(2)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), pool_module,
                        nn.Conv2d(3, 4, 3, padding=1, bias=False))
    nets.apply_random_masks(net, 0.6, seed=4)
    g = multipartite(net, (2, 5, 7))  # 5 x 7 -> 2 x 3: last row and column are not pooled
    assert [(p.name, p.shape) for p in g.partitions] == [
        ("input", (2, 5, 7)), ("0", (3, 5, 7)), ("3", (4, 2, 3))]
    first, second = g.partitions[1], g.partitions[2]
    want, n_unrolled = naive_pooled_conv_edges(net[3], first.shape, 2)
    blk = nets.block(g.adjacency, first, second).tocoo()
    got = {(int(r), int(c)): float(v) for r, c, v in zip(blk.row, blk.col, blk.data, strict=True)}
    assert got.keys() == want.keys()
    assert all(got[key] == np.float32(v) for key, v in want.items())
    assert blk.nnz == 4 * n_unrolled
    assert g.n_edges == blk.nnz + nets.block(g.adjacency, g.partitions[0], first).nnz
    x = rand((2, 5, 7))
    assert_close(nets.block(g.adjacency, g.partitions[0], first).T @ x.ravel(),
                 conv_ref(net[0], x))


class _GlobalPoolHead(nn.Module):
    def __init__(self, how: str):
        super().__init__()
        self.how = how
        self.conv = nn.Conv2d(2, 3, 3, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(3, 4)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        if self.how == "module":
            x = self.pool(x).flatten(1)
        elif self.how == "functional":
            x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        elif self.how == "mean":
            x = x.mean((2, 3))
        else:
            x = torch.flatten(x.mean(dim=[-1, -2], keepdim=True), 1)
        return self.fc(x)


@pytest.mark.parametrize("how", ["module", "functional", "mean", "mean-keepdim"])
def test_global_average_pool_connects_every_pixel_to_every_output(how):
    torch.manual_seed(0)
    net = _GlobalPoolHead(how)
    nets.apply_random_masks(net, 0.7, seed=5)
    g = multipartite(net, (2, 5, 6))
    conv, fc = g.partition("conv"), g.partition("fc")
    assert conv.shape == (3, 3, 4) and fc.shape == (4,)
    w = nets.effective_weight(net.fc).numpy().astype(np.float32)  # (4, 3)
    m = nets.presence(net.fc).numpy()
    expected = np.repeat(w.T, 3 * 4, axis=0)  # row (c, y, x) = W[:, c]
    present = np.repeat(m.T, 3 * 4, axis=0)
    blk = nets.block(g.adjacency, conv, fc)
    np.testing.assert_array_equal(blk.toarray(), expected)
    assert blk.nnz == int(present.sum())


def test_max_and_avg_pooling_give_the_same_graph():
    torch.manual_seed(0)
    a = nets.PoolNet("max")
    b = copy.deepcopy(a)
    b.mode = "avg"
    nets.apply_random_masks(a, 0.5, seed=6)
    nets.apply_random_masks(b, 0.5, seed=6)
    ga, gb = multipartite(a, (2, 11, 9)), multipartite(b, (2, 11, 9))
    assert (ga.adjacency != gb.adjacency).nnz == 0
    assert [p.shape for p in ga.partitions] == [p.shape for p in gb.partitions]


# --------------------------------------------------------------------------- forward oracle


def linear_forward(net: nn.Module, x: np.ndarray, **attrs) -> np.ndarray:
    ref = copy.deepcopy(net).double().eval()
    for k, v in attrs.items():
        setattr(ref, k, v)
    with torch.no_grad():
        return ref(torch.from_numpy(x)[None]).reshape(-1).numpy()


@pytest.mark.parametrize("identity_skips", [False, True])
def test_mge_forward_equals_linear_residual_network(identity_skips):
    torch.manual_seed(0)
    net = nets.LinearResidualNet()
    nets.apply_random_masks(net, (0.3, 1.0), seed=7)
    g = multipartite(net, (3, 7, 8), identity_skips=identity_skips)
    names = [p.name for p in g.partitions]
    assert "proj" not in names and "tie_b" not in names  # shortcut and tie shortcut
    assert names == ["input", "c0", "c1", "c2", "c3", "c4", "tie_a", "c5", "c6", "fc"]
    assert_invariants(g, net, identity=identity_skips)
    for seed in range(3):
        x = rand((3, 7, 8), seed)
        want = linear_forward(net, x, keep_identity=identity_skips)
        assert_close(nets.mge_forward(g, x), want)
    if not identity_skips:  # and the identity skip does change the function
        x = rand((3, 7, 8), 0)
        assert not np.allclose(nets.mge_forward(g, x), linear_forward(net, x))


def test_mge_forward_equals_linear_chain_with_cat():
    torch.manual_seed(1)
    net = nets.LinearChain()
    nets.apply_random_masks(net, (0.3, 1.0), seed=8)
    g = multipartite(net, (2, 5, 6))
    assert [p.name for p in g.partitions] == ["input", "a", "b", "c", "d", "fc"]
    assert_invariants(g, net)
    x = rand((2, 5, 6))
    assert_close(nets.mge_forward(g, x), linear_forward(net, x))


def test_mge_forward_equals_sum_pooling_network():
    # the paper's pooling convention: every window element gets the pooled element's edges,
    # i.e. the MGE computes the network with sum pooling (overlapping windows included)
    torch.manual_seed(2)
    net = nets.PoolNet("avg")
    nets.apply_random_masks(net, (0.3, 1.0), seed=9)
    g = multipartite(net, (2, 11, 9))
    assert [(p.name, p.shape) for p in g.partitions] == [
        ("input", (2, 11, 9)), ("a", (3, 11, 9)), ("b", (4, 5, 4)), ("c", (5, 3, 2)),
        ("fc", (3,))]
    assert_invariants(g, net)
    for seed in range(3):
        x = rand((2, 11, 9), seed)
        # overlapping windows merge pairs: their weights are summed in float32 (SPEC 1)
        assert_close(nets.mge_forward(g, x), linear_forward(net, x, mode="sum"), rtol=1e-6)


# --------------------------------------------------------------------------- cat


def test_cat_is_the_channelwise_union_of_its_operands():
    torch.manual_seed(3)
    net = nets.DenseBlockNet()
    nets.apply_random_masks(net, 0.5, seed=10)
    g = multipartite(net, (3, 8, 10))
    assert [p.name for p in g.partitions] == [
        "input", "stem", "layers.0.2", "layers.1.2", "transition", "fc"]
    assert_invariants(g, net)
    parts = [g.partition(n) for n in ("stem", "layers.0.2", "layers.1.2")]
    xs = [rand(p.shape, seed=i) for i, p in enumerate(parts)]
    for consumer, n_in in (("layers.1.2", 2), ("transition", 3)):
        dst = g.partition(consumer)
        got = sum(nets.block(g.adjacency, p, dst).T @ x.ravel()
                  for p, x in zip(parts[:n_in], xs[:n_in], strict=True))
        want = conv_ref(net.get_submodule(consumer), np.concatenate(xs[:n_in], axis=0))
        assert_close(got, want)
        into = sp.csc_matrix(g.adjacency)[:, dst.offset:dst.stop].nnz
        assert into == sum(nets.block(g.adjacency, p, dst).nnz for p in parts[:n_in])


# --------------------------------------------------------------------------- union of BGEs


def test_mge_of_a_stride_one_network_is_the_union_of_unrolled_bges():
    torch.manual_seed(4)
    net = nets.LinearChain()
    nets.apply_random_masks(net, (0.2, 1.0), seed=11)
    g = multipartite(net, (2, 5, 6))
    nodes = {p.name: np.arange(p.offset, p.stop) for p in g.partitions}
    # tensor read by each layer -> its MGE nodes; tensor written -> its MGE nodes
    left = {"a": nodes["input"], "b": nodes["a"], "c": nodes["b"], "sc": nodes["a"],
            "d": np.concatenate([nodes["a"], nodes["c"]]), "fc": nodes["d"]}
    right = {"a": nodes["a"], "b": nodes["b"], "c": nodes["c"], "sc": nodes["c"],
             "d": nodes["d"], "fc": nodes["fc"]}
    rows, cols, vals = [], [], []
    graphs = unrolled(net, (2, 5, 6))
    assert sorted(b.layer for b in graphs) == sorted(left)
    for b in graphs:
        lp = b.partitions[0]
        coo = b.adjacency.tocoo()
        rows.append(left[b.layer][coo.row])
        cols.append(right[b.layer][coo.col - lp.size])
        vals.append(coo.data.astype(np.float64))
    expected = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=g.adjacency.shape)
    assert expected.nnz == g.n_edges
    assert (sp.csr_matrix(g.adjacency, dtype=np.float64) != expected).nnz == 0


@pytest.mark.parametrize(
    "factory, shape",
    [(nets.VGGFunctional, (3, 20, 28)), (nets.DepthwiseDilated, (3, 12, 15)),
     (nets.DenseBlockNet, (3, 8, 10)), (lambda: nets.ViewFlatten("size"), (3, 12, 14))],
    ids=["vgg_functional", "depthwise_dilated", "dense_block", "view_size_flatten"],
)
def test_new_architectures_encode(factory, shape):
    torch.manual_seed(5)
    net = factory()
    nets.apply_random_masks(net, (0.1, 1.0), seed=12)
    g = multipartite(net, shape)
    expected = [("input", tuple(shape))] + [(n, o) for n, _, o in nets.layer_io_shapes(net, shape)]
    assert [(p.name, tuple(p.shape)) for p in g.partitions] == expected
    assert_invariants(g, net)


def test_unsupported_model_is_reported_by_the_encoder():
    with pytest.raises(EncodingError, match=r"'matmul'.*'odd_block'"):
        multipartite(nets.UnsupportedOp("matmul"), (3, 5, 5))


def test_adaptive_windows_oracle_is_torchs():
    x = torch.from_numpy(rand((1, 2, 7, 6)))
    sums = nets.adaptive_sum_pool(x, (4, 4))
    sizes = nets.adaptive_sum_pool(torch.ones_like(x), (4, 4))
    assert sizes.min() < sizes.max()  # unequal, overlapping windows
    torch.testing.assert_close(sums / sizes, F.adaptive_avg_pool2d(x, (4, 4)))


def test_mge_forward_with_input_pooling_and_uneven_adaptive_windows():
    torch.manual_seed(6)
    net = nets.AdaptiveNet()
    nets.apply_random_masks(net, (0.3, 1.0), seed=13)
    g = multipartite(net, (2, 6, 8))
    assert [(p.name, p.shape) for p in g.partitions] == [
        ("input", (2, 6, 8)), ("a", (3, 5, 7)), ("b", (2, 2, 3)), ("fc", (2,))]
    assert_invariants(g, net)
    for seed in range(3):
        x = rand((2, 6, 8), seed)
        assert_close(nets.mge_forward(g, x), linear_forward(net, x, sum_pool=True), rtol=1e-6)


@pytest.mark.parametrize("skip, identity_skips", [("conv", False), ("identity", False),
                                                  ("identity", True)])
def test_mge_forward_with_skips_reading_pooled_elements(skip, identity_skips):
    torch.manual_seed(7)
    net = nets.PooledResidualNet(skip=skip)
    nets.apply_random_masks(net, (0.3, 1.0), seed=14)
    g = multipartite(net, (2, 9, 8), identity_skips=identity_skips)
    assert [p.name for p in g.partitions] == ["input", "c0", "c1", "c2", "c3", "fc"]
    assert_invariants(g, net, identity=identity_skips)
    for seed in range(3):
        x = rand((2, 9, 8), seed)
        want = linear_forward(net, x, mode="sum", keep_identity=identity_skips)
        assert_close(nets.mge_forward(g, x), want, rtol=1e-6)


class _PoolOfPool(nn.Module):
    """conv -> overlapping 3x3/1 pool -> 2x2/2 pool -> conv -> linear (no nonlinearity)."""

    def __init__(self, sum_pool: bool = False):
        super().__init__()
        self.sum_pool = sum_pool
        self.a = nn.Conv2d(2, 3, 3, padding=1, bias=False)
        self.b = nn.Conv2d(3, 2, 2, bias=False)
        self.fc = nn.Linear(2 * 2 * 2, 2, bias=False)

    def forward(self, x):
        x = F.avg_pool2d(self.a(x), 3, 1, 1)
        if self.sum_pool:
            x = x * 9.0
        x = F.avg_pool2d(x, 2)
        if self.sum_pool:
            x = x * 4.0
        return self.fc(self.b(x).flatten(1))


def test_pool_of_an_overlapping_pool_repeats_shared_window_elements():
    # SPEC 3.5 applied twice: an edge leaving a 2nd-level pooled element is replaced by one edge
    # per element of its window, which are 1st-level pooled elements sharing input elements;
    # each of those edges is replaced again, and the duplicates merge by summing (SPEC 1): the
    # MGE computes the network with both pools as window sums
    torch.manual_seed(8)
    net = _PoolOfPool()
    nets.apply_random_masks(net, (0.5, 1.0), seed=15)
    g = multipartite(net, (2, 6, 6))
    assert [(p.name, p.shape) for p in g.partitions] == [
        ("input", (2, 6, 6)), ("a", (3, 6, 6)), ("b", (2, 2, 2)), ("fc", (2,))]
    x = rand((2, 6, 6))
    assert_close(nets.mge_forward(g, x), linear_forward(net, x, sum_pool=True), rtol=1e-6)


class _SkipOverItsOwnConv(nn.Module):
    """``c1(x) + x``: the identity skip and ``c1`` both go from ``c0``'s partition into
    ``c1``'s, so an identity pair can coincide with a ``c1`` edge and the two merge."""

    def __init__(self):
        super().__init__()
        self.c0 = nn.Conv2d(2, 3, 3, padding=1, bias=False)
        self.c1 = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        self.fc = nn.Linear(3 * 5 * 5, 2, bias=False)

    def forward(self, x):
        x = self.c0(x)
        return self.fc(torch.flatten(self.c1(x) + x, 1))


def assert_same_graph(a, b) -> None:
    for name in ("indptr", "indices", "data"):
        got, want = getattr(a.adjacency, name), getattr(b.adjacency, name)
        assert got.dtype == want.dtype, name
        np.testing.assert_array_equal(got, want, err_msg=name)
    np.testing.assert_array_equal(a.edge_weight_ids, b.edge_weight_ids)
    assert a.edge_weight_ids.dtype == b.edge_weight_ids.dtype
    assert a.adjacency.shape == b.adjacency.shape and a.adjacency.has_sorted_indices
    assert (a.partitions, a.input_index, a.output_index, a.kind, a.layer, a.meta) == (
        b.partitions, b.input_index, b.output_index, b.kind, b.layer, b.meta)


@pytest.mark.parametrize("make, shape, density, merges", [
    (lambda: models.create("resnet20", seed=0), (3, 32, 32), 0.02, False),
    (lambda: models.create("wrn28_2", seed=0), (3, 16, 16), 0.02, False),
    (nets.LinearResidualNet, (3, 7, 8), 0.3, True),  # tie add: two convs share src and dst
    (lambda: nets.PooledResidualNet("identity"), (2, 9, 8), 0.3, True),  # overlapping pool
    (_SkipOverItsOwnConv, (2, 5, 5), 0.3, True),
])
def test_multipartite_pair_is_both_builds(make, shape, density, merges):
    # the graph without identity skips is taken from the one with them (a CSR filter) only
    # when no pair can merge; either way the pair is exactly what two separate builds give
    torch.manual_seed(0)
    net = make()
    nets.apply_random_masks(net, density, seed=2)
    assert _multipartite._plan(net, shape, True).may_merge is merges
    plain, with_skips = multipartite_pair(net, shape)
    assert plain.meta["identity_edges"] == 0 < with_skips.meta["identity_edges"]
    assert_same_graph(plain, multipartite(net, shape))
    assert_same_graph(with_skips, multipartite(net, shape, identity_skips=True))
    both = multipartite_pair(net, shape, identity_skips=True)
    assert both[0] is both[1]
    assert_same_graph(both[0], with_skips)
