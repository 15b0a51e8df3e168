import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import prune as torch_prune
from torch.utils.data import DataLoader, TensorDataset

from sparsetopo.training import TrainConfig, evaluate, scale_milestones, train


class SmallNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 6 * 6, 3)
        self.head = nn.Linear(3, 3)  # left unpruned

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        return self.head(F.relu(self.fc(x.flatten(1))))


def toy_loaders(seed: int = 0, n: int = 96):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 6, 6, generator=g)
    y = (x[:, 0, :3].sum(dim=(1, 2)) > 0).long() + (x[:, 0, 3:].sum(dim=(1, 2)) > 0).long()
    ds = TensorDataset(x, y)
    train_loader = DataLoader(ds, batch_size=16, shuffle=True,
                              generator=torch.Generator().manual_seed(seed))
    return train_loader, DataLoader(ds, batch_size=32)


def pruned_net(seed: int = 0) -> SmallNet:
    torch.manual_seed(seed)
    net = SmallNet()
    g = torch.Generator().manual_seed(seed + 1)
    for module in (net.conv, net.fc):
        mask = (torch.rand(module.weight.shape, generator=g) < 0.3).float()
        torch_prune.custom_from_mask(module, "weight", mask)
    return net


def test_paper_defaults():
    c = TrainConfig.paper_defaults("resnet20", "cifar10")
    assert (c.epochs, c.milestones, c.weight_decay, c.lr, c.momentum, c.batch_size, c.gamma) == (
        160, (80, 120), 1e-4, 0.1, 0.9, 128, 0.1)
    assert TrainConfig.paper_defaults("wrn28_2", "cifar100").weight_decay == 5e-4
    t = TrainConfig.paper_defaults("resnet20", "tinyimagenet")
    assert (t.epochs, t.milestones) == (100, (30, 60, 80))
    assert TrainConfig.paper_defaults("conv6", "cifar10", epochs=16).milestones == (8, 12)
    assert TrainConfig.paper_defaults("conv6", "tinyimagenet", epochs=10).milestones == (3, 6, 8)
    assert TrainConfig.paper_defaults("conv6", "cifar10", epochs=4, lr=0.05).lr == 0.05


def test_scale_milestones():
    assert scale_milestones((80, 120), 160, 40) == (20, 30)
    assert scale_milestones((80, 120), 160, 3) == (2,)  # 1.5 -> 2, 2.25 -> 2: merged
    assert scale_milestones((80, 120), 160, 1) == ()  # nothing inside 1..0


@pytest.mark.parametrize(
    "kwargs, word",
    [({"epochs": 0}, "epochs"), ({"lr": -1.0}, "lr"), ({"batch_size": 0}, "batch_size"),
     ({"milestones": (5, 3)}, "milestones"), ({"momentum": 1.5}, "momentum")],
)
def test_invalid_config(kwargs, word):
    with pytest.raises(ValueError, match=word):
        TrainConfig(**kwargs)


def test_masks_stay_fixed_and_training_changes_weights():
    net = pruned_net()
    masks = {n: m.weight_mask.clone() for n, m in (("conv", net.conv), ("fc", net.fc))}
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    train_loader, test_loader = toy_loaders()
    config = TrainConfig(epochs=3, lr=0.1, milestones=(2,), weight_decay=1e-3, augment=False)
    train(net, train_loader, test_loader, config, device="cpu", progress=False)
    net.eval()
    net(torch.zeros(1, 1, 6, 6))  # refresh the pre-hook's effective weight
    for name, module in (("conv", net.conv), ("fc", net.fc)):
        assert torch.equal(module.weight_mask, masks[name])
        masked = masks[name] == 0
        assert torch.count_nonzero(module.weight[masked]) == 0
        assert torch.count_nonzero((module.weight_orig * module.weight_mask)[masked]) == 0
        present = ~masked
        assert not torch.allclose(module.weight_orig[present], before[f"{name}.weight_orig"][present])
    assert not torch.allclose(net.head.weight, before["head.weight"])  # unpruned layer trained


def test_deterministic_under_seed():
    net, twin = pruned_net(), pruned_net()
    config = TrainConfig(epochs=2, lr=0.05, milestones=(1,), augment=False)
    r1 = train(net, *toy_loaders(), config, device="cpu", seed=3, progress=False)
    r2 = train(twin, *toy_loaders(), config, device="cpu", seed=3, progress=False)
    assert r1.train_loss_history == r2.train_loss_history
    assert r1.test_accuracy == r2.test_accuracy
    assert len(r1.train_loss_history) == 2 and r1.seconds > 0
    for p, q in zip(net.parameters(), twin.parameters(), strict=True):
        assert torch.equal(p, q)


