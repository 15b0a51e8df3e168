"""Shared by the plots: atomic PNG writing, one colour per pruning method, column checks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from sparsetopo.errors import InputError
from sparsetopo.io import atomic_path

if TYPE_CHECKING:  # the MGE picture imports this module and needs neither
    import pandas as pd
    from matplotlib.figure import Figure

# Fixed order so a method has the same colour in every plot of every report.
KNOWN_METHODS = ("dense", "uniform", "er", "erk", "snip", "grasp", "synflow", "prospr",
                 "magnitude")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")
DST_MARKERS = ("h", "p", "H", "8", "d")


def method_styles(methods) -> dict[str, dict]:
    """``{method: {"color", "marker"}}``: known methods keep a fixed colour (tab10; the dynamic
    sparse training methods their own, from Dark2, with filled markers of their own), others
    follow in sorted order."""
    from matplotlib import colormaps

    from sparsetopo.training import DST_METHODS

    known = (*KNOWN_METHODS, *DST_METHODS)
    names = [m for m in known if m in set(methods)]
    names += sorted(set(map(str, methods)) - set(known))
    palette = colormaps["tab10"].colors
    slot = {m: i for i, m in enumerate(KNOWN_METHODS)}
    extra = len(KNOWN_METHODS)
    styles = {}
    for name in names:
        if name == "dense":
            styles[name] = {"color": "black", "marker": "*"}
            continue
        if name in DST_METHODS:
            i = DST_METHODS.index(name)
            styles[name] = {"color": colormaps["Dark2"].colors[i % 8],
                            "marker": DST_MARKERS[i % len(DST_MARKERS)]}
            continue
        i = slot.get(name)
        if i is None:
            i, extra = extra, extra + 1
        styles[name] = {"color": palette[i % len(palette)], "marker": MARKERS[i % len(MARKERS)]}
    return styles


def require_columns(df: pd.DataFrame, columns, what: str) -> None:
    """Raise ``InputError`` naming the missing columns of ``df`` (``TypeError`` when it is not a
    DataFrame)."""
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"{what} lacks columns {missing}; it has {list(df.columns)}")


def save_rgb_png(image: Image.Image, path: str | os.PathLike) -> Path:
    """The RGB Pillow ``image`` as PNG at ``path``, atomically (zlib level 3: a third of the
    default's time for 4% larger files)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        image.save(fh, format="png", compress_level=3)
    return Path(path)


def save_png(fig: Figure, path: str | os.PathLike, dpi: int) -> Path:
    """``fig.savefig(path)`` as PNG, atomically (temporary file in the same folder, then
    ``os.replace``)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        # zlib level 3: a third of the default's time for 4% larger files
        fig.savefig(fh, format="png", dpi=dpi, pil_kwargs={"compress_level": 3})
    return Path(path)
