"""``sparsetopo predict`` and ``sparsetopo rank``: the accuracy drop of masks before training,
from the regressors a fit saved. The work is :mod:`sparsetopo.study.predict`'s; these commands
parse and print."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sparsetopo.cli._common import err_console, one_line_errors, out_console
from sparsetopo.errors import UsageError

FitOpt = Annotated[Path, typer.Option("--fit", help="Output folder of `study fit` or "
                                                    "`study import-published`.")]
ModelOpt = Annotated[str, typer.Option("--model", help="Zoo model the regressors were fitted "
                                                       "on (or PATH.py:FACTORY).")]
DatasetOpt = Annotated[str, typer.Option("--dataset", help="Dataset the regressors were "
                                                           "fitted on.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of weights, mask and sampled "
                                                     "metrics.")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Directory holding the "
                                                                    "dataset.")]
ExtrapolateOpt = Annotated[bool, typer.Option(
    "--extrapolate", help="Predict even for a network outside what the regressors saw "
    "(flagged in the output).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON only.")]


def _check(model: str, methods: list[str], sparsity: float | None, dataset: str) -> None:
    from sparsetopo.analysis import check_options

    for method in methods or ["uniform"]:
        check_options(model, method, sparsity or 0.0, dataset)


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _caveats(fit) -> None:
    for caveat in fit.caveats:
        err_console.print(f"note: {caveat}", markup=False)


@one_line_errors
def predict(
    fit_dir: FitOpt,
    model: ModelOpt,
    dataset: DatasetOpt,
    weights: Annotated[Path | None, typer.Option(
        "--weights", help="Masked state_dict (torch-prune form or zeros where pruned).")] = None,
    pruning: Annotated[str | None, typer.Option("--pruning", help="Pruning method.")] = None,
    sparsity: Annotated[float | None, typer.Option("--sparsity", help="Sparsity.")] = None,
    seed: SeedOpt = 0,
    data_dir: DataDirOpt = None,
    extrapolate: ExtrapolateOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Predict a network's accuracy drop, before training.

    Every feature set's regressor of a fit, next to each one's cross-validated error."""
    from sparsetopo.study.predict import (
        candidate_network,
        load_fit,
        predict_network,
        predicted_key,
        unseen_method_note,
    )

    _check(model, [pruning] if pruning else [], sparsity, dataset)
    fit = load_fit(fit_dir)
    network, shape, notes = candidate_network(
        fit, model, dataset, weights=weights, method=pruning, sparsity=sparsity, seed=seed,
        data_dir=None if data_dir is None else str(data_dir))
    for note in notes:
        err_console.print(f"note: {note}", markup=False)
    measured, rows = predict_network(fit, model, dataset, network, shape, seed=seed,
                                     extrapolate=extrapolate, method=pruning)
    key = predicted_key(rows)
    note = unseen_method_note(pruning, rows) if pruning else None
    if note:  # on stderr: with --json too
        err_console.print(f"warning: {note}", markup=False)
    if as_json:
        sys.stdout.write(json.dumps({
            "network": {"model": model, "dataset": dataset, "sparsity": measured,
                        "input_shape": list(shape), "weights": None if weights is None
                        else str(weights), "pruning": pruning, "seed": seed},
            "target": fit.target, "caveats": fit.caveats, "predictions": rows}, indent=2) + "\n")
        return
    table = Table(title=f"{model} on {dataset}, sparsity {measured:.4f}: predicted "
                  f"{key.removeprefix('predicted_')}", title_justify="left")
    for column in ("feature set", "predicted", "CV MAE (grouped)", "CV MAE (unseen method)",
                   "features"):
        table.add_column(column, justify="left" if column == "feature set" else "right")
    for row in rows:
        table.add_row(row["feature_set"], _fmt(row[key]), _fmt(row.get("cv_mae_grouped")),
                      _fmt(row.get("cv_mae_leave-one-method-out")), row["features_found"])
    out_console.print(table)
    if rows[0].get("outside"):
        err_console.print("warning: outside what the regressors saw: "
                          + "; ".join(rows[0]["outside"]), markup=False)
    _caveats(fit)


