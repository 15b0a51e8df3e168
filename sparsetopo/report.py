"""One self-contained HTML report of a study (``sparsetopo study report``).

It leads with its answer: a forest plot of each feature set's gain in R^2 over the baselines
with its 95% interval, per protocol (``plot.gain_forest``), and one sentence per protocol that
names the sample the verdict rests on and says when it is too small to conclude (or, without a
fit, how to fit). Then the sections: summary, comparison of the feature sets (``comparison.csv`` of ``study fit``), the
paired effect of topology when the study has mask controls (``paired_effects.csv``,
``paired_prediction.csv``), how well topology tells methods and method categories apart
(``separability.csv``, and the topometrics against sparsity coloured by category), plots (accuracy drop and topometrics against sparsity, predicted vs
measured, SHAP importance), the topology of dynamic sparse training masks over training (per
method), the ranking of pruning methods per sparsity, and every run with its status and error.
Every table scrolls sideways inside the page width; one of more than :data:`LONG_TABLE` rows is
collapsed (``<details>``). Images are
PNGs embedded as base64 data URIs and a Content-Security-Policy forbids loading anything else,
so the file can be mailed or archived alone. Every piece of text is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import math
import os
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from sparsetopo import plot
from sparsetopo.errors import InputError
from sparsetopo.io import show_progress, write_text
from sparsetopo.study.ranking import kendall_tau, method_ranks
from sparsetopo.study.vocabulary import (
    BASELINE_LABELS,
    BASELINES,
    DENSE,
    PROTOCOLS,
    SET_ORDER,
    baseline_columns,
)

__all__ = ["build_report", "find_fit_dir", "read_fit_tables", "render_report"]

FIT_FILES = ("comparison.csv", "importance.csv", "predictions.csv", "paired_effects.csv",
             "paired_prediction.csv", "separability.csv")
RUN_COLUMNS = ("run_id", "model", "dataset", "method", "category", "sparsity", "seed", "status",
               "accuracy",
               "dense_accuracy", "accuracy_drop", "device", "images_per_second",
               "peak_accelerator_memory_mb")
#: A table of more rows than this is collapsed under a ``<details>`` summary.
LONG_TABLE = 25
#: A text cell longer than this wraps (other cells stay on one line).
WRAP_CHARS = 40
#: The too-small rule of the verdicts (:func:`render_report`): the fewest configurations
#: (method, sparsity) and outer folds per (model, dataset) pair a verdict may rest on.
MIN_CONFIGURATIONS = 20
MIN_FOLDS = 3

CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif;margin:0 auto;
max-width:1240px;padding:24px 32px 64px;color:#1d232b;line-height:1.45;background:#fff}
h1{font-size:26px;margin:0 0 4px}h2{font-size:20px;margin:36px 0 10px;border-bottom:1px solid
#d5dae1;padding-bottom:4px}h3{font-size:16px;margin:22px 0 8px}
.meta{color:#5a6573;font-size:13px}.note{background:#fff8e5;border-left:4px solid #e0a800;
padding:8px 12px;margin:10px 0}.warn{background:#fdecec;border-left:4px solid #c62828;
padding:8px 12px;margin:10px 0}
table{border-collapse:collapse;font-size:13px;margin:0}
.scroll{overflow-x:auto;max-width:100%;margin:8px 0 16px}
th,td{border:1px solid #d5dae1;padding:3px 8px;text-align:left;vertical-align:top;
white-space:nowrap}td.wrap{white-space:normal;min-width:18em}
th{background:#eef1f5}tr:nth-child(even) td{background:#f8f9fb}
details.table>summary{cursor:pointer;color:#2b5797;margin:6px 0}
p,li,figcaption,h1,h2,h3{overflow-wrap:anywhere}ul.verdicts li{margin:4px 0}
p.small{color:#5a6573;font-size:13px}
td.num{text-align:right;font-variant-numeric:tabular-nums}tr.failed td{background:#fdecec}
td.best{font-weight:700}code,pre{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;
font-size:12px}pre{white-space:pre-wrap;margin:4px 0}
figure{margin:8px 0 20px}figure img{max-width:100%;height:auto;border:1px solid #e3e7ec}
figcaption{color:#5a6573;font-size:13px}ul.summary{margin:6px 0;padding-left:20px}
"""

