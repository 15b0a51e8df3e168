"""Two or more masks of one network side by side: per-layer densities and effective densities,
the overlap of their present weights, and every topometric of each (``sparsetopo compare``).

Each network is analysed as ``analyze`` analyses it (:func:`sparsetopo.analysis.analyze_network`:
the paper's topometrics on the MGE, path metrics and effective densities on the MGE with identity
skips, Ramanujan metrics on the rolled BGE); the overlap of two masks ``A`` and ``B`` (the sets of
their present weights) is counted per layer and over all layers:
``intersection`` = ``|A & B|``, ``union`` = ``|A | B|``, ``jaccard`` = ``|A & B| / |A | B|``
(1 when both are empty).

References
    Jaccard, P. (1912). The distribution of the flora in the alpine zone. *New Phytologist*
    11(2).

    Vysogorets, A. and Kempe, J. (2023). Connectivity Matters: Neural Network Pruning Through the
    Lens of Effective Sparsity. *Journal of Machine Learning Research* 24.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path

import numpy as np

from .analysis import Network, analyze_network, build_network, check_options, csv_text
from .errors import UsageError
from .io import ensure_dir, json_value, write_text
from .pruning.masks import get_masks

__all__ = ["candidate_networks", "compare_networks", "flat_rows", "labels_of", "mask_overlap",
           "write_comparison"]

#: Files :func:`write_comparison` writes into its folder.
JSON_FILE, CSV_FILE, PICTURE_FILE = "compare.json", "compare.csv", "compare.png"


def candidate_networks(
    model: str,
    dataset: str,
    methods: Sequence[str] = (),
    weights: Sequence[str | Path] = (),
    sparsity: float | None = None,
    seed: int = 0,
    data_dir: Path | None = None,
    input_size: int | None = None,
    input_shape: tuple[int, int, int] | None = None,
    quiet: bool = False,
) -> list[Network]:
    """The candidates of a comparison, built with :func:`sparsetopo.analysis.build_network`.

    Every name and file is checked before any network is built.

    Parameters
    ----------
    model
        Zoo name or ``PATH.py:FACTORY``.
    dataset
        Dataset: input shape, classes, pruning data.
    methods
        Pruning methods (or ``METHOD+CONTROL``), each applied to the same initialization.
    weights
        Weights files loaded into the model (any form :func:`sparsetopo.pruning.load_weights`
        reads).
    sparsity
        Sparsity of the methods' masks.
    seed
        Seed of the initialization, the masks and the pruning data.
    data_dir
        Directory holding the dataset.
    input_size, input_shape
        Input size (H = W) or shape ``(C, H, W)`` instead of the dataset's.
    quiet
        No progress bars.

    Returns
    -------
    list of Network
        The methods' networks, then the weights files'.

    Raises
    ------
    UsageError
        Fewer than two candidates, or methods without a sparsity.
    """
    if len(methods) + len(weights) < 2:
        raise UsageError(f"compare needs two or more candidates (--pruning A B ..., --weights "
                         f"A.pt B.pt ..., or both), got {len(methods) + len(weights)}")
    if methods and sparsity is None:
        raise UsageError("--sparsity is needed for the candidate pruning methods")
    for method in methods or ["uniform"]:  # every name checked before any work
        check_options(model, method, 0.0 if sparsity is None else sparsity, dataset)
    for path in weights:
        if not Path(path).is_file():
            raise UsageError(f"weights file not found: {path}")
    nets = [build_network(model, m, sparsity, seed, dataset, data_dir, quiet=quiet,
                          input_size=input_size, input_shape=input_shape) for m in methods]
    nets += [build_network(model, "uniform", 0.0, seed, dataset, data_dir, Path(w), quiet,
                           input_size, input_shape) for w in weights]
    return nets


def labels_of(networks: Sequence[Network]) -> list[str]:
    """A short name for each network, unique among them.

    Parameters
    ----------
    networks
        The networks.

    Returns
    -------
    list of str
        Its pruning method, or its weights file's stem (with its folder when stems repeat);
        ``#2``, ``#3``... for repeats.
    """
    def name(net: Network, with_folder: bool) -> str:
        if net.weights is None:
            return net.method
        path = Path(net.weights)
        return f"{path.parent.name}/{path.stem}" if with_folder and path.parent.name else path.stem

    stems = [name(n, False) for n in networks]
    first = [name(n, stems.count(s) > 1) for n, s in zip(networks, stems, strict=True)]
    labels, seen = [], {}
    for label in first:
        seen[label] = seen.get(label, 0) + 1
        labels.append(label if seen[label] == 1 else f"{label}#{seen[label]}")
    return labels


def _presence(net: Network) -> dict[str, np.ndarray]:
    return {k.removesuffix(".weight"): v.numpy().ravel()
            for k, v in get_masks(net.model).items()}


def _check_same_network(networks: Sequence[Network], labels: list[str],
                        masks: list[dict[str, np.ndarray]]) -> None:
    first = [(k, v.size) for k, v in masks[0].items()]
    for net, label, m in zip(networks[1:], labels[1:], masks[1:], strict=True):
        if net.input_shape != networks[0].input_shape:
            raise UsageError(f"candidates differ in input shape: {labels[0]} "
                             f"{'x'.join(map(str, networks[0].input_shape))}, {label} "
                             f"{'x'.join(map(str, net.input_shape))}; compare masks of one "
                             "network on one input shape (--input-size or --input-shape)")
        other = [(k, v.size) for k, v in m.items()]
        if other != first:
            diff = next((a, b) for a, b in zip(first + [None], other + [None], strict=False)
                        if a != b)
            raise UsageError(f"candidates differ in architecture: {labels[0]} has layer "
                             f"{_layer_text(diff[0])}, {label} has {_layer_text(diff[1])}; "
                             "compare masks of one network")


def _layer_text(entry) -> str:
    return "none" if entry is None else f"{entry[0]!r} ({entry[1]:,} weights)"


def mask_overlap(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict:
    """Overlap of two masks of one network: how many present weights they share.

    Parameters
    ----------
    a, b
        ``{layer: flat boolean presence}``, the same layers and sizes.

    Returns
    -------
    dict
        ``intersection`` (present in both), ``union`` (present in either) and ``jaccard``
        (intersection / union, 1 when both keep no weight) over all layers, and ``layers``:
        the same for each layer (with its name under ``layer``).

    References
    ----------
    Jaccard, P. (1912). The distribution of the flora in the alpine zone. *New Phytologist*
    11(2).
    """
    rows = []
    for layer, x in a.items():
        y = b[layer]
        inter, union = int(np.count_nonzero(x & y)), int(np.count_nonzero(x | y))
        rows.append({"layer": layer, "intersection": inter, "union": union,
                     "jaccard": inter / union if union else 1.0})
    inter, union = sum(r["intersection"] for r in rows), sum(r["union"] for r in rows)
    return {"intersection": inter, "union": union,
            "jaccard": inter / union if union else 1.0, "layers": rows}


def compare_networks(
    networks: Sequence[Network],
    labels: Sequence[str] | None = None,
    force: bool = False,
    progress: bool = True,
) -> dict:
    """Two or more masks of one network side by side, as a JSON-serialisable dict.

    Parameters
    ----------
    networks
        Networks of one architecture on one input shape
        (:func:`sparsetopo.analysis.build_network`, :func:`candidate_networks`).
    labels
        A name for each (default :func:`labels_of`).
    force
        Build graphs even if memory looks short.
    progress
        Show progress bars.

    Returns
    -------
    dict
        ``model``, ``input_shape``, ``labels``;
        ``networks``: per network its ``label``, what ``analyze`` reports under ``network``
        (sparsity, present weights, ...), ``effective_density`` (global, MGE with identity
        skips), ``topometrics`` (the paper's on the MGE, the path metrics with identity
        skips), ``paths`` (path metrics and bottlenecks of the MGE with identity skips),
        ``ramanujan`` (summary) and ``timings``;
        ``layers``: per conv/linear layer its ``layer``, ``type``, ``shape``, ``total`` weights
        and, per label, ``present``, ``density``, ``alive`` (present weights on an
        input->output path) and ``effective_density`` (alive / present; None when none is
        present);
        ``overlap``: per pair ``a``, ``b`` (labels) their :func:`mask_overlap`.

    Raises
    ------
    UsageError
        Fewer than two networks, repeated labels, or networks of different architectures or
        input shapes.
    """
    networks = list(networks)
    if len(networks) < 2:
        raise UsageError(f"compare needs two or more networks, got {len(networks)}")
    labels = labels_of(networks) if labels is None else [str(s) for s in labels]
    if len(labels) != len(networks) or len(set(labels)) != len(labels):
        raise UsageError(f"one distinct label per network is needed, got {labels}")
    masks = [_presence(n) for n in networks]
    _check_same_network(networks, labels, masks)
    results = [analyze_network(n, force=force, progress=progress) for n in networks]
    first = results[0]
    layers = [{k: row[k] for k in ("layer", "type", "shape", "total")} for row in first["layers"]]
    for label, result in zip(labels, results, strict=True):
        for out, row in zip(layers, result["layers"], strict=True):
            out.setdefault("networks", {})[label] = {
                k: row[k] for k in ("present", "density", "alive", "effective_density")}
    return json_value({
        "model": networks[0].name,
        "input_shape": list(networks[0].input_shape),
        "labels": labels,
        "networks": [{"label": label, **r["network"],
                      "effective_density": r["paths"]["effective_density"],
                      "topometrics": r["topometrics"], "paths": r["paths"],
                      "ramanujan": r["ramanujan"]["summary"], "timings": r["timings"]}
                     for label, r in zip(labels, results, strict=True)],
        "layers": layers,
        "overlap": [{"a": labels[i], "b": labels[j], **mask_overlap(masks[i], masks[j])}
                    for i, j in combinations(range(len(networks)), 2)],
    })


def flat_rows(result: dict) -> list[dict]:
    """The per-layer part of a comparison as a table (``compare.csv``).

    Parameters
    ----------
    result
        :func:`compare_networks`.

    Returns
    -------
    list of dict
        One row per layer and network: ``layer``, ``type``, ``shape``, ``total``,
        ``network``, ``present``, ``density``, ``alive``, ``effective_density``, then
        ``jaccard.<label>`` with every network (1 with itself).
    """
    per_layer = {layer["layer"]: {(s, s): 1.0 for s in result["labels"]}
                 for layer in result["layers"]}
    for pair in result["overlap"]:
        for row in pair["layers"]:
            cell = per_layer[row["layer"]]
            cell[pair["a"], pair["b"]] = cell[pair["b"], pair["a"]] = row["jaccard"]
    rows = []
    for layer in result["layers"]:
        for label in result["labels"]:
            rows.append({"layer": layer["layer"], "type": layer["type"],
                         "shape": "x".join(map(str, layer["shape"])), "total": layer["total"],
                         "network": label, **layer["networks"][label],
                         **{f"jaccard.{o}": per_layer[layer["layer"]][label, o]
                            for o in result["labels"]}})
    return rows


def write_comparison(result: dict, out: Path, picture: bool = True) -> list[Path]:
    """Write ``compare.png``, ``compare.csv`` and ``compare.json``, each atomically.

    Parameters
    ----------
    result
        :func:`compare_networks`.
    out
        Folder (created if missing).
    picture
        Also draw ``compare.png`` (:func:`sparsetopo.plot.compare`); it is written first, so
        that a failure leaves no half-new set.

    Returns
    -------
    list of Path
        The files written.
    """
    out = ensure_dir(out)
    written = []
    if picture:
        from . import plot

        written.append(plot.compare(result, out / PICTURE_FILE))
    written.append(write_text(out / CSV_FILE, csv_text(flat_rows(result))))
    written.append(write_text(out / JSON_FILE, json.dumps(result, indent=2) + "\n"))
    return written
