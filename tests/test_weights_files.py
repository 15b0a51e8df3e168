"""Weights files as people save them: checkpoints holding a state_dict, a DataParallel model's
``module.`` keys, the masks file ``prune`` writes, and the input shape ``prune`` records."""

from __future__ import annotations

import json

import pytest
import torch
from cli_checks import run

from sparsetopo import models, pruning
from sparsetopo.errors import WeightsError
from sparsetopo.pruning.masks import get_masks, load_weights, masked_state_dict


def _pruned(seed: int = 3):
    model = models.create("resnet20", seed=seed)
    pruning.prune(model, "erk", 0.9, seed=seed)
    return model


def _effective(model) -> dict[str, torch.Tensor]:
    return {name: m.weight.detach().clone() for name, m in pruning.prunable_layers(model)}


def _same(a, b) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_a_checkpoint_holding_a_state_dict_loads_and_says_so(tmp_path):
    source = _pruned()
    torch.save({"state_dict": masked_state_dict(source), "epoch": 7, "best_acc": 0.9},
               tmp_path / "ckpt.pt")
    target = models.create("resnet20", seed=99)
    notes = load_weights(target, tmp_path / "ckpt.pt")
    assert _same(get_masks(target), get_masks(source))
    assert _same(_effective(target), _effective(source))
    assert any("'state_dict' entry" in n and "epoch" in n for n in notes), notes


def test_a_dataparallel_state_dict_has_its_prefix_stripped(tmp_path):
    source = _pruned()
    wrapped = {f"module.{k}": v for k, v in source.state_dict().items()}  # prune form
    torch.save(wrapped, tmp_path / "dp.pt")
    target = models.create("resnet20", seed=99)
    notes = load_weights(target, tmp_path / "dp.pt")
    assert _same(get_masks(target), get_masks(source))
    assert _same(_effective(target), _effective(source))
    assert any("'module.'" in n and f"{len(wrapped)} keys" in n for n in notes), notes


def test_the_masks_file_applies_its_masks_to_the_initialization(tmp_path):
    source = _pruned(seed=5)
    torch.save(get_masks(source), tmp_path / "masks.pt")
    target = models.create("resnet20", seed=5)  # the same initialization
    notes = load_weights(target, tmp_path / "masks.pt")
    assert _same(get_masks(target), get_masks(source))
    assert _same(_effective(target), _effective(source))  # oracle: init * mask
    assert any("masks file" in n for n in notes)


def test_a_dict_without_a_state_dict_is_refused_in_one_line(tmp_path):
    torch.save({"epoch": 3, "optimizer": {"lr": torch.tensor(0.1)}}, tmp_path / "x.pt")
    with pytest.raises(WeightsError, match="nor a checkpoint holding one"):
        load_weights(models.create("resnet20"), tmp_path / "x.pt")


def test_prune_records_the_input_shape_and_analyze_uses_it(tmp_path):
    r = run("prune", "--model", "conv6", "--pruning", "uniform", "--sparsity", "0.9",
            "--input-size", "16", "--out", tmp_path / "p", "--quiet")
    assert r.exit_code == 0, r.output
    record = json.loads((tmp_path / "p" / "prune.json").read_text())
    assert record["input_shape"] == [1, 16, 16] and record["pruning"] == "uniform"
    # conv6's classifier depends on the input size: loading works only at the recorded size
    r = run("analyze", "--model", "conv6", "--weights", tmp_path / "p" / "model.pt", "--json",
            "--no-picture", "--quiet", "--out", tmp_path / "a")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["network"]["input_shape"] == [1, 16, 16]


def test_weights_pruned_for_another_input_size_name_the_fix(tmp_path):
    from sparsetopo.study.predict import Fit, candidate_network

    r = run("prune", "--model", "conv6", "--pruning", "uniform", "--sparsity", "0.9",
            "--out", tmp_path / "p", "--quiet")  # digits at 32x32
    assert r.exit_code == 0, r.output
    fit = Fit(tmp_path, {}, [], [{"model": "conv6", "dataset": "digits",
                                  "run_settings": {"image_size": 8}}])
    with pytest.raises(WeightsError, match="prune again with --input-size 8"):
        candidate_network(fit, "conv6", "digits", weights=tmp_path / "p" / "model.pt",
                          method=None, sparsity=None, seed=0)


def test_the_fits_top_sparsity_is_inside_its_range():
    """A grid's nominal top sparsity is measured a rounding away from it: one weight's share
    is allowed (and nothing more)."""
    from sparsetopo.study.predict import outside

    entry = {"model": "mlp", "sparsity_range": [0.5, 0.9]}
    total = 58_001
    measured = 1 - round(0.1 * total) / total  # keeps 5,800: 0.9000017, above the nominal 0.9
    assert measured > 0.9 + 1e-9
    kw = {"model": "mlp", "dataset": "digits", "image_size": 8, "identity_skips": False}
    assert outside(entry, sparsity=measured, sparsity_tolerance=1 / total, **kw) == []
    assert outside(entry, sparsity=measured, **kw) != []  # the old 1e-9 tolerance
    assert outside(entry, sparsity=0.9 + 2 / total, sparsity_tolerance=1 / total, **kw) != []
