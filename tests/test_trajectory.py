"""The trajectory's path metrics (``training.mask_topology``, by passes of the network) against
the multipartite graph itself (``encoding.multipartite`` with identity skips, then
``metrics.topometrics``): an independent computation of the same definitions."""

from __future__ import annotations

import math

import pytest
import torch

from sparsetopo import encoding, metrics, models
from sparsetopo.pruning.masks import prunable_layers
from sparsetopo.training import TRAJECTORY_METRICS, TopologyRecorder, mask_topology, sparse_init

SHAPE = (1, 8, 8)


def graph_metrics(model, shape=SHAPE) -> dict:
    graph = encoding.multipartite(model, shape, identity_skips=True)
    return metrics.topometrics(graph, keys=TRAJECTORY_METRICS)


def assert_same(got: dict, expected: dict) -> None:
    assert set(got) == set(TRAJECTORY_METRICS)
    assert got["alive_edges"] == expected["alive_edges"]
    assert got["effective_density"] == pytest.approx(expected["effective_density"], rel=1e-12)
    if math.isinf(expected["log10_paths"]):
        assert got["log10_paths"] == expected["log10_paths"]
    else:
        assert got["log10_paths"] == pytest.approx(expected["log10_paths"], rel=1e-12)


@pytest.mark.parametrize("name", ["conv6", "resnet20", "mlp", "wrn28_2"])
@pytest.mark.parametrize(("method", "sparsity"), [("set", 0.5), ("rigl", 0.98),
                                                  ("dsr", 0.998)])
def test_mask_topology_equals_the_graph_on_zoo_nets(name, method, sparsity):
    net = models.create(name, num_classes=10, in_channels=1, seed=0, image_size=8)
    sparse_init(net, method, sparsity, seed=1)
    assert_same(mask_topology(net, SHAPE), graph_metrics(net))


def test_recorder_follows_the_masks_of_the_training_network():
    """The recorder's copy is traced once; each record reads the network's current masks."""
    net = models.create("resnet20", num_classes=10, in_channels=1, seed=0, image_size=8)
    sparse_init(net, "rigl", 0.99, seed=0)
    recorder = TopologyRecorder(net, SHAPE)
    first = recorder(net)
    assert_same(first, graph_metrics(net))
    gen = torch.Generator().manual_seed(5)
    for _, module in prunable_layers(net):  # a new mask of the same density
        mask = module.weight_mask
        flat = mask.flatten()
        module.weight_mask.copy_(flat[torch.randperm(flat.numel(), generator=gen)]
                                 .reshape(mask.shape))
    second = recorder(net)
    assert_same(second, graph_metrics(net))
    assert second != first
    for _, module in prunable_layers(net):  # a mask with no path at all
        if module.weight_mask.shape[0] == 10:
            module.weight_mask.zero_()
    dead = recorder(net)
    assert dead == {"effective_density": 0.0, "alive_edges": 0, "log10_paths": -math.inf}
    assert_same(dead, graph_metrics(net))
