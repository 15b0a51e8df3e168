"""The tables the commands print (rich), from the plain results the library returns."""

from __future__ import annotations

import math
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sparsetopo.metrics import METRIC_DESCRIPTIONS, PATH_METRICS


def density_table(model: str, method: str, layers: list[dict]) -> Table:
    """The per-layer densities (``layers``: rows with ``layer``, ``type``, ``shape``,
    ``present``, ``total``, ``density`` and, from ``analyze``, ``effective_density``) as a
    printable table titled with the global sparsity."""
    present = sum(r["present"] for r in layers)
    total = sum(r["total"] for r in layers)
    effective = bool(layers) and "effective_density" in layers[0]
    t = Table(title=f"{model} - {method} - sparsity {1 - present / total:.4f} "
              f"({present:,} of {total:,} weights present)", title_justify="left",
              caption="eff.: effective density, the share of the layer's present weights on "
              "an input->output path" if effective else None, caption_justify="left",
              pad_edge=not effective)
    numbers = ("present", "total", "density", "eff.")
    for col in ("layer", "type", "shape", *numbers[:4 if effective else 3]):
        t.add_column(col, justify="right" if col in numbers else "left")
    for row in layers:
        cells = [row["layer"], row["type"], "x".join(map(str, row["shape"])),
                 f"{row['present']:,}", f"{row['total']:,}", f"{row['density']:.4f}"]
        if effective:
            value = row["effective_density"]
            cells.append("-" if value is None or value != value else f"{value:.4f}")
        t.add_row(*cells)
    return t


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


def _by_reason(unavailable: dict[str, str]) -> dict[str, list[str]]:
    """The keys of ``analyze``'s ``unavailable`` grouped by their reason, picture apart."""
    out: dict[str, list[str]] = {}
    for key, reason in unavailable.items():
        out.setdefault(reason, []).append(key)
    return out


def print_analysis(result: dict, console: Console, written: list[Path]) -> None:
    """Print the readable summary of ``analyze`` (``result``: what
    :func:`sparsetopo.analysis.analyze_network` returned)."""
    headline = result.get("paths", {}).get("headline")
    if headline:
        console.print(f"[bold red]{headline}[/]")
    for reason, keys in _by_reason(result.get("unavailable", {})).items():
        console.print(f"[yellow]NaN, not computed: {', '.join(keys)}: {reason}[/]"
                      if keys != ["picture"] else f"[yellow]picture {reason}[/]")
    network = result["network"]
    console.print(density_table(network["model"], network["pruning"], result["layers"]))
    t = Table(title="Encodings", title_justify="left")
    for c in ("encoding", "nodes", "edges", "layers"):
        t.add_column(c, justify="left" if c == "encoding" else "right")
    for name, s in result["encodings"].items():
        edges = f"{s['edges']:,}" + ("" if s.get("edges_exact", True) else " (at most)")
        t.add_row(name, f"{s['nodes']:,}", edges, str(s.get("layers", "-")))
    console.print(t)
    opts = result["options"]
    what = "MGE" if opts["encoding"] == "mge" else f"{opts['encoding']} BGEs (mean over layers)"
    norm = ", paper-normalised (counts per node or per edge)" if opts["normalise"] else ""
    t = Table(title=f"Topometrics of the {what}{norm}", title_justify="left")
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_column("meaning")
    for k, v in result["topometrics_shown"].items():
        if k not in PATH_METRICS:
            t.add_row(k, _fmt(v), METRIC_DESCRIPTIONS.get(k, ""))
    console.print(t)
    paths = result["paths"]
    t = Table(title=f"Paths of the real network: the MGE with identity skips ({paths['nodes']:,} "
              f"nodes, {paths['edges']:,} edges)", title_justify="left")
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_column("meaning")
    for k in PATH_METRICS:
        t.add_row(k, _fmt(paths[k]), METRIC_DESCRIPTIONS[k])
    for k, meaning in (
            ("min_alive_channels", "fewest channels with a node on a path, over layers"),
            ("min_alive_channel_fraction", "the same as a fraction of the layer's channels"),
            ("frac_layers_no_path", "fraction of layers with no node on a path")):
        t.add_row(k, _fmt(paths[k]), meaning)
    t.add_row("layers without weights", ", ".join(paths["empty_layers"]) or "none", "")
    cut = paths["signal_cut"] or ("unknown (see above)" if "signal_cut" in
                                  result.get("unavailable", {}) else "- (a path exists)")
    t.add_row("signal stops at", cut, "")
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
