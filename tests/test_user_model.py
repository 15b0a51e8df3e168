"""Your own network from the command line: ``--model PATH.py:FACTORY`` (or
``package.module:FACTORY``), its torch-prune state_dict, ``--input-shape``; one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from cli_checks import one_line_error, run
from torch.nn.utils import prune as torch_prune

EXAMPLES = Path(__file__).parents[1] / "examples"
FACTORY = f"{EXAMPLES / 'my_net.py'}:make"


def _load_example():
    sys.path.insert(0, str(EXAMPLES))
    try:
        import my_net
    finally:
        sys.path.remove(str(EXAMPLES))
    return my_net


@pytest.fixture(scope="module")
def pruned_state(tmp_path_factory):
    """The example network pruned with torch.nn.utils.prune and its state_dict saved as a user
    would (weight_orig + weight_mask keys)."""
    torch.manual_seed(0)
    model = _load_example().make()
    layers = [(model.stem, "weight"), (model.body, "weight"), (model.down, "weight"),
              (model.head, "weight")]
    torch_prune.global_unstructured(layers, pruning_method=torch_prune.L1Unstructured,
                                    amount=0.8)
    path = tmp_path_factory.mktemp("w") / "my_net.pt"
    torch.save(model.state_dict(), path)
    return model, path


def expected_mge_edges(model, shape=(3, 32, 32)) -> int:
    """Oracle: a convolution's edges are its present weights times the output positions whose
    input window position is inside the image (conv2d of an all-ones input with the 0/1
    mask); the head after a global mean pool gets one edge per present weight and pooled
    pixel (SPEC 3.5). No identity skip is encoded by default."""
    x = torch.ones(1, *shape)
    total = 0
    for conv in (model.stem, model.body, model.down):
        mask = conv.weight_mask
        ones = torch.ones(1, mask.shape[1], x.shape[2], x.shape[3])
        total += int(F.conv2d(ones, mask, stride=conv.stride, padding=conv.padding).sum())
        x = F.conv2d(x, torch.zeros_like(mask), stride=conv.stride, padding=conv.padding)
    return total + int(model.head.weight_mask.sum()) * x.shape[2] * x.shape[3]


def test_analyze_own_model_file_and_torch_prune_state_dict(tmp_path, pruned_state):
    model, weights = pruned_state
    r = run("analyze", "--model", FACTORY, "--weights", weights, "--dataset", "synthetic",
            "--input-shape", "3,32,32", "--no-picture", "--json", "--out", tmp_path)
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["topometrics"]["edges"] == expected_mge_edges(model)
    assert result["encodings"]["mge"]["edges"] == expected_mge_edges(model)
    present = sum(int(m.weight_mask.sum()) for m in (model.stem, model.body, model.down,
                                                     model.head))
    assert result["network"]["present_weights"] == present
    assert result["paths"]["log10_paths"] > 0  # the identity shortcut is a path


def test_module_factory_prune_and_draw(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    r = run("prune", "--model", "my_net:make", "--dataset", "synthetic", "--pruning", "snip",
            "--sparsity", "0.9", "--quiet", "--out", tmp_path / "p")
    assert r.exit_code == 0, r.output
    state = torch.load(tmp_path / "p" / "model.pt", weights_only=True)
    assert "stem.weight_orig" in state or "stem.weight" in state
    r = run("draw", "--model", FACTORY, "--weights", tmp_path / "p" / "model.pt",
            "--dataset", "synthetic", "--quiet", "--out", tmp_path / "mge.png")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "mge.png").stat().st_size > 0


def test_model_file_errors(tmp_path, pruned_state):
    common = ["--dataset", "synthetic", "--pruning", "uniform", "--no-picture", "--out",
              tmp_path / "o"]
    one_line_error(run("analyze", "--model", f"{tmp_path / 'nope.py'}:make", *common),
                   "model file not found", "nope.py")
    one_line_error(run("analyze", "--model", f"{EXAMPLES / 'my_net.py'}:build", *common),
                   "has no factory 'build'", "make")
    bad = tmp_path / "bad.py"
    bad.write_text("def make():\n    return 42\n")
    one_line_error(run("analyze", "--model", f"{bad}:make", *common),
                   "returned int, not a torch.nn.Module")
    one_line_error(run("analyze", "--model", "no_such_package_xyz.mod:make", *common),
                   "no module 'no_such_package_xyz.mod'")


def test_weights_that_do_not_match_name_the_key_and_shapes(tmp_path, pruned_state):
    _, weights = pruned_state
    state = torch.load(weights, weights_only=True)
    state["body.weight_orig"] = torch.zeros(16, 8, 3, 3)
    state["body.weight_mask"] = torch.ones(16, 8, 3, 3)
    wrong = tmp_path / "wrong.pt"
    torch.save(state, wrong)
    one_line_error(run("analyze", "--model", FACTORY, "--weights", wrong, "--dataset",
                       "synthetic", "--no-picture", "--out", tmp_path / "o"),
                   "body.weight", "(16, 8, 3, 3)", "(16, 16, 3, 3)")


def test_untraceable_op_names_node_op_and_module(tmp_path):
    model_file = tmp_path / "odd.py"
    model_file.write_text(
        "import torch\nfrom torch import nn\n\n"
        "class Odd(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv = nn.Conv2d(3, 4, 3)\n"
        "        self.up = nn.Upsample(scale_factor=2)\n"
        "        self.fc = nn.Linear(4, 2)\n"
        "    def forward(self, x):\n"
        "        return self.fc(self.up(self.conv(x)).mean((2, 3)))\n\n"
        "def make():\n    return Odd()\n")
    one_line_error(run("analyze", "--model", f"{model_file}:make", "--dataset", "synthetic",
                       "--pruning", "uniform", "--no-picture", "--out", tmp_path / "o"),
                   "Upsample", "module path 'up'")


def test_input_shape_errors(tmp_path):
    common = ["--dataset", "synthetic", "--pruning", "uniform", "--no-picture", "--out",
              tmp_path / "o"]
    one_line_error(run("analyze", "--model", FACTORY, "--input-shape", "3,32", *common),
                   "--input-shape must be C,H,W")
    one_line_error(run("analyze", "--model", FACTORY, "--input-shape", "3,32,32",
                       "--input-size", "32", *common), "not both")
