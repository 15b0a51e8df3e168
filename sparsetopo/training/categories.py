"""The category of a sparse-training method: how it chooses its mask.

- ``pai-data-free``: pruning at initialization without data (``uniform``, ``er``, ``erk``,
  ``synflow``, ``magnitude``);
- ``pai-data``: pruning at initialization from the loss on training data (``snip``,
  ``grasp``, ``prospr``);
- ``dst``: dynamic sparse training, the mask changes while the network trains (``set``,
  ``rigl``, ``snfs``, ``dsr``, ``itop``).

A control of a method (``METHOD+layer-shuffle``, ``METHOD+fanin-shuffle``) has its method's
category.

References
----------
Cunegatti, Farina, Bucur, Iacca (2024). Understanding Sparse Neural Networks from their
Topology via Multipartite Graph Representations. TMLR.
"""

from __future__ import annotations

from sparsetopo import pruning
from sparsetopo.errors import InputError

from .dst import DST_METHODS

CATEGORIES = ("pai-data-free", "pai-data", "dst")
CONTROL_SEPARATOR = "+"


def methods_by_category() -> dict[str, tuple[str, ...]]:
    """``{category: methods}`` over every method of the toolkit, in :data:`CATEGORIES` order."""
    base = [m for m in pruning.METHODS if CONTROL_SEPARATOR not in m]
    return {
        "pai-data-free": tuple(m for m in base if m not in pruning.DATA_METHODS),
        "pai-data": tuple(m for m in base if m in pruning.DATA_METHODS),
        "dst": DST_METHODS,
    }


def category(method: str) -> str:
    """The category of ``method`` (module docstring); ``ValueError`` for an unknown method."""
    base = str(method).split(CONTROL_SEPARATOR, 1)[0]
    for name, methods in methods_by_category().items():
        if base in methods:
            return name
    known = [m for ms in methods_by_category().values() for m in ms]
    raise InputError(f"unknown method {method!r}: no category; methods: {', '.join(known)}")
