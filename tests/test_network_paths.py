"""Path and degree topometrics by passes of the network (``metrics.network_path_metrics``)
against the materialised MGE: ``topometrics(multipartite(model, shape, identity_skips))`` on
every zoo network, and against an edge-level oracle where the MGE's stored provenance cannot
tell (``effective_density`` on merged pairs).

Integers must be equal; floats to 1e-9 relative, except the ``|w|`` sums (``strength``,
``log10_path_norm``) of graphs where three or more weights merge into one edge: the MGE sums
those in float32 in its own order, the passes round the exact sum once (1e-7 there)."""

from __future__ import annotations

import math
from pathlib import Path

import nets
import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

import sparsetopo as st
from sparsetopo.encoding._multipartite import _job_edges, _plan
from sparsetopo.errors import GraphTooLargeError, InputError, UnsupportedModelError
from sparsetopo.metrics import NETWORK_PATH_METRICS, estimate_network_paths, network_path_metrics
from sparsetopo.metrics import network_paths as impl
from sparsetopo.metrics._pass_program import compile_program

MY_NET = f"{Path(__file__).resolve().parents[1] / 'examples' / 'my_net.py'}:make"
# SameEven's forward: torch warns that even 'same' kernels pad a copy of the input
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")

SHAPE = (3, 32, 32)
FLOATS = ("one_hop", "strength", "effective_density", "log10_paths", "log10_path_norm")
NORMS = ("strength", "log10_path_norm")


def reference(model, shape, skips: bool) -> dict:
    g = st.encoding.multipartite(model, shape, identity_skips=skips)
    return st.metrics.topometrics(g, keys=NETWORK_PATH_METRICS)


def assert_equal(got: dict, want: dict, rel: float = 1e-9, norm_rel: float = 1e-9,
                 skip: tuple[str, ...] = ()) -> None:
    assert list(got) == [k for k in NETWORK_PATH_METRICS if k in want]
    for k, w in want.items():
        if k in skip:
            continue
        g = got[k]
        if k in FLOATS:
            assert isinstance(g, float), k
            tol = norm_rel if k in NORMS else rel
            assert g == w or abs(g - w) <= tol * max(abs(g), abs(w)), (k, g, w)
        else:
            assert isinstance(g, int) and g == w, (k, g, w)


def snip_data(shape, n=16, classes=10, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn((n, *shape), generator=gen), torch.randint(0, classes, (n,),
                                                                    generator=gen))]


# --- the zoo at 32x32, with and without identity skips ----------------------------------------

#: magnitude (a global score) at 0.98-0.99 and uniform at 0.999 (layers keep a handful of weights,
#: some none) on every zoo network; uniform at 0.9, SNIP on random data and the dense MLP on some
MAGNITUDE = {"resnet18": 0.99, "resnet50": 0.99}  # the two largest MGEs: sparser, faster
ZOO_CASES = [(name, method, s) for name in st.models.names()
             for method, s in (("magnitude", MAGNITUDE.get(name, 0.98)), ("uniform", 0.999))]
ZOO_CASES += [("resnet20", "uniform", 0.9), ("resnet18", "uniform", 0.9), ("mlp", "uniform", 0.0),
              ("resnet20", "snip", 0.98), ("resnet18", "snip", 0.98), ("conv6", "snip", 0.995)]


@pytest.mark.parametrize("name,method,sparsity", ZOO_CASES,
                         ids=["-".join(map(str, c)) for c in ZOO_CASES])
def test_zoo_equals_mge(name, method, sparsity):
    torch.manual_seed(0)
    model = st.models.create(name)
    if sparsity:
        data = snip_data(SHAPE) if method == "snip" else None
        st.pruning.prune(model, method, sparsity=sparsity, seed=1, data=data)
    for skips in (True, False):
        assert_equal(network_path_metrics(model, SHAPE, identity_skips=skips),
                     reference(model, SHAPE, skips))


