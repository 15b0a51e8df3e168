"""Mask controls (``METHOD+layer-shuffle``, ``METHOD+fanin-shuffle``): exact per-layer and
per-channel counts against the method's own masks, uniform positions against binomial
frequencies, determinism, independence from the method's randomness, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from sparsetopo import models
from sparsetopo.errors import InputError
from sparsetopo.pruning import (
    CONTROLS,
    METHODS,
    apply_control,
    check_method,
    layer_densities,
    needs_data,
    prunable_layers,
    prune,
    split_method,
)
from sparsetopo.pruning.controls import control_seed, fanin_shuffle, layer_shuffle


def small_net() -> nn.Module:
    """Convs (one grouped, one depthwise) and a Linear: rows of several widths."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, groups=4), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.ReLU(),
        nn.Conv2d(16, 32, 1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )


def batches(n: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(8, 3, 8, 8, generator=g), torch.randint(0, 10, (8,), generator=g))
            for _ in range(n)]


def masks_of(method: str, sparsity: float = 0.8, seed: int = 0) -> dict[str, torch.Tensor]:
    data = batches() if needs_data(method) else None
    return prune(small_net(), method, sparsity, data=data, seed=seed)


def row_counts(mask: torch.Tensor) -> torch.Tensor:
    return mask.reshape(mask.shape[0], -1).sum(dim=1)


# ------------------------------------------------------------------------------- counts
@pytest.mark.parametrize("method", METHODS)
def test_layer_shuffle_keeps_every_layer_count(method):
    base = masks_of(method)
    control = masks_of(f"{method}+layer-shuffle")
    assert list(control) == list(base)
    for key in base:
        assert control[key].dtype == torch.bool and control[key].shape == base[key].shape
        assert int(control[key].sum()) == int(base[key].sum()), key
    moved = sum(int((control[k] != base[k]).sum()) for k in base)
    assert moved > 0  # the positions did change


@pytest.mark.parametrize("method", ["snip", "synflow", "erk", "magnitude"])
def test_fanin_shuffle_keeps_every_output_channel_count(method):
    base = masks_of(method)
    control = masks_of(f"{method}+fanin-shuffle")
    for key in base:
        assert torch.equal(row_counts(control[key]), row_counts(base[key])), key
    moved = sum(int((control[k] != base[k]).sum()) for k in base)
    assert moved > 0


def test_layer_shuffle_is_not_a_fanin_shuffle():
    """The two controls differ: layer-shuffle moves weights between the rows of a layer."""
    base = masks_of("snip")
    control = masks_of("snip+layer-shuffle")
    assert any(not torch.equal(row_counts(control[k]), row_counts(base[k])) for k in base)


def test_control_layer_densities_equal_the_methods_on_a_zoo_network():
    """ResNet-20 (shortcut convs, classifier) pruned by SNIP at 0.98 and its two controls:
    the same layer densities, the same global count."""
    data = [(torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,)))]

    def pruned(method):
        net = models.create("resnet20", num_classes=10, in_channels=1, seed=3)
        prune(net, method, 0.98, data=data, seed=3)
        return net

    base = layer_densities(pruned("snip"))
    for control in CONTROLS:
        net = pruned(f"snip+{control}")
        assert layer_densities(net) == base
        masks = {f"{n}.weight": m.weight_mask.bool() for n, m in prunable_layers(net)}
        assert sum(int(m.sum()) for m in masks.values()) == sum(r.present for r in base)


def test_all_or_nothing_rows_and_full_masks_stay_as_they_are():
    masks = {"a.weight": torch.tensor([[1, 1, 1], [0, 0, 0]], dtype=torch.bool),
             "b.weight": torch.ones(4, 2, 3, 3, dtype=torch.bool)}
    for control in CONTROLS:
        out = apply_control(masks, control, seed=5)
        assert torch.equal(out["b.weight"], masks["b.weight"])
    assert torch.equal(apply_control(masks, "fanin-shuffle", 5)["a.weight"], masks["a.weight"])
    full = prune(small_net(), "magnitude+layer-shuffle", 0.0)
    assert all(bool(m.all()) for m in full.values())


# ------------------------------------------------------------------------------- uniformity
def test_positions_are_uniform_within_the_layer_and_within_the_row():
    """Over many seeds every position is present with probability k / n (layer-shuffle) or
    k_r / F (fanin-shuffle, row r), and two rows are drawn independently of each other: within
    5 binomial standard deviations."""
    counts = torch.tensor([0, 1, 3, 5, 5, 9, 10])
    rows = torch.arange(10)[None, :] < counts[:, None]  # 7 rows of 10, k_r present
    draws = 3000
    layer = torch.zeros(rows.shape)
    fanin = torch.zeros(rows.shape)
    both = torch.zeros(10)  # rows 3 and 4 (5 of 10 each) present at the same position
    for seed in range(draws):
        layer += apply_control({"w": rows}, "layer-shuffle", seed)["w"]
        drawn = apply_control({"w": rows}, "fanin-shuffle", seed)["w"]
        fanin += drawn
        both += drawn[3] & drawn[4]
    assert (both - draws * 0.25).abs().max() < 5 * math.sqrt(draws * 0.25 * 0.75)
    p_layer = counts.sum().item() / rows.numel()
    tolerance = 5 * math.sqrt(draws * p_layer * (1 - p_layer))
    assert (layer - draws * p_layer).abs().max() < tolerance
    p_row = (counts / 10.0)[:, None].expand(rows.shape)
    sd = (draws * p_row * (1 - p_row)).sqrt()
    assert ((fanin - draws * p_row).abs() <= 5 * sd + 1e-9).all()


