"""The consumption command: monthly consumption aggregates and the digital consumption index (consumption-index)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from core.settings import get_settings
from lifecredit.cli.common import app, stderr, stop
from lifecredit.progress import progress_bar


@app.command("consumption-index")
def consumption_index(
    validated: Annotated[
        Path | None, typer.Option(help="Validated tables: transactions and merchants (default: <data_dir>/validated).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: <data_dir>/consumption).")] = None,
    base_month: Annotated[
        str | None, typer.Option(help="Month whose index is 100, YYYY-MM (default: the first month of the data).")
    ] = None,
) -> None:
    """Build the monthly consumption aggregates and the digital consumption index (生活服务数字化消费指数).

    One streaming pass over the validated transactions: per sector x province x city (prefecture)
    x month the active merchants, consumption amount and count with their year-on-year change and
    the digital-payment share; the index chain-linked over merchants active in both months.
    Small cells are suppressed (settings' min_cell_count). Writes aggregates.parquet, index.parquet
    and metadata.json (input hashes, base month); method in docs/consumption-index.md.
    """
    from regulator.consumption import ConsumptionError, build_consumption

    if base_month is not None and not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", base_month):
        raise typer.BadParameter(f"expected YYYY-MM, got {base_month!r}", param_hint="--base-month")
    settings = get_settings()
    validated = validated or settings.validated_dir
    out = out or settings.consumption_folder
    try:
        with progress_bar("aggregating transactions") as progress:
            meta = build_consumption(
                validated, out, k=settings.min_cell_count, base_month=base_month, progress=progress
            )
    except ConsumptionError as err:
        stop("consumption-index", err)
    table = Table(title=f"consumption aggregates and index in {out}")
    table.add_column("what")
    table.add_column("value", justify="right")
    for what, value in (
        ("transactions read", f"{meta['transactions']:,}"),
        ("months", " .. ".join(meta["months"])),
        ("base month (index 100)", meta["base_month"]),
        ("merchant-months", f"{meta['rows']['merchant_months']:,}"),
        ("aggregate cells", f"{meta['rows']['aggregates']:,}"),
        (
            "suppressed cells",
            f"{meta['suppressed_cells']:,} (fewer than {meta['min_cell_count']} merchants, or complements)",
        ),
        ("index rows", f"{meta['rows']['index']:,}"),
    ):
        table.add_row(what, value)
    stderr.print(table)
    if meta["unknown_merchant_transactions"]:
        stderr.print(
            f"[yellow]warning:[/] {meta['unknown_merchant_transactions']:,} transactions of merchants not in the "
            "merchants table were left out"
        )
    print(json.dumps({"out": str(out), **meta}, ensure_ascii=False))
