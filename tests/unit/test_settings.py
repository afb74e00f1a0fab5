"""Settings: typed, overridable by LIFECREDIT_* variables, typos refused."""

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from core.settings import Settings
from lifecredit.cli import app


def test_environment_overrides_and_derived_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("LIFECREDIT_PORT", "3999")
    monkeypatch.setenv("LIFECREDIT_MLRUNS_DIR", str(tmp_path / "store"))
    s = Settings()
    assert s.port == 3999
    assert s.tracking_uri == f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    assert s.artifact_root == tmp_path / "store" / "artifacts"
    assert s.api_keys_file == s.var_dir / "api_keys.json"


def test_unknown_variable_is_an_error_naming_it(monkeypatch):
    monkeypatch.setenv("LIFECREDIT_PROT", "3000")
    with pytest.raises(ValidationError, match="LIFECREDIT_PROT"):
        Settings()


def test_wrong_type_is_an_error(monkeypatch):
    monkeypatch.setenv("LIFECREDIT_PORT", "http")
    with pytest.raises(ValidationError, match="port"):
        Settings()


def test_cli_prints_one_setting(monkeypatch):
    monkeypatch.setenv("LIFECREDIT_MODEL_NAME", "my-model")
    from core.settings import get_settings

    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["settings", "--field", "model_name"])
    assert result.exit_code == 0 and result.stdout.strip() == "my-model"
    assert CliRunner().invoke(app, ["settings", "--field", "nope"]).exit_code == 2
