"""The Markdown summary of a study fit: the verdicts against the baselines first."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sparsetopo.study.vocabulary import BASELINE, BASELINE_LABELS, BASELINES, baseline_columns

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


def _interval(low: float, high: float) -> str:
    if not (np.isfinite(low) and np.isfinite(high)):
        return "95% CI n/a"
    return f"95% CI [{low:+.3f}, {high:+.3f}]"


def verdict(comparison: pd.DataFrame, protocol: str, baseline: str = BASELINE) -> str:
    """One sentence: which sets beat ``baseline`` (a name of ``BASELINES``) beyond the spread
    under ``protocol`` (on the mean over (model, dataset) pairs), or plainly that none does;
    each gain with its spread and 95% t-interval over the outer folds."""
    names = baseline_columns(baseline)
    label = BASELINE_LABELS[baseline]
    mean = comparison[(comparison["protocol"] == protocol) & (comparison["model"] == MEAN)]
    rows = mean[mean["feature_set"] != baseline]
    base = mean[mean["feature_set"] == baseline]
    base_r2 = fmt(float(base["r2"].iloc[0])) if len(base) else "n/a"
    if baseline != BASELINE and (base.empty or names["gain"] not in mean.columns
                                 or mean[names["gain"]].isna().all()):
        return (f"**{protocol}**: no comparison with {label} (the `{baseline}` set has no "
                "value in these runs).")
    if rows.empty:
        return f"**{protocol}**: only the {label} baseline was fitted (R^2 {base_r2})."

    def gain(r) -> str:  # (a comparison table written before the intervals has none)
        interval = _interval(r.get(names["ci_low"], math.nan), r.get(names["ci_high"], math.nan))
        return (f"`{r['feature_set']}` ({_signed(r[names['gain']])} ± {fmt(r[names['spread']])}"
                f", {interval})")

    winners = rows[rows[names["beats"]].astype(bool)]
    if len(winners):
        listed = ", ".join(gain(r) for _, r in
                           winners.sort_values(names["gain"], ascending=False).iterrows())
        return (f"**{protocol}**: {listed} beat(s) {label} (R^2 {base_r2}) beyond the spread "
                "of the gain.")
    ordered = rows.sort_values(names["gain"], ascending=False, na_position="last")
    return (f"**{protocol}**: no feature set beats {label} (R^2 {base_r2}); the best gain is "
            f"{gain(ordered.iloc[0])}, within its spread.")


def paired_lines(effects: pd.DataFrame) -> list[str]:
    """Markdown: how many cases say the method's arrangement is better, worse, not detectably
    different from its control's, or have too few seeds; then the table of paired effects."""
    from sparsetopo.study import paired

    if effects.empty:
        return ["No control run has its method's run (same model, dataset, sparsity, seed and "
                "settings): no paired effect.", ""]
    counts = effects["verdict"].value_counts()
    listed = "; ".join(f"{label}: {int(counts.get(label, 0))}" for label in (
        paired.METHOD_BETTER, paired.CONTROL_BETTER, paired.NO_DIFFERENCE,
        paired.TOO_FEW_SEEDS))
    table = effects.rename(columns={"mean_difference": "mean difference", "ci_low": "95% low",
                                    "ci_high": "95% high"})
    return [
        "Accuracy of each method minus that of its control (same model, dataset, sparsity, "
        "seed: same initial weights and training), per (method, control, sparsity): mean over "
        "seeds with its 95% Student-t interval. *method better*: the interval lies above 0, "
        "the method's arrangement inside layers (`layer-shuffle`) or inside each output "
        "channel's row (`fanin-shuffle`) helps; *control better*: below 0, random positions "
        "do better; *no detectable difference*: the interval contains 0; *too few seeds*: "
        "fewer than 2 seeds, no interval.",
        "",
        f"Cases ({len(effects)}): {listed}.",
        "",
        markdown_table(table),
        "",
    ]


