"""Model zoo: names, parameter counts (published numbers), shapes, init, fx-traceability."""

from __future__ import annotations

import math
from functools import cache

import pytest
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from sparsetopo import models

IMAGENET = ("resnet18", "resnet50")
ALL = ("conv6", "resnet20", "resnet32", "wrn28_2", "mobilenetv2", "mlp", "resnet18", "resnet50")

# Published parameter counts (He et al. 2016; Zagoruyko & Komodakis 2016; Sandler et al. 2018;
# Frankle & Carbin 2019; torchvision for the ImageNet ResNets).
PUBLISHED = {
    "conv6": 2.26e6,
    "resnet20": 0.27e6,
    "resnet32": 0.46e6,
    "wrn28_2": 1.47e6,
    "mobilenetv2": 2.24e6,
    "resnet18": 11.7e6,
    "resnet50": 25.6e6,
}


@cache
def built(name: str, num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """Shared read-only instances (eval mode) for tests that do not modify the model."""
    return models.create(name, num_classes=num_classes, in_channels=in_channels).eval()


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_names():
    assert models.names() == list(ALL)


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown model 'resnet21'.*resnet20.*mobilenetv2"):
        models.create("resnet21")


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        models.create("resnet20", num_classes=0)
    with pytest.raises(ValueError, match="no option depth.*none"):
        models.create("resnet20", depth=3)
    with pytest.raises(ValueError, match="options: input_size, hidden"):
        models.create("mlp", width=3)


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_parameter_count_matches_publication(name):
    classes = 1000 if name in IMAGENET else 10
    count = n_params(built(name, num_classes=classes))
    assert abs(count / PUBLISHED[name] - 1) < 0.02, count


def test_exact_parameter_counts_by_hand():
    # ResNet-20, option B: 19 3x3 convs, 2 projection shortcuts, BN affine, fc.
    convs = 3 * 16 * 9 + 6 * 16 * 16 * 9 + (16 * 32 + 5 * 32 * 32) * 9 + (32 * 64 + 5 * 64 * 64) * 9
    shortcuts = 16 * 32 + 32 * 64
    bn = 2 * (16 + 6 * 16 + 6 * 32 + 6 * 64) + 2 * (32 + 64)
    assert n_params(models.create("resnet20")) == convs + shortcuts + bn + 64 * 10 + 10
    # Conv-6: convs without bias + BN, then 4096-256-256-10 with biases.
    conv = 9 * (3 * 64 + 64 * 64 + 64 * 128 + 128 * 128 + 128 * 256 + 256 * 256)
    bn = 2 * (64 + 64 + 128 + 128 + 256 + 256)
    fc = 4096 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10
    assert n_params(models.create("conv6")) == conv + bn + fc
    # MLP default: 3072-128-64-10.
    assert n_params(models.create("mlp")) == 3072 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10


def _layers(model, kind, kernel=None):
    return [
        (n, m)
        for n, m in model.named_modules()
        if isinstance(m, kind) and (kernel is None or m.kernel_size == (kernel, kernel))
    ]


def test_layer_structure():
    r20, r32 = models.create("resnet20"), models.create("resnet32")
    assert (len(_layers(r20, nn.Conv2d, 3)), len(_layers(r20, nn.Conv2d, 1))) == (19, 2)
    assert (len(_layers(r32, nn.Conv2d, 3)), len(_layers(r32, nn.Conv2d, 1))) == (31, 2)
    wrn = models.create("wrn28_2")
    assert (len(_layers(wrn, nn.Conv2d, 3)), len(_layers(wrn, nn.Conv2d, 1))) == (25, 3)
    assert sorted({m.out_channels for _, m in _layers(wrn, nn.Conv2d)}) == [16, 32, 64, 128]
    conv6 = models.create("conv6")
    assert [m.out_features for _, m in _layers(conv6, nn.Linear)] == [256, 256, 10]
    assert _layers(conv6, nn.Linear)[0][1].in_features == 4096
    mb = models.create("mobilenetv2")
    depthwise = [m for _, m in _layers(mb, nn.Conv2d) if m.groups > 1]
    assert len(depthwise) == 17 and all(m.groups == m.in_channels for m in depthwise)
    assert len([n for n, _ in mb.named_modules() if n.endswith("shortcut.0")]) == 0
    mbc = models.create("mobilenetv2", conv_shortcuts=True)
    assert len([n for n, _ in mbc.named_modules() if n.endswith("shortcut.0")]) == 4
    assert n_params(mbc) - n_params(mb) == sum(
        a * b + 2 * b for a, b in ((32, 16), (16, 24), (64, 96), (160, 320))
    )
    mlp = models.create("mlp", in_channels=1, input_size=8, hidden=(20, 30, 40))
    assert [(m.in_features, m.out_features) for _, m in _layers(mlp, nn.Linear)] == [
        (64, 20), (20, 30), (30, 40), (40, 10)
    ]  # fmt: skip


def _input_size(name):
    return 64 if name in IMAGENET else 32


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("in_channels", [1, 3])
def test_forward_shape(name, in_channels):
    model = built(name, 7, in_channels)
    s = _input_size(name)
    with torch.no_grad():
        out = model(torch.randn(2, in_channels, s, s))
    assert out.shape == (2, 7) and torch.isfinite(out).all()


def test_imagenet_resnet_at_224():
    model = models.create("resnet18", num_classes=1000).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 224, 224)).shape == (1, 1000)


def _activation_shapes(name, in_channels=3):
    model = built(name, 10, in_channels)
    gm = fx.symbolic_trace(model)
    x = torch.randn(2, in_channels, 32, 32)
    ShapeProp(gm).propagate(x)
    return model, gm, x


