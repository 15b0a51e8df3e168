"""Pictures: the MGE of a network (``mge``) and the plots of a study (``metric_vs_sparsity``,
``predicted_vs_measured``, ``shap_summary``) with the ranking of pruning methods
(``ranking_table``)."""

from sparsetopo.plot.metrics import (
    metric_vs_sparsity,
    predicted_vs_measured,
    ranking_table,
    shap_summary,
)
from sparsetopo.plot.mge import mge

__all__ = ["mge", "metric_vs_sparsity", "predicted_vs_measured", "ranking_table", "shap_summary"]
