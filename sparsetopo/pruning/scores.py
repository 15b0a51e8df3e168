"""Saliency scores of the score-based pruning methods (``docs/pruning.md``).

Every function returns ``{"<module_path>.weight": score tensor of the weight's shape}`` for all
``Conv2d``/``Linear`` layers (``prunable_layers`` order). Scores are computed on a private copy
of the model (:func:`plain_copy`) whose conv/linear weights are the initialization
(``weight_orig`` of a layer already masked: a new pruning replaces the mask), so the model
itself (weights, buffers, train/eval mode) is never touched.

``data`` is any iterable of ``(inputs, labels)`` batches (e.g. a ``DataLoader``); inputs are
moved to the model's device and dtype.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.nn.utils import prune as torch_prune

from sparsetopo.errors import InputError

from .masks import prunable_layers

Scores = dict[str, torch.Tensor]


def plain_copy(model: nn.Module) -> nn.Module:
    """Deep copy of ``model`` without any ``torch.nn.utils.prune`` reparametrisation of the
    conv/linear weights: ``weight = weight_orig``, the unmasked initialization, since a new
    pruning replaces the mask instead of pruning what it left."""
    # The computed ``weight`` attribute of a pruned module is a non-leaf tensor that deepcopy
    # refuses; it is replaced by a placeholder in the copy and rebuilt by ``prune.remove``.
    memo: dict[int, object] = {}
    for _, module in prunable_layers(model):
        if hasattr(module, "weight_mask") and "weight" in module.__dict__:
            memo[id(module.__dict__["weight"])] = None
    net = copy.deepcopy(model, memo)
    for _, module in prunable_layers(net):
        if torch_prune.is_pruned(module) and hasattr(module, "weight_mask"):
            original = module.weight_orig.detach().clone()
            torch_prune.remove(module, "weight")
            module.weight.data.copy_(original)
    net.requires_grad_(False)
    return net


def _weights(net: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{name}.weight": m.weight.detach() for name, m in prunable_layers(net)}


def _leaves(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().requires_grad_(True) for k, v in tensors.items()}


def _grad(output: torch.Tensor, inputs: Sequence[torch.Tensor], **kw) -> list[torch.Tensor]:
    """``torch.autograd.grad`` with zeros for inputs the output does not depend on."""
    if not output.requires_grad:
        return [torch.zeros_like(t) for t in inputs]
    grads = torch.autograd.grad(output, list(inputs), allow_unused=True, **kw)
    return [torch.zeros_like(t) if g is None else g for g, t in zip(grads, inputs, strict=True)]


def _device_dtype(net: nn.Module) -> tuple[torch.device, torch.dtype]:
    weight = prunable_layers(net)[0][1].weight
    return weight.device, weight.dtype


def _split_batch(batch: object, device: torch.device, dtype: torch.dtype):
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise InputError(f"data must yield (inputs, labels) batches, got a {type(batch).__name__}")
    x, y = batch[0], batch[1]
    if not isinstance(x, torch.Tensor):
        raise InputError(f"batch inputs must be a torch.Tensor, got {type(x).__name__}")
    y = torch.as_tensor(y)
    if y.is_floating_point() or y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise InputError(
            f"batch labels must be a 1-d integer tensor of length {x.shape[0]}, "
            f"got dtype {y.dtype} and shape {tuple(y.shape)}"
        )
    return x.to(device=device, dtype=dtype), y.to(device=device, dtype=torch.long)


def batches(
    data: Iterable, device: torch.device, dtype: torch.dtype, cycle: bool = False
) -> Iterator:
    """``(x, y)`` batches of ``data`` on ``device``/``dtype``; with ``cycle`` the data is
    iterated again when exhausted. An empty ``data`` raises ValueError."""
    passes = 0
    while True:
        empty = True
        for batch in data:
            empty = False
            yield _split_batch(batch, device, dtype)
        passes += 1
        if empty:
            hint = "" if passes == 1 else " on a second pass (pass a DataLoader or a list)"
            raise InputError(f"data yielded no batches{hint}")
        if not cycle:
            return


def input_shape_of(data: Iterable) -> tuple[int, ...]:
    """Shape of one input sample (``x.shape[1:]`` of the first batch)."""
    x, _ = next(batches(data, torch.device("cpu"), torch.float32))
    return tuple(int(d) for d in x.shape[1:])


def magnitude_scores(model: nn.Module) -> Scores:
    """``|w|`` of the initialization (``weight_orig`` of a masked layer: the mask is replaced).

    References
    ----------
    .. [1] S. Han, J. Pool, J. Tran, W. J. Dally. "Learning both Weights and Connections for
       Efficient Neural Networks." NeurIPS 2015.
    """
    return {f"{name}.weight": getattr(m, "weight_orig", m.weight).detach().abs()
            for name, m in prunable_layers(model)}


def snip_scores(model: nn.Module, data: Iterable) -> Scores:
    """SNIP (Lee et al. 2019): ``|dL/dw * w|`` with ``L`` the mean cross-entropy of the model
    (train mode, i.e. BatchNorm on batch statistics) on the first batch of ``data``.

    References
    ----------
    .. [1] N. Lee, T. Ajanthan, P. H. S. Torr. "SNIP: Single-shot Network Pruning based on
       Connection Sensitivity." ICLR 2019.
    """
    net = plain_copy(model).train()
    device, dtype = _device_dtype(net)
    x, y = next(batches(data, device, dtype))
    w = _leaves(_weights(net))
    loss = F.cross_entropy(functional_call(net, w, (x,)), y)
    grads = _grad(loss, list(w.values()))
    return {k: (g * v).detach().abs() for (k, v), g in zip(w.items(), grads, strict=True)}


def class_balanced_sample(
    stream: Iterable[tuple[torch.Tensor, torch.Tensor]], num_classes: int, per_class: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``per_class`` samples of each class met in the ``(x, y)`` batches of
    ``stream`` (fewer for a class with fewer samples), ordered by class then by arrival.
    Iteration stops as soon as every class has ``per_class`` samples."""
    counts = None
    xs, ys = [], []
    for x, y in stream:
        if counts is None:
            counts = torch.zeros(num_classes, dtype=torch.long, device=y.device)
        if y.numel() and (y.min() < 0 or y.max() >= num_classes):
            raise InputError(
                f"labels must be in [0, {num_classes}) for a {num_classes}-class model"
            )
        order = torch.argsort(y, stable=True)
        ys_sorted = y[order]
        rank = torch.arange(len(y), device=y.device) - torch.searchsorted(ys_sorted, ys_sorted)
        take = order[rank + counts[ys_sorted] < per_class]
        xs.append(x[take])
        ys.append(y[take])
        counts += torch.bincount(y[take], minlength=num_classes)
        if bool((counts >= per_class).all()):
            break
    x, y = torch.cat(xs), torch.cat(ys)
    order = torch.argsort(y, stable=True)
    return x[order], y[order]


