"""Model commands, in pipeline order: train, truth-check, promote."""

from __future__ import annotations

import gc
import json
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from core.settings import get_settings
from lifecredit.cli.common import (
    ENGINE_HELP,
    SCHEDULER_HELP,
    Engine,
    app,
    check_engine,
    quiet_training_logs,
    split_list,
    stderr,
    stdout,
    stop,
)


@app.command()
def train(
    features: Annotated[
        Path | None, typer.Option(help="Feature folder with panel.parquet (default: <data_dir>/features).")
    ] = None,
    table: Annotated[
        Path | None, typer.Option(help="Bring your own table (Parquet or CSV) instead of the feature panel.")
    ] = None,
    target: Annotated[str | None, typer.Option(help="With --table: the 0/1 label column.")] = None,
    id_col: Annotated[str | None, typer.Option("--id", help="With --table: the row id column.")] = None,
    time_col: Annotated[
        str | None,
        typer.Option(
            help="With --table: test on --id values held out whole, rows late on this column (default: stratified random)."
        ),
    ] = None,
    categorical: Annotated[
        str | None, typer.Option(help="With --table: categorical columns, A,B (string columns always are).")
    ] = None,
    monotone: Annotated[
        str | None, typer.Option(help="With --table: risk directions, COL=1,COL=-1 (+1 riskier as it grows).")
    ] = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment.")] = "lifecredit",
    model_name: Annotated[
        str | None,
        typer.Option(help="Registered model (default: settings' model_name; byo-<table stem> with --table)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed; same data and seed, same metrics.")] = 7,
    tune: Annotated[
        int,
        typer.Option(
            min=0,
            help="Optuna trials (out-of-fold log loss of the cross-fitting) before the final fit (0: fixed parameters).",
        ),
    ] = 0,
    engine: Annotated[
        Engine, typer.Option(help=ENGINE_HELP + " Dask fits the booster only (lightgbm.dask).")
    ] = Engine.local,
    scheduler: Annotated[str | None, typer.Option(help=SCHEDULER_HELP)] = None,
) -> None:
    """Train, calibrate, evaluate, log and register a PD model (alias 'challenger').

    Progress goes to stderr; the last stdout line is one JSON object: run_id, model_uri,
    version and the metrics on the test rows (merchants held out whole, after every booster row;
    with --table and no --time-col, a stratified random draw).
    """
    check_engine(engine, scheduler)
    quiet_training_logs()
    from features.dask_engine import DaskUnavailable
    from training.train import train_from_features, train_from_table

    settings = get_settings()
    on = {"engine": engine.value, "scheduler": scheduler, "settings": settings}
    say = lambda msg: stderr.print(f"[dim]train:[/] {escape(msg)}")  # noqa: E731
    try:
        if table is not None:
            if not target or not id_col:
                raise typer.BadParameter("--table needs --target and --id")
            directions = {}
            for item in split_list(monotone):
                col, _, value = item.partition("=")
                if value.strip() not in ("1", "+1", "-1", "0"):
                    raise typer.BadParameter(f"--monotone expects COL=1 or COL=-1, got {item!r}")
                directions[col.strip()] = int(value)
            result = train_from_table(
                table,
                target=target,
                id_col=id_col,
                time_col=time_col,
                categorical=split_list(categorical),
                monotone=directions,
                experiment=experiment,
                model_name=model_name or f"byo-{table.stem}",
                seed=seed,
                tune=tune,
                progress=say,
                **on,
            )
        else:
            if any(v is not None for v in (target, id_col, time_col, categorical, monotone)):
                raise typer.BadParameter("--target/--id/--time-col/--categorical/--monotone go with --table")
            result = train_from_features(
                features or settings.features_dir,
                experiment=experiment,
                model_name=model_name,
                seed=seed,
                tune=tune,
                progress=say,
                **on,
            )
    except (FileNotFoundError, ValueError, DaskUnavailable) as err:
        stop("train", err)
    m = result["metrics"]
    stderr.print(
        f"test rows: AUC {m['auc']:.4f}, Gini {m['gini']:.4f}, KS {m['ks']:.4f}, ECE {m['ece']:.4f}; "
        f"challenger AUC {result['challenger_metrics']['auc']:.4f}; classes rejected {int(m['classes_rejected'])}"
    )
    print(json.dumps({k: result[k] for k in ("run_id", "model_uri", "version", "metrics", "challenger_metrics")}))
    # the work is done and the process about to end: frozen, the many objects that MLflow,
    # scikit-learn and optbinning loaded are not walked again by the interpreter's final garbage
    # collections, which shortens the exit (figures: benchmarks/RESULTS.md); an in-process caller
    # keeps them as they are, just outside later cyclic collections
    gc.freeze()


