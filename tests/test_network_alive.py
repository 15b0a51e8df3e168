"""What lies on the input->output paths, by passes (``metrics.network_alive``), against the
graph: per-layer alive weights (``analysis.layer_alive_weights``: the weight ids of the MGE's
edges whose two ends are on such paths), alive channels and signal cut (``metrics.alive_channels``,
``metrics.signal_cut``)."""

from __future__ import annotations

import nets
import pytest
import torch

import sparsetopo as st
from sparsetopo.analysis import layer_alive_weights
from sparsetopo.metrics import alive_channels, network_alive, signal_cut

CASES = {
    "resnet20": (lambda: st.models.create("resnet20", seed=0), (3, 16, 16), 0.05),
    "wrn28_2": (lambda: st.models.create("wrn28_2", seed=0), (3, 16, 16), 0.03),
    "mobilenetv2": (lambda: st.models.create("mobilenetv2", seed=0), (3, 16, 16), 0.3),
    "resnet18_stem_pool": (lambda: st.models.create("resnet18", seed=0), (3, 32, 32), 0.05),
    "dense_block_cat": (nets.DenseBlockNet, (3, 8, 10), 0.3),
    "pooled_residual_identity": (lambda: nets.PooledResidualNet("identity"), (2, 9, 8), 0.3),
    "vgg_functional": (nets.VGGFunctional, (3, 20, 28), 0.2),
}


@pytest.mark.parametrize("identity_skips", [True, False])
@pytest.mark.parametrize("name", sorted(CASES))
def test_alive_weights_by_passes_are_the_graphs(name, identity_skips):
    make, shape, density = CASES[name]
    torch.manual_seed(0)
    model = make()
    nets.apply_random_masks(model, density, seed=7)
    dag = st.tracing.trace(model, shape)
    graph = st.encoding.multipartite(model, shape, identity_skips)
    want = layer_alive_weights(graph, dag)
    alive = network_alive(model, shape, identity_skips, dag=dag)
    got = alive.weights
    assert got == want
    assert alive.channels == alive_channels(graph)
    assert alive.signal_cut == signal_cut(graph)
    # sparse enough that some layer loses weights to dead ends, dense enough that some live
    present = {op.name: int(st.encoding.layers.layer_arrays(op.module)[1].sum())
               for op in dag.layers()}
    assert 0 < sum(got.values()) <= sum(present.values())
    if name in ("resnet20", "wrn28_2", "mobilenetv2"):
        assert any(got[k] < present[k] for k in got)


def test_merged_edges_count_both_layers_weights():
    # tie_a + tie_b of one input: the graph keeps one weight id per merged edge, the passes
    # count every weight whose gradient is positive (the documented difference)
    torch.manual_seed(0)
    model = nets.LinearResidualNet()
    nets.apply_random_masks(model, 0.5, seed=7)
    shape = (3, 7, 8)
    dag = st.tracing.trace(model, shape)
    graph = st.encoding.multipartite(model, shape, True)
    want = layer_alive_weights(graph, dag)
    got = network_alive(model, shape, dag=dag).weights
    assert set(got) == set(want)
    assert all(got[k] >= want[k] for k in got)
    assert sum(got.values()) > sum(want.values())


def test_signal_cut_and_dead_channels_where_a_layer_collapses():
    torch.manual_seed(0)
    model = st.models.create("resnet20", seed=0)
    nets.apply_random_masks(model, 0.3, seed=7)
    conv = model.layer2[0].conv1  # no identity around it: its block has a conv shortcut
    mask = torch.ones_like(conv.weight)
    mask[:, :, :, :] = 0
    torch.nn.utils.prune.custom_from_mask(conv, "weight", mask)
    shape = (3, 16, 16)
    graph = st.encoding.multipartite(model, shape, True)
    alive = network_alive(model, shape)
    assert alive.channels == alive_channels(graph)
    assert alive.signal_cut == signal_cut(graph)
    assert any(a < c for a, c in alive.channels.values())


def test_refused_when_the_passes_would_not_fit(monkeypatch):
    import sparsetopo.metrics.network_paths as npaths
    from sparsetopo.errors import GraphTooLargeError

    model = st.models.create("resnet20", seed=0)
    monkeypatch.setattr(npaths, "_available", lambda device: 1024)
    with pytest.raises(GraphTooLargeError, match="alive weights by passes would need"):
        network_alive(model, (3, 16, 16))
