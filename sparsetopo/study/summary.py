"""The Markdown summary of a study fit: the verdict against the sparsity baseline first."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sparsetopo.study.vocabulary import BASELINE

MEAN = "mean"


def fmt(value: object) -> str:
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, float | np.floating):
        return "n/a" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def markdown_table(frame: pd.DataFrame) -> str:
    """A pipe table of ``frame`` (floats with 3 decimals, NaN as n/a)."""
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |"
              for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def _signed(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:+.3f}"


def verdict(comparison: pd.DataFrame, protocol: str) -> str:
    """One sentence: which sets beat ``sparsity`` beyond the spread under ``protocol`` (on the
    mean over (model, dataset) pairs), or plainly that none does."""
    rows = comparison[(comparison["protocol"] == protocol) & (comparison["model"] == MEAN)
                      & (comparison["feature_set"] != BASELINE)]
    base = comparison[(comparison["protocol"] == protocol) & (comparison["model"] == MEAN)
                      & (comparison["feature_set"] == BASELINE)]
    base_r2 = fmt(float(base["r2"].iloc[0])) if len(base) else "n/a"
    if rows.empty:
        return f"**{protocol}**: only the sparsity baseline was fitted (R^2 {base_r2})."
    winners = rows[rows["beats_sparsity"].astype(bool)]
    if len(winners):
        listed = ", ".join(f"`{r.feature_set}` ({_signed(r.gain_over_sparsity)} ± "
                           f"{fmt(r.gain_spread)})" for r in
                           winners.sort_values("gain_over_sparsity", ascending=False).itertuples())
        return (f"**{protocol}**: {listed} beat(s) global sparsity alone (R^2 {base_r2}) "
                "beyond the spread of the gain.")
    ordered = rows.sort_values("gain_over_sparsity", ascending=False, na_position="last")
    best = ordered.iloc[0]
    return (f"**{protocol}**: no feature set beats global sparsity alone (R^2 {base_r2}); the "
            f"best gain is `{best['feature_set']}` {_signed(best['gain_over_sparsity'])} ± "
            f"{fmt(best['gain_spread'])}, within its spread.")


def render_summary(runs: pd.DataFrame, comparison: pd.DataFrame, importance: pd.DataFrame,
                   variance: pd.DataFrame, notes: list[str], config: dict) -> str:
    """Markdown: data, the verdict per protocol, the headline table (mean over pairs), the
    per-pair table, the signal/noise decomposition of the target, the ranking against its null,
    top features, notes."""
    direction = "lower is better" if config["lower_is_better"] else "higher is better"
    fits = ("one regressor pooled over every (model, dataset) pair, the architecture and the "
            "dataset given as one-hot features to every set" if config["pooled"] else
            "one regressor per (model, dataset) pair")
    lines = [
        "# Study fit summary",
        "",
        f"Target: `{config['target']}` ({direction} for ranking). {len(runs)} pruned runs; "
        f"models: {', '.join(sorted(map(str, runs['model'].unique())))}; datasets: "
        f"{', '.join(sorted(map(str, runs['dataset'].unique())))}; methods: "
        f"{', '.join(sorted(map(str, runs['method'].unique())))}; sparsities: "
        f"{', '.join(f'{s:g}' for s in sorted(runs['sparsity'].unique()))}.",
        "",
        f"XGBoost, {fits}; protocols {', '.join(config['protocols'])} ({config['folds']} outer "
        f"folds for the K-fold ones); Optuna TPE, {config['n_trials']} trials, inner "
        f"{config['inner_folds']}-fold tuning on the training part only, following the outer "
        f"protocol's rule; seed {config['seed']}. Every set is compared with `sparsity` (global "
        "sparsity alone) on the same runs and folds: gain = R^2(set) - R^2(sparsity), spread = "
        "standard deviation of the gain's fold contributions; a set beats sparsity only when "
        "its gain exceeds that spread. `folds better`: the fraction of outer folds where the "
        "set's squared error is below sparsity's.",
        "",
        "## Does topology beat global sparsity alone?",
        "",
    ]
    for protocol in config["protocols"]:
        lines += [f"- {verdict(comparison, protocol)}"]
    head = comparison[comparison["model"] == MEAN]
    intro = "Mean over (model, dataset) pairs:"
    if "pairs" in head.columns and head["pairs"].nunique() > 1:
        intro = ("Mean over (model, dataset) pairs (`pairs`: how many; a set without values "
                 "for a pair is skipped there, so compare such sets through their gain, which "
                 "is always taken pair by pair against the same pair's sparsity):")
    lines += ["", intro, ""]
    if not head.empty:
        lines += [markdown_table(head[["protocol", "feature_set", "pairs", "r2", "mae",
                                       "gain_over_sparsity", "gain_spread", "folds_better",
                                       "beats_sparsity",
                                       "kendall_tau", "null_kendall_tau", "top1_hit",
                                       "null_top1_hit"]].rename(columns={
            "feature_set": "feature set", "r2": "R^2", "mae": "MAE",
            "gain_over_sparsity": "gain", "gain_spread": "spread",
            "folds_better": "folds better",
            "beats_sparsity": "beats sparsity", "kendall_tau": "Kendall tau",
            "null_kendall_tau": "null tau", "top1_hit": "top-1", "null_top1_hit": "null top-1"})),
            ""]
    per_pair = comparison[comparison["model"] != MEAN]
    if per_pair["model"].nunique() + per_pair["dataset"].nunique() > 2:
        wide = per_pair.pivot_table(index=["model", "dataset", "feature_set"],
                                    columns="protocol", values=["r2", "gain_over_sparsity"],
                                    sort=True)
        wide.columns = [f"{'R^2' if m == 'r2' else 'gain'} ({p})" for m, p in wide.columns]
        lines += ["## Per (model, dataset)", "", markdown_table(wide.reset_index()), ""]
    if not variance.empty:
        lines += [
            "## Signal and seed noise of the target",
            "",
            "Variance of the configuration means (between: what a predictor can explain) and "
            "mean variance over the seeds of one configuration (within: noise no feature of the "
            "mask can predict, since the features are fixed by the mask):",
            "",
            markdown_table(variance),
            "",
        ]
    lines += [
        "## Ranking of pruning methods",
        "",
        "At each (model, dataset, sparsity) the methods are ordered by predicted and by "
        "measured mean target (over seeds); Kendall tau between the two orders, averaged over "
        "the cases where it is defined (`tau_undefined` in comparison.csv counts the others), "
        "and the top-1 hit rate. The null is the same figure for the `sparsity` predictor "
        "under the same protocol: under leave-one-method-out it is strongly negative (a held-"
        "out method is predicted from the others, so the best method looks worst), so a set's "
        "tau means something only next to its null.",
        "",
        "## Top features (mean |SHAP|, all runs)",
        "",
    ]
    overall = importance[importance["scope"] == "overall"]
    for name, part in overall.groupby("feature_set", sort=False):
        top = part.sort_values("mean_abs_shap", ascending=False, kind="stable").head(5)
        listed = ", ".join(f"`{f}` {v:.3g}" for f, v in
                           zip(top["feature"], top["mean_abs_shap"], strict=True))
        lines.append(f"- **{name}**: {listed}")
    lines += ["", "## Notes", ""]
    lines += [f"- {note}" for note in notes] or ["- none"]
    return "\n".join(lines) + "\n"
