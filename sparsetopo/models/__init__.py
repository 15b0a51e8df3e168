"""Model zoo: ``create(name, num_classes=10, in_channels=3, **kwargs)`` and ``names()``.

Every model is initialised by :func:`sparsetopo.models.init.init_weights` (Kaiming-normal:
``fan_out`` for convolutions, ``fan_in`` for linear layers; zero biases; BatchNorm 1/0) and is
``torch.fx``-traceable (no data-dependent control flow; residual adds are ``out + shortcut(x)``
with ``shortcut`` a conv(+BN) projection or the identity).

| name | model | parameters (10 classes) |
|---|---|---|
| conv6 | Conv-6 with BatchNorm | 2.26M |
| resnet20, resnet32 | He et al. CIFAR ResNets, option-B shortcuts | 0.27M, 0.47M |
| wrn28_2 | pre-activation WRN-28-2 | 1.47M |
| mobilenetv2 | MobileNetV2, CIFAR variant | 2.24M |
| mlp | small MLP (``input_size``, ``hidden`` kwargs) | 0.40M |
| resnet18, resnet50 | ImageNet ResNets (224x224) | 11.7M, 25.6M with 1000 classes |
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import nn

from sparsetopo._torch_state import seeded
from sparsetopo.errors import InputError

from ._factory import from_factory, is_factory
from ._mlp import mlp
from ._mobilenetv2 import mobilenetv2
from .conv6 import Conv6
from .init import init_weights
from .resnet_cifar import resnet20, resnet32
from .resnet_imagenet import resnet18, resnet50
from .wrn import wrn28_2

__all__ = ["build", "create", "names", "options", "init_weights", "count_parameters",
           "from_factory", "is_factory"]

_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "conv6": Conv6,
    "resnet20": resnet20,
    "resnet32": resnet32,
    "wrn28_2": wrn28_2,
    "mobilenetv2": mobilenetv2,
    "mlp": mlp,
    "resnet18": resnet18,
    "resnet50": resnet50,
}


def names() -> list[str]:
    """Names accepted by :func:`create`."""
    return list(_BUILDERS)


def options(name: str) -> list[str]:
    """The options (keyword arguments) model ``name`` takes besides classes and channels."""
    params = inspect.signature(_BUILDERS[name]).parameters
    return [p for p in params if p not in ("num_classes", "in_channels")]


def create(
    name: str, num_classes: int = 10, in_channels: int = 3, seed: int | None = None,
    image_size: int | None = None, **kwargs
) -> nn.Module:
    """Build model ``name`` with ``num_classes`` outputs for ``in_channels``-channel images.

    ``kwargs`` are model options (``conv6``: ``input_size``; ``mlp``: ``input_size``,
    ``hidden``; ``mobilenetv2``: ``conv_shortcuts``). ``image_size``: the side of the input
    images; a model whose layers depend on it (one with an ``input_size`` option) is built for
    it, the others take any size. With ``seed`` the initial weights are drawn from
    ``torch.manual_seed(seed)`` without touching the global RNG state; otherwise from the
    global RNG.
    """
    if str(name).lower() not in _BUILDERS:
        raise InputError(f"unknown model {name!r}; valid models: {', '.join(names())}")
    name = str(name).lower()  # names are case-insensitive (ResNet20)
    if image_size is not None and "input_size" in options(name):
        kwargs.setdefault("input_size", int(image_size))
    for arg, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{arg} must be a positive int, got {value!r}")
    bad = sorted(set(kwargs) - set(options(name)))
    if bad:
        allowed = ", ".join(options(name)) or "none"
        raise InputError(f"model {name!r} has no option {', '.join(bad)}; its options: {allowed}")
    builder = _BUILDERS[name]
    if seed is None:
        return init_weights(builder(num_classes=num_classes, in_channels=in_channels, **kwargs))
    with seeded(seed):
        return init_weights(builder(num_classes=num_classes, in_channels=in_channels, **kwargs))


def build(name: str, num_classes: int = 10, in_channels: int = 3,
          image_size: int | None = None, seed: int | None = None) -> nn.Module:
    """The network ``name`` names: a zoo model (:func:`create`, built for ``image_size`` when
    its layers depend on it) or the user's ``PATH.py:FACTORY`` / ``package.module:FACTORY``
    (:func:`from_factory`, which takes no classes, channels or size). With ``seed`` its initial
    weights are drawn from that seed alone (the global generator is left as it was). The one
    builder of the command line, ``analyze`` and the study."""
    if is_factory(name):
        if seed is None:
            return from_factory(name)
        with seeded(seed):
            return from_factory(name)
    return create(name, num_classes=num_classes, in_channels=in_channels, seed=seed,
                  image_size=image_size)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (weights, biases and BatchNorm affine parameters)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
