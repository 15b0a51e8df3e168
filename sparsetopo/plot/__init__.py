"""Pictures: the MGE of a network (``mge``) and the plots of a study (``metric_vs_sparsity``,
``predicted_vs_measured``, ``shap_summary``)."""

from sparsetopo.plot._mge import mge
from sparsetopo.plot.metrics import metric_vs_sparsity, predicted_vs_measured, shap_summary

__all__ = ["mge", "metric_vs_sparsity", "predicted_vs_measured", "shap_summary"]
