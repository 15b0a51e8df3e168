"""LayeredGraph (SPEC 1): persistence without pickle, duplicate merging, and the MGE memory
guard (exact size estimate from masks and shapes; refusal before allocating)."""

from __future__ import annotations

import os
from types import SimpleNamespace

import nets
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch import nn

import sparsetopo.encoding._multipartite as mp
from sparsetopo import models
from sparsetopo.encoding import (
    GraphTooLargeError,
    LayeredGraph,
    Partition,
    estimate,
    from_edges,
    multipartite,
    rolled_channel,
)


def three_partitions() -> list[Partition]:
    return [Partition("input", 0, (2, 3)), Partition("a", 6, (4,)), Partition("b", 10, (5,))]


def random_edges(seed: int, n_edges: int = 400):
    """Edges between the three partitions, lower to higher, with many duplicate pairs."""
    rng = np.random.default_rng(seed)
    bounds = [(0, 6), (6, 10), (10, 15)]
    pa = rng.integers(0, 2, n_edges)
    pb = pa + 1 + (rng.random(n_edges) < 0.3) * (pa == 0)
    src = np.array([rng.integers(*bounds[p]) for p in pa])
    dst = np.array([rng.integers(*bounds[p]) for p in pb])
    w = rng.standard_normal(n_edges).astype(np.float32)
    ids = rng.permutation(n_edges).astype(np.int32)
    return src, dst, w, ids


# --------------------------------------------------------------------------- from_edges


def test_from_edges_merges_duplicates_by_summing():
    src, dst, w, ids = random_edges(0)
    g = from_edges(src, dst, w, three_partitions(), weight_ids=ids, kind="test")
    sums: dict = {}
    first: dict = {}
    for s, d, x, i in zip(src, dst, w, ids, strict=True):  # naive accumulation
        key = (int(s), int(d))
        sums[key] = sums.get(key, 0.0) + float(x)
        first[key] = min(first.get(key, 1 << 30), int(i))
    assert len(sums) < len(src)  # the test really has duplicates
    assert g.n_edges == len(sums) and g.n_nodes == 15
    coo = g.adjacency.tocoo()
    got = {(int(r), int(c)): float(v) for r, c, v in zip(coo.row, coo.col, coo.data, strict=True)}
    assert got.keys() == sums.keys()
    for k, v in sums.items():
        assert got[k] == pytest.approx(v, rel=1e-5, abs=1e-5)
    csr = g.adjacency
    got_ids = {}
    for r in range(g.n_nodes):
        for k in range(csr.indptr[r], csr.indptr[r + 1]):
            got_ids[(r, int(csr.indices[k]))] = int(g.edge_weight_ids[k])
    assert got_ids == first
    assert g.adjacency.dtype == np.float32 and g.adjacency.indices.dtype == np.int32
    assert g.adjacency.has_canonical_format


def test_cancelling_duplicates_stay_an_edge():
    parts = [Partition("input", 0, (2,)), Partition("out", 2, (2,))]
    g = from_edges(np.array([0, 0, 1]), np.array([2, 2, 3]),
                   np.array([0.5, -0.5, 1.0], np.float32), parts)
    assert g.n_edges == 2
    assert g.adjacency[0, 2] == 0.0 and g.adjacency[1, 3] == 1.0


def test_partitions_and_validation():
    g = from_edges(np.array([0]), np.array([12]), np.array([1.0], np.float32),
                   three_partitions(), output_index=1)
    assert g.input_partition.name == "input" and g.output_partition.name == "a"
    assert g.partition("b").offset == 10 and g.partition("b").size == 5
    np.testing.assert_array_equal(g.partition_of(np.array([0, 5, 6, 9, 10, 14])),
                                  [0, 0, 1, 1, 2, 2])
    with pytest.raises(KeyError, match="nope"):
        g.partition("nope")
    with pytest.raises(ValueError, match="adjacency"):
        LayeredGraph(sp.csr_matrix((14, 14), dtype=np.float32), three_partitions())


