"""The regulator report as PDF: printed from its HTML by a headless Chromium, or by WeasyPrint.

Neither is a dependency: without one the caller gets :class:`PdfUnavailable`, naming what to install.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

PDF_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", "headless_shell")


class PdfUnavailable(RuntimeError):
    """No PDF engine on this machine; the message says what to install."""


def pdf_engine() -> tuple[str, str] | None:
    """(kind, path) of a PDF engine: a headless Chromium / Chrome, or WeasyPrint; None if neither."""
    for name in PDF_BROWSERS:
        path = shutil.which(name)
        if path:
            return "chromium", path
    try:
        import weasyprint  # noqa: F401
    except ImportError:
        return None
    return "weasyprint", "weasyprint"


def html_to_pdf(html_path: Path, pdf_path: Path, *, timeout: int = 120) -> str:
    """Print the HTML report to PDF; returns the engine used. Raises :class:`PdfUnavailable` without one."""
    engine = pdf_engine()
    if engine is None:
        raise PdfUnavailable(
            "no PDF engine found: install Chromium (e.g. `apt-get install chromium`) or WeasyPrint "
            "(`uv add weasyprint`), or print the HTML report from a browser"
        )
    kind, path = engine
    html_path, pdf_path = Path(html_path).resolve(), Path(pdf_path).resolve()
    if kind == "weasyprint":
        import weasyprint

        weasyprint.HTML(filename=str(html_path)).write_pdf(str(pdf_path))
        return kind
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            path,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={profile}",
            "--no-pdf-header-footer",
            "--print-to-pdf-no-header",
            f"--print-to-pdf={pdf_path}",
            html_path.as_uri(),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout, check=False)
    if done.returncode != 0 or not pdf_path.exists():
        raise PdfUnavailable(
            f"{path} could not print the report (exit {done.returncode}): {done.stderr.strip()[-500:]}"
        )
    return f"chromium ({path})"
