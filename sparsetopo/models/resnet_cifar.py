"""CIFAR ResNets of He et al. (CVPR 2016, section 4.2): ResNet-(6n+2).

A 3x3 stem conv with 16 channels, then three stages of ``n`` basic blocks with 16, 32 and 64
channels (the first block of stages 2 and 3 has stride 2), global average pooling and a linear
classifier. Shortcuts follow option B: a 1x1 conv + BatchNorm projection only where the shape
changes, the identity otherwise. ResNet-20 (n=3) has 0.27M and ResNet-32 (n=5) 0.47M parameters
with 10 classes.
"""

from __future__ import annotations

from torch import Tensor, nn


class BasicBlock(nn.Module):
    """Basic block: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`` with 3x3 convs;
    the shortcut is a 1x1 conv + BN projection where the shape changes, else the identity.

    Parameters
    ----------
    c_in, c_out : int
        Input and output channels.
    stride : int, default 1
        Stride of ``conv1`` and of the projection.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu2 = nn.ReLU()
        if stride != 1 or c_in != c_out:
            self.shortcut: nn.Module = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + self.shortcut(x)
        return self.relu2(out)


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for CIFAR-sized inputs (any size works: global average pooling).

    Parameters
    ----------
    blocks_per_stage : int
        ``n``: basic blocks in each of the three stages.
    num_classes : int, default 10
        Outputs of the classifier.
    in_channels : int, default 3
        Channels of the input images.

    References
    ----------
    .. [1] K. He, X. Zhang, S. Ren, J. Sun. "Deep Residual Learning for Image Recognition."
       CVPR 2016.
    """

    def __init__(self, blocks_per_stage: int, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        stages = []
        c_in = 16
        for c_out, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(blocks_per_stage):
                blocks.append(BasicBlock(c_in, c_out, stride if i == 0 else 1))
                c_in = c_out
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.fc(self.flatten(self.pool(out)))


def resnet20(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    """The zoo's ``resnet20``: a :class:`CifarResNet` with 3 blocks per stage.

    Parameters
    ----------
    num_classes, in_channels
        As :class:`CifarResNet`.

    Returns
    -------
    CifarResNet
        The (uninitialised) network.
    """
    return CifarResNet(3, num_classes, in_channels)


def resnet32(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    """The zoo's ``resnet32``: a :class:`CifarResNet` with 5 blocks per stage.

    Parameters
    ----------
    num_classes, in_channels
        As :class:`CifarResNet`.

    Returns
    -------
    CifarResNet
        The (uninitialised) network.
    """
    return CifarResNet(5, num_classes, in_channels)
