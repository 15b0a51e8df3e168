"""Feature sets of the study (SPEC section 6): which columns of a runs table each set uses.

A runs table carries one column per feature, named ``<prefix>.<key>``:

- ``density.<layer>`` (present / total weights of each conv/linear layer) and ``density.global``;
- ``ramanujan.<key>``: layer means of the SPEC 5 Ramanujan metrics;
- ``rolled.<key>`` and ``rolled_channel.<key>``: layer means of the SPEC 4 topometrics of the
  rolled and rolled-channel BGEs;
- ``mge.<key>``: SPEC 4 topometrics of the multipartite graph encoding.

A feature set is the tuple of prefixes whose columns it uses, and nothing else: no model or
dataset indicator and no ``sparsity`` column are added (the density set already carries the
density; the other sets must predict from their own topology alone).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "density": ("density.",),
    "ramanujan": ("ramanujan.",),
    "rolled": ("rolled.",),
    "rolled_channel": ("rolled_channel.",),
    "mge": ("mge.",),
    "mge+density": ("mge.", "density."),
}

FeatureSetsArg = Sequence[str] | Mapping[str, Sequence[str]] | None


def resolve_feature_sets(feature_sets: FeatureSetsArg = None) -> dict[str, tuple[str, ...]]:
    """Return ``{set name: column prefixes}``.

    ``None`` gives every set of :data:`FEATURE_SETS` (SPEC 6 order); a sequence of names picks
    some of them; a mapping defines custom sets (name -> prefixes, or exact column names, since a
    column name is a prefix of itself).
    """
    if feature_sets is None:
        return dict(FEATURE_SETS)
    if isinstance(feature_sets, str):
        feature_sets = [feature_sets]
    if isinstance(feature_sets, Mapping):
        resolved = {str(name): tuple(prefixes) for name, prefixes in feature_sets.items()}
        empty = [name for name, prefixes in resolved.items() if not prefixes]
        if empty:
            raise ValueError(f"feature set(s) {empty} list no column prefix")
    else:
        unknown = [name for name in feature_sets if name not in FEATURE_SETS]
        if unknown:
            raise ValueError(
                f"unknown feature set(s) {unknown}; supported: {', '.join(FEATURE_SETS)}"
            )
        resolved = {name: FEATURE_SETS[name] for name in dict.fromkeys(feature_sets)}
    if not resolved:
        raise ValueError(f"no feature set given; supported: {', '.join(FEATURE_SETS)}")
    return resolved


def feature_columns(columns: Iterable[str], prefixes: Sequence[str]) -> list[str]:
    """Columns that start with one of ``prefixes``, sorted by name (a stable feature order)."""
    return sorted(c for c in columns if any(str(c).startswith(p) for p in prefixes))
