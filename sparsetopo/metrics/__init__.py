"""Graph metrics: the topometrics of layered graphs, where their input->output paths narrow or
stop, and the Ramanujan metrics of each layer (definitions: ``docs/metrics.md``).

One algorithm (or family) per module: ``degree``, ``neighbourhood``, ``motifs``,
``connectivity``, ``spectral``, ``paths``, ``bottlenecks``; ``topometrics`` evaluates them all
on one ``GraphView``. Without the materialised MGE: ``network_paths`` and
``network_spectral`` by passes of the network, ``network_topology`` on its packed undirected
graph.
"""

from ._ramanujan import ramanujan, ramanujan_summary
from ._topometrics import (
    METRIC_DESCRIPTIONS,
    METRICS,
    PAPER_METRICS,
    PATH_METRICS,
    estimate_topometrics,
    layer_mean,
    layerwise,
    normalise_paper,
    path_profile,
    topometrics,
    topometrics_table,
)
from ._view import GraphView
from .bottlenecks import (
    alive_channels,
    alive_nodes,
    channel_bottlenecks,
    path_bottlenecks,
    signal_cut,
)
from .network_paths import (
    NETWORK_PATH_METRICS,
    NetworkAlive,
    PassEstimate,
    estimate_network_paths,
    network_alive,
    network_degrees,
    network_path_metrics,
)
from .network_spectral import estimate_network_spectra, network_spectra
from .network_topology import (
    NETWORK_TOPOLOGY_METRICS,
    TopologyEstimate,
    estimate_network_topology,
    network_topology_metrics,
)

__all__ = [
    "alive_channels",
    "alive_nodes",
    "channel_bottlenecks",
    "path_bottlenecks",
    "signal_cut",
    "METRICS",
    "METRIC_DESCRIPTIONS",
    "PAPER_METRICS",
    "PATH_METRICS",
    "GraphView",
    "estimate_topometrics",
    "layer_mean",
    "layerwise",
    "normalise_paper",
    "path_profile",
    "ramanujan",
    "ramanujan_summary",
    "topometrics",
    "topometrics_table",
    "NETWORK_PATH_METRICS",
    "PassEstimate",
    "estimate_network_paths",
    "network_path_metrics",
    "NetworkAlive",
    "network_alive",
    "estimate_network_spectra",
    "network_spectra",
    "network_degrees",
    "NETWORK_TOPOLOGY_METRICS",
    "TopologyEstimate",
    "estimate_network_topology",
    "network_topology_metrics",
]