@pytest.mark.parametrize("name", ALL)
def test_fx_trace_with_shape_propagation(name):
    model, gm, x = _activation_shapes(name)
    with torch.no_grad():
        torch.testing.assert_close(gm(x), model(x))
    ops = {n.op for n in gm.graph.nodes}
    assert ops <= {"placeholder", "call_module", "call_function", "call_method", "output"}
    assert all("tensor_meta" in n.meta for n in gm.graph.nodes if n.op != "output")


def test_spatial_sizes():
    _, gm, _ = _activation_shapes("mobilenetv2")
    shapes = {n.target: tuple(n.meta["tensor_meta"].shape) for n in gm.graph.nodes if n.op == "call_module"}
    assert shapes["head.0"] == (2, 1280, 4, 4)
    _, gm, _ = _activation_shapes("resnet20")
    shapes = {n.target: tuple(n.meta["tensor_meta"].shape) for n in gm.graph.nodes if n.op == "call_module"}
    assert shapes["layer3.2.conv2"] == (2, 64, 8, 8)


@pytest.mark.parametrize("name", ["resnet20", "wrn28_2", "resnet50", "mobilenetv2"])
def test_shortcut_conv_feeds_add_through_batchnorm_only(name):
    kwargs = {"conv_shortcuts": True} if name == "mobilenetv2" else {}
    gm = fx.symbolic_trace(models.create(name, **kwargs) if kwargs else built(name))
    mods = dict(gm.named_modules())
    shortcut_convs = [
        n for n in gm.graph.nodes
        if n.op == "call_module" and "shortcut" in n.target and isinstance(mods[n.target], nn.Conv2d)
    ]  # fmt: skip
    assert shortcut_convs
    for node in shortcut_convs:
        users = list(node.users)
        if isinstance(mods.get(users[0].target), nn.BatchNorm2d):
            users = list(users[0].users)
        assert len(users) == 1 and users[0].op == "call_function" and "add" in str(users[0].target)


def _bn_eval(x, bn):
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)


def _randomise_bn(model):
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=g))
            m.bias.data.copy_(torch.randn(m.num_features, generator=g))


def test_resnet_block_matches_functional_formula():
    model = models.create("resnet20").eval()
    _randomise_bn(model)
    block = model.layer2[0]  # 16 -> 32, stride 2, projection shortcut
    x = torch.randn(2, 16, 8, 8)
    main = F.relu(_bn_eval(F.conv2d(x, block.conv1.weight, stride=2, padding=1), block.bn1))
    main = _bn_eval(F.conv2d(main, block.conv2.weight, padding=1), block.bn2)
    skip = _bn_eval(F.conv2d(x, block.shortcut[0].weight, stride=2), block.shortcut[1])
    with torch.no_grad():
        torch.testing.assert_close(block(x), F.relu(main + skip))
        identity = model.layer2[1]
        y = torch.randn(2, 32, 4, 4)
        main = F.relu(_bn_eval(F.conv2d(y, identity.conv1.weight, padding=1), identity.bn1))
        main = _bn_eval(F.conv2d(main, identity.conv2.weight, padding=1), identity.bn2)
        torch.testing.assert_close(identity(y), F.relu(main + y))


def test_wrn_block_is_preactivation():
    model = models.create("wrn28_2").eval()
    _randomise_bn(model)
    block = model.block2[0]  # 32 -> 64, stride 2, 1x1 conv shortcut on the pre-activation
    x = torch.randn(2, 32, 8, 8)
    a = F.relu(_bn_eval(x, block.bn1))
    main = F.relu(_bn_eval(F.conv2d(a, block.conv1.weight, stride=2, padding=1), block.bn2))
    main = F.conv2d(main, block.conv2.weight, padding=1)
    with torch.no_grad():
        torch.testing.assert_close(block(x), main + F.conv2d(a, block.shortcut.weight, stride=2))
        same = model.block2[1]
        y = torch.randn(2, 64, 4, 4)
        a = F.relu(_bn_eval(y, same.bn1))
        main = F.relu(_bn_eval(F.conv2d(a, same.conv1.weight, padding=1), same.bn2))
        torch.testing.assert_close(same(y), F.conv2d(main, same.conv2.weight, padding=1) + y)


def test_kaiming_normal_init():
    model = models.create("conv6", seed=0)
    big_conv = model.features[17]  # 256 -> 256, 3x3
    assert tuple(big_conv.weight.shape) == (256, 256, 3, 3)
    fan_out = 256 * 9
    assert abs(big_conv.weight.std().item() / math.sqrt(2 / fan_out) - 1) < 0.01
    assert abs(big_conv.weight.mean().item()) < 0.01 * math.sqrt(2 / fan_out)
    fc = model.classifier[0]  # 4096 -> 256
    assert abs(fc.weight.std().item() / math.sqrt(2 / 4096) - 1) < 0.01
    for name in ALL:
        for m in built(name).modules():
            if isinstance(m, nn.Conv2d | nn.Linear) and m.bias is not None:
                assert torch.count_nonzero(m.bias) == 0
            if isinstance(m, nn.BatchNorm2d):
                assert torch.all(m.weight == 1) and torch.all(m.bias == 0)


def test_seed_is_reproducible_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = models.create("resnet20", seed=5)
    after = torch.rand(1)
    b = models.create("resnet20", seed=5)
    c = models.create("resnet20", seed=6)
    assert torch.equal(before, after)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert not torch.equal(a.conv1.weight, c.conv1.weight)
