"""Conv-6 of the lottery-ticket literature (Frankle & Carbin 2019), with BatchNorm.

``[conv3x3-BN-ReLU] x2, maxpool2`` with 64, 128 and 256 channels, then
``flatten -> Linear(256*(s/8)^2, 256) -> ReLU -> Linear(256, 256) -> ReLU -> Linear(256, classes)``.
For a 32x32 input the flattened size is 4096 (2.26M parameters with 10 classes).
Convolutions have no bias (each is followed by BatchNorm).
"""

from __future__ import annotations

from torch import Tensor, nn

from sparsetopo.errors import InputError


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class Conv6(nn.Module):
    """Conv-6 with BatchNorm (see the module docstring).

    Parameters
    ----------
    num_classes : int, default 10
        Outputs of the classifier.
    in_channels : int, default 3
        Channels of the input images.
    input_size : int, default 32
        Side of the square input images, divisible by 8 (three 2x2 max pools).

    Raises
    ------
    InputError
        ``input_size`` not divisible by 8.

    References
    ----------
    .. [1] J. Frankle, M. Carbin. "The Lottery Ticket Hypothesis: Finding Sparse, Trainable
       Neural Networks." ICLR 2019.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, input_size: int = 32):
        super().__init__()
        if input_size % 8:
            raise InputError(f"conv6 needs an input size divisible by 8, got {input_size}")
        self.features = nn.Sequential(
            *_conv_bn_relu(in_channels, 64), *_conv_bn_relu(64, 64), nn.MaxPool2d(2),
            *_conv_bn_relu(64, 128), *_conv_bn_relu(128, 128), nn.MaxPool2d(2),
            *_conv_bn_relu(128, 256), *_conv_bn_relu(256, 256), nn.MaxPool2d(2),
        )  # fmt: skip
        self.flatten = nn.Flatten()
        flat = 256 * (input_size // 8) ** 2
        self.classifier = nn.Sequential(
            nn.Linear(flat, 256), nn.ReLU(),
            nn.Linear(256, 256), nn.ReLU(),
            nn.Linear(256, num_classes),
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.features(x)))
