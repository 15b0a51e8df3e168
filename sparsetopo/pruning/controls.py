"""Mask controls: a method's mask with its present weights moved at random, keeping what the
control names (how many weights each layer keeps, or each output channel).

A control run is named ``METHOD+CONTROL`` (``snip+layer-shuffle``) wherever a pruning method is
accepted. Controls registered in :data:`CONTROLS`:

``layer-shuffle``
    Every layer keeps its number of present weights, at positions drawn uniformly at random
    (without replacement) among all the positions of that layer. The layer densities are the
    method's; the arrangement inside each layer is random.
``fanin-shuffle``
    Every output channel keeps its number of present weights: the row ``r`` of the weight
    reshaped to ``(C_out, -1)`` keeps ``k_r`` present weights (its in-degree in the rolled
    encoding), at positions drawn uniformly at random inside that row.

Both are drawn from a generator seeded from the run seed *and* the control's name
(:func:`control_seed`), not from the generator of the method: the control of a seed is a
deterministic function of the method's mask and the seed, and is drawn independently of any
randomness the method itself used.

References
----------
.. [1] Frankle, J., Dziugaite, G. K., Roy, D. M., Carbin, M. "Pruning Neural Networks at
   Initialization: Why are We Missing the Mark?" ICLR 2021.
.. [2] Vysogorets, A., Kempe, J. "Connectivity Matters: Neural Network Pruning Through the Lens
   of Effective Sparsity." JMLR 24 (2023).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence

import torch

from sparsetopo.errors import InputError

#: Separates a base method from its control in a method name (``snip+layer-shuffle``).
SEPARATOR = "+"

Control = Callable[[Mapping[str, torch.Tensor], torch.Generator], dict[str, torch.Tensor]]


def _keep_first(keys: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Bool matrix of the shape of ``keys`` with, in row ``r``, True at the ``counts[r]``
    positions of smallest key: a uniform random subset of that size when the keys are i.i.d.
    uniform."""
    order = keys.argsort(dim=1, stable=True)
    rank = torch.arange(keys.shape[1]).expand_as(keys)
    kept = torch.zeros(keys.shape, dtype=torch.bool)
    kept.scatter_(1, order, rank < counts[:, None])
    return kept


def layer_shuffle(masks: Mapping[str, torch.Tensor], generator: torch.Generator
                  ) -> dict[str, torch.Tensor]:
    """Every mask with its number of True entries kept, at uniformly random positions.

    Parameters
    ----------
    masks : mapping of str to bool Tensor
        Masks of the layers (any shapes).
    generator : torch.Generator
        Source of the random positions (CPU).

    Returns
    -------
    dict of str to bool Tensor
        New masks, same keys, shapes and per-mask counts; on the CPU.

    References
    ----------
    .. [1] Frankle, J., Dziugaite, G. K., Roy, D. M., Carbin, M. "Pruning Neural Networks at
       Initialization: Why are We Missing the Mark?" ICLR 2021 (the layer-wise shuffle).
    """
    out = {}
    for key, mask in masks.items():
        flat = mask.detach().reshape(1, -1).cpu().bool()
        keys = torch.rand(flat.shape, generator=generator, dtype=torch.float64)
        out[key] = _keep_first(keys, flat.sum(dim=1)).reshape(mask.shape)
    return out


def fanin_shuffle(masks: Mapping[str, torch.Tensor], generator: torch.Generator
                  ) -> dict[str, torch.Tensor]:
    """Every row of every mask reshaped to ``(C_out, -1)`` with its number of True entries
    kept, at uniformly random positions inside that row.

    Parameters
    ----------
    masks : mapping of str to bool Tensor
        Masks of ``Conv2d`` / ``Linear`` weights, output channels first.
    generator : torch.Generator
        Source of the random positions (CPU).

    Returns
    -------
    dict of str to bool Tensor
        New masks, same keys and shapes, each output channel with its own count; on the CPU.

    References
    ----------
    .. [1] Frankle, J., Dziugaite, G. K., Roy, D. M., Carbin, M. "Pruning Neural Networks at
       Initialization: Why are We Missing the Mark?" ICLR 2021.
    """
    out = {}
    for key, mask in masks.items():
        rows = mask.detach().reshape(mask.shape[0], -1).cpu().bool()
        keys = torch.rand(rows.shape, generator=generator, dtype=torch.float64)
        out[key] = _keep_first(keys, rows.sum(dim=1)).reshape(mask.shape)
    return out


#: Controls by name, in the order they are listed.
CONTROLS: dict[str, Control] = {
    "layer-shuffle": layer_shuffle,
    "fanin-shuffle": fanin_shuffle,
}


