"""Command line: ``sparsetopo prune | analyze | draw | study ...``.

Every known kind of bad input ends with one line on stderr and a non-zero exit code (2), with
no traceback; result files are written only once everything they contain has been computed.
"""

from __future__ import annotations

import json
import math
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Topology of sparse neural networks: prune at initialization, encode as graphs "
    "(MGE, unrolled/rolled BGEs), compute topometrics, run studies.",
    pretty_exceptions_enable=False,
)
out_console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

DEFAULT_MODEL = "resnet20"
DEFAULT_DATASET = "digits"
DEFAULT_METHOD = "snip"
DEFAULT_SPARSITY = 0.98


# Options shared by prune, analyze and draw (one definition, one help text).
ModelOpt = Annotated[str, typer.Option("--model", help="Model name (see `sparsetopo models`).")]
PruningOpt = Annotated[str, typer.Option("--pruning", help="Pruning method.")]
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
IdentitySkipsOpt = Annotated[bool, typer.Option(
    "--identity-skips", help="Encode identity shortcuts as weight-1 edges.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Build graphs even if memory looks short.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="No progress bars.")]


class CliError(Exception):
    """A user error reported as one line."""


def _user_errors() -> tuple[type[BaseException], ...]:
    from .data import DataError
    from .encoding import EncodingError
    from .pruning.masks import WeightsError
    from .tracing import TracingError

    return (CliError, DataError, EncodingError, TracingError, WeightsError, ValueError,
            FileNotFoundError, KeyError, MemoryError)


def _fail(exc: BaseException) -> None:
    msg = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    msg = " ".join(msg.strip().split("\n")[0].split()) or type(exc).__name__
    err_console.print(f"error: {msg}", markup=False)
    raise typer.Exit(2)


@contextmanager
def _one_line_errors():
    try:
        yield
    except typer.Exit:
        raise
    except _user_errors() as exc:
        _fail(exc)


@dataclass
class Network:
    """A pruned (or loaded) model with the input shape it is analysed on."""

    model: object
    name: str
    dataset: str
    method: str
    sparsity: float
    seed: int
    input_shape: tuple[int, int, int]
    weights: str | None = None


def _check_args(model: str, method: str, sparsity: float, dataset: str) -> None:
    from . import data, models, pruning

    if model not in models.names():
        raise CliError(f"unknown model {model!r}; valid models: {', '.join(models.names())}")
    if method not in pruning.METHODS:
        raise CliError(f"unknown pruning method {method!r}; valid: {', '.join(pruning.METHODS)}")
    if not (0.0 <= sparsity < 1.0) or math.isnan(sparsity):
        raise CliError(f"sparsity must be in [0, 1), got {sparsity}")
    if dataset not in data.DATASETS:
        raise CliError(f"unknown dataset {dataset!r}; valid: {', '.join(data.DATASETS)}")


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
) -> Network:
    """Create the model for the dataset, then prune it at initialization (or load ``weights``).
    ``input_size`` overrides the dataset's image size (H = W) for the encodings."""
    import torch

    from . import data, models, pruning
    from .pruning.masks import load_weights
    from .tracing import trace

    _check_args(model, method, sparsity, dataset)
    info = data.dataset_info(dataset)
    torch.manual_seed(seed)
    net = models.create(model, num_classes=info.num_classes, in_channels=info.in_channels)
    size = info.image_size if input_size is None else input_size
    if size < 1:
        raise CliError(f"--input-size must be a positive number of pixels, got {size}")
    input_shape = (info.in_channels, size, size)
    trace(net, input_shape)  # fail early, before pruning, on shapes or layers we cannot encode
    if weights is not None:
        load_weights(net, weights)
        from .pruning.masks import sparsity as measured

        return Network(net, model, dataset, "weights", measured(net), seed, input_shape,
                       str(weights))
    loader = None
    if method in pruning.DATA_METHODS:
        loader = data.make_loader(dataset, "train", batch_size=128, data_dir=data_dir,
                                  shuffle=True, augment=False, seed=seed)
    pruning.prune(net, method, sparsity, data=loader, seed=seed, input_shape=input_shape,
                  progress=not quiet)
    return Network(net, model, dataset, method, sparsity, seed, input_shape)


def _density_table(net: Network) -> Table:
    from .pruning.masks import count_weights, layer_densities

    present, total = count_weights(net.model)
    t = Table(title=f"{net.name} - {net.method} - sparsity {1 - present / total:.4f} "
              f"({present:,} of {total:,} weights present)", title_justify="left")
    for col in ("layer", "type", "shape", "present", "total", "density"):
        t.add_column(col, justify="right" if col in ("present", "total", "density") else "left")
    for row in layer_densities(net.model):
        t.add_row(row.layer, row.kind, "x".join(map(str, row.shape)), f"{row.present:,}",
                  f"{row.total:,}", f"{row.density:.4f}")
    return t


# ---------------------------------------------------------------------------------------------
@app.command()
def prune(
    model: ModelOpt = DEFAULT_MODEL,
    pruning: PruningOpt = DEFAULT_METHOD,
    sparsity: SparsityOpt = DEFAULT_SPARSITY,
    seed: SeedOpt = 0,
    dataset: DatasetOpt = DEFAULT_DATASET,
    data_dir: DataDirOpt = None,
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("sparsetopo-out"),
    quiet: QuietOpt = False,
) -> None:
    """Prune a zoo model at initialization; write model.pt (masked state_dict) and masks.pt."""
    with _one_line_errors():
        import torch

        from .io import atomic_path
        from .pruning.masks import get_masks, masked_state_dict

        net = build_network(model, pruning, sparsity, seed, dataset, data_dir, quiet=quiet)
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / "model.pt") as tmp:
            torch.save(masked_state_dict(net.model), tmp)
        with atomic_path(out / "masks.pt") as tmp:
            torch.save(get_masks(net.model), tmp)
        out_console.print(_density_table(net))
        out_console.print(f"wrote {out / 'model.pt'} and {out / 'masks.pt'}")


