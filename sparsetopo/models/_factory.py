"""The user's own model: ``PATH.py:FACTORY`` or ``package.module:FACTORY``, built by calling
``FACTORY()``. The file is the user's own code and runs as such (like ``python PATH.py``)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from torch import nn

from sparsetopo.errors import ModelSpecError


def is_factory(spec: str) -> bool:
    """Whether ``spec`` names a factory (``where:name``) rather than a zoo model.

    Parameters
    ----------
    spec : str
        A model name as the user gave it.

    Returns
    -------
    bool
        True when ``spec`` contains a colon (``PATH.py:FACTORY`` or
        ``package.module:FACTORY``).
    """
    return ":" in str(spec)


def _module(where: str):
    if where.endswith(".py") or "/" in where or "\\" in where:
        path = Path(where).expanduser()
        if not path.is_file():
            raise ModelSpecError(f"model file not found: {path}")
        name = f"sparsetopo_user_model_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ModelSpecError(f"{path} cannot be imported as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)  # the user's own code
        return module
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as exc:
        raise ModelSpecError(f"no module {where!r} ({exc}); give PATH.py:FACTORY or "
                             "package.module:FACTORY") from None


def from_factory(spec: str) -> nn.Module:
    """Build the user's own network: call ``FACTORY()`` of ``PATH.py:FACTORY`` or
    ``package.module:FACTORY``.

    A file path is imported as a module of its own and runs as the user's code (like
    ``python PATH.py``); a dotted name is imported from ``sys.path``.

    Parameters
    ----------
    spec : str
        ``PATH.py:FACTORY`` or ``package.module:FACTORY``; the factory takes no argument.

    Returns
    -------
    torch.nn.Module
        What the factory returned.

    Raises
    ------
    ModelSpecError
        The file or module is missing or cannot be imported, it has no such factory, the
        factory is not callable, or it does not return a ``torch.nn.Module``.
    """
    where, _, name = str(spec).rpartition(":")
    if not where or not name:
        raise ModelSpecError(f"--model {spec!r}: expected a zoo name or PATH.py:FACTORY / "
                             "package.module:FACTORY")
    module = _module(where)
    factory = getattr(module, name, None)
    if factory is None:
        available = sorted(n for n, v in vars(module).items() if callable(v)
                           and not n.startswith("_"))
        raise ModelSpecError(f"{where} has no factory {name!r}; callables there: "
                             f"{', '.join(available) or 'none'}")
    if not callable(factory):
        raise ModelSpecError(f"{where}:{name} is not callable")
    model = factory()
    if not isinstance(model, nn.Module):
        raise ModelSpecError(f"{where}:{name}() returned {type(model).__name__}, not a "
                             "torch.nn.Module")
    return model
