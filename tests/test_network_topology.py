"""The structural topometrics without the materialised MGE (``metrics.network_topology_metrics``
on the packed undirected graph), against the graph's and against networkx/igraph directly."""

from __future__ import annotations

import math

import igraph as ig
import nets
import networkx as nx
import numpy as np
import pytest
import torch

import sparsetopo as st
from sparsetopo.encoding.layers import (
    conv_edges,
    conv_geometry,
    layer_arrays,
    layer_edge_count,
    layer_output_edge_counts,
)
from sparsetopo.errors import GraphTooLargeError, InputError
from sparsetopo.metrics import GraphView, network_degrees, network_topology_metrics
from sparsetopo.metrics._packed import id_bytes, packed_undirected
from sparsetopo.metrics.network_topology import NETWORK_TOPOLOGY_METRICS

CASES = {
    "resnet20": (lambda: st.models.create("resnet20", seed=0), (3, 16, 16), 0.2),
    "mobilenetv2": (lambda: st.models.create("mobilenetv2", seed=0), (3, 16, 16), 0.3),
    "resnet18_stem_pool": (lambda: st.models.create("resnet18", seed=0), (3, 32, 32), 0.1),
    "dense_block_cat": (nets.DenseBlockNet, (3, 8, 10), 0.3),
    "pooled_residual_identity": (lambda: nets.PooledResidualNet("identity"), (2, 9, 8), 0.3),
    "linear_residual_tie": (nets.LinearResidualNet, (3, 7, 8), 0.5),
    "vgg_functional": (nets.VGGFunctional, (3, 20, 28), 0.2),
}


def _model(name):
    make, shape, density = CASES[name]
    torch.manual_seed(0)
    model = make()
    nets.apply_random_masks(model, density, seed=7)
    return model, shape


def _decoded(ids: np.ndarray) -> np.ndarray:
    return ids.astype(np.int64) @ (256 ** np.arange(ids.shape[1], dtype=np.int64))


@pytest.mark.parametrize("identity_skips", [False, True])
@pytest.mark.parametrize("name", sorted(CASES))
def test_packed_graph_is_the_mges_undirected_graph(name, identity_skips):
    model, shape = _model(name)
    graph = st.encoding.multipartite(model, shape, identity_skips)
    view = GraphView(graph)
    in_deg, out_deg = network_degrees(model, shape, identity_skips)
    np.testing.assert_array_equal(in_deg, view.in_degree)
    np.testing.assert_array_equal(out_deg, view.out_degree)
    chunks = st.encoding.target_chunks(model, shape, identity_skips, max_edges=2000)
    assert len(chunks) > 1
    packed = packed_undirected(chunks, in_deg, out_deg)
    uptr, uidx = view.undirected
    np.testing.assert_array_equal(packed.uptr, uptr)
    np.testing.assert_array_equal(_decoded(packed.ids), uidx)
    assert packed.ids.shape[1] == id_bytes(graph.n_nodes)
    start, stop, _ = packed.out_rows
    np.testing.assert_array_equal(stop - start, view.out_degree)


@pytest.mark.parametrize("identity_skips", [False, True])
@pytest.mark.parametrize("name", sorted(CASES))
def test_values_are_the_graphs(name, identity_skips):
    model, shape = _model(name)
    graph = st.encoding.multipartite(model, shape, identity_skips)
    want = st.metrics.topometrics(graph, keys=NETWORK_TOPOLOGY_METRICS, seed=3)
    got = network_topology_metrics(model, shape, identity_skips, seed=3)
    assert list(got) == list(NETWORK_TOPOLOGY_METRICS)
    for key in NETWORK_TOPOLOGY_METRICS:
        assert got[key] == want[key] or (math.isnan(got[key]) and math.isnan(want[key])), key


def test_against_networkx_and_igraph():
    # a sparse network, so that the graph has bridges, articulation points and several
    # components; the libraries see only the MGE's edge list
    torch.manual_seed(0)
    model = st.models.create("resnet20", seed=0)
    nets.apply_random_masks(model, 0.04, seed=1)
    shape = (3, 12, 12)
    got = network_topology_metrics(model, shape, seed=5)
    graph = st.encoding.multipartite(model, shape)
    coo = graph.adjacency.tocoo()
    edges = list(zip(coo.row.tolist(), coo.col.tolist(), strict=True))
    d = nx.DiGraph()
    d.add_nodes_from(range(graph.n_nodes))
    d.add_edges_from(edges)
    u = d.to_undirected()
    assert got["cut_edges"] == sum(1 for _ in nx.bridges(u)) > 0
    assert got["cut_nodes"] == sum(1 for _ in nx.articulation_points(u)) > 0
    assert got["connected_components"] == nx.number_connected_components(u) > 1
    assert got["mean_component_size"] == graph.n_nodes / nx.number_connected_components(u)
    assert got["k_core"] == pytest.approx(np.mean(list(nx.core_number(u).values())), rel=1e-12)
    two = sum(len(nx.single_source_shortest_path_length(d, v, cutoff=2)) for v in d)
    assert got["two_hop"] == pytest.approx(two / graph.n_nodes, rel=1e-12)
    sample = st.metrics.motifs.motif_sample(graph.n_nodes, 5).tolist()
    est = ig.Graph(n=graph.n_nodes, edges=edges, directed=True).motifs_randesu_estimate(
        size=4, sample=sample)  # igraph scales by nodes / sample itself
    assert got["motifs"] == pytest.approx(est, rel=1e-12) and est > 0


