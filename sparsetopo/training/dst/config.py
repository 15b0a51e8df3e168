"""Hyper-parameters of dynamic sparse training and the schedule they define.

Every schedule length is a *fraction of training* (of its optimizer steps), so a setting keeps
its meaning when the number of epochs or the size of the dataset changes: with ``T`` steps in
all, updates come every ``max(1, round(update_interval * T))`` steps and stop after step
``floor(update_end * T)``; never at the last step (its grown weights would never train).

Drop fraction at step ``t`` (``f0 = drop_fraction``, ``f_min = drop_fraction_min``,
``T_end = floor(update_end * T)``):

- ``constant``: ``f0``;
- ``cosine``: ``f_min + (f0 - f_min) * (1 + cos(pi * min(t, T_end) / T_end)) / 2``: RigL's
  ``cosine_decay`` (``f_min = 0``, decayed over the update period) and the
  ``CosineAnnealingLR`` of Dettmers & Zettlemoyer's and Liu et al.'s code (``f_min = 0.005``,
  decayed over the whole training, their update period).

References
----------
Evci, Gale, Menick, Castro, Elsen (2020). Rigging the Lottery: Making All Tickets Winners. ICML.
Dettmers, Zettlemoyer (2019). Sparse Networks from Scratch: Faster Training without Losing
Performance. arXiv:1907.04840.
Liu, Yin, Mocanu, Pechenizkiy (2021). Do We Actually Need Dense Over-Parameterization? In-Time
Over-Parameterization in Sparse Training. ICML.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from sparsetopo.errors import InputError
from sparsetopo.pruning.density import LAYER_DENSITY_METHODS

DECAYS = ("constant", "cosine")
GROW_INITS = ("zeros", "initial")
REDISTRIBUTIONS = ("momentum", "none")


@dataclass(frozen=True)
class DSTConfig:
    """Hyper-parameters of the dynamic sparse training methods.

    ``None`` means the method's own default (:meth:`resolve`; the table of defaults is in
    ``docs/sparse-training.md``). Each method reads only its own fields (``FIELDS`` of its
    updater class). Every schedule length is a fraction of the training steps (module
    docstring).

    Parameters
    ----------
    drop_fraction : float
        Fraction of a layer's present weights dropped at an update (SET's zeta, RigL's drop
        fraction, SNFS's and ITOP's prune/death rate), before decay.
    drop_decay : {"constant", "cosine"}
        How the drop fraction decays over training (module docstring).
    drop_fraction_min : float
        The value the cosine decay ends at.
    update_interval : float
        Fraction of the training steps between two mask updates.
    update_end : float
        Fraction of the training steps after which the mask no longer changes.
    init_density : {"uniform", "er", "erk"}
        Layer densities of the initial random mask (:mod:`sparsetopo.pruning.density`).
    grow_init : {"zeros", "initial"}
        Value of a grown weight: zero, or the value it had at initialization.
    reset_momentum : bool
        A grown weight starts with zero optimizer momentum (True), or with the momentum of its
        dense gradient (False: SNFS, where the momentum of absent weights keeps accumulating).
    redistribution : {"momentum", "none"}
        SNFS: regrowth shared across layers by their mean momentum magnitude, or none (each
        layer regrows what it dropped).
    dsr_threshold : float
        DSR: initial global magnitude threshold ``H``.
    dsr_tolerance : float
        DSR: ``H`` is halved when more than ``(1 + tolerance) * N_p`` weights were pruned, doubled
        when fewer than ``(1 - tolerance) * N_p``.
    dsr_prune_target : float
        DSR: ``N_p``, the number of weights to prune at an update, as a fraction of the present
        weights.
    dsr_interval_doubling : tuple of float
        DSR: fractions of training at which the update interval doubles.

    Raises
    ------
    InputError
        A value outside its range or choices, or ``drop_fraction_min`` above
        ``drop_fraction``.

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

    drop_fraction: float | None = None
    drop_decay: str | None = None
    drop_fraction_min: float | None = None
    update_interval: float | None = None
    update_end: float | None = None
    init_density: str | None = None
    grow_init: str | None = None
    reset_momentum: bool | None = None
    redistribution: str | None = None
    dsr_threshold: float | None = None
    dsr_tolerance: float | None = None
    dsr_prune_target: float | None = None
    dsr_interval_doubling: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.dsr_interval_doubling is not None:
            object.__setattr__(self, "dsr_interval_doubling",
                               tuple(float(x) for x in self.dsr_interval_doubling))
        problems = [p for p in (_check(f.name, getattr(self, f.name)) for f in fields(self))
                    if p]
        if (self.drop_fraction is not None and self.drop_fraction_min is not None
                and self.drop_fraction_min > self.drop_fraction):
            problems.append(f"drop_fraction_min ({self.drop_fraction_min}) must not exceed "
                            f"drop_fraction ({self.drop_fraction})")
        if problems:
            raise InputError("invalid dynamic sparse training config: " + "; ".join(problems))

    def given(self) -> dict[str, Any]:
        """The fields set (not ``None``), by name."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) is not None}

    def resolve(self, defaults: dict[str, Any], used: tuple[str, ...]) -> DSTConfig:
        """This config resolved for one method.

        Parameters
        ----------
        defaults : dict
            The method's default of each field it reads.
        used : tuple of str
            The fields the method reads.

        Returns
        -------
        DSTConfig
            ``defaults`` filled in where ``None``, and every field outside ``used`` set to
            ``None`` (so that it equals the config of any study that sets only parameters this
            method does not read).
        """
        values = {name: (getattr(self, name) if getattr(self, name) is not None
                         else defaults.get(name)) if name in used else None
                  for name in (f.name for f in fields(self))}
        return replace(self, **values)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict of the fields set (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.given().items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DSTConfig:
        """The config of a plain dict (:meth:`to_dict`, a study's ``[dst]`` section).

        Parameters
        ----------
        d : dict
            Field name -> value (lists for tuples).

        Returns
        -------
        DSTConfig
            The validated config.

        Raises
        ------
        InputError
            An unknown field or a bad value.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"unknown dynamic sparse training parameter(s) {unknown}; "
                             f"valid: {', '.join(sorted(known))}")
        values = dict(d)
        if values.get("dsr_interval_doubling") is not None:
            values["dsr_interval_doubling"] = tuple(values["dsr_interval_doubling"])
        return cls(**values)


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _check(name: str, value) -> str | None:
    """The problem with one field's value, or ``None``."""
    if value is None:
        return None
    choices = {"drop_decay": DECAYS, "init_density": LAYER_DENSITY_METHODS,
               "grow_init": GROW_INITS, "redistribution": REDISTRIBUTIONS}
    if name in choices:
        return None if value in choices[name] else (
            f"{name} must be one of {', '.join(choices[name])}, got {value!r}")
    if name == "reset_momentum":
        return None if isinstance(value, bool) else f"{name} must be true or false, got {value!r}"
    if name == "dsr_interval_doubling":
        ok = all(_is_number(x) and 0 < x < 1 for x in value) and list(value) == sorted(set(value))
        return None if ok else f"{name} must be increasing fractions in (0, 1), got {value!r}"
    ranges = {  # (low, high, low inclusive, high inclusive)
        "drop_fraction": (0, 1, True, True), "drop_fraction_min": (0, 1, True, True),
        "update_interval": (0, 1, False, True), "update_end": (0, 1, False, True),
        "dsr_threshold": (0, math.inf, False, False), "dsr_tolerance": (0, 1, True, False),
        "dsr_prune_target": (0, 1, False, True),
    }
    low, high, low_in, high_in = ranges[name]
    inside = _is_number(value) and (low <= value if low_in else low < value) and (
        value <= high if high_in else value < high)
    if inside:
        return None
    bounds = f"{'[' if low_in else '('}{low}, {high}{']' if high_in else ')'}"
    return f"{name} must be a number in {bounds}, got {value!r}"


