"""The command line as a user meets it: outputs, files, and one-line errors for bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from cli_checks import one_line_error, run
from torch import nn

from sparsetopo.pruning.masks import prunable_layers

FAST = ["--model", "mlp", "--pruning", "uniform", "--sparsity", "0.9", "--quiet"]


def test_prune_a_control_keeps_the_methods_layer_counts(tmp_path):
    """``--pruning snip+layer-shuffle`` (data-driven base): the same count per layer as
    ``snip``, other positions; ``+fanin-shuffle``: the same count per output channel."""
    masks = {}
    for method in ("snip", "snip+layer-shuffle", "snip+fanin-shuffle"):
        r = run("prune", "--model", "mlp", "--pruning", method, "--sparsity", "0.9", "--quiet",
                "--out", tmp_path / method)
        assert r.exit_code == 0, r.output
        masks[method] = torch.load(tmp_path / method / "masks.pt", weights_only=True)
    base = masks["snip"]
    for key, mask in base.items():
        for method in ("snip+layer-shuffle", "snip+fanin-shuffle"):
            assert int(masks[method][key].sum()) == int(mask.sum())
        assert torch.equal(masks["snip+fanin-shuffle"][key].sum(dim=1), mask.sum(dim=1))
    assert any(not torch.equal(masks["snip+layer-shuffle"][k], base[k]) for k in base)


def test_prune_writes_loadable_masked_state_dict(tmp_path):
    r = run("prune", "--model", "resnet20", "--pruning", "erk", "--sparsity", "0.9",
            "--seed", "3", "--out", tmp_path, "--quiet")
    assert r.exit_code == 0, r.output
    assert "layer1.0.conv1" in r.output and "density" in r.output
    sd = torch.load(tmp_path / "model.pt", weights_only=True)
    masks = torch.load(tmp_path / "masks.pt", weights_only=True)
    assert not any(k.endswith("_orig") or k.endswith("_mask") for k in sd)
    present = sum(int(m.sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    assert present == round(0.1 * total)
    for key, mask in masks.items():
        assert mask.dtype == torch.bool
        assert (sd[key][~mask] == 0).all()


def test_analyze_writes_json_csv_and_picture(tmp_path):
    r = run("analyze", *FAST, "--out", tmp_path)
    assert r.exit_code == 0, r.output
    for word in ("Encodings", "Topometrics of the MGE", "Ramanujan", "time:", "sink_nodes"):
        assert word in r.output
    data = json.loads((tmp_path / "metrics.json").read_text())
    assert data["network"]["model"] == "mlp"
    assert data["network"]["sparsity"] == pytest.approx(0.9, abs=1e-5)
    assert data["topometrics"]["nodes"] == data["encodings"]["mge"]["nodes"]
    csv = pd.read_csv(tmp_path / "metrics.csv")
    assert len(csv) == 1 and csv["topo.edges"][0] == data["topometrics"]["edges"]
    assert (tmp_path / "mge.png").stat().st_size > 1000
    assert not list(tmp_path.glob("*.tmp*"))


def test_analyze_json_only_and_paper_normalisation(tmp_path):
    r = run("analyze", *FAST, "--out", tmp_path, "--json", "--normalise", "paper",
            "--no-picture")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    shown, raw = data["topometrics_shown"], data["topometrics"]
    assert shown["sink_nodes"] == pytest.approx(raw["sink_nodes"] / raw["nodes"])
    assert shown["cut_edges"] == pytest.approx(raw["cut_edges"] / raw["edges"])
    assert not (tmp_path / "mge.png").exists()


@pytest.mark.parametrize("enc", ["unrolled", "rolled", "rolled-channel"])
def test_analyze_other_encodings(tmp_path, enc):
    r = run("analyze", *FAST, "--out", tmp_path, "--encoding", enc, "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["options"]["encoding"] == enc
    assert len(data["topometrics_layers"]) == 3


def test_analyze_loads_weights(tmp_path):
    assert run("prune", *FAST, "--out", tmp_path / "p").exit_code == 0
    r = run("analyze", "--model", "mlp", "--weights", tmp_path / "p" / "model.pt", "--json",
            "--out", tmp_path / "a", "--no-picture")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["network"]["pruning"] == "weights"
    assert data["network"]["sparsity"] == pytest.approx(0.9, abs=1e-5)


@pytest.mark.parametrize(
    "args, needles",
    [
        (["prune", "--sparsity", "1.0"], ["sparsity must be in [0, 1)"]),
        (["prune", "--sparsity", "-0.1"], ["sparsity"]),
        (["prune", "--model", "vgg99"], ["unknown model", "resnet20"]),
        (["prune", "--pruning", "lottery"], ["unknown pruning method", "snip"]),
        (["prune", "--pruning", "snip+shuffle"], ["unknown control 'shuffle'",
                                                  "layer-shuffle, fanin-shuffle"]),
        (["analyze", "--pruning", "snip+shuffle"], ["unknown control 'shuffle'",
                                                    "layer-shuffle, fanin-shuffle"]),
        (["analyze", "--dataset", "mnist"], ["unknown dataset", "cifar10"]),
        (["analyze", "--dataset", "cifar10", "--data-dir", "/nonexistent"], ["cifar-10-batches-py"]),
        (["analyze", "--encoding", "dense"], ["unknown encoding"]),
        (["analyze", "--model", "conv6", "--input-size", "12", "--pruning", "uniform"],
         ["conv6 needs an input size divisible by 8"]),
    ],
)
def test_bad_arguments_are_one_line(tmp_path, args, needles):
    r = run(*args, "--out", tmp_path / "o")
    one_line_error(r, *needles)
    assert not (tmp_path / "o" / "metrics.json").exists()


def _save(tmp_path, obj, name="w.pt"):
    path = tmp_path / name
    torch.save(obj, path)
    return path


def test_bad_weights_files_are_one_line(tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a torch file at all")
    one_line_error(run("analyze", *FAST, "--weights", corrupt, "--out", tmp_path / "o"),
                   "cannot read weights file")
    wrong = _save(tmp_path, {"fc.weight": torch.zeros(3, 3)}, "wrong.pt")
    one_line_error(run("analyze", *FAST, "--weights", wrong, "--out", tmp_path / "o"),
                   "does not match the model")
    from sparsetopo import models

    net = models.create("mlp", in_channels=1)
    sd = net.state_dict()
    first = next(k for k in sd if k.endswith("weight"))
    sd[first][0, 0] = float("nan")
    nan = _save(tmp_path, sd, "nan.pt")
    one_line_error(run("analyze", *FAST, "--weights", nan, "--out", tmp_path / "o"),
                   "NaN or inf")
    one_line_error(run("analyze", *FAST, "--weights", tmp_path / "missing.pt",
                       "--out", tmp_path / "o"), "not found")
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


class _Unsupported(nn.Module):
    def __init__(self, in_channels=1, num_classes=10):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 4, 3)
        self.upsample = nn.Upsample(scale_factor=2)
        self.fc = nn.Linear(4, num_classes)

    def forward(self, x):
        return self.fc(self.upsample(self.conv(x)).mean((2, 3)))


def test_unsupported_layer_is_one_line(tmp_path, monkeypatch):
    from sparsetopo import models

    monkeypatch.setattr(models, "create", lambda name, num_classes, in_channels, **kw: _Unsupported(
        in_channels, num_classes))
    r = run("analyze", *FAST, "--out", tmp_path / "o")
    one_line_error(r, "Upsample", "module path 'upsample'")


def test_graph_too_large_is_one_line(tmp_path, monkeypatch):
    import sparsetopo.encoding._multipartite as mp

    class Tiny:
        available = 1024

    monkeypatch.setattr(mp.psutil, "virtual_memory", lambda: Tiny)
    r = run("analyze", *FAST, "--out", tmp_path / "o")
    one_line_error(r, "GiB", "--force")
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_prunable_layers_of_default_model_are_all_reported(tmp_path):
    r = run("prune", "--model", "mlp", "--pruning", "magnitude", "--sparsity", "0.5",
            "--out", tmp_path, "--quiet")
    from sparsetopo import models

    for name, _ in prunable_layers(models.create("mlp")):
        assert name in r.output


def test_draw_writes_picture_with_sampling_note(tmp_path):
    from PIL import Image

    out = tmp_path / "mge.png"
    r = run("draw", *FAST, "--max-edges", "500", "--out", out)
    assert r.exit_code == 0, r.output
    img = Image.open(out)
    assert img.size == (1600, 900)
    pixels = np.asarray(img.convert("L"))
    assert int(pixels.max()) - int(pixels.min()) > 100  # not blank


def _console(*args, tmp_path):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "sparsetopo", *args], capture_output=True,
                          text=True, cwd=tmp_path, timeout=300)


def test_console_script_flushes_output_and_keeps_exit_codes(tmp_path):
    """``python -m sparsetopo``: stdout complete, the exit code that of the command (0, or 2
    with one line on bad input)."""
    import json

    done = _console("analyze", "--model", "conv6", "--input-size", "8", "--sparsity", "0.9",
                    "--pruning", "uniform", "--no-picture", "--json", "--out", "out",
                    tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # the whole JSON arrived
    assert result["network"]["model"] == "conv6" and (tmp_path / "out" / "metrics.json").exists()
    bad = _console("analyze", "--sparsity", "2", tmp_path=tmp_path)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().count("\n") == 0 and "sparsity" in bad.stderr
    listed = _console("models", tmp_path=tmp_path)
    assert listed.returncode == 0 and listed.stdout.startswith("models:")
    assert "controls: layer-shuffle, fanin-shuffle" in listed.stdout
    usage = _console("analyze", "--no-such-option", tmp_path=tmp_path)
    assert usage.returncode == 2 and "no-such-option" in usage.stderr
    study = _console("study", "--help", tmp_path=tmp_path)
    assert study.returncode == 0 and "run" in study.stdout


def test_analyze_never_imports_pandas_or_matplotlib(tmp_path):
    """The main job (MGE, picture included) runs with pandas and matplotlib made unimportable:
    their imports are half a second each of every ``analyze`` (BENCHMARKS.md)."""
    import subprocess
    import sys

    program = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('pandas', 'matplotlib'):\n"
        "            raise ImportError(name + ' is blocked in this test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "sys.argv = ['sparsetopo', 'analyze', *sys.argv[1:]]\n"
        "from sparsetopo.cli import main\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", program, *FAST, "--out", "out"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"mge.png", "metrics.csv",
                                                             "metrics.json"}
    csv = pd.read_csv(tmp_path / "out" / "metrics.csv")
    data = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert csv["topo.edges"][0] == data["topometrics"]["edges"]
    assert csv["ramanujan.n_layers"][0] == len(data["ramanujan"]["layers"])


def test_console_script_imports_without_full_collections_then_freezes(tmp_path):
    """``sparsetopo.__main__.main`` imports the command line with no full collection (the young
    generations still collected: import-time garbage is not kept), freezes what the imports
    created and gives the command the collector's usual thresholds."""
    import subprocess
    import sys

    program = (
        "import atexit, gc, sys\n"
        "state = {'started': False, 'full': 0, 'young': 0}\n"
        "def seen(phase, info):\n"
        "    if phase == 'start' and state['started'] and gc.get_freeze_count() == 0:\n"
        "        state['full' if info['generation'] == 2 else 'young'] += 1\n"
        "gc.callbacks.append(seen)\n"
        "before = gc.get_threshold()\n"
        "atexit.register(lambda: print(state['full'], state['young'] > 0,\n"
        "                              gc.get_threshold() == before, gc.isenabled(),\n"
        "                              'torch' in sys.modules, gc.get_freeze_count()))\n"
        "sys.argv = ['sparsetopo', 'models']\n"
        "from sparsetopo.__main__ import main\n"
        "state['started'] = True\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    *flags, frozen = done.stdout.split()[-6:]
    assert flags == ["0", "True", "True", "True", "True"]
    assert int(frozen) > 50_000  # torch, numba, scipy and typer's objects


@pytest.mark.parametrize("planted", ["ValueError", "KeyError", "MemoryError", "RuntimeError"])
def test_a_bug_shows_its_traceback_and_exit_code_1(tmp_path, planted):
    """A bug is not bad input: an error that is not a ``sparsetopo.errors.InputError`` raised
    deep inside ``analyze`` (planted here) keeps its traceback and exits with 1, whatever its
    type (``ValueError`` and ``KeyError`` included)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import sparsetopo.analysis as a\n"
        "def boom(*args, **kwargs):\n"
        f"    raise {planted}('planted bug')\n"
        "a.analyze_network = boom\n"
        "sys.argv = ['sparsetopo', 'analyze', '--model', 'mlp', '--pruning', 'uniform',\n"
        "            '--sparsity', '0.9', '--quiet', '--no-picture', '--out', 'out']\n"
        "from sparsetopo.__main__ import main\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert "Traceback (most recent call last)" in done.stderr, done.stderr
    assert f"{planted}: " in done.stderr and "planted bug" in done.stderr
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_names_are_case_insensitive(tmp_path):
    r = run("analyze", "--model", "MLP", "--pruning", "SNIP", "--dataset", "Digits",
            "--sparsity", "0.9", "--json", "--no-picture", "--quiet", "--out", tmp_path)
    assert r.exit_code == 0, r.output
    network = json.loads(r.output)["network"]
    assert (network["model"], network["pruning"], network["dataset"]) == ("mlp", "snip",
                                                                          "digits")
