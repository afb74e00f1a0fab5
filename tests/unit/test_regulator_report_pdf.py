"""The report's PDF engine: headless Chromium when installed, a message naming what to install when not."""

from __future__ import annotations

import pytest

from regulator.report import PdfUnavailable, html_to_pdf, pdf_engine

PAGE = "<!DOCTYPE html><html><head><meta charset='utf-8'></head><body><h1>报告 Report</h1><p>&lt;10</p></body></html>"


def test_without_an_engine_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    try:
        import weasyprint  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("WeasyPrint is installed: a PDF engine exists without any browser on PATH")
    assert pdf_engine() is None
    (tmp_path / "r.html").write_text(PAGE, encoding="utf-8")
    with pytest.raises(PdfUnavailable, match=r"install Chromium .*apt-get install chromium"):
        html_to_pdf(tmp_path / "r.html", tmp_path / "r.pdf")
    assert not (tmp_path / "r.pdf").exists()


@pytest.mark.skipif(
    (pdf_engine() or ("",))[0] != "chromium", reason="no Chromium on PATH: scripts/setup_browser.sh installs it"
)
def test_chromium_prints_the_html_to_pdf(tmp_path):
    (tmp_path / "r.html").write_text(PAGE, encoding="utf-8")
    engine = html_to_pdf(tmp_path / "r.html", tmp_path / "r.pdf", timeout=120)
    pdf = (tmp_path / "r.pdf").read_bytes()
    assert engine.startswith("chromium") and pdf.startswith(b"%PDF-") and len(pdf) > 1000
