"""The ``analyze`` main job as a library: build a pruned network from options, encode it,
compute its metrics, report them.

:func:`build_network` makes the network (a zoo model or the user's own, pruned at
initialization or loaded from a weights file), :func:`analyze_network` computes everything
``sparsetopo analyze`` reports (sizes of every encoding, the paper's topometrics of the chosen
encoding, path metrics and per-layer effective densities of the MGE with identity skips,
Ramanujan metrics of the rolled encoding) and :func:`write_results` writes ``metrics.json`` and
``metrics.csv``. The definitions are in ``docs/encodings.md``, ``docs/metrics.md`` and
``docs/compare.md``.

References
    Cunegatti, E., Farina, L. L., Bucur, D., Iacca, G. (2024). Understanding Sparse Neural
    Networks from their Topology via Multipartite Graph Representations. *Transactions on Machine
    Learning Research*.

    Vysogorets, A., Kempe, J. (2023). Connectivity Matters: Neural Network Pruning Through the Lens
    of Effective Sparsity. *Journal of Machine Learning Research* 24.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
import torch
from torch import nn

from . import data, metrics, models, pruning
from . import encoding as enc
from ._memory import release_freed_memory
from .encoding.graph import index_dtype
from .encoding.layers import layer_arrays
from .errors import GraphTooLargeError, UsageError
from .io import atomic_path, ensure_dir, json_value, write_text
from .pruning.masks import (
    PRUNE_RECORD,
    count_weights,
    layer_densities,
    load_weights,
    prune_record,
)
from .pruning.masks import sparsity as measured_sparsity
from .tracing import LayerDAG, trace

__all__ = ["PICTURE_MAX_EDGES", "Network", "analyze_network", "build_network", "check_options",
           "csv_text", "layer_alive_weights", "layer_rows", "parse_shape", "path_summary",
           "picture_title", "write_results"]

#: Larger MGEs are drawn from a uniform sample of this many edges (noted on the picture).
PICTURE_MAX_EDGES = 5_000_000


@dataclass
class Network:
    """A pruned (or loaded) model with the input shape it is analysed on.

    Parameters
    ----------
    model : torch.nn.Module
        The network, its masks in ``torch.nn.utils.prune`` form.
    name : str
        Zoo name, or the ``PATH.py:FACTORY`` it was built from.
    dataset : str
        Dataset it was built for (input channels, classes, pruning data).
    method : str
        Pruning method, or ``"weights"`` for a network loaded from a file.
    sparsity : float
        Target sparsity of the method (for loaded weights: the measured sparsity).
    seed : int
        Seed of the initialization, the mask and the pruning data.
    input_shape : tuple of int
        ``(C, H, W)`` of one input: the shape the encodings unroll.
    weights : str, optional
        The weights file it was loaded from.
    notes : list of str
        What was read beyond a plain file (e.g. the input shape recorded beside the masks).
    seconds : float
        Time spent building it: the model, its data and its pruning (or its weights).
    """

    model: nn.Module
    name: str
    dataset: str
    method: str
    sparsity: float
    seed: int
    input_shape: tuple[int, int, int]
    weights: str | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0  # building it: the model, its data and its pruning (or its weights)


def check_options(model: str, method: str, sparsity: float, dataset: str) -> None:
    """Check the options of a network before any work.

    Parameters
    ----------
    model : str
        Zoo name, ``PATH.py:FACTORY`` or ``package.module:FACTORY`` (a factory is checked when
        it is built).
    method : str
        Pruning method or ``METHOD+CONTROL``.
    sparsity : float
        Target sparsity, in [0, 1).
    dataset : str
        One of ``sparsetopo.data.DATASETS``.

    Raises
    ------
    UsageError
        The first unknown model or dataset, or a sparsity outside [0, 1), with what is
        supported.
    InputError
        An unknown method or control (``sparsetopo.pruning.check_method``).
    """
    if not models.is_factory(model) and model.lower() not in models.names():
        raise UsageError(f"unknown model {model!r}; valid models: {', '.join(models.names())}, "
                         "or your own as PATH.py:FACTORY or package.module:FACTORY")
    pruning.check_method(method)
    if not (0.0 <= sparsity < 1.0) or math.isnan(sparsity):
        raise UsageError(f"sparsity must be in [0, 1), got {sparsity}")
    if dataset.lower().replace("-", "") not in data.DATASETS:
        raise UsageError(f"unknown dataset {dataset!r}; valid: {', '.join(data.DATASETS)}")


def parse_shape(text: str) -> tuple[int, int, int]:
    """Parse an input shape given as text.

    Parameters
    ----------
    text : str
        ``"C,H,W"`` (or ``"CxHxW"``), e.g. ``"3,32,32"``.

    Returns
    -------
    tuple of int
        ``(C, H, W)``.

    Raises
    ------
    UsageError
        Not three positive integers.
    """
    try:
        shape = tuple(int(v) for v in str(text).replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise UsageError(f"--input-shape must be C,H,W (three positive integers, e.g. "
                         f"3,32,32), got {text!r}")
    return shape  # type: ignore[return-value]


def _input_shape(info, input_size: int | None, input_shape: tuple[int, ...] | None
                 ) -> tuple[int, int, int]:
    if input_shape is not None and input_size is not None:
        raise UsageError("give --input-shape or --input-size, not both")
    if input_shape is not None:
        return tuple(int(v) for v in input_shape)  # type: ignore[return-value]
    size = info.image_size if input_size is None else input_size
    if size < 1:
        raise UsageError(f"--input-size must be a positive number of pixels, got {size}")
    return (info.in_channels, size, size)


def build_network(
    model: str,
    method: str,
    sparsity: float,
    seed: int,
    dataset: str,
    data_dir: Path | None,
    weights: Path | None = None,
    quiet: bool = False,
    input_size: int | None = None,
    input_shape: tuple[int, int, int] | None = None,
) -> Network:
    """Build a network and give it its mask: pruned at initialization, or loaded from a file.

    The model is created (a zoo model built for the dataset, weights seeded by ``seed``; or the
    user's ``FACTORY()``), traced once on the input shape (so that a network the encodings
    cannot handle fails before any pruning), then pruned with ``method`` at ``sparsity``
    (``sparsetopo.pruning.prune``, with training batches of the dataset for the data-dependent
    methods) or given the ``weights``.

    Parameters
    ----------
    model : str
        Zoo name, or ``PATH.py:FACTORY`` / ``package.module:FACTORY``.
    method : str
        Pruning method or ``METHOD+CONTROL`` (ignored with ``weights``).
    sparsity : float
        Target sparsity in [0, 1).
    seed : int
        Seed of the initialization, the mask and the pruning data.
    dataset : str
        Dataset: input channels, classes, pruning data.
    data_dir : Path, optional
        Folder holding the dataset (``sparsetopo.data.get_dataset``).
    weights : Path, optional
        A state_dict in ``torch.nn.utils.prune`` form or with zeros where pruned, a checkpoint
        holding one, or the masks file ``sparsetopo prune`` writes
        (:func:`sparsetopo.pruning.load_weights`).
    quiet : bool
        No progress bars.
    input_size : int, optional
        Square input size (H = W) instead of the dataset's image size.
    input_shape : tuple of int, optional
        ``(C, H, W)`` instead of the dataset's image shape (any model). For ``weights`` written
        by ``sparsetopo prune`` the default is the shape recorded beside them. A zoo model
        whose layers depend on it is built for it, and the pruning data are resized to it.

    Returns
    -------
    Network
        The network; ``notes`` says what was read beyond a plain file.

    Raises
    ------
    UsageError
        Bad options (:func:`check_options`), both ``input_size`` and ``input_shape``, or an
        input shape the data-dependent method cannot prune with.
    InputError
        A model, weights file or dataset that cannot be used (its own error).
    """
    start = time.perf_counter()
    check_options(model, method, sparsity, dataset)
    model = model if models.is_factory(model) else model.lower()  # names are case-insensitive
    dataset, method = dataset.lower().replace("-", ""), pruning.check_method(method)
    info = data.dataset_info(dataset)
    notes: list[str] = []
    record = prune_record(weights) if weights is not None else None
    if record and input_size is None and input_shape is None and record.get("input_shape"):
        input_shape = tuple(record["input_shape"])  # the masks were made for it
        notes.append(f"input shape {'x'.join(map(str, input_shape))} from "
                     f"{Path(weights).with_name(PRUNE_RECORD)}")
    shape = _input_shape(info, input_size, input_shape)
    net = models.build(model, num_classes=info.num_classes, in_channels=info.in_channels,
                       image_size=shape[1], seed=seed)
    trace(net, shape)  # fail early, before pruning, on shapes or layers we cannot encode
    if weights is not None:
        notes += load_weights(net, weights)
        return Network(net, model, dataset, "weights", measured_sparsity(net), seed, shape,
                       str(weights), notes, time.perf_counter() - start)
    loader = None
    if pruning.needs_data(method):
        if shape[0] != info.in_channels:
            raise UsageError(f"the network takes {shape[0]}-channel inputs but {dataset} has "
                             f"{info.in_channels}; {method} prunes with data of the dataset")
        if shape[1] != shape[2] and shape[1:] != info.input_shape[1:]:
            raise UsageError(f"{method} prunes with {dataset} images resized to square sizes "
                             f"only; the input shape is {shape}")
        resized = shape[1] if shape[1:] != info.input_shape[1:] else 0
        loader = data.make_loader(dataset, "train", batch_size=128, data_dir=data_dir,
                                  shuffle=True, augment=False, seed=seed, image_size=resized)
    pruning.prune(net, method, sparsity, data=loader, seed=seed, input_shape=shape,
                  progress=not quiet)
    return Network(net, model, dataset, method, sparsity, seed, shape,
                   seconds=time.perf_counter() - start)


def layer_rows(model: nn.Module) -> list[dict]:
    """The density of every conv/linear layer.

    Parameters
    ----------
    model : torch.nn.Module
        The network.

    Returns
    -------
    list of dict
        One row per layer in module order: ``layer`` (module path), ``type``, ``shape``,
        ``present`` and ``total`` weights, ``density`` (present / total).
    """
    return [{"layer": r.layer, "type": r.kind, "shape": list(r.shape), "present": r.present,
             "total": r.total, "density": r.density} for r in layer_densities(model)]


def encoding_sizes(model, input_shape, identity_skips: bool = False,
                   dag: LayerDAG | None = None,
                   mge: enc.EncodingEstimate | None = None) -> dict[str, dict]:
    """Nodes and edges of every encoding, counted without building the large ones.

    Parameters
    ----------
    model : torch.nn.Module
        The network.
    input_shape : tuple of int
        ``(C, H, W)`` of one input.
    identity_skips : bool
        Count the MGE with identity skips.
    dag : LayerDAG, optional
        The model's trace on ``input_shape``, if the caller has it.
    mge : EncodingEstimate, optional
        ``encoding.estimate(model, input_shape, identity_skips)``, if the caller has it.

    Returns
    -------
    dict
        ``mge`` (``nodes``, ``edges``, ``edges_exact``, ``graph_bytes``), ``unrolled``,
        ``rolled`` and ``rolled-channel`` (``nodes``, ``edges`` summed over layers,
        ``layers``).
    """
    est = mge or enc.estimate(model, input_shape, identity_skips, dag=dag)
    un_nodes, un_edges = enc.unrolled_size(model, input_shape, dag=dag)
    rolled = enc.rolled(model)
    channel = enc.rolled_channel(model)
    return {
        "mge": {"nodes": est.nodes, "edges": est.edges, "edges_exact": est.exact,
                "graph_bytes": est.graph_bytes},
        "unrolled": {"nodes": un_nodes, "edges": un_edges, "layers": len(rolled)},
        "rolled": {"nodes": sum(g.n_nodes for g in rolled),
                   "edges": sum(g.n_edges for g in rolled), "layers": len(rolled)},
        "rolled-channel": {"nodes": sum(g.n_nodes for g in channel),
                           "edges": sum(g.n_edges for g in channel), "layers": len(channel)},
    }


def path_summary(model, graph_with_skips) -> dict:
    """Path metrics and bottlenecks of the MGE with identity skips: the real network's paths.

    Parameters
    ----------
    model : torch.nn.Module
        The network the graph encodes.
    graph_with_skips : LayeredGraph or GraphView
        ``encoding.multipartite(..., identity_skips=True)``, or a ``metrics.GraphView`` of it
        whose caches the caller shares.

    Returns
    -------
    dict
        ``nodes``, ``edges``, every path metric (``metrics.PATH_METRICS``) and bottleneck
        (``metrics.path_bottlenecks``), ``empty_layers`` (layers that keep no weight),
        ``signal_cut`` (the layer where the signal stops, ``None`` when a path exists) and
        ``headline``: one line when the network has no input->output path, naming the layer
        that cut it (``None`` otherwise).

    References
    ----------
    Cunegatti, E., Farina, L. L., Bucur, D., Iacca, G. (2024). Understanding Sparse Neural
    Networks from their Topology via Multipartite Graph Representations. *TMLR*.

    Vysogorets, A., Kempe, J. (2023). Connectivity Matters: Neural Network Pruning Through the
    Lens of Effective Sparsity. *Journal of Machine Learning Research* 24.
    """
    view = _view(graph_with_skips)
    out = {"nodes": view.graph.n_nodes, "edges": view.graph.n_edges}
    out.update(metrics.path_profile(view))
    return _with_signal_cut(out, model, metrics.signal_cut(view))


def _with_signal_cut(out: dict, model, cut: str | None) -> dict:
    """``out`` with ``empty_layers``, ``signal_cut`` and the ``headline`` it makes."""
    empty = [r.layer for r in layer_densities(model) if r.present == 0]
    out["empty_layers"] = empty
    out["signal_cut"] = cut
    if cut is None:
        out["headline"] = None
    elif cut in empty:
        out["headline"] = f"layer collapse: {cut} keeps no weight (no input->output path)"
    else:
        out["headline"] = (f"layer collapse: no input->output path; the signal stops at {cut}, "
                           "whose present weights are all cut off from the input")
    return out


def _view(graph) -> metrics.GraphView:
    return graph if isinstance(graph, metrics.GraphView) else metrics.GraphView(graph)


def layer_alive_weights(graph_with_skips, dag: LayerDAG) -> dict[str, int]:
    """Present weights of each layer with at least one unrolled edge on an input->output path.

    An edge ``(u, v)`` of the MGE with identity skips lies on such a path exactly when both
    ``u`` and ``v`` do (``metrics.alive_nodes``); each edge names the present weight that
    created it (``edge_weight_ids``, -1 for identity skips), numbered as the encoder numbers
    them: layer by layer in the trace's order, inside a layer in ``np.flatnonzero(mask)``
    order. A layer's *effective density* is its count here over its present weights; the sum of
    the counts over all present weights is ``metrics.effective_density``. Where two layers of
    one input are added together (a 1x1 and a 3x3 branch, say) their parallel edges are merged
    into one that names the first layer's weight only: the other's weights on it are not
    counted, here as in ``metrics.effective_density``.

    Parameters
    ----------
    graph_with_skips
        The MGE with identity skips (``encoding.multipartite(..., identity_skips=True)``), or a
        ``metrics.GraphView`` of it (its path sweeps are then shared).
    dag
        The model's trace on the graph's input shape (``tracing.trace``).

    Returns
    -------
    dict
        ``{layer: count}`` for every conv/linear layer the trace reaches.

    Raises
    ------
    ValueError
        A graph without ``edge_weight_ids``, or one of another network than the trace's.

    References
    ----------
    Vysogorets, A. and Kempe, J. (2023). Connectivity Matters: Neural Network Pruning Through
    the Lens of Effective Sparsity. *Journal of Machine Learning Research* 24.
    """
    view = _view(graph_with_skips)
    graph = view.graph
    ids = graph.edge_weight_ids
    if ids is None:
        raise ValueError("the graph has no edge_weight_ids; build it with encoding.multipartite")
    offsets, counts = {}, {}
    n_weights = 0
    for op in dag.layers():  # the encoder's numbering (encoding/_multipartite.py, _plan)
        offsets[op.name] = n_weights
        counts[op.name] = int(layer_arrays(op.module)[1].sum())
        n_weights += counts[op.name]
    if n_weights != graph.meta.get("n_weights", n_weights):
        raise ValueError(f"the trace has {n_weights} present weights, the graph "
                         f"{graph.meta['n_weights']}: not the same network")
    alive = metrics.alive_nodes(view)
    used = np.zeros(n_weights, bool)
    a = graph.adjacency
    for part in graph.partitions:  # one partition at a time: a lower peak than all edges at once
        lo, hi = int(a.indptr[part.offset]), int(a.indptr[part.stop])
        if hi == lo or not alive[part.offset : part.stop].any():
            continue
        degree = np.diff(a.indptr[part.offset : part.stop + 1])
        src = np.repeat(alive[part.offset : part.stop], degree)
        w = ids[lo:hi][src & alive[a.indices[lo:hi]]]
        used[w[w >= 0]] = True
    before = np.concatenate([[0], np.cumsum(used)])
    return {name: int(before[offsets[name] + counts[name]] - before[offsets[name]])
            for name in offsets}


def with_effective_density(rows: list[dict], alive: dict[str, int]) -> list[dict]:
    """Layer rows with their effective density.

    Parameters
    ----------
    rows
        :func:`layer_rows`.
    alive
        :func:`layer_alive_weights` (a layer the trace never reaches counts 0).

    Returns
    -------
    list of dict
        Each row with ``alive`` and ``effective_density`` = alive / present (NaN for a layer
        that keeps no weight).
    """
    out = []
    for row in rows:
        n = alive.get(row["layer"], 0)
        out.append({**row, "alive": n,
                    "effective_density": n / row["present"] if row["present"] else math.nan})
    return out


def _topometrics(net, encoding: str, graph, paths: dict, normalise: str | None,
                 progress: bool) -> tuple[dict, list | None, dict]:
    """``(topometrics, per-layer rows or None, topometrics as shown)`` of the chosen encoding,
    path metrics taken from ``paths`` (the MGE with identity skips)."""
    if encoding == "mge":
        topo = metrics.topometrics(graph, seed=net.seed, progress=progress,
                                   keys=("nodes", "edges", *metrics.PAPER_METRICS))
        layers_topo = None
        shown = metrics.normalise_paper(topo) if normalise else dict(topo)
    else:
        graphs = {"unrolled": lambda: enc.unrolled(net.model, net.input_shape),
                  "rolled": lambda: enc.rolled(net.model),
                  "rolled-channel": lambda: enc.rolled_channel(net.model)}[encoding]()
        layers = metrics.layerwise(graphs)
        layers_topo = layers.to_dict(orient="records")
        keys = [k for k in metrics.METRICS if k not in metrics.PATH_METRICS]
        topo = {k: float(layers[k].mean()) for k in keys}
        shown = dict(topo)
        if normalise and layers_topo:  # each layer graph by its own nodes and edges, then the mean
            table = metrics.topometrics_table(layers_topo, normalise=normalise)
            shown = {k: float(table[k].mean()) for k in keys}
    topo.update({k: paths[k] for k in metrics.PATH_METRICS})  # the JSON keeps them here too
    return topo, layers_topo, shown


@contextmanager
def _picture_alongside(graph, path: Path | None, title: str, seed: int,
                       timings: dict[str, float]) -> Iterator[None]:
    """Draw the MGE picture to ``path`` on a second thread while the body runs (the metrics'
    kernels release the GIL; measured on the default job: 2.9 s instead of 3.9 s for
    topometrics plus picture). The drawing goes to a temporary file that replaces ``path``
    only once the body and the drawing both succeeded; the drawing's error is raised here.
    ``path=None``: no picture."""
    if path is None:
        yield
        return
    with atomic_path(path) as tmp:
        errors: list[BaseException] = []
        spent: list[float] = []

        def draw() -> None:
            t = time.perf_counter()
            try:  # no progress bar: it would interleave with the metrics' bar
                from . import plot  # here: its imports overlap the metrics too

                plot.mge(graph, tmp, seed=seed, title=title, max_edges=PICTURE_MAX_EDGES,
                         progress=False)
            except BaseException as exc:  # noqa: BLE001 (re-raised in the caller)
                errors.append(exc)
            spent.append(time.perf_counter() - t)

        thread = threading.Thread(target=draw, name="mge-picture", daemon=True)
        thread.start()
        try:
            yield
        finally:
            thread.join()
        if errors:
            raise errors[0]
        timings["picture_s"] = spent[0]


def _measured_on_mge(net, encoding: str, identity_skips: bool, normalise: str | None,
                     force: bool, progress: bool, picture: Path | None, dag: LayerDAG,
                     sparsity: float, timings: dict[str, float]) -> tuple:
    """Everything measured on the materialised MGEs (the one asked for and the one with
    identity skips), the picture drawn alongside; ``unavailable`` is empty."""
    t = time.perf_counter()
    graph, with_skips = enc.multipartite_pair(net.model, net.input_shape, identity_skips,
                                              force=force, progress=progress, dag=dag)
    timings["encode_s"] = time.perf_counter() - t
    t = time.perf_counter()
    view = metrics.GraphView(with_skips)
    paths = path_summary(net.model, view)
    layers = with_effective_density(layer_rows(net.model), layer_alive_weights(view, dag))
    del with_skips, view  # its edges (0.1 GB at 3.8M) are not needed by the rest: a lower peak
    release_freed_memory()  # what pruning and encoding freed, before other threads allocate
    title = picture_title(net.name, net.method, sparsity, paths)
    with _picture_alongside(graph, picture, title, net.seed, timings):
        topo, layers_topo, shown = _topometrics(net, encoding, graph, paths, normalise,
                                                progress)
        timings["topometrics_s"] = time.perf_counter() - t
        t = time.perf_counter()
        ram = metrics.ramanujan(net.model, as_frame=False)
        ram_summary = metrics.ramanujan_summary(ram)
        timings["ramanujan_s"] = time.perf_counter() - t
    return paths, layers, topo, layers_topo, shown, ram, ram_summary, {}


#: The topometrics of the paper's table that the passes give (``metrics.network_path_metrics``).
_PASS_TOPOMETRICS = tuple(k for k in ("nodes", "edges", *metrics.PAPER_METRICS)
                          if k in metrics.NETWORK_PATH_METRICS)


def _gib(n_bytes: int) -> str:
    return f"{n_bytes / 2**30:.3g} GiB"


def _measured_by_passes(net, encoding: str, identity_skips: bool, normalise: str | None,
                        progress: bool, picture: bool, dag: LayerDAG,
                        mge: tuple[int, int], timings: dict[str, float],
                        graph_fits: bool = False) -> tuple:
    """What can be measured without the MGE with identity skips, when the two MGEs of
    :func:`_measured_on_mge` would not fit: the path and degree topometrics by passes of the
    network (``metrics.network_path_metrics``), the rolled encodings' topometrics, the
    Ramanujan metrics; with ``graph_fits``, every topometric of the MGE asked for, built alone
    (its weight ids dropped: the path metrics came from the passes). Every other value is NaN
    and named in ``unavailable`` with the reason (``mge``: the bytes the MGEs would need and
    the bytes available)."""
    _check_passes_fit(net, encoding, identity_skips, dag, mge[0])
    need = f"~{_gib(mge[0])} with its topometrics, {_gib(mge[1])} available"
    reason = (f"needs the MGE with identity skips next to the topometrics' one ({need})"
              if graph_fits else f"needs the materialised MGE ({need})")
    unavailable: dict[str, str] = {}
    t = time.perf_counter()
    real = metrics.network_path_metrics(net.model, net.input_shape, True, dag=dag,
                                        progress=progress)
    alive = metrics.network_alive(net.model, net.input_shape, True, progress=progress, dag=dag)
    paths = _path_summary_by_passes(net.model, real, alive)
    layers = with_effective_density(layer_rows(net.model), alive.weights)
    if encoding == "mge" and graph_fits:
        timings["passes_s"] = time.perf_counter() - t
        t = time.perf_counter()
        graph = enc.multipartite(net.model, net.input_shape, identity_skips, force=True,
                                 progress=progress, dag=dag)  # its memory checked by the caller
        graph = dataclasses.replace(graph, edge_weight_ids=None)
        release_freed_memory()
        timings["encode_s"] = time.perf_counter() - t
        t = time.perf_counter()
        topo = metrics.topometrics(graph, seed=net.seed, progress=progress,
                                   keys=("nodes", "edges", *metrics.PAPER_METRICS))
        del graph
        timings["topometrics_s"] = time.perf_counter() - t
        shown = metrics.normalise_paper(topo) if normalise else dict(topo)
        topo.update({k: paths[k] for k in metrics.PATH_METRICS})
        layers_topo = None
    elif encoding == "mge":
        counts = dict(real) if identity_skips else metrics.network_path_metrics(
            net.model, net.input_shape, False, keys=_PASS_TOPOMETRICS, dag=dag,
            progress=progress)
        timings["passes_s"] = time.perf_counter() - t
        device = next(net.model.parameters()).device
        if metrics.estimate_network_spectra(net.model, net.input_shape, identity_skips,
                                            dag=dag) <= _passes_memory(device):
            t = time.perf_counter()
            counts.update(metrics.network_spectra(net.model, net.input_shape, identity_skips,
                                                  net.seed, progress=progress, force=True,
                                                  dag=dag))
            timings["spectra_s"] = time.perf_counter() - t
        structural = metrics.estimate_network_topology(net.model, net.input_shape,
                                                       identity_skips, dag=dag)
        available = _passes_memory(torch.device("cpu"))  # the packed graph lives in RAM
        if structural.peak_bytes <= available:
            t = time.perf_counter()
            steps: dict[str, float] = {}
            counts.update(metrics.network_topology_metrics(
                net.model, net.input_shape, identity_skips, seed=net.seed, progress=progress,
                force=True, unavailable=unavailable, timings=steps, dag=dag))
            timings["topology_s"] = time.perf_counter() - t
            timings["packed_build_s"] = steps["build"]
        else:
            reason = (f"needs the packed undirected MGE (~{_gib(structural.peak_bytes)}, "
                      f"{_gib(available)} available)")
        topo = {k: counts.get(k, math.nan) for k in ("nodes", "edges", *metrics.PAPER_METRICS)}
        unavailable.update({k: reason for k in topo if k not in counts})
        shown = metrics.normalise_paper(topo) if normalise else dict(topo)
        topo.update({k: paths[k] for k in metrics.PATH_METRICS})
        layers_topo = None
    elif encoding == "unrolled":  # its layers' edges, summed, are the MGE's
        keys = [k for k in metrics.METRICS if k not in metrics.PATH_METRICS]
        topo = dict.fromkeys(keys, math.nan)
        unavailable.update(dict.fromkeys(keys, f"needs the unrolled BGEs, as many edges as the "
                                               f"MGE ({need})"))
        shown = dict(topo)
        topo.update({k: paths[k] for k in metrics.PATH_METRICS})
        layers_topo = None
    else:
        topo, layers_topo, shown = _topometrics(net, encoding, None, paths, normalise, progress)
    if picture:
        unavailable["picture"] = (f"not drawn: it needs the MGE with identity skips ({need})"
                                  if graph_fits else f"not drawn: it needs the MGE's edges ({need})")
    timings.setdefault("passes_s", time.perf_counter() - t)
    t = time.perf_counter()
    ram = metrics.ramanujan(net.model, as_frame=False)
    ram_summary = metrics.ramanujan_summary(ram)
    timings["ramanujan_s"] = time.perf_counter() - t
    return paths, layers, topo, layers_topo, shown, ram, ram_summary, unavailable


def _graph_without_ids(est: enc.EncodingEstimate) -> int:
    """Bytes of the MGE of ``est`` without its weight ids (4 bytes per edge)."""
    return est.graph_bytes - 4 * est.edges


def mge_route_bytes(est_skips: enc.EncodingEstimate, est_plain: enc.EncodingEstimate,
                    same_graph: bool) -> tuple[int, int]:
    """Peak bytes of ``analyze``'s two routes through the MGE: ``(both, alone)``.

    ``both``: the MGE with identity skips built first, the one asked for next to it (the same
    graph when ``same_graph``; otherwise filtered from it or built afresh, as
    ``encoding.multipartite_pair`` does), the path metrics on the first, then every topometric
    of the second (``metrics.estimate_topometrics``). ``alone``: the MGE asked for only, its
    weight ids dropped, and its topometrics (the path metrics coming from passes).

    Parameters
    ----------
    est_skips, est_plain : EncodingEstimate
        ``encoding.estimate`` of the MGE with identity skips and of the one asked for.
    same_graph : bool
        Whether the two are the same graph (identity skips asked for, or none in the network).

    Returns
    -------
    tuple[int, int]
        ``(both, alone)`` in bytes.

    References
    ----------
    .. [1] E. Cunegatti, L. L. Farina, D. Bucur, G. Iacca. "Understanding Sparse Neural
       Networks from their Topology via Multipartite Graph Representations." TMLR 2024.
    """
    def topo(est: enc.EncodingEstimate, graph: int) -> int:
        index_bytes = np.dtype(index_dtype(max(est.nodes, est.edges) + 1)).itemsize
        return graph + metrics.estimate_topometrics(est.nodes, est.edges, index_bytes)

    if same_graph:
        both = max(est_skips.peak_bytes, topo(est_skips, est_skips.graph_bytes))
    else:
        second = est_plain.peak_bytes if not est_skips.exact else est_plain.graph_bytes
        both = max(est_skips.peak_bytes, est_skips.graph_bytes + second,
                   topo(est_skips, est_skips.graph_bytes) + est_plain.graph_bytes,
                   topo(est_plain, est_plain.graph_bytes))
    alone = max(est_plain.peak_bytes, topo(est_plain, _graph_without_ids(est_plain)))
    return both, alone


def _passes_memory(device: torch.device) -> int:
    """Bytes available to passes of the network on ``device``."""
    return (torch.cuda.mem_get_info(device)[0] if device.type == "cuda"
            else psutil.virtual_memory().available)


def _check_passes_fit(net, encoding: str, identity_skips: bool, dag: LayerDAG,
                      mge_bytes: int) -> None:
    """:class:`GraphTooLargeError` when even the passes would not fit (predicted peak over the
    memory available on their device)."""
    runs = [metrics.estimate_network_paths(net.model, net.input_shape, True, dag=dag)]
    if encoding == "mge" and not identity_skips:
        runs.append(metrics.estimate_network_paths(net.model, net.input_shape, False,
                                                   keys=_PASS_TOPOMETRICS, dag=dag))
    need = max(r.peak_bytes for r in runs)
    device = torch.device(runs[0].device)
    available = _passes_memory(device)
    if need > available:
        raise GraphTooLargeError(
            f"the MGE would need ~{_gib(mge_bytes)} with its topometrics, and even its path and "
            f"degree metrics by passes ~{_gib(need)} on {device}, but only {_gib(available)} is "
            "available; use a smaller input, or force=True (--force) to build the MGE anyway")


def _path_summary_by_passes(model: nn.Module, real: dict, alive: metrics.NetworkAlive) -> dict:
    """:func:`path_summary` from the passes' values (``metrics.network_path_metrics`` and
    ``metrics.network_alive`` on the MGE with identity skips): the same keys and values."""
    out = {"nodes": real["nodes"], "edges": real["edges"],
           **{k: float(real[k]) for k in metrics.PATH_METRICS},
           **metrics.channel_bottlenecks(list(alive.channels.values()))}
    return _with_signal_cut(out, model, alive.signal_cut)


def analyze_network(net, encoding: str = "mge", identity_skips: bool = False,
                    normalise: str | None = None, force: bool = False,
                    progress: bool = True, picture: Path | None = None) -> dict:
    """Everything ``sparsetopo analyze`` reports about one network.

    Path metrics and per-layer effective densities always come from the MGE with identity
    skips (the real network's signal paths: a residual block whose convolutions were all pruned
    still passes its input on); the other topometrics from the chosen encoding (per-layer
    encodings: the mean over layers).

    Three routes, chosen on the memory each would need at its peak (predicted before any
    work, :func:`mge_route_bytes`) against the memory available:

    - both MGEs fit (with and without identity skips, and the topometrics of the one asked
      for): everything above, ``unavailable`` empty;
    - only the MGE asked for fits with its topometrics (e.g. ImageNet's ResNet-50 at 224x224
      at 0.8 or 0.9 sparsity on a 24 GB machine): every topometric on it, the paths table
      (path metrics, bottlenecks, signal cut) and the per-layer effective densities by passes
      of the network (``metrics.network_path_metrics``, ``metrics.network_alive``: the same
      values); only the picture, which draws the other MGE, is left out, with the reason in
      ``unavailable``;
    - neither fits (e.g. ResNet-50 at 224x224 pruned by SNIP, 2.3 to 2.9 billion edges): the
      path and degree topometrics (``nodes``, ``edges``, the sink, source and disconnected
      nodes, the removable edges, ``one_hop``, ``strength`` and the four path metrics), the
      rest of the paths table and the per-layer effective densities by passes, the spectral gap
      and radius by the same solvers on products of passes (``metrics.network_spectra``;
      minutes on ResNet-50), the structural topometrics (``two_hop``, ``motifs``, cores,
      bridges, articulation points, components) on the packed undirected MGE
      (``metrics.network_topology_metrics``, 6 bytes per edge) when that fits, the rolled
      encodings and the Ramanujan metrics as always; what does not fit (the structural
      topometrics of the dense ResNet-50 at 224x224, 4.6 billion edges; the picture) is NaN
      or left out, with its reason in ``unavailable``.

    ``force`` takes the first route whatever the memory.

    Parameters
    ----------
    net : Network
        The network (:func:`build_network`).
    encoding : {"mge", "unrolled", "rolled", "rolled-channel"}
        Encoding of the paper's topometrics.
    identity_skips : bool
        Encode identity shortcuts in the MGE of the topometrics (the paper does not).
    normalise : str, optional
        Also report the topometrics normalised as the paper's tables are
        (``metrics.normalise_paper``), under ``topometrics_shown``.
    force : bool
        Build both MGEs even if memory looks short, instead of computing what the passes and
        the MGE alone can.
    progress : bool
        Show progress bars.
    picture : Path, optional
        Also draw the MGE (``encoding="mge"`` only) to this PNG, on a second thread while the
        topometrics are computed (not drawn when the MGE does not fit).

    Returns
    -------
    dict
        JSON-serialisable: ``network`` (model, dataset, pruning, target and measured sparsity,
        seed, input shape, weights, present and total weights, notes), ``options``, ``layers``
        (:func:`layer_rows` with ``alive`` and ``effective_density``), ``encodings`` (sizes),
        ``topometrics``, ``topometrics_shown``, ``paths`` (:func:`path_summary`),
        ``ramanujan`` (``summary``, ``layers``), ``unavailable`` (key -> why it is NaN or
        missing; empty when the MGE was built), ``timings``; ``topometrics_layers`` for a
        per-layer encoding; ``picture`` (its path) when one was drawn.

    Raises
    ------
    UsageError
        A picture asked for with an encoding other than the MGE.
    GraphTooLargeError
        Neither the MGE nor the passes would fit in memory (the MGE is built anyway with
        ``force``).

    References
    ----------
    Cunegatti, E., Farina, L. L., Bucur, D., Iacca, G. (2024). Understanding Sparse Neural
    Networks from their Topology via Multipartite Graph Representations. *TMLR*.

    Vysogorets, A., Kempe, J. (2023). Connectivity Matters: Neural Network Pruning Through the
    Lens of Effective Sparsity. *Journal of Machine Learning Research* 24.

    Pal, B., Biswas, A., Kolay, S., Mitra, P., Basu, B. (2022). A Study on the Ramanujan Graph
    Property of Winning Lottery Tickets. *ICML*.
    """
    if picture is not None and encoding != "mge":
        raise UsageError(f"the picture shows the MGE; encoding {encoding!r} builds none")
    timings: dict[str, float] = {"load_s" if net.weights else "prune_s": net.seconds}
    t = time.perf_counter()
    present, total = count_weights(net.model)
    dag = trace(net.model, net.input_shape)  # once, for every count and both MGE builds
    plain = enc.estimate(net.model, net.input_shape, identity_skips, dag=dag)
    sizes = encoding_sizes(net.model, net.input_shape, identity_skips, dag, mge=plain)
    with_skips = plain if identity_skips else enc.estimate(net.model, net.input_shape, True,
                                                           dag=dag)
    both, alone = mge_route_bytes(with_skips, plain, identity_skips or plain == with_skips)
    available = enc.memory_available()  # what enc.check_memory compares with
    timings["sizes_s"] = time.perf_counter() - t
    if force or both <= available:
        parts = _measured_on_mge(net, encoding, identity_skips, normalise, force, progress,
                                 picture, dag, 1 - present / total, timings)
    else:
        parts = _measured_by_passes(net, encoding, identity_skips, normalise, progress,
                                    picture is not None, dag, (both, available), timings,
                                    graph_fits=alone <= available)
    paths, layers, topo, layers_topo, shown, ram, ram_summary, unavailable = parts
    result = {
        "network": {"model": net.name, "dataset": net.dataset, "pruning": net.method,
                    "sparsity_target": net.sparsity, "sparsity": 1 - present / total,
                    "seed": net.seed, "input_shape": list(net.input_shape),
                    "weights": net.weights, "present_weights": present, "total_weights": total,
                    "notes": net.notes},
        "options": {"encoding": encoding, "identity_skips": identity_skips,
                    "normalise": normalise},
        "layers": layers,
        "encodings": sizes,
        "topometrics": {k: float(v) for k, v in topo.items()},
        "topometrics_shown": {k: float(v) for k, v in shown.items()},
        "paths": paths,
        "ramanujan": {"summary": ram_summary, "layers": ram},
        "unavailable": unavailable,
        "timings": timings,
    }
    if layers_topo is not None:
        result["topometrics_layers"] = layers_topo
    if picture is not None and "picture" not in unavailable:
        result["picture"] = str(picture)
    return json_value(result)


def flat_row(result: dict) -> dict:
    """One CSV row of an analysis (``metrics.csv``).

    Parameters
    ----------
    result : dict
        :func:`analyze_network`.

    Returns
    -------
    dict
        The network fields, ``input_shape`` as ``CxHxW``, ``encoding``, then the
        ``topo.<key>``, ``paths.<key>``, ``ramanujan.<key>`` and ``time.<key>`` columns.
    """
    row = {k: v for k, v in result["network"].items() if k not in ("input_shape", "notes")}
    row["input_shape"] = "x".join(map(str, result["network"]["input_shape"]))
    row["encoding"] = result["options"]["encoding"]
    row.update({f"topo.{k}": v for k, v in result["topometrics"].items()})
    row.update({f"paths.{k}": v for k, v in result["paths"].items()
                if k not in ("empty_layers", "headline")})
    row.update({f"ramanujan.{k}": v for k, v in result["ramanujan"]["summary"].items()})
    row.update({f"time.{k}": v for k, v in result["timings"].items()})
    return row


def write_results(result: dict, out: Path) -> list[Path]:
    """Write ``metrics.csv`` and ``metrics.json``, each atomically.

    Parameters
    ----------
    result : dict
        :func:`analyze_network`.
    out : Path
        Folder (created if missing).

    Returns
    -------
    list of Path
        The files written, the picture first when :func:`analyze_network` drew one (it is in
        place once every metric has been computed, and the metrics files follow it: a failure
        leaves no half-new set).

    Raises
    ------
    OutputError
        A folder or file that cannot be written.
    """
    out = ensure_dir(out)
    written = [Path(result["picture"])] if result.get("picture") else []
    write_text(out / "metrics.csv", csv_text([flat_row(result)]))
    write_text(out / "metrics.json", json.dumps(result, indent=2, default=float) + "\n")
    return [*written, out / "metrics.csv", out / "metrics.json"]


def csv_text(rows: list[dict]) -> str:
    """Rows as CSV text, as ``pandas.DataFrame(rows).to_csv(index=False)`` writes them.

    Written without importing pandas (the tests check that the text is the same): floats in
    their shortest round-trip form, ``None`` and NaN as empty fields.

    Parameters
    ----------
    rows : list of dict
        The rows; the first row's keys are the header and the columns of every row.

    Returns
    -------
    str
        The CSV text, one line per row after the header.
    """
    def cell(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        if isinstance(v, float):
            return repr(float(v))
        return v

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(rows[0].keys() if rows else [])
    for row in rows:
        writer.writerow([cell(row.get(k)) for k in rows[0]])
    return buf.getvalue()


def picture_title(model: str, method: str, sparsity: float, paths: dict) -> str:
    """Title of the MGE picture: the network and its real paths (with identity skips).

    Parameters
    ----------
    model : str
        Model name.
    method : str
        Pruning method (or ``weights``).
    sparsity : float
        Measured sparsity.
    paths : dict
        :func:`path_summary`.

    Returns
    -------
    str
        ``"<model>, <method> at sparsity <s>"``, then the collapse headline, or the number of
        input->output paths and the effective density.
    """
    title = f"{model}, {method} at sparsity {sparsity:.2f}"
    if paths.get("headline"):
        return f"{title}: {paths['headline']}"
    log10 = paths.get("log10_paths")
    if log10 is None or not math.isfinite(log10):
        return title
    return (f"{title}: 10^{log10:.1f} input->output paths, effective density "
            f"{paths['effective_density']:.3f} (identity skips included)")


#: The encodings ``analyze`` tables (the MGE, or the mean over layers of a per-layer BGE).
ENCODINGS = ("mge", "unrolled", "rolled", "rolled-channel")


def check_table_options(encoding: str, normalise: str | None) -> None:
    """:class:`UsageError` unless ``encoding`` is one of :data:`ENCODINGS` and ``normalise`` is
    ``None`` or ``"paper"``.

    Parameters
    ----------
    encoding : str
        The encoding whose topometrics are tabled.
    normalise : str or None
        The normalisation of the shown values.
    """
    if encoding not in ENCODINGS:
        raise UsageError(f"unknown encoding {encoding!r}; valid: {', '.join(ENCODINGS)}")
    if normalise not in (None, "paper"):
        raise UsageError(f"unknown normalisation {normalise!r}; valid: paper")


def analyze(model: str = "resnet20", pruning: str = "snip", sparsity: float = 0.98,
            seed: int = 0, dataset: str = "digits", *, data_dir: Path | None = None,
            weights: Path | None = None, input_size: int | None = None,
            input_shape: tuple[int, int, int] | None = None, encoding: str = "mge",
            identity_skips: bool = False, normalise: str | None = None, force: bool = False,
            progress: bool = False, picture: Path | None = None) -> dict:
    """Analyse one pruned network exactly as ``sparsetopo analyze`` does, in one call.

    The network is built and seeded as the command builds it (:func:`build_network`: the
    model's initial weights and the pruning drawn from ``seed``), then encoded and measured
    (:func:`analyze_network`): the paper's topometrics of the chosen encoding, the path metrics
    of the network's real signal paths (the MGE *with* identity skips, whatever
    ``identity_skips`` says of the tabled encoding), per-layer densities and effective
    densities, the Ramanujan metrics. Same defaults, same numbers: the result is the JSON that
    ``sparsetopo analyze --json`` prints (tested equal, timings aside).

    Parameters
    ----------
    model : str
        A zoo model name or ``PATH.py:FACTORY``.
    pruning : str
        A pruning method (``METHOD+CONTROL`` too); ignored when ``weights`` is given.
    sparsity : float
        Fraction of the conv/linear weights removed, in [0, 1).
    seed : int
        Seed of the initial weights, the mask and the sampled metrics.
    dataset : str
        The dataset: input shape, classes and pruning data.
    data_dir : path, optional
        Where CIFAR or Tiny-ImageNet files are.
    weights : path, optional
        A masked state_dict, checkpoint or masks file analysed instead of pruning.
    input_size, input_shape : optional
        Encode for ``input_size x input_size`` inputs, or for ``(C, H, W)`` inputs.
    encoding : {"mge", "unrolled", "rolled", "rolled-channel"}
        The encoding whose topometrics are tabled.
    identity_skips : bool
        Encode identity shortcuts in the tabled MGE too.
    normalise : {None, "paper"}
        Also give the paper-normalised values (``topometrics_shown``).
    force : bool
        Build the MGE even when memory looks short (else what needs it is NaN, with the
        reason in ``unavailable``).
    progress : bool
        Show progress bars.
    picture : path, optional
        Also draw the MGE to this PNG (``encoding="mge"`` only).

    Returns
    -------
    dict
        JSON-serialisable: ``network``, ``options``, ``layers``, ``encodings``,
        ``topometrics``, ``topometrics_shown``, ``paths``, ``ramanujan``, ``unavailable``
        (what is NaN because the MGE would not fit, with the reason), ``timings``.

    Raises
    ------
    InputError
        Bad options, files or models (one line naming what was wrong).

    References
    ----------
    Cunegatti, E., Farina, L. L., Bucur, D., Iacca, G. Understanding Sparse Neural Networks
    from their Topology via Multipartite Graph Representations. TMLR, 2024.
    """
    start = time.perf_counter()
    check_table_options(encoding, normalise)
    net = build_network(model, pruning, sparsity, seed, dataset, data_dir, weights,
                        not progress, input_size, input_shape)
    result = analyze_network(net, encoding=encoding, identity_skips=identity_skips,
                             normalise=normalise, force=force, progress=progress,
                             picture=picture)
    result["timings"]["total_s"] = time.perf_counter() - start
    return result