# --------------------------------------------------------------------------- save / load


def assert_same_graph(a: LayeredGraph, b: LayeredGraph) -> None:
    assert a.partitions == b.partitions
    assert all(isinstance(p.shape, tuple) for p in b.partitions)
    assert (a.input_index, a.output_index, a.kind, a.layer) == (
        b.input_index, b.output_index, b.kind, b.layer)
    assert a.meta == b.meta
    for attr in ("data", "indices", "indptr"):
        x, y = getattr(a.adjacency, attr), getattr(b.adjacency, attr)
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)
    assert b.adjacency.shape == a.adjacency.shape and sp.isspmatrix_csr(b.adjacency)
    if a.edge_weight_ids is None:
        assert b.edge_weight_ids is None
    else:
        assert b.edge_weight_ids.dtype == a.edge_weight_ids.dtype
        np.testing.assert_array_equal(a.edge_weight_ids, b.edge_weight_ids)


def test_save_load_roundtrip_without_pickle(tmp_path):
    src, dst, w, ids = random_edges(1)
    g = from_edges(src, dst, w, three_partitions(), weight_ids=ids, kind="mge", output_index=2,
                   meta={"n_weights": 400, "note": "ü", "nested": {"a": [1, 2]}})
    path = tmp_path / "g.npz"
    g.save(path)
    assert os.listdir(tmp_path) == ["g.npz"]  # written atomically, no temporary left
    with np.load(path, allow_pickle=False) as z:  # plain arrays only
        for key in z.files:
            assert z[key].dtype != object
    back = LayeredGraph.load(path)
    assert_same_graph(g, back)
    # overwrite in place, other path spelling
    g2 = from_edges(src[:10], dst[:10], w[:10], three_partitions(), layer="x", kind="unrolled")
    g2.save(str(path))
    assert_same_graph(g2, LayeredGraph.load(str(path)))
    assert os.listdir(tmp_path) == ["g.npz"]


def test_save_load_real_graphs(tmp_path):
    model = models.create("resnet20", seed=0)
    nets.apply_random_masks(model, 0.05, seed=0)
    g = multipartite(model, (3, 16, 16), identity_skips=True)
    g.save(tmp_path / "mge.npz")
    assert_same_graph(g, LayeredGraph.load(tmp_path / "mge.npz"))
    for i, h in enumerate(rolled_channel(model)[:3]):
        h.save(tmp_path / f"rc{i}.npz")
        assert_same_graph(h, LayeredGraph.load(tmp_path / f"rc{i}.npz"))
    empty = from_edges(np.zeros(0, int), np.zeros(0, int), np.zeros(0, np.float32),
                       three_partitions(), weight_ids=np.zeros(0, np.int32))
    empty.save(tmp_path / "empty.npz")
    back = LayeredGraph.load(tmp_path / "empty.npz")
    assert back.n_edges == 0 and back.n_nodes == 15


def test_load_rejects_other_files(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, meta=np.array('{"format": 999}'), shape=np.array([1, 1]),
             data=np.zeros(0, np.float32), indices=np.zeros(0, np.int32),
             indptr=np.zeros(2, np.int32))
    with pytest.raises(ValueError, match="format"):
        LayeredGraph.load(bad)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, meta=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError):
        LayeredGraph.load(pickled)


# --------------------------------------------------------------------------- estimate


ZOO = {
    "conv6": ({"input_size": 16}, (3, 16, 16)),
    "resnet20": ({}, (3, 16, 16)),
    "resnet32": ({}, (3, 16, 16)),
    "wrn28_2": ({}, (3, 16, 16)),
    "mobilenetv2": ({}, (3, 16, 16)),
    "mlp": ({"input_size": 8}, (3, 8, 8)),
    "resnet18": ({}, (3, 64, 64)),
    "resnet50": ({}, (3, 32, 32)),
}
OVERLAPPING_POOL = {"resnet18", "resnet50"}


