"""A merchant's own credit report: its answer and what it rests on, every record, its objections.

One function builds the report as plain JSON-ready data (:func:`build_report`); the server's
``GET /merchant/report``, the ``/merchant/`` page and ``lifecredit merchant-report`` (HTML/PDF,
:mod:`merchant.html`) all show that one dict. Records come from the validated tables with every
correction applied (:func:`merchant.rescore.merchant_tables`), so the merchant sees what the
score sees. Peer medians are over the same sector and province in the feature snapshot and are
withheld when the group is smaller than the regulator views' small-cell threshold.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from core.objections import Objection
from data_contracts.contract import load_contract
from data_contracts.corrections import record_key
from features.catalog import Catalog
from features.tables import RawTables
from regulator.history import HistoryError, month_of, scan_history
from training.master_scale import MasterScale

PUBLIC_RECORD_SOURCE = {
    "en": "market regulator's publicity system",
    "zh": "市场监管部门公示",
}
RECORD_TABLES = ("complaints", "public_records", "loans", "loan_performance")
QUERY_PURPOSE = {
    "/score": ("score", "credit score lookup", "信用评分查询"),
    "/decide": ("loan_decision", "loan decision", "贷款审批"),
    "/admin/objections/resolve": ("objection_answered", "objection answered by the data steward", "异议处理"),
}
"""Audited requests about one merchant that its report lists as lookups of its record (查询记录)."""


def _plain(v: Any) -> Any:
    """A JSON-ready value: dates as ISO text, NaN as None."""
    if isinstance(v, float) and math.isnan(v):
        return None
    return v.isoformat() if hasattr(v, "isoformat") else v


def _rows(frame: pl.DataFrame) -> list[dict]:
    return [{k: _plain(v) for k, v in r.items()} for r in frame.iter_rows(named=True)]


def master_scale_rows(scale: MasterScale) -> list[dict]:
    """The four classes with their meaning and PD range (the live grades they cover)."""
    out = []
    for klass, text in sorted(scale.classes.items()):
        grades = [g for g in scale.live_grades if g.risk_class == klass]
        out.append(
            {
                "class": klass,
                "en": text.en,
                "zh": text.zh,
                "pd_min": min(g.pd_min for g in grades),
                "pd_max": max(g.pd_max for g in grades),
                "grades": [g.grade for g in grades],
            }
        )
    return out


def class_history(history_root: Path | None, merchant_id: str, rescores: list[dict]) -> list[dict]:
    """The merchant's monthly classes (``lifecredit score-all``) and its re-scores after corrections, oldest first."""
    rows: list[dict] = []
    if history_root is not None:
        try:
            monthly = (
                scan_history(history_root)
                .filter(pl.col("merchant_id") == merchant_id)
                .select("month", "as_of", "pd", "score", "grade", "class", "model_version")
                .sort("as_of")
                .collect()
            )
        except HistoryError:
            monthly = pl.DataFrame()
        for r in _rows(monthly):
            rows.append({**r, "kind": "monthly", "at": r["as_of"], "note_en": None, "note_zh": None})
    for r in rescores:
        a = r["answer"]
        as_of = r["features_as_of"] or a.get("features_as_of")
        rows.append(
            {
                "month": month_of(date.fromisoformat(as_of)) if as_of else None,
                "as_of": as_of,
                **{k: a.get(k) for k in ("pd", "score", "grade", "class")},
                "model_version": r["model_version"],
                "kind": "rescore",
                "at": r["rescored_at"],
                "note_en": r["reason_en"],
                "note_zh": r["reason_zh"],
            }
        )
    return sorted(rows, key=lambda r: (r["as_of"] or "", r["kind"] == "rescore", r["at"] or ""))


def _peer_frame(snapshot: pl.DataFrame, features: dict) -> pl.DataFrame:
    return snapshot.filter(
        (pl.col("sector").cast(pl.String) == str(features.get("sector")))
        & (pl.col("province").cast(pl.String) == str(features.get("province")))
    )


