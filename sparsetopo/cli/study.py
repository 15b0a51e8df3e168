"""``sparsetopo study``: run a grid of sparse trainings, export, fit, import published data,
report. Bad input is one line on stderr and exit code 2 (:mod:`sparsetopo.cli._common`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sparsetopo.cli._common import one_line_errors
from sparsetopo.errors import UsageError
from sparsetopo.study.vocabulary import DEFAULT_TRIALS

app = typer.Typer(
    help="Train grids of pruned networks, store their topology and accuracy, and fit predictors.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)

DEFAULT_OUT = Path("sparsetopo-out")


@app.command("run")
@one_line_errors
def run_command(
    config: Annotated[Path | None, typer.Argument(help="Study TOML file (or use --preset).")] = None,
    results: Annotated[Path | None, typer.Option(
        "--results", help="SQLite results file (default: sparsetopo-out/STUDY-NAME.sqlite).")
    ] = None,
    preset: Annotated[str | None, typer.Option(help="Embedded study: digits, digits-controls or smoke.")] = None,
    backend: Annotated[str, typer.Option(help="local or ray.")] = "local",
    workers: Annotated[int, typer.Option(min=1, help="Parallel runs (processes / Ray CPUs).")] = 1,
    ray_address: Annotated[str | None, typer.Option(
        help="Address of an existing Ray cluster (e.g. auto or ray://host:10001).")] = None,
    gpus_per_run: Annotated[float | None, typer.Option(
        "--gpus-per-run", help="GPUs per run, fractional to pack runs (0.25: four per GPU); "
        "0 trains on CPU. Default: 1 when the machine (or Ray cluster) has a GPU, else 0.")
    ] = None,
    amp: Annotated[bool | None, typer.Option(
        "--amp/--no-amp", help="bfloat16 autocast in training (default: the config's "
        "training.amp, off). Part of the runs' identity when on.")] = None,
    channels_last: Annotated[bool | None, typer.Option(
        "--channels-last/--no-channels-last", help="NHWC memory format in training (default: "
        "the config's training.channels_last, off). Part of the runs' identity when on.")
    ] = None,
    retry_failed: Annotated[bool, typer.Option(help="Run failed runs again.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Run every run of the study not yet complete in RESULTS (complete runs are skipped)."""
    from dataclasses import replace

    from sparsetopo.study.config import load_config, load_preset
    from sparsetopo.study.runner import run_study

    if (config is None) == (preset is None):
        raise UsageError("give either a CONFIG file or --preset NAME (not both)")
    study = load_config(config) if config is not None else load_preset(preset)
    overrides = {k: v for k, v in (("amp", amp), ("channels_last", channels_last))
                 if v is not None}
    if overrides:
        study = replace(study, training={**study.training, **overrides})
    results = results or DEFAULT_OUT / f"{study.name}.sqlite"
    summary = run_study(study, results, backend=backend, workers=workers,
                        ray_address=ray_address, retry_failed=retry_failed, progress=not quiet,
                        gpus_per_run=gpus_per_run)
    if not quiet and summary.placement:
        typer.echo(summary.placement)
    typer.echo(
        f"{summary.total} runs: {summary.ok} done now, {summary.failed} failed, "
        f"{summary.skipped} already in {summary.results_path}"
    )
    if summary.cpu_fallbacks:
        typer.echo(f"warning: {summary.cpu_fallbacks} runs asked for a GPU but torch saw none "
                   "in their process and they trained on CPU (see the device column of "
                   "`study export`)", err=True)
    if not quiet and not summary.failures:
        typer.echo(f"next: sparsetopo study fit {summary.results_path}")
    if summary.failures:
        for line in summary.failures[:10]:
            typer.echo(f"  failed: {line}", err=True)
        more = len(summary.failures) - 10
        if more > 0:
            typer.echo(f"  ... and {more} more", err=True)
        typer.echo("failed runs are kept with their error; rerun with --retry-failed", err=True)
        raise typer.Exit(2)


@app.command("export")
@one_line_errors
def export_command(
    results: Annotated[Path, typer.Argument(help="SQLite results file.")],
    out: Annotated[Path, typer.Option("--out", help="runs.parquet or runs.csv")],
    status: Annotated[str, typer.Option(help="ok, failed or all runs.")] = "all",
) -> None:
    """Write the runs table (configuration and method category, accuracy, accuracy drop,
    timings, where each run trained: device, peak_accelerator_memory_mb, images_per_second;
    features) and, when the study has dynamic sparse training runs, their topology at every
    mask update to OUT-STEM-trajectory.EXT."""
    from sparsetopo.study.store import export, export_trajectories, trajectory_path

    path = export(results, out, status=status)
    typer.echo(f"wrote {path}")
    trajectories = export_trajectories(results, trajectory_path(out), status=status)
    if trajectories is not None:
        typer.echo(f"wrote {trajectories}")


def _names(value: str | None) -> list[str] | None:
    """A comma-separated list option (None when not given)."""
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise UsageError("an empty list was given; name at least one value")
    return names


SetsOpt = Annotated[str | None, typer.Option(
    "--sets", help="Comma-separated feature sets (default: every set of docs/study.md; "
    "sparsity, the baseline, is always fitted). Also: bottlenecks, paths+bottlenecks, paths+sparsity, and "
    "any set with /monotone for monotone constraints.")]
TrialsOpt = Annotated[int, typer.Option("--trials", min=1, help="Optuna trials per tuning.")]
JobsOpt = Annotated[int | None, typer.Option(
    "--jobs", min=1, help="Processes sharing the fits (default: every CPU).")]
