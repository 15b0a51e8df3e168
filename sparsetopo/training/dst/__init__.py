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
Mocanu et al. (2018), Nature Communications (SET); Evci et al. (2020), ICML (RigL); Dettmers,
Zettlemoyer (2019), arXiv:1907.04840 (SNFS); Mostafa, Wang (2019), ICML (DSR); Liu et al.
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
    """Whether a method is a dynamic sparse training method.

    Parameters
    ----------
    method : str
        A method name.

    Returns
    -------
    bool
        True for ``set``, ``rigl``, ``snfs``, ``dsr`` and ``itop`` (:data:`DST_METHODS`).
    """
    return method in UPDATERS


def _updater(method: str) -> type[MaskUpdater]:
    if method not in UPDATERS:
        raise InputError(f"unknown dynamic sparse training method {method!r}; supported: "
                         f"{', '.join(DST_METHODS)}")
    return UPDATERS[method]


def resolve(method: str, config: DSTConfig | None = None) -> DSTConfig:
    """A method's hyper-parameters: ``config`` with the method's defaults filled in.

    Parameters
    ----------
    method : str
        One of :data:`DST_METHODS`.
    config : DSTConfig, optional
        Values set by the user; ``None``: all defaults.

    Returns
    -------
    DSTConfig
        ``config`` with ``method``'s defaults where ``None``, and every field the method does
        not read set to ``None``.

    Raises
    ------
    InputError
        An unknown method.
    """
    cls = _updater(method)
    return (config or DSTConfig()).resolve(cls.DEFAULTS, cls.FIELDS)


def parameters(method: str) -> tuple[str, ...]:
    """The :class:`DSTConfig` fields a method reads.

    Parameters
    ----------
    method : str
        One of :data:`DST_METHODS`.

    Returns
    -------
    tuple of str
        Field names.

    Raises
    ------
    InputError
        An unknown method.
    """
    return _updater(method).FIELDS


def sparse_init(model: nn.Module, method: str, sparsity: float, seed: int = 0,
                config: DSTConfig | None = None) -> dict[str, torch.Tensor]:
    """Prune a model in place to the initial random mask of a dynamic sparse training method.

    Random positions inside each layer at the layer densities of ``config.init_density``
    (ERK for RigL and ITOP, ER for SET, uniform for SNFS and DSR), exactly
    ``round((1 - sparsity) * total)`` weights in all (``pruning.prune``).

    Parameters
    ----------
    model : torch.nn.Module
        The network, pruned in place (``torch.nn.utils.prune`` form).
    method : str
        One of :data:`DST_METHODS`.
    sparsity : float
        Global sparsity in [0, 1).
    seed : int
        Seed of the positions.
    config : DSTConfig, optional
        Hyper-parameters (``init_density``); ``None``: the method's defaults.

    Returns
    -------
    dict of str to torch.Tensor
        ``{"<module path>.weight": bool mask}``.

    Raises
    ------
    InputError
        An unknown method or a bad sparsity.

    References
    ----------
    Mocanu, D. C., Mocanu, E., Stone, P., Nguyen, P. H., Gibescu, M., Liotta, A. (2018).
    Scalable training of artificial neural networks with adaptive sparse connectivity inspired
    by network science. *Nature Communications* 9, 2383 (Erdős–Rényi densities).

    Evci, U., Gale, T., Menick, J., Castro, P. S., Elsen, E. (2020). Rigging the Lottery: Making
    All Tickets Winners. *ICML* (Erdős–Rényi-kernel densities).
    """
    resolved = resolve(method, config)
    return pruning.prune(model, resolved.init_density, sparsity, seed=seed)


@dataclass(frozen=True)
class DynamicSparsity:
    """What ``training.train`` needs to train with changing masks.

    The definitions of the methods and of what every update keeps (the exact number of present
    weights, absent weights held at 0) are in ``docs/sparse-training.md``.

    Parameters
    ----------
    method : str
        One of :data:`DST_METHODS`: ``set``, ``rigl``, ``snfs``, ``dsr``, ``itop``.
    config : DSTConfig
        Hyper-parameters; resolved against the method's defaults on construction
        (:func:`resolve`).
    input_shape : tuple of int, optional
        ``(C, H, W)`` of one input, to record the mask's topology at every update
        (``training.mask_topology``); ``None``: no topology recorded.

    Raises
    ------
    InputError
        An unknown method.

    References
    ----------
    Mocanu, D. C., Mocanu, E., Stone, P., Nguyen, P. H., Gibescu, M., Liotta, A. (2018).
    Scalable training of artificial neural networks with adaptive sparse connectivity inspired
    by network science. *Nature Communications* 9, 2383 (SET).

    Evci, U., Gale, T., Menick, J., Castro, P. S., Elsen, E. (2020). Rigging the Lottery: Making
    All Tickets Winners. *ICML* (RigL).

    Dettmers, T., Zettlemoyer, L. (2019). Sparse Networks from Scratch: Faster Training without
    Losing Performance. arXiv:1907.04840 (SNFS).

    Mostafa, H., Wang, X. (2019). Parameter Efficient Training of Deep Convolutional Neural
    Networks by Dynamic Sparse Reparameterization. *ICML* (DSR).

    Liu, S., Yin, L., Mocanu, D. C., Pechenizkiy, M. (2021). Do We Actually Need Dense
    Over-Parameterization? In-Time Over-Parameterization in Sparse Training. *ICML* (ITOP).
    """

    method: str
    config: DSTConfig = field(default_factory=DSTConfig)
    input_shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", resolve(self.method, self.config))
        if self.input_shape is not None:
            object.__setattr__(self, "input_shape", tuple(int(s) for s in self.input_shape))

    def updater(self, model: nn.Module, optimizer: torch.optim.Optimizer, total_steps: int,
                steps_per_epoch: int, seed: int = 0, recorder=None) -> MaskUpdater:
        """The method's :class:`MaskUpdater` for one training (its parameters)."""
        return UPDATERS[self.method](model, optimizer, self.config, total_steps,
                                     steps_per_epoch, seed=seed, recorder=recorder)


__all__ = [
    "DST_METHODS", "DSTConfig", "DynamicSparsity", "MaskUpdater", "UPDATERS",
    "drop_fraction_at", "is_dst", "parameters", "resolve", "sparse_init", "step_count",
    "update_steps",
]
