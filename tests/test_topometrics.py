"""Oracle tests for the topometrics (SPEC 4): networkx / igraph / numpy / brute force."""

from __future__ import annotations

import itertools
import math

import igraph as ig
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from random_graphs import bipartite_graph, chain_graph, random_layered_graph

import sparsetopo.metrics._lanczos as L
import sparsetopo.metrics._topometrics as tm
import sparsetopo.metrics.spectral as spectral
from sparsetopo.encoding.graph import LayeredGraph, Partition, from_edges
from sparsetopo.metrics.motifs import _long_edge_nodes, _motif_root_counts, motif_sample
from sparsetopo.metrics.paths import path_sweeps

SPEC_KEYS = [
    "nodes", "edges", "sink_nodes", "source_nodes", "disconnected_nodes",
    "removable_out_edges", "removable_in_edges", "one_hop", "two_hop", "motifs", "strength",
    "k_core", "cut_edges", "cut_nodes", "connected_components", "mean_component_size",
    "spectral_gap", "spectral_radius", "effective_density", "alive_edges", "log10_paths",
    "log10_path_norm",
]  # fmt: skip
SEEDS = range(60)


def to_nx(g: LayeredGraph) -> nx.DiGraph:
    coo = g.adjacency.tocoo()
    d = nx.DiGraph()
    d.add_nodes_from(range(g.n_nodes))
    rows, cols, weights = coo.row.tolist(), coo.col.tolist(), coo.data.tolist()
    d.add_weighted_edges_from(zip(rows, cols, weights, strict=True))
    return d


def nodes_of(p: Partition) -> range:
    return range(p.offset, p.stop)


def oracle(g: LayeredGraph) -> dict[str, float]:
    """Every deterministic metric, computed independently with networkx and numpy."""
    d = to_nx(g)
    u = d.to_undirected()
    n = d.number_of_nodes()
    inp, out = set(nodes_of(g.input_partition)), set(nodes_of(g.output_partition))
    sinks = [v for v in d if v not in out and d.out_degree(v) == 0 and d.in_degree(v) > 0]
    sources = [v for v in d if v not in inp and d.in_degree(v) == 0 and d.out_degree(v) > 0]
    res = {
        "nodes": n,
        "edges": d.number_of_edges(),
        "sink_nodes": len(sinks),
        "source_nodes": len(sources),
        "disconnected_nodes": sum(1 for v in d if d.degree(v) == 0),
        "removable_out_edges": sum(d.in_degree(v) for v in sinks),
        "removable_in_edges": sum(d.out_degree(v) for v in sources),
        "one_hop": np.mean([len({v} | set(d.successors(v))) for v in d]),
        "two_hop": np.mean([len(nx.single_source_shortest_path_length(d, v, 2)) for v in d]),
        "strength": np.mean(
            [sum(abs(w) for *_, w in d.in_edges(v, data="weight"))
             + sum(abs(w) for *_, w in d.out_edges(v, data="weight")) for v in d]
        ),  # fmt: skip
        "k_core": np.mean(list(nx.core_number(u).values())),
        "cut_edges": len(list(nx.bridges(u))),
        "cut_nodes": len(list(nx.articulation_points(u))),
        "connected_components": nx.number_weakly_connected_components(d),
    }
    res["mean_component_size"] = n / res["connected_components"]
    s = np.abs(nx.to_numpy_array(d, nodelist=range(n), weight="weight"))
    s = s + s.T
    mags = np.sort(np.abs(np.linalg.eigvalsh(s)))[::-1]
    mags = np.concatenate([mags, np.zeros(3)])
    res["spectral_gap"] = mags[0] - mags[2]
    res["spectral_radius"] = np.linalg.eigvalsh(np.diag(s.sum(1)) - s).max() if n else 0.0
    # paths: exact integer / float DP over a networkx topological order
    count = dict.fromkeys(d, 0)
    norm = dict.fromkeys(d, 0.0)
    for v in inp:
        count[v], norm[v] = 1, 1.0
    for v in nx.topological_sort(d):
        if v in out:
            continue
        for _, x, w in d.out_edges(v, data="weight"):
            count[x] += count[v]
            norm[x] += norm[v] * abs(w)
    total = sum(count[v] for v in out)
    total_norm = sum(norm[v] for v in out)
    res["log10_paths"] = math.log10(total) if total else -math.inf
    res["log10_path_norm"] = math.log10(total_norm) if total_norm > 0 else -math.inf
    fwd = inp.union(*[nx.descendants(d, v) for v in inp]) if inp else set()
    bwd = out.union(*[nx.ancestors(d, v) for v in out]) if out else set()
    res["alive_edges"] = sum(1 for a, b in d.edges if a in fwd and b in bwd)
    return res


