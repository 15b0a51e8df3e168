import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sparsetopo.cli.study import app
from sparsetopo.study.config import (
    ConfigError,
    expand_runs,
    load_config,
    load_preset,
    parse_config,
    preset_names,
)

ROOT = Path(__file__).resolve().parents[1]


def grid(**over) -> dict:
    g = {"models": ["mlp"], "datasets": ["digits"], "methods": ["uniform", "snip"],
         "sparsities": [0.5, 0.9], "seeds": [0, 1]}
    g.update(over)
    return {"grid": g}


def test_expand_adds_dense_baselines():
    raw = grid(models=["mlp", "conv6"])
    raw["training"] = {"epochs": 2}
    runs = expand_runs(parse_config(raw))
    assert len(runs) == 2 * (2 + 2 * 2 * 2)
    dense = [r for r in runs if r.method == "dense"]
    assert {(r.model, r.seed, r.sparsity) for r in dense} == {
        ("mlp", 0, 0.0), ("mlp", 1, 0.0), ("conv6", 0, 0.0), ("conv6", 1, 0.0)}
    assert len({r.run_id for r in runs}) == len(runs)
    assert {(r.method, r.sparsity) for r in runs if r.method != "dense"} == {
        ("uniform", 0.5), ("uniform", 0.9), ("snip", 0.5), ("snip", 0.9)}


def test_controls_add_the_control_runs_of_every_method():
    raw = grid(methods=["uniform", "snip", "snip+fanin-shuffle"], sparsities=[0.9], seeds=[0])
    raw["grid"]["controls"] = ["layer-shuffle", "fanin-shuffle"]
    config = parse_config(raw)
    assert config.controls == ("layer-shuffle", "fanin-shuffle")
    runs = expand_runs(config)
    methods = [r.method for r in runs]
    assert methods.count("dense") == 1  # no control of a dense baseline
    assert sorted(m for m in methods if m != "dense") == sorted([
        "uniform", "snip", "snip+fanin-shuffle", "uniform+layer-shuffle",
        "uniform+fanin-shuffle", "snip+layer-shuffle"])  # no control of a control
    without = expand_runs(parse_config(grid(methods=["uniform", "snip"], sparsities=[0.9],
                                            seeds=[0])))
    assert {r.run_id for r in without} <= {r.run_id for r in runs}  # same ids as before


def test_run_id_is_sha256_of_canonical_config():
    raw = grid(methods=["snip"], sparsities=[0.9], seeds=[3])
    raw["training"] = {"epochs": 16, "lr": 0.05}
    raw["data"] = {"train_subset": 100, "data_dir": "/somewhere"}
    run = [r for r in expand_runs(parse_config(raw)) if r.method == "snip"][0]
    expected = {
        "model": "mlp", "dataset": "digits", "method": "snip", "sparsity": 0.9, "seed": 3,
        "training": {"epochs": 16, "lr": 0.05, "momentum": 0.9, "weight_decay": 0.0001,
                     "batch_size": 128, "milestones": [8, 12], "gamma": 0.1, "augment": False},
        "data": {"train_subset": 100, "test_subset": 0, "image_size": 0},
        "metrics": {"identity_skips": False},
    }
    text = json.dumps(expected, sort_keys=True, separators=(",", ":"))
    assert run.run_id == hashlib.sha256(text.encode()).hexdigest()
    assert run.to_dict()["data"]["data_dir"] == "/somewhere"  # kept, but not hashed


@pytest.mark.parametrize("section, key, value", [
    ("training", "epochs", 3), ("training", "lr", 0.2), ("training", "batch_size", 32),
    ("data", "train_subset", 50), ("data", "test_subset", 10), ("data", "image_size", 8),
    ("metrics", "identity_skips", True), ("training", "amp", True),
    ("training", "channels_last", True),
])
def test_run_id_changes_with_every_setting(section, key, value):
    base = expand_runs(parse_config(grid()))
    raw = grid()
    raw[section] = {key: value}
    changed = expand_runs(parse_config(raw))
    assert [r.run_id for r in base] != [r.run_id for r in changed]
    assert not {r.run_id for r in base} & {r.run_id for r in changed}


