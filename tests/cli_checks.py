"""Checks shared by the command-line tests (in-process, through typer's ``CliRunner``)."""

from typer.testing import CliRunner

from sparsetopo import cli

runner = CliRunner()


def run(*args):
    """``sparsetopo ARGS...`` in this process; every argument converted with ``str``."""
    return runner.invoke(cli.app, [str(a) for a in args])


def one_line_error(result, *needles, stream: str = "output"):
    """The command exited 2 with exactly one line ``error: ...`` on ``stream`` (``output`` or
    ``stderr``) containing every needle, and no traceback."""
    text = getattr(result, stream)
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), text
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