def assert_metrics_match(got: dict, want: dict) -> None:
    for k, w in want.items():
        g = got[k]
        if isinstance(w, (int, np.integer)) and k not in ("one_hop", "two_hop"):
            assert g == w, (k, g, w)
        elif math.isinf(w):
            assert g == w, (k, g, w)
        else:
            assert g == pytest.approx(w, rel=1e-6, abs=1e-9), (k, g, w)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_graphs_against_oracles(seed):
    g = random_layered_graph(seed)
    got = tm.topometrics(g, seed=seed)
    assert list(got) == SPEC_KEYS
    assert_metrics_match(got, oracle(g))
    assert got["effective_density"] == pytest.approx(
        got["alive_edges"] / got["edges"] if got["edges"] else math.nan, nan_ok=True
    )


def test_generator_covers_the_cases():
    graphs = [random_layered_graph(s) for s in SEEDS]
    assert any(any(p.size == 0 for p in g.partitions) for g in graphs)
    assert any(g.output_index != len(g.partitions) - 1 for g in graphs)
    assert any(tm.disconnected_nodes(g) > 0 for g in graphs)
    assert any(np.any(g.adjacency.data < 0) for g in graphs)
    skip = [
        np.any(g.partition_of(g.adjacency.tocoo().col) - g.partition_of(g.adjacency.tocoo().row) > 1)
        for g in graphs
    ]
    assert any(skip)
    assert any(len(g.partitions) >= 5 for g in graphs)


@pytest.mark.parametrize("length,width", [(2, 1), (3, 1), (6, 1), (5, 3)])
def test_chains(length, width):
    g = chain_graph(length, width, weight=-0.5)
    got = tm.topometrics(g)
    assert_metrics_match(got, oracle(g))
    assert got["cut_edges"] == (length - 1) * width
    assert got["cut_nodes"] == (length - 2) * width
    assert got["connected_components"] == width
    assert got["log10_paths"] == pytest.approx(math.log10(width))
    assert got["log10_path_norm"] == pytest.approx(math.log10(width * 0.5 ** (length - 1)))


def brute_force_paths(g: LayeredGraph) -> tuple[int, float]:
    d = to_nx(g)
    count, norm = 0, 0.0
    for s in nodes_of(g.input_partition):
        for t in nodes_of(g.output_partition):
            for path in nx.all_simple_paths(d, s, t):
                count += 1
                norm += math.prod(abs(d[a][b]["weight"]) for a, b in itertools.pairwise(path))
    return count, norm


@pytest.mark.parametrize("seed", range(40))
def test_path_counts_by_enumeration(seed):
    g = random_layered_graph(1000 + seed, max_partitions=5, max_size=6)
    count, norm = brute_force_paths(g)
    assert tm.log10_paths(g) == (pytest.approx(math.log10(count)) if count else -math.inf)
    assert tm.log10_path_norm(g) == (pytest.approx(math.log10(norm)) if norm > 0 else -math.inf)


def test_path_counts_do_not_overflow():
    # 400 partitions of 8 fully connected nodes: 8 * 8^399 paths, far beyond float64.
    length, width = 400, 8
    parts = [Partition(f"l{p}", p * width, (width,)) for p in range(length)]
    u, v = np.meshgrid(np.arange(width), np.arange(width), indexing="ij")
    src = np.concatenate([p * width + u.ravel() for p in range(length - 1)])
    dst = np.concatenate([(p + 1) * width + v.ravel() for p in range(length - 1)])
    g = from_edges(src, dst, np.full(src.size, 1e-3, np.float32), parts)
    assert tm.log10_paths(g) == pytest.approx(length * math.log10(width), rel=1e-9)
    want_norm = length * math.log10(width) + (length - 1) * math.log10(np.float32(1e-3))
    assert tm.log10_path_norm(g) == pytest.approx(want_norm, rel=1e-9)


