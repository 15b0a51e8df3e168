"""Graph metrics: topometrics of layered graphs (SPEC 4), where their paths narrow or stop, and
Ramanujan metrics (SPEC 5)."""

from ._ramanujan import ramanujan, ramanujan_summary
from ._topometrics import (
    METRIC_DESCRIPTIONS,
    METRICS,
    PAPER_METRICS,
    PATH_METRICS,
    GraphView,
    layer_mean,
    layerwise,
    normalise_paper,
    topometrics,
    topometrics_table,
)
from .bottlenecks import alive_channels, alive_nodes, path_bottlenecks, signal_cut
from .network_paths import (
    NETWORK_PATH_METRICS,
    PassEstimate,
    estimate_network_paths,
    network_path_metrics,
)

__all__ = [
    "alive_channels",
    "alive_nodes",
    "path_bottlenecks",
    "signal_cut",
    "METRICS",
    "METRIC_DESCRIPTIONS",
    "PAPER_METRICS",
    "PATH_METRICS",
    "GraphView",
    "layer_mean",
    "layerwise",
    "normalise_paper",
    "ramanujan",
    "ramanujan_summary",
    "topometrics",
    "topometrics_table",
    "NETWORK_PATH_METRICS",
    "PassEstimate",
    "estimate_network_paths",
    "network_path_metrics",
]
