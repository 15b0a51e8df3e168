"""Package namespaces whose public names are imported on first use (PEP 562).

Why: every command line imports ``study`` (for its option help) and ``analyze`` imports
``plot`` for its picture, while the names that need pandas (the study's store and runner, the
study plots) serve other commands; importing pandas is half a second of each ``analyze``
(BENCHMARKS.md).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def lazy_namespace(package: str,
                   exports: Mapping[str, str | None]) -> tuple[Callable, Callable]:
    """``(__getattr__, __dir__)`` for the module ``package``'s namespace: ``exports`` maps each
    public name to the submodule of ``package`` that defines it (``None``: the name is that
    submodule itself), imported when the name is first read.

    Parameters
    ----------
    package : str
        The package's module name (``sparsetopo.plot``).
    exports : mapping of str to str or None
        ``{public name: submodule that defines it}``; ``None`` when the name is a submodule.

    Returns
    -------
    (callable, callable)
        The package's module-level ``__getattr__`` and ``__dir__`` (PEP 562); a name read once
        is then set on the package, so later reads are plain lookups.
    """

    def getattr_(name: str):
        if name in exports:
            if exports[name] is None:
                value = importlib.import_module(f"{package}.{name}")
            else:
                value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
            setattr(sys.modules[package], name, value)  # the next read is a plain lookup
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def dir_() -> list[str]:
        return sorted({*vars(sys.modules[package]), *exports})

    return getattr_, dir_
