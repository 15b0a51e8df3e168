"""DSR: Dynamic Sparse Reparameterization (Mostafa & Wang 2019).

One global magnitude threshold ``H`` adapts so that about ``N_p`` weights are pruned per
update. At an update:

1. every present weight with ``|w| < H`` is pruned (a layer keeps at least its largest weight);
   ``K`` weights in all;
2. the ``K`` freed parameters are reallocated across layers in proportion to each layer's
   number of surviving weights, and each layer grows its share at positions drawn uniformly at
   random among the positions that were absent before the update (not the ones just pruned);
   grown weights start at 0 with zero momentum;
3. ``H`` is halved when ``K > (1 + delta) N_p``, doubled when ``K < (1 - delta) N_p``.

Defaults of the authors' CIFAR-10 WRN-28-2 runs: ``H = 0.001``, ``delta = 0.1``,
``N_p = 20,000`` of its 147,550 present weights at 90% sparsity (0.1355 of the present
weights), an update every 100 of 78,200 steps (200 epochs of 391 batches: 0.00128 of
training), the interval doubled at epochs 25, 80 and 140 (0.125, 0.4, 0.7), no update after
epoch 190 (0.95); uniform initial densities. Counts here are exact; where the absent positions
cannot hold a layer's share the code grows fewer (and the total drifts), here the just-pruned
positions become eligible again.

References
----------
Mostafa, Wang (2019). Parameter Efficient Training of Deep Convolutional Neural Networks by
Dynamic Sparse Reparameterization. ICML. Code: github.com/IntelAI/dynamic-reparameterization,
mirrored in github.com/TimDettmers/sparse_learning (``imagenet/baseline/main.py``: ``train``,
``--threshold-prune --rewire-scaling``; ``parameterized_tensors.py``: ``SparseTensor.
prune_threshold``, ``grow_random``; ``experiments/wrnet_experiments.yaml``,
``learning_schedules/wrnet_schedule.yaml``).
"""

from __future__ import annotations

from ._base import MaskUpdater, allocate, select, select_random


class DSR(MaskUpdater):
    name = "dsr"
    FIELDS = ("update_interval", "update_end", "init_density", "grow_init", "dsr_threshold",
              "dsr_tolerance", "dsr_prune_target", "dsr_interval_doubling")
    DEFAULTS = {"update_interval": 0.00128, "update_end": 0.95, "init_density": "uniform",
                "grow_init": "zeros", "dsr_threshold": 0.001, "dsr_tolerance": 0.1,
                "dsr_prune_target": 0.1355, "dsr_interval_doubling": (0.125, 0.4, 0.7)}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.threshold = float(self.config.dsr_threshold)
        self.prune_target = round(float(self.config.dsr_prune_target) * self.target)

    def select(self, step: int):
        threshold = self.threshold
        drops, survivors, absent = [], [], []
        for layer in self.layers:
            present = layer.present
            magnitude = layer.weight.detach().abs()
            drop = present & (magnitude < threshold)
            if bool(present.any()) and bool((drop == present).all()):  # keep the largest one
                drop &= ~select(magnitude, present, 1, self.generator, largest=True)
            drops.append(drop)
            survivors.append(int(present.sum()) - int(drop.sum()))
            absent.append(~present)
        pruned = sum(int(d.sum()) for d in drops)
        room = [int(a.sum()) for a in absent]
        if sum(room) < pruned:  # not enough absent positions: the just-pruned ones count too
            absent = [~(layer.present & ~d) for layer, d in zip(self.layers, drops, strict=True)]
            room = [int(a.sum()) for a in absent]
        counts = allocate(pruned, survivors, room)
        grows = [select_random(a, c, self.generator)
                 for a, c in zip(absent, counts, strict=True)]
        if pruned > (1 + self.config.dsr_tolerance) * self.prune_target:
            self.threshold /= 2
        elif pruned < (1 - self.config.dsr_tolerance) * self.prune_target:
            self.threshold *= 2
        return drops, grows, {"dsr_threshold": threshold}



