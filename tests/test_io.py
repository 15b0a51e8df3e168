"""Output files: atomic, readable as the umask allows, one clear error for an output location
that cannot be used; progress bars only on a terminal."""

from __future__ import annotations

import errno
import io
import os
import stat
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sparsetopo import cli
from sparsetopo.errors import OutputError
from sparsetopo.io import PROGRESS_ENV, atomic_path, ensure_dir, show_progress, write_text


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_files_get_the_umask_permissions(tmp_path, umask_022):
    path = write_text(tmp_path / "a.txt", "x")
    assert mode(path) == 0o644
    with atomic_path(tmp_path / "b.bin") as tmp:
        assert mode(tmp) == 0o600  # the temporary file is private while it is written
        tmp.write_bytes(b"y")
    assert mode(tmp_path / "b.bin") == 0o644
    os.umask(0o077)
    assert mode(write_text(tmp_path / "c.txt", "z")) == 0o600


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "x.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_a_file_in_the_way(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="file is in the way"):
        ensure_dir(tmp_path / "file" / "sub")
    with pytest.raises(OutputError, match="cannot create the output folder /dev/null/x"):
        write_text("/dev/null/x/out.txt", "x")


@pytest.mark.parametrize(("error", "reason"), [
    (PermissionError(errno.EACCES, "Permission denied"), "permission denied"),
    (OSError(errno.EROFS, "Read-only file system"), "read-only file system"),
])  # fmt: skip
def test_no_permission_and_read_only(tmp_path, monkeypatch, error, reason):
    """Simulated: the suite may run as root, for whom permission bits do not apply."""

    def refuse(self, *args, **kwargs):
        raise error

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(OutputError, match=reason):
        ensure_dir(tmp_path / "new")
    monkeypatch.undo()
    monkeypatch.setattr(os, "access", lambda *a: False)  # an existing folder we cannot write
    with pytest.raises(OutputError, match="cannot write into the output folder"):
        ensure_dir(tmp_path)


def test_progress_only_on_a_terminal(monkeypatch):
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not show_progress(True)
    monkeypatch.setenv(PROGRESS_ENV, "1")
    assert show_progress(True) and not show_progress(False)

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    monkeypatch.delenv(PROGRESS_ENV)
    assert show_progress(True)
    monkeypatch.setenv(PROGRESS_ENV, "0")
    assert not show_progress(True)


def test_no_carriage_returns_in_a_log(tmp_path):
    """A command whose stderr is a file (CliRunner: not a terminal) draws no progress bar."""
    r = CliRunner().invoke(cli.app, ["analyze", "--model", "mlp", "--pruning", "uniform",
                                     "--sparsity", "0.5", "--no-picture", "--out",
                                     str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "\r" not in r.stderr


@pytest.mark.parametrize("args", [
    ["analyze", "--model", "mlp", "--pruning", "uniform", "--out", "/dev/null/x"],
    ["prune", "--model", "mlp", "--pruning", "uniform", "--out", "/dev/null/x"],
    ["draw", "--model", "mlp", "--pruning", "uniform", "--out", "/dev/null/x/mge.png"],
    ["study", "run", "--preset", "smoke", "--results", "/dev/null/x/smoke.sqlite"],
    ["study", "import-published", "tests/data/published", "--out", "/dev/null/x"],
])  # fmt: skip
def test_every_command_reports_an_unusable_output_in_one_line(args):
    r = CliRunner().invoke(cli.app, args)
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "/dev/null" in lines[0]
    assert "Traceback" not in r.output
