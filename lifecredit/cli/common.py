"""What every command group shares: the Typer app, the consoles, the one way a command stops, option types."""

from __future__ import annotations

import os
from enum import Enum
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from lifecredit.progress import stderr

app = typer.Typer(
    name="lifecredit",
    help="Credit-risk scoring for small life-service merchants: simulate, validate, build features, train, serve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
stdout = Console()

__all__ = [
    "ENGINE_HELP",
    "SCHEDULER_HELP",
    "Engine",
    "app",
    "check_engine",
    "quiet_training_logs",
    "split_list",
    "stderr",
    "stdout",
    "stop",
]


def stop(command: str, problem: BaseException | str, code: int = 2) -> NoReturn:
    """Print ``<command> stopped: <what went wrong>`` on stderr and exit with ``code`` (2: bad input or state)."""
    text = problem if isinstance(problem, str) else getattr(problem, "message", None) or str(problem)
    stderr.print(f"[bold red]{command} stopped:[/] {escape(str(text))}")
    if isinstance(problem, BaseException):
        raise typer.Exit(code=code) from problem
    raise typer.Exit(code=code)


class Engine(str, Enum):
    local = "local"
    dask = "dask"


ENGINE_HELP = "local (this process) or dask (a Dask cluster: --scheduler, or a local one of 2 workers)."
SCHEDULER_HELP = (
    "With --engine dask: the Dask scheduler address, e.g. tcp://host:8786 (default: start a local cluster)."
)


def check_engine(engine: Engine, scheduler: str | None) -> None:
    if scheduler is not None and engine is not Engine.dask:
        raise typer.BadParameter(
            "--scheduler runs on Dask: add --engine dask (or drop --scheduler)", param_hint="--scheduler"
        )


def quiet_training_logs() -> None:
    """LightGBM threads wait passively (set before lightgbm loads); MLflow's INFO chatter off."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


def split_list(text: str | None) -> list[str]:
    """``"A, B"`` -> ``["A", "B"]`` (comma-separated option values)."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]