def test_collapsed_network_has_no_path():
    """Extreme sparsity where a layer keeps no weight: no path, no alive edge, -inf logs."""
    model = st.models.create("resnet20")
    st.pruning.prune(model, "uniform", sparsity=0.999, seed=1)
    model.fc.weight_mask.zero_()
    got = network_path_metrics(model, SHAPE, identity_skips=True)
    assert got["log10_paths"] == got["log10_path_norm"] == -math.inf
    assert got["alive_edges"] == 0 and got["effective_density"] == 0.0
    assert_equal(got, reference(model, SHAPE, True))


# --- merged pairs: ResNet-18's overlapping stem pool ------------------------------------------


def test_overlapping_stem_pool_merges_and_matches():
    """ResNet-18: the 3x3 stride-2 max pool's windows overlap and layer1.0.conv1 (3x3) reads
    them, so one (stem node, conv1 node) pair is reached through up to four taps: the MGE merges
    them. The passes must follow the merged graph (the unmerged count is larger)."""
    model = st.models.create("resnet18")
    st.pruning.prune(model, "uniform", sparsity=0.5, seed=2)
    program = compile_program(model, SHAPE, False)
    assert [program.partitions[p.dst].name for p in program.pairs] == ["layer1.0.conv1"]
    unmerged = st.encoding.estimate(model, SHAPE, False)
    want = reference(model, SHAPE, False)
    assert not unmerged.exact and unmerged.edges > want["edges"]
    assert_equal(network_path_metrics(model, SHAPE, identity_skips=False), want)


# --- user models: cat, pools, residual adds (tests/nets.py, examples/my_net.py) ---------------

USER_NETS = {
    "dense_block_cat": (lambda: nets.DenseBlockNet(), (3, 8, 10)),
    "linear_residual_cat_tie": (lambda: nets.LinearResidualNet(), (3, 7, 8)),
    "pooled_residual_identity": (lambda: nets.PooledResidualNet("identity"), (2, 9, 8)),
    "pooled_residual_conv": (lambda: nets.PooledResidualNet("conv"), (2, 9, 8)),
    "pool_net_overlapping": (lambda: nets.PoolNet("max"), (2, 11, 9)),
    "adaptive_overlapping": (lambda: nets.AdaptiveNet(), (2, 6, 8)),
    "vgg_functional": (lambda: nets.VGGFunctional(), (3, 20, 28)),
    "depthwise_dilated_same": (lambda: nets.DepthwiseDilated(), (3, 12, 10)),
    "odd_names": (lambda: nets.OddNames(skip_first=True), (3, 8, 8)),
    "view_flatten": (lambda: nets.ViewFlatten(), (3, 12, 14)),
    "same_even_kernels": (lambda: SameEven(), (2, 7, 9)),
    "my_net_identity_meets_conv": (lambda: st.models.from_factory(MY_NET), (3, 12, 12)),
}


