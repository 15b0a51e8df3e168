"""``sparsetopo study``: run a grid of sparse trainings, export, fit, import published data,
report. Every error is one line on stderr and a non-zero exit code."""

from __future__ import annotations

import functools
import sqlite3
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Train grids of pruned networks, store their topology and accuracy, and fit predictors.",
    no_args_is_help=True,
    add_completion=False,
)

DEFAULT_OUT = Path("sparsetopo-out")


def _expected_errors() -> tuple[type[BaseException], ...]:
    """ValueError covers the project's error classes (ConfigError, StoreError, DataError, ...);
    StudyError: the runner cannot go on; ConnectionError: e.g. an unreachable Ray cluster."""
    from sparsetopo.study.runner import StudyError

    return (ValueError, FileNotFoundError, PermissionError, IsADirectoryError,
            NotADirectoryError, ConnectionError, sqlite3.Error, StudyError)


def clean_errors(func):
    """Turn the expected errors (bad input, missing files, project error classes, all
    ``ValueError`` subclasses) into ``error: <message>`` on stderr and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except _expected_errors() as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(1) from None

    return wrapper


@app.command("run")
@clean_errors
def run_command(
    config: Annotated[Path | None, typer.Argument(help="Study TOML file (or use --preset).")] = None,
    results: Annotated[Path | None, typer.Option(
        "--results", help="SQLite results file (default: sparsetopo-out/STUDY-NAME.sqlite).")
    ] = None,
    preset: Annotated[str | None, typer.Option(help="Embedded study: digits or smoke.")] = None,
    backend: Annotated[str, typer.Option(help="local or ray.")] = "local",
    workers: Annotated[int, typer.Option(min=1, help="Parallel runs (processes / Ray CPUs).")] = 1,
    ray_address: Annotated[str | None, typer.Option(
        help="Address of an existing Ray cluster (e.g. auto or ray://host:10001).")] = None,
    retry_failed: Annotated[bool, typer.Option(help="Run failed runs again.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Run every run of the study not yet complete in RESULTS (complete runs are skipped)."""
    from sparsetopo.study.config import load_config, load_preset
    from sparsetopo.study.runner import run_study

    if (config is None) == (preset is None):
        raise ValueError("give either a CONFIG file or --preset NAME (not both)")
    study = load_config(config) if config is not None else load_preset(preset)
    results = results or DEFAULT_OUT / f"{study.name}.sqlite"
    summary = run_study(study, results, backend=backend, workers=workers,
                        ray_address=ray_address, retry_failed=retry_failed, progress=not quiet)
    typer.echo(
        f"{summary.total} runs: {summary.ok} done now, {summary.failed} failed, "
        f"{summary.skipped} already in {summary.results_path}"
    )
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
@clean_errors
def export_command(
    results: Annotated[Path, typer.Argument(help="SQLite results file.")],
    out: Annotated[Path, typer.Option("--out", help="runs.parquet or runs.csv")],
    status: Annotated[str, typer.Option(help="ok, failed or all runs.")] = "all",
) -> None:
    """Write the runs table (configuration, accuracy, accuracy drop, timings, features)."""
    from sparsetopo.study.store import export

    path = export(results, out, status=status)
    typer.echo(f"wrote {path}")


@app.command("fit")
@clean_errors
def fit_command(
    results: Annotated[Path, typer.Argument(help="SQLite results file.")],
    out: Annotated[Path | None, typer.Option(
        "--out", help="Output folder (default: RESULTS-STEM-fit next to RESULTS).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the CV splits and the tuning.")] = 0,
    folds: Annotated[int, typer.Option(min=2, help="Outer cross-validation folds.")] = 5,
    trials: Annotated[int, typer.Option(min=1, help="Optuna trials per tuning.")] = 20,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Predict the accuracy drop from each feature set (XGBoost + Optuna, grouped CV); writes
    comparison.csv, importance.csv, predictions.csv and summary.md to OUT."""
    from sparsetopo.study.store import load_runs

    runs = load_runs(results, status="ok")
    if runs.empty:
        raise ValueError(f"{results} holds no successful run to fit")
    from sparsetopo.study.fit import fit_study

    out = out or default_fit_dir(results)
    fit_study(runs, out, target="accuracy_drop", seed=seed, folds=folds, n_trials=trials,
              progress=not quiet)
    typer.echo(f"wrote {out}")


@app.command("import-published")
@clean_errors
def import_published_command(
    src: Annotated[Path, typer.Argument(help="Folder of the tables released with the paper.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = DEFAULT_OUT / "published",
    seed: Annotated[int, typer.Option(help="Seed of the CV splits and the tuning.")] = 0,
    folds: Annotated[int, typer.Option(min=2, help="Outer cross-validation folds.")] = 5,
    trials: Annotated[int, typer.Option(min=1, help="Optuna trials per tuning.")] = 20,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Run the feature-set comparison on the paper's published data (target: accuracy)."""
    from sparsetopo.study.published import import_published

    import_published(src, out, folds=folds, n_trials=trials, seed=seed, progress=not quiet)
    typer.echo(f"wrote {out}")


@app.command("report")
@clean_errors
def report_command(
    results: Annotated[Path, typer.Argument(help="SQLite results file.")],
    out: Annotated[Path | None, typer.Option(
        "--out", help="HTML file (default: RESULTS-STEM-report.html next to RESULTS).")] = None,
    fit_dir: Annotated[Path | None, typer.Option(
        help="Output folder of `study fit` (default: RESULTS-STEM-fit next to RESULTS).")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Write an HTML report of a study."""
    from sparsetopo.report import build_report

    out = out or Path(results).with_name(f"{Path(results).stem}-report.html")
    path = build_report(results, out, fit_dir=fit_dir, progress=not quiet)
    typer.echo(f"wrote {path}")


def default_fit_dir(results: Path) -> Path:
    """``<results folder>/<results stem>-fit``: where ``study report`` looks for the fit."""
    return Path(results).with_name(f"{Path(results).stem}-fit")


def main() -> None:  # pragma: no cover - `python -m sparsetopo.study.cli`
    app(prog_name="sparsetopo study")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