@app.command("truth-check")
def truth_check(
    model: Annotated[
        str | None,
        typer.Option(
            help="Model URI: models:/NAME/VERSION, models:/NAME@ALIAS or runs:/RUN_ID/model (default: models:/<model_name>@champion)."
        ),
    ] = None,
    features: Annotated[
        Path | None,
        typer.Option(help="Feature folder with panel.parquet and latest.parquet (default: <data_dir>/features)."),
    ] = None,
    truth: Annotated[
        Path | None, typer.Option(help="The simulator's truth.parquet (default: <data_dir>/raw/truth.parquet).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Folder for truth_check.json (default: <data_dir>/truth_check).")
    ] = None,
    as_of: Annotated[
        list[str] | None,
        typer.Option(
            "--as-of",
            help="Check these dates, YYYY-MM-DD (repeatable; default: the latest date in both truth and features).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the ceiling's holdout and fit.")] = 7,
    log: Annotated[
        bool, typer.Option(help="Log the JSON and truth.* metrics to the model's run (local MLflow store only).")
    ] = True,
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
    quiet_training_logs()
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
        result = run_check(
            uri,
            features or settings.features_dir,
            truth or settings.raw_dir / "truth.parquet",
            settings=settings,
            out_dir=out or settings.data_dir / "truth_check",
            as_of=dates,
            seed=seed,
            log=log,
            progress=lambda msg: stderr.print(f"[dim]truth-check:[/] {escape(msg)}"),
        )
    except (TruthCheckError, FileNotFoundError, ValueError) as err:
        stop("truth-check", err)
    for table in tables(result):
        stdout.print(table)
    stderr.print(
        f"written {result['out']}" + (f"; logged to run {result['model']['run_id']}" if result["logged"] else "")
    )
    a, u = result["all"], result["unseen"]
    keys = ("rows", "spearman", "kappa", "spearman_ratio", "kappa_ratio")
    print(
        json.dumps(
            {
                "model_uri": uri,
                "run_id": result["model"]["run_id"],
                "as_of": result["rows"]["as_of"],
                **{k: a.get(k) for k in keys},
                "ceiling_spearman": a["ceiling"]["spearman"],
                "ceiling_kappa": a["ceiling"]["kappa"],
                "calibration": a["calibration"],
                "unseen": {
                    **{k: u.get(k) for k in keys},
                    "ceiling_spearman": u["ceiling"]["spearman"],
                    "ceiling_kappa": u["ceiling"]["kappa"],
                },
                "out": result["out"],
                "logged": result["logged"],
            }
        )
    )


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
    quiet_training_logs()
    from training.registry import PromotionRefused
    from training.registry import promote as run_gate

    if force and not reason:
        stop("promote", "--force needs --reason (why the gate is overridden; it is recorded)")
    try:
        record = run_gate(version, get_settings(), model_name=model_name, force=force, reason=reason, by=by)
    except PromotionRefused as refused:
        for check in refused.record["checks"]:
            colour = "green" if check["passed"] else "bold red"
            stderr.print(
                f"[{colour}]{'pass' if check['passed'] else 'FAIL'}[/] {check['name']}: {escape(check['detail'])}"
            )
        stderr.print(
            f"[bold red]not promoted:[/] version {version} stays 'challenger'; champion is still "
            f"{refused.record['from_version'] or 'unset'}"
        )
        print(
            json.dumps(
                {k: refused.record[k] for k in ("model_name", "from_version", "to_version", "promoted", "checks")}
            )
        )
        raise typer.Exit(code=1) from refused
    except Exception as err:  # unknown model or version, unreadable run
        stop("promote", err)
    for check in record["checks"]:
        colour = "green" if check["passed"] else "yellow"
        stderr.print(f"[{colour}]{'pass' if check['passed'] else 'fail'}[/] {check['name']}: {escape(check['detail'])}")
    note = " (forced: " + escape(reason or "") + ")" if record["forced"] else ""
    stderr.print(f"champion: version {version} (was {record['from_version'] or 'unset'}){note}")
    print(
        json.dumps({k: record[k] for k in ("model_name", "from_version", "to_version", "promoted", "forced", "checks")})
    )
