"""Dynamic sparse training: the invariants every method keeps, against independent oracles.

- the number of present weights is exactly ``round((1 - s) * total)`` after every update;
- masks stay in ``torch.nn.utils.prune`` form; pruned weights are exactly 0 in every forward
  pass, and an optimizer step changes neither ``weight_orig`` nor its momentum where the mask
  is 0 ("no update": both are held at 0 there);
- momentum of dropped and grown weights as each paper says (0; SNFS: the dense-gradient
  momentum, itself checked against torch's own SGD buffer);
- RigL grows the top-|dense gradient| positions of a plain dense forward/backward;
- SET's and DSR's random growth is uniform over the eligible positions (chi-square);
- deterministic on CPU; on a GPU the masks are updated there.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn
from torch.nn.utils import prune as torch_prune
from torch.optim.optimizer import register_optimizer_step_post_hook
from torch.utils.data import DataLoader, TensorDataset

from sparsetopo import pruning, training
from sparsetopo.pruning.masks import prunable_layers
from sparsetopo.training import (
    DST_METHODS,
    UPDATERS,
    DSTConfig,
    DynamicSparsity,
    MaskUpdater,
    TrainConfig,
    category,
    methods_by_category,
    sparse_init,
    train,
)
from sparsetopo.training.dst import resolve
from sparsetopo.training.dst._base import allocate, select, select_random
from sparsetopo.training.dst.config import drop_fraction_at, update_steps

SHAPE = (1, 6, 6)


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        x = F.relu(self.bn(self.conv1(x)))
        return self.fc(F.relu(self.conv2(x)).flatten(1))


def tiny(seed: int = 0) -> Tiny:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Tiny()


def loaders(seed: int = 0, n: int = 96, batch: int = 16):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *SHAPE, generator=g)
    y = (x[:, 0, :3].sum(dim=(1, 2)) > 0).long() + (x[:, 0, 3:].sum(dim=(1, 2)) > 0).long()
    data = TensorDataset(x, y)
    return (DataLoader(data, batch_size=batch, shuffle=True,
                       generator=torch.Generator().manual_seed(seed)),
            DataLoader(data, batch_size=48))


def config(epochs: int = 4) -> TrainConfig:
    return TrainConfig(epochs=epochs, lr=0.1, milestones=(), weight_decay=1e-3, augment=False)


FREQUENT = DSTConfig(update_interval=0.04, update_end=1.0)  # an update after every step


def frequent(method: str) -> DSTConfig:
    """Every step an update (DSR: a threshold that prunes something each time)."""
    if method == "dsr":
        return DSTConfig(update_interval=0.04, update_end=1.0, dsr_threshold=0.05,
                         dsr_interval_doubling=())
    return FREQUENT


def masks_of(model) -> dict[str, torch.Tensor]:
    return {n: m.weight_mask.detach().bool().clone() for n, m in prunable_layers(model)}


# ------------------------------------------------------------------ names and categories
def test_registry_and_categories():
    assert tuple(UPDATERS) == DST_METHODS == ("set", "rigl", "snfs", "dsr", "itop")
    assert methods_by_category() == {
        "pai-data-free": ("uniform", "er", "erk", "synflow", "magnitude"),
        "pai-data": ("snip", "grasp", "prospr"),
        "dst": ("set", "rigl", "snfs", "dsr", "itop"),
    }
    assert [category(m) for m in ("uniform", "snip", "rigl", "synflow", "prospr", "dsr")] == [
        "pai-data-free", "pai-data", "dst", "pai-data-free", "pai-data", "dst"]
    assert category("snip+layer-shuffle") == "pai-data"  # a control has its method's category
    with pytest.raises(ValueError, match="unknown method 'lottery'"):
        category("lottery")
    for method, cls in UPDATERS.items():
        assert cls.name == method and set(cls.DEFAULTS) == set(cls.FIELDS)


def test_config_validation_and_resolution():
    for bad, word in [({"drop_fraction": 1.5}, "drop_fraction"),
                      ({"update_interval": 0.0}, "update_interval"),
                      ({"drop_decay": "linear"}, "drop_decay"),
                      ({"init_density": "snip"}, "init_density"),
                      ({"reset_momentum": 1}, "reset_momentum"),
                      ({"dsr_interval_doubling": (0.5, 0.2)}, "dsr_interval_doubling"),
                      ({"drop_fraction": 0.2, "drop_fraction_min": 0.3}, "drop_fraction_min")]:
        with pytest.raises(ValueError, match=word):
            DSTConfig(**bad)
    rigl = resolve("rigl", DSTConfig(update_interval=0.05, dsr_threshold=0.3))
    assert rigl.update_interval == 0.05 and rigl.drop_fraction == 0.3
    assert rigl.update_end == 0.75 and rigl.init_density == "erk" and rigl.grow_init == "zeros"
    assert rigl.dsr_threshold is None  # not a RigL parameter
    assert resolve("itop").drop_fraction == 0.5 and resolve("itop").update_interval == 0.04
    assert resolve("snfs").reset_momentum is False and resolve("set").init_density == "er"
    assert DSTConfig.from_dict(resolve("dsr").to_dict()) == resolve("dsr")


def test_drop_fraction_schedules_match_their_references():
    total = 400
    rigl = resolve("rigl")
    end = math.floor(0.75 * total)
    for t in (0, 1, 50, 150, 299, 300, 350):  # TF cosine_decay(0.3, t, end), alpha 0
        expected = 0.3 * 0.5 * (1 + math.cos(math.pi * min(t, end) / end))
        assert drop_fraction_at(rigl, t, total) == pytest.approx(expected, abs=1e-12)
    # SNFS and ITOP: the authors' torch CosineAnnealingLR(T_max=total, eta_min=0.005)
    for method in ("snfs", "itop"):
        cfg = resolve(method)
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total, eta_min=0.005)
        for t in range(1, total + 1):
            opt.step()
            sched.step()
            if t % 37 == 0 or t == total:
                assert drop_fraction_at(cfg, t, total) == pytest.approx(
                    opt.param_groups[0]["lr"], abs=1e-9)
    assert drop_fraction_at(resolve("set"), 123, total) == 0.3  # constant


def test_update_steps_are_fractions_of_training():
    assert update_steps(1000, 0.1, 1.0) == [100, 200, 300, 400, 500, 600, 700, 800, 900]
    assert update_steps(1000, 0.1, 0.75) == [100, 200, 300, 400, 500, 600, 700]
    assert update_steps(1000, 0.1, 0.75, at_start=True) == [1, 101, 201, 301, 401, 501, 601, 701]
    assert update_steps(10, 0.001, 1.0) == list(range(1, 10))  # at least one step apart
    assert update_steps(1000, 0.05, 1.0, doubling=(0.3, 0.6)) == [
        50, 100, 150, 200, 250, 300, 400, 500, 600, 800]
    # twice the epochs: twice the steps between updates, the same number of updates
    assert len(update_steps(2000, 0.1, 1.0)) == len(update_steps(1000, 0.1, 1.0))


def test_allocate_and_select():
    counts = allocate(10, [3.0, 1.0, 0.0], [100, 100, 100])
    assert counts == [8, 2, 0] or counts == [7, 3, 0]
    assert sum(allocate(17, [1, 1, 1], [2, 100, 100])) == 17
    assert allocate(17, [1, 1, 1], [2, 100, 100])[0] == 2
    assert allocate(5, [0, 0], [1, 10]) == [0, 5] or sum(allocate(5, [0, 0], [1, 10])) == 5
    with pytest.raises(ValueError):
        allocate(5, [1, 1], [2, 2])
    g = torch.Generator().manual_seed(0)
    scores = torch.tensor([5.0, 1.0, 3.0, 4.0, 2.0, 0.5])
    eligible = torch.tensor([True, True, True, False, True, True])
    assert select(scores, eligible, 2, g, largest=True).tolist() == [
        True, False, True, False, False, False]
    assert select(scores, eligible, 2, g, largest=False).tolist() == [
        False, True, False, False, False, True]
    tied = torch.zeros(1000)  # all tied: a uniform draw, never an ineligible position
    picks = torch.stack([select(tied, eligible.repeat(1000 // 6 + 1)[:1000], 10, g, True)
                         for _ in range(20)])
    assert (picks.sum(dim=1) == 10).all() and picks.sum(dim=0).bool().sum() > 50


# ------------------------------------------------------------------ invariants in training
def _buffer(optimizer, param):
    state = optimizer.state.get(param)
    return None if not state else state.get("momentum_buffer")


@pytest.mark.parametrize("method", DST_METHODS)
def test_invariants_hold_at_every_step_and_update(method, monkeypatch):
    net = tiny(0)
    sparse_init(net, method, 0.7, seed=0)
    layers = dict(prunable_layers(net))
    total = sum(m.weight_mask.numel() for m in layers.values())
    target = round(0.3 * total)
    assert sum(int(m.weight_mask.sum()) for m in layers.values()) == target
    problems: list[str] = []

    def forward_check(module, inputs, output):  # every forward: absent weights are 0
        if (module.weight[module.weight_mask == 0] != 0).any():
            problems.append("nonzero effective weight where the mask is 0")

    handles = [m.register_forward_hook(forward_check) for m in layers.values()]

    def step_check(optimizer, args, kwargs):  # every step: no update where the mask is 0
        for name, m in layers.items():
            absent = m.weight_mask == 0
            if (m.weight_orig.detach()[absent] != 0).any():
                problems.append(f"{name}: weight_orig moved where the mask is 0")
            buf = _buffer(optimizer, m.weight_orig)
            if buf is not None and (buf[absent] != 0).any():
                problems.append(f"{name}: momentum where the mask is 0")

    handles.append(register_optimizer_step_post_hook(step_check))
    original = MaskUpdater.update
    seen = {"updates": 0}

    def checked(self, step):
        before = {layer.name: (layer.present.clone(), layer.weight.detach().clone(),
                               None if (b := self.momentum_buffer(layer)) is None else b.clone())
                  for layer in self.layers}
        if method == "snfs":  # dense momentum == torch's own SGD buffer wherever present
            for layer in self.layers:
                buf = self.momentum_buffer(layer)
                if buf is not None and not torch.equal(buf[layer.present],
                                                       self.dense_momentum[layer.name][
                                                           layer.present]):
                    problems.append("SNFS dense momentum differs from the SGD buffer")
        original(self, step)
        seen["updates"] += 1
        if sum(int(layer.mask.sum()) for layer in self.layers) != target:
            problems.append(f"count drifted at step {step}")
        for layer in self.layers:
            old, w_old, b_old = before[layer.name]
            new = layer.present
            born, gone, same = new & ~old, old & ~new, old & new
            module = layer.module
            if not (torch_prune.is_pruned(module) and module.weight_mask.dtype == torch.float32
                    and hasattr(module, "weight_orig")):
                problems.append("mask not in prune form")
            w = layer.weight.detach()
            if (w[born] != 0).any() or (w[gone] != 0).any() or not torch.equal(w[same],
                                                                              w_old[same]):
                problems.append(f"{layer.name}: weights of grown/dropped/kept wrong")
            if method in ("set", "rigl", "itop") and int(new.sum()) != int(old.sum()):
                problems.append(f"{layer.name}: layer count changed")
            buf = self.momentum_buffer(layer)
            if buf is None:
                continue
            if (buf[gone] != 0).any() or not torch.equal(buf[same], b_old[same]):
                problems.append(f"{layer.name}: momentum of dropped/kept weights wrong")
            if method == "snfs":
                if not torch.equal(buf[born], self.dense_momentum[layer.name][born]):
                    problems.append("SNFS grown weights lost their dense momentum")
            elif (buf[born] != 0).any():
                problems.append(f"{layer.name}: grown weights kept momentum")

    monkeypatch.setattr(MaskUpdater, "update", checked)
    train_loader, test_loader = loaders()
    try:
        result = train(net, train_loader, test_loader, config(), device="cpu", progress=False,
                       dst=DynamicSparsity(method, frequent(method), SHAPE))
    finally:
        for h in handles:
            h.remove()
    assert not problems, sorted(set(problems))
    assert seen["updates"] == result.mask_updates >= 15
    trajectory = result.trajectory
    assert len(trajectory) == result.mask_updates + 1 and trajectory[0]["step"] == 0
    assert all(r["present"] == target for r in trajectory)
    assert trajectory[-1]["exploration_rate"] > 0.3 + 0.02  # the mask did move
    assert trajectory[-1]["initial_mask_kept"] < 1.0
    assert {"effective_density", "alive_edges", "log10_paths"} <= set(trajectory[-1])
    assert set(trajectory[-1]["density"]) == set(layers)
    ever = trajectory[-1]["exploration_rate"]
    assert all(a["exploration_rate"] <= b["exploration_rate"]
               for a, b in zip(trajectory, trajectory[1:], strict=False)) and ever <= 1
    assert not any(h for h in net.conv1._forward_pre_hooks.values()
                   if getattr(h, "__qualname__", "").startswith("MaskUpdater"))
    assert len(net.conv1._forward_pre_hooks) == 1  # only the prune hook is left


def test_grow_init_initial_gives_grown_weights_their_initial_value(monkeypatch):
    net = tiny(3)
    sparse_init(net, "set", 0.7, seed=3)
    initial = {n: m.weight_orig.detach().clone() for n, m in prunable_layers(net)}
    original, grown_ok = MaskUpdater.update, []

    def checked(self, step):
        old = {layer.name: layer.present.clone() for layer in self.layers}
        original(self, step)
        for layer in self.layers:
            born = layer.present & ~old[layer.name]
            grown_ok.append(torch.equal(layer.weight.detach()[born], initial[layer.name][born]))

    monkeypatch.setattr(MaskUpdater, "update", checked)
    train_loader, test_loader = loaders(3)
    train(net, train_loader, test_loader, config(2), device="cpu", progress=False,
          dst=DynamicSparsity("set", DSTConfig(update_interval=0.1, grow_init="initial")))
    assert grown_ok and all(grown_ok)


def test_redistribution_moves_weights_between_layers_only_when_asked():
    densities = {}
    for mode in ("momentum", "none"):
        net = tiny(4)
        sparse_init(net, "snfs", 0.7, seed=4)
        start = {n: int(m.weight_mask.sum()) for n, m in prunable_layers(net)}
        train_loader, test_loader = loaders(4)
        train(net, train_loader, test_loader, config(3), device="cpu", progress=False,
              dst=DynamicSparsity("snfs", DSTConfig(update_interval=0.1, redistribution=mode)))
        densities[mode] = {n: int(m.weight_mask.sum()) for n, m in prunable_layers(net)}
        assert sum(densities[mode].values()) == sum(start.values())
    assert densities["none"] == start
    assert densities["momentum"] != start


def test_dsr_threshold_adapts_to_the_prune_target():
    net = tiny(5)
    sparse_init(net, "dsr", 0.5, seed=5)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    cfg = resolve("dsr", DSTConfig(dsr_threshold=10.0, dsr_prune_target=0.05))
    updater = UPDATERS["dsr"](net, opt, cfg, 100, 10, seed=0)
    present = updater.target
    updater.update(1)  # prunes (nearly) everything below 10: far too many -> halved
    assert updater.threshold == 5.0
    assert updater.trajectory[-1]["dropped"] > 1.1 * round(0.05 * present)
    per_layer = [int(layer.mask.sum()) for layer in updater.layers]
    assert min(per_layer) >= 1  # a layer keeps at least one weight
    with torch.no_grad():  # grown weights are 0 and would go first: make every weight large
        for layer in updater.layers:
            layer.weight.copy_(torch.where(layer.present, 1.0, 0.0))
    updater.threshold = 1e-9
    updater.update(2)  # prunes nothing: too few -> doubled
    assert updater.threshold == 2e-9 and updater.trajectory[-1]["dropped"] == 0


# ------------------------------------------------------------------ RigL against an oracle
def test_rigl_grows_the_top_dense_gradient_positions_of_a_plain_backward():
    net, plain = tiny(7), tiny(7)
    sparse_init(net, "rigl", 0.8, seed=7)
    layers = dict(prunable_layers(net))
    masks = {n: m.weight_mask.bool().clone() for n, m in layers.items()}
    weights = {n: (m.weight_orig * m.weight_mask).detach().clone() for n, m in layers.items()}
    g = torch.Generator().manual_seed(11)
    batches = [(torch.randn(16, *SHAPE, generator=g), torch.randint(0, 3, (16,), generator=g))
               for _ in range(2)]
    # the oracle: a plain dense network with the effective weights, one forward/backward
    with torch.no_grad():
        for name, module in prunable_layers(plain):
            module.weight.copy_(weights[name])
    plain.train()
    F.cross_entropy(plain(batches[0][0]), batches[0][1]).backward()
    expected = {}
    for name, module in prunable_layers(plain):
        present, w = masks[name], weights[name]
        k = math.floor(0.3 * int(present.sum()) + 1e-9)  # RigL's drop fraction at step 0
        order = torch.argsort(torch.where(present, w.abs(), torch.inf).reshape(-1))
        kept = torch.zeros(present.numel(), dtype=torch.bool)
        kept[order[k:int(present.sum())]] = True
        grad = torch.where(kept, -1.0, module.weight.grad.abs().reshape(-1))
        top = torch.sort(grad, descending=True).values
        assert top[k - 1] > top[k]  # no tie at the boundary: the oracle is unambiguous
        grown = torch.zeros_like(kept)
        grown[torch.argsort(grad, descending=True)[:k]] = True
        expected[name] = (kept | grown).reshape(present.shape)
        assert k > 0 and int(grown.sum()) == k
    # RigL updates at the first step, before that step's optimizer step; no later update
    result = train(net, batches, [batches[0]], TrainConfig(epochs=1, lr=0.1, milestones=(),
                                                          augment=False), device="cpu",
                   progress=False, dst=DynamicSparsity("rigl", DSTConfig(update_interval=0.5)))
    assert result.mask_updates == 1
    for name, module in prunable_layers(net):
        assert torch.equal(module.weight_mask.bool(), expected[name]), name
        changed = expected[name] & ~masks[name]
        assert changed.any()


# ------------------------------------------------------------------ uniform random growth
def _single_layer(seed: int, density: float):
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 4))
    with torch.no_grad():
        w = torch.randn(4, 16, generator=torch.Generator().manual_seed(seed))
        net[1].weight.copy_(w)
    mask = torch.zeros(64, dtype=torch.bool)
    mask[torch.randperm(64, generator=torch.Generator().manual_seed(seed))[:round(density * 64)]] \
        = True
    torch_prune.custom_from_mask(net[1], "weight", mask.reshape(4, 16).float())
    return net


@pytest.mark.parametrize("method, density", [("set", 0.25), ("dsr", 0.25), ("dsr", 0.6)])
def test_random_growth_is_uniform_over_the_eligible_positions(method, density):
    net = _single_layer(1, density)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    cfg = resolve(method, DSTConfig(dsr_threshold=0.5))
    updater = UPDATERS[method](net, opt, cfg, 100, 10, seed=0)
    layer = updater.layers[0]
    present = layer.present.reshape(-1)
    counts = torch.zeros(64)
    draws = 3000
    drops = set()
    for _ in range(draws):
        updater.threshold = 0.5  # DSR adapts it at every update
        drop, grow, _ = updater.select(5)
        drops.add(tuple(drop[0].reshape(-1).tolist()))
        counts += grow[0].reshape(-1).float()
    assert len(drops) == 1  # the drop is deterministic here (distinct magnitudes)
    drop = torch.tensor(next(iter(drops)))
    eligible = ~present if method == "dsr" else ~(present & ~drop)
    assert counts[~eligible].sum() == 0  # never a kept (or, for DSR, a just-pruned) position
    k = int(drop.sum())
    assert k > 0
    observed = counts[eligible].numpy()
    assert observed.sum() == draws * k
    p = stats.chisquare(observed).pvalue
    assert p > 1e-3, (p, observed)


@pytest.mark.parametrize("n, available, k", [(4000, 3900, 50), (4000, 300, 100)])
def test_select_random_is_uniform_on_both_paths(n, available, k):
    g = torch.Generator().manual_seed(0)
    eligible = torch.zeros(n, dtype=torch.bool)
    eligible[torch.randperm(n, generator=g)[:available]] = True
    counts = torch.zeros(n)
    draws = 400
    for _ in range(draws):
        pick = select_random(eligible, k, g)
        assert int(pick.sum()) == k and not (pick & ~eligible).any()
        counts += pick.float()
    assert stats.chisquare(counts[eligible].numpy()).pvalue > 1e-3


# ------------------------------------------------------------------ determinism, devices
def _run(method: str, seed: int, device: str = "cpu"):
    net = tiny(seed)
    sparse_init(net, method, 0.8, seed=seed)
    train_loader, test_loader = loaders(seed)
    result = train(net, train_loader, test_loader, config(2), device=device, seed=seed,
                   progress=False, dst=DynamicSparsity(method, frequent(method), SHAPE))
    return net, result


@pytest.mark.parametrize("method", DST_METHODS)
def test_deterministic_for_a_seed_on_cpu(method):
    (a, ra), (b, rb) = _run(method, 2), _run(method, 2)
    for (name, ma), (_, mb) in zip(prunable_layers(a), prunable_layers(b), strict=True):
        assert torch.equal(ma.weight_mask, mb.weight_mask), name
        assert torch.equal(ma.weight_orig, mb.weight_orig), name
    strip = [{k: v for k, v in r.items() if k != "record_seconds"} for r in ra.trajectory]
    assert strip == [{k: v for k, v in r.items() if k != "record_seconds"}
                     for r in rb.trajectory]
    assert ra.test_accuracy == rb.test_accuracy
    other, _ = _run(method, 3)
    assert any(not torch.equal(x.weight_mask, y.weight_mask)
               for (_, x), (_, y) in zip(prunable_layers(a), prunable_layers(other), strict=True))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("method", DST_METHODS)
def test_masks_are_updated_on_the_gpu(method, monkeypatch):
    devices = set()
    original = MaskUpdater.update

    def checked(self, step):
        original(self, step)
        devices.update(layer.mask.device.type for layer in self.layers)

    monkeypatch.setattr(MaskUpdater, "update", checked)
    net, result = _run(method, 0, device="cuda")
    assert devices == {"cuda"} and result.mask_updates > 0
    total = sum(m.weight_mask.numel() for _, m in prunable_layers(net))
    assert all(r["present"] == round(0.2 * total) for r in result.trajectory)
    for _, m in prunable_layers(net):
        assert m.weight_mask.is_cuda and (m.weight_orig[m.weight_mask == 0] == 0).all()


@pytest.mark.parametrize("method", DST_METHODS)
def test_extreme_sparsity_keeps_the_count_and_is_recorded(method):
    net = tiny(6)
    sparse_init(net, method, 0.995, seed=6)
    total = sum(m.weight_mask.numel() for _, m in prunable_layers(net))
    train_loader, test_loader = loaders(6)
    result = train(net, train_loader, test_loader, config(2), device="cpu", progress=False,
                   dst=DynamicSparsity(method, frequent(method), SHAPE))
    assert all(r["present"] == round(0.005 * total) for r in result.trajectory)
    assert 0 <= result.test_accuracy <= 1
    assert all(np.isfinite(r["exploration_rate"]) for r in result.trajectory)


def test_dst_needs_a_pruned_model_and_a_known_method():
    net = tiny(0)
    train_loader, test_loader = loaders()
    with pytest.raises(ValueError, match="prune the model first"):
        train(net, train_loader, test_loader, config(1), device="cpu", progress=False,
              dst=DynamicSparsity("rigl"))
    with pytest.raises(ValueError, match="unknown dynamic sparse training method 'snip'"):
        DynamicSparsity("snip")
    pruning.prune(net, "uniform", 0.5, seed=0)
    assert training.is_dst("rigl") and not training.is_dst("snip")
