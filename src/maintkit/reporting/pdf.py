"""The report's PDF: headless Chromium prints the HTML file (Debian's ``chromium``).

Why Chromium: the same engine the browser test checks the layout in, so the PDF is what was
tested; no Python PDF library renders CSS flex and SVG as faithfully. Every network feature is
off and the page is a local file: printing fetches nothing. Its profile is a fresh temporary
folder, removed afterwards.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

#: the flags of every headless Chromium maintkit starts (also the browser test's)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
TIMEOUT = 120


class PdfError(Exception):
    """Chromium is missing or did not print the page."""


def chromium() -> str:
    """The Chromium program, or PdfError naming the package to install."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise PdfError("chromium is not installed (Debian: apt-get install chromium): no PDF written")


def print_pdf(html: Path, pdf: Path) -> Path:
    """Print ``html`` (a local file) to ``pdf`` with headless Chromium; return ``pdf``."""
    program = chromium()
    with tempfile.TemporaryDirectory(prefix="maintkit-chromium-") as profile:
        argv = [
            program,
            *FLAGS,
            f"--user-data-dir={profile}",
            "--no-pdf-header-footer",
            f"--print-to-pdf={pdf}",
            html.resolve().as_uri(),
        ]
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, check=False)
        except subprocess.TimeoutExpired as error:
            raise PdfError(f"chromium did not print {html.name} within {TIMEOUT} s") from error
    if result.returncode != 0 or not pdf.is_file() or pdf.stat().st_size == 0:
        raise PdfError(f"chromium could not print {html.name}: {result.stderr.strip()[-500:]}")
    return pdf
