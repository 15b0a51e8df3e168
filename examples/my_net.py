"""A user's own network for ``sparsetopo analyze --model examples/my_net.py:make``: a small
CNN with a functional residual add (identity shortcut) and a stride-2 convolution."""

import torch
import torch.nn.functional as F
from torch import nn


class MyNet(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.body = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.down = nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False)
        self.head = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        x = F.relu(self.body(x)) + x  # identity shortcut
        x = F.relu(self.down(x))
        return self.head(x.mean(dim=(2, 3)))


def make() -> nn.Module:
    return MyNet()
