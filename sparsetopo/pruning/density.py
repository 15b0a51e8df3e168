"""Layer densities of the random pruning methods and exact global count allocation
(``docs/pruning.md``).

- ``uniform``: every layer at density ``1 - s``.
- ``er`` (Erdos-Renyi, Mocanu et al. 2018, as in Liu et al. 2022): density of a layer
  ``eps * (C_in + C_out) / (C_in * C_out)`` with channel counts only
  (``in_features``, ``out_features`` for Linear).
- ``erk`` (Erdos-Renyi-Kernel, Evci et al. 2020): ``eps * (C_in + C_out + kh + kw) /
  (C_in * C_out * kh * kw)`` for a conv, Linear as ``er``.

``C_out, C_in, kh, kw`` are read from the weight shape, so ``C_in`` is the per-group input
channel count of a grouped (e.g. depthwise) conv. ``eps`` is solved so that the kept count is
``round((1 - s) * total)``; a layer whose density would exceed 1 is made dense and ``eps`` is
solved again over the remaining layers, until no layer exceeds 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from sparsetopo.errors import InputError

LAYER_DENSITY_METHODS = ("uniform", "er", "erk")


def keep_count(total: int, sparsity: float) -> int:
    """Number of weights kept overall: ``round((1 - sparsity) * total)``, clipped to
    ``[0, total]`` (``docs/pruning.md``)."""
    return int(min(total, max(0, round((1.0 - sparsity) * total))))


def erdos_renyi_factor(shape: Sequence[int], kernel: bool) -> float:
    """Density of a layer per unit ``eps``.

    ``(C_in + C_out) / (C_in * C_out)`` from the first two dimensions of the weight shape
    ``(C_out, C_in, ...)``; with ``kernel=True`` and a 4-d conv weight
    ``(C_in + C_out + kh + kw) / (C_in * C_out * kh * kw)``.

    References
    ----------
    .. [1] D. C. Mocanu, E. Mocanu, P. Stone, P. H. Nguyen, M. Gibescu, A. Liotta. "Scalable
       training of artificial neural networks with adaptive sparse connectivity inspired by
       network science." Nature Communications 9, 2018.
    .. [2] U. Evci, T. Gale, J. Menick, P. S. Castro, E. Elsen. "Rigging the Lottery: Making All
       Tickets Winners." ICML 2020.
    .. [3] S. Liu, T. Chen, X. Chen, L. Shen, D. C. Mocanu, Z. Wang, M. Pechenizkiy. "The
       Unreasonable Effectiveness of Random Pruning: Return of the Most Naive Baseline for
       Sparse Training." ICLR 2022.
    """
    if kernel and len(shape) == 4:
        dims = [int(d) for d in shape]
    else:
        dims = [int(shape[0]), int(shape[1])]
    return float(sum(dims)) / float(np.prod(dims, dtype=np.float64))


def target_densities(shapes: Sequence[Sequence[int]], sparsity: float, method: str) -> np.ndarray:
    """Per-layer densities (float64, in [0, 1]) of ``uniform``, ``er`` or ``erk``.

    For ``er``/``erk`` the densities are ``min(1, eps * factor_l)`` where ``eps`` solves
    ``sum_l n_l * density_l = round((1 - s) * total)``, found by the capping iteration of Evci et
    al.: dense layers are fixed at 1 and ``eps = (keep - n_dense) / sum_rest(factor_l * n_l)``.

    References
    ----------
    .. [1] U. Evci, T. Gale, J. Menick, P. S. Castro, E. Elsen. "Rigging the Lottery: Making All
       Tickets Winners." ICML 2020.
    .. [2] D. C. Mocanu, E. Mocanu, P. Stone, P. H. Nguyen, M. Gibescu, A. Liotta. "Scalable
       training of artificial neural networks with adaptive sparse connectivity inspired by
       network science." Nature Communications 9, 2018.
    .. [3] S. Liu, T. Chen, X. Chen, L. Shen, D. C. Mocanu, Z. Wang, M. Pechenizkiy. "The
       Unreasonable Effectiveness of Random Pruning: Return of the Most Naive Baseline for
       Sparse Training." ICLR 2022.
    """
    if method not in LAYER_DENSITY_METHODS:
        raise InputError(
            f"unknown layer-density method {method!r}; supported: {', '.join(LAYER_DENSITY_METHODS)}"
        )
    sizes = np.array([np.prod(s, dtype=np.int64) for s in shapes], dtype=np.float64)
    total = int(sizes.sum())
    keep = keep_count(total, sparsity)
    if method == "uniform":
        return np.full(len(sizes), keep / total if total else 0.0)
    factors = np.array([erdos_renyi_factor(s, kernel=method == "erk") for s in shapes])
    dense = np.zeros(len(sizes), dtype=bool)
    eps = 0.0
    while not dense.all():
        rest = ~dense
        eps = (keep - sizes[dense].sum()) / (factors[rest] * sizes[rest]).sum()
        over = rest & (eps * factors > 1.0)
        if not over.any():
            break
        dense |= over  # eps only grows as layers are capped, so all of them stay dense
    return np.where(dense, 1.0, np.clip(eps * factors, 0.0, 1.0))


def allocate_counts(densities: np.ndarray, sizes: Sequence[int], keep: int) -> np.ndarray:
    """Integer kept counts per layer, each in ``[0, n_l]``, summing to exactly ``keep``.

    Start from ``floor(density_l * n_l)`` and hand the remaining weights one each to the layers
    with the largest fractional parts (largest-remainder rounding; ties by layer order).
    """
    sizes_arr = np.asarray(sizes, dtype=np.int64)
    if not 0 <= keep <= int(sizes_arr.sum()):
        raise ValueError(f"cannot keep {keep} weights out of {int(sizes_arr.sum())}")
    real = np.asarray(densities, dtype=np.float64) * sizes_arr
    counts = np.clip(np.floor(real + 1e-9).astype(np.int64), 0, sizes_arr)
    frac = real - counts
    while (deficit := keep - int(counts.sum())) != 0:
        if deficit > 0:
            room = np.flatnonzero(counts < sizes_arr)
            order = room[np.argsort(-frac[room], kind="stable")][:deficit]
            counts[order] += 1
        else:
            room = np.flatnonzero(counts > 0)
            order = room[np.argsort(frac[room], kind="stable")][:-deficit]
            counts[order] -= 1
        frac[order] = 0.0
    return counts


def random_masks(
    shapes: Sequence[Sequence[int]], counts: Sequence[int], generator: torch.Generator
) -> list[torch.Tensor]:
    """One bool mask per layer with ``counts[l]`` True entries at positions drawn uniformly
    without replacement (``torch.randperm`` from ``generator``, layer by layer)."""
    out = []
    for shape, count in zip(shapes, counts, strict=True):
        n = int(np.prod(shape, dtype=np.int64))
        flat = torch.zeros(n, dtype=torch.bool)
        flat[torch.randperm(n, generator=generator)[: int(count)]] = True
        out.append(flat.reshape(tuple(shape)))
    return out
