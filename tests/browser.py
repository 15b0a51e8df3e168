"""Headless Chromium for tests that look at a page as a person would.

``ensure_chromium()`` finds Debian's ``chromium`` and, when it is absent and we run as root with
``apt-get``, installs it (``apt-get update && apt-get install -y chromium``); otherwise it raises
``BrowserUnavailable`` with the reason, which tests turn into a skip.
``screenshot`` and ``dump_dom`` run one headless Chromium each, with a fresh profile, no network
features, and the page's console messages captured from the log (``--enable-logging=stderr``
prints every ``console.*`` call and every uncaught error as an ``INFO:CONSOLE`` line).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_TIMEOUT_S = 1200
RUN_TIMEOUT_S = 180
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
)
CONSOLE_LINE = re.compile(r":CONSOLE[^\]]*\]\s*(.*)")


class BrowserUnavailable(RuntimeError):
    """No Chromium, and it cannot be installed here."""


@dataclass
class BrowserRun:
    stdout: str
    log: str

    @property
    def console(self) -> list[str]:
        """Messages the page wrote to its console (logs, errors, uncaught exceptions, CSP
        violations)."""
        return [m.group(1) for m in map(CONSOLE_LINE.search, self.log.splitlines()) if m]


def find_chromium() -> str | None:
    for name in ("/usr/bin/chromium", *CANDIDATES):
        path = shutil.which(name)
        if path:
            return path
    return None


def ensure_chromium() -> str:
    """Path of a Chromium binary, installing Debian's ``chromium`` when needed and possible."""
    path = find_chromium()
    if path:
        return path
    if os.name != "posix" or os.geteuid() != 0:
        raise BrowserUnavailable("chromium is not installed and we are not root to install it "
                                 "(apt-get install -y chromium)")
    if shutil.which("apt-get") is None:
        raise BrowserUnavailable("chromium is not installed and there is no apt-get here")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"],
                    ["apt-get", "install", "-y", "-q", "chromium"]):
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True,
                                  timeout=INSTALL_TIMEOUT_S, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise BrowserUnavailable(f"{' '.join(command)} timed out") from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise BrowserUnavailable(f"{' '.join(command)} failed: {' | '.join(tail)}")
    path = find_chromium()
    if not path:
        raise BrowserUnavailable("apt-get installed chromium but no binary was found on PATH")
    return path


def _run(args: list[str], url: str) -> BrowserRun:
    binary = ensure_chromium()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        done = subprocess.run(
            [binary, *FLAGS, f"--user-data-dir={profile}", *args, url],
            capture_output=True, text=True, timeout=RUN_TIMEOUT_S, stdin=subprocess.DEVNULL,
        )
    if done.returncode != 0:
        raise RuntimeError(f"chromium exited with {done.returncode}: {done.stderr[-2000:]}")
    return BrowserRun(done.stdout, done.stderr)


def screenshot(page: Path, png: Path, size: tuple[int, int] = (1280, 2000)) -> BrowserRun:
    """Screenshot of ``page`` (a local HTML file) at ``size`` (width, height) into ``png``."""
    run = _run([f"--screenshot={png}", f"--window-size={size[0]},{size[1]}"],
               Path(page).resolve().as_uri())
    if not Path(png).is_file():
        raise RuntimeError(f"chromium wrote no screenshot: {run.log[-2000:]}")
    return run


def dump_dom(page: Path, size: tuple[int, int] | None = None) -> BrowserRun:
    """The DOM of ``page`` serialised after its load event (``stdout``), in a window of
    ``size`` (width, height) when given."""
    window = [f"--window-size={size[0]},{size[1]}"] if size else []
    return _run(["--dump-dom", *window], Path(page).resolve().as_uri())
