"""Path and degree topometrics of a network's MGE by passes of the network itself.

The multipartite graph encoding (MGE) of a network stores every unrolled edge: billions for an
ImageNet ResNet-50. Yet its path and degree topometrics are what the network computes when its
weights are replaced by their masks (or ``|w|``), its biases dropped, its BatchNorms and
activations made the identity and its pooling a sum over the window (the MGE's convention:
pooled elements are not nodes, each edge leaving one leaves every element of its window):

- the number of input->output paths is the output sum of that network fed ones;
- SynFlow's path norm ``1^T |W_L| ... |W_1| 1`` likewise with ``|w|``;
- the nodes reachable from the input (or that reach the output) are where a forward (or
  transposed) pass of indicators is positive; in-degrees (out-degrees) are one forward
  (transposed) pass with ones at every node, propagated one layer only;
- an edge is alive when its source is reachable from the input and its target reaches the
  output: their count per layer is ``b^T M f``, and a present weight has an alive edge exactly
  where the weight gradient of ``b^T M f`` is positive.

Where the MGE merges duplicate (u, v) pairs into one edge of summed weight (a kernel larger than
one over overlapping pooling windows, as after ResNet-18/50's stem max pool; a shortcut or an
identity skip meeting a convolution on the same pair), the passes use the merged operator
instead, built from the layers' geometry and masks without edges (``_merged_pairs``), so every
value is the merged graph's. Memory is proportional to nodes plus weights, never edges.

References
----------
Cunegatti, Farina, Bucur, Iacca (2024). Understanding Sparse Neural Networks from their Topology
via Multipartite Graph Representations. Transactions on Machine Learning Research.

Tanaka, Kunin, Yamins, Ganguli (2020). Pruning neural networks without any data by iteratively
conserving synaptic flow. Advances in Neural Information Processing Systems 33.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import psutil
import torch
from torch import nn
from tqdm.auto import tqdm

from sparsetopo._memory import release_freed_memory
from sparsetopo.errors import GraphTooLargeError, InputError
from sparsetopo.io import show_progress
from sparsetopo.tracing import LayerDAG

from ._pass_program import Program, compile_program
from ._pass_runs import Runner

#: The topometrics computed by passes, in ``topometrics``' order.
NETWORK_PATH_METRICS = (
    "nodes",
    "edges",
    "sink_nodes",
    "source_nodes",
    "disconnected_nodes",
    "removable_out_edges",
    "removable_in_edges",
    "one_hop",
    "strength",
    "effective_density",
    "alive_edges",
    "log10_paths",
    "log10_path_norm",
)
_IN_DEGREES = {"edges", "sink_nodes", "source_nodes", "disconnected_nodes", "removable_out_edges",
               "removable_in_edges", "one_hop"}
_OUT_DEGREES = {"sink_nodes", "source_nodes", "disconnected_nodes", "removable_out_edges",
                "removable_in_edges"}
_REACH = {"effective_density", "alive_edges"}


@dataclass(frozen=True)
class PassEstimate:
    """What :func:`network_path_metrics` needs, known before any pass is run.

    Parameters
    ----------
    nodes : int
        Nodes of the MGE the passes stand for.
    weights : int
        Present (unmasked) weights of the network's conv/linear layers.
    merged_pairs : int
        Partition pairs whose parallel edges the MGE merges (handled apart by the passes).
    peak_bytes : int
        Predicted peak memory of the passes, in bytes.
    device : str
        Where the passes run (``"cpu"``, ``"cuda:0"``, ...).

    References
    ----------
    Cunegatti, Farina, Bucur, Iacca (2024). Understanding Sparse Neural Networks from their
    Topology via Multipartite Graph Representations. Transactions on Machine Learning Research.
    """

    nodes: int
    weights: int
    merged_pairs: int
    peak_bytes: int
    device: str

    def __str__(self) -> str:
        return (f"{self.nodes:,} nodes, {self.weights:,} present weights, "
                f"{self.merged_pairs} merged partition pairs, peak ~"
                f"{self.peak_bytes / 2**30:.2f} GiB on {self.device}")


def _wanted(keys: Iterable[str] | None) -> list[str]:
    if keys is None:
        return list(NETWORK_PATH_METRICS)
    keys = set(keys)
    unknown = sorted(keys - set(NETWORK_PATH_METRICS))
    if unknown:
        raise InputError(f"network_path_metrics cannot compute {unknown}; supported: "
                         f"{', '.join(NETWORK_PATH_METRICS)}")
    return [k for k in NETWORK_PATH_METRICS if k in keys]


def _device(model: nn.Module, device) -> torch.device:
    if device is not None:
        return torch.device(device)
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def _samples(wanted: list[str]) -> dict[str, tuple[str, ...]]:
    """The samples of each pass the wanted metrics need (empty: the pass is not run)."""
    w = set(wanted)
    return {
        "mask": tuple(k for k, need in (("prop", "log10_paths" in w), ("reach", bool(w & _REACH)),
                                        ("local", bool(w & _IN_DEGREES))) if need),
        "back": tuple(k for k, need in (("reach", bool(w & _REACH)),
                                        ("local", bool(w & _OUT_DEGREES))) if need),
        "abs": tuple(k for k, need in (("prop", "log10_path_norm" in w),
                                       ("local", "strength" in w)) if need),
        "alive": ("alive",) if w & _REACH else (),
    }


def _peak_bytes(program: Program, batch: int) -> int:
    """Bytes the passes need at their peak, beyond what the caller holds: the program (every
    weight as float32 plus its mask, the merged pairs), ``batch`` float64 samples of every
    partition (a bound: a partition is freed after its last reader), the per-node results (two
    int32 degree arrays, two indicators, the float64 indicators of the alive pass), and the
    largest single step: the value read with its pooled and padded copies, the output, the
    layer's weights as float64, the convolution's unfolded input, or a merged pair's products."""
    n = program.n_nodes
    shapes = [p.shape for p in program.partitions]
    own = sum(5 * job.mask.size for job in program.jobs if job.mask is not None)
    own += sum(pair.nbytes() for pair in program.pairs)
    step = 0
    for job in program.jobs:
        value = math.prod(program.recipes[job.src].shape)
        pooled = sum(math.prod(program.recipes[v].shape) for v in _chain(program, job.src))
        out = math.prod(shapes[job.dst])
        weights = 0 if job.mask is None else job.mask.size
        unfold = 0
        if job.kind == "conv":
            kh, kw = job.op.module.kernel_size
            c_in = program.recipes[job.src].shape[0]
            unfold = c_in * kh * kw * out // max(1, job.mask.shape[0])
        step = max(step, 8 * batch * (3 * value + pooled + 3 * out + unfold) + 24 * weights)
    for pair in program.pairs:
        c_s, h_s, w_s = pair.src_view
        c_d, h_d, w_d = pair.dst_view
        step = max(step, 4 * pair.nbytes() + 8 * batch * (
            2 * c_s * h_d * w_s + 3 * c_s * h_d * w_d + 3 * c_d * h_d * w_d + c_s * h_s * w_s))
    trace = 12 * n  # the trace's sample forward (float32 activations)
    # x 1.25: the C heap's fragmentation (measured peaks: 0.5-0.9 of this on the zoo)
    return int(1.25 * (own + trace + 8 * batch * n + 18 * n + step)) + (64 << 20)


