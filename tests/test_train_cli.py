"""``sparsetopo train``: one run of any method from the command line, its files, and one-line
errors for bad input."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from cli_checks import one_line_error, run
from PIL import Image

from sparsetopo.training import DST_METHODS

TINY = ["--dataset", "digits", "--image-size", "8", "--epochs", "1", "--batch-size", "64",
        "--lr", "0.05", "--train-subset", "256", "--test-subset", "128", "--device", "cpu",
        "--quiet"]
MLP_WEIGHTS = 64 * 128 + 128 * 64 + 64 * 10  # the mlp on 8x8 digits


@pytest.mark.parametrize("args, needles", [
    (["--pruning", "lottery"], ["unknown method 'lottery'", "rigl", "snip"]),
    (["--sparsity", "1.5"], ["sparsity must be in [0, 1)"]),
    (["--pruning", "snip", "--drop-fraction", "0.3"],
     ["--drop-fraction is a dynamic sparse training option", "snip"]),
    (["--pruning", "rigl", "--dsr-threshold", "0.1"],
     ["--dsr-threshold is not a parameter of rigl", "--update-interval"]),
    (["--pruning", "set", "--drop-fraction", "2"], ["drop_fraction must be a number in [0, 1]"]),
    (["--pruning", "rigl", "--drop-decay", "linear"], ["drop_decay must be one of"]),
    (["--device", "tpu"], ["--device must be cpu or cuda"]),
    (["--model", "vgg99"], ["unknown model 'vgg99'"]),
    (["--dataset", "mnist"], ["unknown dataset 'mnist'"]),
])
def test_bad_input_is_one_line(tmp_path, args, needles):
    result = run("train", "--model", "mlp", *args, "--out", tmp_path / "o", "--quiet")
    one_line_error(result, *needles)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_pai_run_writes_a_prune_form_state_dict_that_analyze_reads(tmp_path):
    out = tmp_path / "uniform"
    result = run("train", "--model", "mlp", "--pruning", "uniform", "--sparsity", "0.9", *TINY,
                 "--out", out)
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.output and "pai-data-free" in result.output
    assert {p.name for p in out.iterdir()} == {"model.pt", "result.json"}
    state = torch.load(out / "model.pt", weights_only=True)
    masks = {k: v for k, v in state.items() if k.endswith("weight_mask")}
    assert len(masks) == 3 and all(k.replace("_mask", "_orig") in state for k in masks)
    assert sum(int(m.sum()) for m in masks.values()) == round(0.1 * MLP_WEIGHTS)
    summary = json.loads((out / "result.json").read_text())
    assert summary["method"] == "uniform" and summary["category"] == "pai-data-free"
    assert summary["mask_updates"] == 0 and 0 <= summary["test_accuracy"] <= 1
    assert len(summary["train_loss_history"]) == 1
    assert summary["config"]["training"]["lr"] == 0.05 and summary["config"]["dst"] is None
    analyzed = run("analyze", "--model", "mlp", "--weights", out / "model.pt", "--input-size",
                   "8", "--json", "--out", tmp_path / "a", "--no-picture", "--quiet")
    assert analyzed.exit_code == 0, analyzed.output
    data = json.loads(analyzed.output)
    assert data["network"]["sparsity"] == pytest.approx(0.9, abs=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("method", DST_METHODS)
def test_each_dst_method_end_to_end_on_digits(tmp_path, method):
    out = tmp_path / method
    result = run("train", "--model", "resnet20", "--pruning", method, "--sparsity", "0.9",
                 *TINY, "--update-interval", "0.25", "--out", out)
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {"model.pt", "result.json", "trajectory.csv",
                                               "trajectory.png"}
    summary = json.loads((out / "result.json").read_text())
    assert summary["category"] == "dst" and summary["mask_updates"] >= 1
    assert summary["config"]["dst"]["update_interval"] == 0.25
    assert summary["measured_sparsity"] == pytest.approx(0.9, abs=1e-5)
    trajectory = pd.read_csv(out / "trajectory.csv")
    assert len(trajectory) == summary["mask_updates"] + 1
    assert trajectory["present"].nunique() == 1
    assert trajectory["present"].iloc[0] == summary["present_weights"]
    assert trajectory["exploration_rate"].iloc[-1] == pytest.approx(summary["exploration_rate"])
    assert trajectory[["effective_density", "log10_paths"]].notna().all().all()
    with Image.open(out / "trajectory.png") as picture:
        assert picture.size[0] > 400
    analyzed = run("analyze", "--model", "resnet20", "--weights", out / "model.pt",
                   "--input-size", "8", "--dataset", "digits", "--json", "--out",
                   tmp_path / "a", "--no-picture", "--quiet")
    assert analyzed.exit_code == 0, analyzed.output
    assert json.loads(analyzed.output)["network"]["sparsity"] == pytest.approx(0.9, abs=1e-4)


@pytest.mark.slow
def test_a_collapsed_network_is_recorded_not_crashed(tmp_path):
    out = tmp_path / "collapse"
    result = run("train", "--model", "mlp", "--pruning", "set", "--sparsity", "0.9999", *TINY,
                 "--update-interval", "0.5", "--out", out)
    assert result.exit_code == 0, result.output
    assert "collapsed" in result.output
    summary = json.loads((out / "result.json").read_text())
    assert summary["collapsed"] is True and summary["present_weights"] == 2
    assert summary["final_topology"]["log10_paths"] is None  # -inf: no path at all