def _verdict_line(ranking) -> str | None:
    r = ranking.verdict
    if r is None:
        return None
    verdict = "beats" if bool(r["beats_sparsity"]) else "does not beat"
    return (f"for methods never seen in training, {ranking.ranked_by} {verdict} global sparsity "
            f"alone (gain {r['gain_over_sparsity']:+.3f} ± {r['gain_spread']:.3f} in R^2; "
            f"ranking tau {r['kendall_tau']:.2f} against the sparsity null "
            f"{r['null_kendall_tau']:.2f})")


@one_line_errors
def rank(
    fit_dir: FitOpt,
    model: ModelOpt,
    dataset: DatasetOpt,
    pruning: Annotated[list[str] | None, typer.Option(
        "--pruning", help="Candidate methods (several: --pruning snip grasp synflow).")] = None,
    more: Annotated[list[str] | None, typer.Argument(
        help="More candidate methods, or weights files with --weights.",
        show_default=False)] = None,
    weights: Annotated[list[Path] | None, typer.Option(
        "--weights", help="Candidate masked state_dicts (several: --weights a.pt b.pt).")] = None,
    sparsity: Annotated[float | None, typer.Option("--sparsity", help="Sparsity of the "
                                                                      "methods' masks.")] = None,
    seed: SeedOpt = 0,
    data_dir: DataDirOpt = None,
    feature_set: Annotated[str | None, typer.Option(
        "--set", help="Feature set to rank by (default: the best for unseen methods, by "
        "leave-one-method-out R^2).")] = None,
    extrapolate: ExtrapolateOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Rank candidate masks by predicted accuracy drop, before training.

    Candidates: pruning methods at one sparsity, or weights files; predictions and CV errors
    side by side."""
    from sparsetopo.study.predict import load_fit, rank_candidates, unseen_method_note

    extra = list(more or [])
    methods = list(pruning or []) + (extra if pruning else [])
    files = list(weights or []) + ([Path(e) for e in extra] if weights else [])
    if extra and not (pruning or weights):
        raise UsageError(f"unexpected argument(s) {extra}")
    _check(model, methods, sparsity, dataset)
    fit = load_fit(fit_dir)
    ranking = rank_candidates(fit, model, dataset, methods=methods, weights=files,
                              sparsity=sparsity, seed=seed,
                              data_dir=None if data_dir is None else str(data_dir),
                              feature_set=feature_set, extrapolate=extrapolate)
    key, ordered = ranking.key, ranking.candidates
    for c in ordered:
        for note in c.notes:
            err_console.print(f"note: {c.label}: {note}", markup=False)
        unseen = unseen_method_note(c.label, c.predictions)
        if unseen:
            err_console.print(f"warning: {unseen}", markup=False)
    if as_json:
        sys.stdout.write(json.dumps({
            "ranked_by": ranking.ranked_by, "target": fit.target, "caveats": fit.caveats,
            "candidates": [{"candidate": c.label, "sparsity": c.sparsity, "rank": i + 1,
                            "predictions": c.predictions} for i, c in enumerate(ordered)]},
            indent=2) + "\n")
        return
    order = ", ".join(f"{i + 1}. {c.label}" for i, c in enumerate(ordered))
    table = Table(title=f"{model} on {dataset}: ranked by the {ranking.ranked_by} regressor "
                  f"({'lowest' if ranking.lower_is_better else 'highest'} predicted "
                  f"{key.removeprefix('predicted_')} first): {order}", title_justify="left")
    table.add_column("feature set")
    for c in ordered:
        table.add_column(f"{c.label} ({c.sparsity:.3f})", justify="right")
    table.add_column("CV MAE grouped", justify="right")
    table.add_column("CV MAE unseen method", justify="right")
    values = [{r["feature_set"]: r for r in c.predictions} for c in ordered]
    for s in [r["feature_set"] for r in ordered[0].predictions]:
        first = values[0][s]
        table.add_row(s, *[_fmt(v[s][key]) for v in values], _fmt(first.get("cv_mae_grouped")),
                      _fmt(first.get("cv_mae_leave-one-method-out")))
    out_console.print(table)
    line = _verdict_line(ranking)
    if line:
        out_console.print(line)
    _caveats(fit)