def grasp_scores(
    model: nn.Module,
    data: Iterable,
    temperature: float = 200.0,
    samples_per_class: int = 25,
    chunk_size: int = 256,
) -> Scores:
    """GraSP (Wang et al. 2020): ``S = -w * (H g)``; the weights with the highest ``S`` are the
    ones to remove.

    ``L = (1/N) sum_i CE(f(x_i) / T, y_i)`` over ``samples_per_class`` samples of each class of
    the model's output (``class_balanced_sample``), ``T = temperature``, ``g = dL/dw`` and ``H g``
    the Hessian-gradient product ``d(g_detached . dL/dw)/dw`` (double backward). The model runs in
    train mode on chunks of ``chunk_size`` samples (BatchNorm statistics per chunk).

    References
    ----------
    .. [1] C. Wang, G. Zhang, R. Grosse. "Picking Winning Tickets Before Training by Preserving
       Gradient Flow." ICLR 2020.
    """
    net = plain_copy(model).train()
    device, dtype = _device_dtype(net)
    stream = batches(data, device, dtype)
    first = next(stream)
    with torch.no_grad():
        num_classes = int(net.eval()(first[0][:2]).shape[1])
    net.train()
    x, y = class_balanced_sample(itertools.chain([first], stream), num_classes, samples_per_class)
    w = _leaves(_weights(net))
    leaves = list(w.values())
    chunks = list(zip(torch.split(x, chunk_size), torch.split(y, chunk_size), strict=True))

    def chunk_loss(xc: torch.Tensor, yc: torch.Tensor) -> torch.Tensor:
        logits = functional_call(net, w, (xc,)) / temperature
        return F.cross_entropy(logits, yc, reduction="sum") / len(y)

    g = [torch.zeros_like(v) for v in leaves]
    for xc, yc in chunks:
        for acc, gc in zip(g, _grad(chunk_loss(xc, yc), leaves), strict=True):
            acc += gc
    hg = [torch.zeros_like(v) for v in leaves]
    for xc, yc in chunks:
        grads = _grad(chunk_loss(xc, yc), leaves, create_graph=True)
        z = sum((gd * gc).sum() for gd, gc in zip(g, grads, strict=True))
        for acc, hc in zip(hg, _grad(z, leaves), strict=True):
            acc += hc
    return {k: -(v * h).detach() for (k, v), h in zip(w.items(), hg, strict=True)}


