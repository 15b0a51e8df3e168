"""Every code block of the README and of docs/ runs as written, so that an example cannot rot.

Rules, in the order blocks appear (one temporary folder per document, so that a block can use
what an earlier one wrote, as a reader would):

- the README's first block holds the two commands (set up and run the main job; set up and run
  the tests): CI runs exactly those, so they are only checked to be the Makefile's targets;
- a ``bash`` block runs in ``bash -e`` in the folder, where ``.venv`` is this interpreter's
  environment and ``examples/`` the repository's; a ``python`` block runs with this
  interpreter there;
- a block whose first line is ``# needs: ...`` (a GPU, a cluster, data that is not embedded) or
  ``# takes: ...`` (longer than the test suite may take) is not run: every ``sparsetopo``
  command in it is parsed by the real command line (its subcommand and every option must exist
  and take the values given), every other command is checked to name existing files;
- ``text``/``console`` blocks show output and are not run.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([\w{}-]*)[^\n]*\n(.*?)^```", re.S | re.M)
RUN = ("bash", "python")
SHOWN = ("text", "console", "", "toml")  # and MyST directives, ```{toctree} ...
NOT_RUN = re.compile(r"^#\s*(needs|takes):", re.I)


def blocks(path: Path) -> list[tuple[int, str, str]]:
    """``(line, language, code)`` of every fenced block of ``path``."""
    text = path.read_text(encoding="utf-8")
    return [(text[: m.start()].count("\n") + 1, m.group(1), m.group(2))
            for m in FENCE.finditer(text)]


def commands(code: str) -> list[list[str]]:
    """The shell commands of a block: continuation lines joined, comments and blank lines
    dropped, each split like the shell splits it."""
    joined = re.sub(r"\\\n", " ", code)
    out = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            out.append(words)
    return out


def _parse_sparsetopo(args: list[str]) -> None:
    """Parse ``sparsetopo ARGS`` with the real command line, without running it."""
    import click
    import typer

    from sparsetopo import cli

    group = typer.main.get_command(cli.app)
    ctx = group.make_context("sparsetopo", list(args), resilient_parsing=False)
    while isinstance(ctx.command, click.Group) and ctx.protected_args:
        name, *rest = [*ctx.protected_args, *ctx.args]
        sub = ctx.command.get_command(ctx, name)
        assert sub is not None, f"no command {name!r}"
        ctx = sub.make_context(name, rest, parent=ctx, resilient_parsing=False)


def _check_not_run(code: str) -> None:
    for words in commands(code):
        program = words[0]
        if program.endswith("sparsetopo"):
            _parse_sparsetopo(words[1:])
        elif program == "make":
            targets = (ROOT / "Makefile").read_text()
            for target in words[1:]:
                assert re.search(rf"^{re.escape(target)}:", targets, re.M), target
        elif program.endswith("python") or program.endswith("bash"):
            script = next((w for w in words[1:] if not w.startswith("-")), None)
            assert script is None or (ROOT / script).exists(), f"{script} does not exist"


def _workdir(tmp: Path) -> Path:
    (tmp / ".venv").symlink_to(Path(sys.prefix))
    (tmp / "examples").symlink_to(ROOT / "examples")
    return tmp


def _run(language: str, code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SPARSETOPO_PROGRESS": "0", "COLUMNS": "100"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    argv = ["bash", "-e", "-c", code] if language == "bash" else [sys.executable, "-c", code]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900)


def test_the_readme_opens_with_the_two_commands():
    first = blocks(ROOT / "README.md")[0]
    assert [w for w in commands(first[2])] == [["make", "run"], ["make", "test"]]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_code_block_runs_as_written(document, tmp_path):
    cwd = _workdir(tmp_path)
    found = blocks(document)
    if document.name == "README.md":
        found = found[1:]  # the two commands: CI runs them
    for line, language, code in found:
        where = f"{document.name}:{line}"
        if language in SHOWN or language.startswith("{"):
            continue
        assert language in RUN, f"{where}: a ```{language} block is neither run nor shown"
        if NOT_RUN.match(code.lstrip()):
            _check_not_run(code)
            continue
        done = _run(language, code, cwd)
        assert done.returncode == 0, (f"{where} failed ({done.returncode}):\n{code}\n"
                                      f"--- stdout\n{done.stdout[-3000:]}\n"
                                      f"--- stderr\n{done.stderr[-3000:]}")