def paired_prediction_lines(scores: pd.DataFrame) -> list[str]:
    """Markdown: which feature sets predict the paired difference (R^2 of out-of-fold
    predictions of the mean over pairs against the constant predictor's 0), per protocol."""
    if scores.empty:
        return ["The paired difference was not predicted (too few configurations or methods "
                "with controls for the grouped and leave-one-method-out protocols; see the "
                "notes).", ""]
    head = scores[scores["model"] == MEAN]
    lines = [
        "Out-of-fold R^2 of the paired difference predicted from the difference of each "
        "feature set (method minus control; for `sparsity`, whose difference is 0 by "
        "construction, the sparsity level), against 0, the R^2 of a constant: a set "
        "*predicts* the difference when its R^2 exceeds the SD of its fold contributions "
        "(the criterion of the gains above), the 95% t-interval over the outer folds beside "
        "it. `density` differences are 0 by construction (the controls keep the layer "
        "densities), so it can only fit a constant.",
        "",
    ]
    for protocol in dict.fromkeys(head["protocol"]):
        part = head[head["protocol"] == protocol]
        good = part[part["predicts"].astype(bool)].sort_values("r2", ascending=False)
        if len(good):
            listed = ", ".join(f"`{r.feature_set}` R^2 {fmt(r.r2)} ± {fmt(r.r2_spread)} "
                               f"({_interval(r.r2_ci_low, r.r2_ci_high)})"
                               for r in good.itertuples())
            lines.append(f"- **{protocol}**: {listed} predict(s) the paired difference.")
        else:
            best = part.sort_values("r2", ascending=False, na_position="last").iloc[0]
            lines.append(f"- **{protocol}**: no feature set predicts the paired difference; "
                         f"the best is `{best['feature_set']}` R^2 {fmt(best['r2'])} ± "
                         f"{fmt(best['r2_spread'])} "
                         f"({_interval(best['r2_ci_low'], best['r2_ci_high'])}).")
    lines += ["", markdown_table(head.drop(columns=["model", "dataset"])), ""]
    return lines


TARGET_LABELS = {"method": "methods", "category": "categories"}
SPLIT_LABELS = {"seed": "seeds held out", "stratified": "stratified K-fold (one seed)",
                "method": "methods held out"}


def separability_lines(table: pd.DataFrame) -> list[str]:
    """Markdown: how the separability was measured, one sentence per target and split (the
    best set next to chance, layer densities and global sparsity, mean over cases) and the
    table of the means."""
    if table.empty:
        return ["No case (model, dataset, sparsity) has 2 methods or more: no separability.", ""]
    head = table[table["model"] == MEAN]
    lines = [
        "At each (model, dataset) and sparsity, a logistic regression (standardised features, "
        "balanced class weights) predicts each run's method, and its category, from each "
        "feature set, out of fold: whole seeds held out (one seed: stratified K-fold), and for "
        "the category also whole methods held out (can the category of a method never seen "
        "in training be told?). Score: balanced accuracy (mean recall over the labels; chance "
        "= 1 / labels; with methods held out a guess can fall below chance, since the held-out "
        "method's category is the rarer one in its training part). Mean over the cases "
        "(`separability.csv` has every case):",
        "",
    ]
    for (target, split), part in head.groupby(["target", "split"], sort=False):
        ranked = part.sort_values("balanced_accuracy", ascending=False, kind="stable")
        best = ranked.iloc[0]

        def score(name: str, part=part) -> str:
            row = part[part["feature_set"] == name]
            return fmt(float(row["balanced_accuracy"].iloc[0])) if len(row) else "n/a"

        lines.append(
            f"- **{TARGET_LABELS.get(target, target)}, {SPLIT_LABELS.get(split, split)}** "
            f"({int(best['cases'])} cases, {float(best['classes']):.3g} labels on average, "
            f"chance {fmt(float(best['chance']))}): best `{best['feature_set']}` "
            f"{fmt(float(best['balanced_accuracy']))}; layer densities {score('density')}, "
            f"global sparsity {score('sparsity')}.")
    columns = {"target": "target", "split": "split", "feature_set": "feature set",
               "cases": "cases", "classes": "labels", "chance": "chance",
               "balanced_accuracy": "balanced accuracy", "gain_over_density": "over density",
               "cases_above_density": "cases above density",
               "cases_above_chance": "cases above chance"}
    lines += ["", markdown_table(head[list(columns)].rename(columns=columns)), ""]
    return lines


