"""What every dynamic sparse training method shares: the masks it changes in place, the exact
bookkeeping of an update, and the record it leaves.

An update drops a set ``D`` of present weights and grows a set ``G`` of positions outside the
kept set ``K = present - D``; the new mask is ``K | G`` with ``|G| = |D|``, so the number of
present weights never changes (checked after every update). A position in ``D`` and ``G`` (dropped
and regrown at once) keeps its value and momentum, as in the reference codes: only the weights
that left (``D - G``) and the newly present ones (``G - present``) change.

The masks stay in ``torch.nn.utils.prune`` form (``weight_orig``, ``weight_mask``), updated in
place. Wherever the mask is 0, ``weight_orig`` and its optimizer momentum are held at exactly 0:
the gradient there is 0 (the mask multiplies it), weight decay of 0 is 0, so an optimizer step
leaves every absent weight exactly as it is, and the effective weight ``weight_orig *
weight_mask`` is 0 in every forward pass. A grown weight starts at 0 (or its initial value,
``grow_init="initial"``) with zero momentum, or with the momentum of its dense gradient
(``reset_momentum=False``, SNFS).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from sparsetopo._torch_state import one_thread
from sparsetopo.errors import InputError
from sparsetopo.pruning.masks import prunable_layers

from .config import DSTConfig, drop_fraction_at, update_steps

_EPS = 1e-9


@dataclass
class Layer:
    """One masked layer: its module path, the trainable ``weight_orig``, the ``weight_mask``
    buffer, and the masks kept for the record (``start``: the initial mask, ``ever``: every
    position present at some point)."""

    name: str
    module: nn.Module
    weight: torch.Tensor
    mask: torch.Tensor
    start: torch.Tensor
    ever: torch.Tensor
    initial: torch.Tensor | None = None

    @property
    def present(self) -> torch.Tensor:
        return self.mask.bool()


def count(fraction: float, n: int, rounding: str) -> int:
    """``fraction * n`` rounded ``"floor"`` (RigL) or ``"ceil"`` (SET, SNFS, ITOP), robust to
    floating error (``0.3 * 10`` is 3, not 4), clipped to ``[0, n]``."""
    x = fraction * n
    k = math.ceil(x - _EPS) if rounding == "ceil" else math.floor(x + _EPS)
    return min(max(int(k), 0), int(n))


def select(scores: torch.Tensor, eligible: torch.Tensor, k: int, generator: torch.Generator,
           largest: bool) -> torch.Tensor:
    """Bool mask of the ``k`` eligible positions with the largest (or smallest) scores; NaN
    scores count as 0. Every position strictly better than the ``k``-th best score is taken, and
    the rest are drawn uniformly at random among those tied with it. ``k`` must not exceed the
    number of eligible positions."""
    allowed = eligible.reshape(-1)
    available = int(allowed.sum())
    if k > available:
        raise ValueError(f"cannot select {k} of {available} eligible positions")
    if k <= 0 or k == available:
        return (allowed.clone() if k > 0 else torch.zeros_like(allowed)).view(scores.shape)
    flat = scores.detach().reshape(-1).float().nan_to_num(nan=0.0)
    keyed = torch.where(allowed, flat if largest else -flat, -math.inf)  # larger is better
    kth = torch.topk(keyed, k, sorted=False).values.min()
    better = keyed > kth
    tied = keyed == kth
    out = better | select_random(tied, k - int(better.sum()), generator).reshape(-1)
    return out.view(scores.shape)


def select_random(eligible: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """``k`` positions drawn uniformly without replacement among the eligible ones.

    When most positions are eligible and few are wanted, positions are drawn uniformly over the
    whole tensor and the ineligible ones rejected until ``k`` distinct ones are found, then ``k``
    of those found are kept at random (the set found is, given its size, a uniform subset);
    otherwise the eligible positions are shuffled and the first ``k`` taken."""
    allowed = eligible.reshape(-1)
    out = torch.zeros_like(allowed)
    available = int(allowed.sum())
    if k > available:
        raise ValueError(f"cannot draw {k} of {available} eligible positions")
    if k <= 0:
        return out.view(eligible.shape)
    device, n = allowed.device, allowed.numel()
    if 2 * available >= n and 4 * k <= available:
        found = torch.empty(0, dtype=torch.int64, device=device)
        while found.numel() < k:
            draws = torch.randint(n, (2 * (k - found.numel()) + 16,), generator=generator,
                                  device=device)
            found = torch.unique(torch.cat([found, draws[allowed[draws]]]))
        chosen = found[torch.randperm(found.numel(), generator=generator, device=device)[:k]]
    else:
        candidates = torch.nonzero(allowed).squeeze(1)
        order = torch.randperm(candidates.numel(), generator=generator, device=device)
        chosen = candidates[order[:k]]
    out[chosen] = True
    return out.view(eligible.shape)


def allocate(total: int, shares, capacity) -> list[int]:
    """Integer counts ``c_l <= capacity_l`` summing to ``total``, proportional to ``shares``
    (largest remainders first; what a full layer cannot take goes to the others in proportion;
    layers without a share get nothing while another can take it, then in proportion to their
    room). Raises ``ValueError`` when the capacities cannot hold ``total``."""
    cap = np.asarray(capacity, dtype=np.int64)
    weight = np.nan_to_num(np.asarray(shares, dtype=np.float64), nan=0.0).clip(min=0.0)
    if total > int(cap.sum()):
        raise ValueError(f"cannot place {total} weights in layers with room for {int(cap.sum())}")
    counts = np.zeros(len(cap), dtype=np.int64)
    remaining = int(total)
    while remaining > 0:
        room = cap - counts
        w = np.where(room > 0, weight, 0.0)
        if w.sum() <= 0:
            w = room.astype(np.float64)
        ideal = remaining * w / w.sum()
        take = np.minimum(np.floor(ideal + _EPS).astype(np.int64), room)
        left = remaining - int(take.sum())
        if left > 0:  # largest remainders, among layers with room after ``take``
            frac = np.where(room - take > 0, ideal - np.floor(ideal + _EPS), -1.0)
            order = np.argsort(-frac, kind="stable")[:left]
            order = order[room[order] - take[order] > 0]
            take[order] += 1
        counts += take
        remaining -= int(take.sum())
    return counts.tolist()


@contextlib.contextmanager
def _one_thread(device: torch.device) -> Iterator[None]:
    """One torch thread on CPU for the duration of the block (``_torch_state.one_thread``): an
    update is many small tensor operations, which threads slow down on a busy machine (a
    ResNet-20 update with the process at two threads, alternated three times on the loaded
    2-core machine: SET 194-343 ms against 250-938 ms, ITOP 63-386 ms against 131-1013 ms)."""
    if device.type != "cpu":
        yield
        return
    with one_thread():
        yield


class MaskUpdater:
    """Base class of the dynamic sparse training methods.

    A subclass sets ``name``, ``FIELDS`` (the :class:`DSTConfig` fields it reads),
    ``DEFAULTS`` (their values), and implements :meth:`select`. Class switches:
    ``UPDATE_BEFORE_STEP`` (the update judges the weights before that step's optimizer step,
    RigL; the step then goes on with the new mask, its gradient masked by it; else the update
    comes after the step), ``FIRST_UPDATE_AT_START`` (the first update at step 1),
    ``DENSE_GRADIENT`` (``"never"``, ``"update"``: the dense gradient of an update step's
    batch, ``"always"``: of every batch), ``ROUNDING`` of drop counts.

    The training loop calls, for each 1-based step ``t``: :meth:`before_backward` ->
    backward -> :meth:`before_optimizer_step` -> optimizer step ->
    :meth:`after_optimizer_step`; :meth:`close` at the end. What every update keeps is in the
    module docstring and ``docs/sparse-training.md``.

    Parameters
    ----------
    model : torch.nn.Module
        The network, every Conv2d/Linear layer masked (``torch.nn.utils.prune`` form, e.g. by
        ``training.sparse_init``); absent weights are set to 0 here.
    optimizer : torch.optim.Optimizer
        The training's optimizer (its momentum buffers are reset where weights leave or
        arrive).
    config : DSTConfig
        The method's resolved hyper-parameters.
    total_steps : int
        Optimizer steps of the whole training (the schedule is a fraction of them).
    steps_per_epoch : int
        Optimizer steps per epoch (for the record's ``epoch``).
    seed : int
        Seed of the method's random draws (a generator on the network's device).
    recorder : callable, optional
        ``recorder(model) -> dict`` added to every record (``training.TopologyRecorder``).

    Raises
    ------
    InputError
        A model with an unmasked Conv2d/Linear layer, or without any.
    """

    name: ClassVar[str] = ""
    FIELDS: ClassVar[tuple[str, ...]] = ()
    DEFAULTS: ClassVar[dict[str, Any]] = {}
    UPDATE_BEFORE_STEP: ClassVar[bool] = False
    FIRST_UPDATE_AT_START: ClassVar[bool] = False
    DENSE_GRADIENT: ClassVar[str] = "never"
    ROUNDING: ClassVar[str] = "ceil"

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, config: DSTConfig,
                 total_steps: int, steps_per_epoch: int, seed: int = 0,
                 recorder: Callable[[nn.Module], dict[str, float]] | None = None) -> None:
        self.model, self.optimizer, self.config = model, optimizer, config
        self.total_steps, self.steps_per_epoch = int(total_steps), int(steps_per_epoch)
        self.recorder = recorder
        self.layers = self._layers(model)
        device = self.layers[0].weight.device
        self.generator = torch.Generator(device=device).manual_seed(int(seed))
        self.update_at = set(update_steps(
            self.total_steps, config.update_interval, config.update_end,
            at_start=self.FIRST_UPDATE_AT_START,
            doubling=config.dsr_interval_doubling or ()))
        self.total = sum(layer.mask.numel() for layer in self.layers)
        self.target = int(sum(int(layer.mask.sum()) for layer in self.layers))
        self.trajectory: list[dict[str, Any]] = []
        self.update_seconds = 0.0
        self.record_seconds = 0.0
        self.grads: dict[str, torch.Tensor] = {}
        self._capture = False
        self._hooks = [layer.module.register_forward_pre_hook(self._capture_hook(layer.name))
                       for layer in self.layers] if self.DENSE_GRADIENT != "never" else []
        self._record(0, {})

    # ------------------------------------------------------------------ set-up
    def _layers(self, model: nn.Module) -> list[Layer]:
        layers = []
        for name, module in prunable_layers(model):
            if not (hasattr(module, "weight_mask") and hasattr(module, "weight_orig")):
                raise InputError(f"dynamic sparse training needs every Conv2d/Linear layer "
                                 f"masked (torch.nn.utils.prune form); {name!r} is not: prune "
                                 "the model first (training.sparse_init)")
            weight, mask = module.weight_orig, module.weight_mask
            present = mask.detach().bool()
            initial = None
            if self.config.grow_init == "initial":
                initial = weight.detach().clone()
            with torch.no_grad():  # absent weights are held at exactly 0 (module docstring)
                weight.masked_fill_(~present, 0.0)
                module.weight = weight * mask
            layers.append(Layer(name, module, weight, mask, present.clone(), present.clone(),
                                initial))
        if not layers:
            raise InputError("the model has no Conv2d or Linear layer to train sparsely")
        return layers

    def _capture_hook(self, name: str):
        def hook(module: nn.Module, _inputs) -> None:
            weight = module.weight  # just set by the prune hook registered before this one
            if self._capture and torch.is_grad_enabled() and weight.requires_grad:
                weight.register_hook(lambda grad: self.grads.__setitem__(name, grad.detach()))
        return hook

    # ------------------------------------------------------------------ the loop's calls
    def before_backward(self, step: int) -> None:
        """Before step ``step``'s forward and backward: capture the dense gradient if the
        method needs it at this step (``DENSE_GRADIENT``)."""
        self._capture = self.DENSE_GRADIENT == "always" or (
            self.DENSE_GRADIENT == "update" and step in self.update_at)

    def before_optimizer_step(self, step: int) -> None:
        """After the backward pass: update the masks now when the method judges the weights
        before the optimizer step (``UPDATE_BEFORE_STEP``), then mask the gradient."""
        if self.UPDATE_BEFORE_STEP and step in self.update_at:
            self.update(step)
            with torch.no_grad():  # the step must not move the weights just dropped
                for layer in self.layers:
                    if layer.weight.grad is not None:
                        layer.weight.grad.mul_(layer.mask)

    def after_optimizer_step(self, step: int) -> None:
        """After the optimizer step: update the masks now when the method does so after the
        step."""
        if not self.UPDATE_BEFORE_STEP and step in self.update_at:
            self.update(step)

    def close(self) -> list[dict[str, Any]]:
        """Remove the hooks; return the trajectory."""
        for handle in self._hooks:
            handle.remove()
        self._hooks = []
        self.grads.clear()
        return self.trajectory

    # ------------------------------------------------------------------ an update
    def drop_fraction(self, step: int) -> float:
        """The drop fraction after ``step`` steps (``drop_fraction_at``)."""
        return drop_fraction_at(self.config, step, self.total_steps)

    def select(self, step: int) -> tuple[list[torch.Tensor], list[torch.Tensor], dict]:
        """``(drop, grow, extra)``: per layer the bool masks ``D`` (present weights dropped) and
        ``G`` (positions grown, outside the kept set), and extra values for the record."""
        raise NotImplementedError

    def grown_momentum(self, layer: Layer) -> torch.Tensor | None:
        """Momentum of newly grown weights (None: zero)."""
        return None

    def momentum_buffer(self, layer: Layer) -> torch.Tensor | None:
        """The optimizer's momentum buffer of ``layer``'s weight (None before the first
        step)."""
        state = self.optimizer.state.get(layer.weight)
        return None if not state else state.get("momentum_buffer")

    def update(self, step: int) -> None:
        """One mask update: :meth:`select`, apply it to every layer, check that the number of
        present weights is unchanged, record it."""
        start = time.perf_counter()
        with torch.no_grad(), _one_thread(self.layers[0].weight.device):
            drops, grows, extra = self.select(step)
            dropped = replaced = 0
            for layer, drop, grow in zip(self.layers, drops, grows, strict=True):
                dropped_here, replaced_here = self._apply(layer, drop, grow)
                dropped += dropped_here
                replaced += replaced_here
            present = int(sum(int(layer.mask.sum()) for layer in self.layers))
        if present != self.target:
            raise RuntimeError(f"{self.name}: {present} weights present after the update at "
                               f"step {step}, expected {self.target} (a bug)")
        self.grads.clear()
        self.update_seconds += time.perf_counter() - start
        self._record(step, {"dropped": dropped, "replaced": replaced, **extra})

    def _apply(self, layer: Layer, drop: torch.Tensor, grow: torch.Tensor) -> tuple[int, int]:
        old = layer.present
        kept = old & ~drop
        new = kept | grow
        gone = old & ~new  # dropped, not regrown
        born = new & ~old  # newly present
        weight = layer.weight
        if layer.initial is not None:
            weight.copy_(torch.where(born, layer.initial, weight))
            weight.masked_fill_(gone, 0.0)
        else:
            weight.masked_fill_(gone | born, 0.0)
        buffer = self.momentum_buffer(layer)
        if buffer is not None:
            carried = self.grown_momentum(layer)
            buffer.masked_fill_(gone | born, 0.0)
            if carried is not None:
                buffer.copy_(torch.where(born, carried, buffer))
        layer.mask.copy_(new)
        layer.module.weight = weight * layer.mask  # what the prune hook computes
        layer.ever |= new
        return int(drop.sum()), int(born.sum())

    # ------------------------------------------------------------------ the record
    def _record(self, step: int, extra: dict[str, Any]) -> None:
        start = time.perf_counter()
        with torch.no_grad():
            present = torch.stack([layer.mask.sum() for layer in self.layers]).tolist()
            ever = int(sum(int(layer.ever.sum()) for layer in self.layers))
            start_total = sum(int(layer.start.sum()) for layer in self.layers)
            start_kept = sum(int((layer.start & layer.present).sum()) for layer in self.layers)
        row: dict[str, Any] = {
            "step": step,
            "epoch": step / self.steps_per_epoch,
            "fraction": step / self.total_steps,
            "present": int(sum(present)),
            "exploration_rate": ever / self.total,
            "initial_mask_kept": start_kept / start_total if start_total else float("nan"),
        }
        row.update(extra)
        if self.recorder is not None:
            row.update(self.recorder(self.model))
        row["density"] = {layer.name: p / layer.mask.numel()
                          for layer, p in zip(self.layers, present, strict=True)}
        self.record_seconds += time.perf_counter() - start
        row["record_seconds"] = time.perf_counter() - start
        self.trajectory.append(row)
