"""Headless Chromium: find it, print HTML to PDF, take screenshots, dump the DOM.

Debian's `chromium` package (or any Chrome/Chromium; PLANNER_CHROMIUM names a binary).
Each call gets a fresh, empty profile directory and every background network feature off,
so rendering a report never touches the network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
)
TIMEOUT_S = 120


class BrowserError(RuntimeError):
    pass


def find_chromium() -> str | None:
    override = os.environ.get("PLANNER_CHROMIUM")
    if override:
        return shutil.which(override) or (override if Path(override).is_file() else None)
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def run_chromium(
    args: list[str], timeout_s: float = TIMEOUT_S
) -> subprocess.CompletedProcess[bytes]:
    binary = find_chromium()
    if binary is None:
        raise BrowserError("no Chromium found (apt-get install chromium, or set PLANNER_CHROMIUM)")
    with tempfile.TemporaryDirectory(prefix="planner-chromium-") as profile:
        cmd = [binary, *FLAGS, f"--user-data-dir={profile}", *args]
        try:
            return subprocess.run(cmd, capture_output=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise BrowserError(f"chromium timed out after {timeout_s:g} s") from exc


def _url(html: Path) -> str:
    return html.resolve().as_uri()


def print_pdf(html: Path, pdf: Path) -> Path:
    pdf.unlink(missing_ok=True)
    done = run_chromium([f"--print-to-pdf={pdf.resolve()}", "--no-pdf-header-footer", _url(html)])
    if not pdf.is_file() or not pdf.read_bytes().startswith(b"%PDF"):
        tail = done.stderr.decode(errors="replace")[-800:]
        raise BrowserError(f"chromium wrote no PDF (exit {done.returncode}): {tail}")
    return pdf


def screenshot(html: Path, png: Path, width: int = 1280, height: int = 2000) -> Path:
    png.unlink(missing_ok=True)
    done = run_chromium(
        [f"--screenshot={png.resolve()}", f"--window-size={width},{height}", _url(html)]
    )
    if not png.is_file():
        tail = done.stderr.decode(errors="replace")[-800:]
        raise BrowserError(f"chromium wrote no screenshot (exit {done.returncode}): {tail}")
    return png


def dump_dom(html: Path) -> str:
    """The DOM after the browser parsed and laid out the page, serialised."""
    done = run_chromium(["--dump-dom", _url(html)])
    if done.returncode != 0 or not done.stdout:
        raise BrowserError(f"chromium --dump-dom failed (exit {done.returncode})")
    return done.stdout.decode("utf-8", errors="replace")
