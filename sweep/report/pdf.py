"""report.pdf, to hand in: report.html printed by a headless Chromium.

report.html inlines its pictures, so the PDF embeds them; html.py's print stylesheet keeps a page break from
cutting a figure. Without a Chromium, or when it fails, the report says in one line how to get the PDF, and
nothing else changes: the PDF is a convenience, never a reason for a report (or a sweep) to fail.
"""
from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile

from trainables import atomic

PDF = "report.pdf"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
TIMEOUT_S = 120  # measured: 0.9 s for a 7-figure report on an idle 2-core machine
HOW = ("open report.html in a browser and print it to PDF, or install Chromium (Debian and Ubuntu: "
       "`apt-get install chromium`) and rebuild the report: `python -m sweep.report {folder}`")
log = logging.getLogger("sweep.report")


class NotPrinted(Exception):
    """Why Chromium gave no PDF."""


def browser() -> str | None:
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


def planned(folder: str, found: str | None) -> str:
    """report.md's line about the PDF, before it is printed."""
    if found:
        return f"**To hand in:** `{PDF}`, beside this report, is this report printed (by headless Chromium)."
    return f"**No `{PDF}`:** no headless Chromium on this machine. To get one, {HOW.format(folder=folder)}."


def failed(folder: str, why: str) -> str:
    """report.md's line (and the console's) when Chromium was there but printed no PDF."""
    return f"**No `{PDF}`:** {why}. To get one, {HOW.format(folder=folder)}."


def drop(folder: str) -> None:
    """Remove report.pdf (one an earlier build printed, when this build printed none)."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(folder, PDF))


def write_pdf(found: str, folder: str) -> str:
    """Print <folder>/report.html to <folder>/report.pdf; returns '' when done, else why not."""
    page = pathlib.Path(os.path.abspath(os.path.join(folder, "report.html"))).as_uri()
    try:
        with tempfile.TemporaryDirectory(prefix="sweep-pdf-") as profile, \
                atomic.atomic_path(os.path.join(folder, PDF)) as tmp:
            _print(found, page, tmp, profile)
    except NotPrinted as exc:
        return str(exc)
    return ""


def _print(found: str, page: str, out: str, profile: str) -> None:
    # --no-sandbox: Chromium's sandbox refuses to start as root (CI, containers); the page is our own file.
    # Both header/footer flags: Chromium renamed the first (111+); each version ignores the one it lacks.
    cmd = [found, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-pdf-header-footer",
           "--print-to-pdf-no-header", f"--user-data-dir={profile}", f"--print-to-pdf={out}", page]
    try:  # a session of its own: on a timeout its helper processes end with it
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
    except OSError as exc:
        raise NotPrinted(f"{found} did not start ({exc.strerror})") from None
    try:
        _, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise NotPrinted(f"{found} did not finish printing in {TIMEOUT_S} s") from None
    finally:  # also on Ctrl-C: no Chromium left behind
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    with open(out, "rb") as f:
        printed = f.read(5) == b"%PDF-"
    if proc.returncode != 0 or not printed:
        log.warning("%s printed no PDF (exit status %s):\n%s", found, proc.returncode, err.strip())
        raise NotPrinted(f"{found} printed no PDF (exit status {proc.returncode}; its messages are in "
                         f"logs/report.log)")
