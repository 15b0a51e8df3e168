"""A small multilayer perceptron: ``flatten -> Linear -> ReLU -> ... -> Linear(classes)``."""

from __future__ import annotations

from collections.abc import Sequence
from math import prod

from torch import Tensor, nn

from sparsetopo.errors import InputError


class MLP(nn.Module):
    """Multilayer perceptron: ``flatten``, then ``Linear -> ReLU`` per hidden size, then a
    linear classifier.

    Parameters
    ----------
    num_classes : int, default 10
        Outputs of the classifier.
    in_channels : int, default 3
        Channels of the input images.
    input_size : int or (int, int), default 32
        Side ``H = W`` of the input images, or ``(H, W)``.
    hidden : sequence of int, default (128, 64)
        Widths of the hidden layers.

    Raises
    ------
    InputError
        An ``input_size`` that is not an int or a positive ``(H, W)``, or a hidden width below 1.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        input_size: int | Sequence[int] = 32,
        hidden: Sequence[int] = (128, 64),
    ):
        super().__init__()
        size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        if len(size) != 2 or min(size) < 1:
            raise InputError(f"mlp input_size must be an int or (H, W), got {input_size!r}")
        if any(int(h) < 1 for h in hidden):
            raise InputError(f"mlp hidden sizes must be positive, got {tuple(hidden)}")
        widths = [in_channels * prod(size), *map(int, hidden)]
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


def mlp(
    num_classes: int = 10,
    in_channels: int = 3,
    input_size: int | Sequence[int] = 32,
    hidden: Sequence[int] = (128, 64),
) -> MLP:
    """The zoo's ``mlp``: an :class:`MLP` (by default three linear layers, hidden widths 128
    and 64).

    Parameters
    ----------
    num_classes, in_channels, input_size, hidden
        As :class:`MLP`.

    Returns
    -------
    MLP
        The (uninitialised) network.
    """
    return MLP(num_classes, in_channels, input_size, hidden)
