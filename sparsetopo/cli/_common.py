"""What every command shares: consoles and the one-line error rule.

Bad input is a :class:`sparsetopo.errors.InputError` and nothing else: it ends with
``error: <one line>`` on stderr and exit code 2, no traceback. A study that cannot go on
(:class:`sparsetopo.errors.StudyError`) is one line and exit code 1. Anything else is a bug: its
traceback is printed and the exit code is 1 (a ``ValueError`` or ``KeyError`` from deep inside
the library is never mistaken for bad input).
"""

from __future__ import annotations

import functools

import typer
from rich.console import Console

from sparsetopo.errors import InputError, StudyError

out_console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).strip().split("\n")[0].split()) or type(exc).__name__


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
        except InputError as exc:
            fail(exc, 2)

    return wrapper
