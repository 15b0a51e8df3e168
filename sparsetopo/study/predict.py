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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sparsetopo.errors import FitError, UsageError, WeightsError
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
            identity_skips: bool | None, sparsity: float,
            sparsity_tolerance: float = 1e-9) -> list[str]:
    """What puts a network outside what the regressor ``entry`` saw (empty: inside). The fit
    records the grid's nominal sparsities while a network's is measured, which differs by the
    rounding of the kept count: ``sparsity_tolerance`` (one weight's share of the network's,
    see :func:`predict_network`) is allowed on both ends of the range."""
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
    if not lo - sparsity_tolerance <= sparsity <= hi + sparsity_tolerance:
        problems.append(f"sparsity {sparsity:.4g} (fitted on {lo:g} to {hi:g})")
    return list(dict.fromkeys(problems))


def predict_features(fit: Fit, features: dict[str, float], *, model: str, dataset: str,
                     image_size: int | None, identity_skips: bool | None = None,
                     extrapolate: bool = False, sparsity_tolerance: float = 1e-9
                     ) -> list[dict]:
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
                       identity_skips=identity_skips, sparsity=sparsity,
                       sparsity_tolerance=sparsity_tolerance)
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


def candidate_network(fit: Fit, model: str, dataset: str, *, weights: str | os.PathLike | None,
                      method: str | None, sparsity: float | None, seed: int,
                      data_dir: str | None = None):
    """``(network, input shape, notes)`` of one candidate: the ``weights`` file loaded into ``model``
    (a zoo model or ``PATH.py:FACTORY``) built for the fit's input size, or zoo ``model``
    pruned with ``method`` at ``sparsity`` exactly as the study pruned its runs
    (:func:`prune_as_the_study`). ``notes``: what :func:`sparsetopo.pruning.load_weights` read
    beyond a plain state_dict. Weights that do not fit the fit's networks because they were
    pruned for another input size (``prune.json`` says) are refused with the fix."""
    from sparsetopo import data, models
    from sparsetopo.pruning.masks import PRUNE_RECORD, load_weights, prune_record

    if (weights is None) == (method is None):
        raise UsageError("give either --weights FILE or --pruning METHOD with --sparsity")
    info = data.dataset_info(dataset, image_size=image_size_of(fit, model, dataset) or 0)
    shape = tuple(int(v) for v in info.input_shape)
    if weights is not None:
        net = models.build(model, num_classes=info.num_classes, in_channels=info.in_channels,
                           image_size=shape[1], seed=seed)
        try:
            notes = load_weights(net, weights)
        except WeightsError as exc:
            made_for = tuple((prune_record(weights) or {}).get("input_shape") or ())
            if made_for and made_for != shape:
                raise WeightsError(
                    f"{exc}; {weights} was pruned for {'x'.join(map(str, made_for))} inputs "
                    f"({PRUNE_RECORD}) and the fit's networks take {'x'.join(map(str, shape))}:"
                    f" prune again with --input-size {shape[1]}") from None
            raise
        return net, shape, notes
    if sparsity is None:
        raise UsageError("--pruning needs --sparsity")
    if models.is_factory(model):
        raise UsageError("--pruning rebuilds a zoo model as the study pruned it; for your own "
                         "model give --weights")
    return (*prune_as_the_study(fit, model, dataset, method, sparsity, seed, data_dir), [])


def predict_network(fit: Fit, model: str, dataset: str, network, input_shape, *, seed: int,
                    extrapolate: bool = False, method: str | None = None
                    ) -> tuple[float, list[dict]]:
    """``(measured sparsity, one prediction per feature set)`` of ``network``: its features as
    the study computed them (:func:`network_features_for`), then :func:`predict_features`.
    With ``method`` (the candidate's pruning method), every row says whether the fit's
    regressors saw that method in training (``method_seen``): for a method they never saw, the
    error to expect is the leave-one-method-out one, not the grouped one."""
    from sparsetopo.pruning.masks import count_weights

    features = network_features_for(fit, network, input_shape, model=model, dataset=dataset,
                                    seed=seed)
    rows = predict_features(fit, features, model=model, dataset=dataset,
                            image_size=input_shape[1],
                            identity_skips=identity_skips_of(fit, model, dataset),
                            extrapolate=extrapolate,
                            sparsity_tolerance=1.0 / count_weights(network)[1])
    if method is not None:
        seen = set(fit.for_network(model, dataset)[0].get("methods_seen") or [])
        for row in rows:
            row["method_seen"] = method in seen if seen else None
    return features["sparsity"], rows


def unseen_method_note(method: str, rows: list[dict]) -> str | None:
    """One sentence when the regressors never saw ``method`` in training (``None`` when they
    did, or when the fit does not say)."""
    if not rows or rows[0].get("method_seen") is not False:
        return None
    return (f"{method} was never seen in training: expect the error of the leave-one-method-out "
            "protocol (CV MAE unseen method), not the grouped one")


def predicted_key(rows: list[dict]) -> str:
    """The name of the predicted value in ``rows`` (``predicted_accuracy_drop``, or
    ``predicted_<target>`` for a fit of another target)."""
    return next(k for k in rows[0] if k.startswith("predicted_"))


