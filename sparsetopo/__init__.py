"""sparsetopo: topology of sparse neural networks through graph encodings.

``import sparsetopo as st`` gives ``st.models``, ``st.data``, ``st.pruning``, ``st.tracing``,
``st.encoding``, ``st.metrics``, ``st.training``, ``st.study``, ``st.plot``, ``st.analysis``,
``st.comparison`` and ``st.report`` (imported on first use, so that ``import sparsetopo`` stays
cheap).
"""

from sparsetopo._lazy import lazy_namespace as _lazy_namespace

__version__ = "0.1.0"

_SUBMODULES = ("models", "data", "pruning", "tracing", "encoding", "metrics", "training",
               "study", "plot", "report", "analysis", "comparison")

#: ``st.analyze(...)``: the ``analyze`` job as one call (:func:`sparsetopo.analysis.analyze`).
__getattr__, __dir__ = _lazy_namespace(__name__, {**dict.fromkeys(_SUBMODULES),
                                                 "analyze": "analysis"})
