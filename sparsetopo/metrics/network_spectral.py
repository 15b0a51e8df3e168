"""The spectral topometrics of a network's MGE by passes of the network itself.

``spectral_gap`` and ``spectral_radius`` are eigenvalues of ``S = |A| + |A|^T`` and of its
Laplacian, found by iterative solvers that only need products ``S x``. With ``x`` given at every
node, ``|A|^T x`` is one pass of the network's own layers with ``|w|`` as weights, each
partition computed from the given values of the partitions it reads (nothing propagated), and
``|A| x`` the transposed pass (``_pass_runs.Runner.symmetric``): memory proportional to nodes
plus weights, never edges, so the spectra of networks whose MGE does not fit in memory (ImageNet's
ResNet-50 at 224x224, dense or at SNIP's masks) are still computed, by the same solvers, to
the same tolerance.

References
----------
Cunegatti, Farina, Bucur, Iacca (2024). Understanding Sparse Neural Networks from their Topology
via Multipartite Graph Representations. Transactions on Machine Learning Research.

Lehoucq, Sorensen, Yang (1998). ARPACK Users' Guide. SIAM.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from sparsetopo.errors import GraphTooLargeError
from sparsetopo.io import show_progress
from sparsetopo.tracing import LayerDAG

from ._pass_program import compile_program
from ._pass_runs import Runner
from .network_paths import _available, _device, _peak_bytes
from .spectral import ARPACK_MIN_SIZE, DENSE_SPECTRUM_MAX, dense_spectra, operator_spectra

__all__ = ["estimate_network_spectra", "network_spectra"]

#: Unit vectors per batched pass when ``S`` is small enough to be built densely.
_DENSE_BATCH = 64
#: Float64 vectors of every node the solvers hold besides the passes: ARPACK's basis of 16 and
#: its work space (~20), the product's input and output, the Laplacian's diagonal.
_SOLVER_VECTORS = 24


def estimate_network_spectra(model: nn.Module, input_shape, identity_skips: bool = False, *,
                             dag: LayerDAG | None = None) -> int:
    """Bytes :func:`network_spectra` needs at its peak, predicted before any pass.

    Parameters
    ----------
    model, input_shape, identity_skips, dag
        As :func:`network_spectra`.

    Returns
    -------
    int
        The passes' peak with one sample plus the solvers' vectors.

    References
    ----------
    .. [1] R. B. Lehoucq, D. C. Sorensen, C. Yang, "ARPACK Users' Guide", SIAM, 1998.
    """
    program = compile_program(model, input_shape, identity_skips, dag)
    return _peak_bytes(program, 1) + 8 * _SOLVER_VECTORS * program.n_nodes


def network_spectra(
    model: nn.Module,
    input_shape,
    identity_skips: bool = False,
    seed: int = 0,
    *,
    device=None,
    progress: bool = False,
    force: bool = False,
    dag: LayerDAG | None = None,
) -> dict[str, float]:
    """``spectral_gap`` and ``spectral_radius`` of ``multipartite(model, input_shape,
    identity_skips)``, computed by passes of the network's own layers instead of the graph.

    The solvers are those of ``topometrics`` on large graphs (Lanczos, or ARPACK when its basis
    would not fit; the same start vectors and tolerance), every product ``S x`` one forward and
    one transposed pass with ``|w|``: the values agree with the graph's to the solvers'
    tolerance (relative 1e-6). When at most ``DENSE_SPECTRUM_MAX`` nodes have an edge of
    non-zero weight, ``S`` is built densely from batched products with unit vectors and its
    spectra are exact, as the graph's are. Each product costs the dense network's multiply-adds twice
    (a few seconds for ResNet-50 at 224x224 on one core), and the solvers take 100-400.

    Parameters
    ----------
    model : torch.nn.Module
        A ``torch.fx``-traceable network (its masks in ``torch.nn.utils.prune`` form, or zeros
        where pruned). It is not changed.
    input_shape : tuple of int
        One input without the batch dimension, e.g. ``(3, 224, 224)``.
    identity_skips : bool, default False
        Encode identity shortcuts as edges; False: the paper's MGE.
    seed : int, default 0
        Seeds the solvers' start vectors (as ``topometrics``' ``seed``).
    device : torch device or str, optional
        Where the passes run; default the model's.
    progress : bool, default False
        Show a progress bar over the products.
    force : bool, default False
        Run even when the predicted peak exceeds the available memory.
    dag : LayerDAG, optional
        The model's trace on ``input_shape``, if known.

    Returns
    -------
    dict[str, float]
        ``{"spectral_gap": ..., "spectral_radius": ...}``.

    Raises
    ------
    GraphTooLargeError
        The predicted peak (:func:`estimate_network_spectra`) exceeds the memory available on
        ``device`` (unless ``force``).
    UnsupportedModelError, EncodingError
        A model the MGE cannot encode.

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    .. [2] R. B. Lehoucq, D. C. Sorensen, C. Yang, "ARPACK Users' Guide", SIAM, 1998.
    """
    device = _device(model, device)
    program = compile_program(model, input_shape, identity_skips, dag)
    need = _peak_bytes(program, 1) + 8 * _SOLVER_VECTORS * program.n_nodes
    available = _available(device)
    if need > available and not force:
        raise GraphTooLargeError(
            f"the spectra by passes would need ~{need / 2**30:.1f} GiB on {device} "
            f"({program.n_nodes:,} nodes) but only {available / 2**30:.1f} GiB is available; "
            "use a smaller input, or force=True (--force) to try anyway")
    shapes = [tuple(p.shape) for p in program.partitions]
    bounds = np.cumsum([0, *(p.size for p in program.partitions)])
    with torch.no_grad(), tqdm(desc="spectra", unit="product",
                               disable=not show_progress(progress), leave=False) as bar:
        runner = Runner(program, device, lambda: None)

        def products(x: np.ndarray) -> np.ndarray:
            """``S x`` for a batch of node vectors (B x nodes)."""
            b = x.shape[0]
            parts = [torch.from_numpy(x[:, lo:hi]).to(device).reshape(b, *shape)
                     for lo, hi, shape in zip(bounds[:-1], bounds[1:], shapes, strict=True)]
            y = torch.cat([t.reshape(b, -1) for t in runner.symmetric(parts)], dim=1)
            bar.update(b)
            return y.cpu().numpy()

        def product(x: np.ndarray, out: np.ndarray) -> None:
            out[:] = products(x[None])[0]

        strength = products(np.ones((1, program.n_nodes)))[0]
        rows = np.flatnonzero(strength)
        if rows.size <= max(DENSE_SPECTRUM_MAX, ARPACK_MIN_SIZE):  # small: exact, as the graph
            s = np.zeros((rows.size, rows.size))
            for lo in range(0, rows.size, _DENSE_BATCH):
                cols = rows[lo:lo + _DENSE_BATCH]
                unit = np.zeros((cols.size, program.n_nodes))
                unit[np.arange(cols.size), cols] = 1.0
                s[lo:lo + cols.size] = products(unit)[:, rows]
            gap, radius = dense_spectra(s)
        else:
            gap, radius = operator_spectra(program.n_nodes, product, seed)
    return {"spectral_gap": gap, "spectral_radius": radius}