@dataclass
class Candidate:
    """One ranked candidate: its label, measured sparsity and predictions per feature set."""

    label: str
    sparsity: float
    predictions: list[dict]
    notes: list[str] = field(default_factory=list)

    def value(self, feature_set: str, key: str) -> float | None:
        """The prediction ``key`` of ``feature_set`` (None when that set did not predict)."""
        return next(r[key] for r in self.predictions if r["feature_set"] == feature_set)


@dataclass
class Ranking:
    """Candidates best first, by the predictions of the ``ranked_by`` feature set (lowest
    predicted drop first, or highest predicted accuracy); ``verdict``: that set's
    leave-one-method-out row of the fit's ``comparison.csv`` (``None`` when absent)."""

    ranked_by: str
    key: str
    lower_is_better: bool
    candidates: list[Candidate]
    verdict: dict | None


def ranking_set(rows: list[dict], chosen: str | None = None) -> str:
    """``chosen`` (checked against the fit's sets), else the set whose regressor has the best
    leave-one-method-out R^2 among those that predicted (the best for methods never seen)."""
    names = [r["feature_set"] for r in rows]
    if chosen is not None:
        if chosen not in names:
            raise UsageError(f"no regressor of set {chosen!r}; the fit has {', '.join(names)}")
        return chosen
    key = predicted_key(rows)
    scored = [(r.get("cv_r2_leave-one-method-out"), r["feature_set"]) for r in rows
              if r.get("cv_r2_leave-one-method-out") is not None and r[key] is not None]
    return max(scored)[1] if scored else names[0]


def unseen_method_verdict(fit: Fit, model: str, dataset: str, feature_set: str) -> dict | None:
    """The fit's leave-one-method-out comparison row of ``feature_set`` on (model, dataset):
    does it beat global sparsity for methods never seen in training (``beats_sparsity``,
    ``gain_over_sparsity``, ``gain_spread``, ``kendall_tau``, ``null_kendall_tau``)."""
    path = fit.folder / "comparison.csv"
    if not path.is_file():
        return None
    import pandas as pd

    table = pd.read_csv(path)
    row = table[(table["feature_set"] == feature_set)
                & (table["protocol"] == "leave-one-method-out")
                & (table["model"] == model) & (table["dataset"] == dataset)]
    return None if row.empty else row.iloc[0].to_dict()


def rank_candidates(fit: Fit, model: str, dataset: str, *, methods: list[str] | None = None,
                    weights: list[str | os.PathLike] | None = None,
                    sparsity: float | None = None, seed: int = 0, data_dir: str | None = None,
                    feature_set: str | None = None, extrapolate: bool = False) -> Ranking:
    """Predict the accuracy drop of candidate masks before training and rank them.

    Every candidate's features are computed as the study computed them
    (:func:`network_features_for`) and predicted by each feature set's regressor of
    (``model``, ``dataset``); the candidates are then ordered by one set's predictions.

    Parameters
    ----------
    fit : Fit
        The regressors of a fit (:func:`load_fit`).
    model : str
        Zoo model the fit knows.
    dataset : str
        Dataset the fit knows.
    methods : list of str, optional
        Candidate pruning methods, each applied to the same initialization at ``sparsity``.
    weights : list of str or path-like, optional
        Candidate weights files (instead of ``methods``).
    sparsity : float, optional
        Sparsity of the methods' masks.
    seed : int
        Seed of the initialization, the masks and the pruning data.
    data_dir : str, optional
        Folder holding the dataset.
    feature_set : str, optional
        The set whose predictions rank; default :func:`ranking_set` (the best
        leave-one-method-out R^2).
    extrapolate : bool
        Predict a candidate outside what a regressor saw (flagged) instead of refusing it.

    Returns
    -------
    Ranking
        The candidates best first (lowest predicted drop), with the ranking set's
        leave-one-method-out verdict.

    Raises
    ------
    UsageError
        Both or neither of ``methods`` and ``weights``, or an unknown feature set.
    FitError
        A network outside the fit (unless ``extrapolate``).
    """
    if bool(methods) == bool(weights):
        raise UsageError("give candidate methods (--pruning A B ...) or weights files "
                         "(--weights A.pt B.pt ...), one of the two")
    candidates = []
    for label in methods or weights:
        kw = ({"weights": None, "method": label, "sparsity": sparsity} if methods
              else {"weights": label, "method": None, "sparsity": None})
        network, shape, notes = candidate_network(fit, model, dataset, seed=seed,
                                                  data_dir=data_dir, **kw)
        measured, rows = predict_network(fit, model, dataset, network, shape, seed=seed,
                                         extrapolate=extrapolate,
                                         method=label if methods else None)
        candidates.append(Candidate(str(label), measured, rows, notes))
    key = predicted_key(candidates[0].predictions)
    name = ranking_set(candidates[0].predictions, feature_set)
    lower = key == "predicted_accuracy_drop"

    def score(c: Candidate) -> float:
        value = c.value(name, key)
        return (math.inf if value is None else value) * (1 if lower else -1)

    return Ranking(name, key, lower, sorted(candidates, key=score),
                   unseen_method_verdict(fit, model, dataset, name))
