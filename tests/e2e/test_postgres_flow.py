"""Tier 3 on PostgreSQL: train -> promote -> serve -> decide -> replay with MLflow and the audit log there.

A real ``lifecredit serve`` process, the real ``lifecredit replay`` command, and the
PostgreSQL server of ``helpers.pg_admin_url`` (skipped with how to start one when none runs).
The same server also meets an audit database outage (one server start for both: they are the
slow part). The test creates its own databases (random names) and drops them afterwards; the
features come from the session's ``served_champion`` market.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from helpers import BIN, free_port, fresh_database, http, pg_execute, server, set_reachable

pytestmark = pytest.mark.slow  # the fast path (-m "not slow") skips it; the full suite runs it

DECIDE = {"requested_amount_fen": 2_000_000, "term_months": 12, "product": "term_loan"}


def _server_env(settings_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIFECREDIT_")}
    env.update(
        settings_env,
        OMP_WAIT_POLICY="PASSIVE",
        BENTOML_DO_NOT_TRACK="true",
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    return env


def _bank_key(monkeypatch, settings_env: dict[str, str]) -> str:
    from core.settings import get_settings
    from serving.keys import KeyStore

    for k, v in settings_env.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    return KeyStore(get_settings().api_keys_file).create("bank", "pg-bank")


def _merchant(served_champion) -> str:
    import polars as pl

    return pl.read_parquet(served_champion["features"] / "latest.parquet", columns=["merchant_id"])["merchant_id"][0]


def test_postgres_train_promote_serve_decide_replay_and_audit_outage(served_champion, monkeypatch, tmp_path):
    from core.settings import get_settings
    from training.registry import promote
    from training.train import train_from_features

    with fresh_database("lc_mlflow") as mlflow_url, fresh_database("lc_audit") as audit_url:
        settings_env = {
            "LIFECREDIT_TRACKING_URI": mlflow_url,
            "LIFECREDIT_AUDIT_URL": audit_url,
            "LIFECREDIT_MLRUNS_DIR": str(tmp_path / "mlruns"),
            "LIFECREDIT_ARTIFACT_DIR": str(tmp_path / "artifacts"),
            "LIFECREDIT_VAR_DIR": str(tmp_path / "var"),
            "LIFECREDIT_DATA_DIR": str(tmp_path / "data"),
            "LIFECREDIT_SNAPSHOT_DIR": str(served_champion["features"]),
        }
        key = _bank_key(monkeypatch, settings_env)
        monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        trained = train_from_features(served_champion["features"], settings=get_settings(), seed=7)
        promote(trained["version"], get_settings(), force=True, reason="PostgreSQL end-to-end test")
        # MLflow made its tables on first use; the registry and runs live there, artefacts in artifact_dir
        assert pg_execute(mlflow_url, "SELECT version FROM registered_model_aliases WHERE alias = 'champion'") == [
            (int(trained["version"]),)
        ]
        assert pg_execute(mlflow_url, "SELECT artifact_uri FROM runs WHERE run_uuid = %s", (trained["run_id"],))[0][
            0
        ].startswith((tmp_path / "artifacts").as_uri())
        assert not (tmp_path / "mlruns" / "mlflow.db").exists()

        env = _server_env(settings_env)
        port = free_port()
        m = _merchant(served_champion)
        with server([str(BIN / "lifecredit"), "serve", "--port", str(port)], env, port, tmp_path / "serve.log") as url:
            status, decided = http("POST", f"{url}/decide", {"merchant_id": m, **DECIDE}, key)
            assert status == 200 and decided["model_version"] == trained["version"], decided
            status, record = http("GET", f"{url}/decisions/{decided['decision_id']}", None, key)
            assert status == 200 and record["outputs"]["decision"] == decided["decision"]
            _audit_outage_fails_closed(url, key, audit_url, m)
        assert pg_execute(
            audit_url,
            "SELECT endpoint, key_name, merchant_id FROM audit_log WHERE decision_id = %s",
            (decided["decision_id"],),
        ) == [("/decide", "pg-bank", m)]
        log = (tmp_path / "serve.log").read_text()
        assert "audit append failed, answering 503" in log

        # replay loads the model version from the PostgreSQL registry (the server's model cache removed)
        shutil.rmtree(tmp_path / "var" / "models")
        res = subprocess.run(
            [str(BIN / "lifecredit"), "replay", decided["decision_id"]],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert res.returncode == 0, res.stderr[-3000:]
        replayed = json.loads(res.stdout.strip().splitlines()[-1])
        assert replayed["matches"] and replayed["outputs"]["decision"] == decided["decision"]


def _audit_outage_fails_closed(url: str, key: str, audit_url: str, merchant_id: str) -> None:
    """The audit database goes down (issue 9's 'database down'): 503, no decision, no record; back up: served again."""
    decide = {"merchant_id": merchant_id, **DECIDE}
    before = pg_execute(audit_url, "SELECT count(*) FROM audit_log")[0][0]
    set_reachable(audit_url, False)
    for path, body in (("/decide", decide), ("/score", {"merchant_id": merchant_id})):
        status, refused = http("POST", f"{url}{path}", body, key)
        assert status == 503 and "audit store unavailable" in refused["error"], refused
        assert not {"decision_id", "decision", "pd"} & set(refused), refused
    set_reachable(audit_url, True)
    assert pg_execute(audit_url, "SELECT count(*) FROM audit_log")[0][0] == before
    status, again = http("POST", f"{url}/decide", decide, key)  # no restart: the next request reconnects
    assert status == 200, again
    assert pg_execute(audit_url, "SELECT count(*) FROM audit_log")[0][0] == before + 1