def reason_rows(answer: dict, features: dict, peers: pl.DataFrame, catalog: Catalog, min_cell_count: int) -> list[dict]:
    """Each reason with the feature behind it: the merchant's value next to its peers' median (withheld for a small group)."""
    small = peers.height < min_cell_count
    out = []
    for reason in answer.get("reasons") or []:
        name = reason["code"]
        feature = catalog[name] if name in catalog.names else None
        median = None
        if not small and name in peers.columns:
            median = _plain(peers[name].cast(pl.Float64).median())
        value = _plain(features.get(name))
        out.append(
            {
                **reason,
                "feature": name,
                "description_en": feature.description_en if feature else None,
                "description_zh": feature.description_zh if feature else None,
                "risk_direction": feature.risk_direction if feature else None,
                "value": float(value) if isinstance(value, bool) else value,
                "peer_median": None if small else median,
                "peer_count": None if small else peers.height,
                "peer_suppressed": small,
            }
        )
    return out


def _number(v: float | None) -> str:
    return "—" if v is None else f"{v:,.4g}"


def advice_rows(reasons: list[dict], records: dict[str, list[dict]]) -> list[dict]:
    """What would improve the class, in words from the catalogue's risk directions, most important first."""
    out = []
    for r in reasons:
        if r["risk_direction"] not in (1, -1) or not r["description_en"]:
            continue
        up = r["risk_direction"] == -1
        target = "" if r["peer_median"] is None else f" (similar merchants' median: {_number(r['peer_median'])})"
        target_zh = "" if r["peer_median"] is None else f"（同类商户中位数：{_number(r['peer_median'])}）"
        out.append(
            {
                "feature": r["feature"],
                "en": f"{'Raise' if up else 'Bring down'}: {r['description_en']}{target}",
                "zh": f"{'提高' if up else '降低'}：{r['description_zh']}{target_zh}",
            }
        )
    if any(p["current"] for p in records["public_records"]):
        out.append(
            {
                "feature": "public_records",
                "en": "Once the cause of a listing or penalty is put right, ask for credit repair (信用修复) "
                "on that record: it stops counting when it is removed.",
                "zh": "经营异常或行政处罚的原因整改完成后，可对该记录申请信用修复；移出后不再计入评分。",
            }
        )
    if any(c["status"] == "open" for c in records["complaints"]):
        out.append(
            {
                "feature": "complaints",
                "en": "Resolve open complaints: unresolved complaints and slow resolution raise the risk.",
                "zh": "及时处理未解决的投诉：投诉未解决或处理缓慢会提高风险。",
            }
        )
    return out


def records(tables: RawTables, as_of: str | None, open_objections: list[Objection]) -> dict[str, list[dict]]:
    """Every record that feeds the score, each with its id, date and source and whether it is under objection."""
    marks = {(o.table, o.record_id): o.objection_id for o in open_objections}

    def mark(table: str, rid: str, extra: tuple[str, str] | None = None) -> dict:
        oid = marks.get((table, rid)) or (marks.get(extra) if extra else None)
        return {"under_objection": oid is not None, "objection_id": oid}

    ids = {t: record_key(load_contract(t)).alias("record_id") for t in RECORD_TABLES}
    complaints = tables.complaints.with_columns(ids["complaints"]).sort("received_at").collect()
    out_c = []
    for r in _rows(complaints):
        out_c.append(
            {
                "table": "complaints",
                "record_id": r["record_id"],
                "date": (r["received_at"] or "")[:10],
                "source": r.get("source"),
                "category": r.get("category"),
                "severity": r.get("severity"),
                "status": "open" if r.get("resolved_at") is None else "resolved",
                "received_at": r["received_at"],
                "resolved_at": r.get("resolved_at"),
                **mark("complaints", r["record_id"]),
            }
        )
    public = tables.public_records.with_columns(ids["public_records"]).sort("published_on").collect()
    out_p = []
    for r in _rows(public):
        removed = r.get("removed_on")
        out_p.append(
            {
                "table": "public_records",
                "record_id": r["record_id"],
                "date": r["published_on"],
                "source": f"{PUBLIC_RECORD_SOURCE['en']} ({PUBLIC_RECORD_SOURCE['zh']})",
                "record_type": r.get("record_type"),
                "published_on": r["published_on"],
                "removed_on": removed,
                "penalty_fen": r.get("penalty_fen"),
                "current": removed is None or (as_of is not None and removed >= as_of),
                **mark("public_records", r["record_id"]),
            }
        )
    latest = (
        tables.loan_performance.with_columns(ids["loan_performance"].alias("performance_record_id"))
        .sort("reported_on")
        .group_by("loan_id")
        .last()
        .select("loan_id", "performance_record_id", "reported_on", "days_past_due", "outstanding_fen", "status")
    )
    loans = (
        tables.loans.with_columns(ids["loans"]).join(latest, on="loan_id", how="left").sort("disbursed_on").collect()
    )
    out_l = []
    for r in _rows(loans):
        perf = r.get("performance_record_id")
        out_l.append(
            {
                "table": "loans",
                "record_id": r["record_id"],
                "date": r["disbursed_on"],
                "source": f"lender {r['lender_code']}" if r.get("lender_code") else None,
                "product": r.get("product"),
                "principal_fen": r.get("principal_fen"),
                "term_months": r.get("term_months"),
                "status": r.get("status"),
                "days_past_due": r.get("days_past_due"),
                "outstanding_fen": r.get("outstanding_fen"),
                "reported_on": r.get("reported_on"),
                "performance_record_id": perf,
                **mark("loans", r["record_id"], ("loan_performance", perf) if perf else None),
            }
        )
    return {"complaints": out_c, "public_records": out_p, "loans": out_l}


