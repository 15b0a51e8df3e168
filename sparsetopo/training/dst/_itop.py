"""ITOP: RigL with the In-Time Over-Parameterization schedule (Liu et al. 2021, RigL-ITOP).

RigL's rule (:mod:`._rigl`) with the schedule of the authors' code for RigL-ITOP on CIFAR: an
update every 4,000 of 97,750 steps (250 epochs of 391 batches), i.e. every 0.04 of training,
through the whole training; death rate 0.5 decayed by ``CosineAnnealingLR`` over the whole
training to 0.005, ``ceil(f * n)`` weights dropped per layer; the update comes after that
step's optimizer step (the dense gradient is that step's batch gradient); ERK initial mask;
grown weights start at 0 with zero momentum (the code zeroes the momentum of every absent
weight). The long interval lets grown weights train before they are judged, so that over
training the mask explores many weights: the exploration rate ``R_s`` (fraction of all weights
ever present) is what the paper studies.

References
----------
Liu, Yin, Mocanu, Pechenizkiy (2021). Do We Actually Need Dense Over-Parameterization? In-Time
Over-Parameterization in Sparse Training. ICML. Code:
github.com/Shiweiliuiiiiiii/In-Time-Over-Parameterization (``sparselearning/core.py``:
``Masking.truncate_weights``, ``magnitude_death``, ``gradient_growth``, ``fired_masks_update``;
README: RigL-ITOP command).
"""

from __future__ import annotations

from ._rigl import RigL


class ITOP(RigL):
    name = "itop"
    DEFAULTS = {"drop_fraction": 0.5, "drop_decay": "cosine", "drop_fraction_min": 0.005,
                "update_interval": 0.04, "update_end": 1.0, "init_density": "erk",
                "grow_init": "zeros"}
    UPDATE_BEFORE_STEP = False
    FIRST_UPDATE_AT_START = False
    ROUNDING = "ceil"
