"""Merchant commands: a merchant's own credit report, as the server would answer it, to a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from core.settings import get_settings
from lifecredit.cli.common import app, quiet_training_logs, stderr, stop


@app.command("merchant-report")
def merchant_report(
    merchant: Annotated[str, typer.Option(help="Merchant id, e.g. M00000123.")],
    out: Annotated[Path, typer.Option(help="Output HTML file (self-contained, Chinese and English, prints to A4).")],
    pdf: Annotated[
        bool, typer.Option("--pdf", help="Also print it to PDF (OUT with .pdf) if a PDF engine is installed.")
    ] = False,
) -> None:
    """Write a merchant's own credit report (信用报告): PD, score, grade and class with the master-scale meaning,
    the class history, the reasons against the peer median, what would improve the class, every record with its
    id, date and source, and its objections.

    The champion scores the merchant's row of the serving snapshot (its re-scored row after a correction);
    records come from the validated tables with every correction applied. The same report the merchant reads
    at /merchant/ with its key.
    """
    quiet_training_logs()
    from merchant.html import PdfUnavailable, write_report
    from merchant.rescore import RescoreError
    from serving.merchant.desk import offline_report
    from serving.scorer import ScorerError
    from training.model_source import ModelUnavailable

    try:
        report = offline_report(get_settings(), merchant)
    except (LookupError, ModelUnavailable, ScorerError, RescoreError) as err:
        stop("merchant-report", err)
    try:
        written = write_report(report, out, pdf=pdf)
    except PdfUnavailable as err:
        stderr.print(f"[bold red]no PDF written:[/] {escape(str(err))}; the HTML report is at {escape(str(out))}")
        raise typer.Exit(code=3) from err
    c = report["current"]
    stderr.print(
        f"{merchant}: class {c['class']} (grade {c['grade']}, PD {c['pd']:.2%}, score {c['score']}); "
        f"{sum(len(v) for v in report['records'].values())} records, {report['records_under_objection']} under objection"
    )
    print(json.dumps({k: None if v is None else str(v) for k, v in written.items()}, ensure_ascii=False))
