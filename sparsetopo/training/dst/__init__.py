"""Dynamic sparse training (DST): masks that change during training, their number of present
weights fixed.

``UPDATERS`` maps each method to its updater class (one module per method: ``_set``,
``_rigl``, ``_snfs``, ``_dsr``, ``_itop``; shared bookkeeping in ``_base``). A run starts from
:func:`sparse_init` (the method's initial random mask, exactly ``round((1 - s) * total)``
weights) and trains with ``training.train(..., dst=DynamicSparsity(method, config))``; the
method's hyper-parameters are a :class:`DSTConfig` (``None`` fields: the method's defaults,
:func:`resolve`).

References
----------
Mocanu et al. (2018), Nature Communications (SET); Evci et al. (2020), ICML (RigL); Dettmers
& Zettlemoyer (2019), arXiv:1907.04840 (SNFS); Mostafa & Wang (2019), ICML (DSR); Liu et al.
(2021), ICML (ITOP). See each module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from sparsetopo import pruning
from sparsetopo.errors import InputError

from ._base import MaskUpdater
from ._dsr import DSR
from ._itop import ITOP
from ._rigl import RigL
from ._set import SET
from ._snfs import SNFS
from .config import DSTConfig, drop_fraction_at, step_count, update_steps

#: Method name -> updater class.
UPDATERS: dict[str, type[MaskUpdater]] = {cls.name: cls for cls in (SET, RigL, SNFS, DSR, ITOP)}
DST_METHODS: tuple[str, ...] = tuple(UPDATERS)


def is_dst(method: str) -> bool:
    """Whether ``method`` is a dynamic sparse training method."""
    return method in UPDATERS


def _updater(method: str) -> type[MaskUpdater]:
    if method not in UPDATERS:
        raise InputError(f"unknown dynamic sparse training method {method!r}; supported: "
                         f"{', '.join(DST_METHODS)}")
    return UPDATERS[method]


def resolve(method: str, config: DSTConfig | None = None) -> DSTConfig:
    """``config`` with ``method``'s defaults where ``None`` and every field the method does not
    read set to ``None``."""
    cls = _updater(method)
    return (config or DSTConfig()).resolve(cls.DEFAULTS, cls.FIELDS)


def parameters(method: str) -> tuple[str, ...]:
    """The :class:`DSTConfig` fields ``method`` reads."""
    return _updater(method).FIELDS


def sparse_init(model: nn.Module, method: str, sparsity: float, seed: int = 0,
                config: DSTConfig | None = None) -> dict[str, torch.Tensor]:
    """Prune ``model`` in place to the initial mask of ``method``: random positions inside each
    layer at the densities of ``config.init_density`` (ERK for RigL and ITOP, ER for SET,
    uniform for SNFS and DSR), exactly ``round((1 - sparsity) * total)`` weights in all
    (``pruning.prune``). Returns the masks."""
    resolved = resolve(method, config)
    return pruning.prune(model, resolved.init_density, sparsity, seed=seed)


@dataclass(frozen=True)
class DynamicSparsity:
    """What ``training.train`` needs to train with changing masks: the method, its
    hyper-parameters (resolved against the method's defaults) and, for the topology
    trajectory, the shape of one input ``(C, H, W)`` (``None``: no topology recorded)."""

    method: str
    config: DSTConfig = field(default_factory=DSTConfig)
    input_shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", resolve(self.method, self.config))
        if self.input_shape is not None:
            object.__setattr__(self, "input_shape", tuple(int(s) for s in self.input_shape))

    def updater(self, model: nn.Module, optimizer: torch.optim.Optimizer, total_steps: int,
                steps_per_epoch: int, seed: int = 0, recorder=None) -> MaskUpdater:
        return UPDATERS[self.method](model, optimizer, self.config, total_steps,
                                     steps_per_epoch, seed=seed, recorder=recorder)


__all__ = [
    "DST_METHODS", "DSTConfig", "DynamicSparsity", "MaskUpdater", "UPDATERS",
    "drop_fraction_at", "is_dst", "parameters", "resolve", "sparse_init", "step_count",
    "update_steps",
]
