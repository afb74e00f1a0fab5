"""The ``lifecredit`` command line: one command per stage, wiring settings to stage functions."""

from __future__ import annotations

import json
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lifecredit.progress import progress_bar, stderr
from lifecredit.settings import get_settings

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


@app.command()
def simulate(
    merchants: Annotated[int, typer.Option(min=1, help="Number of merchants.")] = 2000,
    months: Annotated[int, typer.Option(min=1, help="Months of history to generate.")] = 24,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same market.")] = 7,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: <data_dir>/raw).")] = None,
    defect_rate: Annotated[float, typer.Option(min=0.0, max=0.5, help="Share of rows corrupted in realistic ways.")] = 0.0,
    scenario: Annotated[Scenario, typer.Option(help="baseline, or downturn (a broad shock).")] = Scenario.baseline,
    volume_scale: Annotated[float, typer.Option(min=0.001, max=10.0, help="Thin (or thicken) transaction volume.")] = 1.0,
    start: Annotated[str, typer.Option(help="First month simulated, YYYY-MM-01.")] = "2023-01-01",
) -> None:
    """Simulate a life-service market: six raw tables plus truth.parquet (evaluation only)."""
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


@app.command("settings")
def show_settings() -> None:
    """Print the effective settings (after LIFECREDIT_* overrides) as JSON."""
    stdout.print_json(json.dumps(get_settings().model_dump(mode="json")))


if __name__ == "__main__":
    app()
