"""The ``analyze`` main job: encode one sparse network, compute its metrics, report them."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from . import encoding as enc
from . import metrics
from .io import atomic_path, write_text
from .pruning.masks import count_weights, layer_densities

PICTURE_MAX_EDGES = 5_000_000  # larger MGEs are drawn from a uniform sample (noted on the picture)


def encoding_sizes(model, input_shape, identity_skips: bool = False) -> dict[str, dict]:
    """Nodes and edges of every encoding, counted without building the large ones."""
    est = enc.estimate(model, input_shape, identity_skips)
    un_nodes, un_edges = enc.unrolled_size(model, input_shape)
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


def _finite(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def analyze_network(net, encoding: str = "mge", identity_skips: bool = False,
                    normalise: str | None = None, force: bool = False,
                    progress: bool = True) -> dict:
    """Everything ``analyze`` reports, as a JSON-serialisable dict (plus ``_graph``: the MGE
    when it was built, for the picture)."""
    timings: dict[str, float] = {}
    t = time.perf_counter()
    present, total = count_weights(net.model)
    sizes = encoding_sizes(net.model, net.input_shape, identity_skips)
    if sizes["mge"]["graph_bytes"] and encoding == "mge":
        enc.check_memory(enc.estimate(net.model, net.input_shape, identity_skips), force)
    timings["sizes_s"] = time.perf_counter() - t

    t = time.perf_counter()
    graph = None
    if encoding == "mge":
        graph = enc.multipartite(net.model, net.input_shape, identity_skips, force=force,
                                 progress=progress)
        timings["encode_s"] = time.perf_counter() - t
        t = time.perf_counter()
        topo = metrics.topometrics(graph, seed=net.seed, progress=progress)
        table = metrics.topometrics_table([topo], normalise=normalise)
        shown = {k: float(v) for k, v in table.iloc[0].items() if k in topo}
        layers_topo = None
    else:
        graphs = {"unrolled": lambda: enc.unrolled(net.model, net.input_shape),
                  "rolled": lambda: enc.rolled(net.model),
                  "rolled-channel": lambda: enc.rolled_channel(net.model)}[encoding]()
        timings["encode_s"] = time.perf_counter() - t
        t = time.perf_counter()
        topo = metrics.layer_mean(graphs)
        shown = dict(topo)
        layers_topo = metrics.layerwise(graphs).to_dict(orient="records")
    timings["topometrics_s"] = time.perf_counter() - t

    t = time.perf_counter()
    ram = metrics.ramanujan(net.model)
    ram_summary = metrics.ramanujan_summary(ram)
    timings["ramanujan_s"] = time.perf_counter() - t
    result = {
        "network": {"model": net.name, "dataset": net.dataset, "pruning": net.method,
                    "sparsity_target": net.sparsity, "sparsity": 1 - present / total,
                    "seed": net.seed, "input_shape": list(net.input_shape),
                    "weights": net.weights, "present_weights": present, "total_weights": total},
        "options": {"encoding": encoding, "identity_skips": identity_skips,
                    "normalise": normalise},
        "layers": [{"layer": r.layer, "type": r.kind, "shape": list(r.shape),
                    "present": r.present, "total": r.total, "density": r.density}
                   for r in layer_densities(net.model)],
        "encodings": sizes,
        "topometrics": {k: _finite(float(v)) for k, v in topo.items()},
        "topometrics_shown": {k: _finite(float(v)) for k, v in shown.items()},
        "ramanujan": {"summary": {k: _finite(float(v)) for k, v in ram_summary.items()},
                      "layers": json.loads(ram.to_json(orient="records"))},
        "timings": timings,
    }
    if layers_topo is not None:
        result["topometrics_layers"] = json.loads(pd.DataFrame(layers_topo).to_json(
            orient="records"))
    result["_graph"] = graph
    return result


def flat_row(result: dict) -> dict:
    """One CSV row: network fields, then ``topo.<key>`` and ``ramanujan.<key>`` columns."""
    row = {k: v for k, v in result["network"].items() if k != "input_shape"}
    row["input_shape"] = "x".join(map(str, result["network"]["input_shape"]))
    row["encoding"] = result["options"]["encoding"]
    row.update({f"topo.{k}": v for k, v in result["topometrics"].items()})
    row.update({f"ramanujan.{k}": v for k, v in result["ramanujan"]["summary"].items()})
    row.update({f"time.{k}": v for k, v in result["timings"].items()})
    return row


def write_results(result: dict, out: Path, picture_path: Path | None = None, graph=None,
                  progress: bool = True) -> list[Path]:
    """Write metrics.json, metrics.csv (and the MGE picture), each atomically; the picture is
    drawn first so that a failure leaves no partial set of new files."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if picture_path is not None and graph is not None:
        from . import plot

        net = result["network"]
        title = f"{net['model']}, {net['pruning']} at sparsity {net['sparsity']:.2f}"
        plot.mge(graph, picture_path, seed=net["seed"], title=title,
                 max_edges=PICTURE_MAX_EDGES, progress=progress)
        written.append(picture_path)
    csv = pd.DataFrame([flat_row(result)])
    with atomic_path(out / "metrics.csv") as tmp:
        csv.to_csv(tmp, index=False)
    write_text(out / "metrics.json", json.dumps(result, indent=2, default=float) + "\n")
    return [*written, out / "metrics.csv", out / "metrics.json"]


def _fmt(v) -> str:
    if v is None:
        return "nan"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        if v == int(v) and abs(v) < 1e15:
            return f"{int(v):,}"
        return f"{v:.6g}"
    return str(v)


def format_report(net, result: dict, console: Console, written: list[Path]) -> None:
    """Print the readable summary of ``analyze``."""
    from .cli import _density_table

    console.print(_density_table(net))
    t = Table(title="Encodings", title_justify="left")
    for c in ("encoding", "nodes", "edges", "layers"):
        t.add_column(c, justify="left" if c == "encoding" else "right")
    for name, s in result["encodings"].items():
        edges = f"{s['edges']:,}" + ("" if s.get("edges_exact", True) else " (at most)")
        t.add_row(name, f"{s['nodes']:,}", edges, str(s.get("layers", "-")))
    console.print(t)
    opts = result["options"]
    what = "MGE" if opts["encoding"] == "mge" else f"{opts['encoding']} BGEs (mean over layers)"
    norm = ", paper-normalised" if opts["normalise"] else ""
    t = Table(title=f"Topometrics of the {what}{norm}", title_justify="left")
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_column("meaning")
    for k, v in result["topometrics_shown"].items():
        t.add_row(k, _fmt(v), metrics.METRIC_DESCRIPTIONS.get(k, ""))
    console.print(t)
    t = Table(title="Ramanujan metrics (rolled BGE, mean over the layers where each is defined)",
              title_justify="left")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in result["ramanujan"]["summary"].items():
        t.add_row(k, _fmt(v))
    console.print(t)
    tm = result["timings"]
    console.print(
        "time: " + ", ".join(f"{k.removesuffix('_s')} {v:.2f}s" for k, v in tm.items())
    )
    console.print("wrote " + ", ".join(str(p) for p in written))
