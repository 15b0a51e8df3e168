"""The package's shape: data flows one way between its top-level units, and no public name hides
a module. Read from the source (every ``import``, at module level or inside a function)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import sparsetopo

PACKAGE = Path(sparsetopo.__file__).parent
#: Top-level units from the bottom of the flow to its top; a unit may import only units of a
#: lower rank (the foundation: up to training; the application: study and above).
RANKS = {
    "errors": 0,
    "io": 1, "_memory": 1, "_lazy": 1, "_torch_state": 1,
    "models": 2, "data": 2,
    "pruning": 3,
    "tracing": 4,
    "encoding": 5,
    "metrics": 6,
    "training": 7,
    "study": 8,
    "plot": 9,
    "analysis": 10, "report": 10,
    "comparison": 11,  # analyses each network as analysis does
    "cli": 12,
}  # fmt: skip
FOUNDATION = {u for u, r in RANKS.items() if r <= RANKS["training"]}


def _unit(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "sparsetopo" or len(parts) < 2:
        return None
    return None if parts[1] == "__main__" else parts[1]


def _module_name(path: Path, root: Path = PACKAGE) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, root: Path = PACKAGE) -> set[str]:
    """Absolute names of every sparsetopo module ``path`` imports (relative imports resolved),
    wherever the import statement stands."""
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)  # `from pkg import module`
    return {m for m in found if m.startswith("sparsetopo.")}


def unit_graph() -> dict[str, set[str]]:
    """``{unit: units it imports}`` over every source file of the package."""
    edges: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        source = _unit(_module_name(path))
        if source is None:
            continue
        for module in imports_of(path):
            target = _unit(module)
            if target and target != source and target in RANKS and source in RANKS:
                edges.setdefault(source, set()).add(target)
    return edges


def test_every_unit_has_a_rank():
    units = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert units - {"__main__"} == set(RANKS), "a new top-level unit needs a place in RANKS"


def test_imports_flow_one_way():
    wrong = sorted((src, dst) for src, dsts in unit_graph().items() for dst in dsts
                   if RANKS[dst] >= RANKS[src])
    assert not wrong, f"imports against the flow (unit -> unit it may not import): {wrong}"


def test_foundation_never_imports_the_application():
    wrong = sorted((src, dst) for src, dsts in unit_graph().items() if src in FOUNDATION
                   for dst in dsts if dst not in FOUNDATION)
    assert not wrong, wrong


def test_the_checker_sees_lazy_and_relative_imports(tmp_path):
    """The walker must find an import inside a function and resolve a relative one."""
    fake = tmp_path / "sparsetopo" / "encoding" / "fake.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("def f():\n    from ..study import fit\n    from . import graph\n"
                    "    import sparsetopo.cli\n")
    found = imports_of(fake, root=tmp_path / "sparsetopo")
    assert {"sparsetopo.study", "sparsetopo.study.fit", "sparsetopo.encoding.graph",
            "sparsetopo.cli"} <= found


def test_no_public_name_hides_a_module():
    """``import sparsetopo.x.y as m`` must give the module: no package exports a function (or
    anything but that module) under the name of one of its submodules."""
    hidden = []
    for info in pkgutil.walk_packages(sparsetopo.__path__, "sparsetopo."):
        if not info.ispkg:
            continue
        package = importlib.import_module(info.name)
        for sub in pkgutil.iter_modules(package.__path__):
            value = getattr(package, sub.name, None)
            if value is not None and not hasattr(value, "__path__") and \
                    getattr(value, "__name__", None) != f"{info.name}.{sub.name}":
                hidden.append(f"{info.name}.{sub.name}")
    assert not hidden, f"public names hiding their module: {hidden}"


#: Inside ``metrics/``: one algorithm (or family) per module. At the bottom the kernel and BLAS
#: helpers and ``GraphView`` (a cache of shared arrays, no algorithm); then the algorithms, each
#: with its own kernels; then what combines them (the registry and tables of ``_topometrics``,
#: the warm-up). A module may import only modules of a lower layer.
METRICS_LAYERS = {
    "_jit": 0, "_blas": 0, "_merged_pairs": 0,
    "_view": 1, "_lanczos": 1, "_pass_program": 1,
    "degree": 2, "neighbourhood": 2, "motifs": 2, "connectivity": 2, "paths": 2,
    "spectral": 2, "_ramanujan": 2, "_pass_runs": 2, "_packed": 2,
    "bottlenecks": 3, "network_paths": 3,
    "_topometrics": 4, "network_spectral": 4, "network_topology": 4,
    "_warmup": 5,
}  # fmt: skip


def test_metrics_modules_are_layered():
    folder = PACKAGE / "metrics"
    modules = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
    assert modules == set(METRICS_LAYERS), "a new metrics module needs a place in METRICS_LAYERS"
    wrong = []
    for name in modules:
        for target in imports_of(folder / f"{name}.py"):
            parts = target.split(".")
            if parts[:2] == ["sparsetopo", "metrics"] and len(parts) > 2 and \
                    parts[2] in METRICS_LAYERS and METRICS_LAYERS[parts[2]] >= METRICS_LAYERS[name] \
                    and parts[2] != name:
                wrong.append((name, parts[2]))
    assert not wrong, f"metrics modules importing a module of their own layer or above: {wrong}"
