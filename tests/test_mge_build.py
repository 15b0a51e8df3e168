"""The MGE built one source partition at a time (``encoding._multipartite._build``).

Oracles: one global ``from_edges`` of every layer's edges, concatenated in job order (the build
before the streaming, which held all edges at once: rows, merged weights and weight ids must be
identical), and ``tracemalloc``'s peak of the build, which the estimate must bound.
"""

from __future__ import annotations

import tracemalloc

import nets
import numpy as np
import pytest
import torch

from sparsetopo import encoding, models
from sparsetopo.encoding import _multipartite as mp
from sparsetopo.encoding.graph import from_edges

CASES = {
    "resnet20": (lambda: models.create("resnet20", seed=0), (3, 16, 16), 0.3),
    "resnet18_stem_pool": (lambda: models.create("resnet18", seed=0), (3, 32, 32), 0.1),
    "mobilenetv2": (lambda: models.create("mobilenetv2", seed=0), (3, 16, 16), 0.2),
    "dense_block_cat": (nets.DenseBlockNet, (3, 8, 10), 0.5),
    "linear_residual_cat_tie": (nets.LinearResidualNet, (3, 7, 8), 0.5),
    "linear_chain_cat": (nets.LinearChain, (2, 5, 6), 0.6),
    "depthwise_dilated": (nets.DepthwiseDilated, (3, 12, 10), 0.5),
    "pool_net_overlapping": (lambda: nets.PoolNet("max"), (2, 11, 9), 0.6),
    "pooled_residual_identity": (lambda: nets.PooledResidualNet("identity"), (2, 9, 8), 0.4),
}


def _network(name):
    make, shape, density = CASES[name]
    torch.manual_seed(0)
    net = make()
    nets.apply_random_masks(net, density, seed=3)
    return net, shape


def _global_build(net, shape, identity_skips):
    plan = mp._plan(net, shape, identity_skips)
    edges = [mp._job_edges(job) for job in plan.jobs]
    src, dst, weight, ids = (np.concatenate([e[i] for e in edges]) for i in range(4))
    return from_edges(src, dst, weight, plan.partitions, weight_ids=ids, merge=True)


@pytest.mark.parametrize("identity_skips", [False, True])
@pytest.mark.parametrize("name", sorted(CASES))
def test_streamed_build_equals_one_global_build(name, identity_skips):
    net, shape = _network(name)
    got = encoding.multipartite(net, shape, identity_skips)
    want = _global_build(net, shape, identity_skips)
    a, b = got.adjacency, want.adjacency
    assert a.has_sorted_indices
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.data, b.data)  # merged weights summed in the same order
    np.testing.assert_array_equal(got.edge_weight_ids, want.edge_weight_ids)
    assert a.indices.dtype == b.indices.dtype and a.indptr.dtype == b.indptr.dtype
    assert got.partitions == want.partitions
    est = encoding.estimate(net, shape, identity_skips)
    assert got.n_edges == est.edges if est.exact else got.n_edges <= est.edges


def test_merging_networks_really_merge():
    # the cases above include graphs where pairs are produced twice (else the merge is untested)
    merged = []
    for name in CASES:
        net, shape = _network(name)
        est = encoding.estimate(net, shape)
        merged.append(encoding.multipartite(net, shape).n_edges < est.edges)
    assert sum(merged) >= 2


@pytest.mark.parametrize("name, shape, density", [
    ("resnet18", (3, 64, 64), 0.3),  # the stem pool's partition is the largest source group
    ("resnet20", (3, 32, 32), 0.5),
    ("conv6", (3, 32, 32), 0.2),
])
def test_build_stays_within_its_estimate_and_below_the_global_build(name, shape, density):
    torch.manual_seed(0)
    net = models.create(name, seed=0)
    nets.apply_random_masks(net, density, seed=1)
    est = encoding.estimate(net, shape)
    peaks = []
    for build in (lambda: encoding.multipartite(net, shape),
                  lambda: _global_build(net, shape, False)):
        tracemalloc.start()
        try:
            graph = build()
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert graph.nbytes() <= est.graph_bytes
    assert peaks[0] <= est.peak_bytes
    # holding every edge at once peaked at 2.7-3.7x what one partition at a time needs
    assert peaks[0] <= 0.6 * peaks[1], [p / 2**20 for p in peaks]


@pytest.mark.parametrize("name, merges", [("resnet20", False), ("resnet18_stem_pool", True)])
def test_pair_is_refused_when_the_two_graphs_would_not_fit_together(name, merges, monkeypatch):
    # each graph alone fits, both together do not: refused before any edge is built
    from types import SimpleNamespace

    from sparsetopo.errors import GraphTooLargeError

    net, shape = _network(name)
    skips = encoding.estimate(net, shape, True)
    plain = encoding.estimate(net, shape)
    assert skips.exact is not merges
    second = plain.peak_bytes if merges else skips.graph_bytes
    need = max(skips.peak_bytes, skips.graph_bytes + second)
    assert need > max(skips.peak_bytes, plain.peak_bytes)
    room = SimpleNamespace(available=need - 1, total=2 * need, used=0, percent=0.0)
    monkeypatch.setattr(mp.psutil, "virtual_memory", lambda: room)
    encoding.multipartite(net, shape, True)  # one alone fits
    built = []
    monkeypatch.setattr(mp, "_build", lambda *a, **k: built.append(1))
    with pytest.raises(GraphTooLargeError, match="force"):
        encoding.multipartite_pair(net, shape)
    assert built == []
    encoding.multipartite_pair(net, shape, identity_skips=True)  # one graph: it fits
    assert built == [1]
