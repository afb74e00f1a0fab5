"""Inspection commands (双随机、一公开): draw a plan, record results, the finding rate; simulate-inspections."""

from __future__ import annotations

import getpass
import json
import re
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from core.settings import get_settings
from core.vocabulary import CLASSES
from lifecredit.cli.common import app, stderr, stop

inspections_app = typer.Typer(
    help="Inspection plans by credit-risk class (双随机、一公开): draw, record results, finding rate.",
    no_args_is_help=True,
)
app.add_typer(inspections_app, name="inspections")
MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


def _who() -> str:
    """The audit record's key name for a command-line call: ``cli:<login>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _append_audit(command: str, record) -> str:
    """Commit ``record`` to the configured audit log (fail closed: no record, no output)."""
    from core.audit import AuditLog, AuditUnavailable, is_postgres

    url = get_settings().audit_url
    try:
        log = AuditLog(url) if is_postgres(url) else AuditLog(url, checkpoint_seconds=None)
        try:
            return log.append(record)
        finally:
            log.close()
    except AuditUnavailable as err:
        stop(command, f"{err} (nothing written: every plan is audited)")


@inspections_app.command("plan")
def plan(
    month: Annotated[str, typer.Option(help="Plan month, YYYY-MM (a month of the class history).")],
    out: Annotated[Path, typer.Option(help="Plan file to write (canonical JSON: the same inputs, the same bytes).")],
    policy: Annotated[
        Path | None, typer.Option(help="Policy YAML (default: the shipped regulator/inspection_policy.yaml).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(min=0, max=2**63 - 1, help="Published seed (default: the month as YYYYMM).")
    ] = None,
    history: Annotated[Path | None, typer.Option(help="Class history folder (default: settings' history_dir).")] = None,
    validated: Annotated[
        Path | None, typer.Option(help="Validated tables, for closed merchants (default: <data_dir>/validated).")
    ] = None,
) -> None:
    """Draw a random inspection plan for MONTH, stratified by class x province with the policy's ratios.

    Writes OUT, keeps a copy under <var_dir>/inspections/plans/ and audits the plan, its policy hash and
    its seed. Prints the plan's summary (plan_id, seed, policy, counts) as the last stdout line.
    """
    from pydantic import ValidationError

    from regulator import inspections as ins
    from regulator.common import ViewError
    from regulator.history import HistoryError

    if not MONTH.fullmatch(month):
        raise typer.BadParameter(f"expected YYYY-MM, got {month!r}", param_hint="--month")
    settings = get_settings()
    try:
        chosen = ins.load_policy(policy or ins.POLICY_FILE)
    except (OSError, ValidationError, ins.InspectionError) as err:
        stop("inspections plan", f"policy {policy or ins.POLICY_FILE}: {err}")
    given = seed is not None
    seed = seed if given else ins.default_seed(month)
    try:
        drawn = ins.make_plan(settings, month, chosen, seed, history_dir=history, validated_dir=validated)
    except (HistoryError, ViewError, ins.InspectionError) as err:
        stop("inspections plan", err)
    request = {"month": month, "seed": seed, "seed_given": given, "policy": chosen.version}
    record = ins.plan_audit_record(drawn, endpoint=ins.CLI_PLAN_ENDPOINT, key_name=_who(), request=request)
    audit_id = _append_audit("inspections plan", record)
    data = ins.plan_bytes(drawn)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    stored, _ = ins.store_plan(settings, drawn)
    table = Table(title=f"plan {drawn['plan_id']} for {month} (seed {seed}, policy {chosen.version})")
    for col in ("class", "ratio", "eligible", "drawn"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for c in CLASSES:
        rows = [s for s in drawn["strata"] if s["class"] == c]
        table.add_row(
            c, f"{chosen.ratios[c]:.2%}", f"{sum(s['eligible'] for s in rows):,}", f"{sum(s['drawn'] for s in rows):,}"
        )
    stderr.print(table)
    stderr.print(
        f"seed {seed} ({'given' if given else 'default: the month as YYYYMM'}); policy sha256 {chosen.sha256}; "
        f"excluded: {len(drawn['excluded']['recently_inspected'])} recently inspected, "
        f"{len(drawn['excluded']['closed'])} closed; written {out} and {stored}; audited as {audit_id}"
    )
    print(json.dumps({**ins.plan_summary(drawn), "out": str(out), "stored": str(stored), "audit_id": audit_id}))


@inspections_app.command("list")
def list_plans(month: Annotated[str | None, typer.Option(help="Only plans of this month, YYYY-MM.")] = None) -> None:
    """List the stored plans (<var_dir>/inspections/plans/) as JSON lines."""
    from regulator.inspections import list_plans as stored

    if month is not None and not MONTH.fullmatch(month):
        raise typer.BadParameter(f"expected YYYY-MM, got {month!r}", param_hint="--month")
    for summary in stored(get_settings(), month):
        print(json.dumps(summary))


@inspections_app.command("record")
def record(
    file: Annotated[
        Path,
        typer.Option(
            help="Results CSV: merchant_id, inspected_on (YYYY-MM-DD), finding none|minor|serious, "
            "plan_id (optional), inspector (optional)."
        ),
    ],
    validated: Annotated[
        Path | None, typer.Option(help="Validated tables, for the known merchants (default: <data_dir>/validated).")
    ] = None,
) -> None:
    """Record inspection results: valid rows appended to <data_dir>/inspections/results/, bad rows quarantined.

    Checked by the contract data_contracts/contracts/inspections.yaml and against the stores (not in the
    future, a known plan that drew the merchant, not recorded before); recording the same file again
    appends nothing. Prints the counts as the last stdout line.
    """
    from data_contracts import TableError
    from regulator import inspections as ins

    try:
        summary = ins.record_results(get_settings(), file, validated_dir=validated)
    except (TableError, ins.InspectionError) as err:
        stop("inspections record", err)
    if summary["already_recorded"]:
        stderr.print(
            f"{file} (sha256 {summary['sha256'][:16]}…) is already recorded in {summary['results']}: nothing appended"
        )
    else:
        summary["audit_id"] = _append_audit("inspections record", ins.results_audit_record(summary, key_name=_who()))
        stderr.print(
            f"{summary['rows_in']:,} rows: {summary['valid']:,} recorded -> {summary['results']}, "
            f"{summary['rejected']:,} quarantined -> {summary['quarantine']}"
        )
        for rule, n in summary["rejected_by_rule"].items():
            stderr.print(f"  {escape(rule)}: {n:,}")
    print(json.dumps(summary))


@inspections_app.command("findings")
def findings(
    from_month: Annotated[str | None, typer.Option("--from", help="First month of inspections, YYYY-MM.")] = None,
    to_month: Annotated[str | None, typer.Option("--to", help="Last month of inspections, YYYY-MM.")] = None,
) -> None:
    """The finding rate per credit-risk class with Jeffreys intervals (small cells suppressed), as JSON."""
    from regulator.common import ViewError
    from regulator.history import HistoryError
    from regulator.inspections import findings_view

    try:
        view = findings_view(get_settings(), from_month, to_month)
    except (HistoryError, ViewError) as err:
        stop("inspections findings", err)
    print(json.dumps(view, ensure_ascii=False))


@app.command("simulate-inspections")
def simulate_inspections(
    plan: Annotated[Path, typer.Option(help="A plan file written by `lifecredit inspections plan`.")],
    raw: Annotated[Path, typer.Option(help="The simulated market's folder (its truth.parquet).")],
    out: Annotated[Path, typer.Option(help="Results CSV to write (for `lifecredit inspections record`).")],
    seed: Annotated[int | None, typer.Option(min=0, help="Seed of the findings (default: the plan's seed).")] = None,
) -> None:
    """Simulated markets only: inspect every merchant of a plan, findings likelier the higher its true PD.

    Evaluation only, like truth.parquet: nothing on the scoring path reads the result.
    """
    from simulation.inspections import simulate_findings

    truth = raw / "truth.parquet"
    if not truth.is_file():
        stop("simulate-inspections", f"no {truth}: --raw is the folder `lifecredit simulate` wrote")
    try:
        drawn = json.loads(plan.read_bytes())
        results = simulate_findings(drawn, truth, seed)
    except (OSError, ValueError, KeyError) as err:
        stop("simulate-inspections", f"{plan}: {err}")
    out.parent.mkdir(parents=True, exist_ok=True)
    results.write_csv(out)
    counts = dict(results.group_by("finding").len().iter_rows())
    stderr.print(f"{results.height:,} inspections simulated for plan {drawn['plan_id']} -> {out}: {counts}")
    print(json.dumps({"plan_id": drawn["plan_id"], "out": str(out), "inspections": results.height, "findings": counts}))
