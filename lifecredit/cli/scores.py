"""Scoring commands, in pipeline order: predict, score-all (the class history), report (the regulator's)."""

from __future__ import annotations

import json
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from core.settings import get_settings
from core.vocabulary import CLASSES
from lifecredit.cli.common import (
    ENGINE_HELP,
    SCHEDULER_HELP,
    Engine,
    app,
    check_engine,
    quiet_training_logs,
    split_list,
    stderr,
    stop,
)


@app.command()
def predict(
    table: Annotated[Path, typer.Option(help="Rows to score (Parquet or CSV) with the model's feature columns.")],
    out: Annotated[Path, typer.Option(help="Output file (.parquet or .csv).")],
    model: Annotated[str | None, typer.Option(help="Model URI (default: models:/<model_name>@champion).")] = None,
    keep: Annotated[str | None, typer.Option(help="Extra input columns to copy to the output, A,B.")] = None,
    reasons: Annotated[bool, typer.Option(help="Also write the reason-code columns.")] = False,
) -> None:
    """Score a table: pd, score, grade and class beside the model's id columns (and --keep columns)."""
    quiet_training_logs()
    import mlflow

    from training.bundle import MissingFeatureError
    from training.data import read_frame
    from training.registry import client

    uri = model or f"models:/{get_settings().model_name}@champion"
    try:
        client(get_settings())
        frame = read_frame(table)
        loaded = mlflow.pyfunc.load_model(uri)
        ids = list((loaded.metadata.metadata or {}).get("id_columns", []))
        wanted = [*ids, *[c for c in split_list(keep) if c not in ids]]
        absent = [c for c in wanted if c not in frame.columns]
        if absent:
            raise ValueError(f"{table}: column(s) {', '.join(absent)} (id or --keep) not found")
        scored = loaded.predict(frame)
    except (FileNotFoundError, ValueError, MissingFeatureError, mlflow.exceptions.MlflowException) as err:
        stop("predict", err)
    columns = ["pd", "score", "grade", "class"] + (
        [c for c in scored.columns if c.startswith("reason_")] if reasons else []
    )
    result = frame[wanted].reset_index(drop=True).join(scored[columns].reset_index(drop=True))
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        result.to_csv(out, index=False)
    else:
        result.to_parquet(out, index=False)
    counts = result["class"].value_counts().reindex(list(CLASSES), fill_value=0)
    stderr.print(f"scored {len(result):,} rows with {uri}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    print(
        json.dumps(
            {"model_uri": uri, "rows": len(result), "out": str(out), "classes": {k: int(v) for k, v in counts.items()}}
        )
    )


@app.command("score-all")
def score_all(
    as_of: Annotated[
        list[str] | None, typer.Option("--as-of", help="An as_of date, YYYY-MM-DD (repeatable; one per month).")
    ] = None,
    months: Annotated[
        int | None, typer.Option(min=1, max=120, help="The last N months up to the snapshot's as_of.")
    ] = None,
    features: Annotated[
        Path | None, typer.Option(help="Folder with latest.parquet (default: the serving snapshot folder).")
    ] = None,
    validated: Annotated[
        Path | None, typer.Option(help="Validated tables, for earlier months and city (default: <data_dir>/validated).")
    ] = None,
    history: Annotated[Path | None, typer.Option(help="Class history folder (default: settings' history_dir).")] = None,
    model_name: Annotated[str | None, typer.Option(help="Registered model whose 'champion' scores.")] = None,
    engine: Annotated[Engine, typer.Option(help="Where the answer store is computed: " + ENGINE_HELP)] = Engine.local,
    scheduler: Annotated[str | None, typer.Option(help=SCHEDULER_HELP)] = None,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="With --engine dask and no --scheduler: workers of the local cluster.")
    ] = 2,
    answers: Annotated[
        Path | None, typer.Option(help="Answer stores folder (default: settings' answers_dir, <data_dir>/answers).")
    ] = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Write the answer store again even if it exists.")] = False,
) -> None:
    """Score every merchant (borrowers or not) with the champion and write the month(s) to the class history.

    For the snapshot's own as_of it first writes the answer store the server opens: every merchant's
    answer (PD, score, grade, class, reasons) and feature row, for this champion, snapshot and decision
    policy (<answers>/<store id>/: manifest.json and Arrow parts sorted by merchant). An existing store for
    the same three is reused. Default month: the snapshot's as_of. A month already in the history is
    replaced, never duplicated. Prints a JSON summary (months, merchants, class counts, model version,
    store) as the last stdout line.
    """
    quiet_training_logs()
    from answers.store import StoreError
    from features.dask_engine import DaskUnavailable
    from regulator.history import HistoryError
    from regulator.history import score_all as run_score_all
    from serving.policy import DEFAULT_POLICY, load_policy
    from training.model_source import ModelUnavailable

    check_engine(engine, scheduler)
    settings = get_settings()
    policy_file = Path(settings.policy_file or DEFAULT_POLICY)
    try:
        policy = load_policy(policy_file)
    except Exception as err:  # noqa: BLE001 - any unreadable policy stops the command with its reason
        stop("score-all", ValueError(f"cannot load decision policy {policy_file}: {err}"))

    try:
        dates = [date.fromisoformat(d) for d in as_of] if as_of else None
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--as-of") from err
    try:
        result = run_score_all(
            settings,
            policy=(policy.version, policy.sha256),
            answers_dir=answers,
            engine=engine.value,
            scheduler=scheduler,
            workers=workers,
            rebuild=rebuild,
            as_of=dates,
            months=months,
            features_dir=features,
            validated_dir=validated,
            history_dir=history,
            model_name=model_name,
            progress=lambda msg: stderr.print(f"[dim]score-all:[/] {escape(msg)}"),
        )
    except (HistoryError, StoreError, DaskUnavailable, ModelUnavailable, ValueError, FileNotFoundError) as err:
        stop("score-all", err)
    table = Table(
        title=f"class history in {result['history_dir']} (model {result['model']['name']} "
        f"v{result['model']['version']})"
    )
    for col in ("month", "as_of", "merchants", *CLASSES):
        table.add_column(col, justify="left" if col in ("month", "as_of") else "right")
    for m in result["months"]:
        table.add_row(m["month"], m["as_of"], f"{m['merchants']:,}", *(f"{m['classes'][c]:,}" for c in CLASSES))
    stderr.print(table)
    if result["store"]:
        store = result["store"]
        how = "reused" if store["reused"] else f"written in {store['seconds']:.1f} s ({store['engine']})"
        stderr.print(f"answer store {escape(store['path'])}: {store['rows']:,} merchants, {how}")
    print(json.dumps(result, ensure_ascii=False))


