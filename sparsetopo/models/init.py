"""Weight initialisation shared by every model of the zoo.

Conv2d: Kaiming-normal with ``mode="fan_out"``, ReLU gain (as torchvision's ResNet), i.e.
``W ~ N(0, 2 / fan_out)`` with ``fan_out = C_out * kh * kw`` (torch's definition, which does not
divide by ``groups``). Linear: Kaiming-normal with ``mode="fan_in"``, ReLU gain, i.e.
``W ~ N(0, 2 / in_features)``. Every bias is zero; BatchNorm weight 1 and bias 0.
"""

from __future__ import annotations

from torch import nn


def init_weights(model: nn.Module) -> nn.Module:
    """Initialise ``model`` in place as described in the module docstring; returns it."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.Linear):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
            continue
        else:
            continue
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    return model
