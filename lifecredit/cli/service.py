"""Service commands: API keys, serve, replay, the Bento, settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from core.settings import get_settings
from lifecredit.cli.common import app, quiet_training_logs, stderr, stdout, stop

keys_app = typer.Typer(
    help="API keys for banks, regulators, admins and merchants (only salted hashes are stored).", no_args_is_help=True
)


app.add_typer(keys_app, name="keys")


def _key_store():
    from serving.keys import KeyStore

    return KeyStore(get_settings().api_keys_file)


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="bank, regulator, admin or merchant.")],
    name: Annotated[str | None, typer.Option(help="Who holds the key (default: <role>-<id>).")] = None,
    merchant: Annotated[
        str | None,
        typer.Option(help="Role merchant: the merchant id the key is bound to (it reaches that merchant's data only)."),
    ] = None,
) -> None:
    """Create a key and print it once: it is not stored and cannot be shown again."""
    if merchant:
        _check_merchant_known(merchant)
    try:
        key = _key_store().create(role, name, merchant_id=merchant)
    except ValueError as err:
        stop("keys create", err)
    stderr.print("New key (shown once; send it as 'Authorization: Bearer <key>'):")
    print(key)


def _check_merchant_known(merchant_id: str) -> None:
    """Stop when the serving snapshot exists and does not hold ``merchant_id`` (a typo would make a useless key)."""
    import polars as pl

    snapshot = get_settings().serving_snapshot_dir / "latest.parquet"
    if not snapshot.is_file():
        stderr.print(f"[yellow]note:[/] no feature snapshot at {snapshot}; merchant {merchant_id} not checked")
        return
    found = pl.scan_parquet(snapshot).filter(pl.col("merchant_id") == merchant_id).select(pl.len()).collect().item()
    if not found:
        stop("keys create", f"merchant {merchant_id!r} is not in the feature snapshot {snapshot}; check the id")


@keys_app.command("list")
def keys_list() -> None:
    """List keys: id, name, role, bound merchant, created, revoked. Never the keys themselves."""
    table = Table(title=f"API keys ({get_settings().api_keys_file})")
    for col in ("id", "name", "role", "merchant", "created", "revoked"):
        table.add_column(col)
    for k in _key_store().list():
        table.add_row(k.key_id, k.name, k.role, k.merchant_id or "-", k.created_at, k.revoked_at or "-")
    stdout.print(table)


@keys_app.command("revoke")
def keys_revoke(name_or_id: Annotated[str, typer.Argument(help="Key name or id, as `keys list` shows.")]) -> None:
    """Revoke a key; a running server refuses it from its next request on."""
    from serving.keys import UnknownKey

    try:
        key = _key_store().revoke(name_or_id)
    except UnknownKey as err:
        stop("keys revoke", err)
    stdout.print(f"revoked {key.name} ({key.key_id}, role {key.role})")


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
    features: Annotated[
        Path | None, typer.Option(help="Folder with latest.parquet (default: <data_dir>/features).")
    ] = None,
    answers: Annotated[
        Path | None,
        typer.Option(help="Answer stores folder, as `score-all` wrote it (default: settings' answers_dir)."),
    ] = None,
    answer_store: Annotated[
        Path | None,
        typer.Option(
            help="Serve exactly this answer store folder; refused (not ready, with the reason) unless it was "
            "computed for the champion, the snapshot and the policy."
        ),
    ] = None,
) -> None:
    """Start the scoring and decision service (BentoML) in the foreground; Ctrl-C stops it.

    Checks first that a champion and a feature snapshot exist (and says which command makes
    them). The server opens the answer store `lifecredit score-all` wrote for the champion, the
    snapshot and the policy (memory-mapped: ready in seconds whatever the book's size); without
    one it computes the store itself first. It reports ready at /readyz once the store is open.
    """
    import os
    import shutil
    import sys

    quiet_training_logs()
    import json
    import time

    from core.settings import RESOLVED_CHAMPION_ENV, Settings
    from training.model_source import ModelUnavailable, from_mlflow

    overrides = {
        k: v
        for k, v in {
            "host": host,
            "port": port,
            "model_name": model_name,
            "snapshot_dir": features,
            "answers_dir": answers,
            "answer_store": answer_store,
        }.items()
        if v is not None
    }
    settings = Settings(**{**get_settings().model_dump(), **overrides})
    snapshot = settings.serving_snapshot_dir / "latest.parquet"
    if not snapshot.exists():
        stop(
            "serve", f"no feature snapshot at {snapshot}: build it with `lifecredit features` (or pass --features DIR)"
        )
    try:
        handle = from_mlflow(settings)
    except ModelUnavailable as err:
        stop("serve", err)
    keys = _key_store().list()
    if not any(k.active for k in keys):
        stderr.print("[yellow]note:[/] no API keys yet; create one with `lifecredit keys create --role bank`")
    bentoml_bin = shutil.which("bentoml", path=str(Path(sys.executable).parent)) or "bentoml"
    root = Path(__file__).resolve().parents[2]
    stderr.print(
        f"serving {settings.model_name} version {handle.version} with {escape(str(snapshot))} on "
        f"http://{settings.host}:{settings.port} (ready at /readyz once loaded)"
    )
    sys.stdout.flush()
    resolved = {"model_name": handle.name, "version": handle.version, "run_id": handle.run_id, "at": time.time()}
    os.execve(
        bentoml_bin,
        [
            bentoml_bin,
            "serve",
            "serving.service:LifeCredit",
            "--host",
            settings.host,
            "--port",
            str(settings.port),
            "--working-dir",
            str(root),
        ],
        {**_serving_env(settings), RESOLVED_CHAMPION_ENV: json.dumps(resolved)},
    )


@app.command()
def replay(
    decision_id: Annotated[str, typer.Argument(help="decision_id from a /score, /score_batch or /decide answer.")],
    show: Annotated[bool, typer.Option(help="Print the replayed outputs as JSON.")] = True,
) -> None:
    """Recompute an audited answer with its model version, features and policy; exit 1 if it differs."""
    quiet_training_logs()
    from serving.replay import ReplayError
    from serving.replay import replay as run_replay

    try:
        result = run_replay(get_settings(), decision_id)
    except ReplayError as err:
        stop("replay", err)
    r = result.record
    stderr.print(
        f"{r['endpoint']} at {r['created_at']} by {escape(r['key_name'])}: model {r['model_name']} "
        f"v{r['model_version']}, features as of {r['features_as_of']}, policy {r['policy_version'] or '-'}"
    )
    if show:
        print(
            json.dumps(
                {"decision_id": decision_id, "matches": result.matches, "outputs": result.replayed}, ensure_ascii=False
            )
        )
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
    quiet_training_logs()
    from serving.bento import build_bento
    from training.model_source import ModelUnavailable

    try:
        result = build_bento(
            get_settings(), model_name=model_name, progress=lambda m: stderr.print(f"[dim]bento:[/] {m}")
        )
    except ModelUnavailable as err:
        stop("bento build", err)
    stderr.print(
        f"built Bento {result['bento']} with model {result['model']}; serve it with `bentoml serve {result['bento']}`"
    )
    print(json.dumps(result))


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
        stop("settings", f"no setting {field!r}; known: {', '.join(values)}")
    print(values[field])