def test_run_ids_of_existing_configurations_are_unchanged():
    """New training options at their defaults leave the hashed configuration as it was, so
    results files written before them keep their finished runs (id pinned from the release
    before ``amp``/``channels_last``)."""
    runs = expand_runs(load_preset("smoke"))
    assert runs[0].run_id == "9febf7069158f0fdc5b486c51bc91fd9c17e41d075ab3f9b087c3544b8dde111"
    assert runs[5].run_id == "92afafe8ffd87e6beddf780cea7765732808268b03e8f3b4be732b4e2af206f3"
    off = {**grid(), "training": {"amp": False, "channels_last": False}}
    assert [r.run_id for r in expand_runs(parse_config(off))] == [
        r.run_id for r in expand_runs(parse_config(grid()))]
    on = expand_runs(parse_config({**grid(), "training": {"amp": True}}))[0]
    assert on.training.amp is True and on.to_dict()["training"]["amp"] is True
    assert type(on).from_dict(on.to_dict()) == on


def test_data_dir_does_not_change_run_id(tmp_path):
    a = expand_runs(parse_config({**grid(), "data": {"data_dir": "/a"}}))
    b = expand_runs(parse_config({**grid(), "data": {"data_dir": "/b"}}))
    assert [r.run_id for r in a] == [r.run_id for r in b]


def test_training_overrides_and_paper_defaults():
    raw = grid(models=["wrn28_2"], datasets=["tinyimagenet"])
    raw["training"] = {"epochs": 10}
    run = expand_runs(parse_config(raw))[0]
    assert run.training.epochs == 10
    assert run.training.milestones == (3, 6, 8)
    assert run.training.weight_decay == 5e-4
    assert run.training.augment is True
    raw["training"] = {"epochs": 10, "milestones": [5], "weight_decay": 0}
    run = expand_runs(parse_config(raw))[0]
    assert run.training.milestones == (5,) and run.training.weight_decay == 0.0


