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

#: The categories, in the order the paper compares them.
CATEGORIES = ("pai-data-free", "pai-data", "dst")
CONTROL_SEPARATOR = "+"


def methods_by_category() -> dict[str, tuple[str, ...]]:
    """Every method of the toolkit by category.

    Returns
    -------
    dict of str to tuple of str
        ``{category: methods}`` in :data:`CATEGORIES` order: ``pai-data-free`` (pruning at
        initialization without data), ``pai-data`` (from the loss on training data), ``dst``
        (dynamic sparse training). Controls are not listed.
    """
    base = [m for m in pruning.METHODS if CONTROL_SEPARATOR not in m]
    return {
        "pai-data-free": tuple(m for m in base if m not in pruning.DATA_METHODS),
        "pai-data": tuple(m for m in base if m in pruning.DATA_METHODS),
        "dst": DST_METHODS,
    }


def category(method: str) -> str:
    """The category of a sparse-training method: how it chooses its mask.

    ``pai-data-free``: pruning at initialization without data (``uniform``, ``er``, ``erk``,
    ``synflow``, ``magnitude``); ``pai-data``: pruning at initialization from the loss on
    training data (``snip``, ``grasp``, ``prospr``); ``dst``: dynamic sparse training, the mask
    changes while the network trains (``set``, ``rigl``, ``snfs``, ``dsr``, ``itop``). A
    control ``METHOD+CONTROL`` has its method's category.

    Parameters
    ----------
    method : str
        A method name, or ``METHOD+CONTROL``.

    Returns
    -------
    str
        One of :data:`CATEGORIES`.

    Raises
    ------
    InputError
        An unknown method.

    References
    ----------
    Cunegatti, E., Farina, L. L., Bucur, D., Iacca, G. (2024). Understanding Sparse Neural
    Networks from their Topology via Multipartite Graph Representations. *Transactions on
    Machine Learning Research*.
    """
    base = str(method).split(CONTROL_SEPARATOR, 1)[0]
    for name, methods in methods_by_category().items():
        if base in methods:
            return name
    known = [m for ms in methods_by_category().values() for m in ms]
    raise InputError(f"unknown method {method!r}: no category; methods: {', '.join(known)}")
