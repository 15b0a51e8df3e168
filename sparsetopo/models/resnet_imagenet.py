"""ImageNet ResNets of He et al. (CVPR 2016; torchvision layout, "v1.5": stride on the 3x3 conv of
bottleneck blocks), for 224x224 inputs (any size >= 32 works: adaptive average pooling).

Stem: 7x7 conv stride 2 (64 channels), BN, ReLU, 3x3 max pool stride 2; four stages of 64, 128,
256, 512 base channels (strides 1, 2, 2, 2); global average pooling; linear classifier.
Shortcut: 1x1 conv + BN projection where the shape changes, identity otherwise. With 1000
classes: ResNet-18 has 11.7M and ResNet-50 25.6M parameters.
"""

from __future__ import annotations

from torch import Tensor, nn


def _projection(c_in: int, c_out: int, stride: int) -> nn.Module:
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))


class BasicBlock(nn.Module):
    """Basic block: two 3x3 convs, ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``.

    Parameters
    ----------
    c_in : int
        Input channels.
    planes : int
        Output channels.
    stride : int, default 1
        Stride of ``conv1`` and of the projection shortcut.
    """

    expansion = 1

    def __init__(self, c_in: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.shortcut = _projection(c_in, planes, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + self.shortcut(x)
        return self.relu2(out)


class Bottleneck(nn.Module):
    """Bottleneck block: 1x1 (reduce to ``planes``), 3x3 (stride), 1x1 (expand to
    ``4 * planes``), plus the shortcut, then ReLU.

    Parameters
    ----------
    c_in : int
        Input channels.
    planes : int
        Channels of the two inner convolutions.
    stride : int, default 1
        Stride of the 3x3 conv and of the projection shortcut.
    """

    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int = 1):
        super().__init__()
        c_out = planes * self.expansion
        self.conv1 = nn.Conv2d(c_in, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(planes, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.relu3 = nn.ReLU()
        self.shortcut = _projection(c_in, c_out, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out = out + self.shortcut(x)
        return self.relu3(out)


class ImageNetResNet(nn.Module):
    """ImageNet ResNet (see the module docstring).

    Parameters
    ----------
    block : type
        :class:`BasicBlock` or :class:`Bottleneck`.
    blocks_per_stage : (int, int, int, int)
        Blocks in each of the four stages.
    num_classes : int, default 1000
        Outputs of the classifier.
    in_channels : int, default 3
        Channels of the input images.

    References
    ----------
    .. [1] K. He, X. Zhang, S. Ren, J. Sun. "Deep Residual Learning for Image Recognition."
       CVPR 2016.
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        blocks_per_stage: tuple[int, int, int, int],
        num_classes: int = 1000,
        in_channels: int = 3,
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        stages = []
        c_in = 64
        for planes, n, stride in zip((64, 128, 256, 512), blocks_per_stage, (1, 2, 2, 2), strict=True):
            blocks = []
            for i in range(n):
                blocks.append(block(c_in, planes, stride if i == 0 else 1))
                c_in = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.fc(self.flatten(self.pool(out)))


def resnet18(num_classes: int = 10, in_channels: int = 3) -> ImageNetResNet:
    """The zoo's ``resnet18``: basic blocks, (2, 2, 2, 2) per stage.

    Parameters
    ----------
    num_classes, in_channels
        As :class:`ImageNetResNet`.

    Returns
    -------
    ImageNetResNet
        The (uninitialised) network.
    """
    return ImageNetResNet(BasicBlock, (2, 2, 2, 2), num_classes, in_channels)


def resnet50(num_classes: int = 10, in_channels: int = 3) -> ImageNetResNet:
    """The zoo's ``resnet50``: bottleneck blocks, (3, 4, 6, 3) per stage.

    Parameters
    ----------
    num_classes, in_channels
        As :class:`ImageNetResNet`.

    Returns
    -------
    ImageNetResNet
        The (uninitialised) network.
    """
    return ImageNetResNet(Bottleneck, (3, 4, 6, 3), num_classes, in_channels)
