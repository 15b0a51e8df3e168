"""Pictures: the MGE of a network (``mge``), masks of one network side by side (``compare``),
the plots of a study (``metric_vs_sparsity``, ``metric_vs_sparsity_by_category``,
``predicted_vs_measured``, ``shap_summary``), the gains of the feature sets over the
baselines with their intervals (``gain_forest``) and
the topology of dynamic sparse training masks over training (``trajectory``), imported on first
use (``sparsetopo._lazy``: the study plots need pandas, the MGE picture does not)."""

from __future__ import annotations

from sparsetopo._lazy import lazy_namespace

_EXPORTS = {"mge": "_mge", "compare": "_compare", "trajectory": "_trajectory",
            "metric_vs_sparsity_by_category": "_categories", "gain_forest": "_gains", **dict.fromkeys(
    ("metric_vs_sparsity", "predicted_vs_measured", "shap_summary"), "metrics")}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_namespace(__name__, _EXPORTS)
