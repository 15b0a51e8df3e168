"""Topology of a mask while training moves it: cheap path metrics of the current mask.

:func:`mask_topology` is the one place that computes them: the path metrics of the multipartite
graph encoding (MGE) with identity skips (the real network's signal paths),

- ``effective_density``: the fraction of present weights with an unrolled edge on some
  input->output path;
- ``alive_edges``: the number of MGE edges on some input->output path;
- ``log10_paths``: log10 of the number of input->output paths (-inf: none),

computed by passes of the network's own layers with its masks as weights
(:func:`sparsetopo.metrics.network_path_metrics`), never by building the graph: exact, and
with memory in nodes plus weights rather than edges. They depend on the mask only, not on the
weights' values.

:class:`TopologyRecorder` keeps a CPU copy of the network, traced once, whose masks are copied
from the training network at each record: the training network stays where it trains (GPU or
CPU) and in its mode, and each record costs the passes, not a trace.

References
----------
Cunegatti, Farina, Bucur, Iacca (2024). Understanding Sparse Neural Networks from their
Topology via Multipartite Graph Representations. Transactions on Machine Learning Research.

Vysogorets, Kempe (2023). Connectivity Matters: Neural Network Pruning Through the Lens of
Effective Sparsity. Journal of Machine Learning Research 24.
"""

from __future__ import annotations

from torch import nn

from sparsetopo import metrics
from sparsetopo.pruning.masks import apply_masks, get_masks, prunable_layers
from sparsetopo.pruning.scores import plain_copy
from sparsetopo.tracing import LayerDAG, trace

#: The path metrics recorded at every mask update.
TRAJECTORY_METRICS = ("effective_density", "alive_edges", "log10_paths")


def mask_topology(model: nn.Module, input_shape: tuple[int, ...],
                  dag: LayerDAG | None = None) -> dict[str, float]:
    """The path metrics of ``model``'s current masks (:data:`TRAJECTORY_METRICS`).

    Those of the MGE with identity skips, ``encoding.multipartite(model, input_shape,
    identity_skips=True)``, as ``metrics.topometrics`` defines them, computed by
    ``metrics.network_path_metrics`` (passes of the network, no graph).

    Parameters
    ----------
    model : torch.nn.Module
        A traceable network, its masks in ``torch.nn.utils.prune`` form (or zeros where
        pruned). It is not changed.
    input_shape : tuple of int
        One input without the batch dimension, e.g. ``(1, 8, 8)``.
    dag : LayerDAG, optional
        ``model``'s trace on ``input_shape`` (``tracing.trace``), to skip tracing.

    Returns
    -------
    dict
        ``effective_density`` (float), ``alive_edges`` (int), ``log10_paths`` (float).

    References
    ----------
    Cunegatti, Farina, Bucur, Iacca (2024). Understanding Sparse Neural Networks from their
    Topology via Multipartite Graph Representations. Transactions on Machine Learning Research.
    """
    return metrics.network_path_metrics(model, tuple(input_shape), identity_skips=True,
                                        keys=TRAJECTORY_METRICS, dag=dag, device="cpu")


class TopologyRecorder:
    """``recorder(model) -> dict``: :func:`mask_topology` of ``model``'s current masks,
    computed on a CPU copy made (and traced) once, here.

    Parameters
    ----------
    model : torch.nn.Module
        The network that will train, its masks in ``torch.nn.utils.prune`` form; any device.
        Each call copies the masks of the network it is given (this one, or another with the
        same prunable layers) into the copy.
    input_shape : tuple of int
        One input without the batch dimension.

    References
    ----------
    Cunegatti, Farina, Bucur, Iacca (2024). Understanding Sparse Neural Networks from their
    Topology via Multipartite Graph Representations. Transactions on Machine Learning Research.
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
