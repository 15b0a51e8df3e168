"""The reference docs: the Sphinx build passes with warnings as errors (offline), every public
function and class of the API has a numpydoc docstring, and no docstring points to a
specification outside the repository."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
from numpydoc.docscrape import ClassDoc, FunctionDoc

ROOT = Path(__file__).resolve().parents[1]
#: The public packages and modules, as the API reference (docs/api.md) documents them.
API = ("models", "data", "pruning", "tracing", "encoding", "metrics", "training", "study",
       "plot", "analysis", "comparison", "report")
#: Units whose functions compute something defined in the literature: their docstrings cite it.
CITING = ("pruning", "encoding", "metrics")
#: Names elsewhere that compute something defined in the literature: they cite it too.
CITING_NAMES = ("sparsetopo.training.DSTConfig", "sparsetopo.training.DynamicSparsity",
                "sparsetopo.training.TrainConfig", "sparsetopo.training.category",
                "sparsetopo.training.mask_topology", "sparsetopo.study.run_study")


def public_objects(missing_all: list[str] | None = None):
    """``(qualified name, unit, object)`` of every public function and class: the names in each
    unit's ``__all__``. A unit without ``__all__`` is appended to ``missing_all`` (and skipped),
    so that one such unit does not hide the problems of the others."""
    found = []
    for unit in API:
        module = importlib.import_module(f"sparsetopo.{unit}")
        names = getattr(module, "__all__", None)
        if names is None:
            assert missing_all is not None, f"sparsetopo.{unit} has no __all__ (its public API)"
            missing_all.append(f"sparsetopo.{unit}: no __all__ (its public API)")
            continue
        for name in names:
            obj = getattr(module, name)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                if inspect.isclass(obj) and issubclass(obj, BaseException):
                    continue  # errors: documented in sparsetopo.errors
                found.append((f"sparsetopo.{unit}.{name}", unit, obj))
    return found


def _problems(qualname: str, unit: str, obj) -> list[str]:
    doc = inspect.getdoc(obj)
    if not doc:
        return [f"{qualname}: no docstring"]
    parsed = ClassDoc(obj, config={"show_class_members": False}) if inspect.isclass(obj) \
        else FunctionDoc(obj)
    problems = []
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        signature = None
    if signature is not None and not (inspect.isclass(obj) and obj.__init__ is object.__init__):
        wanted = [p.name for p in signature.parameters.values()
                  if p.name not in ("self", "cls") and p.kind not in (p.VAR_POSITIONAL,
                                                                       p.VAR_KEYWORD)]
        documented = {n.strip() for item in parsed["Parameters"] for n in item.name.split(",")}
        if inspect.isclass(obj) and not wanted:
            pass
        elif missing := [n for n in wanted if n not in documented]:
            problems.append(f"{qualname}: Parameters lacks {missing}")
    if inspect.isfunction(obj):
        returns = inspect.signature(obj).return_annotation
        yields = inspect.isgeneratorfunction(obj)
        if returns not in (None, "None", inspect.Signature.empty) and not yields \
                and not parsed["Returns"]:
            problems.append(f"{qualname}: no Returns section")
    if (unit in CITING or qualname in CITING_NAMES) and not parsed["References"]:
        problems.append(f"{qualname}: no References section")
    return problems


def test_every_public_function_and_class_has_a_numpydoc_docstring():
    problems: list[str] = []  # units without __all__ first, then every docstring's gaps
    found = public_objects(missing_all=problems)
    problems += [p for q, u, obj in found for p in _problems(q, u, obj)]
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)


def test_no_docstring_points_to_a_specification_outside_the_repository():
    pattern = re.compile(r"\bSPEC\b")
    hits = [f"{path.relative_to(ROOT)}:{i}" for path in (ROOT / "sparsetopo").rglob("*.py")
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if pattern.search(line)]
    assert not hits, f"'SPEC' still named at {hits} (the definitions live in docs/)"


@pytest.mark.slow
def test_docs_build_with_warnings_as_errors(tmp_path):
    done = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b",
                           "html", str(ROOT / "docs"), str(tmp_path / "html")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-5000:]
    assert (tmp_path / "html" / "api.html").is_file()
