"""Model zoo: the networks of the paper's experiments and a few more, built by name.

:func:`create` builds a zoo model, :func:`build` a zoo model or the user's own
``PATH.py:FACTORY``. Every zoo model is initialised by :func:`init_weights` (Kaiming-normal:
``fan_out`` for convolutions, ``fan_in`` for linear layers; zero biases; BatchNorm weight 1 and
bias 0) and is ``torch.fx``-traceable (no data-dependent control flow; residual adds are
``out + shortcut(x)`` with ``shortcut`` a conv(+BN) projection or the identity). The networks
and their initialisation are defined in ``docs/networks.md``.

==================  ==============================================  ==============================
name                model                                           parameters (10 classes)
==================  ==============================================  ==============================
conv6               Conv-6 with BatchNorm                           2.26M
resnet20, resnet32  He et al. CIFAR ResNets, option-B shortcuts     0.27M, 0.47M
wrn28_2             pre-activation WRN-28-2                         1.47M
mobilenetv2         MobileNetV2, CIFAR variant                      2.24M
mlp                 small MLP (``input_size``, ``hidden`` options)  0.40M
resnet18, resnet50  ImageNet ResNets (224x224)                      11.7M, 25.6M with 1000 classes
==================  ==============================================  ==============================
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
    """The names of the zoo's models, in the order they are listed.

    Returns
    -------
    list of str
        Every name :func:`create` accepts (in lower case; :func:`create` ignores case).
    """
    return list(_BUILDERS)


def options(name: str) -> list[str]:
    """The options of a zoo model: the keyword arguments its builder takes besides
    ``num_classes`` and ``in_channels``.

    Parameters
    ----------
    name : str
        A name of :func:`names` (any case).

    Returns
    -------
    list of str
        The option names (empty for a model without options), e.g. ``["input_size",
        "hidden"]`` for ``mlp``.

    Raises
    ------
    InputError
        ``name`` is not a zoo model.
    """
    if str(name).lower() not in _BUILDERS:
        raise InputError(f"unknown model {name!r}; valid models: {', '.join(names())}")
    params = inspect.signature(_BUILDERS[str(name).lower()]).parameters
    return [p for p in params if p not in ("num_classes", "in_channels")]


def create(
    name: str, num_classes: int = 10, in_channels: int = 3, seed: int | None = None,
    image_size: int | None = None, **kwargs
) -> nn.Module:
    """Build and initialise the zoo model ``name``.

    The model has ``num_classes`` outputs and takes ``in_channels``-channel images; its weights
    are initialised by :func:`init_weights`. The zoo's networks are defined in
    ``docs/networks.md``.

    Parameters
    ----------
    name : str
        A name of :func:`names` (case-insensitive: ``ResNet20`` is ``resnet20``).
    num_classes : int, default 10
        Outputs of the classifier.
    in_channels : int, default 3
        Channels of the input images.
    seed : int or None, optional
        Draw the initial weights from ``torch.manual_seed(seed)`` alone, leaving the global
        random generator as it was; ``None``: draw them from the global generator.
    image_size : int or None, optional
        Side of the (square) input images. A model whose layers depend on it (one with an
        ``input_size`` option: ``conv6``, ``mlp``) is built for it, unless ``input_size`` is
        given; the other models take inputs of any size.
    **kwargs
        Model options (:func:`options`): ``conv6``: ``input_size``; ``mlp``: ``input_size``,
        ``hidden``; ``mobilenetv2``: ``conv_shortcuts``.

    Returns
    -------
    torch.nn.Module
        The initialised model, in training mode, on the CPU.

    Raises
    ------
    InputError
        An unknown model name, an option the model does not take, ``num_classes`` or
        ``in_channels`` not a positive int, or an option value the model cannot be built with
        (e.g. a ``conv6`` input size not divisible by 8).

    References
    ----------
    .. [1] K. He, X. Zhang, S. Ren, J. Sun. "Deep Residual Learning for Image Recognition."
       CVPR 2016 (ResNets).
    .. [2] K. He, X. Zhang, S. Ren, J. Sun. "Delving Deep into Rectifiers: Surpassing
       Human-Level Performance on ImageNet Classification." ICCV 2015 (Kaiming
       initialisation).
    .. [3] S. Zagoruyko, N. Komodakis. "Wide Residual Networks."
       BMVC 2016.
    .. [4] M. Sandler, A. Howard, M. Zhu, A. Zhmoginov, L.-C. Chen. "MobileNetV2: Inverted
       Residuals and Linear Bottlenecks." CVPR 2018.
    .. [5] J. Frankle, M. Carbin. "The Lottery Ticket Hypothesis: Finding Sparse, Trainable
       Neural Networks." ICLR 2019 (Conv-6).
    .. [6] E. Cunegatti, L. L. Farina, D. Bucur, G. Iacca. "Understanding Sparse Neural
       Networks from their Topology via Multipartite Graph Representations." TMLR 2024 (the
       networks of its experiments).
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
    """Build the network ``name`` names: a zoo model or the user's own factory.

    The one builder of the command line, ``analyze`` and the study. A zoo name builds
    :func:`create`'s model (for ``image_size`` when its layers depend on it); a
    ``PATH.py:FACTORY`` or ``package.module:FACTORY`` calls that factory
    (:func:`from_factory`), which takes no classes, channels or size.

    Parameters
    ----------
    name : str
        A zoo name (:func:`names`) or a factory (:func:`is_factory`).
    num_classes : int, default 10
        Outputs of a zoo model.
    in_channels : int, default 3
        Input channels of a zoo model.
    image_size : int or None, optional
        Side of the input images, for a zoo model whose layers depend on it.
    seed : int or None, optional
        Draw the initial weights from this seed alone (the global generator is left as it
        was); ``None``: from the global generator.

    Returns
    -------
    torch.nn.Module
        The network.

    Raises
    ------
    InputError
        As :func:`create` for a zoo name.
    ModelSpecError
        As :func:`from_factory` for a factory.
    """
    if is_factory(name):
        if seed is None:
            return from_factory(name)
        with seeded(seed):
            return from_factory(name)
    return create(name, num_classes=num_classes, in_channels=in_channels, seed=seed,
                  image_size=image_size)


def count_parameters(model: nn.Module) -> int:
    """The number of trainable parameters of ``model``.

    Parameters
    ----------
    model : torch.nn.Module
        Any network.

    Returns
    -------
    int
        The number of elements of every parameter with ``requires_grad`` (weights, biases and
        BatchNorm affine parameters; buffers such as masks and running statistics excluded).
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
