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
    # accuracy + topometrics per (model, dataset) pair, predictions, SHAP
    assert len(images) == 2 * 2 + 2
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
    assert len(images) == 2 * 2 + 1 + 2  # runs plots, predictions, one per pair by category
    for rgb in images:
        assert_not_blank(rgb)
    # one category, no separability table: no section
    page = render_report(runs[runs["method"].isin(["dense", "uniform", "erk"])],
                         tmp_path / "s.html").read_text(encoding="utf-8")
    assert "Methods and categories" not in page