def record_exists(tables: RawTables, table: str, record_id: str) -> dict | None:
    """The merchant's record ``record_id`` of ``table`` (as a dict), or None when it holds no such record."""
    frame = getattr(tables, table).with_columns(record_key(load_contract(table)).alias("_record_id"))
    found = frame.filter(pl.col("_record_id") == record_id).drop("_record_id").collect()
    return _rows(found)[0] if found.height else None


def build_report(
    *,
    merchant_id: str,
    answer: dict,
    features: dict,
    snapshot: pl.DataFrame,
    tables: RawTables,
    history: list[dict],
    objections: list[Objection],
    catalog: Catalog,
    scale: MasterScale,
    min_cell_count: int,
    rescored_at: str | None = None,
    queries: list[tuple[str, str, str]] = (),
    now: datetime | None = None,
) -> dict:
    """The whole report for one merchant (the shape of ``GET /merchant/report``; docs/merchants.md)."""
    now = now or datetime.now(UTC)
    open_objections = [o for o in objections if o.is_open]
    recs = records(tables, answer.get("features_as_of"), open_objections)
    peers = _peer_frame(snapshot, features)
    reasons = reason_rows(answer, features, peers, catalog, min_cell_count)
    grade = next((g for g in scale.grades if g.grade == answer.get("grade")), None)
    klass = scale.classes.get(answer.get("class"))
    profile = {k: _plain(features.get(k)) for k in ("sector", "province", "urban_rural", "business_form")}
    registered = tables.merchants.select("registered_on").collect()
    profile["registered_on"] = _plain(registered["registered_on"][0]) if registered.height else None
    return {
        "merchant_id": merchant_id,
        "generated_at": now.isoformat(timespec="seconds"),
        "profile": profile,
        "current": {
            **{k: answer.get(k) for k in ("pd", "score", "grade", "class", "reasons")},
            **{k: answer.get(k) for k in ("model_name", "model_version", "features_as_of")},
            "class_text": {"en": klass.en, "zh": klass.zh} if klass else None,
            "grade_pd_range": [grade.pd_min, grade.pd_max] if grade else None,
            "rescored_at": rescored_at,
        },
        "master_scale": master_scale_rows(scale),
        "history": history,
        "reasons": reasons,
        "advice": advice_rows(reasons, recs),
        "peer_group": {
            "sector": profile["sector"],
            "province": profile["province"],
            "merchants": None if peers.height < min_cell_count else peers.height,
            "suppressed": peers.height < min_cell_count,
            "min_cell_count": min_cell_count,
        },
        "records": recs,
        "objections": [o.to_json(now) for o in objections],
        "queries": [
            dict(zip(("at", "by", "purpose", "en", "zh"), (at, by, *QUERY_PURPOSE.get(endpoint, (endpoint,) * 3))))
            for at, by, endpoint in queries
        ],
        "records_under_objection": len(open_objections),
    }
