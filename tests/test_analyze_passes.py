"""``analyze`` when the MGE would not fit: the path and degree topometrics by passes of the
network, the structural ones on the packed undirected MGE (the values the built graph gives),
what does not fit NaN with the reason, and a refusal only when even the passes would not fit
(docs/scale.md, "Rules")."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from cli_checks import one_line_error, run

import sparsetopo.encoding._multipartite as mp
from sparsetopo import analysis, metrics
from sparsetopo.errors import GraphTooLargeError

TINY = SimpleNamespace(available=1024, total=2048, used=1024, percent=50.0)
CONV6 = ["--model", "conv6", "--input-size", "8", "--pruning", "uniform", "--sparsity", "0.9",
         "--quiet"]
PASS_KEYS = metrics.NETWORK_PATH_METRICS  # the 13 metrics of the passes
SPECTRA = ("spectral_gap", "spectral_radius")  # by the solvers on products of passes
STRUCTURAL = metrics.NETWORK_TOPOLOGY_METRICS  # on the packed undirected MGE


def assert_same_paths(got: dict, want: dict) -> None:
    """The paths table: numbers equal to 1e-12, the rest (layers, cut, headline) exactly."""
    assert set(got) == set(want)
    for k, v in want.items():
        if isinstance(v, (int, float)) and v is not None:
            assert got[k] == pytest.approx(v, rel=1e-12), k
        else:
            assert got[k] == v, k


def mge_does_not_fit(mp_patch: pytest.MonkeyPatch) -> None:
    """The MGE's memory check (``encoding.check_memory``) sees 1 KiB available; the passes see
    the machine's real memory."""
    mp_patch.setattr(mp, "psutil", SimpleNamespace(virtual_memory=lambda: TINY))


def packed_does_not_fit(mp_patch: pytest.MonkeyPatch) -> None:
    """The MGE does not fit, nor its packed undirected graph; the passes do."""
    mge_does_not_fit(mp_patch)
    huge = metrics.TopologyEstimate(1, 1, True, 1 << 50, 1 << 50)
    mp_patch.setattr(metrics, "estimate_network_topology", lambda *a, **k: huge)


def nothing_fits(mp_patch: pytest.MonkeyPatch) -> None:
    """Every memory check (the MGE's and the passes') sees 1 KiB available."""
    mp_patch.setattr(mp.psutil, "virtual_memory", lambda: TINY)


@pytest.fixture(scope="module")
def net():
    return analysis.build_network("resnet20", "uniform", 0.9, 0, "digits", None, quiet=True,
                                  input_size=8)


@pytest.fixture(scope="module")
def built(net):
    """The oracle: the values computed on the materialised MGEs."""
    return analysis.analyze_network(net, progress=False)


@pytest.fixture(scope="module")
def passes(net):
    with pytest.MonkeyPatch.context() as m:
        mge_does_not_fit(m)
        return analysis.analyze_network(net, progress=False)


@pytest.fixture(scope="module")
def passes_only(net):
    with pytest.MonkeyPatch.context() as m:
        packed_does_not_fit(m)
        return analysis.analyze_network(net, progress=False)


def test_the_mge_route_has_nothing_unavailable(built):
    assert built["unavailable"] == {}
    assert "passes_s" not in built["timings"]


