"""The HTML report: self-contained, escaped, complete; and seen in headless Chromium."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from browser import BrowserUnavailable, dump_dom, ensure_chromium, screenshot
from PIL import Image
from test_plot import fake_study_tables

from sparsetopo.errors import InputError
from sparsetopo.report import find_fit_dir, render_report
from sparsetopo.study.fit import COMPARISON_COLUMNS, PREDICTION_COLUMNS
from sparsetopo.study.vocabulary import BASELINES, PROTOCOLS, baseline_columns

IMG_SRC = re.compile(r"<img [^>]*src=\"([^\"]*)\"")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    runs, predictions, importance, comparison = fake_study_tables(models=("resnet20", "conv6"))
    out = tmp_path_factory.mktemp("report") / "out" / "report.html"
    render_report(runs, out, comparison=comparison, importance=importance,
                  predictions=predictions, title="Study <report> & co")
    return out


def decode_images(page: str) -> list[np.ndarray]:
    images = []
    for src in IMG_SRC.findall(page):
        assert src.startswith("data:image/png;base64,"), src[:60]
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        with Image.open(io.BytesIO(data)) as im:
            assert im.format == "PNG"
            images.append(np.asarray(im.convert("RGB"), dtype=float) / 255)
    return images


def assert_not_blank(rgb: np.ndarray) -> None:
    assert rgb.std() > 0.01
    packed = (np.round(rgb * 255).astype(np.int64) * [65536, 256, 1]).sum(axis=-1)
    assert len(np.unique(packed)) > 10


def test_report_is_self_contained_with_every_section(report):
    page = report.read_text(encoding="utf-8")
    assert sorted(p.name for p in report.parent.iterdir()) == ["report.html"]  # atomic write
    # nothing is loaded from elsewhere: no URL in src/href other than data: and #anchors
    for attr in re.findall(r"(?:src|href)=\"([^\"]*)\"", page):
        assert attr.startswith(("data:image/png;base64,", "#")), attr[:80]
    assert "<link" not in page and "@import" not in page and "url(" not in page
    images = decode_images(page)
    # the gains (first), accuracy + topometrics per (model, dataset) pair, predictions, SHAP
    assert len(images) == 1 + 2 * 2 + 2
    for rgb in images:
        assert_not_blank(rgb)
    for heading in ("Summary", "Feature sets compared", "Accuracy and topometrics",
                    "Predicted against measured", "Feature importance",
                    "Ranking of pruning methods", "Runs (103)"):
        assert heading in page, heading
    assert "This study has not been fitted" not in page


def test_report_escapes_text(report):
    page = report.read_text(encoding="utf-8")
    assert "Study &lt;report&gt; &amp; co" in page
    assert "RuntimeError: &lt;b&gt;bad&lt;/b&gt; &amp; worse" in page
    assert "<b>bad</b>" not in page


def test_report_run_list_has_every_run_and_marks_failures(report):
    page = report.read_text(encoding="utf-8")
    runs, *_ = fake_study_tables(models=("resnet20", "conv6"))
    runs_part = page[page.index('id="runs"'):]
    assert "<th>run_id</th>" in runs_part and "<th>error</th>" in runs_part
    for run_id in runs["run_id"]:
        assert f"<td>{run_id}</td>" in runs_part
    assert runs_part.count('<tr class="failed">') == int((runs["status"] != "ok").sum()) == 1


def test_report_ranking_uses_predictions(report):
    page = report.read_text(encoding="utf-8")
    ranking = page[page.index('id="ranking"'):page.index('id="runs"')]
    assert "feature set <b>mge</b>, protocol <b>leave-one-method-out</b>" in ranking
    assert ranking.count("<tr>") == 1 + 2 * 4  # header + (2 models x 4 sparsities)


def test_report_without_fit_says_how_to_fit(tmp_path):
    runs, *_ = fake_study_tables()
    out = render_report(runs, tmp_path / "r.html", fit_hint="sparsetopo study fit X --out Y")
    page = out.read_text(encoding="utf-8")
    assert "This study has not been fitted yet" in page
    assert "<code>sparsetopo study fit X --out Y</code>" in page
    assert len(decode_images(page)) == 2  # accuracy + topometrics, no fit plots
    assert "Predicted against measured" not in page


def test_report_of_failed_runs_only(tmp_path):
    runs = pd.DataFrame([dict(run_id="a", model="m<1>", dataset="d", method="snip",
                              sparsity=0.9, seed=0, status="failed", error="boom",
                              accuracy=np.nan, dense_accuracy=np.nan, accuracy_drop=np.nan)])
    page = render_report(runs, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "No successful run yet" in page and "m&lt;1&gt;" in page
    assert "1 run(s) failed" in page


def test_render_report_rejects_bad_table(tmp_path):
    with pytest.raises(ValueError, match="status"):
        render_report(pd.DataFrame({"model": ["x"]}), tmp_path / "r.html")
    with pytest.raises(TypeError, match="DataFrame"):
        render_report([1, 2], tmp_path / "r.html")


def test_find_fit_dir(tmp_path):
    results = tmp_path / "study.sqlite"
    assert find_fit_dir(results, None) is None
    (tmp_path / "fit").mkdir()
    (tmp_path / "fit" / "comparison.csv").write_text("a\n")
    assert find_fit_dir(results, None) == tmp_path / "fit"
    (tmp_path / "study-fit").mkdir()
    (tmp_path / "study-fit" / "comparison.csv").write_text("a\n")
    assert find_fit_dir(results, None) == tmp_path / "study-fit"  # the study's own first
    assert find_fit_dir(results, tmp_path / "fit") == tmp_path / "fit"
    with pytest.raises(InputError, match="comparison.csv"):
        find_fit_dir(results, tmp_path / "missing")


def test_build_report_from_results_file(tmp_path):
    import sparsetopo.study.store as store
    from sparsetopo.report import build_report

    runs, predictions, importance, comparison = fake_study_tables()
    path = tmp_path / "study.sqlite"
    with store.ResultsStore(path) as db:
        for row in runs.to_dict("records"):
            features = {k: v for k, v in row.items() if k.startswith(("mge.", "density."))}
            config = {k: row[k] for k in ("model", "dataset", "method", "sparsity", "seed")}
            accuracy = None if np.isnan(row["accuracy"]) else float(row["accuracy"])
            resources = {"device": "cuda:0", "images_per_second": 4321.5,
                         "peak_accelerator_memory_mb": 612.0}
            db.write(store.RunRecord(row["run_id"], config, row["status"], row["error"],
                                     accuracy, features, resources=resources))
    fit = tmp_path / "study-fit"
    fit.mkdir()
    comparison.to_csv(fit / "comparison.csv", index=False)
    predictions.to_csv(fit / "predictions.csv", index=False)
    out = build_report(path, tmp_path / "report.html", progress=False)
    page = out.read_text(encoding="utf-8")
    assert f"Runs ({len(runs)})" in page and "Feature sets compared" in page
    assert "Predicted against measured" in page and "Feature importance" not in page
    assert str(fit) in page
    for shown in ("<th>device</th>", "<th>images_per_second</th>",
                  "<th>peak_accelerator_memory_mb</th>", "<td>cuda:0</td>", ">4322<"):
        assert shown in page  # where each run trained


def test_report_of_a_study_with_controls_shows_the_paired_effects(tmp_path):
    """``paired_effects.csv`` and ``paired_prediction.csv`` in the fit folder: a section says
    per method, control and sparsity whether the arrangement matters, and which set predicts
    the paired difference; the summary gives the verdicts against every baseline."""
    import sparsetopo.study.store as store
    from sparsetopo.report import build_report
    from sparsetopo.study import paired

    runs, predictions, importance, comparison = fake_study_tables()
    path = tmp_path / "study.sqlite"
    with store.ResultsStore(path) as db:
        for row in runs.head(3).to_dict("records"):
            config = {k: row[k] for k in ("model", "dataset", "method", "sparsity", "seed")}
            db.write(store.RunRecord(row["run_id"], config, "ok", None, 0.5))
    fit = tmp_path / "study-fit"
    fit.mkdir()
    for column in ("density", "effective_sparsity"):
        comparison[f"gain_over_{column}"] = 0.1
        comparison[f"gain_over_{column}_spread"] = 0.05
        comparison[f"gain_over_{column}_ci_low"] = 0.02
        comparison[f"gain_over_{column}_ci_high"] = 0.18
        comparison[f"beats_{column}"] = comparison["feature_set"] == "mge"
    comparison.to_csv(fit / "comparison.csv", index=False)
    effects = pd.DataFrame([
        ["conv6", "digits", "snip", "layer-shuffle", 0.98, 3, 0.12, 0.01, 0.1, 0.14,
         paired.METHOD_BETTER],
        ["conv6", "digits", "<grasp>", "fanin-shuffle", 0.995, 1, -0.2, np.nan, np.nan, np.nan,
         paired.TOO_FEW_SEEDS]], columns=paired.EFFECT_COLUMNS)
    effects.to_csv(fit / "paired_effects.csv", index=False)
    scores = pd.DataFrame([["paths", "grouped", "mean", "mean", 1, 9, 0.7, 0.2, 0.5, 0.9, 1.0,
                            True]], columns=paired.PREDICTION_COLUMNS)
    scores.to_csv(fit / "paired_prediction.csv", index=False)
    page = build_report(path, tmp_path / "report.html", progress=False).read_text()
    assert "Does the arrangement inside layers matter?" in page
    assert "method better" in page and "too few seeds" in page and "&lt;grasp&gt;" in page
    assert "Can topology predict the paired difference?" in page
    for label in ("global sparsity alone", "layer densities", "effective sparsity"):
        assert f"Does topology beat {label}?" in page
    assert "mge (+0.100 ± 0.050, 95% CI [+0.020, +0.180]) beat(s) layer densities" in page


# ----------------------------------------------------------------------------- browser
def _browser() -> None:
    try:
        ensure_chromium()
    except BrowserUnavailable as exc:
        pytest.skip(f"headless Chromium unavailable: {exc}")


@pytest.mark.slow
def test_report_in_headless_chromium(report, tmp_path):
    """The page loads with no console message (errors, CSP violations), every image decodes,
    and the screenshot shows a page (not one colour)."""
    _browser()
    page = report.read_text(encoding="utf-8")
    dom = dump_dom(report)
    assert dom.console == []
    body = re.search(r"<body[^>]*>", dom.stdout).group(0)
    assert 'data-images-ok="true"' in body
    assert f'data-images="{len(IMG_SRC.findall(page))}"' in body
    shot = screenshot(report, tmp_path / "shot.png", size=(1280, 2000))
    assert shot.console == []
    with Image.open(tmp_path / "shot.png") as im:
        assert im.size == (1280, 2000)
        rgb = np.asarray(im.convert("RGB"), dtype=float) / 255
    assert_not_blank(rgb)
    assert_not_blank(rgb[1000:])  # the plots, below the tables, are drawn too


@pytest.mark.slow
def test_browser_checks_can_fail(tmp_path):
    """Negative control: a broken image, a blocked remote image and a script error are seen."""
    _browser()
    from sparsetopo.report import CSP, SCRIPT

    page = tmp_path / "bad.html"
    page.write_text(
        f'<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" '
        f'content="{CSP}"></head><body><img src="data:image/png;base64,AAAA">'
        '<img src="https://example.invalid/x.png"><script>missingFunction();</script>'
        f"<script>{SCRIPT}</script></body></html>", encoding="utf-8")
    dom = dump_dom(page)
    assert 'data-images-ok="false"' in dom.stdout
    messages = " ".join(dom.console)
    assert "missingFunction" in messages and "Content Security Policy" in messages


def test_report_shows_the_separability_and_the_categories(tmp_path):
    """With ``separability.csv`` and runs of several categories: a section with the mean
    balanced accuracies and, per (model, dataset), the topometrics coloured by category."""
    from sparsetopo.study.separability import SEPARABILITY_COLUMNS

    runs, predictions, importance, comparison = fake_study_tables(models=("resnet20", "conv6"))
    runs["category"] = runs["method"].map({"dense": "dense", "uniform": "pai-data-free",
                                           "erk": "pai-data-free", "synflow": "pai-data-free",
                                           "snip": "pai-data"})
    rows = [["category", "seed", name, "mean", "mean", np.nan, 8, 96, 2.0, 3.0, 0.5, ba,
             ba - 0.5, ba - 0.5, ba - 0.6, 1.0, 0.75] for name, ba in (("sparsity", 0.5),
                                                                         ("<paths>", 0.93))]
    separability = pd.DataFrame(rows, columns=SEPARABILITY_COLUMNS)
    out = render_report(runs, tmp_path / "r.html", comparison=comparison,
                        predictions=predictions, separability=separability)
    page = out.read_text(encoding="utf-8")
    assert "Methods and categories: can topology tell them apart?" in page
    assert "&lt;paths&gt;" in page and ">0.93<" in page
    assert page.count("<figcaption>Path metrics and MGE topometrics of") == 2
    images = decode_images(page)
    assert len(images) == 1 + 2 * 2 + 1 + 2  # gains, runs plots, predictions, by category
    for rgb in images:
        assert_not_blank(rgb)
    # one category, no separability table: no section
    page = render_report(runs[runs["method"].isin(["dense", "uniform", "erk"])],
                         tmp_path / "s.html").read_text(encoding="utf-8")
    assert "Methods and categories" not in page


# ------------------------------------------------------------------ the answer, first
SETS = ("sparsity", "density", "effective_sparsity", "ramanujan", "rolled", "mge", "paths",
        "all")
#: Gain over every baseline and half-width of its interval, per set (the baselines' own rows
#: get their gains over the other baselines).
GAINS = {"sparsity": (-0.05, 0.08), "density": (0.02, 0.05), "effective_sparsity": (0.0, 0.1),
         "ramanujan": (0.01, 0.2), "rolled": (0.04, 0.02), "mge": (0.25, 0.1),
         "paths": (0.3, 0.05), "all": (0.12, 0.2)}
CATEGORY = {"uniform": "pai-data-free", "erk": "pai-data-free", "synflow": "pai-data-free",
            "snip": "pai-data", "grasp": "pai-data", "set": "dst", "rigl": "dst"}


def study_tables(methods=tuple(CATEGORY), sparsities=(0.5, 0.8, 0.9), seeds=(0, 1),
                 models=("conv6", "resnet20"), protocols=PROTOCOLS):
    """Runs, predictions (with folds) and a ``comparison.csv`` with every column ``study fit``
    writes (``COMPARISON_COLUMNS``), for a grid of ``methods x sparsities x seeds`` per model:
    the gains of :data:`GAINS`, intervals of their half-widths."""
    rng = np.random.default_rng(0)
    rows = []
    for model in models:
        for seed in seeds:
            rows.append(dict(model=model, dataset="digits", method="dense", category="dense",
                             sparsity=0.0, seed=seed, status="ok", error=None, accuracy=0.97))
            for method in methods:
                for sparsity in sparsities:
                    drop = 0.3 * sparsity ** 4 + rng.normal(0, 0.01)
                    rows.append(dict(model=model, dataset="digits", method=method,
                                     category=CATEGORY[method], sparsity=sparsity, seed=seed,
                                     status="ok", error=None, accuracy=0.97 - drop))
    runs = pd.DataFrame(rows)
    runs.insert(0, "run_id", [f"r{i:05d}-{'x' * 20}" for i in range(len(runs))])
    runs["dense_accuracy"] = 0.97
    runs["accuracy_drop"] = runs["dense_accuracy"] - runs["accuracy"]
    runs["mge.edges"] = 1e4 * (1 - runs["sparsity"])
    runs["density.conv1"] = 1 - runs["sparsity"]
    pruned = runs[runs["method"] != "dense"].reset_index(drop=True)
    predictions = []
    for protocol in protocols:
        fold = {"random": pruned.index % 5, "grouped": pruned["sparsity"].rank(method="dense"),
                "leave-one-method-out": pruned["method"],
                "leave-one-category-out": pruned["category"]}[protocol]
        for name in SETS:
            predictions.append(pruned[["run_id", "model", "dataset", "method", "sparsity",
                                       "seed"]].assign(
                feature_set=name, protocol=protocol, fold=np.asarray(fold),
                measured=pruned["accuracy_drop"],
                predicted=pruned["accuracy_drop"] + rng.normal(0, 0.01, len(pruned))))
    predictions = pd.concat(predictions, ignore_index=True)[PREDICTION_COLUMNS]
    table = []
    for protocol in protocols:
        for scope in ("mean", *models):
            for name in SETS:
                gain, half = GAINS[name]
                row = {c: 0.5 for c in COMPARISON_COLUMNS}
                row.update(feature_set=name, protocol=protocol, model=scope,
                           dataset="mean" if scope == "mean" else "digits",
                           pairs=len(models) if scope == "mean" else 1,
                           n=len(pruned) // (1 if scope == "mean" else len(models)),
                           r2=0.5 + gain)
                for b in BASELINES:
                    names = baseline_columns(b)
                    own = name == b
                    row.update({names["gain"]: 0.0 if own else gain,
                                names["spread"]: 0.0 if own else half / 2,
                                names["ci_low"]: 0.0 if own else gain - half,
                                names["ci_high"]: 0.0 if own else gain + half,
                                names["beats"]: not own and gain > half / 2})
                table.append(row)
    comparison = pd.DataFrame(table)[COMPARISON_COLUMNS]
    return runs, predictions, comparison


def answer_sentences(page: str) -> dict[str, str]:
    """The sentence of each protocol under the answer figure, by protocol."""
    block = page[page.index('<ul class="verdicts">'):]
    block = block[:block.index("</ul>")]
    items = [re.sub(r"<[^>]+>", "", li) for li in re.findall(r"<li>(.*?)</li>", block)]
    return {item.split(":", 1)[0]: item for item in items}


def test_report_leads_with_the_gains_and_a_sentence_per_protocol(tmp_path):
    """Right after the title: the forest plot, then one sentence per protocol (all four) with
    the sample it rests on and the sets whose interval lies above 0, read from comparison.csv;
    on 7 methods x 3 sparsities = 21 configurations per pair with 5, 3, 7 and 3 outer folds the
    sample is large enough."""
    runs, predictions, comparison = study_tables()
    page = render_report(runs, tmp_path / "r.html", comparison=comparison,
                         predictions=predictions, title="T").read_text(encoding="utf-8")
    assert re.search(r"<h1>T</h1>\s*<figure id=\"answer\"><img ", page)
    sentences = answer_sentences(page)
    assert list(sentences) == list(PROTOCOLS)
    folds = {"random": 5, "grouped": 3, "leave-one-method-out": 7, "leave-one-category-out": 3}
    for protocol, sentence in sentences.items():
        assert "84 runs of 42 configurations (method, sparsity) in 2 (model, dataset) pairs" \
            in sentence
        assert f"{folds[protocol]} outer folds per pair" in sentence
        assert "too small" not in sentence and "large enough" in sentence
        # above 0 over global sparsity: paths (+0.300, [0.25, 0.35]) first, then mge, rolled
        assert ("above 0 over global sparsity alone: paths +0.300 [+0.250, +0.350], mge "
                "+0.250 [+0.150, +0.350], rolled +0.040 [+0.020, +0.060];") in sentence
        assert "over layer densities: paths" in sentence  # density is not above 0 over itself
    # without predictions the configurations come from the runs; folds are not named
    page = render_report(runs, tmp_path / "s.html",
                         comparison=comparison).read_text(encoding="utf-8")
    sentence = answer_sentences(page)["grouped"]
    assert "42 configurations" in sentence and not re.search(r", \d+ outer folds", sentence)
    assert "the folds are counted in predictions.csv" in sentence


@pytest.mark.parametrize(("grid", "small"), [
    (dict(methods=("uniform", "snip", "synflow"), sparsities=(0.5, 0.9), models=("mlp",)),
     "6 configurations in a pair, fewer than 20"),
    (dict(methods=("uniform", "snip", "set"), sparsities=tuple(np.linspace(0.5, 0.95, 7)),
          models=("mlp",), protocols=("leave-one-method-out",)), None),
    (dict(methods=("uniform", "snip"), sparsities=tuple(np.linspace(0.5, 0.95, 10)),
          models=("mlp",), protocols=("leave-one-method-out",)),
     "2 outer folds, fewer than 3"),
])
def test_answer_says_when_the_sample_is_too_small(tmp_path, grid, small):
    """The smoke study (3 methods x 2 sparsities x 2 seeds = 12 runs) is too small to conclude
    whatever its intervals say; 21 configurations held out by 3 methods is not; 20
    configurations held out by 2 methods is (2 folds)."""
    runs, predictions, comparison = study_tables(**grid)
    page = render_report(runs, tmp_path / "r.html", comparison=comparison,
                         predictions=predictions).read_text(encoding="utf-8")
    for sentence in answer_sentences(page).values():
        if small is None:
            assert "too small" not in sentence and "large enough" in sentence
        else:
            assert "The sample is too small to conclude" in sentence and small in sentence
            assert "large enough" not in sentence
    # no interval at all: too small, whatever the sample
    no_ci = comparison.assign(**{baseline_columns(b)["ci_low"]: np.nan for b in BASELINES})
    page = render_report(runs, tmp_path / "s.html", comparison=no_ci,
                         predictions=predictions).read_text(encoding="utf-8")
    assert all("no 95% interval" in s for s in answer_sentences(page).values())


def test_long_tables_collapse_and_every_table_scrolls(tmp_path):
    """Every table sits in a sideways-scrolling container; the runs (more than 25 rows) and the
    long comparison table are collapsed under ``<details>``, short tables are not."""
    runs, predictions, comparison = study_tables()
    page = render_report(runs, tmp_path / "r.html", comparison=comparison,
                         predictions=predictions).read_text(encoding="utf-8")
    tables = page.count("<table>")
    assert tables >= 3 and page.count('<div class="scroll"><table>') == tables
    assert '.scroll{overflow-x:auto' in page
    runs_part = page[page.index('id="runs"'):]
    assert f'<details class="table"><summary>All {len(runs):,} runs</summary>' in runs_part
    ranking = page[page.index('id="ranking"'):page.index('id="runs"')]
    assert "<details" not in ranking  # 2 models x 3 sparsities: short, no <details>
    compared = page[page.index('id="comparison"'):]
    # the headline (32 mean rows) collapsible but open, the 64 rows per pair collapsed
    assert '<details class="table" open><summary>All 32 rows of the mean' in compared
    assert '<details class="table"><summary>All 64 rows per (model, dataset)' in compared


#: Sets body[data-wrapped] to the texts of the table cells (not ``td.wrap``) whose text
#: spans several lines once laid out.
WRAPPED_CELLS = """
window.addEventListener("load", function () {
  var cells = document.querySelectorAll("th, td:not(.wrap)");
  var wrapped = [];
  Array.prototype.forEach.call(cells, function (cell) {
    if (!cell.textContent.trim()) { return; }
    var range = document.createRange();
    range.selectNodeContents(cell);
    var tops = {};
    Array.prototype.forEach.call(range.getClientRects(), function (r) {
      if (r.width > 0) { tops[Math.round(r.top)] = true; }
    });
    if (Object.keys(tops).length > 1) { wrapped.push(cell.textContent.trim()); }
  });
  document.body.dataset.wrapped = wrapped.slice(0, 5).join(" | ");
});
"""


@pytest.mark.slow
@pytest.mark.parametrize("width", [1400, 800])
def test_report_fits_the_window_in_headless_chromium(tmp_path, width):
    """At 1,400 and 800 pixels the page of a realistic small study (2 pairs, 7 methods, 4
    protocols, 27-column comparison table, 86 runs) is no wider than the window, and the first
    thing under the title is the answer figure; the screenshot is kept under the test's
    temporary folder for a person to look at."""
    _browser()
    runs, predictions, comparison = study_tables()
    out = render_report(runs, tmp_path / "r.html", comparison=comparison,
                        predictions=predictions, title="Study report: digits.sqlite")
    probe = tmp_path / "probe.html"  # the report, plus a count of table cells that wrap
    probe.write_text(out.read_text(encoding="utf-8").replace(
        "</body>", f"<script>{WRAPPED_CELLS}</script></body>"), encoding="utf-8")
    dom = dump_dom(probe, size=(width, 900))
    assert dom.console == []
    body = re.search(r"<body[^>]*>", dom.stdout).group(0)
    assert f'data-inner-width="{width}"' in body
    assert 'data-overflow="0"' in body or re.search(r'data-overflow="-\d+"', body), body
    assert 'data-images-ok="true"' in body
    # no header nor cell (protocol names included) wraps onto several lines, but long texts
    assert 'data-wrapped=""' in body, body
    assert "leave-one-category-out" in dom.stdout
    assert re.search(r"<h1>[^<]*</h1>\s*<figure id=\"answer\"><img ", dom.stdout)
    shot = screenshot(out, tmp_path / f"report-{width}.png", size=(width, 1400))
    assert shot.console == []
    with Image.open(tmp_path / f"report-{width}.png") as im:
        assert im.size == (width, 1400)
        assert_not_blank(np.asarray(im.convert("RGB"), dtype=float)[:700] / 255)


@pytest.mark.slow
def test_overflow_check_can_fail(tmp_path):
    """Negative control: a table outside any scroll container, wider than the window, is seen
    as overflow."""
    _browser()
    from sparsetopo.report import SCRIPT

    page = tmp_path / "wide.html"
    cells = "".join(f"<td>column-{i}-{'x' * 12}</td>" for i in range(40))
    page.write_text(f"<!DOCTYPE html><html><body><table><tr>{cells}</tr></table>"
                    f"<script>{SCRIPT}</script></body></html>", encoding="utf-8")
    body = re.search(r"<body[^>]*>", dump_dom(page, size=(800, 600)).stdout).group(0)
    overflow = int(re.search(r'data-overflow="(-?\d+)"', body).group(1))
    assert overflow > 0