def split_method(name: str) -> tuple[str, str | None]:
    """Split a method name into its base method and its control.

    ``"snip+layer-shuffle"`` gives ``("snip", "layer-shuffle")``, ``"snip"`` gives
    ``("snip", None)``. Parses only; :func:`check_method` validates.

    Parameters
    ----------
    name : str
        ``METHOD`` or ``METHOD+CONTROL``.

    Returns
    -------
    (str, str or None)
        The base method and the control (``None`` without one), as written.

    References
    ----------
    .. [1] J. Frankle, G. K. Dziugaite, D. M. Roy, M. Carbin. "Pruning Neural Networks at
       Initialization: Why are We Missing the Mark?" ICLR 2021.
    """
    base, separator, control = str(name).partition(SEPARATOR)
    return base, (control if separator else None)


def control_name(base: str, control: str) -> str:
    """The method name of ``control`` applied to ``base``: ``base + "+" + control``.

    Parameters
    ----------
    base : str
        A base pruning method (``snip``).
    control : str
        A control of :data:`CONTROLS` (``layer-shuffle``).

    Returns
    -------
    str
        ``"snip+layer-shuffle"``.

    References
    ----------
    .. [1] J. Frankle, G. K. Dziugaite, D. M. Roy, M. Carbin. "Pruning Neural Networks at
       Initialization: Why are We Missing the Mark?" ICLR 2021.
    """
    return f"{base}{SEPARATOR}{control}"


def check_method(name: object, known: Sequence[str]) -> str:
    """The method name, stripped and lower-cased, once its base is one of ``known`` and its
    control (if any) one of :data:`CONTROLS`.

    Parameters
    ----------
    name : str
        ``METHOD`` or ``METHOD+CONTROL``.
    known : sequence of str
        The base methods accepted here.

    Returns
    -------
    str
        The normalised name.

    Raises
    ------
    InputError
        One line naming what is wrong and what is supported.

    References
    ----------
    .. [1] J. Frankle, G. K. Dziugaite, D. M. Roy, M. Carbin. "Pruning Neural Networks at
       Initialization: Why are We Missing the Mark?" ICLR 2021.
    """
    if not isinstance(name, str):
        raise InputError(f"a pruning method name must be a string, got {name!r}")
    text = name.strip().lower()
    base, control = split_method(text)
    if base not in known:
        raise InputError(f"unknown pruning method {base!r}; supported: {', '.join(known)} "
                         f"(each also as METHOD+CONTROL, controls: {', '.join(CONTROLS)})")
    if control is not None and control not in CONTROLS:
        raise InputError(f"unknown control {control!r} in {name.strip()!r}; supported "
                         f"controls: {', '.join(CONTROLS)} (as METHOD+CONTROL, e.g. "
                         f"{control_name(base, next(iter(CONTROLS)))})")
    return text


def control_seed(seed: int, control: str) -> int:
    """Seed of a control's generator: the first 63 bits of sha256 of ``"<seed>:<control>"``,
    so that it shares no stream with the method's generator (seeded with ``seed`` itself)."""
    digest = hashlib.sha256(f"{int(seed)}:{control}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def apply_control(masks: Mapping[str, torch.Tensor], control: str, seed: int
                  ) -> dict[str, torch.Tensor]:
    """A method's masks moved by the registered ``control``, drawn from its own generator.

    The generator is seeded with :func:`control_seed` (the first 63 bits of
    ``sha256("<seed>:<control>")``), never the method's generator nor the global one, so the
    result is a deterministic function of ``masks``, ``control`` and ``seed`` (definitions in
    ``docs/controls.md``).

    Parameters
    ----------
    masks : mapping of str to bool Tensor
        A method's masks (``{"<module path>.weight": mask}``).
    control : str
        A name of :data:`CONTROLS`.
    seed : int
        The run seed.

    Returns
    -------
    dict of str to bool Tensor
        The control's masks (CPU), in the order of ``masks``.

    Raises
    ------
    InputError
        ``control`` is not a name of :data:`CONTROLS`.

    References
    ----------
    .. [1] J. Frankle, G. K. Dziugaite, D. M. Roy, M. Carbin. "Pruning Neural Networks at
       Initialization: Why are We Missing the Mark?" ICLR 2021.
    .. [2] A. Vysogorets, J. Kempe. "Connectivity Matters: Neural Network Pruning Through the
       Lens of Effective Sparsity." JMLR 24, 2023.
    """
    if control not in CONTROLS:
        raise InputError(f"unknown control {control!r}; supported controls: "
                         f"{', '.join(CONTROLS)}")
    generator = torch.Generator().manual_seed(control_seed(seed, control))
    return CONTROLS[control](masks, generator)