def test_matches_naive_masked_sgd_with_step_schedule():
    """Oracle: PyTorch's SGD rule written out by hand (v = mu v + g + wd w; w -= lr v), with
    lr dropping by gamma after each milestone epoch and the loss on w * mask."""
    torch.manual_seed(0)
    x = torch.randn(20, 5)
    y = torch.randint(0, 3, (20,))
    loader = DataLoader(TensorDataset(x, y), batch_size=20)
    lin = nn.Linear(5, 3, bias=False)
    mask = (torch.rand(3, 5) < 0.5).float()
    w = lin.weight.detach().clone()
    torch_prune.custom_from_mask(lin, "weight", mask)
    config = TrainConfig(epochs=4, lr=0.3, momentum=0.9, weight_decay=0.01, milestones=(1, 3),
                         gamma=0.5, augment=False)
    train(lin, loader, loader, config, device="cpu", progress=False)

    v = torch.zeros_like(w)
    for epoch, lr in enumerate([0.3, 0.15, 0.15, 0.075]):
        wr = w.clone().requires_grad_(True)
        F.cross_entropy(x @ (wr * mask).T, y).backward()
        d = wr.grad + 0.01 * w
        v = d if epoch == 0 else 0.9 * v + d
        w = w - lr * v
    torch.testing.assert_close(lin.weight_orig.detach(), w, rtol=1e-5, atol=1e-6)


def test_evaluate_counts_argmax_hits():
    class Fixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.dummy = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return x  # the inputs are the logits

    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0], [0.1, 0.2], [1.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 0, 0])
    loader = DataLoader(TensorDataset(logits, labels), batch_size=2)
    assert evaluate(Fixed(), loader, "cpu") == pytest.approx(3 / 5)


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("amp, channels_last", [(True, False), (True, True), (False, True)])
def test_amp_and_channels_last_keep_masks_exactly_fixed(device, amp, channels_last):
    """bfloat16 autocast and NHWC change how the forward is computed, never which weights are
    zero: the effective weight is exactly 0 wherever the mask is, on CPU and on a GPU."""
    net = pruned_net()
    masks = {n: m.weight_mask.clone() for n, m in (("conv", net.conv), ("fc", net.fc))}
    before = net.fc.weight_orig.detach().clone()
    config = TrainConfig(epochs=2, lr=0.1, milestones=(1,), weight_decay=1e-3, augment=False,
                         amp=amp, channels_last=channels_last)
    result = train(net, *toy_loaders(), config, device=device, progress=False)
    assert 0 <= result.test_accuracy <= 1 and all(math.isfinite(v)
                                                  for v in result.train_loss_history)
    net.eval()
    with torch.no_grad():
        net(torch.zeros(1, 1, 6, 6, device=device))  # refresh the pre-hook's effective weight
    for name, module in (("conv", net.conv), ("fc", net.fc)):
        assert torch.equal(module.weight_mask.cpu(), masks[name])
        masked = masks[name].to(device) == 0
        assert torch.count_nonzero(module.weight[masked]) == 0
        assert torch.count_nonzero((module.weight_orig * module.weight_mask)[masked]) == 0
    assert not torch.allclose(net.fc.weight_orig.detach().cpu(), before)  # it did train
    if channels_last:
        assert net.conv.weight_orig.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("device", DEVICES)
def test_train_reports_device_and_throughput(device):
    net = pruned_net()
    config = TrainConfig(epochs=2, milestones=(1,), augment=False)
    result = train(net, *toy_loaders(n=96), config, device=device, progress=False)
    assert result.images == 2 * 96
    assert 0 < result.train_seconds <= result.seconds
    assert result.images_per_second == pytest.approx(result.images / result.train_seconds)
    if device == "cpu":
        assert result.device == "cpu" and result.peak_memory_mb is None
        assert result.device_name is None
    else:
        assert result.device.startswith("cuda:") and result.peak_memory_mb > 0
        assert result.device_name


def test_amp_and_channels_last_options():
    plain = TrainConfig().to_dict()
    assert set(plain) == {"epochs", "lr", "momentum", "weight_decay", "batch_size",
                          "milestones", "gamma", "augment"}  # unchanged: old run ids hold
    on = TrainConfig(amp=True, channels_last=True).to_dict()
    assert on["amp"] is True and on["channels_last"] is True
    assert TrainConfig(**{**on, "milestones": tuple(on["milestones"])}) == TrainConfig(
        amp=True, channels_last=True)
    with pytest.raises(ValueError, match="amp must be true or false"):
        TrainConfig(amp=1)