# ------------------------------------------------------------------------------- seeds
def test_deterministic_for_a_seed_and_different_across_seeds():
    for control in CONTROLS:
        a = masks_of(f"snip+{control}", seed=4)
        b = masks_of(f"snip+{control}", seed=4)
        assert all(torch.equal(a[k], b[k]) for k in a)
    base = masks_of("magnitude", seed=0)
    one = apply_control(base, "layer-shuffle", 1)
    two = apply_control(base, "layer-shuffle", 2)
    assert any(not torch.equal(one[k], two[k]) for k in base)


def test_drawn_independently_of_the_methods_randomness():
    """The draw depends on the seed, the control and the counts the method left, nothing
    else: not on the global RNG (which a method's forward pass uses), nor on where the method
    put its weights (two uniform masks of different seeds, same layer counts, give the same
    control for one seed); and its generator is not the method's (seeded with the seed)."""
    first = masks_of("uniform", seed=0)
    second = masks_of("uniform", seed=1)
    assert any(not torch.equal(first[k], second[k]) for k in first)
    assert all(int(first[k].sum()) == int(second[k].sum()) for k in first)
    torch.manual_seed(123)
    a = apply_control(first, "layer-shuffle", 7)
    torch.manual_seed(456)
    b = apply_control(second, "layer-shuffle", 7)
    assert all(torch.equal(a[k], b[k]) for k in a)
    seeds = {control_seed(s, c) for s in range(50) for c in CONTROLS}
    assert len(seeds) == 100 and not seeds & set(range(50))
    # the method's own generator (seeded with the seed) would have drawn other positions
    own = layer_shuffle(first, torch.Generator().manual_seed(7))
    assert any(not torch.equal(a[k], own[k]) for k in a)
    own = fanin_shuffle(first, torch.Generator().manual_seed(7))
    assert any(not torch.equal(apply_control(first, "fanin-shuffle", 7)[k], own[k])
               for k in a)


def test_a_method_and_its_control_overlap_as_independent_draws_do():
    """Overlap of ``uniform`` and ``uniform+layer-shuffle`` (same seed) in the 1x1 conv of
    512 weights with k present: hypergeometric, mean k^2 / n, within 5 standard deviations
    (a control reusing the method's stream would coincide with it)."""
    base = masks_of("uniform", sparsity=0.5, seed=2)
    control = masks_of("uniform+layer-shuffle", sparsity=0.5, seed=2)
    key = "6.weight"
    n, k = base[key].numel(), int(base[key].sum())
    overlap = int((base[key] & control[key]).sum())
    mean = k * k / n
    sd = math.sqrt(k * (k / n) * (1 - k / n) * (n - k) / (n - 1))
    assert abs(overlap - mean) < 5 * sd, (overlap, mean, sd)


# ------------------------------------------------------------------------------- names
def test_names_parse_and_validate_in_one_place():
    assert split_method("snip+layer-shuffle") == ("snip", "layer-shuffle")
    assert split_method("snip") == ("snip", None)
    assert check_method(" SNIP+Layer-Shuffle ") == "snip+layer-shuffle"
    assert needs_data("grasp+fanin-shuffle") and not needs_data("erk+fanin-shuffle")
    # a caller running other base methods (e.g. trained ones) passes its own list
    assert check_method("rigl+fanin-shuffle", known=[*METHODS, "rigl"]) == "rigl+fanin-shuffle"
    with pytest.raises(InputError, match="unknown pruning method 'rigl'"):
        check_method("rigl+fanin-shuffle")


@pytest.mark.parametrize("name, words", [
    ("snip+shuffle", ["unknown control 'shuffle'", "layer-shuffle, fanin-shuffle"]),
    ("snip+layer-shuffle+fanin-shuffle", ["unknown control", "layer-shuffle, fanin-shuffle"]),
    ("lottery+layer-shuffle", ["unknown pruning method 'lottery'", *METHODS]),
])
def test_unknown_names_are_one_line_listing_what_is_supported(name, words):
    with pytest.raises(InputError) as info:
        prune(small_net(), name, 0.5, data=batches())
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message
    with pytest.raises(InputError, match="supported controls"):
        apply_control({}, "nope", 0)


def test_controls_do_not_touch_the_weights():
    net = small_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    masks = prune(net, "magnitude+fanin-shuffle", 0.7)
    for name, module in prunable_layers(net):
        assert torch.equal(module.weight_orig, before[f"{name}.weight"])
        assert torch.equal(module.weight_mask.bool(), masks[f"{name}.weight"])
    assert np.isclose(sum(int(m.sum()) for m in masks.values()),
                      round(0.3 * sum(m.numel() for m in masks.values())))
