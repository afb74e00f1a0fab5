"""Where the regulator views read their inputs: the one object the API, dashboard and report call.

:class:`RegulatorViews` binds the pure functions of :mod:`regulator.aggregates` (and
:mod:`regulator.objections`) to the configured class history, feature panel (12-month outcomes),
audit log (decisions), objections store and MLflow store (validation evidence). Each method
returns a JSON-able dict; a request it cannot answer raises :class:`~regulator.aggregates.ViewError`
(a 4xx) or :class:`~regulator.history.HistoryError` (nothing to show yet: the message names the
command that builds it).

The caller gives the settings (the CLI or the service reads them; nothing here does).
Example (an API route is one line)::

    views = RegulatorViews(settings)
    views.distribution(by="sector", month="2025-07")
"""

from __future__ import annotations

import json
import tempfile
from datetime import datetime
from pathlib import Path

import polars as pl

from core.settings import Settings
from regulator import aggregates as agg
from regulator import objections as obj
from regulator.history import scan_history

DECIDE_ENDPOINTS = ("/decide", "decide")
DECISION_SCHEMA = {"merchant_id": pl.String, "month": pl.String, "decision": pl.String, "approved_limit_fen": pl.Int64}


def read_decisions(audit_url: str) -> pl.DataFrame:
    """Every /decide answer in the audit log: merchant_id, month (of created_at, UTC), decision, approved limit.

    Reads the SQLite or PostgreSQL store the URL names; no SQLite file yet means no decisions.
    """
    from core.audit import AuditLog, is_postgres, sqlite_path

    if not is_postgres(audit_url) and not sqlite_path(audit_url).exists():
        return pl.DataFrame(schema=DECISION_SCHEMA)
    store = AuditLog(audit_url) if is_postgres(audit_url) else AuditLog(audit_url, checkpoint_seconds=None)
    try:
        rows = store.outputs(DECIDE_ENDPOINTS)
    finally:
        store.close()
    records = []
    for merchant_id, created_at, outputs in rows:
        out = json.loads(outputs)
        if not isinstance(out, dict) or "decision" not in out:
            continue
        records.append(
            {
                "merchant_id": merchant_id,
                "month": created_at[:7],
                "decision": out["decision"],
                "approved_limit_fen": out.get("approved_limit_fen") or 0,
            }
        )
    return pl.DataFrame(records, schema=DECISION_SCHEMA)


def read_objections(path: Path) -> list:
    """Every objection in the store at ``path``, oldest first; no file yet means none (nothing is created)."""
    from core.objections import ObjectionStore

    if not Path(path).exists():
        return []
    store = ObjectionStore(path)
    try:
        return store.list()
    finally:
        store.close()


def _grades(scale=None) -> list[str]:
    from training.master_scale import MasterScale

    scale = scale or MasterScale.load()
    return [g.grade for g in scale.grades if not g.default]


class RegulatorViews:
    """The regulator views over the configured stores (read on each call: the history may grow)."""

    def __init__(self, settings: Settings, *, history_dir: Path | None = None, panel: Path | None = None):
        self.settings = settings
        self.history_dir = Path(history_dir or settings.class_history_dir)
        candidates = [settings.features_dir / "panel.parquet", settings.serving_snapshot_dir / "panel.parquet"]
        self.panel_path = Path(panel or next((p for p in candidates if p.exists()), candidates[0]))
        self.k = settings.min_cell_count

    def history(self) -> pl.LazyFrame:
        return scan_history(self.history_dir)

    def panel(self) -> pl.LazyFrame | None:
        """The feature panel's labels (None when there is no panel: outcomes then stay empty)."""
        if not self.panel_path.exists():
            return None
        return pl.scan_parquet(self.panel_path).select("merchant_id", "as_of", "bad")

    def months(self) -> list[str]:
        return agg.months(self.history())

    def months_up_to(self, month: str, n: int) -> list[str]:
        """The last ``n`` months of the history up to ``month``; ViewError naming what exists when it lacks ``month``."""
        months_all = self.months()
        if month not in months_all:
            raise agg.ViewError(
                f"no month {month} in the class history"
                + (f"; available: {months_all[0]} .. {months_all[-1]}" if months_all else "")
                + " (score it with `lifecredit score-all --as-of YYYY-MM-01`)"
            )
        return [m for m in months_all if m <= month][-n:]

    def distribution(self, by: str = "sector", month: str | None = None, **kw) -> dict:
        return agg.distribution(self.history(), by, month, k=self.k, **kw)

    def outcomes(self, by: str = "class", from_month: str | None = None, to_month: str | None = None) -> dict:
        panel = self.panel()
        if panel is None:
            panel = pl.DataFrame(schema={"merchant_id": pl.String, "as_of": pl.Date, "bad": pl.Int8})
        return agg.outcomes(
            self.history(), panel, k=self.k, by=by, from_month=from_month, to_month=to_month, grades=_grades()
        )

    def stability(self, from_month: str | None = None, to_month: str | None = None) -> dict:
        return agg.stability(self.history(), k=self.k, from_month=from_month, to_month=to_month)

    def migration(self, from_month: str | None = None, to_month: str | None = None) -> dict:
        return agg.migration(self.history(), k=self.k, from_month=from_month, to_month=to_month)

    def concentration(self, from_month: str | None = None, to_month: str | None = None) -> dict:
        return agg.concentration(self.history(), k=self.k, from_month=from_month, to_month=to_month, grades=_grades())

    def inclusion(self, by: str = "urban_rural", from_month: str | None = None, to_month: str | None = None) -> dict:
        return agg.inclusion(
            self.history(),
            read_decisions(self.settings.audit_url),
            k=self.k,
            by=by,
            from_month=from_month,
            to_month=to_month,
            panel=self.panel(),
        )

    def objections(
        self, by: str = "month", month: str | None = None, kind: str | None = None, *, now: datetime | None = None
    ) -> dict:
        """Merchants' objections and repair requests per month of receipt, sector or province (:mod:`regulator.objections`).

        No objections file yet means no objections; the class history is read only when there are some.
        """
        obj.check_query(by, month, kind)
        records = read_objections(self.settings.objections_file)
        history = self.history() if records else None
        return obj.objections(records, history, k=self.k, by=by, month=month, kind=kind, now=now)

    def map_view(
        self,
        measure: str | None = None,
        month: str | None = None,
        *,
        sector: str | None = None,
        level: str = "province",
    ) -> dict:
        """The life-service map: one measure per province or prefecture (:mod:`regulator.map`); no measure lists them."""
        from regulator.map import map_view

        return map_view(self.settings, measure, month, sector=sector, level=level, history_dir=self.history_dir)

    def validation(self, model_name: str | None = None) -> dict:
        return validation_evidence(self.settings, model_name)

    def validation_with_plots(self, plots_to: Path, model_name: str | None = None) -> dict:
        """The validation evidence with the run's evaluation plots downloaded to ``plots_to``."""
        return validation_evidence(self.settings, model_name, plots_to=plots_to)


