"""Data commands, in pipeline order: simulate, validate, features."""

from __future__ import annotations

from datetime import date
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from core.settings import get_settings
from lifecredit.cli.common import (
    ENGINE_HELP,
    SCHEDULER_HELP,
    Engine,
    app,
    check_engine,
    stdout,
    stop,
)
from lifecredit.progress import progress_bar


class Scenario(str, Enum):
    baseline = "baseline"
    downturn = "downturn"


@app.command()
def simulate(
    merchants: Annotated[int, typer.Option(min=1, help="Number of merchants.")] = 2000,
    months: Annotated[
        int, typer.Option(min=1, help="Months of the panel, from --start; 12 months of history come before them.")
    ] = 24,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same market.")] = 7,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: <data_dir>/raw).")] = None,
    defect_rate: Annotated[
        float, typer.Option(min=0.0, max=0.5, help="Share of rows corrupted in realistic ways.")
    ] = 0.0,
    scenario: Annotated[Scenario, typer.Option(help="baseline, or downturn (a broad shock).")] = Scenario.baseline,
    volume_scale: Annotated[
        float, typer.Option(min=0.001, max=10.0, help="Thin (or thicken) transaction volume.")
    ] = 1.0,
    start: Annotated[
        str, typer.Option(help="First month of the panel, YYYY-MM-01 (the data begin 12 months earlier).")
    ] = "2023-01-01",
) -> None:
    """Simulate a life-service market: six raw tables plus truth.parquet (evaluation only).

    The data span [start - 12 months, start + months): a year of history, then the panel, so the
    first panel as_of (start) has full 365-day windows. Established merchants are active from the
    start of the history, entrants (about 3.5 % of the merchants a year) from their registration.
    truth.parquet holds the true 12-month PD at every panel as_of, start .. start + months.
    """
    from simulation import simulate_market

    out = out or get_settings().raw_dir
    with progress_bar("simulating merchants") as progress:
        summary = simulate_market(
            out,
            merchants=merchants,
            months=months,
            seed=seed,
            defect_rate=defect_rate,
            scenario=scenario.value,
            volume_scale=volume_scale,
            start=date.fromisoformat(start),
            progress=progress,
        )
    table = Table(title=f"simulated market in {out}")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in summary["rows"].items():
        table.add_row(name, f"{rows:,}")
    stdout.print(table)


@app.command()
def validate(
    raw: Annotated[
        Path | None, typer.Option(help="Folder of raw tables, Parquet or CSV (default: <data_dir>/raw).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: <data_dir>/validated).")] = None,
    corrections: Annotated[
        Path | None,
        typer.Option(
            help="The data steward's corrections, applied as the tables are validated (default: settings' corrections folder, <data_dir>/corrections, if it exists)."
        ),
    ] = None,
) -> None:
    """Validate raw tables against their contracts: valid rows to OUT, rejected rows to OUT/quarantine.

    Corrections (deletes and updates of single records, data_contracts/contracts/corrections.yaml)
    are applied on the way: the raw tables stay as received, a deleted record goes to quarantine
    under deleted_by_correction, and a rebuild reproduces the corrected state.
    """
    from data_contracts import TableError, validate_dir

    settings = get_settings()
    raw = raw or settings.raw_dir
    out = out or settings.validated_dir
    try:
        with progress_bar("validating tables") as progress:
            summary = validate_dir(raw, out, progress=progress, corrections=corrections or settings.corrections_folder)
    except TableError as err:
        stop("validation", err)
    table = Table(title=f"validation summary ({out / 'validation_summary.json'})")
    for col in ("table", "rows in", "valid", "rejected", "rejections by rule"):
        table.add_column(col, justify="left" if col in ("table", "rejections by rule") else "right")
    for name, s in summary["tables"].items():
        rules = ", ".join(f"{rule}: {n:,}" for rule, n in s["rejected_by_rule"].items()) or "-"
        table.add_row(name, f"{s['rows_in']:,}", f"{s['valid']:,}", f"{s['rejected']:,}", rules)
    stdout.print(table)
    if summary["corrections"]:
        c = summary["corrections"]
        stdout.print(
            f"corrections from {c['folder']}: {c['applied']:,} applied, {c['rejected']:,} rejected "
            f"(see {out / 'quarantine' / 'corrections.parquet'})"
        )
    for name, s in summary["tables"].items():
        if s["ignored_columns"]:
            stdout.print(
                f"{name}: columns not in the contract, left out of valid output: {', '.join(s['ignored_columns'])}"
            )


@app.command()
def features(
    raw: Annotated[
        Path | None, typer.Option(help="Folder of validated tables (default: <data_dir>/validated).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: <data_dir>/features).")] = None,
    monthly: Annotated[
        bool,
        typer.Option(
            "--monthly",
            help="as_of = month starts from the first with a whole year of data behind it (so 365-day windows are complete; shorter data: from its first month) to the month after the last day (the default).",
        ),
    ] = False,
    as_of: Annotated[
        list[str] | None, typer.Option("--as-of", help="An as_of date, YYYY-MM-DD (repeatable); replaces --monthly.")
    ] = None,
    engine: Annotated[Engine, typer.Option(help=ENGINE_HELP)] = Engine.local,
    scheduler: Annotated[str | None, typer.Option(help=SCHEDULER_HELP)] = None,
) -> None:
    """Build point-in-time features: panel.parquet (training spine with `bad`), latest.parquet, metadata.json.

    With --engine dask the tables are partitioned by a hash of merchant_id and the same pipeline
    runs per partition on Dask; peer percentiles are then ranked over all merchants: same outputs.
    """
    from features import FeatureInputError, build_features
    from features.dask_engine import DaskUnavailable, build_features_dask

    check_engine(engine, scheduler)
    settings = get_settings()
    raw = raw or settings.validated_dir
    out = out or settings.features_dir
    if monthly and as_of:
        raise typer.BadParameter("give either --monthly or --as-of dates, not both", param_hint="--as-of")
    try:
        dates = sorted({date.fromisoformat(d) for d in as_of}) if as_of else None
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--as-of") from err
    try:
        with progress_bar(f"building features ({engine.value})") as progress:
            if engine is Engine.dask:
                meta = build_features_dask(raw, out, as_of=dates, scheduler=scheduler, progress=progress)
            else:
                meta = build_features(raw, out, as_of=dates, progress=progress)
    except (FeatureInputError, ValueError, DaskUnavailable) as err:
        stop("features", err)
    labels = meta["labels"]
    table = Table(title=f"{meta['feature_set']['name']} {meta['feature_set']['version']} in {out}")
    for col in ("output", "as_of", "rows", "labelled", "bad rate", "excluded (in default)"):
        table.add_column(col, justify="left" if col in ("output", "as_of") else "right")
    rate = f"{labels['bad_rate']:.2%}" if labels["bad_rate"] is not None else "-"
    span = f"{meta['as_of']['first']} .. {meta['as_of']['last']} ({meta['as_of']['count']})"
    table.add_row(
        "panel.parquet",
        span,
        f"{meta['rows']['panel']:,}",
        f"{labels['labelled']:,}",
        rate,
        f"{meta['excluded_in_default']:,}",
    )
    table.add_row("latest.parquet", meta["as_of"]["last"], f"{meta['rows']['latest']:,}", "-", "-", "-")
    stdout.print(table)