def render_summary(runs: pd.DataFrame, comparison: pd.DataFrame, importance: pd.DataFrame,
                   variance: pd.DataFrame, notes: list[str], config: dict, paired=None,
                   separability: pd.DataFrame | None = None) -> str:
    """Markdown: data, the verdicts per protocol against each baseline (global sparsity, layer
    densities, effective sparsity), the headline table (mean over pairs), the per-pair table,
    with mask controls the paired effect of topology and its prediction (``paired``: the
    ``Paired`` tables of the fit), how well the sets tell methods and categories apart
    (``separability``: the table of ``study.separability``), the signal/noise decomposition of
    the target, the ranking against its null, top features, notes."""
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
        f"protocol's rule; seed {config['seed']}. Every set is compared with three baselines "
        "on the same runs and folds: `sparsity` (global sparsity alone), `density` (the layer "
        "densities) and `effective_sparsity` (the fraction of weights pruned or on no "
        "input->output path). Gain = R^2(set) - R^2(baseline); spread = standard deviation of "
        "the gain's fold contributions; **criterion of every verdict: a set beats a baseline "
        "only when its gain exceeds that spread** (gain > SD). Beside it, the 95% Student-t "
        "interval of the gain over the outer folds (mean of the fold contributions ± t * SD / "
        "sqrt(folds); folds share training data, so it is, if anything, too narrow), reported "
        "and not used by the verdicts. `folds better`: the fraction of outer folds where the "
        "set's squared error is below the baseline's. Under `leave-one-category-out` each "
        "method category (pai-data-free, pai-data, dst) is predicted by a regressor trained "
        "on the other categories only.",
        "",
    ]
    for baseline in BASELINES:
        lines += [f"## Does topology beat {BASELINE_LABELS[baseline]}?", ""]
        for protocol in config["protocols"]:
            lines += [f"- {verdict(comparison, protocol, baseline)}"]
        lines.append("")
    lines.pop()
    head = comparison[comparison["model"] == MEAN]
    intro = "Mean over (model, dataset) pairs:"
    if "pairs" in head.columns and head["pairs"].nunique() > 1:
        intro = ("Mean over (model, dataset) pairs (`pairs`: how many; a set without values "
                 "for a pair is skipped there, so compare such sets through their gain, which "
                 "is always taken pair by pair against the same pair's sparsity):")
    lines += ["", intro, ""]
    if not head.empty:
        lines += [markdown_table(head[["protocol", "feature_set", "pairs", "r2", "mae",
                                       "gain_over_sparsity", "gain_spread",
                                       "gain_over_sparsity_ci_low",
                                       "gain_over_sparsity_ci_high", "folds_better",
                                       "beats_sparsity", "gain_over_density", "beats_density",
                                       "gain_over_effective_sparsity",
                                       "beats_effective_sparsity",
                                       "kendall_tau", "null_kendall_tau", "top1_hit",
                                       "null_top1_hit"]].rename(columns={
            "feature_set": "feature set", "r2": "R^2", "mae": "MAE",
            "gain_over_sparsity": "gain", "gain_spread": "spread",
            "gain_over_sparsity_ci_low": "95% low", "gain_over_sparsity_ci_high": "95% high",
            "folds_better": "folds better",
            "beats_sparsity": "beats sparsity", "gain_over_density": "gain over density",
            "beats_density": "beats density",
            "gain_over_effective_sparsity": "gain over eff. sparsity",
            "beats_effective_sparsity": "beats eff. sparsity", "kendall_tau": "Kendall tau",
            "null_kendall_tau": "null tau", "top1_hit": "top-1", "null_top1_hit": "null top-1"})),
            ""]
        lines += ["Gains over `density` and `effective_sparsity` with their spreads and "
                  "intervals: `comparison.csv`.", ""]
    per_pair = comparison[comparison["model"] != MEAN]
    if per_pair["model"].nunique() + per_pair["dataset"].nunique() > 2:
        wide = per_pair.pivot_table(index=["model", "dataset", "feature_set"],
                                    columns="protocol", values=["r2", "gain_over_sparsity"],
                                    sort=True)
        wide.columns = [f"{'R^2' if m == 'r2' else 'gain'} ({p})" for m, p in wide.columns]
        lines += ["## Per (model, dataset)", "", markdown_table(wide.reset_index()), ""]
    if paired is not None:
        lines += ["## Does the arrangement inside layers matter? (paired effects)", ""]
        lines += paired_lines(paired.effects)
        lines += ["## Can topology predict the paired difference?", ""]
        lines += paired_prediction_lines(paired.scores)
    if separability is not None:
        lines += ["## Can topology tell methods and categories apart?", ""]
        lines += separability_lines(separability)
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
