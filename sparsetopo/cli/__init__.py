"""Command line: ``sparsetopo prune | analyze | draw | compare | models | study ...``; the
commands only parse options and print (the work is in :mod:`sparsetopo.analysis`,
:mod:`sparsetopo.comparison`, :mod:`sparsetopo.study`).

Every known kind of bad input ends with one line on stderr and exit code 2, with no traceback
(:mod:`sparsetopo.cli._common`); result files are written only once everything they contain has
been computed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from sparsetopo.cli._common import err_console, one_line_errors, out_console

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Topology of sparse neural networks: prune at initialization, encode as graphs "
    "(MGE, unrolled/rolled BGEs), compute topometrics, run studies.",
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # help texts wrap to the terminal: paragraphs, not source lines
)

DEFAULT_MODEL = "resnet20"
DEFAULT_DATASET = "digits"
DEFAULT_METHOD = "snip"
DEFAULT_SPARSITY = 0.98


# Options shared by prune, analyze and draw (one definition, one help text).
ModelOpt = Annotated[str, typer.Option(
    "--model", help="Zoo model (see `sparsetopo models`) or your own: PATH.py:FACTORY or "
    "package.module:FACTORY (FACTORY() must return the torch.nn.Module).")]
PruningOpt = Annotated[str, typer.Option(
    "--pruning", help="Pruning method, or METHOD+CONTROL for a mask control (e.g. "
    "snip+layer-shuffle; see `sparsetopo models`).")]
SparsityOpt = Annotated[float, typer.Option(
    "--sparsity", help="Fraction of weights removed, in [0, 1).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of weights, masks and sampled metrics.")]
DatasetOpt = Annotated[str, typer.Option(
    "--dataset", help="Dataset: input shape, classes, pruning data.")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Directory holding the dataset.")]
WeightsOpt = Annotated[Path | None, typer.Option(
    "--weights", help="Masked state_dict saved with torch.save (loaded with weights_only=True) "
    "used instead of pruning.")]
InputSizeOpt = Annotated[int | None, typer.Option(
    "--input-size", help="Encode for HxW = SIZE inputs instead of the dataset's size (e.g. 224).")]
InputShapeOpt = Annotated[str | None, typer.Option(
    "--input-shape", help="Encode for inputs of shape C,H,W (any model; e.g. 3,32,32).")]
IdentitySkipsOpt = Annotated[bool, typer.Option(
    "--identity-skips", help="Encode identity shortcuts as weight-1 edges.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Build graphs even if memory looks short.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="No progress bars.")]


def _notes(notes: list[str]) -> None:
    for note in notes:
        err_console.print(f"note: {note}", markup=False)


def _shape(text: str | None):
    from sparsetopo.analysis import parse_shape

    return None if text is None else parse_shape(text)


# ---------------------------------------------------------------------------------------------
@app.command()
@one_line_errors
def prune(
    model: ModelOpt = DEFAULT_MODEL,
    pruning: PruningOpt = DEFAULT_METHOD,
    sparsity: SparsityOpt = DEFAULT_SPARSITY,
    seed: SeedOpt = 0,
    dataset: DatasetOpt = DEFAULT_DATASET,
    data_dir: DataDirOpt = None,
    input_size: InputSizeOpt = None,
    input_shape: InputShapeOpt = None,
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("sparsetopo-out"),
    quiet: QuietOpt = False,
) -> None:
    """Prune a model at initialization.

    Writes model.pt (masked state_dict), masks.pt and prune.json (what was pruned, for which
    input shape)."""
    import torch

    from sparsetopo.analysis import build_network, layer_rows
    from sparsetopo.cli._tables import density_table
    from sparsetopo.io import atomic_path, ensure_dir, write_text
    from sparsetopo.pruning.masks import PRUNE_RECORD, get_masks, masked_state_dict

    ensure_dir(out)
    net = build_network(model, pruning, sparsity, seed, dataset, data_dir, quiet=quiet,
                        input_size=input_size, input_shape=_shape(input_shape))
    with atomic_path(out / "model.pt") as tmp:
        torch.save(masked_state_dict(net.model), tmp)
    with atomic_path(out / "masks.pt") as tmp:
        torch.save(get_masks(net.model), tmp)
    record = {"model": net.name, "dataset": net.dataset, "pruning": net.method,
              "sparsity": net.sparsity, "seed": net.seed, "input_shape": list(net.input_shape)}
    write_text(out / PRUNE_RECORD, json.dumps(record, indent=2) + "\n")
    out_console.print(density_table(net.name, net.method, layer_rows(net.model)))
    out_console.print(f"wrote {out / 'model.pt'}, {out / 'masks.pt'} and {out / PRUNE_RECORD} "
                      f"(input shape {'x'.join(map(str, net.input_shape))})")


@app.command("models")
def list_models() -> None:
    """List the models, methods (by category), mask controls and datasets."""
    from sparsetopo import data, models, pruning, training

    out_console.print("models:   " + ", ".join(models.names()))
    out_console.print("pruning:  " + ", ".join(pruning.METHODS))
    out_console.print("dynamic sparse training: " + ", ".join(training.DST_METHODS))
    out_console.print("controls: " + ", ".join(pruning.CONTROLS)
                      + " (as METHOD+CONTROL, e.g. snip+layer-shuffle)")
    for name, methods in training.methods_by_category().items():
        out_console.print(f"category {name}: " + ", ".join(methods))
    out_console.print("datasets: " + ", ".join(data.DATASETS))


@app.command()
@one_line_errors
def analyze(
    model: ModelOpt = DEFAULT_MODEL,
    pruning: PruningOpt = DEFAULT_METHOD,
    sparsity: SparsityOpt = DEFAULT_SPARSITY,
    seed: SeedOpt = 0,
    dataset: DatasetOpt = DEFAULT_DATASET,
    data_dir: DataDirOpt = None,
    weights: WeightsOpt = None,
    input_size: InputSizeOpt = None,
    input_shape: InputShapeOpt = None,
    encoding: Annotated[str, typer.Option(
        help="Encoding whose topometrics are tabled: mge, unrolled, rolled or rolled-channel.")] = "mge",
    identity_skips: IdentitySkipsOpt = False,
    normalise: Annotated[str | None, typer.Option(
        help="'paper' divides counts by nodes/edges as in the paper's tables.")] = None,
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("sparsetopo-out"),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
    picture: Annotated[bool, typer.Option(help="Also draw the MGE to mge.png.")] = True,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """The main job: prune, encode, and measure one network's topology.

    Prunes (or loads), encodes, computes topometrics, path metrics and Ramanujan metrics;
    writes metrics.json, metrics.csv and mge.png (defaults: resnet20, digits, snip, sparsity
    0.98, seed 0)."""
    from sparsetopo.analysis import analyze as analyze_network
    from sparsetopo.analysis import write_results
    from sparsetopo.cli._tables import print_analysis
    from sparsetopo.io import ensure_dir

    ensure_dir(out)
    quiet = quiet or as_json
    result = analyze_network(
        model, pruning, sparsity, seed, dataset, data_dir=data_dir, weights=weights,
        input_size=input_size, input_shape=_shape(input_shape), encoding=encoding,
        identity_skips=identity_skips, normalise=normalise, force=force, progress=not quiet,
        picture=out / "mge.png" if picture and encoding == "mge" else None)
    if not as_json:  # the JSON carries them (network.notes)
        _notes(result["network"]["notes"])
    written = write_results(result, out)
    if as_json:
        sys.stdout.write(json.dumps(result, default=float, indent=2) + "\n")
    else:
        print_analysis(result, out_console, written)


@app.command()
@one_line_errors
def draw(
    model: ModelOpt = DEFAULT_MODEL,
    pruning: PruningOpt = DEFAULT_METHOD,
    sparsity: SparsityOpt = DEFAULT_SPARSITY,
    seed: SeedOpt = 0,
    dataset: DatasetOpt = DEFAULT_DATASET,
    data_dir: DataDirOpt = None,
    weights: WeightsOpt = None,
    input_size: InputSizeOpt = None,
    input_shape: InputShapeOpt = None,
    identity_skips: IdentitySkipsOpt = False,
    max_edges: Annotated[int | None, typer.Option(help="Draw a uniform sample of edges.")] = None,
    out: Annotated[Path, typer.Option(help="PNG file.")] = Path("mge.png"),
    force: ForceOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Draw the MGE of a pruned network.

    Partitions left to right, skip edges highlighted."""
    from sparsetopo import encoding, plot
    from sparsetopo.analysis import build_network, path_summary, picture_title
    from sparsetopo.io import ensure_dir

    ensure_dir(out.parent)
    net = build_network(model, pruning, sparsity, seed, dataset, data_dir, weights, quiet,
                        input_size, _shape(input_shape))
    _notes(net.notes)
    g, with_skips = encoding.multipartite_pair(net.model, net.input_shape, identity_skips,
                                               force=force, progress=not quiet)
    title = picture_title(net.name, net.method, net.sparsity,
                          path_summary(net.model, with_skips))
    plot.mge(g, out, max_edges=max_edges, seed=seed, title=title, progress=not quiet)
    out_console.print(f"wrote {out} ({g.n_nodes:,} nodes, {g.n_edges:,} edges)")


from sparsetopo.cli import compare as _compare  # noqa: E402  (after the zoo commands)
from sparsetopo.cli import predict as _predict  # noqa: E402
from sparsetopo.cli.study import app as study_app  # noqa: E402
from sparsetopo.cli.train import train as _train  # noqa: E402

app.command("predict")(_predict.predict)
app.command("rank")(_predict.rank)
app.command("compare")(_compare.compare)
app.command("train")(_train)

app.add_typer(study_app, name="study", help="Run, fit and report studies.")


def main() -> None:
    """Run the command line (the console script, :func:`sparsetopo.__main__.main`, calls it
    once its imports are done)."""
    app()


if __name__ == "__main__":
    main()