def test_pass_metrics_are_the_graphs(built, passes):
    """The 13 metrics of the passes equal the built graphs' (the paper's MGE, without identity
    skips, for the topometrics; the MGE with them for the paths table)."""
    assert "passes_s" in passes["timings"] and "encode_s" not in passes["timings"]
    for k in PASS_KEYS:
        assert passes["topometrics"][k] == pytest.approx(built["topometrics"][k], rel=1e-12), k
    for k in SPECTRA:  # iterative solvers on both routes: equal to their tolerance
        assert passes["topometrics"][k] == pytest.approx(built["topometrics"][k], rel=2e-6), k
    assert "spectra_s" in passes["timings"]
    for k in STRUCTURAL:  # the same kernels on the packed graph: exactly
        assert passes["topometrics"][k] == built["topometrics"][k], k
    assert "topology_s" in passes["timings"]
    assert passes["unavailable"] == {}  # no picture asked for
    for k in ("nodes", "edges", *metrics.PATH_METRICS):
        assert passes["paths"][k] == pytest.approx(built["paths"][k], rel=1e-12), k
    # resnet20 has identity shortcuts: the two conventions differ, and each table keeps its own
    assert passes["topometrics"]["edges"] < passes["paths"]["edges"]
    assert passes["topometrics_shown"] == {k: v for k, v in passes["topometrics"].items()
                                           if k not in metrics.PATH_METRICS}
    assert passes["ramanujan"] == built["ramanujan"]
    assert passes["encodings"] == built["encodings"]


def test_the_rest_is_nan_with_its_reason(built, passes_only):
    missing = [k for k in built["topometrics"] if k not in (*PASS_KEYS, *SPECTRA)]
    assert missing == list(STRUCTURAL)
    assert all(built["topometrics"][k] is not None for k in missing)
    for k in missing:
        assert passes_only["topometrics"][k] is None, k
        assert passes_only["unavailable"][k].startswith("needs the packed undirected MGE (~"), k
        assert "GiB available" in passes_only["unavailable"][k]
    assert_same_paths(passes_only["paths"], built["paths"])  # bottlenecks and signal cut too
    assert passes_only["layers"] == built["layers"]  # per-layer effective densities by passes
    assert set(passes_only["unavailable"]) == set(missing)


def test_identity_skips_topometrics_are_the_paths_mge(net, passes, monkeypatch):
    mge_does_not_fit(monkeypatch)
    skips = analysis.analyze_network(net, identity_skips=True, progress=False)
    for k in ("nodes", "edges", *metrics.PATH_METRICS):
        assert skips["topometrics"][k] == passes["paths"][k], k
    assert skips["topometrics"]["one_hop"] == pytest.approx(
        (skips["paths"]["nodes"] + skips["paths"]["edges"]) / skips["paths"]["nodes"])


def test_unrolled_topometrics_are_nan_with_the_reason(net, passes, monkeypatch):
    mge_does_not_fit(monkeypatch)
    result = analysis.analyze_network(net, encoding="unrolled", progress=False)
    assert result["topometrics"]["two_hop"] is None and result["topometrics"]["edges"] is None
    assert "unrolled BGEs" in result["unavailable"]["edges"]
    assert result["paths"] == passes["paths"]


def test_no_picture_and_the_files_say_why(net, tmp_path, monkeypatch):
    mge_does_not_fit(monkeypatch)
    result = analysis.analyze_network(net, progress=False, picture=tmp_path / "mge.png")
    assert "picture" not in result and not (tmp_path / "mge.png").exists()
    assert result["unavailable"]["picture"].startswith("not drawn: it needs the MGE's edges")
    written = analysis.write_results(result, tmp_path)
    assert [p.name for p in written] == ["metrics.csv", "metrics.json"]
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["topometrics"]["two_hop"] is not None and saved["unavailable"] == {
        "picture": result["unavailable"]["picture"]}


def test_refused_when_even_the_passes_do_not_fit(net, monkeypatch):
    nothing_fits(monkeypatch)
    with pytest.raises(GraphTooLargeError, match="even its path and degree metrics by passes"):
        analysis.analyze_network(net, progress=False)


def test_cli_prints_the_reasons_and_exits_0(tmp_path, monkeypatch):
    packed_does_not_fit(monkeypatch)
    r = run("analyze", *CONV6, "--out", tmp_path)
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())  # rich wraps long lines
    assert "NaN, not computed: " in text and "two_hop" in text and "spectral_gap" in text
    assert "needs the packed undirected MGE (~" in text and "GiB available" in text
    assert "picture not drawn: it needs the MGE's edges" in text
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["topometrics"]["log10_paths"] is not None and saved["unavailable"]
    assert not (tmp_path / "mge.png").exists()


