"""The ``lifecredit`` command line: one command per stage, wiring settings to stage functions."""

from __future__ import annotations

import gc
import json
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from core.settings import get_settings
from lifecredit.progress import progress_bar, stderr

app = typer.Typer(
    name="lifecredit",
    help="Credit-risk scoring for small life-service merchants: simulate, validate, build features, train, serve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
stdout = Console()


class Scenario(str, Enum):
    baseline = "baseline"
    downturn = "downturn"


class Engine(str, Enum):
    local = "local"
    dask = "dask"


ENGINE_HELP = "local (this process) or dask (a Dask cluster: --scheduler, or a local one of 2 workers)."
SCHEDULER_HELP = "With --engine dask: the Dask scheduler address, e.g. tcp://host:8786 (default: start a local cluster)."


def _check_engine(engine: Engine, scheduler: str | None) -> None:
    if scheduler is not None and engine is not Engine.dask:
        raise typer.BadParameter("--scheduler runs on Dask: add --engine dask (or drop --scheduler)",
                                 param_hint="--scheduler")


@app.command()
def simulate(
    merchants: Annotated[int, typer.Option(min=1, help="Number of merchants.")] = 2000,
    months: Annotated[int, typer.Option(min=1, help="Months of the panel, from --start; 12 months of history come before them.")] = 24,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same market.")] = 7,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: <data_dir>/raw).")] = None,
    defect_rate: Annotated[float, typer.Option(min=0.0, max=0.5, help="Share of rows corrupted in realistic ways.")] = 0.0,
    scenario: Annotated[Scenario, typer.Option(help="baseline, or downturn (a broad shock).")] = Scenario.baseline,
    volume_scale: Annotated[float, typer.Option(min=0.001, max=10.0, help="Thin (or thicken) transaction volume.")] = 1.0,
    start: Annotated[str, typer.Option(help="First month of the panel, YYYY-MM-01 (the data begin 12 months earlier).")] = "2023-01-01",
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
    raw: Annotated[Path | None, typer.Option(help="Folder of raw tables, Parquet or CSV (default: <data_dir>/raw).")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: <data_dir>/validated).")] = None,
) -> None:
    """Validate raw tables against their contracts: valid rows to OUT, rejected rows to OUT/quarantine."""
    from data_contracts import TableError, validate_dir

    settings = get_settings()
    raw = raw or settings.raw_dir
    out = out or settings.validated_dir
    try:
        with progress_bar("validating tables") as progress:
            summary = validate_dir(raw, out, progress=progress)
    except TableError as err:
        stderr.print(f"[bold red]validation stopped:[/] {escape(str(err))}")
        raise typer.Exit(code=2) from err
    table = Table(title=f"validation summary ({out / 'validation_summary.json'})")
    for col in ("table", "rows in", "valid", "rejected", "rejections by rule"):
        table.add_column(col, justify="left" if col in ("table", "rejections by rule") else "right")
    for name, s in summary["tables"].items():
        rules = ", ".join(f"{rule}: {n:,}" for rule, n in s["rejected_by_rule"].items()) or "-"
        table.add_row(name, f"{s['rows_in']:,}", f"{s['valid']:,}", f"{s['rejected']:,}", rules)
    stdout.print(table)
    for name, s in summary["tables"].items():
        if s["ignored_columns"]:
            stdout.print(f"{name}: columns not in the contract, left out of valid output: {', '.join(s['ignored_columns'])}")


keys_app = typer.Typer(help="API keys for banks, regulators and admins (only salted hashes are stored).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _key_store():
    from serving.keys import KeyStore

    return KeyStore(get_settings().api_keys_file)


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="bank, regulator or admin.")],
    name: Annotated[str | None, typer.Option(help="Who holds the key (default: <role>-<id>).")] = None,
) -> None:
    """Create a key and print it once: it is not stored and cannot be shown again."""
    try:
        key = _key_store().create(role, name)
    except ValueError as err:
        stderr.print(f"[bold red]error:[/] {err}")
        raise typer.Exit(code=2) from err
    stderr.print("New key (shown once; send it as 'Authorization: Bearer <key>'):")
    print(key)