def _chain(program: Program, vid: int) -> list[int]:
    """The derived values (pools, reshapes, cats) a value is computed through."""
    r = program.recipes[vid]
    if r.kind == "part":
        return []
    return [vid, *(v for i in r.inputs for v in _chain(program, i))]


def _available(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    return int(psutil.virtual_memory().available)


def estimate_network_paths(model: nn.Module, input_shape, identity_skips: bool = True,
                           keys: Iterable[str] | None = None, *, device=None,
                           dag: LayerDAG | None = None) -> PassEstimate:
    """Size and peak memory of :func:`network_path_metrics` with the same arguments, from the
    model's trace and masks only (no pass is run).

    Parameters
    ----------
    model, input_shape, identity_skips, keys, device, dag
        As for :func:`network_path_metrics`.

    Returns
    -------
    PassEstimate
        MGE nodes, present weights, merged partition pairs and the predicted peak in bytes.

    References
    ----------
    Cunegatti, Farina, Bucur, Iacca (2024). Understanding Sparse Neural Networks from their
    Topology via Multipartite Graph Representations. Transactions on Machine Learning Research.
    """
    program = compile_program(model, input_shape, identity_skips, dag)
    return _estimate(program, _wanted(keys), _device(model, device))


def _estimate(program: Program, wanted: list[str], device: torch.device) -> PassEstimate:
    batch = max([len(s) for s in _samples(wanted).values()] + [1])
    return PassEstimate(program.n_nodes, program.n_weights, len(program.pairs),
                        _peak_bytes(program, batch), str(device))


def _fitting_program(model: nn.Module, input_shape, identity_skips: bool, dag, device,
                     wanted: list[str], what: str) -> tuple[torch.device, Program]:
    """The device and pass program for ``wanted``; :class:`GraphTooLargeError` (naming
    ``what``) when their passes would not fit in the memory available there."""
    device = _device(model, device)
    program = compile_program(model, input_shape, identity_skips, dag)
    est = _estimate(program, wanted, device)
    available = _available(device)
    if est.peak_bytes > available:
        raise GraphTooLargeError(
            f"{what} by passes would need ~{est.peak_bytes / 2**30:.1f} GiB on {device} but "
            f"only {available / 2**30:.1f} GiB is available")
    return device, program


def network_path_metrics(
    model: nn.Module,
    input_shape,
    identity_skips: bool = True,
    keys: Iterable[str] | None = None,
    *,
    device=None,
    progress: bool = False,
    force: bool = False,
    dag: LayerDAG | None = None,
) -> dict[str, float]:
    """Path and degree topometrics of ``multipartite(model, input_shape, identity_skips)``,
    computed by passes of the network's own layers instead of the graph.

    The values are those of ``topometrics`` on the MGE (same keys, in the same order; exact:
    integers exactly, floats to float64 rounding), with in(v), out(v) the in/out degrees, I and
    O the input and output partitions:

    - ``nodes``, ``edges``: counts (duplicate (u, v) pairs are one edge);
    - ``sink_nodes``: v not in O with out(v) = 0 < in(v); ``source_nodes``: v not in I with
      in(v) = 0 < out(v); ``disconnected_nodes``: in(v) = out(v) = 0;
    - ``removable_out_edges``: the sum of in(v) over sink nodes; ``removable_in_edges``: of
      out(v) over source nodes;
    - ``one_hop``: mean over v of 1 + out(v); ``strength``: mean over v of the summed ``|w|``
      of its edges (twice the total ``|w|`` over nodes);
    - ``effective_density``: fraction of present weights with an unrolled edge on some
      input->output path; ``alive_edges``: edges on some input->output path;
    - ``log10_paths``: log10 of the number of input->output paths (-inf if none);
      ``log10_path_norm``: log10 of the sum over those paths of the product of ``|w|``.

    Parameters
    ----------
    model : torch.nn.Module
        A ``torch.fx``-traceable network (its masks in ``torch.nn.utils.prune`` form, or zeros
        where pruned). It is not changed.
    input_shape : tuple of int
        One input without the batch dimension, e.g. ``(3, 224, 224)``.
    identity_skips : bool
        Encode identity shortcuts as edges (the real network's paths); False: the paper's MGE.
    keys : iterable of str, optional
        Compute only these metrics (fewer passes); default all of ``NETWORK_PATH_METRICS``.
    device : torch device or str, optional
        Where the passes run; default the model's (a CUDA device when the model is on one).
    progress : bool
        Show a progress bar over the partitions of every pass.
    force : bool
        Run even when the predicted peak exceeds the available memory.
    dag : LayerDAG, optional
        The model's trace on ``input_shape`` (``sparsetopo.tracing.trace``), if known.

    Returns
    -------
    dict
        Metric name -> value (int for counts, float otherwise).

    Raises
    ------
    GraphTooLargeError
        The predicted peak memory exceeds what is available on ``device`` (unless ``force``).
    UnsupportedModelError, EncodingError
        A model the MGE cannot encode, or a reshape the passes cannot follow.

    References
    ----------
    Cunegatti, Farina, Bucur, Iacca (2024). Understanding Sparse Neural Networks from their
    Topology via Multipartite Graph Representations. Transactions on Machine Learning Research.

    Tanaka, Kunin, Yamins, Ganguli (2020). Pruning neural networks without any data by
    iteratively conserving synaptic flow. NeurIPS 33.
    """
    wanted = _wanted(keys)
    device = _device(model, device)
    program = compile_program(model, input_shape, identity_skips, dag)
    est = _estimate(program, wanted, device)
    available = _available(device)
    if est.peak_bytes > available and not force:
        raise GraphTooLargeError(
            f"network path metrics would need ~{est.peak_bytes / 2**30:.1f} GiB on {device} "
            f"({est.nodes:,} nodes) but only {available / 2**30:.1f} GiB is available; use a "
            "smaller input, fewer keys, or force=True (--force) to try anyway")
    samples = _samples(wanted)
    n_passes = sum(1 for s in samples.values() if s)
    with torch.no_grad(), tqdm(total=n_passes * len(program.partitions), desc="paths",
                               unit="partition", disable=not show_progress(progress),
                               leave=False) as bar:
        runner = Runner(program, device, lambda: bar.update(1))
        return _metrics(program, runner, samples, wanted, bar.set_description_str)


@dataclass(frozen=True)
class NetworkAlive:
    """What lies on the input->output paths of a network's MGE, by passes
    (:func:`network_alive`).

    Parameters
    ----------
    weights : dict[str, int]
        Per conv/linear layer, its present weights with an unrolled edge on such a path.
    channels : dict[str, tuple[int, int]]
        Per partition after the input, ``(alive channels, channels)``, as
        ``metrics.alive_channels`` gives them on the graph.
    signal_cut : str or None
        The partition where the input's signal stops (``metrics.signal_cut``); ``None`` when
        a path exists.

    References
    ----------
    Vysogorets, Kempe (2023). Connectivity Matters: Neural Network Pruning Through the Lens of
    Effective Sparsity. Journal of Machine Learning Research 24.
    """

    weights: dict[str, int]
    channels: dict[str, tuple[int, int]]
    signal_cut: str | None


def network_alive(
    model: nn.Module,
    input_shape,
    identity_skips: bool = True,
    *,
    device=None,
    progress: bool = False,
    dag: LayerDAG | None = None,
) -> NetworkAlive:
    """The alive weights of every layer, the alive channels of every partition and where the
    signal stops, for ``multipartite(model, input_shape, identity_skips)``, by passes of the
    network.

    A node is alive when it is reachable from the input and reaches the output (a forward and
    a backward pass of indicators); a present weight has an edge on an input->output path
    exactly where the weight gradient of ``b^T M f`` is positive (``f``, ``b``: the two
    indicators, ``M``: the layer's edges). Three passes, memory proportional to nodes plus
    weights. A layer's alive weights over its present weights is its *effective density*.
    Where the MGE merges two layers' parallel edges into one, both layers' weights on it count
    here (the graph names only the first layer's weight on a merged edge).

    Parameters
    ----------
    model, input_shape, identity_skips, device, progress, dag
        As :func:`network_path_metrics`.

    Returns
    -------
    NetworkAlive
        ``weights`` for every conv/linear layer of the trace (0 where none is alive),
        ``channels`` and ``signal_cut`` as the graph's ``alive_channels`` and ``signal_cut``.

    Raises
    ------
    GraphTooLargeError
        The passes would not fit in the memory available on ``device``.

    References
    ----------
    Vysogorets, Kempe (2023). Connectivity Matters: Neural Network Pruning Through the Lens of
    Effective Sparsity. Journal of Machine Learning Research 24.

    Tanaka, Kunin, Yamins, Ganguli (2020). Pruning neural networks without any data by
    iteratively conserving synaptic flow. NeurIPS 33 (layer collapse).
    """
    device, program = _fitting_program(model, input_shape, identity_skips, dag, device,
                                       list(_REACH), "the alive weights")
    layers = [job.name for job in program.jobs if job.kind != "identity"]
    with torch.no_grad(), tqdm(total=3 * len(program.partitions), desc="alive",
                               unit="partition", disable=not show_progress(progress),
                               leave=False) as bar:
        runner = Runner(program, device, lambda: bar.update(1))
        fwd = runner.forward("mask", ("reach",))["reach"]
        back = runner.backward(("reach",))["reach"]
        _, used = runner.alive(fwd, back)
    parts = program.partitions
    channels = {}
    for i, part in enumerate(parts):
        if i == 0 or not part.shape:
            continue
        alive = (fwd[i] & back[i]).reshape(part.shape[0], -1)
        channels[part.name] = (int(alive.any(axis=1).sum()), int(part.shape[0]))
    cut = None
    if not fwd[program.output].any():
        last = max((i for i in range(len(parts)) if fwd[i].any()), default=0)
        cut = parts[min(last + 1, len(parts) - 1)].name
    return NetworkAlive({name: used.get(name, 0) for name in layers}, channels, cut)


def network_degrees(
    model: nn.Module,
    input_shape,
    identity_skips: bool = True,
    *,
    device=None,
    progress: bool = False,
    dag: LayerDAG | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The in- and out-degree of every node of ``multipartite(model, input_shape,
    identity_skips)``, by two passes of the network (ones at every node, propagated one layer
    forward and one transposed), merged pairs counted once.

    Parameters
    ----------
    model, input_shape, identity_skips, device, progress, dag
        As :func:`network_path_metrics`.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        int64 in- and out-degrees, in the MGE's node order.

    Raises
    ------
    GraphTooLargeError
        The passes would not fit in the memory available on ``device``.

    References
    ----------
    Cunegatti, Farina, Bucur, Iacca (2024). Understanding Sparse Neural Networks from their
    Topology via Multipartite Graph Representations. Transactions on Machine Learning Research.
    """
    device, program = _fitting_program(model, input_shape, identity_skips, dag, device,
                                       ["sink_nodes"], "the degrees")
    with torch.no_grad(), tqdm(total=2 * len(program.partitions), desc="degrees",
                               unit="partition", disable=not show_progress(progress),
                               leave=False) as bar:
        runner = Runner(program, device, lambda: bar.update(1))
        fwd = runner.forward("mask", ("local",))["local"]
        back = runner.backward(("local",))["local"]
    return (np.concatenate([a.reshape(-1) for a in fwd]).astype(np.int64, copy=False),
            np.concatenate([a.reshape(-1) for a in back]).astype(np.int64, copy=False))


#: Partition state (bytes) from which the heap freed by a pass is handed back to the system
#: before the next one (``release_freed_memory`` costs ~10 ms a call).
_RELEASE_ABOVE = 64 << 20


def _metrics(program: Program, runner: Runner, samples: dict, wanted: list[str],
             describe: Callable[[str], object]) -> dict:
    n = program.n_nodes
    big = 8 * n * max(len(s) for s in samples.values()) >= _RELEASE_ABOVE

    def release() -> None:
        if big:
            release_freed_memory()

    out: dict[str, float] = {"nodes": n}
    fwd = back = None
    if samples["mask"]:
        describe("paths: forward (counts, reach, in-degrees)")
        fwd = runner.forward("mask", samples["mask"])
        release()  # the pass's freed partition tensors, back to the system
        out["log10_paths"] = fwd["log10"]
    if samples["back"]:
        describe("paths: backward (reach, out-degrees)")
        back = runner.backward(samples["back"])
        release()
    if samples["abs"]:
        describe("paths: forward |w| (path norm, strength)")
        norm = runner.forward("abs", samples["abs"])
        release()
        out["log10_path_norm"] = norm["log10"]
        if "strength" in wanted:
            total = math.fsum(float(a.sum()) for a in norm["local"] if a is not None)
            out["strength"] = 2.0 * total / n if n else math.nan
    if fwd is not None and "local" in samples["mask"]:
        out["edges"] = m = sum(int(a.sum()) for a in fwd["local"])
        out["one_hop"] = (n + m) / n if n else math.nan
        if back is not None and "local" in samples["back"]:
            out.update(_degree_metrics(program, fwd["local"], back["local"]))
    if samples["alive"]:
        describe("paths: alive edges and weights")
        alive, used = runner.alive(fwd["reach"], back["reach"])
        out["alive_edges"] = alive
        out["effective_density"] = (sum(used.values()) / program.n_weights if program.n_weights
                                    else math.nan)
    return {k: out[k] for k in wanted}


def _degree_metrics(program: Program, in_deg: list, out_deg: list) -> dict:
    """The degree counts from per-partition in- and out-degree arrays."""
    out = dict.fromkeys(("sink_nodes", "source_nodes", "disconnected_nodes",
                         "removable_out_edges", "removable_in_edges"), 0)
    for p, (i, o) in enumerate(zip(in_deg, out_deg, strict=True)):
        sinks = (o == 0) & (i > 0) if p != program.output else np.zeros(i.shape, bool)
        sources = (i == 0) & (o > 0) if p != 0 else np.zeros(i.shape, bool)
        out["sink_nodes"] += int(sinks.sum())
        out["source_nodes"] += int(sources.sum())
        out["disconnected_nodes"] += int(((i == 0) & (o == 0)).sum())
        out["removable_out_edges"] += int(i[sinks].sum())
        out["removable_in_edges"] += int(o[sources].sum())
    return out