def test_cli_force_still_builds_the_mge(tmp_path, monkeypatch):
    mge_does_not_fit(monkeypatch)
    r = run("analyze", *CONV6, "--force", "--out", tmp_path)
    assert r.exit_code == 0, r.output
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["unavailable"] == {} and saved["topometrics"]["two_hop"] is not None
    assert (tmp_path / "mge.png").exists() and "not computed" not in r.output


def test_cli_refusal_is_one_line(tmp_path, monkeypatch):
    nothing_fits(monkeypatch)
    r = run("analyze", *CONV6, "--out", tmp_path / "o")
    one_line_error(r, "GiB", "by passes", "--force")
    assert not (tmp_path / "o" / "metrics.json").exists()


# --- the MGE alone fits (not next to the one with identity skips): every topometric ---------


@pytest.fixture(scope="module")
def alone(net):
    with pytest.MonkeyPatch.context() as m:
        m.setattr(analysis, "mge_route_bytes", lambda *a: (2**62, 0))
        return analysis.analyze_network(net, progress=False)


def test_mge_alone_gives_every_topometric_of_the_graph(built, alone):
    assert {"passes_s", "encode_s", "topometrics_s"} <= set(alone["timings"])
    assert alone["topometrics"] == built["topometrics"]  # the same graph, the same kernels
    assert alone["topometrics_shown"] == built["topometrics_shown"]
    for k in ("nodes", "edges", *metrics.PATH_METRICS):
        assert alone["paths"][k] == pytest.approx(built["paths"][k], rel=1e-12), k
    assert alone["unavailable"] == {}  # everything but the picture, which was not asked for
    assert_same_paths(alone["paths"], built["paths"])
    assert alone["layers"] == built["layers"]


def test_mge_alone_normalised_and_no_picture(net, built, tmp_path, monkeypatch):
    monkeypatch.setattr(analysis, "mge_route_bytes", lambda *a: (2**62, 0))
    result = analysis.analyze_network(net, normalise="paper", progress=False,
                                      picture=tmp_path / "mge.png")
    assert result["topometrics_shown"] == pytest.approx(
        metrics.normalise_paper({k: v for k, v in built["topometrics"].items()
                                 if k not in metrics.PATH_METRICS}))
    assert result["unavailable"]["picture"].startswith(
        "not drawn: it needs the MGE with identity skips")
    assert not (tmp_path / "mge.png").exists()


def test_route_memory_counts_both_graphs_and_the_topometrics(net):
    from sparsetopo import encoding

    shape = net.input_shape
    plain = encoding.estimate(net.model, shape)
    skips = encoding.estimate(net.model, shape, True)
    both, alone = analysis.mge_route_bytes(skips, plain, False)
    extra = metrics.estimate_topometrics(plain.nodes, plain.edges)
    assert alone == max(plain.peak_bytes, plain.graph_bytes - 4 * plain.edges + extra)
    assert both >= skips.graph_bytes + plain.graph_bytes > alone - extra
    assert both > alone
    same, _ = analysis.mge_route_bytes(skips, skips, True)
    assert skips.peak_bytes <= same < both


def test_cli_mge_alone_prints_what_needs_the_other_mge(tmp_path, monkeypatch):
    monkeypatch.setattr(analysis, "mge_route_bytes", lambda *a: (2**62, 0))
    r = run("analyze", *CONV6, "--out", tmp_path)
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "picture not drawn: it needs the MGE with identity skips" in text
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert all(v is not None for v in saved["topometrics"].values())
    assert saved["paths"]["min_alive_channels"] is not None
    assert set(saved["unavailable"]) == {"picture"}
    assert not (tmp_path / "mge.png").exists()
