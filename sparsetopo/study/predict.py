"""Predict the accuracy drop of a new mask before training, with the regressors a fit saved
(``study fit`` or ``study import-published``: ``<fit>/models/index.json``), and rank candidates.

A prediction is made only for a network like those a regressor saw: the same architecture and
dataset, an input size and an identity-skip option it was fitted with, a sparsity inside its
range. Anything else is named and refused (``extrapolate=True`` predicts anyway and flags it).
Its features are computed as the study computed them (:func:`sparsetopo.study.features.
network_features`), with ``sparsity`` the measured global sparsity of the mask.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sparsetopo.errors import FitError
from sparsetopo.study import predictor

#: A set whose regressor finds fewer of its features than this among the network's is not
#: used (e.g. the published tables name layers differently from this project's models).
MIN_FEATURE_COVERAGE = 0.5


@dataclass
class Fit:
    """The regressors of one fit folder."""

    folder: Path
    config: dict
    caveats: list[str]
    regressors: list[dict]

    @property
    def target(self) -> str:
        return self.config.get("target", "accuracy_drop")

    def for_network(self, model: str, dataset: str) -> list[dict]:
        """The regressors of (model, dataset), or of the pooled fit."""
        own = [r for r in self.regressors if r["model"] == model and r["dataset"] == dataset]
        return own or [r for r in self.regressors if r["model"] == "pooled"]

    def pairs(self) -> list[str]:
        return sorted({f"{r['model']}/{r['dataset']}" for r in self.regressors})


def load_fit(folder: str | os.PathLike) -> Fit:
    """Read ``folder/models/index.json``; :class:`FitError` when it is missing or not one."""
    folder = Path(folder)
    index = folder / "models" / "index.json"
    if not index.is_file():
        raise FitError(f"{folder} holds no saved regressors ({index} not found); give the "
                       "output folder of `sparsetopo study fit` or `study import-published`")
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FitError(f"{index} is not a regressor index ({exc})") from None
    if data.get("format") != "sparsetopo-regressors" or not data.get("regressors"):
        raise FitError(f"{index} is not a sparsetopo regressor index")
    return Fit(folder, data.get("config", {}), list(data.get("caveats", [])),
               list(data["regressors"]))


def outside(entry: dict, *, model: str, dataset: str, image_size: int | None,
            identity_skips: bool | None, sparsity: float) -> list[str]:
    """What puts a network outside what the regressor ``entry`` saw (empty: inside)."""
    problems = []
    if entry["model"] != "pooled" and model != entry["model"]:
        problems.append(f"architecture {model} (fitted on {entry['model']})")
    if model not in entry.get("models_seen", [model]):
        problems.append(f"architecture {model} (fitted on {', '.join(entry['models_seen'])})")
    if dataset not in entry.get("datasets_seen", [dataset]):
        problems.append(f"dataset {dataset} (fitted on {', '.join(entry['datasets_seen'])})")
    sizes = entry.get("image_sizes_seen") or []
    if image_size is not None and sizes and image_size not in sizes:
        problems.append(f"input size {image_size} (fitted on {', '.join(map(str, sizes))})")
    skips = entry.get("identity_skips_seen") or []
    if identity_skips is not None and skips and identity_skips not in skips:
        problems.append(f"identity_skips={identity_skips} (fitted with {skips})")
    lo, hi = entry["sparsity_range"]
    if not lo - 1e-9 <= sparsity <= hi + 1e-9:
        problems.append(f"sparsity {sparsity:.4g} (fitted on {lo:g} to {hi:g})")
    return list(dict.fromkeys(problems))


def predict_features(fit: Fit, features: dict[str, float], *, model: str, dataset: str,
                     image_size: int | None, identity_skips: bool | None = None,
                     extrapolate: bool = False) -> list[dict]:
    """One prediction per feature set of (model, dataset): ``feature_set``, the predicted
    target (``predicted_accuracy_drop``, or ``predicted_accuracy`` for a fit of the published
    accuracies), ``cv_mae`` / ``cv_r2`` of each protocol, ``features_found``, ``outside`` (what
    is outside the fit, with ``extrapolate``). ``features`` must hold ``sparsity``."""
    entries = fit.for_network(model, dataset)
    if not entries:
        raise FitError(f"{fit.folder} has no regressor for {model} on {dataset}; it has "
                       f"{', '.join(fit.pairs())}")
    sparsity = float(features["sparsity"])
    problems = outside(entries[0], model=model, dataset=dataset, image_size=image_size,
                       identity_skips=identity_skips, sparsity=sparsity)
    if problems and not extrapolate:
        raise FitError(f"the network is outside what the regressors saw: {'; '.join(problems)} "
                       "(use --extrapolate to predict anyway)")
    key = "predicted_accuracy_drop" if fit.target == "accuracy_drop" else f"predicted_{fit.target}"
    out = []
    for entry in entries:
        columns = entry["features"]
        row = {"feature_set": entry["feature_set"]}
        onehot = {c: float(c == f"arch.model={model}" or c == f"arch.dataset={dataset}")
                  for c in columns if c.startswith("arch.")}
        values = [onehot.get(c, features.get(c, math.nan)) for c in columns]
        found = sum(1 for c, v in zip(columns, values, strict=True)
                    if c in onehot or (v is not None and np.isfinite(v)))
        row["features_found"] = f"{found}/{len(columns)}"
        if found < MIN_FEATURE_COVERAGE * len(columns):
            row[key] = None
            row["note"] = ("its features are not this network's (e.g. other layer names): "
                           "not predicted")
        else:
            booster = predictor.load_model(fit.folder / "models" / entry["file"])
            x = np.array([values], dtype=np.float64)
            row[key] = float(predictor.predict(booster, x)[0])
        cv = entry.get("cv", {})
        for protocol in ("grouped", "leave-one-method-out", "random"):
            if protocol in cv:
                row[f"cv_mae_{protocol}"] = cv[protocol]["mae"]
                row[f"cv_r2_{protocol}"] = cv[protocol]["r2"]
        row["cv_mae"] = cv.get("grouped", {}).get("mae")
        if problems:
            row["outside"] = problems
        out.append(row)
    return out


def _settings(fit: Fit, model: str, dataset: str) -> dict:
    entries = fit.for_network(model, dataset)
    return dict(entries[0].get("run_settings", {})) if entries else {}


def prune_as_the_study(fit: Fit, model: str, dataset: str, method: str, sparsity: float,
                       seed: int, data_dir: str | None = None):
    """``(network, input shape)``: zoo ``model`` pruned with ``method`` exactly as the study
    pruned its runs (same image size, pruning data, batch size and training subset; the
    published tables' networks: 32x32, batch 128)."""
    from sparsetopo.study.config import DataSettings, MetricSettings, RunSpec
    from sparsetopo.study.runner import pruned_network
    from sparsetopo.training import TrainConfig

    settings = _settings(fit, model, dataset)
    training = TrainConfig.paper_defaults(model, dataset,
                                          batch_size=int(settings.get("batch_size", 128)))
    spec = RunSpec(model, dataset, method, float(sparsity), int(seed), training,
                   DataSettings(data_dir, int(settings.get("train_subset", 0) or 0),
                                int(settings.get("test_subset", 0) or 0),
                                int(settings.get("image_size", 0) or 0)),
                   MetricSettings(bool(settings.get("identity_skips", False))))
    return pruned_network(spec)


def network_features_for(fit: Fit, network, input_shape, *, model: str, dataset: str,
                         seed: int) -> dict[str, float]:
    """The features the study would have stored for ``network`` (its identity-skip option),
    with ``sparsity`` = the measured global sparsity and the ``effective_sparsity`` a fit
    derives."""
    from sparsetopo.pruning.masks import sparsity as measured
    from sparsetopo.study.feature_sets import effective_sparsity
    from sparsetopo.study.features import network_features

    skips = bool(_settings(fit, model, dataset).get("identity_skips", False))
    features = network_features(network, tuple(input_shape), seed=seed, identity_skips=skips)
    features["sparsity"] = measured(network)
    features["effective_sparsity"] = effective_sparsity(features["density.global"],
                                                        features["paths.effective_density"])
    return features


def identity_skips_of(fit: Fit, model: str, dataset: str) -> bool:
    return bool(_settings(fit, model, dataset).get("identity_skips", False))


def image_size_of(fit: Fit, model: str, dataset: str) -> int | None:
    size = _settings(fit, model, dataset).get("image_size")
    if size:
        return int(size)
    entries = fit.for_network(model, dataset)
    sizes = entries[0].get("image_sizes_seen") if entries else None
    return int(sizes[0]) if sizes else None