@keys_app.command("list")
def keys_list() -> None:
    """List keys: id, name, role, created, revoked. Never the keys themselves."""
    table = Table(title=f"API keys ({get_settings().api_keys_file})")
    for col in ("id", "name", "role", "created", "revoked"):
        table.add_column(col)
    for k in _key_store().list():
        table.add_row(k.key_id, k.name, k.role, k.created_at, k.revoked_at or "-")
    stdout.print(table)


@keys_app.command("revoke")
def keys_revoke(name_or_id: Annotated[str, typer.Argument(help="Key name or id, as `keys list` shows.")]) -> None:
    """Revoke a key; a running server refuses it from its next request on."""
    from serving.keys import UnknownKey

    try:
        key = _key_store().revoke(name_or_id)
    except UnknownKey as err:
        stderr.print(f"[bold red]error:[/] {err}")
        raise typer.Exit(code=2) from err
    stdout.print(f"revoked {key.name} ({key.key_id}, role {key.role})")


def _quiet_training_logs() -> None:
    """LightGBM threads wait passively (set before lightgbm loads); MLflow's INFO chatter off."""
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


def _split_list(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


@app.command()
def train(
    features: Annotated[Path | None, typer.Option(help="Feature folder with panel.parquet (default: <data_dir>/features).")] = None,
    table: Annotated[Path | None, typer.Option(help="Bring your own table (Parquet or CSV) instead of the feature panel.")] = None,
    target: Annotated[str | None, typer.Option(help="With --table: the 0/1 label column.")] = None,
    id_col: Annotated[str | None, typer.Option("--id", help="With --table: the row id column.")] = None,
    time_col: Annotated[str | None, typer.Option(help="With --table: test on --id values held out whole, rows late on this column (default: stratified random).")] = None,
    categorical: Annotated[str | None, typer.Option(help="With --table: categorical columns, A,B (string columns always are).")] = None,
    monotone: Annotated[str | None, typer.Option(help="With --table: risk directions, COL=1,COL=-1 (+1 riskier as it grows).")] = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment.")] = "lifecredit",
    model_name: Annotated[str | None, typer.Option(help="Registered model (default: settings' model_name; byo-<table stem> with --table).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed; same data and seed, same metrics.")] = 7,
    tune: Annotated[int, typer.Option(min=0, help="Optuna trials (out-of-fold log loss of the cross-fitting) before the final fit (0: fixed parameters).")] = 0,
    engine: Annotated[Engine, typer.Option(help=ENGINE_HELP + " Dask fits the booster only (lightgbm.dask).")] = Engine.local,
    scheduler: Annotated[str | None, typer.Option(help=SCHEDULER_HELP)] = None,
) -> None:
    """Train, calibrate, evaluate, log and register a PD model (alias 'challenger').

    Progress goes to stderr; the last stdout line is one JSON object: run_id, model_uri,
    version and the metrics on the test rows (merchants held out whole, after every booster row;
    with --table and no --time-col, a stratified random draw).
    """
    _check_engine(engine, scheduler)
    _quiet_training_logs()
    from features.dask_engine import DaskUnavailable
    from training.train import train_from_features, train_from_table

    on = {"engine": engine.value, "scheduler": scheduler}
    say = lambda msg: stderr.print(f"[dim]train:[/] {escape(msg)}")  # noqa: E731
    try:
        if table is not None:
            if not target or not id_col:
                raise typer.BadParameter("--table needs --target and --id")
            directions = {}
            for item in _split_list(monotone):
                col, _, value = item.partition("=")
                if value.strip() not in ("1", "+1", "-1", "0"):
                    raise typer.BadParameter(f"--monotone expects COL=1 or COL=-1, got {item!r}")
                directions[col.strip()] = int(value)
            result = train_from_table(
                table, target=target, id_col=id_col, time_col=time_col, categorical=_split_list(categorical),
                monotone=directions, experiment=experiment, model_name=model_name or f"byo-{table.stem}",
                seed=seed, tune=tune, progress=say, **on)
        else:
            if any(v is not None for v in (target, id_col, time_col, categorical, monotone)):
                raise typer.BadParameter("--target/--id/--time-col/--categorical/--monotone go with --table")
            result = train_from_features(features or get_settings().features_dir, experiment=experiment,
                                         model_name=model_name, seed=seed, tune=tune, progress=say, **on)
    except (FileNotFoundError, ValueError, DaskUnavailable) as err:
        stderr.print(f"[bold red]train stopped:[/] {escape(str(err))}")
        raise typer.Exit(code=2) from err
    m = result["metrics"]
    stderr.print(f"test rows: AUC {m['auc']:.4f}, Gini {m['gini']:.4f}, KS {m['ks']:.4f}, ECE {m['ece']:.4f}; "
                 f"challenger AUC {result['challenger_metrics']['auc']:.4f}; classes rejected {int(m['classes_rejected'])}")
    print(json.dumps({k: result[k] for k in ("run_id", "model_uri", "version", "metrics", "challenger_metrics")}))
    # the work is done and the process about to end: frozen, the ~470k objects that MLflow,
    # scikit-learn and optbinning loaded are not walked again by the interpreter's final garbage
    # collections (~1 s of exit on the training benchmark, 0.1 s frozen); an in-process caller
    # keeps them as they are, just outside later cyclic collections
    gc.freeze()


@app.command()
def promote(
    version: Annotated[int, typer.Option(min=1, help="Registered version to promote to 'champion'.")],
    model_name: Annotated[str | None, typer.Option(help="Registered model (default: settings' model_name).")] = None,
    force: Annotated[bool, typer.Option(help="Promote even if a check fails (needs --reason).")] = False,
    reason: Annotated[str | None, typer.Option(help="Why (recorded; required with --force).")] = None,
    by: Annotated[str | None, typer.Option(help="Who promotes (recorded; default: the OS user).")] = None,
) -> None:
    """Move alias 'champion' to VERSION if it passes the gate against the current champion.

    Checks (on VERSION's test rows): no class rejected by the Jeffreys test at 1%; score PSI
    train->test < 0.25; with a champion, AUC not lower by more than 0.01 and score PSI against
    the champion < 0.25. Every decision is appended to the promotion history.
    """
    _quiet_training_logs()
    from training.registry import PromotionRefused
    from training.registry import promote as run_gate

    if force and not reason:
        stderr.print("[bold red]error:[/] --force needs --reason")
        raise typer.Exit(code=2)
    try:
        record = run_gate(version, model_name=model_name, force=force, reason=reason, by=by)
    except PromotionRefused as refused:
        for check in refused.record["checks"]:
            colour = "green" if check["passed"] else "bold red"
            stderr.print(f"[{colour}]{'pass' if check['passed'] else 'FAIL'}[/] {check['name']}: {escape(check['detail'])}")
        stderr.print(f"[bold red]not promoted:[/] version {version} stays 'challenger'; champion is still "
                     f"{refused.record['from_version'] or 'unset'}")
        print(json.dumps({k: refused.record[k] for k in ("model_name", "from_version", "to_version", "promoted", "checks")}))
        raise typer.Exit(code=1) from refused
    except Exception as err:  # unknown model or version, unreadable run
        stderr.print(f"[bold red]promote stopped:[/] {escape(str(err))}")
        raise typer.Exit(code=2) from err
    for check in record["checks"]:
        colour = "green" if check["passed"] else "yellow"
        stderr.print(f"[{colour}]{'pass' if check['passed'] else 'fail'}[/] {check['name']}: {escape(check['detail'])}")
    note = " (forced: " + escape(reason or "") + ")" if record["forced"] else ""
    stderr.print(f"champion: version {version} (was {record['from_version'] or 'unset'}){note}")
    print(json.dumps({k: record[k] for k in ("model_name", "from_version", "to_version", "promoted", "forced", "checks")}))


@app.command()
def predict(
    table: Annotated[Path, typer.Option(help="Rows to score (Parquet or CSV) with the model's feature columns.")],
    out: Annotated[Path, typer.Option(help="Output file (.parquet or .csv).")],
    model: Annotated[str | None, typer.Option(help="Model URI (default: models:/<model_name>@champion).")] = None,
    keep: Annotated[str | None, typer.Option(help="Extra input columns to copy to the output, A,B.")] = None,
    reasons: Annotated[bool, typer.Option(help="Also write the reason-code columns.")] = False,
) -> None:
    """Score a table: pd, score, grade and class beside the model's id columns (and --keep columns)."""
    _quiet_training_logs()
    import mlflow

    from training.bundle import MissingFeatureError
    from training.data import read_frame
    from training.registry import client

    uri = model or f"models:/{get_settings().model_name}@champion"
    try:
        client()
        frame = read_frame(table)
        loaded = mlflow.pyfunc.load_model(uri)
        ids = list((loaded.metadata.metadata or {}).get("id_columns", []))
        wanted = [*ids, *[c for c in _split_list(keep) if c not in ids]]
        absent = [c for c in wanted if c not in frame.columns]
        if absent:
            raise ValueError(f"{table}: column(s) {', '.join(absent)} (id or --keep) not found")
        scored = loaded.predict(frame)
    except (FileNotFoundError, ValueError, MissingFeatureError) as err:
        stderr.print(f"[bold red]predict stopped:[/] {escape(str(err))}")
        raise typer.Exit(code=2) from err
    except mlflow.exceptions.MlflowException as err:
        stderr.print(f"[bold red]predict stopped:[/] {escape(err.message)}")
        raise typer.Exit(code=2) from err
    columns = ["pd", "score", "grade", "class"] + ([c for c in scored.columns if c.startswith("reason_")] if reasons else [])
    result = frame[wanted].reset_index(drop=True).join(scored[columns].reset_index(drop=True))
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        result.to_csv(out, index=False)
    else:
        result.to_parquet(out, index=False)
    counts = result["class"].value_counts().reindex(["A", "B", "C", "D"], fill_value=0)
    stderr.print(f"scored {len(result):,} rows with {uri}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    print(json.dumps({"model_uri": uri, "rows": len(result), "out": str(out), "classes": {k: int(v) for k, v in counts.items()}}))


@app.command()
def features(
    raw: Annotated[Path | None, typer.Option(help="Folder of validated tables (default: <data_dir>/validated).")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: <data_dir>/features).")] = None,
    monthly: Annotated[bool, typer.Option("--monthly", help="as_of = month starts from the first with a whole year of data behind it (so 365-day windows are complete; shorter data: from its first month) to the month after the last day (the default).")] = False,
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

    _check_engine(engine, scheduler)
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
        stderr.print(f"[bold red]features stopped:[/] {escape(str(err))}")
        raise typer.Exit(code=2) from err
    labels = meta["labels"]
    table = Table(title=f"{meta['feature_set']['name']} {meta['feature_set']['version']} in {out}")
    for col in ("output", "as_of", "rows", "labelled", "bad rate", "excluded (in default)"):
        table.add_column(col, justify="left" if col in ("output", "as_of") else "right")
    rate = f"{labels['bad_rate']:.2%}" if labels["bad_rate"] is not None else "-"
    span = f"{meta['as_of']['first']} .. {meta['as_of']['last']} ({meta['as_of']['count']})"
    table.add_row("panel.parquet", span, f"{meta['rows']['panel']:,}", f"{labels['labelled']:,}", rate,
                  f"{meta['excluded_in_default']:,}")
    table.add_row("latest.parquet", meta["as_of"]["last"], f"{meta['rows']['latest']:,}", "-", "-", "-")
    stdout.print(table)


@app.command("score-all")
def score_all(
    as_of: Annotated[
        list[str] | None, typer.Option("--as-of", help="An as_of date, YYYY-MM-DD (repeatable; one per month).")
    ] = None,
    months: Annotated[int | None, typer.Option(min=1, max=120, help="The last N months up to the snapshot's as_of.")] = None,
    features: Annotated[Path | None, typer.Option(help="Folder with latest.parquet (default: the serving snapshot folder).")] = None,
    validated: Annotated[Path | None, typer.Option(help="Validated tables, for earlier months and city (default: <data_dir>/validated).")] = None,
    history: Annotated[Path | None, typer.Option(help="Class history folder (default: settings' history_dir).")] = None,
    model_name: Annotated[str | None, typer.Option(help="Registered model whose 'champion' scores.")] = None,
) -> None:
    """Score every merchant (borrowers or not) with the champion and write the month(s) to the class history.

    Default: the snapshot's as_of. A month already in the history is replaced, never duplicated.
    Prints a JSON summary (months, merchants, class counts, model version) as the last stdout line.
    """
    _quiet_training_logs()
    from regulator.history import HistoryError
    from regulator.history import score_all as run_score_all
    from training.model_source import ModelUnavailable

    try:
        dates = [date.fromisoformat(d) for d in as_of] if as_of else None
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--as-of") from err
    try:
        result = run_score_all(get_settings(), as_of=dates, months=months, features_dir=features,
                               validated_dir=validated, history_dir=history, model_name=model_name,
                               progress=lambda msg: stderr.print(f"[dim]score-all:[/] {escape(msg)}"))
    except (HistoryError, ModelUnavailable, ValueError, FileNotFoundError) as err:
        stderr.print(f"[bold red]score-all stopped:[/] {escape(str(err))}")
        raise typer.Exit(code=2) from err
    table = Table(title=f"class history in {result['history_dir']} (model {result['model']['name']} "
                        f"v{result['model']['version']})")
    for col in ("month", "as_of", "merchants", "A", "B", "C", "D"):
        table.add_column(col, justify="left" if col in ("month", "as_of") else "right")
    for m in result["months"]:
        table.add_row(m["month"], m["as_of"], f"{m['merchants']:,}", *(f"{m['classes'][c]:,}" for c in "ABCD"))
    stderr.print(table)
    print(json.dumps(result, ensure_ascii=False))


@app.command()
def report(
    month: Annotated[str, typer.Option(help="Report month, YYYY-MM (a month of the class history).")],
    out: Annotated[Path, typer.Option(help="Output HTML file (self-contained: figures embedded).")],
    pdf: Annotated[bool, typer.Option("--pdf", help="Also print it to PDF (OUT with .pdf) if a PDF engine is installed.")] = False,
    history: Annotated[Path | None, typer.Option(help="Class history folder (default: settings' history_dir).")] = None,
    features: Annotated[Path | None, typer.Option(help="Folder with panel.parquet, for outcomes (default: <data_dir>/features).")] = None,
) -> None:
    """Write the regulator report for MONTH: distribution, stability, migration, outcomes, validation evidence.

    Small cells are suppressed exactly as in the regulator API (settings' min_cell_count).
    """
    import re

    _quiet_training_logs()
    from regulator.aggregates import ViewError
    from regulator.history import HistoryError
    from regulator.report import PdfUnavailable, html_to_pdf, write_report
    from regulator.views import RegulatorViews

    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        raise typer.BadParameter(f"expected YYYY-MM, got {month!r}", param_hint="--month")
    settings = get_settings()
    views = RegulatorViews(settings, history_dir=history, panel=features / "panel.parquet" if features else None)
    try:
        result = write_report(views, month, out)
    except (HistoryError, ViewError) as err:
        stderr.print(f"[bold red]report stopped:[/] {escape(str(err))}")
        raise typer.Exit(code=2) from err
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


def _serving_env(settings) -> dict[str, str]:
    """Every setting as an absolute LIFECREDIT_* variable, for a server process started elsewhere."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("LIFECREDIT_")}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, Path):
            value = value.resolve()
        elif isinstance(value, bool):
            value = "true" if value else "false"
        env[f"LIFECREDIT_{name.upper()}"] = str(value)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env.setdefault("BENTOML_DO_NOT_TRACK", "true")
    env.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return env


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default: settings' host, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port (default: settings' port, 3000).")] = None,
    model_name: Annotated[str | None, typer.Option(help="Registered model whose 'champion' serves.")] = None,
    features: Annotated[Path | None, typer.Option(help="Folder with latest.parquet (default: <data_dir>/features).")] = None,
) -> None:
    """Start the scoring and decision service (BentoML) in the foreground; Ctrl-C stops it.

    Checks first that a champion and a feature snapshot exist (and says which command makes
    them); the server then reports ready at /readyz once both are loaded.
    """
    import os
    import shutil
    import sys

    _quiet_training_logs()
    from core.settings import Settings
    from training.model_source import ModelUnavailable, from_mlflow

    overrides = {k: v for k, v in {"host": host, "port": port, "model_name": model_name,
                                   "snapshot_dir": features}.items() if v is not None}
    settings = Settings(**{**get_settings().model_dump(), **overrides})
    snapshot = settings.serving_snapshot_dir / "latest.parquet"
    if not snapshot.exists():
        stderr.print(f"[bold red]serve stopped:[/] no feature snapshot at {escape(str(snapshot))}: build it with "
                     "`lifecredit features` (or pass --features DIR)")
        raise typer.Exit(code=2)
    try:
        handle = from_mlflow(settings)
    except ModelUnavailable as err:
        stderr.print(f"[bold red]serve stopped:[/] {escape(str(err))}")
        raise typer.Exit(code=2) from err
    keys = _key_store().list()
    if not any(k.active for k in keys):
        stderr.print("[yellow]note:[/] no API keys yet; create one with `lifecredit keys create --role bank`")
    bentoml_bin = shutil.which("bentoml", path=str(Path(sys.executable).parent)) or "bentoml"
    root = Path(__file__).resolve().parent.parent
    stderr.print(f"serving {settings.model_name} version {handle.version} with {escape(str(snapshot))} on "
                 f"http://{settings.host}:{settings.port} (ready at /readyz once loaded)")
    sys.stdout.flush()
    os.execve(bentoml_bin, [bentoml_bin, "serve", "serving.service:LifeCredit", "--host", settings.host,
                            "--port", str(settings.port), "--working-dir", str(root)], _serving_env(settings))


@app.command()
def replay(
    decision_id: Annotated[str, typer.Argument(help="decision_id from a /score, /score_batch or /decide answer.")],
    show: Annotated[bool, typer.Option(help="Print the replayed outputs as JSON.")] = True,
) -> None:
    """Recompute an audited answer with its model version, features and policy; exit 1 if it differs."""
    _quiet_training_logs()
    from serving.replay import ReplayError
    from serving.replay import replay as run_replay

    try:
        result = run_replay(get_settings(), decision_id)
    except ReplayError as err:
        stderr.print(f"[bold red]replay stopped:[/] {escape(str(err))}")
        raise typer.Exit(code=2) from err
    r = result.record
    stderr.print(f"{r['endpoint']} at {r['created_at']} by {escape(r['key_name'])}: model {r['model_name']} "
                 f"v{r['model_version']}, features as of {r['features_as_of']}, policy {r['policy_version'] or '-'}")
    if show:
        print(json.dumps({"decision_id": decision_id, "matches": result.matches, "outputs": result.replayed},
                         ensure_ascii=False))
    if result.matches:
        stderr.print("[green]replayed outputs match the audit record[/]")
        return
    for line in result.differences[:20]:
        stderr.print(f"[bold red]differs[/] {escape(line)}")
    raise typer.Exit(code=1)


bento_app = typer.Typer(help="Package the champion as a Bento (the artefact a bank deploys).", no_args_is_help=True)
app.add_typer(bento_app, name="bento")


@bento_app.command("build")
def bento_build(
    model_name: Annotated[str | None, typer.Option(help="Registered model whose 'champion' to package.")] = None,
) -> None:
    """Import the champion (bundle, card, policy) into the BentoML model store and build a Bento.

    The Bento serves the same API from the packed model, without the MLflow registry; serve
    it with `bentoml serve TAG` (LIFECREDIT_* settings still say where the snapshot, keys and
    audit log live). Prints the Bento tag as the last stdout line.
    """
    _quiet_training_logs()
    from serving.bento import build_bento
    from training.model_source import ModelUnavailable

    try:
        result = build_bento(get_settings(), model_name=model_name, progress=lambda m: stderr.print(f"[dim]bento:[/] {m}"))
    except ModelUnavailable as err:
        stderr.print(f"[bold red]bento build stopped:[/] {escape(str(err))}")
        raise typer.Exit(code=2) from err
    stderr.print(f"built Bento {result['bento']} with model {result['model']}; serve it with "
                 f"`bentoml serve {result['bento']}`")
    print(json.dumps(result))


@app.command("truth-check")
def truth_check(
    model: Annotated[str | None, typer.Option(help="Model URI: models:/NAME/VERSION, models:/NAME@ALIAS or runs:/RUN_ID/model (default: models:/<model_name>@champion).")] = None,
    features: Annotated[Path | None, typer.Option(help="Feature folder with panel.parquet and latest.parquet (default: <data_dir>/features).")] = None,
    truth: Annotated[Path | None, typer.Option(help="The simulator's truth.parquet (default: <data_dir>/raw/truth.parquet).")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for truth_check.json (default: <data_dir>/truth_check).")] = None,
    as_of: Annotated[
        list[str] | None, typer.Option("--as-of", help="Check these dates, YYYY-MM-DD (repeatable; default: the latest date in both truth and features).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the ceiling's holdout and fit.")] = 7,
    log: Annotated[bool, typer.Option(help="Log the JSON and truth.* metrics to the model's run (local MLflow store only).")] = True,
) -> None:
    """Judge a model of a simulated market against the true PD (truth.parquet), beside a feature ceiling.

    Rows: the latest month in both truth and features (or --as-of), less rows that trained or calibrated the model and merchants already in default; every figure for all merchants and for the unseen ones (none of their rows trained or calibrated the model).

    Spearman: rank correlation of the model's pd with true_pd_12m (1 = same order).
    kappa: quadratic-weighted Cohen's kappa, model class vs true class (its master scale on true_pd_12m), A<B<C<D.
    confusion, shares: merchants per (true class, model class); share per class under the model and the truth.
    mean PD vs mean true PD: per model class and per model grade.
    calibration slope, intercept: OLS of logit(true PD) on logit(pd); 1 and 0 are perfect (slope < 1: pd spread too wide).
    logit offset: mean of logit(true PD) - logit(pd), the intercept at slope 1; > 0: pd too low, < 0: too high.
    AUC pd, AUC true PD: against the observed label bad where those rows have labels (else skipped).
    ceiling: LightGBM fitted to logit(true PD) on the model's own training rows and features; its Spearman and kappa.
    ratios: model / ceiling, for Spearman and kappa (1: the model gets what the features carry).

    Writes OUT/truth_check.json; with a local MLflow store also logs it (truth_check/truth_check.json) and truth.* metrics to the model's run. The last stdout line is a JSON summary. Needs a run that logged evaluation/split_rows.parquet.
    """
    _quiet_training_logs()
    from truth_check import TruthCheckError
    from truth_check import run as run_check
    from truth_check.tables import tables

    settings = get_settings()
    try:
        dates = [date.fromisoformat(d) for d in as_of] if as_of else None
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--as-of") from err
    uri = model or f"models:/{settings.model_name}@champion"
    try:
        result = run_check(uri, features or settings.features_dir, truth or settings.raw_dir / "truth.parquet",
                           out_dir=out or settings.data_dir / "truth_check", as_of=dates, seed=seed, log=log,
                           progress=lambda msg: stderr.print(f"[dim]truth-check:[/] {escape(msg)}"))
    except (TruthCheckError, FileNotFoundError, ValueError) as err:
        stderr.print(f"[bold red]truth-check stopped:[/] {escape(str(err))}")
        raise typer.Exit(code=2) from err
    for table in tables(result):
        stdout.print(table)
    stderr.print(f"written {result['out']}" + (f"; logged to run {result['model']['run_id']}" if result["logged"] else ""))
    a, u = result["all"], result["unseen"]
    keys = ("rows", "spearman", "kappa", "spearman_ratio", "kappa_ratio")
    print(json.dumps({"model_uri": uri, "run_id": result["model"]["run_id"], "as_of": result["rows"]["as_of"],
                      **{k: a.get(k) for k in keys}, "ceiling_spearman": a["ceiling"]["spearman"],
                      "ceiling_kappa": a["ceiling"]["kappa"], "calibration": a["calibration"],
                      "unseen": {**{k: u.get(k) for k in keys}, "ceiling_spearman": u["ceiling"]["spearman"],
                                 "ceiling_kappa": u["ceiling"]["kappa"]},
                      "out": result["out"], "logged": result["logged"]}))


@app.command("settings")
def show_settings(
    field: Annotated[str | None, typer.Option(help="Print only this setting's value (e.g. tracking_uri).")] = None,
) -> None:
    """Print the effective settings (after LIFECREDIT_* overrides) as JSON, or one value."""
    values = get_settings().model_dump(mode="json")
    if field is None:
        stdout.print_json(json.dumps(values))
        return
    if field not in values:
        stderr.print(f"[bold red]error:[/] no setting {field!r}; known: {', '.join(values)}")
        raise typer.Exit(code=2)
    print(values[field])


if __name__ == "__main__":
    app()
