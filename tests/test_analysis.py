"""The analyze job as a library: the picture drawn next to the metrics, and what a failure in
either leaves on disk."""

from __future__ import annotations

import sys

import pytest

from sparsetopo import analysis, metrics, plot
from sparsetopo import encoding as enc


@pytest.fixture(scope="module")
def net():
    return analysis.build_network("resnet20", "uniform", 0.9, 0, "digits", None, quiet=True,
                                  input_size=8)


def test_picture_alongside_is_the_picture_drawn_alone(net, tmp_path):
    """The thread changes when the picture is drawn, not what: same bytes as ``plot.mge`` on
    the same graph and title after the metrics."""
    result = analysis.analyze_network(net, progress=False, picture=tmp_path / "a" / "mge.png")
    assert result["picture"] == str(tmp_path / "a" / "mge.png")
    assert result["timings"]["picture_s"] > 0
    graph, _ = enc.multipartite_pair(net.model, net.input_shape, False, progress=False)
    title = analysis.picture_title(net.name, net.method, result["network"]["sparsity"],
                                   result["paths"])
    alone = plot.mge(graph, tmp_path / "alone.png", seed=net.seed, title=title,
                     max_edges=analysis.PICTURE_MAX_EDGES, progress=False)
    assert (tmp_path / "a" / "mge.png").read_bytes() == alone.read_bytes()
    written = analysis.write_results(result, tmp_path / "a")
    assert [p.name for p in written] == ["mge.png", "metrics.csv", "metrics.json"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "metrics.csv", "metrics.json", "mge.png"]


def test_failed_metrics_leave_the_old_picture(net, tmp_path, monkeypatch):
    old = tmp_path / "mge.png"
    old.write_bytes(b"old picture")

    def broken(*args, **kwargs):
        raise RuntimeError("metrics broke")

    monkeypatch.setattr(metrics, "topometrics", broken)
    with pytest.raises(RuntimeError, match="metrics broke"):
        analysis.analyze_network(net, progress=False, picture=old)
    assert old.read_bytes() == b"old picture"
    assert [p.name for p in tmp_path.iterdir()] == ["mge.png"]  # no temporary left


def test_failed_picture_raises_and_writes_nothing(net, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("drawing broke")

    monkeypatch.setattr(plot, "mge", broken)
    with pytest.raises(ValueError, match="drawing broke"):
        analysis.analyze_network(net, progress=False, picture=tmp_path / "mge.png")
    assert list(tmp_path.iterdir()) == []


def test_picture_needs_the_mge(net, tmp_path):
    with pytest.raises(analysis.UsageError, match="picture shows the MGE"):
        analysis.analyze_network(net, encoding="rolled", progress=False,
                                 picture=tmp_path / "mge.png")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_release_freed_memory_runs_on_linux():
    assert analysis.release_freed_memory() is True


def test_csv_text_is_what_pandas_writes():
    """``analyze`` writes metrics.csv without pandas; pandas' own ``to_csv`` is the oracle."""
    import io

    import numpy as np
    import pandas as pd

    row = {"model": "resnet20", "note": 'a, "quoted" value', "seed": 3, "weights": None,
           "sparsity": 0.98, "tiny": 1.2345678901234567e-07, "big": 3.0e21, "whole": 7.0,
           "nan": float("nan"), "inf": float("inf"), "np64": np.float64(0.1) * 3,
           "flag": True, "signal_cut": "layer3.2.conv1", "n": np.int64(12)}
    expected = pd.DataFrame([row]).to_csv(index=False)
    assert analysis.csv_text([row]) == expected
    back = pd.read_csv(io.StringIO(analysis.csv_text([row])))
    assert back["np64"][0] == float(row["np64"]) and back["tiny"][0] == row["tiny"]


def test_the_library_call_gives_the_cli_json(tmp_path):
    """``st.analyze`` (one call, the command's defaults and seeds) returns what ``sparsetopo
    analyze --json`` prints, timings aside; path metrics come from the MGE with identity
    skips in both."""
    import inspect
    import json

    from cli_checks import run

    import sparsetopo as st
    from sparsetopo import cli

    args = ["--model", "resnet20", "--pruning", "snip", "--sparsity", "0.98", "--seed", "0",
            "--dataset", "digits", "--input-size", "16"]
    r = run("analyze", *args, "--json", "--no-picture", "--out", tmp_path)
    assert r.exit_code == 0, r.output
    from_cli = json.loads(r.output)
    from_api = st.analyze("resnet20", "snip", 0.98, 0, "digits", input_size=16)
    for result in (from_cli, from_api):
        result.pop("timings")
    assert from_api == from_cli
    assert from_api["paths"]["log10_paths"] > 0  # identity skips: the collapsed stage passes
    defaults = {k: v.default for k, v in inspect.signature(st.analyze).parameters.items()}
    assert (defaults["model"], defaults["pruning"], defaults["sparsity"], defaults["dataset"]) \
        == (cli.DEFAULT_MODEL, cli.DEFAULT_METHOD, cli.DEFAULT_SPARSITY, cli.DEFAULT_DATASET)