# -- validation evidence -----------------------------------------------------------------------
EVALUATION_ARTIFACT = "evaluation/evaluation.json"
PLOTS_ARTIFACT = "evaluation/plots"


def validation_evidence(settings: Settings, model_name: str | None = None, *, plots_to: Path | None = None) -> dict:
    """The champion's validation evidence as training recorded it (``evaluation/evaluation.json``).

    Discrimination (AUC, Gini, KS), calibration (Brier, log loss, ECE, the calibration curve,
    per grade and per class: n, defaults, mean PD, observed rate, one-sided Jeffreys p-value
    and whether the class is rejected at the recorded alpha), stability (score PSI between the
    train and test windows, the largest feature CSIs), the windows and the master scale.
    These are the model's own test-window statistics, reported as recorded at promotion;
    they carry no segment, so they are not suppressed. ``plots_to``: also download the
    run's evaluation plots (PNG) there and list them under ``plots``.
    """
    import mlflow

    from training.model_source import from_mlflow
    from training.registry import client

    handle = from_mlflow(settings, model_name)
    client(settings)
    with tempfile.TemporaryDirectory() as tmp:
        ev = json.loads(
            Path(
                mlflow.artifacts.download_artifacts(
                    run_id=handle.run_id, artifact_path=EVALUATION_ARTIFACT, dst_path=tmp
                )
            ).read_text(encoding="utf-8")
        )
    plots = {}
    if plots_to is not None:
        try:
            folder = Path(
                mlflow.artifacts.download_artifacts(
                    run_id=handle.run_id, artifact_path=PLOTS_ARTIFACT, dst_path=str(plots_to)
                )
            )
            plots = {p.stem: str(p) for p in sorted(folder.glob("*.png"))}
        except Exception:  # plots are illustrations; the numbers above are the evidence
            plots = {}
    lgb = ev["lightgbm"]
    m = lgb["metrics"]
    csi = sorted(ev.get("csi", {}).items(), key=lambda kv: -kv[1])[:10]
    return {
        "view": "validation",
        "model": {
            "name": handle.name,
            "version": handle.version,
            "run_id": handle.run_id,
            "trained_at": handle.card.get("trained_at"),
            "feature_set": ev.get("feature_set"),
            "calibrator": ev.get("calibration", {}).get("chosen"),
        },
        "windows": ev.get("split"),
        "master_scale": ev.get("master_scale"),
        "discrimination": {k: m.get(k) for k in ("auc", "gini", "ks")},
        "calibration": {
            **{k: m.get(k) for k in ("brier", "log_loss", "ece", "n", "defaults", "default_rate", "mean_pd")},
            "curve": lgb.get("calibration_curve"),
            "by_grade": lgb.get("by_grade"),
            "by_class": lgb.get("by_class"),
            "jeffreys_alpha": lgb.get("jeffreys_alpha"),
            "classes_rejected": m.get("classes_rejected"),
            "grades_rejected": m.get("grades_rejected"),
        },
        "stability": {
            "psi_score_train_test": m.get("psi_score_train_test"),
            "csi_top": [{"feature": f, "csi": v} for f, v in csi],
        },
        "concentration": {"herfindahl": m.get("herfindahl"), "herfindahl_normalised": m.get("herfindahl_normalised")},
        "challenger": {k: ev.get("challenger", {}).get("metrics", {}).get(k) for k in ("auc", "gini", "ks", "ece")},
        "lift_gains": lgb.get("lift_gains"),
        "plots": plots,
        "note_en": "Test-window statistics of the model as recorded by training; they carry no merchant segment and "
        "are not suppressed.",
        "note_zh": "模型在测试窗口上的统计量（训练时记录），不含商户分组信息，故不作抑制处理。",
    }
