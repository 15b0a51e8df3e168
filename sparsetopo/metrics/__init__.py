"""Graph metrics: topometrics of layered graphs (SPEC 4) and Ramanujan metrics (SPEC 5)."""

from .ramanujan import ramanujan, ramanujan_summary
from .topometrics import (
    METRIC_DESCRIPTIONS,
    METRICS,
    GraphView,
    layer_mean,
    layerwise,
    normalise_paper,
    topometrics,
    topometrics_table,
)

__all__ = [
    "METRICS",
    "METRIC_DESCRIPTIONS",
    "GraphView",
    "layer_mean",
    "layerwise",
    "normalise_paper",
    "ramanujan",
    "ramanujan_summary",
    "topometrics",
    "topometrics_table",
]
