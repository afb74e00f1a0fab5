"""All runtime settings in one typed object, overridable by ``LIFECREDIT_*`` variables.

Relative paths resolve against the working directory at load time. A ``LIFECREDIT_*``
variable that names no setting is an error, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "LIFECREDIT_"
AUDIT_SCHEMES = ("sqlite", "postgresql", "postgres", "postgresql+psycopg2")


class Settings(BaseSettings):
    """Where data, models, keys and the audit log live, and where the server listens."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    data_dir: Path = Field(Path("data"), description="Root of runtime data (raw, validated, features).")
    tracking_uri: str = Field(
        "",
        description="MLflow tracking URI (sqlite:///, postgresql://, http://); empty means sqlite:///<mlruns_dir>/mlflow.db.",
    )
    mlruns_dir: Path = Field(Path("mlruns"), description="Embedded MLflow store: SQLite database and artifacts.")
    artifact_dir: Path | None = Field(
        None,
        description="MLflow run artifacts and promotion history; default <mlruns_dir>/artifacts (shared storage when tracking is on PostgreSQL).",
    )
    var_dir: Path = Field(Path("var"), description="Service state: audit database, API keys.")
    audit_url: str = Field(
        "",
        description="Audit store, sqlite:///PATH or postgresql://USER@HOST:PORT/DB; empty means sqlite:///<var_dir>/audit.db.",
    )
    api_keys_file: Path | None = Field(None, description="Salted API-key hashes; default <var_dir>/api_keys.json.")
    model_name: str = Field("lifecredit-merchant-pd", description="Registered MLflow model name.")
    host: str = Field("127.0.0.1", description="Address the scoring server binds.")
    port: int = Field(3000, ge=1, le=65535, description="Port the scoring server binds.")
    snapshot_dir: Path | None = Field(
        None, description="Folder whose latest.parquet the server scores; default <data_dir>/features."
    )
    policy_file: Path | None = Field(None, description="Decision policy YAML; default serving/policy.yaml.")
    answers_dir: Path | None = Field(
        None,
        description="Answer stores (one folder per model version, snapshot and policy), written by score-all and "
        "opened by the server; default <data_dir>/answers.",
    )
    answer_store: Path | None = Field(
        None,
        description="One answer store folder the server must serve (refused unless it matches the champion, "
        "snapshot and policy); default: the matching store under answers_dir, written by the server if missing.",
    )
    serve_workers: int = Field(1, ge=1, le=64, description="Scoring server worker processes (each loads the model).")
    serve_access_log: bool = Field(
        False, description="BentoML access log (the audit log records every scoring call anyway)."
    )
    serve_metrics: bool = Field(
        True, description="Prometheus metrics at /metrics (BentoML middleware; cost: bench_serving.py)."
    )
    serve_max_body_bytes: int = Field(2_000_000, ge=1024, description="Largest request body the server reads.")
    rate_limit_per_minute: int = Field(
        60_000,
        ge=0,
        description="Requests a minute per API key and server worker (token bucket; 0: no limit); over it: 429.",
    )
    rate_limit_burst: int = Field(
        1_000, ge=1, description="Requests a key may send at once before the per-minute rate applies."
    )
    history_dir: Path | None = Field(
        None, description="Class history (Parquet, one folder per month); default <data_dir>/history."
    )
    min_cell_count: int = Field(10, ge=2, description="Regulator views: counts of fewer merchants are suppressed.")
    corrections_dir: Path | None = Field(
        None,
        description="The data steward's corrections (append-only, one Parquet file each); default <data_dir>/corrections.",
    )

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_env(cls, values: dict) -> dict:
        known = {ENV_PREFIX + name.upper() for name in cls.model_fields}
        unknown = sorted(k for k in os.environ if k.upper().startswith(ENV_PREFIX) and k.upper() not in known)
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return values

    @model_validator(mode="after")
    def _fill_derived(self) -> Settings:
        if not self.tracking_uri:
            self.tracking_uri = f"sqlite:///{self.mlruns_dir.resolve() / 'mlflow.db'}"
        if not self.audit_url:
            self.audit_url = f"sqlite:///{self.var_dir.resolve() / 'audit.db'}"
        if self.audit_url.partition("://")[0] not in AUDIT_SCHEMES:
            raise ValueError(f"audit_url {self.audit_url!r}: use sqlite:///PATH or postgresql://USER@HOST:PORT/DB")
        if self.api_keys_file is None:
            self.api_keys_file = self.var_dir / "api_keys.json"
        return self

    @property
    def raw_dir(self) -> Path:
        """Simulated or delivered raw tables (never rewritten)."""
        return self.data_dir / "raw"

    @property
    def validated_dir(self) -> Path:
        """Valid rows per table, with quarantine/ beside them."""
        return self.data_dir / "validated"

    @property
    def features_dir(self) -> Path:
        """Training panel and latest snapshot."""
        return self.data_dir / "features"

    @property
    def serving_snapshot_dir(self) -> Path:
        """Where the server finds latest.parquet (``snapshot_dir`` or the features folder)."""
        return self.snapshot_dir or self.features_dir

    @property
    def answers_root(self) -> Path:
        """Where ``lifecredit score-all`` writes answer stores and the server looks for them (``answers_dir`` or <data_dir>/answers)."""
        return self.answers_dir or self.data_dir / "answers"

    @property
    def class_history_dir(self) -> Path:
        """Where ``lifecredit score-all`` keeps every merchant's monthly class (``history_dir`` or <data_dir>/history)."""
        return self.history_dir or self.data_dir / "history"

    @property
    def consumption_folder(self) -> Path:
        """Where ``lifecredit consumption-index`` writes the monthly consumption aggregates and the index (<data_dir>/consumption)."""
        return self.data_dir / "consumption"

    @property
    def corrections_folder(self) -> Path:
        """Where corrections are appended and whence ``validate`` applies them (``corrections_dir`` or <data_dir>/corrections)."""
        return self.corrections_dir or self.data_dir / "corrections"

    @property
    def objections_file(self) -> Path:
        """Merchants' objections, their resolutions and the re-scores they led to (<var_dir>/objections.db)."""
        return self.var_dir / "objections.db"

    @property
    def artifact_root(self) -> Path:
        """Where MLflow stores run artifacts and the promotion history (``artifact_dir`` or <mlruns_dir>/artifacts)."""
        return self.artifact_dir or self.mlruns_dir / "artifacts"


RESOLVED_CHAMPION_ENV = "LC_SERVE_RESOLVED_CHAMPION"
"""Set by `lifecredit serve` for the server it starts: the champion it has just resolved (JSON: model_name,
version, run_id, at), so the server's first load takes it from the local model cache instead of asking the
registry again. Not a setting (no LIFECREDIT_ prefix): a fact handed from one process to the next."""


def redacted(url: str) -> str:
    """``url`` with its password (if any) shown as ``***``, for messages and model cards."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:***@{host}"))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings read once per process (tests call ``get_settings.cache_clear()``)."""
    return Settings()
