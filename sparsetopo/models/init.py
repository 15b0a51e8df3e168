"""Weight initialisation shared by every model of the zoo (``docs/networks.md``)."""

from __future__ import annotations

from torch import nn


def init_weights(model: nn.Module) -> nn.Module:
    r"""Initialise the conv, linear and BatchNorm layers of ``model`` in place.

    Conv2d: Kaiming-normal with ``mode="fan_out"`` and ReLU gain (as torchvision's ResNet),
    i.e. :math:`W \sim \mathcal{N}(0, 2 / \mathrm{fan\_out})` with
    :math:`\mathrm{fan\_out} = C_{out} k_h k_w` (torch's definition, which does not divide by
    ``groups``). Linear: Kaiming-normal with ``mode="fan_in"`` and ReLU gain, i.e.
    :math:`W \sim \mathcal{N}(0, 2 / \mathrm{in\_features})`. Every bias of these layers is
    zero; BatchNorm (1-d and 2-d) weights are 1 and biases 0. Other modules are left as they
    are. The draws come from torch's global generator.

    Parameters
    ----------
    model : torch.nn.Module
        The network to initialise.

    Returns
    -------
    torch.nn.Module
        ``model`` itself.

    References
    ----------
    .. [1] K. He, X. Zhang, S. Ren, J. Sun. "Delving Deep into Rectifiers: Surpassing
       Human-Level Performance on ImageNet Classification." ICCV 2015.
    .. [2] K. He, X. Zhang, S. Ren, J. Sun. "Deep Residual Learning for Image Recognition."
       CVPR 2016.
    """
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
