"""``sparsetopo compare``: two or more masks of one network side by side. The work is
:mod:`sparsetopo.comparison`'s; this command parses and prints."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sparsetopo.cli._common import err_console, one_line_errors, out_console
from sparsetopo.errors import UsageError


def _split(pruning: list[str], weights: list[Path], extra: list[str]
           ) -> tuple[list[str], list[Path]]:
    """``--pruning a b --weights x.pt y.pt`` reaches typer as ``pruning=[a]``,
    ``weights=[x.pt]``, ``extra=[b, y.pt]``: an extra value is a weights file when it looks like
    a path (an existing file, a suffix or a folder), else a method."""
    if extra and not (pruning or weights):
        raise UsageError(f"unexpected argument(s) {extra}; give candidates with --pruning A B "
                         "... and/or --weights A.pt B.pt ...")
    if not weights:
        return pruning + extra, []
    if not pruning:
        return [], weights + [Path(e) for e in extra]
    files = [e for e in extra if Path(e).exists() or Path(e).suffix or "/" in e]
    return pruning + [e for e in extra if e not in files], weights + [Path(e) for e in files]


def _num(value, digits: int = 4) -> str:
    """A fraction: ``digits`` decimals, or two significant digits below 0.001 (a density of
    0.00014 is not 0.0000); ``-`` for none."""
    if value is None:
        return "-"
    return f"{value:.1e}" if 0 < abs(value) < 1e-3 else f"{value:.{digits}f}"


def _value(value) -> str:
    from sparsetopo.cli._tables import _fmt  # here: it imports the metrics

    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else _fmt(value)


def layer_tables(result: dict) -> list[Table]:
    """Per layer: density and effective density of each network; Jaccard of each pair."""
    labels = result["labels"]
    t = Table(title="Per layer: density d, effective density ed (share of present weights on "
              "a path)", title_justify="left")
    t.add_column("layer")
    for label in labels:
        t.add_column(f"{label}\nd", justify="right")
        t.add_column(f"{label}\ned", justify="right")
    for row in result["layers"]:
        cells = [row["layer"]]
        for label in labels:
            net = row["networks"][label]
            cells += [_num(net["density"]), _num(net["effective_density"], 3)]
        t.add_row(*cells)
    j = Table(title="Per layer: Jaccard index of the present weights (1 when both keep none)",
              title_justify="left")
    j.add_column("layer")
    for pair in result["overlap"]:
        j.add_column(f"{pair['a']}\n{pair['b']}", justify="right")
    for i, row in enumerate(result["layers"]):
        j.add_row(row["layer"], *[_num(p["layers"][i]["jaccard"], 3) for p in result["overlap"]])
    return [t, j]


def global_tables(result: dict) -> list[Table]:
    """Every topometric of each network side by side; the overlap of each pair."""
    from sparsetopo.metrics import PAPER_METRICS, PATH_METRICS

    nets = result["networks"]
    t = Table(title="Whole network: topometrics (MGE), paths (MGE with identity skips), "
              "Ramanujan", title_justify="left")
    t.add_column("metric")
    for net in nets:
        t.add_column(net["label"], justify="right")
    rows = [("sparsity", [n["sparsity"] for n in nets])]
    rows += [(k, [n["topometrics"][k] for n in nets]) for k in ("nodes", "edges", *PAPER_METRICS)]
    rows += [(f"paths: {k}", [n["paths"][k] for n in nets])
             for k in ("nodes", "edges", *PATH_METRICS, "min_alive_channels",
                       "min_alive_channel_fraction", "frac_layers_no_path")]
    rows += [(f"ramanujan: {k}", [n["ramanujan"][k] for n in nets]) for k in nets[0]["ramanujan"]]
    for name, values in rows:
        t.add_row(name, *[_value(v) for v in values])
    o = Table(title="Overlap of the present weights, all layers", title_justify="left")
    for col in ("pair", "jaccard", "both", "either"):
        o.add_column(col, justify="left" if col == "pair" else "right")
    for pair in result["overlap"]:
        o.add_row(f"{pair['a']} / {pair['b']}", _num(pair["jaccard"]),
                  f"{pair['intersection']:,}", f"{pair['union']:,}")
    return [t, o]


@one_line_errors
def compare(
    model: Annotated[str, typer.Option(
        "--model", help="Zoo model or PATH.py:FACTORY (every candidate is a mask of it).")
    ] = "resnet20",
    dataset: Annotated[str, typer.Option(
        "--dataset", help="Dataset: input shape, classes, pruning data.")] = "digits",
    pruning: Annotated[list[str] | None, typer.Option(
        "--pruning", help="Candidate methods, each from the same initialization (several: "
        "--pruning snip grasp synflow).")] = None,
    more: Annotated[list[str] | None, typer.Argument(
        help="More candidate methods or weights files (after --pruning or --weights).",
        show_default=False)] = None,
    weights: Annotated[list[Path] | None, typer.Option(
        "--weights", help="Candidate weights files (several: --weights a.pt b.pt): masked "
        "state_dicts, checkpoints holding one, or the masks.pt of `prune`.")] = None,
    sparsity: Annotated[float, typer.Option(
        "--sparsity", help="Sparsity of the methods' masks, in [0, 1).")] = 0.98,
    seed: Annotated[int, typer.Option(
        "--seed", help="Seed of weights, masks and sampled metrics.")] = 0,
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="Directory holding the dataset.")] = None,
    input_size: Annotated[int | None, typer.Option(
        "--input-size", help="Encode for HxW = SIZE inputs instead of the dataset's size.")
    ] = None,
    input_shape: Annotated[str | None, typer.Option(
        "--input-shape", help="Encode for inputs of shape C,H,W (e.g. 3,32,32).")] = None,
    out: Annotated[Path, typer.Option(
        help="Output directory (compare.json, compare.csv, compare.png).")
    ] = Path("sparsetopo-out"),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
    picture: Annotated[bool, typer.Option(help="Also draw compare.png.")] = True,
    force: Annotated[bool, typer.Option(
        "--force", help="Build graphs even if memory looks short.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
) -> None:
    """Compare two or more masks of one network side by side.

    Per-layer densities, effective densities and overlaps (Jaccard), every topometric; writes
    compare.json, compare.csv and compare.png."""
    from sparsetopo.analysis import parse_shape
    from sparsetopo.comparison import candidate_networks, compare_networks, write_comparison
    from sparsetopo.io import ensure_dir

    methods, files = _split(list(pruning or []), list(weights or []), list(more or []))
    ensure_dir(out)
    quiet = quiet or as_json
    shape = None if input_shape is None else parse_shape(input_shape)
    nets = candidate_networks(model, dataset, methods, files, sparsity, seed, data_dir,
                              input_size, shape, quiet)
    result = compare_networks(nets, force=force, progress=not quiet)
    if not as_json:  # the JSON carries them (networks[].notes)
        for net in result["networks"]:
            for note in net["notes"]:
                err_console.print(f"note: {net['label']}: {note}", markup=False)
    written = write_comparison(result, out, picture=picture)
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    for table in [*layer_tables(result), *global_tables(result)]:
        out_console.print(table)
    out_console.print("wrote " + ", ".join(str(p) for p in written))