@pytest.mark.parametrize("n, b", [(1, 1), (256, 1), (257, 2), (2**16, 2), (2**16 + 1, 3),
                                  (2**24, 3), (2**24 + 1, 4)])
def test_id_bytes(n, b):
    assert id_bytes(n) == b


def test_chunks_hold_every_edge_once_within_their_targets():
    model, shape = _model("resnet18_stem_pool")
    graph = st.encoding.multipartite(model, shape)
    chunks = st.encoding.target_chunks(model, shape, max_edges=5000)
    seen, total = [], 0
    for (lo, hi, src, dst), (_, c0, c1, planned) in zip(chunks, chunks.bounds, strict=True):
        assert ((dst >= lo) & (dst < hi)).all()
        assert len(src) == planned and (planned <= 5000 or c1 == c0 + 1)
        seen.append(np.unique(src * graph.n_nodes + dst))
        total += len(src)
    assert total == chunks.edges >= graph.n_edges  # pairs through overlapping windows: twice
    coo = graph.adjacency.tocoo()
    np.testing.assert_array_equal(np.unique(np.concatenate(seen)),
                                  np.sort(coo.row.astype(np.int64) * graph.n_nodes + coo.col))


@pytest.mark.parametrize("groups, stride, mult", [(1, 1, False), (1, 2, True), (4, 1, True)])
def test_output_edge_counts_are_the_edges_per_channel(groups, stride, mult):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(8, 12, 3, stride=stride, padding=1, groups=groups)
    nets.apply_random_masks(conv, 0.4, seed=2)
    in_shape = (8, 9, 7)
    out_shape = (12, *conv(torch.zeros(1, *in_shape)).shape[2:])
    m = np.random.default_rng(0).integers(1, 4, 8 * 9 * 7) if mult else None
    e = conv_edges(*layer_arrays(conv), conv_geometry(conv, in_shape, out_shape))
    per_edge = np.ones(len(e.src), np.int64) if m is None else m[e.src]
    want = np.bincount(e.dst // (out_shape[1] * out_shape[2]), per_edge, minlength=12)
    got = layer_output_edge_counts(conv, in_shape, out_shape, m)
    np.testing.assert_array_equal(got, want)
    assert layer_edge_count(conv, in_shape, out_shape, m) == want.sum()


def test_refuses_what_would_not_fit(monkeypatch):
    model, shape = _model("resnet20")
    est = st.metrics.estimate_network_topology(model, shape)
    assert est.graph_bytes < est.peak_bytes

    class Tiny:
        available = est.peak_bytes - 1

        @staticmethod
        def virtual_memory():
            return Tiny

    monkeypatch.setattr("sparsetopo.metrics.network_topology.psutil", Tiny)
    with pytest.raises(GraphTooLargeError, match="packed undirected MGE .* GiB"):
        network_topology_metrics(model, shape)


def test_two_hop_left_nan_with_its_reason_when_its_words_would_not_fit(monkeypatch):
    model, shape = _model("resnet20")
    want = network_topology_metrics(model, shape, keys=["k_core", "connected_components"])

    class Tiny:  # only the views' scratch check sees it
        available = 1

        @staticmethod
        def virtual_memory():
            return Tiny

    monkeypatch.setattr("sparsetopo.metrics._view.psutil", Tiny)
    unavailable = {}
    got = network_topology_metrics(model, shape, keys=["two_hop", "k_core", "connected_components"],
                                   force=True, unavailable=unavailable)
    assert math.isnan(got["two_hop"]) and "word rows" in unavailable["two_hop"]
    assert got["k_core"] == want["k_core"]
    assert got["connected_components"] == want["connected_components"]


def test_unknown_key_is_refused():
    model, shape = _model("resnet20")
    with pytest.raises(InputError, match="cannot compute .*spectral_gap.* supported: two_hop"):
        network_topology_metrics(model, shape, keys=["spectral_gap"])


@pytest.mark.parametrize("name", ["resnet18_stem_pool", "dense_block_cat"])
def test_two_hop_by_ranges_of_words_is_the_same(name, monkeypatch):
    from sparsetopo.metrics import neighbourhood

    model, shape = _model(name)
    graph = st.encoding.multipartite(model, shape)
    want = neighbourhood.two_hop(GraphView(graph))
    calls = []
    rows = neighbourhood._word_rows
    monkeypatch.setattr(neighbourhood, "_word_rows", lambda *a: calls.append(1) or rows(*a))
    view = GraphView(graph)
    view.word_budget = 12 * 500  # a few hundred row words at once
    assert neighbourhood.two_hop(view) == want
    assert len(calls) > 3
    in_deg, out_deg = network_degrees(model, shape, False)
    packed = packed_undirected(st.encoding.target_chunks(model, shape), in_deg, out_deg)
    packed.word_budget = 12 * 500
    assert neighbourhood.two_hop(packed) == want
