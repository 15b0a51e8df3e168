"""A synthetic MGE table in the format of the tables published with Cunegatti et al. (2024)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from sparsetopo.study.published import MGE_COLUMNS, PAI_METHODS


def synthetic_mge_table(models=("CONV-6", "Resnet-20"), methods=(*PAI_METHODS, "rigl"),
                        sparsities=(0.8, 0.9, 0.98), seeds=(0, 1), seed=0
                        ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(published-format MGE table, its raw SPEC 4 values): the accuracy follows the spectral
    gap; values normalised as the released table stores them."""
    rng = np.random.default_rng(seed)
    rows, raw = [], []
    for model, method, sparsity, s in itertools.product(models, methods, sparsities, seeds):
        nodes = 20000.0 + 1000 * models.index(model)
        edges = float(int(nodes * (1 - sparsity) * 50 * rng.uniform(0.9, 1.1)))
        gap = rng.uniform(1, 60)
        values = {
            "nodes": nodes, "edges": edges, "sink_nodes": float(rng.integers(0, 300)),
            "source_nodes": float(rng.integers(0, 300)),
            "disconnected_nodes": float(rng.integers(0, 50)),
            "removable_out_edges": float(rng.integers(0, 900)),
            "removable_in_edges": float(rng.integers(0, 900)), "one_hop": 1 + edges / nodes,
            "two_hop": 1 + edges / nodes * rng.uniform(1, 3), "motifs": rng.uniform(1e3, 1e5),
            "strength": rng.uniform(1, 30), "k_core": rng.uniform(1, 20),
            "cut_edges": float(rng.integers(0, 100)), "cut_nodes": float(rng.integers(0, 100)),
            "connected_components": float(rng.integers(1, 20)), "spectral_gap": gap,
            "spectral_radius": rng.uniform(100, 2000),
        }
        values["mean_component_size"] = nodes / values["connected_components"]
        row = {"accuracy": 0.3 + 0.01 * gap + 0.002 * rng.normal(), "pruning": method,
               "sparsity": sparsity, "model": model, "dataset": "CIFAR-10", "seed": s}
        for column, (key, divisor) in MGE_COLUMNS.items():
            row[column] = values[key] / (values[divisor] if divisor else 1.0)
        rows.append(row)
        raw.append({"model": model, "method": method, "sparsity": sparsity, "seed": s,
                    **{f"mge.{k}": v for k, v in values.items()}})
    return pd.DataFrame(rows), pd.DataFrame(raw)