PooledOpt = Annotated[bool, typer.Option(
    "--pooled", help="One regressor over every (model, dataset) pair, with the architecture "
    "and dataset as one-hot features, instead of one per pair.")]
FoldsOpt = Annotated[int, typer.Option(min=2, help="Outer cross-validation folds.")]
SeedOpt = Annotated[int, typer.Option(help="Seed of the CV splits and the tuning.")]
QuietOpt = Annotated[bool, typer.Option(help="No progress bars.")]


@app.command("fit")
@one_line_errors
def fit_command(
    results: Annotated[Path, typer.Argument(help="SQLite results file.")],
    out: Annotated[Path | None, typer.Option(
        "--out", help="Output folder (default: RESULTS-STEM-fit next to RESULTS).")] = None,
    sets: SetsOpt = None,
    pooled: PooledOpt = False,
    seed: SeedOpt = 0,
    folds: FoldsOpt = 5,
    trials: TrialsOpt = DEFAULT_TRIALS,
    jobs: JobsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Predict the accuracy drop from each feature set and compare it with global sparsity,
    layer densities and effective sparsity (one XGBoost + Optuna per model and dataset;
    random, grouped, leave-one-method-out and leave-one-category-out CV), and how well each
    set tells methods and categories apart; writes comparison.csv, importance.csv,
    predictions.csv, separability.csv, summary.md and the fitted regressors (models/) to OUT,
    and with mask controls in the study paired_effects.csv, paired_prediction.csv,
    paired_predictions.csv."""
    from sparsetopo.study.store import load_runs

    runs = load_runs(results, status="ok")
    if runs.empty:
        raise UsageError(f"{results} holds no successful run to fit")
    from sparsetopo.study.fit import fit_study

    out = out or default_fit_dir(results)
    result = fit_study(runs, out, target="accuracy_drop", feature_sets=_names(sets),
                       pooled=pooled, seed=seed, folds=folds, n_trials=trials, jobs=jobs,
                       progress=not quiet)
    _print_verdicts(result)
    typer.echo(f"wrote {out}")


def _print_verdicts(result) -> None:
    from sparsetopo.study.summary import verdict
    from sparsetopo.study.vocabulary import BASELINE_LABELS, BASELINES

    for baseline in BASELINES:
        typer.echo(f"against {BASELINE_LABELS[baseline]}:")
        for protocol in dict.fromkeys(result.comparison["protocol"]):
            line = verdict(result.comparison, protocol, baseline)
            typer.echo("  " + line.replace("**", "").replace("`", ""))
    separability = getattr(result, "separability", None)
    if separability is not None and not separability.empty:
        from sparsetopo.study.summary import separability_lines

        typer.echo("telling methods and categories apart (balanced accuracy, separability.csv):")
        for line in separability_lines(separability):
            if line.startswith("- "):
                typer.echo("  " + line[2:].replace("**", "").replace("`", ""))
    paired = getattr(result, "paired", None)
    if paired is not None and not paired.effects.empty:
        counts = paired.effects["verdict"].value_counts()
        typer.echo("paired effects (method minus its control, per method, control and "
                   "sparsity): " + ", ".join(f"{label} {n}" for label, n in counts.items())
                   + " (paired_effects.csv)")


@app.command("import-published")
@one_line_errors
def import_published_command(
    src: Annotated[Path, typer.Argument(help="Folder of the tables released with the paper "
                                             "(any layout, e.g. the repository's graph_data/).")],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = DEFAULT_OUT / "published",
    datasets: Annotated[str | None, typer.Option(
        "--datasets", help="Comma-separated datasets to fit (cifar10, cifar100, tinyimagenet; "
        "default: every one found).")] = None,
    methods: Annotated[str | None, typer.Option(
        "--methods", help="Comma-separated pruning methods (default: the 7 pruning-at-"
        "initialization ones; 'all' adds the dynamic sparse training runs).")] = None,
    sets: SetsOpt = None,
    pooled: PooledOpt = False,
    seed: SeedOpt = 0,
    folds: FoldsOpt = 5,
    trials: TrialsOpt = DEFAULT_TRIALS,
    jobs: JobsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Run the feature-set comparison on the paper's published data (target: accuracy)."""
    from sparsetopo.study.published import import_published

    chosen = _names(methods) or "pai"
    if chosen in (["all"], ["pai"]):
        chosen = chosen[0]
    result = import_published(src, out, datasets=_names(datasets), methods=chosen,
                              feature_sets=_names(sets), pooled=pooled, folds=folds,
                              n_trials=trials, seed=seed, jobs=jobs, progress=not quiet)
    _print_verdicts(result)
    typer.echo(f"wrote {out}")


@app.command("report")
@one_line_errors
def report_command(
    results: Annotated[Path, typer.Argument(help="SQLite results file.")],
    out: Annotated[Path | None, typer.Option(
        "--out", help="HTML file (default: RESULTS-STEM-report.html next to RESULTS).")] = None,
    fit_dir: Annotated[Path | None, typer.Option(
        help="Output folder of `study fit` (default: RESULTS-STEM-fit next to RESULTS).")] = None,
    quiet: QuietOpt = False,
) -> None:
    """Write an HTML report of a study."""
    from sparsetopo.report import build_report

    out = out or Path(results).with_name(f"{Path(results).stem}-report.html")
    path = build_report(results, out, fit_dir=fit_dir, progress=not quiet)
    typer.echo(f"wrote {path}")


def default_fit_dir(results: Path) -> Path:
    """``<results folder>/<results stem>-fit``: where ``study report`` looks for the fit."""
    return Path(results).with_name(f"{Path(results).stem}-fit")