class SameEven(nn.Module):
    """``padding='same'`` with even kernels: torch pads the smaller half first (asymmetric)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(2, 3, (2, 4), padding="same", bias=False)
        self.b = nn.Conv2d(3, 3, (4, 2), padding="same", dilation=(1, 3), bias=False)
        self.fc = nn.Linear(3 * 7 * 9, 2, bias=False)

    def forward(self, x):
        return self.fc(torch.flatten(self.b(torch.relu(self.a(x))), 1))


def merged_effective_density(model, shape, skips: bool) -> float:
    """Oracle for ``effective_density`` (a present weight with an unrolled edge whose source is
    reachable from the input and whose target reaches the output): every unrolled edge with
    its weight, as the encoder emits them *before* merging, and reachability by scipy on the
    merged graph."""
    g = st.encoding.multipartite(model, shape, identity_skips=skips)
    a = sp.csr_matrix(g.adjacency, dtype=np.float64)
    a.data[:] = 1.0

    def closure(start, m):
        reach = start.copy()
        while True:
            nxt = reach | (m @ reach.astype(np.float64) > 0)
            if (nxt == reach).all():
                return reach
            reach = nxt

    start = np.zeros(g.n_nodes, bool)
    i, o = g.input_partition, g.output_partition
    start[i.offset:i.stop] = True
    fwd = closure(start, a.T.tocsr())
    start[:] = False
    start[o.offset:o.stop] = True
    bwd = closure(start, a)
    plan = _plan(model, shape, skips)
    used = set()
    for job in plan.jobs:
        s, d, _, ids = _job_edges(job)
        alive = fwd[s] & bwd[d] & (ids >= 0)
        used.update(ids[alive].tolist())
    return len(used) / plan.n_weights


@pytest.mark.parametrize("density", [1.0, 0.4])
@pytest.mark.parametrize("name", list(USER_NETS))
def test_user_models_equal_mge(name, density):
    make, shape = USER_NETS[name]
    torch.manual_seed(0)
    model = make()
    if density < 1:
        nets.apply_random_masks(model, density, seed=3)
    for skips in (True, False):
        want = reference(model, shape, skips)
        got = network_path_metrics(model, shape, identity_skips=skips)
        # the MGE keeps one weight id per merged edge, so its effective_density misses a weight
        # whose every edge merged with another edge set's: checked against the oracle instead
        assert_equal(got, want, norm_rel=1e-7, skip=("effective_density",))
        oracle = merged_effective_density(model, shape, skips)
        assert abs(got["effective_density"] - oracle) <= 1e-12, (got["effective_density"],
                                                                  oracle)


class CatOfItself(nn.Module):
    """``cat([a, a])`` and ``cat([max_pool(a), a])``: the same partition twice in one value, so
    one (u, v) pair is produced by two weights and merged."""

    def __init__(self, pooled: bool):
        super().__init__()
        self.pooled = pooled
        self.a = nn.Conv2d(2, 3, 3, padding=1, bias=False)
        self.b = nn.Conv2d(6, 4, 3, padding=1, bias=False)
        self.fc = nn.Linear(4 * 6 * 5, 3, bias=False)

    def forward(self, x):
        a = self.a(x)
        first = F.max_pool2d(a, 3, 1, 1) if self.pooled else a
        return self.fc(torch.flatten(self.b(torch.cat([first, a], 1)), 1))


class ResidualMLP(nn.Module):
    """An identity skip between vectors that meets a linear layer on the same pairs."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(60, 20, bias=False)
        self.b = nn.Linear(20, 20, bias=False)
        self.c = nn.Linear(20, 5, bias=False)

    def forward(self, x):
        h = self.a(torch.flatten(x, 1))
        return self.c(torch.relu(self.b(h)) + h)


@pytest.mark.parametrize("make", [lambda: CatOfItself(False), lambda: CatOfItself(True),
                                  ResidualMLP], ids=["cat-self", "cat-pooled-self", "mlp-res"])
def test_self_concatenation_and_vector_skips(make):
    torch.manual_seed(1)
    model = make()
    assert compile_program(model, (2, 6, 5), True).pairs
    for skips in (True, False):
        got = network_path_metrics(model, (2, 6, 5), identity_skips=skips)
        assert_equal(got, reference(model, (2, 6, 5), skips), norm_rel=1e-7,
                     skip=("effective_density",))
        assert got["effective_density"] == pytest.approx(
            merged_effective_density(model, (2, 6, 5), skips), abs=1e-12)


class IdentityMeetsOneByOne(nn.Module):
    """``y = conv(x) + x`` with 1x1 convolutions on one channel: every (x, y) pair of the
    identity skip is also the convolution's, so each merged edge weighs ``float32(1 + c)``."""

    def __init__(self, c: float):
        super().__init__()
        self.a = nn.Conv2d(1, 1, 1, bias=False)
        self.body = nn.Conv2d(1, 1, 1, bias=False)
        self.fc = nn.Linear(4, 1, bias=False)
        with torch.no_grad():
            self.a.weight.fill_(1.0)
            self.body.weight.fill_(c)
            self.fc.weight.fill_(1.0)

    def forward(self, x):
        a = self.a(x)
        return self.fc(torch.flatten(self.body(a) + a, 1))


