"""The spectral topometrics by passes of the network (``metrics.network_spectra``) against the
same metrics on the materialised MGE: a dense eigensolver (``numpy.linalg.eigvalsh``) on small
graphs, the graph's own matrix-free solvers on larger ones."""

from __future__ import annotations

import nets
import numpy as np
import pytest
import torch

import sparsetopo as st
from sparsetopo.errors import GraphTooLargeError
from sparsetopo.metrics import network_spectra
from sparsetopo.metrics.spectral import spectral_gap, spectral_radius

CASES = {
    # at most 1500 nodes with an edge: both routes solve S densely (numpy.linalg.eigvalsh)
    "pool_net_overlapping": (lambda: nets.PoolNet("max"), (2, 11, 9), 0.6),
    "pooled_residual_identity": (lambda: nets.PooledResidualNet("identity"), (2, 9, 8), 0.4),
    # larger: the graph's Lanczos / ARPACK and the same solvers on the passes' products
    "dense_block_cat": (nets.DenseBlockNet, (3, 8, 10), 0.5),
    "depthwise_dilated_tie": (nets.DepthwiseDilated, (3, 12, 10), 0.5),
    "resnet20": (lambda: st.models.create("resnet20", seed=0), (3, 32, 32), 0.1),
    "resnet18_stem_pool": (lambda: st.models.create("resnet18", seed=0), (3, 32, 32), 0.1),
    "mobilenetv2": (lambda: st.models.create("mobilenetv2", seed=0), (3, 16, 16), 0.2),
}


def _net(name):
    make, shape, density = CASES[name]
    torch.manual_seed(0)
    model = make()
    nets.apply_random_masks(model, density, seed=5)
    return model, shape


# mobilenetv2 with identity skips is left out: ARPACK takes minutes on that spectrum (on the
# graph as well), the identity-skip products are covered by the other networks
@pytest.mark.parametrize("name, identity_skips", [
    (name, skips) for name in sorted(CASES) for skips in (False, True)
    if (name, skips) != ("mobilenetv2", True)])
def test_spectra_by_passes_are_the_graphs(name, identity_skips):
    model, shape = _net(name)
    graph = st.encoding.multipartite(model, shape, identity_skips)
    got = network_spectra(model, shape, identity_skips, seed=3)
    want = {"spectral_gap": spectral_gap(graph, seed=3),
            "spectral_radius": spectral_radius(graph, seed=3)}
    assert want["spectral_radius"] > 0
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=2e-6, abs=1e-9), k


@pytest.mark.parametrize("name", ["pool_net_overlapping", "depthwise_dilated_tie"])
def test_against_the_dense_spectrum_of_the_graph(name):
    model, shape = _net(name)
    graph = st.encoding.multipartite(model, shape)
    a = np.abs(graph.adjacency.toarray().astype(np.float64))
    s = a + a.T
    keep = s.any(axis=1)  # isolated nodes only add zero eigenvalues
    s = s[keep][:, keep]
    mags = np.sort(np.abs(np.linalg.eigvalsh(s)))[::-1]
    radius = np.linalg.eigvalsh(np.diag(s.sum(1)) - s)[-1]
    got = network_spectra(model, shape)
    assert got["spectral_gap"] == pytest.approx(mags[0] - mags[2], rel=2e-6)
    assert got["spectral_radius"] == pytest.approx(radius, rel=2e-6)


def test_no_edges_gives_zero():
    model, shape = _net("dense_block_cat")
    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.utils.prune.custom_from_mask(m, "weight", torch.zeros_like(m.weight))
    assert network_spectra(model, shape) == {"spectral_gap": 0.0, "spectral_radius": 0.0}


def test_refused_when_it_would_not_fit(monkeypatch):
    import sparsetopo.metrics.network_spectral as ns

    model, shape = _net("resnet20")
    monkeypatch.setattr(ns, "_available", lambda device: 1024)
    with pytest.raises(GraphTooLargeError, match="spectra by passes would need"):
        network_spectra(model, shape)
    assert st.metrics.estimate_network_spectra(model, shape) > 8 * 24 * 191_498
