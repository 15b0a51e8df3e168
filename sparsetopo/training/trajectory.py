"""Topology of a mask while training moves it: cheap path metrics of the current mask.

:func:`mask_topology` is the one place that computes them, so that a faster computation can
replace it: today the multipartite graph encoding with identity skips (the real network's
signal paths) and its path metrics ``effective_density`` (fraction of present weights on some
input->output path), ``alive_edges`` (edges on such a path) and ``log10_paths`` (log10 of
their number). They depend on the mask only, not on the weights' values.

:class:`TopologyRecorder` keeps a CPU copy of the network, traced once, whose masks are copied
from the training network at each record: the training network stays where it trains (GPU or
CPU) and in its mode, and each record costs one encoding, not one trace.
"""

from __future__ import annotations

from torch import nn

from sparsetopo import encoding, metrics
from sparsetopo.pruning.masks import apply_masks, get_masks, prunable_layers
from sparsetopo.pruning.scores import plain_copy
from sparsetopo.tracing import trace

#: The path metrics recorded at every mask update.
TRAJECTORY_METRICS = ("effective_density", "alive_edges", "log10_paths")


def mask_topology(model: nn.Module, input_shape: tuple[int, ...], dag=None) -> dict[str, float]:
    """:data:`TRAJECTORY_METRICS` of ``model``'s current masks: the MGE with identity skips
    (``encoding.multipartite(..., identity_skips=True)``) and ``metrics.topometrics`` of those
    keys. ``dag``: ``model``'s trace on ``input_shape`` (``tracing.trace``), if known."""
    graph = encoding.multipartite(model, tuple(input_shape), identity_skips=True, dag=dag)
    return metrics.topometrics(graph, keys=TRAJECTORY_METRICS)


class TopologyRecorder:
    """``recorder(model) -> dict``: :func:`mask_topology` of ``model``'s current masks,
    computed on a CPU copy made (and traced) once, here."""

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...]) -> None:
        self.input_shape = tuple(int(s) for s in input_shape)
        self.copy = plain_copy(model).cpu()
        apply_masks(self.copy, {k: m.cpu() for k, m in get_masks(model).items()})
        self.dag = trace(self.copy, self.input_shape)
        self._masks = dict(prunable_layers(self.copy))

    def __call__(self, model: nn.Module) -> dict[str, float]:
        for name, module in prunable_layers(model):
            self._masks[name].weight_mask.copy_(module.weight_mask.detach())
        return mask_topology(self.copy, self.input_shape, dag=self.dag)