def test_merged_weight_is_the_float32_sum():
    """The MGE stores a merged pair's weight as a float32 sum: 1 + 3 * 2^-25 is stored as
    1 + 2^-23 (the nearest float32), and strength and path norm follow the stored weight."""
    model = IdentityMeetsOneByOne(3 * 2.0**-25)
    got = network_path_metrics(model, (1, 2, 2), identity_skips=True)
    merged = float(np.float32(1.0) + np.float32(3 * 2.0**-25))
    assert merged == 1 + 2.0**-23
    assert got["strength"] == pytest.approx(2 * (4 + 4 * merged + 4) / 13, rel=1e-15)
    assert got["log10_path_norm"] == pytest.approx(math.log10(4 * merged), rel=1e-15)
    assert got["effective_density"] == 1.0  # body's one weight is on every path
    assert_equal(got, reference(model, (1, 2, 2), True), skip=("effective_density",))


# --- more than float64 can hold ---------------------------------------------------------------


class DeepDense(nn.Module):
    def __init__(self, depth: int = 160, width: int = 128):
        super().__init__()
        self.layers = nn.Sequential(*[nn.Linear(width, width, bias=False) for _ in range(depth)])

    def forward(self, x):
        return self.layers(x)


def test_path_counts_beyond_float64_range():
    """128^161 paths (10^339): the partitions are rescaled and their log10 carried."""
    model = DeepDense()
    got = network_path_metrics(model, (128,), keys=["log10_paths", "log10_path_norm", "edges"])
    assert got["log10_paths"] == pytest.approx(161 * math.log10(128), rel=1e-12)
    assert_equal(got, {k: v for k, v in reference(model, (128,), True).items() if k in got})


# --- API --------------------------------------------------------------------------------------


def test_keys_select_and_order():
    model = st.models.create("resnet20")
    st.pruning.prune(model, "uniform", sparsity=0.99, seed=0)
    got = network_path_metrics(model, SHAPE, keys=["log10_paths", "nodes", "sink_nodes"])
    assert list(got) == ["nodes", "sink_nodes", "log10_paths"]
    with pytest.raises(InputError, match="two_hop"):
        network_path_metrics(model, SHAPE, keys=["two_hop"])


def test_model_is_unchanged():
    model = st.models.create("resnet20")
    st.pruning.prune(model, "uniform", sparsity=0.9, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    network_path_metrics(model, SHAPE)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_refuses_above_available_memory(monkeypatch):
    model = st.models.create("resnet20")
    est = estimate_network_paths(model, SHAPE)
    assert est.nodes == st.encoding.estimate(model, SHAPE).nodes and est.peak_bytes > 0
    monkeypatch.setattr(impl, "_available", lambda device: est.peak_bytes - 1)
    with pytest.raises(GraphTooLargeError, match="network path metrics would need"):
        network_path_metrics(model, SHAPE)
    assert network_path_metrics(model, SHAPE, keys=["nodes"], force=True)["nodes"] == est.nodes


def test_unsupported_model_is_an_input_error():
    with pytest.raises(UnsupportedModelError):
        network_path_metrics(nets.UnsupportedOp("mul"), (3, 8, 8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_equals_cpu():
    model = st.models.create("resnet18")
    st.pruning.prune(model, "uniform", sparsity=0.9, seed=0)
    cpu = network_path_metrics(model, SHAPE, identity_skips=True)
    gpu = network_path_metrics(model.cuda(), SHAPE, identity_skips=True)
    assert_equal(gpu, cpu)
