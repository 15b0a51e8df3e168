"""Masks of sparse networks in ``torch.nn.utils.prune`` form, and what is *present*.

A weight is present when its mask entry is 1 (``weight_orig`` / ``weight_mask`` after
``torch.nn.utils.prune``) or, for a module without a mask, when it is non-zero. Only
``Conv2d`` and ``Linear`` weights are pruned and encoded (definitions in
``docs/networks.md``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from sparsetopo.errors import WeightsError

PRUNABLE_TYPES = (nn.Conv2d, nn.Linear)


def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers whose weights are pruned and encoded: every ``Conv2d`` and ``Linear`` module.

    Parameters
    ----------
    model : torch.nn.Module
        Any network.

    Returns
    -------
    list of (str, torch.nn.Module)
        ``(module path, module)`` in ``named_modules`` order (shortcut convolutions and the
        classifier included).

    References
    ----------
    .. [1] E. Cunegatti, L. L. Farina, D. Bucur, G. Iacca. "Understanding Sparse Neural
       Networks from their Topology via Multipartite Graph Representations." TMLR 2024.
    """
    return [(n, m) for n, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)]


def weight_and_mask(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The effective weight and the presence mask of a conv/linear module.

    With a mask (``torch.nn.utils.prune`` form) the effective weight is
    ``weight_orig * weight_mask`` and a weight is present where the mask is non-zero; without
    one, the weight itself, present where non-zero.

    Parameters
    ----------
    module : torch.nn.Module
        A ``Conv2d`` or ``Linear`` module.

    Returns
    -------
    (Tensor, Tensor)
        The effective weight (detached, on the module's device) and the bool mask, both of the
        weight's shape.

    References
    ----------
    .. [1] E. Cunegatti, L. L. Farina, D. Bucur, G. Iacca. "Understanding Sparse Neural
       Networks from their Topology via Multipartite Graph Representations." TMLR 2024.
    """
    if hasattr(module, "weight_mask"):
        mask = module.weight_mask.detach().bool()
        weight = module.weight_orig.detach() * mask
    else:
        weight = module.weight.detach()
        mask = weight != 0
    return weight, mask


def get_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """The presence masks of every Conv2d and Linear layer (:func:`weight_and_mask`).

    Parameters
    ----------
    model : torch.nn.Module
        Any network.

    Returns
    -------
    dict of str to bool Tensor
        ``{"<module path>.weight": mask}`` (copies), in :func:`prunable_layers` order.

    References
    ----------
    .. [1] E. Cunegatti, L. L. Farina, D. Bucur, G. Iacca. "Understanding Sparse Neural
       Networks from their Topology via Multipartite Graph Representations." TMLR 2024.
    """
    return {f"{name}.weight": weight_and_mask(m)[1].clone() for name, m in prunable_layers(model)}


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Apply boolean masks in ``torch.nn.utils.prune`` form, replacing any existing mask.

    ``masks`` maps ``"<module_path>.weight"`` to a bool tensor of the weight's shape. A layer
    without a mask gets ``weight_orig`` (its weights, unchanged) and ``weight_mask``; a layer
    already masked keeps its ``weight_orig`` and gets the new ``weight_mask`` (so pruning one
    initialization twice, to compare methods, never loses a weight the first mask removed).
    Layers without an entry in ``masks`` are left as they are.

    Parameters
    ----------
    model : torch.nn.Module
        The network, changed in place.
    masks : dict of str to bool Tensor
        ``{"<module path>.weight": mask}``, each of its weight's shape.

    Raises
    ------
    WeightsError
        A key that does not name a Conv2d or Linear weight of the model, or a mask whose shape
        is not its weight's (an ``InputError``).

    References
    ----------
    .. [1] E. Cunegatti, L. L. Farina, D. Bucur, G. Iacca. "Understanding Sparse Neural
       Networks from their Topology via Multipartite Graph Representations." TMLR 2024.
    """
    layers = dict(prunable_layers(model))
    for key, mask in masks.items():
        path = key.removesuffix(".weight")
        if path not in layers:
            raise WeightsError(f"mask {key!r} does not name a Conv2d/Linear weight of the "
                               "model")
        module = layers[path]
        shape = tuple(getattr(module, "weight_orig", module.weight).shape)
        if tuple(mask.shape) != shape:
            raise WeightsError(f"mask {key!r} has shape {tuple(mask.shape)}, weight has "
                               f"{shape}")
        if hasattr(module, "weight_mask") and hasattr(module, "weight_orig"):
            new = mask.to(module.weight_mask.device, module.weight_mask.dtype)
            module.weight_mask.data = new
            module.weight = module.weight_orig * module.weight_mask  # what the prune hook does
        else:
            torch_prune.custom_from_mask(module, "weight", mask.to(module.weight.device).float())


def count_weights(model: nn.Module) -> tuple[int, int]:
    """The present and total conv/linear weights of ``model``.

    Parameters
    ----------
    model : torch.nn.Module
        Any network.

    Returns
    -------
    (int, int)
        ``(P, T)``: present weights (:func:`weight_and_mask`) and all weights of its Conv2d and
        Linear layers.

    References
    ----------
    .. [1] E. Cunegatti, L. L. Farina, D. Bucur, G. Iacca. "Understanding Sparse Neural
       Networks from their Topology via Multipartite Graph Representations." TMLR 2024.
    """
    present = total = 0
    for _, m in prunable_layers(model):
        _, mask = weight_and_mask(m)
        present += int(mask.sum())
        total += mask.numel()
    return present, total


def sparsity(model: nn.Module) -> float:
    """The sparsity of ``model``: :math:`1 - P / T` over all its conv and linear weights.

    Parameters
    ----------
    model : torch.nn.Module
        Any network.

    Returns
    -------
    float
        One minus the share of present weights (:func:`count_weights`); 0 for a network
        without conv or linear weights.

    References
    ----------
    .. [1] E. Cunegatti, L. L. Farina, D. Bucur, G. Iacca. "Understanding Sparse Neural
       Networks from their Topology via Multipartite Graph Representations." TMLR 2024.
    """
    present, total = count_weights(model)
    return 1.0 - present / total if total else 0.0


@dataclass(frozen=True)
class LayerDensity:
    """The present and total weights of one conv/linear layer.

    Parameters
    ----------
    layer : str
        The module path.
    kind : str
        The module type (``Conv2d`` or ``Linear``).
    shape : tuple of int
        The weight's shape.
    present : int
        Present weights (:func:`weight_and_mask`).
    total : int
        All weights.

    References
    ----------
    .. [1] E. Cunegatti, L. L. Farina, D. Bucur, G. Iacca. "Understanding Sparse Neural
       Networks from their Topology via Multipartite Graph Representations." TMLR 2024.
    """

    layer: str
    kind: str
    shape: tuple[int, ...]
    present: int
    total: int

    @property
    def density(self) -> float:
        """The layer's density ``present / total`` (0 for an empty layer)."""
        return self.present / self.total if self.total else 0.0


def layer_densities(model: nn.Module) -> list[LayerDensity]:
    """The present and total weights of every conv/linear layer.

    Parameters
    ----------
    model : torch.nn.Module
        Any network.

    Returns
    -------
    list of LayerDensity
        One row per layer, in :func:`prunable_layers` order.

    References
    ----------
    .. [1] E. Cunegatti, L. L. Farina, D. Bucur, G. Iacca. "Understanding Sparse Neural
       Networks from their Topology via Multipartite Graph Representations." TMLR 2024.
    """
    rows = []
    for name, m in prunable_layers(model):
        _, mask = weight_and_mask(m)
        rows.append(LayerDensity(name, type(m).__name__, tuple(mask.shape), int(mask.sum()), mask.numel()))
    return rows


def masked_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's ``state_dict`` in plain form: every pruned weight as its effective weight.

    Parameters
    ----------
    model : torch.nn.Module
        Any network, masked or not.

    Returns
    -------
    dict of str to Tensor
        Copies of the ``state_dict``'s tensors, with ``<layer>.weight`` =
        ``weight_orig * weight_mask`` (zero where pruned) instead of the ``weight_orig`` and
        ``weight_mask`` keys; loads into an unmasked model of the same architecture.

    References
    ----------
    .. [1] E. Cunegatti, L. L. Farina, D. Bucur, G. Iacca. "Understanding Sparse Neural
       Networks from their Topology via Multipartite Graph Representations." TMLR 2024.
    """
    sd = {}
    for key, value in model.state_dict().items():
        if key.endswith("_mask"):
            continue
        if key.endswith("weight_orig"):
            path = key.removesuffix(".weight_orig")
            mask = model.get_submodule(path).weight_mask
            sd[f"{path}.weight"] = (value * mask).detach().clone()
        else:
            sd[key] = value.detach().clone()
    return sd




#: What ``sparsetopo prune`` records beside the files it writes (model, method, sparsity, seed,
#: input shape), so that later commands know the input size the masks were made for.
PRUNE_RECORD = "prune.json"


def prune_record(weights: str | os.PathLike) -> dict | None:
    """The :data:`PRUNE_RECORD` beside a weights file (``None`` when there is none or it is not
    readable JSON)."""
    import json

    path = Path(weights).with_name(PRUNE_RECORD)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


#: Keys under which training scripts commonly nest a model's state_dict in a checkpoint.
CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights")
#: Prefixes that wrappers add to every key (``DataParallel``/``DistributedDataParallel``,
#: ``torch.compile``).
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def _is_tensor_dict(value) -> bool:
    return isinstance(value, dict) and bool(value) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def _unwrap(obj, path, notes: list[str]) -> dict[str, torch.Tensor]:
    """The state_dict inside what ``torch.load`` returned: the dict itself, or the entry of a
    checkpoint (``CHECKPOINT_KEYS``), without a wrapper's key prefix (``WRAPPER_PREFIXES``)."""
    if not _is_tensor_dict(obj) and isinstance(obj, dict):
        key = next((k for k in CHECKPOINT_KEYS if _is_tensor_dict(obj.get(k))), None)
        if key is not None:
            others = sorted(str(k) for k in obj if k != key)
            notes.append(f"read the {key!r} entry of a checkpoint"
                         + (f" (also holding {', '.join(others)})" if others else ""))
            obj = obj[key]
    if not _is_tensor_dict(obj):
        raise WeightsError(f"{path} is not a state_dict (a dict of tensors) nor a checkpoint "
                           f"holding one under {', '.join(map(repr, CHECKPOINT_KEYS))}")
    for prefix in WRAPPER_PREFIXES:
        if all(k.startswith(prefix) for k in obj):
            notes.append(f"stripped the prefix {prefix!r} from all {len(obj)} keys (a "
                         "DataParallel or compiled model's state_dict)")
            obj = {k.removeprefix(prefix): v for k, v in obj.items()}
    return obj


def _is_masks_file(sd: dict[str, torch.Tensor], model: nn.Module) -> bool:
    """Whether ``sd`` holds only boolean masks of the model's conv/linear weights (the
    ``masks.pt`` that ``sparsetopo prune`` writes)."""
    weights = {f"{name}.weight" for name, _ in prunable_layers(model)}
    return all(v.dtype == torch.bool for v in sd.values()) and set(sd) <= weights


def load_weights(model: nn.Module, path: str | os.PathLike) -> list[str]:
    """Load a masked ``state_dict`` saved with ``torch.save`` into ``model``, or apply a masks
    file to its initial weights; ``torch.load(..., weights_only=True)``, so nothing but tensors
    and plain containers is ever unpickled.

    Accepted: a ``state_dict`` in plain form (``conv.weight`` zeroed where pruned) or in
    ``torch.nn.utils.prune`` form (``conv.weight_orig`` + ``conv.weight_mask``); a checkpoint
    holding one under a key of ``CHECKPOINT_KEYS`` beside other entries (``epoch``, optimizer
    state, ...); keys with a wrapper's prefix (``module.``, ``_orig_mod.``), which are stripped;
    and a masks file (boolean tensors keyed ``<layer>.weight``, as ``sparsetopo prune`` writes
    ``masks.pt``), applied to the model's own weights. The presence masks are applied so that
    later pruning-aware code sees them.

    Parameters
    ----------
    model : torch.nn.Module
        The network to load into (its architecture must match the file's).
    path : str or os.PathLike
        The file.

    Returns
    -------
    list of str
        What was read beyond a plain state_dict (the checkpoint entry, a stripped prefix, a
        masks file), one sentence each, for the caller to show.

    Raises
    ------
    WeightsError
        The file is missing or unreadable, holds no state_dict, does not match the model
        (missing or unexpected keys, other shapes), or holds NaN or infinite values.

    References
    ----------
    .. [1] E. Cunegatti, L. L. Farina, D. Bucur, G. Iacca. "Understanding Sparse Neural
       Networks from their Topology via Multipartite Graph Representations." TMLR 2024.
    """
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise WeightsError(f"weights file not found: {path}") from None
    except Exception as exc:  # corrupt file, not a torch file, pickled objects
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"cannot read weights file {path}: {first}") from None
    notes: list[str] = []
    sd = _unwrap(loaded, path, notes)
    if _is_masks_file(sd, model):
        notes.append(f"a masks file: its {len(sd)} masks applied to the model's initial weights")
        shapes = {f"{name}.weight": tuple(m.weight.shape) for name, m in prunable_layers(model)}
        for key, mask in sd.items():
            if tuple(mask.shape) != shapes[key]:
                raise WeightsError(f"{path} does not match the model: mask {key} has shape "
                                   f"{tuple(mask.shape)}, model expects {shapes[key]}")
        apply_masks(model, {k: sd.get(k, torch.ones(v, dtype=torch.bool))
                            for k, v in shapes.items()})
        return notes
    masks: dict[str, torch.Tensor] = {}
    plain: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if key.endswith(".weight_mask"):
            continue
        if key.endswith(".weight_orig"):
            path_ = key.removesuffix(".weight_orig")
            mask = sd.get(f"{path_}.weight_mask")
            value = value * mask if mask is not None else value
            plain[f"{path_}.weight"] = value
            masks[f"{path_}.weight"] = (mask if mask is not None else value != 0).bool()
        else:
            plain[key] = value
    for _, m in prunable_layers(model):
        if torch_prune.is_pruned(m) and hasattr(m, "weight_mask"):
            torch_prune.remove(m, "weight")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(plain))
    unexpected = sorted(set(plain) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys (e.g. {unexpected[0]})")
        raise WeightsError(f"{path} does not match the model: " + ", ".join(parts))
    for key, value in plain.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise WeightsError(
                f"{path} does not match the model: {key} has shape {tuple(value.shape)}, "
                f"model expects {tuple(expected[key].shape)}"
            )
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise WeightsError(f"{path}: {key} contains NaN or inf values")
    model.load_state_dict(plain)
    for name, m in prunable_layers(model):
        key = f"{name}.weight"
        apply_masks(model, {key: masks.get(key, m.weight.detach() != 0)})
    return notes
