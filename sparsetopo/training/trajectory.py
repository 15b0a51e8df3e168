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
    """Path metrics of a network's current masks, for the topology over training.

    Computed on the multipartite graph encoding with identity skips
    (``encoding.multipartite(..., identity_skips=True)``: the real network's signal paths),
    by ``metrics.topometrics``: ``effective_density`` (fraction of the present weights with an
    unrolled edge on some input->output path), ``alive_edges`` (edges on such a path) and
    ``log10_paths`` (log10 of the number of input->output paths, -inf without one). They
    depend on the masks only, not on the weights' values.

    Parameters
    ----------
    model : torch.nn.Module
        The network, masks in ``torch.nn.utils.prune`` form.
    input_shape : tuple of int
        ``(C, H, W)`` of one input.
    dag : LayerDAG, optional
        ``model``'s trace on ``input_shape`` (``tracing.trace``), if known.

    Returns
    -------
    dict of str to float
        The :data:`TRAJECTORY_METRICS`.

    References
    ----------
    Cunegatti, E., Farina, L. L., Bucur, D., Iacca, G. (2024). Understanding Sparse Neural
    Networks from their Topology via Multipartite Graph Representations. *Transactions on
    Machine Learning Research*.

    Vysogorets, A., Kempe, J. (2023). Connectivity Matters: Neural Network Pruning Through the
    Lens of Effective Sparsity. *Journal of Machine Learning Research* 24.
    """
    graph = encoding.multipartite(model, tuple(input_shape), identity_skips=True, dag=dag)
    return metrics.topometrics(graph, keys=TRAJECTORY_METRICS)


class TopologyRecorder:
    """``recorder(model) -> dict``: :func:`mask_topology` of ``model``'s current masks.

    Computed on a CPU copy of the network made (and traced) once, here, whose masks are copied
    from the training network at each call: the training network stays where it trains and in
    its mode.

    Parameters
    ----------
    model : torch.nn.Module
        The network to follow, masked (``torch.nn.utils.prune`` form).
    input_shape : tuple of int
        ``(C, H, W)`` of one input.
    """

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