def synflow_scorer(
    model: nn.Module, input_shape: Sequence[int]
) -> Callable[[dict[str, torch.Tensor] | None], Scores]:
    """Returns ``score(masks)`` computing one SynFlow round (Tanaka et al. 2020) in float64.

    The network is a copy in eval mode with ``|.|`` applied to every floating parameter and
    buffer; ``R = sum(f(1))`` for an all-ones input of shape ``(1, *input_shape)`` with the
    conv/linear weights ``|w| * mask``; the score is ``|w_masked * dR/dw_masked|`` (0 where
    masked out). ``masks=None`` means all weights present.

    References
    ----------
    .. [1] H. Tanaka, D. Kunin, D. L. K. Yamins, S. Ganguli. "Pruning neural networks without
       any data by iteratively conserving synaptic flow." NeurIPS 2020.
    """
    net = plain_copy(model).double().eval()
    with torch.no_grad():
        for t in [*net.parameters(), *net.buffers()]:
            if t.is_floating_point():
                t.abs_()
    device, dtype = _device_dtype(net)
    absw = _weights(net)
    ones = torch.ones((1, *[int(d) for d in input_shape]), device=device, dtype=dtype)

    def score(masks: dict[str, torch.Tensor] | None = None) -> Scores:
        masked = {k: v * masks[k].to(device) if masks is not None else v for k, v in absw.items()}
        w = _leaves(masked)
        r = functional_call(net, w, (ones,)).sum()
        grads = _grad(r, list(w.values()))
        return {k: (v * g).detach().abs() for (k, v), g in zip(w.items(), grads, strict=True)}

    return score


def synflow_scores(
    model: nn.Module,
    masks: dict[str, torch.Tensor] | None = None,
    input_shape: Sequence[int] = (3, 32, 32),
) -> Scores:
    """One SynFlow round (see ``synflow_scorer``); the 100-round schedule is in ``prune``."""
    return synflow_scorer(model, input_shape)(masks)


def prospr_scores(
    model: nn.Module,
    data: Iterable,
    steps: int = 3,
    lr: float = 0.5,
    momentum: float = 0.9,
    progress: bool = False,
) -> Scores:
    """ProsPr (Alizadeh et al. 2022): ``|dL(w_T; B_T) / dm|`` at ``m = 1``.

    All parameters start at the model's initialization (:func:`plain_copy`), with the
    conv/linear weights ``w_0 = m * w_init``; ``T = steps`` differentiable SGD steps with momentum (torch
    semantics: ``b_1 = g_0``, ``b_{t+1} = momentum * b_t + g_t``, ``p_{t+1} = p_t - lr * b_{t+1}``)
    on the cross-entropy of batches ``B_0 .. B_{T-1}`` of ``data`` (train mode), then the loss on
    batch ``B_T`` is differentiated through the steps with respect to ``m``. ``data`` is iterated
    again if it has fewer than ``T + 1`` batches.

    References
    ----------
    .. [1] M. Alizadeh, S. A. Tailor, L. M. Zintgraf, J. van Amersfoort, S. Farquhar, N. D. Lane,
       Y. Gal. "Prospect Pruning: Finding Trainable Weights at Initialization using
       Meta-Gradients." ICLR 2022.
    """
    from tqdm.auto import tqdm

    from sparsetopo.io import show_progress

    net = plain_copy(model).train()
    device, dtype = _device_dtype(net)
    weights = _weights(net)
    m = {k: torch.ones_like(v, requires_grad=True) for k, v in weights.items()}
    start = _leaves({k: v for k, v in net.named_parameters() if k not in weights})
    params = {**start, **{k: weights[k] * m[k] for k in weights}}
    trained = list(start) + list(weights)  # everything the inner steps update
    stream = batches(data, device, dtype, cycle=True)
    buf: dict[str, torch.Tensor] = {}
    for _ in tqdm(range(steps), desc="prospr inner steps", disable=not show_progress(progress)):
        x, y = next(stream)
        loss = F.cross_entropy(functional_call(net, params, (x,)), y)
        grads = _grad(loss, [params[k] for k in trained], create_graph=True)
        for k, g in zip(trained, grads, strict=True):
            buf[k] = g if k not in buf else momentum * buf[k] + g
            params[k] = params[k] - lr * buf[k]
    x, y = next(stream)
    loss = F.cross_entropy(functional_call(net, params, (x,)), y)
    grads = _grad(loss, list(m.values()))
    return {k: g.detach().abs() for k, g in zip(m, grads, strict=True)}