@pytest.mark.parametrize("name", list(ZOO))
def test_estimate_matches_the_built_graph(name):
    kwargs, shape = ZOO[name]
    model = models.create(name, seed=0, **kwargs)
    nets.apply_random_masks(model, (0.005, 0.05), seed=2, dense_below=1000)
    est = estimate(model, shape)
    g = multipartite(model, shape)
    assert est.nodes == g.n_nodes
    assert tuple(est.partitions) == tuple(g.partitions)
    if name in OVERLAPPING_POOL and not est.exact:
        assert est.edges >= g.n_edges
    else:
        assert est.exact
        assert est.edges == g.n_edges
        assert est.graph_bytes >= g.nbytes()
    assert est.peak_bytes >= est.graph_bytes > 0
    # SPEC 1 invariants on every zoo MGE
    assert g.adjacency.dtype == np.float32 and g.adjacency.indices.dtype == np.int32
    coo = g.adjacency.tocoo()
    part = g.partition_of
    assert (part(coo.row) < part(coo.col)).all()
    assert len(np.unique(coo.row.astype(np.int64) * g.n_nodes + coo.col)) == g.n_edges
    n_present = sum(int(nets.presence(m).sum()) for _, m in nets.conv_linear_modules(model))
    assert g.meta["n_weights"] == n_present
    assert g.edge_weight_ids.min() >= 0 and g.edge_weight_ids.max() < n_present


def test_estimate_with_identity_skips():
    model = models.create("resnet20", seed=0)
    nets.apply_random_masks(model, 0.02, seed=3)
    est = estimate(model, (3, 16, 16), identity_skips=True)
    g = multipartite(model, (3, 16, 16), identity_skips=True)
    assert est.exact and (est.nodes, est.edges) == (g.n_nodes, g.n_edges)
    plain = estimate(model, (3, 16, 16))
    assert est.edges - plain.edges == 3 * 16 * 16 * 16 + 2 * 32 * 8 * 8 + 2 * 64 * 4 * 4


def naive_overlapping_counts(net: nn.Sequential, shape) -> tuple[int, int]:
    """``conv -> maxpool(3, stride 1, pad 1) -> conv`` by explicit loops: the MGE edges before
    merging (one per conv edge and window element) and the distinct (src, dst) pairs."""
    c, h, w = shape
    first = 0
    m1 = nets.presence(net[0]).numpy()
    for _co, _ci, ky, kx in zip(*np.nonzero(m1), strict=True):
        for oy in range(h):
            for ox in range(w):
                first += 0 <= oy - 1 + ky < h and 0 <= ox - 1 + kx < w
    m2 = nets.presence(net[2]).numpy()
    before, pairs = 0, set()
    for co, ci, ky, kx in zip(*np.nonzero(m2), strict=True):
        for oy in range(h):
            for ox in range(w):
                py, px = oy - 1 + ky, ox - 1 + kx
                if not (0 <= py < h and 0 <= px < w):
                    continue
                for a in (-1, 0, 1):
                    for b in (-1, 0, 1):
                        if 0 <= py + a < h and 0 <= px + b < w:
                            before += 1
                            pairs.add((ci, py + a, px + b, co, oy, ox))
    return first + before, first + len(pairs)


def test_estimate_of_overlapping_pooling_is_an_upper_bound():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.MaxPool2d(3, stride=1, padding=1),
                        nn.Conv2d(2, 2, 3, padding=1))
    nets.apply_random_masks(net, 0.7, seed=0)
    before, after = naive_overlapping_counts(net, (2, 5, 6))
    assert before > after
    est = estimate(net, (1, 5, 6))
    g = multipartite(net, (1, 5, 6))
    assert g.n_edges == after
    assert not est.exact
    assert est.edges == before
    assert est.nodes == g.n_nodes == 30 + 60 + 60


