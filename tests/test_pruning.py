"""Pruning at initialization (SPEC 2.1): exact counts, determinism, errors and scores checked
against independent oracles (manual backprop, explicit Hessians, analytic SynFlow, finite
differences, a root-finder for the ER/ERK scale)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import brentq
from torch import nn
from torch.nn.utils import prune as torch_prune

from sparsetopo.pruning import METHODS, count_weights, layer_densities, prunable_layers, prune
from sparsetopo.pruning import scores as sc
from sparsetopo.pruning.density import allocate_counts, target_densities


def tiny_conv() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 10),
    )  # 432 + 4608 + 320 = 5360 prunable weights


def conv_data(n_batches: int = 4, batch: int = 16) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [
        (torch.randn(batch, 3, 8, 8, generator=g), torch.randint(0, 10, (batch,), generator=g))
        for _ in range(n_batches)
    ]


def mlp(sizes: list[int], act: type[nn.Module] | None = nn.Tanh, bias: bool = True) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b, bias=bias))
        if act is not None and i < len(sizes) - 2:
            layers.append(act())
    net = nn.Sequential(*layers).double()
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Linear) and bias:
                m.bias.normal_(0, 0.5)
    return net


def weights_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{n}.weight": m.weight.detach().clone() for n, m in prunable_layers(model)}


# --------------------------------------------------------------------------- exact counts


@pytest.mark.parametrize("method", METHODS)
def test_exact_count_masks_applied_model_untouched(method):
    data = conv_data()
    for sparsity in (0.0, 0.3, 0.9, 0.999):
        model = tiny_conv()
        model.eval() if sparsity in (0.3, 0.999) else model.train()
        modes = [m.training for m in model.modules()]
        before = weights_of(model)
        buffers = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
        total = sum(w.numel() for w in before.values())

        masks = prune(model, method, sparsity, data=data, seed=0, input_shape=(3, 8, 8))

        assert list(masks) == list(before)
        for key, mask in masks.items():
            assert mask.dtype == torch.bool and mask.shape == before[key].shape
        kept = sum(int(m.sum()) for m in masks.values())
        assert kept == round((1 - sparsity) * total), (method, sparsity)
        assert count_weights(model) == (kept, total)
        assert [m.training for m in model.modules()] == modes
        for name, module in prunable_layers(model):
            assert torch_prune.is_pruned(module)
            assert torch.equal(module.weight_orig.detach(), before[f"{name}.weight"])
            assert torch.equal(module.weight_mask.bool(), masks[f"{name}.weight"])
        for k, v in model.state_dict().items():
            if "running" in k:
                assert torch.equal(v, buffers[k])


def test_exact_count_on_bigger_sparsities_and_repruning():
    model = tiny_conv()
    data = conv_data()
    for method in ("snip", "magnitude", "synflow", "grasp", "prospr"):
        prune(model, "uniform", 0.5, seed=1)
        prune(model, method, 0.8, data=data, seed=0, input_shape=(3, 8, 8))
        assert count_weights(model)[0] == round(0.2 * 5360)


@pytest.mark.parametrize("method", ["magnitude", "snip", "grasp", "synflow", "prospr", "erk"])
def test_pruning_twice_equals_pruning_a_fresh_copy(method):
    """A second pruning replaces the first mask and scores the initialization itself: the
    same masks as on an untouched copy, and the weights the first mask removed come back."""
    import copy

    data = conv_data()
    fresh = tiny_conv()
    reused = copy.deepcopy(fresh)
    initial = {k: v.clone() for k, v in weights_of(fresh).items()}
    prune(reused, "magnitude", 0.9, seed=3)  # removes 90% of the weights first
    twice = prune(reused, method, 0.7, data=data, seed=0, input_shape=(3, 8, 8))
    once = prune(fresh, method, 0.7, data=data, seed=0, input_shape=(3, 8, 8))
    for key in once:
        assert torch.equal(twice[key], once[key]), key
    for name, module in prunable_layers(reused):
        assert torch.equal(module.weight_orig, initial[f"{name}.weight"])  # nothing zeroed
        assert torch.equal(module.weight, module.weight_orig * module.weight_mask)


def test_apply_masks_replacing_keeps_weight_orig():
    from sparsetopo.pruning import apply_masks

    model = nn.Sequential(nn.Linear(4, 3))
    original = model[0].weight.detach().clone()
    first = {"0.weight": torch.tensor([[1, 0, 0, 0]] * 3, dtype=torch.bool)}
    second = {"0.weight": torch.tensor([[0, 1, 1, 0]] * 3, dtype=torch.bool)}
    apply_masks(model, first)
    apply_masks(model, second)
    assert torch.equal(model[0].weight_orig, original)
    assert torch.equal(model[0].weight_mask.bool(), second["0.weight"])
    assert torch.equal(model[0].weight, original * second["0.weight"])
    out = model(torch.ones(1, 4))  # the forward hook uses the new mask too
    torch.testing.assert_close(out, (original * second["0.weight"]).sum(1)[None]
                               + model[0].bias)
    with pytest.raises(ValueError, match="shape"):
        apply_masks(model, {"0.weight": torch.ones(2, 2, dtype=torch.bool)})


def weights_of_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{n}.weight": m.weight_mask.bool() for n, m in prunable_layers(model)}


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_bit_identical(method):
    data = conv_data()
    a = prune(tiny_conv(), method, 0.9, data=data, seed=7, input_shape=(3, 8, 8))
    b = prune(tiny_conv(), method, 0.9, data=data, seed=7, input_shape=(3, 8, 8))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("method", ["uniform", "er", "erk"])
def test_random_methods_depend_on_seed(method):
    a = prune(tiny_conv(), method, 0.9, seed=0)
    b = prune(tiny_conv(), method, 0.9, seed=1)
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_ties_broken_deterministically_by_seed():
    def constant():
        model = tiny_conv()
        for _, m in prunable_layers(model):
            nn.init.constant_(m.weight, 0.5)
        return model

    a = prune(constant(), "magnitude", 0.9, seed=0)
    b = prune(constant(), "magnitude", 0.9, seed=0)
    c = prune(constant(), "magnitude", 0.9, seed=1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    assert sum(int(m.sum()) for m in c.values()) == round(0.1 * 5360)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("bad", [1.0, 1.5, -0.1, float("nan"), True, "0.5", None])
def test_bad_sparsity(bad):
    with pytest.raises(ValueError, match="sparsity"):
        prune(tiny_conv(), "uniform", bad)


def test_unknown_method_lists_supported():
    with pytest.raises(ValueError) as err:
        prune(tiny_conv(), "lottery", 0.5)
    assert all(name in str(err.value) for name in METHODS)


@pytest.mark.parametrize("method", ["snip", "grasp", "prospr"])
def test_data_methods_need_data(method):
    with pytest.raises(ValueError, match="needs data.*synthetic"):
        prune(tiny_conv(), method, 0.5)


def test_other_errors():
    with pytest.raises(ValueError, match="no Conv2d or Linear"):
        prune(nn.Sequential(nn.ReLU()), "uniform", 0.5)
    with pytest.raises(ValueError, match=r"\(inputs, labels\)"):
        prune(tiny_conv(), "snip", 0.5, data=[torch.randn(2, 3, 8, 8)])
    with pytest.raises(ValueError, match="no batches"):
        prune(tiny_conv(), "snip", 0.5, data=[])
    with pytest.raises(ValueError, match="seed"):
        prune(tiny_conv(), "uniform", 0.5, seed=1.5)


# --------------------------------------------------------------------------- ER / ERK / uniform


def er_factor(module: nn.Module, kernel: bool) -> float:
    if isinstance(module, nn.Linear):
        cin, cout = module.in_features, module.out_features
        return (cin + cout) / (cin * cout)
    cin, cout = module.in_channels // module.groups, module.out_channels
    kh, kw = module.kernel_size
    if kernel:
        return (cin + cout + kh + kw) / (cin * cout * kh * kw)
    return (cin + cout) / (cin * cout)


def capped_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3),  # small: dense under ERK at moderate sparsity
        nn.Conv2d(4, 64, 3),
        nn.Conv2d(64, 64, 3),
        nn.Conv2d(64, 64, 1),
        nn.Flatten(),
        nn.Linear(64, 10),
    )


@pytest.mark.parametrize("method", ["er", "erk"])
@pytest.mark.parametrize("sparsity", [0.5, 0.9, 0.98])
def test_er_erk_densities_match_formula(method, sparsity):
    model = capped_net()
    layers = prunable_layers(model)
    n = np.array([m.weight.numel() for _, m in layers], dtype=float)
    f = np.array([er_factor(m, kernel=method == "erk") for _, m in layers])
    keep = round((1 - sparsity) * n.sum())
    # independent oracle: eps is the root of sum_l n_l * min(1, eps * f_l) = keep
    eps = brentq(lambda e: (n * np.minimum(1.0, e * f)).sum() - keep, 0.0, 1e9, xtol=1e-14)
    expected = np.minimum(1.0, eps * f)
    if method == "erk" and sparsity == 0.5:
        assert (expected == 1.0).any()  # the capping path is exercised

    got = target_densities([tuple(m.weight.shape) for _, m in layers], sparsity, method)
    np.testing.assert_allclose(got, expected, rtol=1e-9)

    prune(model, method, sparsity, seed=0)
    rows = layer_densities(model)
    assert sum(r.present for r in rows) == keep
    for row, d, size in zip(rows, expected, n, strict=True):
        assert abs(row.present - d * size) <= 1.0


def test_uniform_layer_counts():
    model = capped_net()
    prune(model, "uniform", 0.7, seed=0)
    for row in layer_densities(model):
        assert abs(row.present - 0.3 * row.total) <= 1.0


def test_allocate_counts_exact():
    sizes = [10, 7, 3, 1000]
    for d in ([0.55, 0.55, 0.55, 0.55], [1.0, 0.0, 0.33, 0.3], [0.999, 0.999, 0.999, 0.999]):
        keep = round(float(np.dot(d, sizes)))
        counts = allocate_counts(np.array(d), sizes, keep)
        assert counts.sum() == keep
        assert ((counts >= 0) & (counts <= sizes)).all()
        assert (np.abs(counts - np.array(d) * sizes) < 1.0 + 1e-9).all()


# --------------------------------------------------------------------------- magnitude


def test_magnitude_scores_and_kept_set():
    model = tiny_conv()
    w = weights_of(model)
    scores = sc.magnitude_scores(model)
    for k in w:
        assert torch.equal(scores[k], w[k].abs())
    masks = prune(model, "magnitude", 0.95)
    flat = torch.cat([v.reshape(-1) for v in w.values()]).abs().numpy()
    keep = round(0.05 * flat.size)
    threshold = np.sort(flat)[::-1][keep - 1]
    kept = torch.cat([m.reshape(-1) for m in masks.values()]).numpy()
    assert (flat[kept] >= threshold).all() and (flat[~kept] <= threshold).all()


# --------------------------------------------------------------------------- SNIP


def test_snip_scores_equal_manual_backprop():
    model = mlp([4, 5, 3], act=nn.ReLU)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(6, 4, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 2, 1, 0])
    data = [(x, y), (torch.randn(6, 4, dtype=torch.float64), y)]  # only the first batch is used

    W1, b1 = model[0].weight.detach().numpy(), model[0].bias.detach().numpy()
    W2, b2 = model[2].weight.detach().numpy(), model[2].bias.detach().numpy()
    X = x.numpy()
    pre = X @ W1.T + b1
    h = np.maximum(pre, 0)
    logits = h @ W2.T + b2
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dlogits = (p - np.eye(3)[y.numpy()]) / len(X)
    dW2 = dlogits.T @ h
    dW1 = ((dlogits @ W2) * (pre > 0)).T @ X

    scores = sc.snip_scores(model, data)
    np.testing.assert_allclose(scores["0.weight"].numpy(), np.abs(dW1 * W1), rtol=1e-10)
    np.testing.assert_allclose(scores["2.weight"].numpy(), np.abs(dW2 * W2), rtol=1e-10)

    masks = prune(model, "snip", 0.6, data=data)
    flat = np.concatenate([np.abs(dW1 * W1).ravel(), np.abs(dW2 * W2).ravel()])
    keep = round(0.4 * flat.size)
    expected = np.zeros(flat.size, bool)
    expected[np.argsort(-flat)[:keep]] = True
    got = torch.cat([masks["0.weight"].reshape(-1), masks["2.weight"].reshape(-1)]).numpy()
    np.testing.assert_array_equal(got, expected)


# --------------------------------------------------------------------------- GraSP


def test_grasp_scores_equal_explicit_hessian():
    model = mlp([3, 4, 3], act=nn.Tanh)
    g = torch.Generator().manual_seed(3)
    # class 0 appears 30 times (only its first 25 are used), class 1 10 times, class 2 20 times
    labels = torch.tensor([0] * 30 + [1] * 10 + [2] * 20)[torch.randperm(60, generator=g)]
    x = torch.randn(60, 3, generator=g, dtype=torch.float64) * 3
    data = [(x[i : i + 20], labels[i : i + 20]) for i in range(0, 60, 20)]
    first0 = torch.nonzero(labels == 0).reshape(-1)[:25]
    use = torch.cat([first0, torch.nonzero(labels != 0).reshape(-1)])
    xs, ys = x[use], labels[use]

    b1, b2 = model[0].bias.detach(), model[2].bias.detach()
    shapes = [(4, 3), (3, 4)]
    flat_w = torch.cat([model[0].weight.detach().reshape(-1), model[2].weight.detach().reshape(-1)])

    def loss(flat: torch.Tensor) -> torch.Tensor:
        w1, w2 = flat[:12].reshape(shapes[0]), flat[12:].reshape(shapes[1])
        logits = F.linear(torch.tanh(F.linear(xs, w1, b1)), w2, b2)
        return F.cross_entropy(logits / 200.0, ys)

    grad = torch.autograd.functional.jacobian(loss, flat_w)
    hessian = torch.autograd.functional.hessian(loss, flat_w)
    expected = -flat_w * (hessian @ grad)
    assert expected.abs().max() > 0

    scores = sc.grasp_scores(model, data)
    got = torch.cat([scores["0.weight"].reshape(-1), scores["2.weight"].reshape(-1)])
    torch.testing.assert_close(got, expected, rtol=1e-8, atol=1e-18)
    # chunking (BatchNorm-free net) does not change the scores
    chunked = sc.grasp_scores(model, data, chunk_size=7)
    torch.testing.assert_close(chunked["0.weight"], scores["0.weight"], rtol=1e-8, atol=1e-18)

    # the kept set is the LOWEST S
    masks = prune(model, "grasp", 0.5, data=data)
    kept = torch.cat([masks["0.weight"].reshape(-1), masks["2.weight"].reshape(-1)])
    assert expected[kept].max() < expected[~kept].min()


# --------------------------------------------------------------------------- SynFlow


def synflow_oracle(w1: np.ndarray, w2: np.ndarray, m1: np.ndarray, m2: np.ndarray):
    """Linear chain x -> W1 -> W2, R = 1^T |W2| |W1| 1, so dR/dW1[i,j] = (1^T |W2|)[i] and
    dR/dW2[k,i] = (|W1| 1)[i]."""
    a1, a2 = np.abs(w1) * m1, np.abs(w2) * m2
    s1 = a1 * a2.sum(0)[:, None]
    s2 = a2 * a1.sum(1)[None, :]
    return s1, s2


def test_synflow_single_round_analytic():
    model = mlp([6, 5, 4], act=None, bias=False).float()
    w1, w2 = model[0].weight.detach().double().numpy(), model[1].weight.detach().double().numpy()
    rng = np.random.default_rng(0)
    m1, m2 = rng.random(w1.shape) < 0.7, rng.random(w2.shape) < 0.7
    masks = {"0.weight": torch.from_numpy(m1), "1.weight": torch.from_numpy(m2)}
    scores = sc.synflow_scores(model, masks, input_shape=(6,))
    s1, s2 = synflow_oracle(w1, w2, m1, m2)
    assert scores["0.weight"].dtype == torch.float64
    np.testing.assert_allclose(scores["0.weight"].numpy(), s1, rtol=1e-12)
    np.testing.assert_allclose(scores["1.weight"].numpy(), s2, rtol=1e-12)


def test_synflow_iterative_schedule_matches_naive_loop():
    model = mlp([10, 8, 6], act=None, bias=False)
    w1, w2 = model[0].weight.detach().numpy(), model[1].weight.detach().numpy()
    sparsity, total = 0.3, w1.size + w2.size
    m1, m2 = np.ones(w1.shape, bool), np.ones(w2.shape, bool)
    for k in range(1, 101):
        keep = round(total * (1 - sparsity) ** (k / 100))
        s1, s2 = synflow_oracle(w1, w2, m1, m2)
        flat = np.where(
            np.concatenate([m1.ravel(), m2.ravel()]), np.concatenate([s1.ravel(), s2.ravel()]), -1.0
        )
        order = np.sort(flat)[::-1]
        assert keep == total or order[keep - 1] > order[keep]  # no tie at the boundary
        kept = flat >= order[keep - 1]
        m1, m2 = kept[: w1.size].reshape(w1.shape), kept[w1.size :].reshape(w2.shape)
    assert m1.sum() + m2.sum() == round(0.7 * total)

    # input shape taken from the data: (10,) here, not the (3, 32, 32) default
    data = [(torch.ones(2, 10, dtype=torch.float64), torch.tensor([0, 1]))]
    masks = prune(model, "synflow", sparsity, data=data)
    np.testing.assert_array_equal(masks["0.weight"].numpy(), m1)
    np.testing.assert_array_equal(masks["1.weight"].numpy(), m2)


def test_synflow_exponential_schedule(monkeypatch):
    import sparsetopo.pruning._prune as prune_module
    kept_per_round = []
    real = prune_module.global_topk_masks

    def recording(scores, keep, generator):
        kept_per_round.append(keep)
        return real(scores, keep, generator)

    monkeypatch.setattr(prune_module, "global_topk_masks", recording)
    prune(tiny_conv(), "synflow", 0.99, input_shape=(3, 8, 8))
    expected = [round(5360 * 0.01 ** (k / 100)) for k in range(1, 101)]
    assert kept_per_round == expected


# --------------------------------------------------------------------------- ProsPr


def test_prospr_scores_equal_finite_differences():
    model = mlp([3, 4, 2], act=nn.Tanh)
    g = torch.Generator().manual_seed(4)
    data = [
        (
            torch.randn(5, 3, generator=g, dtype=torch.float64),
            torch.randint(0, 2, (5,), generator=g),
        )
        for _ in range(4)
    ]
    init = [p.detach().clone() for p in model.parameters()]  # W1, b1, W2, b2

    def meta_loss(m1: torch.Tensor, m2: torch.Tensor) -> float:
        params = [init[0] * m1, init[1], init[2] * m2, init[3]]
        bufs = None
        for x, y in data[:3]:
            params = [p.detach().requires_grad_(True) for p in params]
            w1, b1, w2, b2 = params
            loss = F.cross_entropy(F.linear(torch.tanh(F.linear(x, w1, b1)), w2, b2), y)
            grads = torch.autograd.grad(loss, params)
            bufs = (
                list(grads)
                if bufs is None
                else [0.9 * b + gr for b, gr in zip(bufs, grads, strict=True)]
            )
            params = [p.detach() - 0.5 * b for p, b in zip(params, bufs, strict=True)]
        w1, b1, w2, b2 = params
        x, y = data[3]
        return float(F.cross_entropy(F.linear(torch.tanh(F.linear(x, w1, b1)), w2, b2), y))

    h = 1e-6
    fd = []
    for shape, which in ((init[0].shape, 0), (init[2].shape, 1)):
        d = np.zeros(shape)
        for idx in np.ndindex(*shape):
            ms = [
                torch.ones(init[0].shape, dtype=torch.float64),
                torch.ones(init[2].shape, dtype=torch.float64),
            ]
            ms[which][idx] += h
            up = meta_loss(*ms)
            ms[which][idx] -= 2 * h
            d[idx] = (up - meta_loss(*ms)) / (2 * h)
        fd.append(np.abs(d))

    scores = sc.prospr_scores(model, data)
    np.testing.assert_allclose(scores["0.weight"].numpy(), fd[0], rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(scores["2.weight"].numpy(), fd[1], rtol=1e-5, atol=1e-9)
    assert max(v.max() for v in fd) > 1e-3


# --------------------------------------------------------------------------- zoo (optional)


def test_resnet20_layer_density_methods():
    import sparsetopo.models as models

    model = models.create("resnet20")
    total = count_weights(model)[1]
    for method in ("uniform", "er", "erk", "magnitude"):
        prune(model, method, 0.98, seed=0)
        assert count_weights(model)[0] == round(0.02 * total)
    prune(model, "snip", 0.98, data=[(torch.randn(8, 3, 32, 32), torch.arange(8))], seed=0)
    assert math.isclose(1 - count_weights(model)[0] / total, 0.98, abs_tol=1 / total)


@pytest.mark.parametrize(("load", "threads"), [(5.0, 1), (2.6, 1), (0.4, 2), (1.4, 2)])
def test_synflow_passes_use_the_idle_cores_and_the_count_is_restored(monkeypatch, load,
                                                                      threads):
    """SynFlow's batch-1 passes run with torch on at most the idle cores (a thread beyond them
    only stalls them on a busy machine; on an idle one both cores help); the process's thread
    count is restored afterwards. Two cores, 1-minute load average ``load``."""
    import os

    from sparsetopo.models import create

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))

    seen: list[int] = []
    real = sc.synflow_scorer

    def spying(model, input_shape):
        score = real(model, input_shape)

        def wrapped(masks=None):
            seen.append(torch.get_num_threads())
            return score(masks)

        return wrapped

    monkeypatch.setattr(sc, "synflow_scorer", spying)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        model = create("mlp", num_classes=10, in_channels=1, input_size=8, seed=0)
        prune(model, "synflow", 0.9, seed=0, input_shape=(1, 8, 8))
        assert len(seen) == 100 and set(seen) == {threads}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