@app.command("models")
def list_models() -> None:
    """List the model zoo, pruning methods and datasets."""
    from . import data, models, pruning

    out_console.print("models:   " + ", ".join(models.names()))
    out_console.print("pruning:  " + ", ".join(pruning.METHODS))
    out_console.print("datasets: " + ", ".join(data.DATASETS))


@app.command()
def analyze(
    model: ModelOpt = DEFAULT_MODEL,
    pruning: PruningOpt = DEFAULT_METHOD,
    sparsity: SparsityOpt = DEFAULT_SPARSITY,
    seed: SeedOpt = 0,
    dataset: DatasetOpt = DEFAULT_DATASET,
    data_dir: DataDirOpt = None,
    weights: WeightsOpt = None,
    input_size: InputSizeOpt = None,
    encoding: Annotated[str, typer.Option(
        help="Encoding whose topometrics are tabled: mge|unrolled|rolled|rolled-channel.")] = "mge",
    identity_skips: IdentitySkipsOpt = False,
    normalise: Annotated[str | None, typer.Option(
        help="'paper' divides counts by nodes/edges as in the paper's tables.")] = None,
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("sparsetopo-out"),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
    picture: Annotated[bool, typer.Option(help="Also draw the MGE to mge.png.")] = True,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """The main job: prune, encode, compute topometrics and Ramanujan metrics, write
    metrics.json and metrics.csv (defaults: resnet20, digits, snip, sparsity 0.98, seed 0)."""
    with _one_line_errors():
        from .analysis import analyze_network, format_report, write_results

        if encoding not in ("mge", "unrolled", "rolled", "rolled-channel"):
            raise CliError(f"unknown encoding {encoding!r}; valid: mge, unrolled, rolled, "
                           "rolled-channel")
        if normalise not in (None, "paper"):
            raise CliError(f"unknown normalisation {normalise!r}; valid: paper")
        quiet = quiet or as_json
        t0 = time.perf_counter()
        net = build_network(model, pruning, sparsity, seed, dataset, data_dir, weights, quiet,
                            input_size)
        result = analyze_network(net, encoding=encoding, identity_skips=identity_skips,
                                 normalise=normalise, force=force, progress=not quiet)
        result["timings"]["total_s"] = time.perf_counter() - t0
        picture_path = out / "mge.png" if picture and encoding == "mge" else None
        written = write_results(result, out, picture_path=picture_path,
                                graph=result.pop("_graph", None), progress=not quiet)
        if as_json:
            sys.stdout.write(json.dumps(result, default=float, indent=2) + "\n")
        else:
            format_report(net, result, out_console, written)


@app.command()
def draw(
    model: ModelOpt = DEFAULT_MODEL,
    pruning: PruningOpt = DEFAULT_METHOD,
    sparsity: SparsityOpt = DEFAULT_SPARSITY,
    seed: SeedOpt = 0,
    dataset: DatasetOpt = DEFAULT_DATASET,
    data_dir: DataDirOpt = None,
    weights: WeightsOpt = None,
    input_size: InputSizeOpt = None,
    identity_skips: IdentitySkipsOpt = False,
    max_edges: Annotated[int | None, typer.Option(help="Draw a uniform sample of edges.")] = None,
    out: Annotated[Path, typer.Option(help="PNG file.")] = Path("mge.png"),
    force: ForceOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Draw the MGE of a pruned network: partitions left to right, skip edges highlighted."""
    with _one_line_errors():
        from . import encoding, plot

        net = build_network(model, pruning, sparsity, seed, dataset, data_dir, weights, quiet,
                            input_size)
        g = encoding.multipartite(net.model, net.input_shape, identity_skips, force=force,
                                  progress=not quiet)
        title = f"{model}, {net.method} at sparsity {net.sparsity:.2f}"
        plot.mge(g, out, max_edges=max_edges, seed=seed, title=title, progress=not quiet)
        out_console.print(f"wrote {out} ({g.n_nodes:,} nodes, {g.n_edges:,} edges)")


def _mount_study() -> None:
    try:
        from .study.cli import app as study_app
    except ImportError as exc:  # pragma: no cover - only while the study package is absent
        sys.stderr.write(f"warning: study commands unavailable: {exc}\n")
        return
    app.add_typer(study_app, name="study", help="Run, fit and report studies (SPEC 6).")


_mount_study()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