# --------------------------------------------------------------------------- memory guard


def test_refuses_before_allocating_and_builds_when_forced(monkeypatch):
    model = models.create("resnet20", seed=0)
    nets.apply_random_masks(model, 0.05, seed=4)
    reference = multipartite(model, (3, 16, 16))
    calls = []
    real_layer_edges, real_csr_rows = mp.layer_edges, mp.csr_rows

    def spy_layer_edges(*a, **k):
        calls.append("layer_edges")
        return real_layer_edges(*a, **k)

    def spy_csr_rows(*a, **k):
        calls.append("csr_rows")
        return real_csr_rows(*a, **k)

    monkeypatch.setattr(mp, "layer_edges", spy_layer_edges)
    monkeypatch.setattr(mp, "csr_rows", spy_csr_rows)
    tiny = SimpleNamespace(available=1 << 20, total=1 << 21, used=1 << 20, percent=50.0)
    monkeypatch.setattr(mp.psutil, "virtual_memory", lambda: tiny)
    with pytest.raises(GraphTooLargeError, match="force") as info:
        multipartite(model, (3, 16, 16))
    assert isinstance(info.value, MemoryError)
    assert f"{reference.n_edges:,}" in str(info.value)
    assert calls == []  # refused before generating a single edge
    forced = multipartite(model, (3, 16, 16), force=True)
    assert "csr_rows" in calls
    assert (forced.adjacency != reference.adjacency).nnz == 0
    assert forced.n_edges == reference.n_edges


def test_guard_lets_small_graphs_through(monkeypatch):
    net = nn.Sequential(nn.Linear(4, 3))
    plenty = SimpleNamespace(available=1 << 40, total=1 << 41, used=0, percent=0.0)
    monkeypatch.setattr(mp.psutil, "virtual_memory", lambda: plenty)
    g = multipartite(net, (4,))
    assert g.n_edges == 12


def test_export_to_networkx_and_igraph_keeps_every_edge_weight_and_partition():
    """The exports hold the CSR's edges and weights (read back independently of the CSR) and
    every node's partition and local index."""
    import igraph as ig
    import networkx as nx

    from sparsetopo import encoding, models, pruning

    model = models.create("resnet20", seed=1)
    pruning.prune(model, "uniform", 0.99, seed=1)
    g = encoding.multipartite(model, (3, 8, 8), identity_skips=True)
    coo = g.adjacency.tocoo()
    want = sorted(zip(coo.row.tolist(), coo.col.tolist(), coo.data.tolist(), strict=True))

    nxg = g.to_networkx()
    assert isinstance(nxg, nx.DiGraph) and nxg.number_of_nodes() == g.n_nodes
    assert sorted((u, v, d["weight"]) for u, v, d in nxg.edges(data=True)) == want
    igg = g.to_igraph()
    assert isinstance(igg, ig.Graph) and igg.is_directed() and igg.vcount() == g.n_nodes
    assert sorted((e.source, e.target, e["weight"]) for e in igg.es) == want  # float32 exact
    for p in (g.partitions[0], g.partitions[-1]):
        node = p.offset + p.size - 1
        assert nxg.nodes[node] == {"partition": p.name, "index": p.size - 1}
        assert igg.vs[node]["partition"] == p.name and igg.vs[node]["index"] == p.size - 1


def test_export_refuses_a_graph_too_large_for_networkx():
    from sparsetopo.encoding import GraphTooLargeError

    g = LayeredGraph(sp.csr_matrix((np.ones(3, np.float32), ([0, 1, 2], [1, 2, 3])),
                                   shape=(4, 4)),
                     [Partition("a", 0, (1,)), Partition("b", 1, (1,)), Partition("c", 2, (1,)),
                      Partition("d", 3, (1,))])
    with pytest.raises(GraphTooLargeError, match="max_edges=None"):
        g.to_networkx(max_edges=2)
    assert g.to_networkx(max_edges=None).number_of_edges() == 3
