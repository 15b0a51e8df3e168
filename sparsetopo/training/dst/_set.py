"""SET: Sparse Evolutionary Training (Mocanu et al. 2018).

At each update, every layer drops the fraction ``zeta`` of its negative weights closest to zero
(the largest negative ones) and the fraction ``zeta`` of its positive weights closest to zero
(the smallest positive ones), ``ceil(zeta * n)`` of each sign (a present weight that is exactly
0 counts as positive and goes first), and regrows as many weights at positions drawn uniformly
at random among the positions that are not kept. ``zeta = 0.3``, constant. The initial mask is
Erdos-Renyi (``er``). Grown weights start at 0 with zero momentum.

The authors' code evolves the mask after every epoch of a 1000-epoch training (SET-MLP on
CIFAR-10), i.e. every 0.001 of training, until the end. (RigL's reimplementation of SET ranks
by ``|w|`` instead of by sign, and grows at random too.)

References
----------
Mocanu, Mocanu, Stone, Nguyen, Gibescu, Liotta (2018). Scalable training of artificial neural
networks with adaptive sparse connectivity inspired by network science. Nature Communications
9, 2383. Code: github.com/dcmocanu/sparse-evolutionary-artificial-neural-networks
(``SET-MLP-Keras-Weights-Mask/set_mlp_keras_cifar10.py``: ``rewireMask``, ``maxepoches``).
"""

from __future__ import annotations

from ._base import MaskUpdater, count, select, select_random


class SET(MaskUpdater):
    name = "set"
    FIELDS = ("drop_fraction", "drop_decay", "drop_fraction_min", "update_interval",
              "update_end", "init_density", "grow_init")
    DEFAULTS = {"drop_fraction": 0.3, "drop_decay": "constant", "drop_fraction_min": 0.0,
                "update_interval": 0.001, "update_end": 1.0, "init_density": "er",
                "grow_init": "zeros"}
    ROUNDING = "ceil"

    def select(self, step: int):
        zeta = self.drop_fraction(step)
        drops, grows = [], []
        for layer in self.layers:
            w, present = layer.weight.detach(), layer.present
            negative = present & (w < 0)
            positive = present & ~(w < 0)
            k_neg = count(zeta, int(negative.sum()), self.ROUNDING)
            k_pos = count(zeta, int(positive.sum()), self.ROUNDING)
            closeness = w.abs()
            drop = (select(closeness, negative, k_neg, self.generator, largest=False)
                    | select(closeness, positive, k_pos, self.generator, largest=False))
            grows.append(select_random(~(present & ~drop), k_neg + k_pos, self.generator))
            drops.append(drop)
        return drops, grows, {"drop_fraction": zeta}


__all__ = ["SET"]