# Sets body[data-images-ok] once every image has decoded, and body[data-overflow] to how many
# pixels the page is wider than the window (checked by the browser tests).
SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var ok = images.every(function (im) { return im.complete && im.naturalWidth > 0; });
  document.body.dataset.imagesOk = ok ? "true" : "false";
  document.body.dataset.images = String(images.length);
  var root = document.documentElement;
  document.body.dataset.overflow = String(root.scrollWidth - window.innerWidth);
  document.body.dataset.innerWidth = String(window.innerWidth);
});
"""

CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
       "script-src 'unsafe-inline'")


def build_report(
    results_path: str | os.PathLike,
    out_html: str | os.PathLike,
    fit_dir: str | os.PathLike | None = None,
    *,
    progress: bool = True,
) -> Path:
    """Write the HTML report of the study stored in ``results_path`` to ``out_html``.

    Parameters
    ----------
    results_path : path-like
        The study's results database (``study run --results``).
    out_html : path-like
        The report to write (atomically: an interrupted run leaves no half-written file).
    fit_dir : path-like, optional
        The output folder of ``study fit``. By default ``<results stem>-fit/`` or ``fit/`` next
        to the results file, whichever holds ``comparison.csv``; without one the report says
        how to fit the study.
    progress : bool, default True
        Show a progress bar over the report's sections.

    Returns
    -------
    pathlib.Path
        The path of the report.

    Raises
    ------
    InputError
        ``fit_dir`` holds no ``comparison.csv``, or the results cannot be read.
    """
    from sparsetopo.study.store import load_runs, load_trajectories

    results_path = Path(results_path)
    runs = load_runs(results_path, status=None)
    trajectories = load_trajectories(results_path, status="ok")
    found = find_fit_dir(results_path, fit_dir)
    tables = read_fit_tables(found) if found is not None else {}
    return render_report(
        runs,
        out_html,
        comparison=tables.get("comparison"),
        importance=tables.get("importance"),
        predictions=tables.get("predictions"),
        paired_effects=tables.get("paired_effects"),
        paired_prediction=tables.get("paired_prediction"),
        separability=tables.get("separability"),
        title=f"Study report: {results_path.name}",
        source=str(results_path),
        fit_source=None if found is None else str(found),
        fit_hint=(f"sparsetopo study fit {results_path} --out "
                  f"{results_path.with_name(results_path.stem + '-fit')}"),
        progress=progress,
        trajectories=trajectories,
    )


def find_fit_dir(results_path: Path, fit_dir: str | os.PathLike | None) -> Path | None:
    """The folder of a study's fit tables.

    Parameters
    ----------
    results_path : pathlib.Path
        The study's results database.
    fit_dir : path-like or None
        A folder given by the user: it must hold ``comparison.csv``.

    Returns
    -------
    pathlib.Path or None
        ``fit_dir``, else the first of ``<results stem>-fit/`` and ``fit/`` next to the
        results that holds ``comparison.csv``, else ``None``.

    Raises
    ------
    InputError
        ``fit_dir`` is given and holds no ``comparison.csv``.
    """
    if fit_dir is not None:
        fit_dir = Path(fit_dir)
        if not (fit_dir / "comparison.csv").is_file():
            raise InputError(f"{fit_dir} holds no comparison.csv: give the output "
                                    "folder of `sparsetopo study fit`")
        return fit_dir
    for candidate in (results_path.with_name(results_path.stem + "-fit"),
                      results_path.with_name("fit")):
        if (candidate / "comparison.csv").is_file():
            return candidate
    return None


def read_fit_tables(fit_dir: Path) -> dict[str, pd.DataFrame]:
    """The fit tables present in a folder.

    Parameters
    ----------
    fit_dir : pathlib.Path
        The output folder of ``study fit``.

    Returns
    -------
    dict of str to pandas.DataFrame
        The tables of :data:`FIT_FILES` found there, by file stem (``"comparison"``, ...).
    """
    return {name.removesuffix(".csv"): pd.read_csv(fit_dir / name)
            for name in FIT_FILES if (fit_dir / name).is_file()}


def render_report(
    runs_df: pd.DataFrame,
    out_html: str | os.PathLike,
    comparison: pd.DataFrame | None = None,
    importance: pd.DataFrame | None = None,
    predictions: pd.DataFrame | None = None,
    paired_effects: pd.DataFrame | None = None,
    paired_prediction: pd.DataFrame | None = None,
    separability: pd.DataFrame | None = None,
    *,
    title: str = "Study report",
    source: str | None = None,
    fit_source: str | None = None,
    fit_hint: str = "sparsetopo study fit RESULTS --out RESULTS-fit",
    progress: bool = False,
    trajectories: pd.DataFrame | None = None,
) -> Path:
    """Write the HTML report of a study's tables.

    The page leads, right under its title, with the answer: the forest plot of each feature
    set's gain in R^2 over the baselines (``sparsity``, and ``density`` and
    ``effective_sparsity`` where ``comparison`` has their gains) with its 95% interval, one
    panel per protocol (:func:`sparsetopo.plot.gain_forest`), then one sentence per protocol:
    the sample the verdict rests on (runs, configurations, i.e. distinct (method, sparsity),
    and outer folds per (model, dataset) pair, counted in ``predictions`` when given, else the
    configurations in ``runs_df``), the sets whose interval lies above 0, and whether the
    sample is too small to conclude. **Too-small rule**: a protocol's verdict is too small to
    conclude when a (model, dataset) pair has fewer than :data:`MIN_CONFIGURATIONS` (20)
    configurations or fewer than :data:`MIN_FOLDS` (3) outer folds, or when no set has a 95%
    interval under it (fewer than 2 fold contributions). With 20 configurations the K = 5
    folds of the grouped protocol each hold out at least 4; with 3 folds the t-interval has 2
    degrees of freedom (t = 4.3), fewer leave 1 (t = 12.7), where an interval says little.
    Without ``comparison`` the page says how to fit the study instead. Below come the summary
    and the tables, each scrolling sideways within the page width, collapsed when longer than
    :data:`LONG_TABLE` rows.

    Parameters
    ----------
    runs_df : pandas.DataFrame
        The runs table (``study.store.load_runs(..., status=None)``): failed runs included.
    out_html : path-like
        The report to write, atomically.
    comparison, importance, predictions : pandas.DataFrame, optional
        ``comparison.csv``, ``importance.csv`` and ``predictions.csv`` of ``study fit``.
    paired_effects, paired_prediction : pandas.DataFrame, optional
        ``paired_effects.csv`` and ``paired_prediction.csv`` (studies with mask controls).
    separability : pandas.DataFrame, optional
        ``separability.csv``: how well each feature set tells methods and categories apart.
    title : str, default "Study report"
        The page's title.
    source, fit_source : str, optional
        Where the runs and the fit tables were read from, as the summary names them.
    fit_hint : str
        The command the report suggests when there are no fit tables.
    progress : bool, default False
        Show a progress bar over the report's sections.
    trajectories : pandas.DataFrame, optional
        Dynamic sparse training trajectories (``study.store.load_trajectories``).

    Returns
    -------
    pathlib.Path
        The path of the report.

    Raises
    ------
    TypeError
        ``runs_df`` is not a DataFrame.
    InputError
        ``runs_df`` lacks a column the report needs.
    """
    if not isinstance(runs_df, pd.DataFrame):
        raise TypeError(f"runs_df must be a pandas DataFrame, got {type(runs_df).__name__}")
    missing = [c for c in ("model", "dataset", "method", "sparsity", "seed", "status")
               if c not in runs_df.columns]
    if missing:
        raise InputError(f"runs table lacks columns {missing}; it has {list(runs_df.columns)}")
    steps: list[tuple[str, Callable[[Path], str]]] = [
        ("answer", lambda d: _answer_section(runs_df, comparison, predictions, fit_hint, d)),
        ("summary", lambda d: _summary(runs_df, comparison, source, fit_source)),
        ("comparison", lambda d: _comparison_section(comparison)),
        ("paired", lambda d: _paired_section(paired_effects, paired_prediction)),
        ("categories", lambda d: _categories_section(runs_df, separability, d)),
        ("plots", lambda d: _runs_plots(runs_df, d)),
        ("fit plots", lambda d: _fit_plots(predictions, importance, d)),
        ("trajectories", lambda d: _trajectory_section(trajectories, d)),
        ("ranking", lambda d: _ranking_section(runs_df, predictions)),
        ("runs", lambda d: _runs_section(runs_df)),
    ]
    body = []
    with tempfile.TemporaryDirectory(prefix="sparsetopo-report-") as tmp:
        for _, step in tqdm(steps, desc="report", disable=not show_progress(progress), leave=False):
            body.append(step(Path(tmp)))
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{_e(title)}</title><style>{CSS}</style></head>\n<body>"
        f"<h1>{_e(title)}</h1>"
        + "\n".join(body)
        + f"\n<p class=\"meta\">generated by sparsetopo on {_e(stamp)}</p>"
        + f"\n<script>{SCRIPT}</script></body></html>\n"
    )
    return write_text(out_html, page)


# -------------------------------------------------------------------------------- sections
def _answer_section(runs: pd.DataFrame, comparison: pd.DataFrame | None,
                    predictions: pd.DataFrame | None, fit_hint: str, tmp: Path) -> str:
    """The answer first: the forest plot of the gains over the baselines and one sentence per
    protocol (sample size, sets above 0, too small or not); without a fit, how to fit."""
    if comparison is None:
        return ("<p class=\"note\" id=\"answer\">This study has not been fitted yet, so "
                "there is no comparison of feature sets, no prediction and no importance. Fit "
                f"it with <code>{_e(fit_hint)}</code> and build the report again.</p>")
    figure = _figure(lambda p: plot.gain_forest(comparison, p), tmp / "gains.png",
                     "Does topology beat sparsity? Gain in R² of each feature set over each "
                     "baseline (mean over (model, dataset) pairs), per protocol, with its 95% "
                     "t-interval over the outer folds as written by study fit; filled: the "
                     "interval lies above 0.", id_="answer")
    if not {"protocol", "feature_set", "model"} <= set(comparison.columns):
        return figure
    head = comparison[comparison["model"].astype(str) == "mean"]
    baselines = [b for b in BASELINES if baseline_columns(b)["gain"] in head.columns
                 and head[baseline_columns(b)["gain"]].notna().any()]
    lines = [f"<li>{_verdict_sentence(head, protocol, baselines, runs, predictions)}</li>"
             for protocol in _ordered(head["protocol"], PROTOCOLS)]
    rule = (f"Too small to conclude: a (model, dataset) pair with fewer than "
            f"{MIN_CONFIGURATIONS} configurations (distinct method and sparsity) or fewer than "
            f"{MIN_FOLDS} outer folds, or no 95% interval. Interval above 0 is read from the "
            "intervals study fit wrote; the fit's own verdicts (gain above its spread) are in "
            "the summary below.")
    return "\n".join([figure, "<ul class=\"verdicts\">", *lines, "</ul>",
                      f"<p class=\"small\">{_e(rule)}</p>"])


def _verdict_sentence(head: pd.DataFrame, protocol: str, baselines: list[str],
                      runs: pd.DataFrame, predictions: pd.DataFrame | None) -> str:
    """One escaped sentence: the sample of ``protocol``, the sets whose interval over each
    baseline lies above 0, and whether the sample is too small to conclude."""
    part = head[head["protocol"].astype(str) == protocol]
    size = _sample_size(part, protocol, runs, predictions)
    words = [f"<b>{_e(protocol)}</b>: " + _e(_describe(size)) + "."]
    has_interval, parts = False, []
    for baseline in baselines:
        names = baseline_columns(baseline)
        rows = part[part["feature_set"].astype(str) != baseline]
        if names["ci_low"] not in rows.columns:
            continue
        low = pd.to_numeric(rows[names["ci_low"]], errors="coerce")
        has_interval |= bool(low.notna().any())
        above = rows[low > 0].sort_values(names["gain"], ascending=False)
        listed = ", ".join(
            f"{r['feature_set']} {r[names['gain']]:+.3f} [{r[names['ci_low']]:+.3f}, "
            f"{r[names['ci_high']]:+.3f}]" for _, r in above.iterrows()) or "none"
        parts.append(f"over {BASELINE_LABELS[baseline]}: {listed}")
    if parts:
        words.append(_e("Gain in R² with its 95% interval above 0 " + "; ".join(parts) + "."))
    written = any(baseline_columns(b)["ci_low"] in part.columns for b in baselines)
    if not written:
        words.append(_e("comparison.csv has no 95% intervals (an older study fit wrote it): "
                        "fit the study again to see them."))
    reasons = _too_small(size, has_interval or not written)
    if reasons:
        words.append("<b>" + _e("The sample is too small to conclude: " + "; ".join(reasons)
                                + "; read these gains as indications only.") + "</b>")
    elif size["folds"] is None:
        words.append(_e(f"The sample is large enough by the report's rule (at least "
                        f"{MIN_CONFIGURATIONS} configurations per pair; the folds are counted "
                        "in predictions.csv, not given here)."))
    else:
        words.append(_e(f"The sample is large enough by the report's rule (at least "
                        f"{MIN_CONFIGURATIONS} configurations and {MIN_FOLDS} outer folds per "
                        "pair)."))
    return " ".join(words)


def _sample_size(part: pd.DataFrame, protocol: str, runs: pd.DataFrame,
                 predictions: pd.DataFrame | None) -> dict:
    """Runs, pairs, and the fewest configurations and outer folds of a pair under
    ``protocol``: from the predictions of ``study fit`` when they have the protocol (what the
    fit used), else the configurations of the successful pruned runs (folds unknown)."""
    n = pd.to_numeric(part["n"], errors="coerce").max() if "n" in part.columns else np.nan
    keys = ["model", "dataset"]
    source, folds = None, None
    if predictions is not None and {"protocol", "feature_set", "method", "sparsity",
                                    *keys} <= set(predictions.columns):
        rows = predictions[predictions["protocol"].astype(str) == protocol]
        if not rows.empty:
            source = rows[rows["feature_set"] == rows["feature_set"].iloc[0]]
            if "fold" in source.columns:
                folds = int(source.groupby(keys)["fold"].nunique().min())
    if source is None:
        ok = runs[(runs["status"] == "ok") & (runs["method"].astype(str) != DENSE)
                  & (pd.to_numeric(runs["sparsity"], errors="coerce") > 0)]
        if "accuracy_drop" in ok.columns:
            ok = ok[ok["accuracy_drop"].notna()]
        source = ok
    configurations = (source.groupby(keys)[["method", "sparsity"]]
                      .apply(lambda g: len(g.drop_duplicates())))
    if not np.isfinite(n):
        n = len(source)
    return {"runs": int(n), "pairs": int(len(configurations)),
            "configurations": int(configurations.sum()) if len(configurations) else 0,
            "fewest": int(configurations.min()) if len(configurations) else 0,
            "folds": folds}


def _describe(size: dict) -> str:
    pairs = size["pairs"]
    text = (f"{size['runs']:,} runs of {size['configurations']:,} configurations (method, "
            f"sparsity) in {pairs} (model, dataset) pair{'s' if pairs != 1 else ''}")
    if pairs > 1:
        text += f" (the smallest has {size['fewest']:,})"
    if size["folds"] is not None:
        text += f", {size['folds']} outer folds per pair"
        if pairs > 1:
            text += " at least"
    return text


def _too_small(size: dict, has_interval: bool) -> list[str]:
    """The reasons, if any, why the sample is too small to conclude (the rule of
    :func:`render_report`)."""
    reasons = []
    if size["fewest"] < MIN_CONFIGURATIONS:
        reasons.append(f"{size['fewest']} configurations in a pair, fewer than "
                       f"{MIN_CONFIGURATIONS}")
    if size["folds"] is not None and size["folds"] < MIN_FOLDS:
        reasons.append(f"{size['folds']} outer folds, fewer than {MIN_FOLDS}")
    if not has_interval:
        reasons.append("no 95% interval (fewer than 2 fold contributions)")
    return reasons


def _summary(runs: pd.DataFrame, comparison: pd.DataFrame | None, source: str | None,
             fit_source: str | None) -> str:
    status = runs["status"].astype(str).value_counts()
    pruned = runs[runs["method"] != "dense"]
    items = [
        f"{len(runs):,} runs: " + ", ".join(f"{n:,} {_e(s)}" for s, n in status.items()),
        "models: " + _e(", ".join(sorted(map(str, runs["model"].unique())))),
        "datasets: " + _e(", ".join(sorted(map(str, runs["dataset"].unique())))),
        "pruning methods: " + _e(", ".join(sorted(map(str, pruned["method"].unique()))) or "none"),
        "sparsities: " + _e(", ".join(f"{s:g}" for s in sorted(pruned["sparsity"].unique()))
                           or "none"),
        "seeds: " + _e(", ".join(str(s) for s in sorted(runs["seed"].unique()))),
    ]
    if source:
        items.append(f"results: <code>{_e(source)}</code>")
    if fit_source:
        items.append(f"fit tables: <code>{_e(fit_source)}</code>")
    out = ["<h2 id=\"summary\">Summary</h2>", "<ul class=\"summary\">"]
    out += [f"<li>{item}</li>" for item in items]
    out.append("</ul>")
    failed = int((runs["status"] != "ok").sum())
    if failed:
        out.append(f"<p class=\"warn\">{failed:,} run(s) failed: see "
                   "<a href=\"#runs\">the run list</a> for their errors.</p>")
    if comparison is not None and {"model", "protocol", "feature_set",
                                   "beats_sparsity"} <= set(comparison.columns):
        from sparsetopo.study.summary import verdict

        baselines = [b for b in BASELINES if baseline_columns(b)["beats"] in comparison.columns]
        for baseline in baselines:
            out.append(f"<p>Does topology beat {_e(BASELINE_LABELS[baseline])}? (mean over "
                       "(model, dataset) pairs; criterion: a gain counts only when it exceeds "
                       "the standard deviation of its fold contributions; 95% t-interval over "
                       "the outer folds beside it)</p><ul>")
            for protocol in _ordered(comparison["protocol"], PROTOCOLS):
                line = _e(verdict(comparison, protocol, baseline))
                line = line.replace("**", "").replace("`", "")
                out.append(f"<li>{line}</li>")
            out.append("</ul>")
    return "\n".join(out)


def _comparison_section(comparison: pd.DataFrame | None) -> str:
    if comparison is None:  # the answer section says how to fit
        return ""
    out = ["<h2 id=\"comparison\">Feature sets compared</h2>"]
    frame = comparison.copy()
    if "protocol" in frame.columns and "feature_set" in frame.columns:
        frame["_p"] = frame["protocol"].map(_rank_of(frame["protocol"], PROTOCOLS))
        frame["_f"] = frame["feature_set"].map(_rank_of(frame["feature_set"], SET_ORDER))
        frame["_m"] = frame["model"].astype(str) != "mean" if "model" in frame.columns else 0
        keys = ["_m", "_p"] + [c for c in ("model", "dataset") if c in frame.columns] + ["_f"]
        frame = frame.sort_values(keys, kind="stable").drop(columns=["_p", "_f", "_m"])
    best = pd.Series(False, index=frame.index)
    if "beats_sparsity" in frame.columns:
        best = frame["beats_sparsity"].astype(bool)
    out.append("<p>R&sup2; and MAE of the out-of-fold predictions of the accuracy drop, one "
               "regressor per (model, dataset); the rows with model <i>mean</i> average the "
               "pairs (the headline). <i>gain_over_sparsity</i>: R&sup2; minus that of global "
               "sparsity alone on the same runs and folds, with its spread over the outer "
               "folds (<i>gain_spread</i>) and its 95% t-interval (<i>_ci_low</i>, "
               "<i>_ci_high</i>); sets that beat sparsity beyond that spread in bold. The same "
               "columns over the layer densities (<i>gain_over_density</i>, "
               "<i>beats_density</i>) and the effective sparsity "
               "(<i>gain_over_effective_sparsity</i>). Kendall &tau; and "
               "top-1 hit rate of the predicted ranking of pruning methods, next to the same "
               "figures of the sparsity predictor (<i>null_</i>).</p>")
    bold_columns = {"feature_set", "gain_over_sparsity"}
    if "model" not in frame.columns:
        out.append(_table(frame, bold=best, bold_columns=bold_columns))
        return "\n".join(out)
    mean = frame["model"].astype(str) == "mean"
    out.append(_table(frame[mean], bold=best, bold_columns=bold_columns, open_=True,
                      what="rows of the mean over pairs"))
    if (~mean).any():
        out.append(_table(frame[~mean], bold=best, bold_columns=bold_columns,
                          what="rows per (model, dataset)"))
    return "\n".join(out)


def _paired_section(effects: pd.DataFrame | None, scores: pd.DataFrame | None) -> str:
    """The paired effect of topology (method minus its control, same seed) per (method,
    control, sparsity), and how well each feature set predicts it; empty without controls."""
    if effects is None:
        return ""
    out = ["<h2 id=\"paired\">Does the arrangement inside layers matter?</h2>",
           "<p>Accuracy of each pruning method minus that of its mask control "
           "(<i>layer-shuffle</i>: the same count per layer at random positions; "
           "<i>fanin-shuffle</i>: the same count per output channel), with the same seed: the "
           "same initial weights and training. Mean over seeds with its 95% Student-t "
           "interval; <i>method better</i> (interval above 0): the method's arrangement helps; "
           "<i>control better</i> (below 0): random positions do better; <i>no detectable "
           "difference</i>: the interval contains 0; <i>too few seeds</i>: fewer than 2.</p>"]
    if effects.empty:
        out.append("<p class=\"note\">No control run has its method's run: no paired "
                   "effect.</p>")
    else:
        better = effects["verdict"].astype(str) != "no detectable difference"
        out.append(_table(effects, bold=better, bold_columns={"verdict"}))
    if scores is not None and not scores.empty:
        head = scores[scores["model"].astype(str) == "mean"]
        out.append("<h3>Can topology predict the paired difference?</h3><p>Out-of-fold R&sup2; "
                   "of the paired difference predicted from the difference of each feature "
                   "set (method minus control), against 0 (a constant); <i>predicts</i> when "
                   "R&sup2; exceeds the spread of its fold contributions (in bold), 95% "
                   "t-interval beside it.</p>")
        out.append(_table(head, bold=head["predicts"].astype(bool),
                          bold_columns={"feature_set", "r2"}))
    return "\n".join(out)


def _categories_section(runs: pd.DataFrame, separability: pd.DataFrame | None,
                        tmp: Path) -> str:
    """How well each feature set tells methods and categories apart (the means over cases
    of ``separability.csv``), and per (model, dataset) the topometrics against sparsity
    coloured by category; empty when the runs span fewer than 2 categories and there is no
    separability table."""
    ok = runs[(runs["status"] == "ok") & (runs["method"].astype(str) != "dense")]
    spans = ok["category"].nunique() >= 2 if "category" in ok.columns else False
    if not spans and (separability is None or separability.empty):
        return ""
    out = ["<h2 id=\"categories\">Methods and categories: can topology tell them apart?</h2>"]
    if separability is not None and not separability.empty:
        head = separability[separability["model"].astype(str) == "mean"]
        out.append("<p>At each (model, dataset) and sparsity, a logistic regression "
                   "(standardised features, balanced class weights) predicts each run's "
                   "method, and its category, from each feature set, out of fold: whole seeds "
                   "held out (<i>seed</i>; one seed: <i>stratified</i> K-fold), and for the "
                   "category also whole methods held out (<i>method</i>: the category of a "
                   "method never seen in training). Balanced accuracy (mean recall over the "
                   "labels) next to chance (1 / labels) and to the layer densities "
                   "(<i>gain_over_density</i>); mean over the cases, every case in "
                   "<code>separability.csv</code>. In bold: above the layer densities in most "
                   "cases.</p>")
        columns = ["target", "split", "feature_set", "cases", "classes", "chance",
                   "balanced_accuracy", "gain_over_sparsity", "gain_over_density",
                   "cases_above_chance", "cases_above_density"]
        head = head[[c for c in columns if c in head.columns]]
        better = head.get("cases_above_density", pd.Series(0.0, index=head.index)) > 0.5
        out.append(_table(head, bold=better, bold_columns={"feature_set",
                                                           "balanced_accuracy"}))
    if spans:
        for i, ((model, dataset), part) in enumerate(ok.groupby(["model", "dataset"],
                                                                sort=True)):
            name = f"{model} / {dataset}"
            out.append(_figure(
                lambda p, part=part, name=name: plot.metric_vs_sparsity_by_category(
                    part, p, title=name),
                tmp / f"category{i}.png",
                f"Path metrics and MGE topometrics of {name} against sparsity, one line per "
                "method coloured by its category (mean and standard deviation over seeds)."))
    return "\n".join(out)


def _runs_plots(runs: pd.DataFrame, tmp: Path) -> str:
    out = ["<h2 id=\"plots\">Accuracy and topometrics against sparsity</h2>"]
    ok = runs[runs["status"] == "ok"]
    if ok.empty:
        out.append("<p class=\"note\">No successful run yet: nothing to plot.</p>")
        return "\n".join(out)
    for i, ((model, dataset), part) in enumerate(ok.groupby(["model", "dataset"], sort=True)):
        name = f"{model} / {dataset}"
        out.append(f"<h3>{_e(name)}</h3>")
        accuracy = [c for c in ("accuracy_drop", "accuracy") if c in part.columns
                    and part[c].notna().any()]
        if accuracy:
            out.append(_figure(lambda p, part=part, accuracy=accuracy: plot.metric_vs_sparsity(
                part, p, metrics=accuracy, ncols=2), tmp / f"acc{i}.png",
                f"Accuracy drop and test accuracy of {name} against sparsity (mean and "
                "standard deviation over seeds; dotted: dense network)."))
        out.append(_figure(lambda p, part=part: plot.metric_vs_sparsity(part, p),
                           tmp / f"mge{i}.png",
                           f"Topometrics of the MGE of {name} against sparsity (mean and "
                           "standard deviation over seeds; dotted: dense network)."))
    return "\n".join(out)


def _fit_plots(predictions: pd.DataFrame | None, importance: pd.DataFrame | None,
               tmp: Path) -> str:
    out = []
    if predictions is not None:
        out.append("<h2 id=\"predictions\">Predicted against measured accuracy drop</h2>")
        out.append(_figure(lambda p: plot.predicted_vs_measured(predictions, p),
                           tmp / "pred.png",
                           "Out-of-fold predictions of the accuracy drop per feature set "
                           "(columns) and protocol (rows); dashed: perfect prediction."))
    if importance is not None:
        out.append("<h2 id=\"importance\">Feature importance</h2>")
        out.append(_figure(lambda p: plot.shap_summary(importance, p), tmp / "shap.png",
                           "Mean |SHAP| of the ten most important features of each feature "
                           "set, over all runs."))
    return "\n".join(out)


def _trajectory_section(trajectories: pd.DataFrame | None, tmp: Path) -> str:
    """Per (model, dataset), the path metrics, exploration rate and kept fraction of the
    initial mask of every dynamic sparse training method over training; nothing when the
    study has no such run."""
    if trajectories is None or trajectories.empty:
        return ""
    out = ["<h2 id=\"trajectories\">Topology over training (dynamic sparse training)</h2>",
           "<p>At every mask update: the path metrics of the mask (MGE with identity skips), "
           "the exploration rate R<sub>s</sub> (fraction of all weights ever present) and the "
           "fraction of the initial mask still present; mean and standard deviation over "
           "seeds, one row per sparsity.</p>"]
    for i, ((model, dataset), part) in enumerate(trajectories.groupby(["model", "dataset"],
                                                                      sort=True)):
        name = f"{model} / {dataset}"
        out.append(f"<h3>{_e(name)}</h3>")
        out.append(_figure(lambda p, part=part: plot.trajectory(part, p), tmp / f"dst{i}.png",
                           f"Topology of the masks of {name} over training, per method."))
    return "\n".join(out)


def _ranking_section(runs: pd.DataFrame, predictions: pd.DataFrame | None) -> str:
    out = ["<h2 id=\"ranking\">Ranking of pruning methods</h2>"]
    source = predictions if predictions is not None else runs
    try:
        table = method_ranks(source)
    except ValueError as exc:
        out.append(f"<p class=\"note\">No ranking: {_e(exc)}</p>")
        return "\n".join(out)
    if table.empty:
        out.append("<p class=\"note\">No pruned run with a measured accuracy drop yet.</p>")
        return "\n".join(out)
    has_pred = "predicted_drop" in table.columns
    if has_pred:
        out.append(f"<p>Methods from smallest to largest mean accuracy drop over seeds, "
                   f"measured and predicted (feature set <b>{_e(table.attrs['feature_set'])}"
                   f"</b>, protocol <b>{_e(table.attrs['protocol'])}</b>); Kendall &tau; "
                   "compares the two orders.</p>")
    else:
        out.append("<p>Methods from smallest to largest mean accuracy drop over seeds "
                   "(measured).</p>")
    rows = []
    for (model, dataset, sparsity), case in table.groupby(["model", "dataset", "sparsity"],
                                                          sort=True):
        row = {"model": model, "dataset": dataset, "sparsity": sparsity,
               "measured order": _order(case, "measured_drop")}
        if has_pred:
            row["predicted order"] = _order(case, "predicted_drop")
            row["Kendall tau"] = kendall_tau(case["measured_drop"], case["predicted_drop"])
        rows.append(row)
    out.append(_table(pd.DataFrame(rows)))
    return "\n".join(out)


def _runs_section(runs: pd.DataFrame) -> str:
    runs = runs.iloc[np.argsort(runs["status"].to_numpy() == "ok", kind="stable")]  # failed first
    columns = [c for c in RUN_COLUMNS if c in runs.columns]
    frame = runs[columns]
    errors = runs["error"] if "error" in runs.columns else pd.Series(None, index=runs.index)
    head = "".join(f"<th>{_e(c)}</th>" for c in [*columns, "error"])
    lines = []
    for (_, row), error in zip(frame.iterrows(), errors, strict=True):
        failed = str(row.get("status")) != "ok"
        cells = "".join(_cell(row[c]) for c in columns) + \
            f"<td class=\"wrap\">{_error_cell(error)}</td>"
        attr = " class=\"failed\"" if failed else ""
        lines.append(f"<tr{attr}>{cells}</tr>")
    failed = int((runs["status"] != "ok").sum())
    return (f"<h2 id=\"runs\">Runs ({len(frame):,})</h2>\n<p>Failed runs first, with their "
            f"error (click an error to see all of it).</p>\n"
            + _wrap_table(f"<thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(lines)
                          + "\n</tbody>", len(lines),
                          f"runs ({failed:,} failed, listed first)" if failed else "runs"))


# --------------------------------------------------------------------------------- helpers
def _figure(draw: Callable[[Path], Path], path: Path, caption: str,
            id_: str | None = None) -> str:
    """``<figure>`` with the PNG that ``draw(path)`` writes, embedded as a data URI; a note
    instead when the data cannot be drawn (``ValueError`` of the plot)."""
    anchor = f" id=\"{_e(id_)}\"" if id_ else ""
    try:
        draw(path)
    except ValueError as exc:
        return f"<p class=\"note\"{anchor}>Cannot draw this plot: {_e(exc)}</p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f"<figure{anchor}><img src=\"data:image/png;base64,{data}\" "
            f"alt=\"{_e(caption)}\"><figcaption>{_e(caption)}</figcaption></figure>")


def _table(frame: pd.DataFrame, bold: pd.Series | None = None,
           bold_columns: set[str] | None = None, *, open_: bool = False,
           what: str = "rows") -> str:
    """Escaped HTML table of ``frame`` (:func:`_wrap_table`: ``open_`` and ``what``); cells of
    ``bold_columns`` in rows where ``bold`` is true are bold."""
    head = "".join(f"<th>{_e(c)}</th>" for c in frame.columns)
    lines = []
    for index, row in frame.iterrows():
        strong = bool(bold is not None and bold.get(index, False))
        cells = "".join(_cell(row[c], strong and c in (bold_columns or ())) for c in frame.columns)
        lines.append(f"<tr>{cells}</tr>")
    return _wrap_table(f"<thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(lines)
                       + "\n</tbody>", len(lines), what, open_=open_)


def _wrap_table(inner: str, rows: int, what: str = "rows", *, open_: bool = False) -> str:
    """``<table>`` of ``inner`` in a container that scrolls sideways (the page never does);
    one of more than :data:`LONG_TABLE` rows goes under a ``<details>`` whose summary names
    its ``rows`` ``what``, collapsed unless ``open_``."""
    table = f"<div class=\"scroll\"><table>{inner}</table></div>"
    if rows <= LONG_TABLE:
        return table
    state = " open" if open_ else ""
    return (f"<details class=\"table\"{state}><summary>All {rows:,} {_e(what)}</summary>"
            f"{table}</details>")


def _cell(value, strong: bool = False) -> str:
    numeric = isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool)
    raw = "" if value is None else str(value)
    wrap = not numeric and len(raw) > WRAP_CHARS
    classes = " ".join(c for c, on in (("num", numeric), ("best", strong), ("wrap", wrap)) if on)
    attr = f" class=\"{classes}\"" if classes else ""
    text = _fmt(value) if numeric else _e(raw)
    return f"<td{attr}>{text}</td>"


def _error_cell(error) -> str:
    if error is None or (isinstance(error, float) and math.isnan(error)):
        return ""
    text = str(error).strip()
    first, _, rest = text.partition("\n")
    if not rest:
        return f"<code>{_e(first)}</code>"
    return (f"<details><summary><code>{_e(first)}</code></summary><pre>{_e(text)}</pre>"
            "</details>")


def _order(case: pd.DataFrame, column: str) -> str:
    ordered = case.sort_values([column, "method"])
    return " < ".join(f"{m} ({_fmt(v)})" for m, v in zip(ordered["method"], ordered[column],
                                                          strict=True))


def _fmt(value) -> str:
    """Numbers for people: integers as is, floats with 4 significant digits, NaN as a dash."""
    if value is None:
        return "–"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    value = float(value)
    if math.isnan(value):
        return "–"
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:.4g}"


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _ordered(values: pd.Series, preferred: tuple[str, ...]) -> list[str]:
    present = {str(v) for v in values.unique()}
    return [p for p in preferred if p in present] + sorted(present - set(preferred))


def _rank_of(values: pd.Series, preferred: tuple[str, ...]) -> dict[str, int]:
    return {v: i for i, v in enumerate(_ordered(values, preferred))}