class ReportKind(str, Enum):
    regulator = "regulator"
    development = "development"


@app.command()
def report(
    month: Annotated[str, typer.Option(help="Report month, YYYY-MM (a month of the class history).")],
    out: Annotated[Path, typer.Option(help="Output HTML file (self-contained: figures embedded).")],
    kind: Annotated[
        ReportKind,
        typer.Option(
            help="regulator: classes, stability, migration, outcomes, validation; development: the life-services "
            "digital development report (supply and consumption, the consumption index, classes, micro-loans and "
            "inclusion, inspection findings by class)."
        ),
    ] = ReportKind.regulator,
    pdf: Annotated[
        bool, typer.Option("--pdf", help="Also print it to PDF (OUT with .pdf) if a PDF engine is installed.")
    ] = False,
    history: Annotated[Path | None, typer.Option(help="Class history folder (default: settings' history_dir).")] = None,
    features: Annotated[
        Path | None, typer.Option(help="Folder with panel.parquet, for outcomes (default: <data_dir>/features).")
    ] = None,
) -> None:
    """Write the regulator report for MONTH (distribution, stability, migration, outcomes, validation evidence), or
    with --kind development the life-services digital development report (生活服务数字化发展报告).

    Small cells are suppressed exactly as in the regulator API (settings' min_cell_count).
    """
    import re

    quiet_training_logs()
    from regulator.aggregates import ViewError
    from regulator.history import HistoryError
    from regulator.report import PdfUnavailable, html_to_pdf, write_report
    from regulator.views import RegulatorViews

    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        raise typer.BadParameter(f"expected YYYY-MM, got {month!r}", param_hint="--month")
    settings = get_settings()
    views = RegulatorViews(settings, history_dir=history, panel=features / "panel.parquet" if features else None)
    from regulator.development import write_development_report

    write = write_development_report if kind is ReportKind.development else write_report
    try:
        result = write(views, month, out)
    except (HistoryError, ViewError) as err:
        stop("report", err)
    for warning in result["warnings"]:
        stderr.print(f"[yellow]warning:[/] {escape(warning)}")
    stderr.print(f"report for {month}: {result['html']} ({result['bytes'] / 1024:,.0f} KiB)")
    if pdf:
        target = Path(out).with_suffix(".pdf")
        try:
            result["pdf_engine"] = html_to_pdf(Path(out), target)
            result["pdf"] = str(target)
            stderr.print(f"PDF: {target} ({result['pdf_engine']})")
        except PdfUnavailable as err:
            stderr.print(f"[bold red]no PDF written:[/] {escape(str(err))}; the HTML report is at {escape(str(out))}")
            print(json.dumps(result, ensure_ascii=False))
            raise typer.Exit(code=3) from err
    print(json.dumps(result, ensure_ascii=False))
