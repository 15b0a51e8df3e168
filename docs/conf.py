"""Sphinx configuration of sparsetopo's reference docs (offline: no intersphinx, no downloads).

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` (the test suite runs
it, warnings as errors: ``tests/test_docs.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

project = "sparsetopo"
author = "the sparsetopo developers"
copyright = "2026, the sparsetopo developers"  # noqa: A001 (Sphinx's name)
release = version = "0.1.0"

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build"]
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

autodoc_typehints = "none"  # the numpydoc Parameters sections say the types
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

html_theme = "alabaster"
html_static_path: list[str] = []
html_theme_options = {"nosidebar": False, "page_width": "1100px"}
