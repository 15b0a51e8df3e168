"""RigL: Rigged Lottery (Evci et al. 2020).

At an update, every layer drops the ``floor(f * n)`` present weights of smallest magnitude and
grows as many positions, outside the kept set, with the largest dense-gradient magnitude
``|dL/dw|`` on the current batch (the gradient of the loss with respect to the effective weight,
present or not). ``f`` starts at 0.3 and decays by cosine to 0 at the end of the updates;
updates every 100 steps until 75% of training (the code's CIFAR-10 WRN-22-2 setting: 100 of
97,656 steps, i.e. 0.001 of training, until step 75,000); the first update comes at the first
step (the code starts at global step 0). The update judges the weights as they are before that
step's optimizer step. The initial mask is ERK; grown weights start at 0 with zero momentum
(``grow_init='zeros'``, ``initial_acc_scale=0``). Layer densities never change.

Departures from the code: it skips the optimizer step of an update step; here that step is
taken with the new mask (its gradient masked by it, so dropped weights stay at 0), because
with the short trainings fractions of training give, an update can come every step and the
network would otherwise never train (one step in a hundred in the code's setting). Ties are
broken at random (the code adds ``N(0, 1e-5)`` noise to the drop scores). As in the code, a
weight dropped and regrown in the same update keeps its value.

References
----------
Evci, Gale, Menick, Castro, Elsen (2020). Rigging the Lottery: Making All Tickets Winners. ICML.
Code: github.com/google-research/rigl (``rigl/sparse_optimizers_base.py``:
``SparseRigLOptimizerBase``, ``_get_update_op``; ``rigl/cifar_resnet/resnet_train_eval.py``).
"""

from __future__ import annotations

import torch

from ._base import MaskUpdater, count, select


class RigL(MaskUpdater):
    name = "rigl"
    FIELDS = ("drop_fraction", "drop_decay", "drop_fraction_min", "update_interval",
              "update_end", "init_density", "grow_init")
    DEFAULTS = {"drop_fraction": 0.3, "drop_decay": "cosine", "drop_fraction_min": 0.0,
                "update_interval": 0.001, "update_end": 0.75, "init_density": "erk",
                "grow_init": "zeros"}
    UPDATE_BEFORE_STEP = True
    FIRST_UPDATE_AT_START = True
    DENSE_GRADIENT = "update"
    ROUNDING = "floor"

    def drop_fraction(self, step: int) -> float:
        # the code's global step is the number of steps done before this one
        return super().drop_fraction(step - 1 if self.FIRST_UPDATE_AT_START else step)

    def select(self, step: int):
        f = self.drop_fraction(step)
        drops, grows = [], []
        for layer in self.layers:
            present = layer.present
            k = count(f, int(present.sum()), self.ROUNDING)
            drop = select(layer.weight.detach().abs(), present, k, self.generator, largest=False)
            grad = self.grads.get(layer.name)  # none: the layer took no part in the loss
            score = grad.abs() if grad is not None else torch.zeros_like(layer.weight)
            grows.append(select(score, ~(present & ~drop), k, self.generator, largest=True))
            drops.append(drop)
        return drops, grows, {"drop_fraction": f}
