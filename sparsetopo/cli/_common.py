"""What every command shares: consoles and the one-line error rule.

Bad input (any :class:`sparsetopo.errors.InputError`, and the standard errors bad input
raises: ``ValueError``, a missing file, an unusable path, a SQLite file that is not one) ends
with ``error: <one line>`` on stderr and exit code 2, no traceback. A study that cannot go on
(:class:`sparsetopo.errors.StudyError`) is one line and exit code 1; anything else is a bug and
keeps its traceback (exit code 1).
"""

from __future__ import annotations

import functools
import sqlite3

import typer
from rich.console import Console

from sparsetopo.errors import StudyError

out_console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

BAD_INPUT: tuple[type[BaseException], ...] = (
    ValueError, KeyError, MemoryError, FileNotFoundError, IsADirectoryError, NotADirectoryError,
    PermissionError, FileExistsError, sqlite3.Error, ConnectionError,
)


def one_line(exc: BaseException) -> str:
    msg = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(msg.strip().split("\n")[0].split()) or type(exc).__name__


def fail(exc: BaseException, code: int) -> None:
    err_console.print(f"error: {one_line(exc)}", markup=False)
    raise typer.Exit(code)


def one_line_errors(func):
    """Decorate a command with the module docstring's rule."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except StudyError as exc:
            fail(exc, 1)
        except BAD_INPUT as exc:
            fail(exc, 2)

    return wrapper
