"""Pre-activation Wide ResNet of Zagoruyko & Komodakis (BMVC 2016): WRN-d-k.

A 3x3 stem conv with 16 channels, three groups of ``(d-4)/6`` pre-activation basic blocks with
``16k``, ``32k`` and ``64k`` channels (strides 1, 2, 2), then BN-ReLU, global average pooling
and a linear classifier. Block: ``a = relu(bn1(x))``, ``out = conv2(relu(bn2(conv1(a))))``,
``out = out + shortcut``, where the shortcut is ``x`` when in == out channels and a 1x1 conv
(no BatchNorm, as in the original) of ``a`` otherwise. No dropout. WRN-28-2 has 1.47M
parameters with 10 classes.
"""

from __future__ import annotations

from torch import Tensor, nn

from sparsetopo.errors import InputError


class PreActBlock(nn.Module):
    """Pre-activation basic block (see the module docstring).

    Parameters
    ----------
    c_in, c_out : int
        Input and output channels; a 1x1 projection shortcut when they differ.
    stride : int, default 1
        Stride of ``conv1`` and of the projection (a strided block must project).
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.projection = c_in != c_out
        if self.projection:
            self.shortcut: nn.Module = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
        elif stride != 1:
            raise ValueError("a strided block needs c_in != c_out (projection shortcut)")

    def forward(self, x: Tensor) -> Tensor:
        a = self.relu1(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.conv1(a))))
        # `projection` is fixed at construction, so this branch is traced statically by torch.fx
        skip = self.shortcut(a) if self.projection else x
        return out + skip


class WideResNet(nn.Module):
    """WRN-``depth``-``width`` (see the module docstring).

    Parameters
    ----------
    depth : int, default 28
        ``6n + 4``: ``n`` blocks per group.
    width : int, default 2
        Widening factor ``k``: the groups have ``16k``, ``32k`` and ``64k`` channels.
    num_classes : int, default 10
        Outputs of the classifier.
    in_channels : int, default 3
        Channels of the input images.

    Raises
    ------
    InputError
        ``depth`` not of the form ``6n + 4``.

    References
    ----------
    .. [1] S. Zagoruyko, N. Komodakis. "Wide Residual Networks."
       BMVC 2016.
    .. [2] K. He, X. Zhang, S. Ren, J. Sun. "Identity Mappings in Deep Residual Networks."
       ECCV 2016 (pre-activation blocks).
    """

    def __init__(self, depth: int = 28, width: int = 2, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        if (depth - 4) % 6:
            raise InputError(f"WRN depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        groups = []
        c_in = 16
        for c_out, stride in ((16 * width, 1), (32 * width, 2), (64 * width, 2)):
            blocks = []
            for i in range(n):
                blocks.append(PreActBlock(c_in, c_out, stride if i == 0 else 1))
                c_in = c_out
            groups.append(nn.Sequential(*blocks))
        self.block1, self.block2, self.block3 = groups
        self.bn = nn.BatchNorm2d(c_in)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = self.relu(self.bn(out))
        return self.fc(self.flatten(self.pool(out)))


def wrn28_2(num_classes: int = 10, in_channels: int = 3) -> WideResNet:
    """The zoo's ``wrn28_2``: WRN-28-2 (stem 16 channels, groups of 32, 64 and 128
    channels, 4 blocks per group).

    Parameters
    ----------
    num_classes, in_channels
        As :class:`WideResNet`.

    Returns
    -------
    WideResNet
        The (uninitialised) network.
    """
    return WideResNet(28, 2, num_classes, in_channels)
