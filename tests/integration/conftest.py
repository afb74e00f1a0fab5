"""Fixtures shared by the training tests: temporary MLflow stores and the synthetic feature panel.

Never the real ``mlruns/``: every store is a copy of one empty SQLite database made per session
(creating one runs ~100 migrations, ~10 s), in a temporary folder.

- ``mlflow_template``: the empty database (a path);
- ``mlflow_store``: ``.new(dir=None)`` copies the template into ``dir`` (or a fresh temporary
  folder) and returns the folder; ``.use(dir)`` is a context manager that points the settings
  (``LIFECREDIT_MLRUNS_DIR``) at it and sets what the CLI sets by default;
- ``synthetic_features``: the synthetic panel of ``test_train_synthetic`` (a known signal);
- ``regulator``: the served champion's settings with a class history of ``REGULATOR_MONTHS`` months.
"""

from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

from helpers import REGULATOR_MONTHS


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory) -> Path:
    """An empty MLflow SQLite database, made once per session."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow_template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


class MlflowStores:
    """Temporary MLflow stores copied from the session's empty template."""

    def __init__(self, template: Path, tmp_path_factory):
        self.template = template
        self._factory = tmp_path_factory

    def new(self, directory: Path | None = None) -> Path:
        directory = Path(directory) if directory is not None else self._factory.mktemp("mlruns")
        directory.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.template, directory / "mlflow.db")
        return directory

    @staticmethod
    @contextmanager
    def use(directory: Path):
        """Settings and CLI defaults pointed at ``directory`` for the duration of the block."""
        from core.settings import get_settings

        with pytest.MonkeyPatch.context() as mp:
            for var, value in (
                ("OMP_WAIT_POLICY", "PASSIVE"),
                ("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false"),
                ("MLFLOW_LOGGING_LEVEL", "WARNING"),
                ("LIFECREDIT_MLRUNS_DIR", str(directory)),
            ):
                mp.setenv(var, value)
            get_settings.cache_clear()
            try:
                yield directory
            finally:
                get_settings.cache_clear()


@pytest.fixture(scope="session")
def mlflow_store(mlflow_template, tmp_path_factory) -> MlflowStores:
    return MlflowStores(mlflow_template, tmp_path_factory)


@pytest.fixture(scope="session")
def synthetic_features(tmp_path_factory) -> Path:
    from test_train_synthetic import write_synthetic_panel

    return write_synthetic_panel(tmp_path_factory.mktemp("synthetic_features"))


@pytest.fixture(scope="module")
def regulator(served_champion, validated_market, tmp_path_factory):
    """The champion's settings plus a history folder and a var folder of the module; score-all run once per module."""
    from typer.testing import CliRunner

    from core.settings import get_settings
    from lifecredit.cli import app

    root = tmp_path_factory.mktemp("regulator")
    env = {
        **served_champion["env"],
        "LIFECREDIT_HISTORY_DIR": str(root / "history"),
        "LIFECREDIT_VAR_DIR": str(root / "var"),
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        get_settings.cache_clear()
        res = CliRunner().invoke(
            app, ["score-all", "--months", str(REGULATOR_MONTHS), "--validated", str(validated_market)]
        )
        assert res.exit_code == 0, res.output
        summary = json.loads(res.stdout.strip().splitlines()[-1])
    get_settings.cache_clear()
    return {
        "env": env,
        "summary": summary,
        "root": root,
        "features": served_champion["features"],
        "validated": validated_market,
    }
