"""Files out, and progress bars: a result file is either complete or absent, never half-written;
its permissions are what the user's umask gives any new file; an output location that cannot
be used is one clear error (:class:`sparsetopo.errors.OutputError`)."""

from __future__ import annotations

import contextlib
import errno
import math
import numbers
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sparsetopo.errors import OutputError

#: Set to 1 to show progress bars when stderr is not a terminal (0 hides them everywhere).
PROGRESS_ENV = "SPARSETOPO_PROGRESS"


def _reason(exc: OSError) -> str:
    if isinstance(exc, FileExistsError | NotADirectoryError) or exc.errno in (errno.EEXIST,
                                                                              errno.ENOTDIR):
        return "a file is in the way (not a folder)"
    if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.EROFS:
        return "read-only file system"
    return exc.strerror or type(exc).__name__


def ensure_dir(path: str | os.PathLike) -> Path:
    """Create the folder ``path`` (and its parents) if needed, and check it can be written to.

    Parameters
    ----------
    path : str or os.PathLike
        The folder.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    OutputError
        The folder cannot be created (a file in the way, no permission, a read-only file
        system) or written to; the message names the location and why.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder {path}: {_reason(exc)}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write into the output folder {path}: permission denied or "
                          "read-only file system")
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path in the target's folder that becomes ``path`` when the block succeeds.

    On success the temporary file replaces ``path`` atomically (``os.replace``), with the
    permissions a new file gets under the umask (0644 by default; a temporary file is 0600);
    on error it is removed and ``path`` is untouched. Readers never see a half-written file.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write; its folder is created if needed.

    Yields
    ------
    pathlib.Path
        The temporary path to write to.

    Raises
    ------
    OutputError
        The folder cannot be created or written to, or a folder is in the way of ``path``.
    """
    path = Path(path)
    ensure_dir(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix,
                                   dir=path.parent)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {_reason(exc)}") from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except IsADirectoryError:
        raise OutputError(f"cannot write {path}: a folder is in the way") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (:func:`atomic_path`), UTF-8 encoded.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    text : str
        Its content.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    OutputError
        As :func:`atomic_path`.
    """
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`atomic_path`).

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    data : bytes
        Its content.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    OutputError
        As :func:`atomic_path`.
    """
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def show_progress(requested: bool = True) -> bool:
    """Whether to draw progress bars: when ``requested`` and stderr is a terminal (a log file
    gets no carriage-return noise), unless ``SPARSETOPO_PROGRESS`` forces them on (1) or off
    (0).

    Parameters
    ----------
    requested : bool, default True
        Whether the caller asked for progress bars.

    Returns
    -------
    bool
        Whether to show them (``SPARSETOPO_PROGRESS=0`` hides them even when requested).
    """
    forced = os.environ.get(PROGRESS_ENV)
    if not requested or forced == "0":
        return False
    if forced == "1":
        return True
    stream = sys.stderr
    return bool(stream is not None and hasattr(stream, "isatty") and stream.isatty())


def json_value(value):
    """``value`` as plain JSON data: mappings as dicts, tuples and lists as lists, numpy and
    torch scalars as Python numbers, booleans as ``bool``, and NaN and infinities as ``None``
    (JSON has no non-finite numbers).

    Parameters
    ----------
    value : object
        A number, a mapping, a sequence or any nesting of them; other values pass unchanged.

    Returns
    -------
    object
        The same data, ready for ``json.dumps``.
    """
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy / torch scalar
        value = value.item()
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else None
    return value
