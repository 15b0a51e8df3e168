"""MobileNetV2 of Sandler et al. (CVPR 2018), CIFAR variant (32x32 input ends at 4x4).

Stem: 3x3 conv (32 channels) with stride 1 instead of 2. Inverted-residual stages
``(expansion t, channels c, blocks n, stride s)``: (1,16,1,1), (6,24,2,1), (6,32,3,2),
(6,64,4,2), (6,96,3,1), (6,160,3,2), (6,320,1,1); the 24-channel stage has stride 1 instead of 2,
so the network downsamples by 8. Then a 1x1 conv to 1280 channels, BN-ReLU6, global average
pooling and a linear classifier (no dropout).

Block: ``[1x1 conv to c_in*t, BN, ReLU6]`` (omitted when t=1), ``3x3 depthwise conv (stride s),
BN, ReLU6``, ``1x1 conv to c_out, BN`` (linear bottleneck).

Shortcut convention (``conv_shortcuts``):

- ``False`` (default, Sandler et al. / torchvision): identity shortcut only when stride is 1
  and c_in == c_out, no shortcut otherwise. 2.24M parameters with 10 classes.
- ``True`` (as in the widespread kuangliu CIFAR implementation): additionally, every stride-1
  block with c_in != c_out gets a 1x1 conv + BN projection shortcut (4 such blocks: 32->16,
  16->24, 64->96, 160->320). 2.30M parameters with 10 classes.
"""

from __future__ import annotations

from torch import Tensor, nn

# (expansion, out channels, blocks, stride of the first block)
CIFAR_STAGES = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1))  # fmt: skip


class InvertedResidual(nn.Module):
    """Inverted residual block: expansion (1x1), depthwise (3x3), linear projection (1x1),
    with a shortcut as the module docstring says.

    Parameters
    ----------
    c_in, c_out : int
        Input and output channels.
    stride : int
        Stride of the depthwise convolution.
    expansion : int
        Hidden channels are ``c_in * expansion`` (no expansion convolution when 1).
    conv_shortcut : bool
        Give a stride-1 block with ``c_in != c_out`` a 1x1 conv + BN projection shortcut.

    References
    ----------
    .. [1] M. Sandler, A. Howard, M. Zhu, A. Zhmoginov, L.-C. Chen. "MobileNetV2: Inverted
       Residuals and Linear Bottlenecks." CVPR 2018.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, expansion: int, conv_shortcut: bool):
        super().__init__()
        hidden = c_in * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += [nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(),
            nn.Conv2d(hidden, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and (c_in == c_out or conv_shortcut)
        if self.residual and c_in != c_out:
            self.shortcut: nn.Module = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out)
            )
        elif self.residual:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        # `residual` is fixed at construction, so this branch is traced statically by torch.fx
        if self.residual:
            out = out + self.shortcut(x)
        return out


class MobileNetV2(nn.Module):
    """MobileNetV2, CIFAR variant (see the module docstring).

    Parameters
    ----------
    num_classes : int, default 10
        Outputs of the classifier.
    in_channels : int, default 3
        Channels of the input images.
    conv_shortcuts : bool, default False
        Projection shortcuts on the stride-1 blocks that change the channel count (the
        module docstring's convention).

    References
    ----------
    .. [1] M. Sandler, A. Howard, M. Zhu, A. Zhmoginov, L.-C. Chen. "MobileNetV2: Inverted
       Residuals and Linear Bottlenecks." CVPR 2018.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, conv_shortcuts: bool = False):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU6()
        )
        blocks = []
        c_in = 32
        for expansion, c_out, n, stride in CIFAR_STAGES:
            for i in range(n):
                blocks.append(
                    InvertedResidual(c_in, c_out, stride if i == 0 else 1, expansion, conv_shortcuts)
                )
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.Conv2d(c_in, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.ReLU6()
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(1280, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.head(self.blocks(self.stem(x)))
        return self.fc(self.flatten(self.pool(out)))


def mobilenetv2(
    num_classes: int = 10, in_channels: int = 3, conv_shortcuts: bool = False
) -> MobileNetV2:
    """The zoo's ``mobilenetv2``: a :class:`MobileNetV2`.

    Parameters
    ----------
    num_classes, in_channels, conv_shortcuts
        As :class:`MobileNetV2`.

    Returns
    -------
    MobileNetV2
        The (uninitialised) network.
    """
    return MobileNetV2(num_classes, in_channels, conv_shortcuts)
