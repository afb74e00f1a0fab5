"""MLflow store, model registry and the promotion gate.

* The tracking and registry URI come from the :class:`core.settings.Settings` the caller passes
  (embedded SQLite by default); each experiment keeps its artefacts under ``settings.artifact_root``.
* Every registered version gets alias ``challenger``. Alias ``champion`` moves only through
  :func:`promote`.
* The gate compares version N with the current champion **on N's test window** (the rows
  logged with N's run as ``evaluation/test_window.parquet``), both scored through their
  registered pyfunc models:

  - ``jeffreys_class_X`` (always): class X is not rejected by the one-sided Jeffreys test at 1%
    (each merchant counted once: its monthly rows share one outcome window; see
    ``training.evaluate``);
  - ``score_psi_train_test`` (always): N's score PSI between its train and test windows < 0.25;
  - ``auc_vs_champion`` (with a champion): AUC(N) >= AUC(champion) - 0.01;
  - ``score_psi_vs_champion`` (with a champion): PSI of N's scores against the champion's < 0.25;
  - ``champion_scores_test_window`` fails when the champion cannot score N's rows at all
    (another feature set): compare them by hand, then ``--force``.

  With no champion yet only the absolute checks apply. ``force=True`` (with a reason)
  promotes whatever the checks say.
* Aliases keep no history, so every decision (time, from, to, checks, forced, reason, who) is
  appended to ``<artifact_root>/promotion_history.jsonl`` (append-only), logged as an
  artefact ``promotions/<time>-v<N>-<id>.json`` of N's run, and the latest is kept in the
  registered model's tag ``last_promotion``.
"""

from __future__ import annotations

import getpass
import json
import tempfile
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from core.settings import Settings
from core.vocabulary import CLASSES, PSI_LIMIT
from training.evaluate import JEFFREYS_ALPHA, discrimination, group_table, psi

CHAMPION = "champion"
CHALLENGER = "challenger"
AUC_TOLERANCE = 0.01
TEST_WINDOW_ARTIFACT = "evaluation/test_window.parquet"
EVALUATION_ARTIFACT = "evaluation/evaluation.json"
HISTORY_FILE = "promotion_history.jsonl"


def store_uri(uri: str) -> str:
    """The tracking URI as MLflow needs it: ``postgresql://`` / ``postgres://`` name the psycopg2 driver.

    (SQLAlchemy 2.1 reads a bare ``postgresql://`` as psycopg 3, which is not installed.)
    """
    for scheme in ("postgresql://", "postgres://"):
        if uri.startswith(scheme):
            return "postgresql+psycopg2://" + uri.removeprefix(scheme)
    return uri