@pytest.mark.parametrize("seed", range(16))
def test_sparse_spectra_match_dense(seed):
    # odd seeds: no skip edges, i.e. bipartite graphs (+-symmetric spectra)
    g = random_layered_graph(2000 + seed, 6, 60, density=0.08, skips=seed % 2 == 0)
    assert g.n_nodes > 32
    want = oracle(g)
    assert tm.spectral_gap(g, dense_max=0) == pytest.approx(want["spectral_gap"], rel=1e-6)
    assert tm.spectral_radius(g, dense_max=0) == pytest.approx(want["spectral_radius"], rel=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_shared_spectra_equal_the_separate_solves(seed, monkeypatch):
    """``topometrics`` runs the gap's and the radius's Lanczos in lockstep on shared passes:
    bitwise the values of the separate solves, and the dense oracle's to 1e-6."""
    monkeypatch.setattr(spectral, "DENSE_SPECTRUM_MAX", 0)  # sparse path inside topometrics too
    g = next(g for s in range(2200 + 50 * seed, 2250 + 50 * seed)
             if tm.GraphView(g := random_layered_graph(s, 6, 60, density=0.08,
                                                       skips=seed % 2 == 0)).n_active > 64)
    timings: dict = {}
    both = tm.topometrics(g, keys=("spectral_gap", "spectral_radius"), seed=seed,
                          timings=timings)
    assert "build:spectra" in timings  # the shared task ran
    assert both["spectral_gap"] == tm.spectral_gap(g, dense_max=0, seed=seed)
    assert both["spectral_radius"] == tm.spectral_radius(g, dense_max=0, seed=seed)
    want = oracle(g)
    assert both["spectral_gap"] == pytest.approx(want["spectral_gap"], rel=1e-6)
    assert both["spectral_radius"] == pytest.approx(want["spectral_radius"], rel=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_symmetric_products_against_scipy_and_the_paired_pass(seed):
    """``(|A| + |A|^T) x`` and its Laplacian to 1e-12 against scipy (a random CSR, edges in any
    direction, negative weights too), and the two-vector pass bitwise each single pass."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    a = sp.random(n, n, density=float(rng.uniform(0.001, 0.1)), random_state=seed,
                  format="csr", dtype=np.float32)
    a.data -= np.float32(0.5)  # negative weights too: the products use |w|
    s = abs(a).astype(np.float64)
    s = (s + s.T).toarray()
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    y = np.full(n, np.nan)  # the kernels must not read what the outputs held before
    spectral._sym_abs_matvec(a.indptr, a.indices, a.data, x1, y)
    np.testing.assert_allclose(y, s @ x1, rtol=1e-12, atol=1e-12)
    y1, y2 = np.full(n, np.nan), np.full(n, np.nan)
    records = np.full((n, 4), np.nan)
    spectral._sym_abs_matvec2(a.indptr, a.indices, a.data, x1, x2, y1, y2, records)
    single2 = np.empty(n)
    spectral._sym_abs_matvec(a.indptr, a.indices, a.data, x2, single2)
    np.testing.assert_array_equal(y1, y)
    np.testing.assert_array_equal(y2, single2)
    ops = spectral._Operators.__new__(spectral._Operators)
    ops.indptr, ops.indices, ops.data, ops.dim = a.indptr, a.indices, a.data, n
    lap = np.empty(n)
    ops.product(x1, lap, laplacian=True)
    np.testing.assert_allclose(lap, s.sum(axis=1) * x1 - s @ x1, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [1, 3, 4, 7, 2049, 5000])
def test_lanczos_vector_kernels_against_numpy(n):
    """The Lanczos step's vector kernels (three-term step, Gram-Schmidt pass) against plain
    numpy, for several lengths and basis sizes."""
    rng = np.random.default_rng(n)
    v, v_prev, r0 = (rng.normal(size=n) for _ in range(3))
    r = r0.copy()
    a, s = L._three_term(r, v, v_prev, 0.7)
    want = r0 - 0.7 * v_prev
    want_a = float(v @ want)
    want -= want_a * v
    assert a == pytest.approx(want_a, rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(r, want, rtol=1e-12, atol=1e-12)
    assert s == pytest.approx(float(want @ want), rel=1e-12)
    for m in (0, 1, 3, 4, 5, 8, 13):
        basis = rng.normal(size=(m + 1, n))
        r = r0.copy()
        h = np.full(m + 1, np.nan)
        nrm = L._orthogonalize(basis, m, r, h)
        want_h = basis[:m] @ r0
        want = r0 - want_h @ basis[:m]
        np.testing.assert_allclose(h[:m], want_h, rtol=1e-12, atol=1e-10)
        np.testing.assert_allclose(r, want, rtol=1e-12, atol=1e-10)
        assert nrm == pytest.approx(float(want @ want), rel=1e-12)


def test_shared_spectra_fall_back_when_a_solver_does_not_converge(monkeypatch):
    from sparsetopo.metrics._lanczos import LanczosNoConvergence

    def never(*args, **kwargs):
        raise LanczosNoConvergence("forced")
        yield  # a generator, as the real solver

    g = next(g for s in range(2300, 2350)
             if tm.GraphView(g := random_layered_graph(s, 6, 60, density=0.08,
                                                       skips=False)).n_active > 64)
    want = oracle(g)
    monkeypatch.setattr(spectral, "largest_eigenvalue_steps", never)
    gap, radius = spectral._shared_spectra(tm.GraphView(g), seed=0)
    assert radius == pytest.approx(want["spectral_radius"], rel=1e-6)  # solved apart
    assert gap == pytest.approx(want["spectral_gap"], rel=1e-6)


@pytest.mark.parametrize("shape", [(40, 60, 0.1), (200, 40, 0.05), (300, 33, 0.02)])
def test_sparse_spectral_gap_of_bipartite_graphs(shape):
    g = bipartite_graph(*shape, seed=sum(shape[:2]))
    assert tm.spectral_gap(g, dense_max=0) == pytest.approx(oracle(g)["spectral_gap"], rel=1e-6)


# --- motifs --------------------------------------------------------------------------------


def undirected_igraph(g: LayeredGraph, directed: bool = False) -> ig.Graph:
    coo = g.adjacency.tocoo()
    return ig.Graph(n=g.n_nodes, edges=list(zip(coo.row.tolist(), coo.col.tolist(), strict=True)),
                    directed=directed)  # fmt: skip


def connected_4sets_with_min(d: nx.Graph, v: int) -> int:
    later = [u for u in d if u > v]
    return sum(nx.is_connected(d.subgraph((v, *t))) for t in itertools.combinations(later, 3))


def root_counts(g: LayeredGraph, roots: np.ndarray, flag_all: bool = False) -> np.ndarray:
    view = tm.GraphView(g)
    uptr, uidx = view.undirected
    if flag_all:  # no triangle pruning at all
        flag = np.ones(g.n_nodes, bool)
    else:
        flag = _long_edge_nodes(*view.out_rows, view.partition_index)
    return _motif_root_counts(uptr, uidx, flag, roots)


@pytest.mark.parametrize("seed", range(20))
def test_motif_root_counts_brute_force(seed):
    g = random_layered_graph(3000 + seed, max_partitions=5, max_size=5)
    u = to_nx(g).to_undirected()
    roots = np.arange(g.n_nodes)
    want = [connected_4sets_with_min(u, v) for v in roots]
    assert root_counts(g, roots).tolist() == want
    assert root_counts(g, roots, flag_all=True).tolist() == want


@pytest.mark.parametrize("seed", range(15))
def test_motif_totals_match_igraph(seed):
    g = random_layered_graph(4000 + seed, max_partitions=6, max_size=20)
    total = int(root_counts(g, np.arange(g.n_nodes)).sum())
    every = list(range(g.n_nodes))
    for directed in (False, True):  # weakly connected directed == connected undirected
        est = undirected_igraph(g, directed).motifs_randesu_estimate(size=4, sample=every)
        assert est == total


@pytest.mark.parametrize("seed", range(4))
def test_motifs_equal_igraph_estimate_with_the_same_sample(seed):
    graphs = (random_layered_graph(s, 8, 400, 0.03) for s in itertools.count(5000 + 100 * seed))
    g = next(g for g in graphs if g.n_nodes >= 2000)
    sample = motif_sample(g.n_nodes, seed)
    assert sample.size == g.n_nodes // 1000 >= 2
    est = undirected_igraph(g).motifs_randesu_estimate(size=4, sample=sample.tolist())
    got = tm.motifs(g, seed=seed)
    assert got == pytest.approx(est, rel=1e-12)
    assert tm.motifs(g, seed=seed) == got  # reproducible
    others = {tm.motifs(g, seed=s) for s in range(seed + 1, seed + 6)}
    assert len(others | {got}) > 1  # the seed matters (so some estimates are non-zero)


def test_motifs_zero_below_1000_nodes():
    assert tm.motifs(random_layered_graph(1)) == 0.0


# --- effective density, validation, tables -------------------------------------------------


def test_effective_density_with_weight_ids():
    # input(2) -> a(2) -> out(1); weight 0 makes both edges into a[0], weight 1 the dead
    # edge into a[1] (a[1] has no path to the output), weight 2 a[0] -> out, weight 3 unused.
    parts = [Partition("input", 0, (2,)), Partition("a", 2, (2,)), Partition("out", 4, (1,))]
    g = from_edges(np.array([0, 1, 0, 2]), np.array([2, 2, 3, 4]), np.ones(4, np.float32), parts)
    coo = g.adjacency.tocoo()
    assert list(zip(coo.row, coo.col, strict=True)) == [(0, 2), (0, 3), (1, 2), (2, 4)]
    ids = np.array([0, 1, 0, 2])
    assert tm.effective_density(g, edge_weight_ids=ids, n_weights=4) == pytest.approx(2 / 4)
    g.meta["n_weights"] = 3
    assert tm.effective_density(g, edge_weight_ids=ids) == pytest.approx(2 / 3)
    assert tm.effective_density(g) == pytest.approx(3 / 4)  # edge fallback: alive / edges
    g2 = LayeredGraph(g.adjacency, parts, meta={"n_weights": 4}, edge_weight_ids=ids)
    assert tm.effective_density(g2) == pytest.approx(2 / 4)  # ids read from the graph
    with pytest.raises(ValueError, match="edge_weight_ids"):
        tm.effective_density(g, edge_weight_ids=np.zeros(3, int))


def test_rejects_edges_that_go_backwards():
    parts = [Partition("input", 0, (2,)), Partition("b", 2, (2,))]
    g = from_edges(np.array([2]), np.array([0]), np.ones(1, np.float32), parts)
    with pytest.raises(ValueError, match="lower to a higher partition"):
        tm.topometrics(g)
    g = from_edges(np.array([2]), np.array([3]), np.ones(1, np.float32), parts)
    with pytest.raises(ValueError, match="partition 'b'"):
        tm.topometrics(g)
    with pytest.raises(TypeError, match="LayeredGraph"):
        tm.topometrics(g.adjacency)


def test_unsorted_csr_is_handled():
    g = random_layered_graph(7)
    a = g.adjacency
    indices, data = a.indices.copy(), a.data.copy()
    for r in range(a.shape[0]):  # reverse every row
        s, e = a.indptr[r], a.indptr[r + 1]
        indices[s:e], data[s:e] = indices[s:e][::-1].copy(), data[s:e][::-1].copy()
    b = sp.csr_matrix((data, indices, a.indptr.copy()), shape=a.shape)
    assert not b.has_sorted_indices
    g2 = LayeredGraph(b, g.partitions, g.input_index, g.output_index)
    assert tm.topometrics(g2) == tm.topometrics(g)
    # weight ids follow their edges through the re-sorting: id 0 on the dead edges only
    view = tm.GraphView(g)
    fwd, co = path_sweeps(view).forward, path_sweeps(view).backward
    alive = np.repeat(fwd, np.diff(a.indptr)) & co[a.indices]
    assert alive.any() and not alive.all()
    ids = np.where(alive, -1, 0)
    rev = ids.copy()
    for r in range(a.shape[0]):
        s, e = a.indptr[r], a.indptr[r + 1]
        rev[s:e] = ids[s:e][::-1]
    assert tm.effective_density(g, edge_weight_ids=ids, n_weights=1) == 0.0
    assert tm.effective_density(g2, edge_weight_ids=rev, n_weights=1) == 0.0


def test_empty_graph():
    g = from_edges(np.zeros(0, int), np.zeros(0, int), np.zeros(0, np.float32),
                   [Partition("input", 0, (3,)), Partition("out", 3, (2,))])  # fmt: skip
    m = tm.topometrics(g)
    assert m["edges"] == 0 and m["disconnected_nodes"] == 5 and m["connected_components"] == 5
    assert m["spectral_gap"] == 0.0 and m["log10_paths"] == -math.inf
    assert math.isnan(m["effective_density"])


def test_table_and_paper_normalisation():
    graphs = {"a": random_layered_graph(3), "b": random_layered_graph(4)}
    raw = tm.topometrics_table(graphs)
    assert list(raw.columns) == SPEC_KEYS and list(raw.index) == ["a", "b"]
    paper = tm.topometrics_table({k: raw.loc[k].to_dict() for k in raw.index}, normalise="paper")
    # SPEC 4: the four means are divided by edges (published rows: 1-hop_nei * edges == 1 +
    # edges / nodes), the dead-end node counts and the component size by nodes
    per_node = ["sink_nodes", "source_nodes", "disconnected_nodes", "mean_component_size"]
    per_edge = ["removable_out_edges", "removable_in_edges", "cut_edges", "cut_nodes",
                "one_hop", "two_hop", "strength", "k_core"]  # fmt: skip
    for k in SPEC_KEYS:
        div = raw["nodes"] if k in per_node else raw["edges"] if k in per_edge else 1
        pd.testing.assert_series_equal(paper[k], raw[k] / div, check_names=False)
    np.testing.assert_allclose(paper["one_hop"] * raw["edges"], 1 + raw["edges"] / raw["nodes"])
    with pytest.raises(ValueError, match="normalise"):
        tm.topometrics_table(graphs, normalise="nodes")


def test_topometrics_subset_of_keys():
    g = random_layered_graph(5)
    full = tm.topometrics(g)
    some = tm.topometrics(g, keys=["log10_paths", "nodes", "cut_edges"])
    assert list(some) == ["nodes", "cut_edges", "log10_paths"]
    assert all(some[k] == full[k] for k in some)
    assert set(tm.PAPER_METRICS) | set(tm.PATH_METRICS) | {"nodes", "edges"} == set(tm.METRICS)
    assert len(tm.PAPER_METRICS) == 16
    with pytest.raises(ValueError, match="unknown topometric"):
        tm.topometrics(g, keys=["nope"])


def test_layerwise_on_bipartite_graphs():
    layers = [bipartite_graph(9, 4, 0.5, seed=s, layer=f"conv{s}") for s in range(3)]
    df = tm.layerwise(layers)
    assert list(df["layer"]) == ["conv0", "conv1", "conv2"]
    assert list(df.columns) == ["layer", *SPEC_KEYS]
    for g, (_, row) in zip(layers, df.iterrows(), strict=True):
        assert_metrics_match(row.to_dict(), oracle(g))
    mean = tm.layer_mean(layers)
    assert list(mean) == SPEC_KEYS
    for k in SPEC_KEYS:
        assert mean[k] == pytest.approx(np.mean([oracle(g).get(k, df[k][i])
                                                  for i, g in enumerate(layers)]))  # fmt: skip
    assert tm.layer_mean(df) == mean


def test_descriptions_cover_every_metric():
    assert list(tm.METRIC_DESCRIPTIONS) == SPEC_KEYS == list(tm.METRICS)