@pytest.mark.parametrize("raw, words", [
    ({**grid(), "grid2": {}}, ["unknown section [grid2]", "grid, training"]),
    ({"grid": {**grid()["grid"], "model": ["mlp"]}}, ["grid.model", "models, datasets"]),
    ({**grid(), "training": {"epoch": 3}}, ["training.epoch", "epochs"]),
    ({**grid(), "data": {"subset": 3}}, ["data.subset", "train_subset"]),
    (grid(methods=[]), ["grid.methods is empty"]),
    (grid(seeds=[]), ["grid.seeds is empty"]),
    ({}, ["missing [grid]"]),
    ({"grid": {"models": ["mlp"]}}, ["missing grid.datasets"]),
    (grid(sparsities=[0.5, 1.0]), ["sparsity 1.0", "(0, 1)"]),
    (grid(sparsities=[0]), ["sparsity 0", "(0, 1)"]),
    (grid(sparsities=[-0.2]), ["sparsity -0.2"]),
    (grid(sparsities=["0.5"]), ["grid.sparsities", "numbers"]),
    (grid(models=["resnet21"]), ["unknown model 'resnet21'", "resnet20"]),
    (grid(methods=["snipp"]), ["unknown pruning method 'snipp'", "synflow", "grid.methods"]),
    (grid(methods=["snip+shuffle"]), ["unknown control 'shuffle'", "layer-shuffle",
                                      "fanin-shuffle"]),
    ({"grid": {**grid()["grid"], "controls": ["shuffle"]}},
     ["unknown control 'shuffle' in grid.controls", "layer-shuffle, fanin-shuffle"]),
    ({"grid": {**grid()["grid"], "controls": "layer-shuffle"}}, ["grid.controls must be a list"]),
    (grid(datasets=["mnist"]), ["unknown dataset 'mnist'", "digits"]),
    (grid(methods=["dense"]), ["only 'dense'"]),
    (grid(models="mlp"), ["grid.models must be a list"]),
    (grid(seeds=[-1]), ["seed -1"]),
    ({**grid(), "training": {"epochs": 0}}, ["epochs"]),
    ({**grid(), "training": {"lr": "fast"}}, ["training.lr"]),
    ({**grid(), "metrics": {"identity_skips": "no"}}, ["identity_skips"]),
    ({**grid(), "training": {"amp": "yes"}}, ["training.amp must be bool"]),
    ({**grid(), "training": {"channels_last": 1}}, ["training.channels_last must be bool"]),
    ({**grid(), "data": {"train_subset": -5}}, ["data.train_subset"]),
    ({**grid(), "data": {"image_size": 8.5}}, ["data.image_size"]),
])
def test_bad_configs_raise_one_clear_error(raw, words):
    with pytest.raises(ConfigError) as info:
        parse_config(raw, source="study.toml")
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_load_config_file_errors_and_relative_data_dir(tmp_path):
    with pytest.raises(ConfigError, match="nope.toml"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[grid\nmodels = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    good = tmp_path / "sub" / "good.toml"
    good.parent.mkdir()
    good.write_text('[grid]\nmodels=["mlp"]\ndatasets=["digits"]\nmethods=["er"]\n'
                    'sparsities=[0.5]\nseeds=[0]\n[data]\ndata_dir="cifar"\n')
    assert load_config(good).data.data_dir == str(tmp_path / "sub" / "cifar")


def test_presets_and_example_are_valid():
    assert {"digits", "smoke"} <= set(preset_names())
    digits = load_preset("digits")
    assert digits.models == ("conv6", "resnet20") and digits.datasets == ("digits",)
    assert set(digits.methods) == {"uniform", "er", "erk", "snip", "grasp", "synflow", "prospr"}
    assert digits.sparsities == (0.9, 0.98, 0.99, 0.995, 0.998) and len(digits.seeds) == 2
    assert len(expand_runs(digits)) == 2 * (2 + 7 * 5 * 2)
    controls = load_preset("digits-controls")
    assert controls.controls == ("layer-shuffle", "fanin-shuffle")
    assert min(controls.sparsities) >= 0.99 and len(controls.seeds) >= 3
    runs = expand_runs(controls)
    assert len(runs) == 2 * (3 + 4 * 2 * 3 * 3)
    assert {r.method.split("+")[0] for r in runs} - {"dense"} <= set(digits.methods)
    # the same training and data as the digits study: its runs of these methods are shared
    assert controls.training == digits.training and controls.data == digits.data
    assert {r.run_id for r in runs if "+" not in r.method} <= {r.run_id for r in
                                                                expand_runs(digits)} | {
        r.run_id for r in runs if r.seed == 2}
    smoke = load_preset("smoke")
    assert len(smoke.methods) >= 2 and len(expand_runs(smoke)) <= 20
    assert load_config(ROOT / "examples" / "study.toml").name == "example"
    with pytest.raises(ConfigError, match="unknown preset 'nope'; available: .*digits"):
        load_preset("nope")


def test_digits_dst_preset():
    """The five DST methods beside the seven PaI ones, DST updates every 5% of training, the
    training and data of the digits study (its PaI runs are shared: same run ids)."""
    from sparsetopo.training import DST_METHODS

    digits, dst = load_preset("digits"), load_preset("digits-dst")
    assert set(dst.methods) == set(digits.methods) | set(DST_METHODS)
    assert set(dst.sparsities) <= set(digits.sparsities) and min(dst.sparsities) >= 0.98
    assert dst.training == digits.training and dst.data == digits.data
    runs = expand_runs(dst)
    assert len(runs) == 2 * (2 + 12 * 3 * 2)
    for method in DST_METHODS:
        assert dst.dst_config(method).update_interval == 0.05
    shared = {r.run_id for r in expand_runs(digits)}
    pai = [r for r in runs if r.method not in DST_METHODS]
    assert all(r.run_id in shared for r in pai)
    assert not any(r.run_id in shared for r in runs if r.method in DST_METHODS)


def test_cli_bad_config_is_one_line_without_traceback(tmp_path):
    config = tmp_path / "study.toml"
    config.write_text('[grid]\nmodels=["mlp"]\ndatasets=["digits"]\nmethods=["snip"]\n'
                      'sparsities=[1.5]\nseeds=[0]\n')
    proc = subprocess.run(
        [sys.executable, "-m", "sparsetopo", "study", "run", str(config), "--results",
         str(tmp_path / "r.sqlite")], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        f"error: {config}: sparsity 1.5 in grid.sparsities is outside (0, 1)"]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "r.sqlite").exists()


@pytest.mark.parametrize("args, word", [
    (["run", "--preset", "nope"], "unknown preset"),
    (["run"], "either a CONFIG file or --preset"),
    (["run", "missing.toml"], "config file not found"),
    (["run", "--preset", "smoke", "--backend", "slurm"], "unknown backend 'slurm'"),
])
def test_cli_errors(args, word, tmp_path):
    result = CliRunner().invoke(app, [*args, "--results", str(tmp_path / "r.sqlite")])
    assert result.exit_code == 2
    assert word in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
