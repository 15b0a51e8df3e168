"""SNFS: Sparse Networks From Scratch, sparse momentum (Dettmers & Zettlemoyer 2019).

Every training step keeps, besides the optimizer's momentum, the momentum of the *dense*
gradient, ``M <- mu * M + (dL/dw + lambda * w)`` over all positions (``mu``, ``lambda``: the
optimizer's momentum and weight decay; ``w = 0`` where absent), which is what the authors' SGD
momentum buffer holds, their masking zeroing weights but not gradients. At an update, with
``p`` the prune rate:

1. each layer's share ``v_l`` = mean ``|M|`` over its present weights, normalised to sum 1;
2. each layer drops the ``ceil(p_l * n_l)`` present weights of smallest magnitude, with
   ``p_l = p`` except for a layer less than 20% sparse whose share exceeds ``1/L``:
   ``p_l = min(p, its sparsity)``;
3. the ``R`` weights dropped in all are regrown across layers in proportion to ``v_l``
   (redistribution ``momentum``; at most 99% of a layer's free positions, as in the code), or
   each layer regrows what it dropped (``none``);
4. each layer grows, outside its kept set, the positions of largest ``|M|``; grown weights
   start at 0 and keep the momentum ``M`` (the code never resets the momentum).

Defaults of the code: prune rate 0.5 decayed by ``CosineAnnealingLR`` over the whole training
to 0.005, an update at the end of every epoch but the last (100 epochs: every 0.01 of
training), uniform initial densities. Counts here are exact integers summing to ``R`` (the code
rounds each layer up and corrects the drift over later updates).

References
----------
Dettmers, Zettlemoyer (2019). Sparse Networks from Scratch: Faster Training without Losing
Performance. arXiv:1907.04840. Code: github.com/TimDettmers/sparse_learning
(``sparselearning/core.py``: ``Masking.truncate_weights``, ``gather_statistics``,
``adjust_prune_rate``, ``calc_growth_redistribution``; ``sparselearning/funcs.py``:
``momentum_redistribution``, ``magnitude_prune``, ``momentum_growth``; ``mnist_cifar/main.py``).
"""

from __future__ import annotations

import torch

from ._base import Layer, MaskUpdater, allocate, count, select

DENSE_LAYER_SPARSITY = 0.2  # below it a layer with a large share is pruned less (the code's)
GROWTH_CAP = 0.99  # at most this fraction of a layer's free positions is regrown (the code's)


class SNFS(MaskUpdater):
    name = "snfs"
    FIELDS = ("drop_fraction", "drop_decay", "drop_fraction_min", "update_interval",
              "update_end", "init_density", "grow_init", "reset_momentum", "redistribution")
    DEFAULTS = {"drop_fraction": 0.5, "drop_decay": "cosine", "drop_fraction_min": 0.005,
                "update_interval": 0.01, "update_end": 1.0, "init_density": "uniform",
                "grow_init": "zeros", "reset_momentum": False, "redistribution": "momentum"}
    DENSE_GRADIENT = "always"
    ROUNDING = "ceil"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.dense_momentum = {layer.name: torch.zeros_like(layer.weight.detach())
                               for layer in self.layers}

    def _group(self, layer: Layer) -> dict:
        return next(g for g in self.optimizer.param_groups
                    if any(p is layer.weight for p in g["params"]))

    def before_optimizer_step(self, step: int) -> None:
        with torch.no_grad():
            for layer in self.layers:
                group = self._group(layer)
                grad = self.grads.get(layer.name)
                if grad is None:  # the layer took no part in the loss
                    grad = torch.zeros_like(layer.weight)
                effective = layer.weight.detach() * layer.mask
                moment = self.dense_momentum[layer.name]
                moment.mul_(group.get("momentum", 0.0)).add_(
                    grad.add(effective, alpha=group.get("weight_decay", 0.0)))
        self.grads.clear()
        super().before_optimizer_step(step)

    def grown_momentum(self, layer: Layer) -> torch.Tensor | None:
        return None if self.config.reset_momentum else self.dense_momentum[layer.name]

    def select(self, step: int):
        p = self.drop_fraction(step)
        present = [layer.present for layer in self.layers]
        n = [int(m.sum()) for m in present]
        sizes = [m.numel() for m in present]
        shares = torch.stack([
            self.dense_momentum[layer.name][m].abs().mean() if k else
            torch.zeros((), device=m.device)
            for layer, m, k in zip(self.layers, present, n, strict=True)]).double().cpu()
        shares = torch.nan_to_num(shares, nan=0.0)
        shares = (shares / shares.sum() if shares.sum() > 0 else shares).tolist()
        drops, kept, removed = [], [], []
        for layer, m, k, size, share in zip(self.layers, present, n, sizes, shares, strict=True):
            sparsity = (size - k) / size
            rate = p
            if sparsity < DENSE_LAYER_SPARSITY and share > 1.0 / len(self.layers):
                rate = min(sparsity, p)
            r = count(rate, k, self.ROUNDING)
            drop = select(layer.weight.detach().abs(), m, r, self.generator, largest=False)
            drops.append(drop)
            kept.append(m & ~drop)
            removed.append(r)
        free = [size - (k - r) for size, k, r in zip(sizes, n, removed, strict=True)]
        if self.config.redistribution == "momentum":
            total = sum(removed)
            capped = [int(GROWTH_CAP * f) for f in free]
            counts = allocate(total, shares, capped if sum(capped) >= total else free)
        else:
            counts = removed
        grows = [select(self.dense_momentum[layer.name].abs(), ~k_mask, c, self.generator,
                        largest=True)
                 for layer, k_mask, c in zip(self.layers, kept, counts, strict=True)]
        return drops, grows, {"drop_fraction": p}
