"""sparsetopo: topology of sparse neural networks through graph encodings.

``import sparsetopo as st`` gives ``st.models``, ``st.data``, ``st.pruning``, ``st.tracing``,
``st.encoding``, ``st.metrics``, ``st.training``, ``st.study``, ``st.plot`` (imported on first
use, so that ``import sparsetopo`` stays cheap).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("models", "data", "pruning", "tracing", "encoding", "metrics", "training",
               "study", "plot", "report", "analysis")


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'sparsetopo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_SUBMODULES])