# ---------------------------------------------------------------------------- schedules
def step_count(fraction: float, total_steps: int) -> int:
    """A fraction of training as a number of steps: ``max(1, round(fraction * total_steps))``.

    Parameters
    ----------
    fraction : float
        Fraction of the training steps.
    total_steps : int
        Optimizer steps of the whole training.

    Returns
    -------
    int
        At least 1 (halves round up).
    """
    return max(1, math.floor(fraction * total_steps + 0.5))


def update_steps(total_steps: int, interval: float, end: float, *, at_start: bool = False,
                 doubling: tuple[float, ...] = ()) -> list[int]:
    """The 1-based training steps after which the mask is updated.

    Every ``step_count(interval, T)`` steps (doubled at each fraction of training in
    ``doubling``), up to step ``floor(end * T)`` and never at the last step ``T``.

    Parameters
    ----------
    total_steps : int
        ``T``, the optimizer steps of the whole training.
    interval : float
        Fraction of training between two updates.
    end : float
        Fraction of training after which the mask no longer changes.
    at_start : bool
        The first update comes at step 1 (RigL's code updates at global step 0, before any
        training), else after one interval.
    doubling : tuple of float
        Fractions of training at which the interval doubles (DSR).

    Returns
    -------
    list of int
        The update steps, increasing.

    References
    ----------
    Evci, U., Gale, T., Menick, J., Castro, P. S., Elsen, E. (2020). Rigging the Lottery: Making
    All Tickets Winners. *ICML*.

    Mostafa, H., Wang, X. (2019). Parameter Efficient Training of Deep Convolutional Neural
    Networks by Dynamic Sparse Reparameterization. *ICML*.
    """
    last = min(math.floor(end * total_steps + 1e-9), total_steps - 1)
    base = step_count(interval, total_steps)
    steps: list[int] = []
    t = 1 if at_start else base
    while t <= last:
        steps.append(t)
        doublings = sum(1 for d in doubling if t >= d * total_steps)
        t += base * 2 ** doublings
    return steps


def drop_fraction_at(config: DSTConfig, step: int, total_steps: int) -> float:
    """The drop fraction after ``step`` steps.

    ``constant``: ``f0``; ``cosine``: ``f_min + (f0 - f_min) * (1 + cos(pi * min(t, T_end) /
    T_end)) / 2`` with ``T_end = floor(update_end * T)`` (module docstring).

    Parameters
    ----------
    config : DSTConfig
        A resolved config (``drop_fraction``, ``drop_decay``, ``drop_fraction_min``,
        ``update_end``).
    step : int
        ``t``, optimizer steps done.
    total_steps : int
        ``T``, the optimizer steps of the whole training.

    Returns
    -------
    float
        The fraction of present weights to drop.

    References
    ----------
    Evci, U., Gale, T., Menick, J., Castro, P. S., Elsen, E. (2020). Rigging the Lottery: Making
    All Tickets Winners. *ICML* (``cosine_decay``).

    Dettmers, T., Zettlemoyer, L. (2019). Sparse Networks from Scratch: Faster Training without
    Losing Performance. arXiv:1907.04840 (``CosineAnnealingLR`` of the prune rate).
    """
    f0 = float(config.drop_fraction)
    if config.drop_decay != "cosine":
        return f0
    horizon = max(1, math.floor(float(config.update_end) * total_steps + 1e-9))
    low = float(config.drop_fraction_min or 0.0)
    return low + (f0 - low) * 0.5 * (1.0 + math.cos(math.pi * min(step, horizon) / horizon))