def client(settings: Settings) -> MlflowClient:
    """Point MLflow at the store ``settings`` name and return a client for it.

    A SQLite or PostgreSQL store creates (and migrates) its tables on first use.
    """
    if settings.tracking_uri.startswith("sqlite:///"):
        settings.mlruns_dir.mkdir(parents=True, exist_ok=True)
    uri = store_uri(settings.tracking_uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(uri, uri)


def experiment_id(c: MlflowClient, name: str, settings: Settings) -> str:
    """The experiment's id, creating it with its artefacts under ``settings.artifact_root``.

    Behind a tracking server (``http(s)://``) the server's ``--artifacts-destination`` decides.
    """
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    if settings.tracking_uri.startswith(("http://", "https://")):
        return c.create_experiment(name)
    location = (settings.artifact_root / name).resolve()
    location.mkdir(parents=True, exist_ok=True)
    return c.create_experiment(name, artifact_location=location.as_uri())


def register(c: MlflowClient, model_uri: str, name: str, *, run_id: str, tags: dict[str, str]) -> str:
    """Register ``model_uri`` as a new version of ``name`` with alias ``challenger``; returns the version."""
    try:
        c.get_registered_model(name)
    except MlflowException:
        c.create_registered_model(
            name,
            description="12-month PD of life-service merchants: calibrated LightGBM, master scale, "
            "classes A-D, reason codes. Alias 'champion' moves only through the promotion gate.",
        )
    mv = c.create_model_version(name, model_uri, run_id=run_id, tags=tags)
    c.set_registered_model_alias(name, CHALLENGER, mv.version)
    return str(mv.version)


@dataclass
class Check:
    name: str
    passed: bool
    value: float | None
    threshold: float
    detail: str


class PromotionRefused(RuntimeError):
    """The gate failed (and promotion was not forced); ``checks`` says which and by how much."""

    def __init__(self, record: dict):
        self.record = record
        failed = [c for c in record["checks"] if not c["passed"]]
        super().__init__("promotion refused: " + "; ".join(f"{c['name']}: {c['detail']}" for c in failed))


def current_champion(c: MlflowClient, name: str) -> str | None:
    try:
        return str(c.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


def _scores(model_uri: str, frame: pd.DataFrame) -> pd.DataFrame:
    return mlflow.pyfunc.load_model(model_uri).predict(frame)


def gate(c: MlflowClient, name: str, version: str, champion: str | None) -> tuple[list[Check], dict]:
    """Run the promotion checks for ``version`` against ``champion`` (None: absolute checks only)."""
    mv = c.get_model_version(name, version)
    with tempfile.TemporaryDirectory() as tmp:
        test = pd.read_parquet(
            mlflow.artifacts.download_artifacts(run_id=mv.run_id, artifact_path=TEST_WINDOW_ARTIFACT, dst_path=tmp)
        )
        evaluation = json.loads(
            Path(
                mlflow.artifacts.download_artifacts(run_id=mv.run_id, artifact_path=EVALUATION_ARTIFACT, dst_path=tmp)
            ).read_text(encoding="utf-8")
        )
    target = evaluation["target"]
    y = test[target].to_numpy().astype(int)
    cand = _scores(f"models:/{name}/{version}", test)
    checks: list[Check] = []
    merchants = test[evaluation["id_columns"][0]].to_numpy()  # Jeffreys counts merchants, not monthly rows
    for row in group_table(y, cand["pd"].to_numpy(), cand["class"].to_numpy(), list(CLASSES), clusters=merchants):
        if row["n"] == 0:
            checks.append(Check(f"jeffreys_class_{row['group']}", True, None, JEFFREYS_ALPHA, "no merchants in class"))
            continue
        checks.append(
            Check(
                f"jeffreys_class_{row['group']}",
                not row["rejected"],
                row["jeffreys_p"],
                JEFFREYS_ALPHA,
                f"p={row['jeffreys_p']:.4f} (reject below {JEFFREYS_ALPHA}): {row['defaults']} defaults in {row['n']} rows "
                f"({row['obligors']} merchants), "
                f"observed {row['default_rate']:.2%} vs mean PD {row['mean_pd']:.2%}",
            )
        )
    psi_tt = float(evaluation["lightgbm"]["metrics"]["psi_score_train_test"])
    checks.append(
        Check(
            "score_psi_train_test",
            psi_tt < PSI_LIMIT,
            psi_tt,
            PSI_LIMIT,
            f"PSI {psi_tt:.3f} between train and test windows (limit {PSI_LIMIT})",
        )
    )
    facts = {
        "test_rows": int(len(y)),
        "test_defaults": int(y.sum()),
        "candidate_auc": discrimination(y, cand["pd"].to_numpy())["auc"],
    }
    if champion is not None:
        try:
            champ = _scores(f"models:/{name}/{champion}", test)
        except Exception as err:  # a champion on another feature set cannot score this window
            checks.append(
                Check(
                    "champion_scores_test_window",
                    False,
                    None,
                    0.0,
                    f"champion v{champion} cannot score v{version}'s test window: {err}",
                )
            )
            return checks, facts
        champ_auc = discrimination(y, champ["pd"].to_numpy())["auc"]
        facts["champion_auc"] = champ_auc
        gap = facts["candidate_auc"] - champ_auc
        checks.append(
            Check(
                "auc_vs_champion",
                gap >= -AUC_TOLERANCE,
                gap,
                -AUC_TOLERANCE,
                f"AUC {facts['candidate_auc']:.4f} vs champion v{champion} {champ_auc:.4f} "
                f"(difference {gap:+.4f}, allowed down to {-AUC_TOLERANCE})",
            )
        )
        psi_ch = psi(champ["score"].to_numpy(float), cand["score"].to_numpy(float))
        checks.append(
            Check(
                "score_psi_vs_champion",
                psi_ch < PSI_LIMIT,
                psi_ch,
                PSI_LIMIT,
                f"PSI {psi_ch:.3f} of scores against champion v{champion} (limit {PSI_LIMIT})",
            )
        )
    return checks, facts


def promote(
    version: int | str,
    settings: Settings,
    *,
    model_name: str | None = None,
    force: bool = False,
    reason: str | None = None,
    by: str | None = None,
) -> dict:
    """Move alias ``champion`` to ``version`` if the gate passes (or ``force``); return the record.

    ``model_name`` defaults to ``settings.model_name``; the decision goes to ``settings.artifact_root``.

    Raises :class:`PromotionRefused` when a check fails and ``force`` is not set; the refusal
    is recorded in the history too.
    """
    if force and not (reason and reason.strip()):
        raise ValueError("a forced promotion needs a reason")
    name = model_name or settings.model_name
    version = str(version)
    c = client(settings)
    c.get_model_version(name, version)  # fails clearly on an unknown version
    champion = current_champion(c, name)
    checks, facts = gate(c, name, version, None if champion == version else champion)
    passed = all(ch.passed for ch in checks)
    promoted = passed or force
    record = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_name": name,
        "from_version": champion,
        "to_version": version,
        "run_id": c.get_model_version(name, version).run_id,
        "passed": passed,
        "forced": bool(force and not passed),
        "promoted": promoted,
        "reason": reason,
        "by": by or getpass.getuser(),
        "checks": [asdict(ch) for ch in checks],
        **facts,
    }
    if promoted:
        c.set_registered_model_alias(name, CHAMPION, version)
        c.set_model_version_tag(name, version, "promoted_at", record["time"])
        if record["forced"]:
            c.set_model_version_tag(name, version, "forced_promotion_reason", reason)
    _record(c, record, settings.artifact_root)
    if not promoted:
        raise PromotionRefused(record)
    return record


def _record(c: MlflowClient, record: dict, root: Path) -> None:
    """Append the decision to ``root``'s history, log it to the run and tag the registered model."""
    root.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, ensure_ascii=False, default=_json_default)
    with open(root / HISTORY_FILE, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
    stamp = record["time"].replace(":", "").replace("+00:00", "Z")
    c.log_text(
        record["run_id"],
        json.dumps(record, ensure_ascii=False, indent=2, default=_json_default),
        f"promotions/{stamp}-v{record['to_version']}-{uuid.uuid4().hex[:8]}.json",
    )
    summary = {k: record[k] for k in ("time", "from_version", "to_version", "passed", "forced", "promoted", "by")}
    c.set_registered_model_tag(record["model_name"], "last_promotion", json.dumps(summary))


def promotion_history(settings: Settings, model_name: str | None = None) -> list[dict]:
    """Every promotion decision recorded under ``settings.artifact_root``, oldest first (optionally for one model)."""
    path = settings.artifact_root / HISTORY_FILE
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if model_name is None or r["model_name"] == model_name]


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o)}")
