"""A merchant's whole path through a real ``lifecredit serve``: read its report, object, see the mark, and after
the data steward's correction see its new class, while every other merchant's answer stays as it was.

The objection is to a complaint inside the year before the snapshot's ``as_of``, so deleting it changes the
merchant's complaint features. The bank's answers for every merchant are read before and after; only the
objecting merchant's may change. A decision made before the correction still replays, the re-score survives a
reload, and every step is in the audit log.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import polars as pl
import pytest

from helpers import BIN, ROOT, reload_over_http

pytestmark = pytest.mark.slow


def _call(url, method, path, key, body=None):
    return httpx.request(method, url + path, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=120)


def _answers(url, bank, ids) -> dict[str, dict]:
    r = _call(url, "POST", "/score_batch", bank, {"merchant_ids": ids})
    assert r.status_code == 200, r.text
    return {a["merchant_id"]: a for a in r.json()["results"]}


@pytest.fixture(scope="module")
def flow(served_champion, validated_market, class_history, tmp_path_factory):
    """A server over the session's class history (14 months) and a merchant with a recent complaint."""
    from benchmarks.soak import base_env, cli, serve

    root = tmp_path_factory.mktemp("merchant_flow")
    env = base_env(
        **served_champion["env"],
        LIFECREDIT_VAR_DIR=str(root / "var"),
        LIFECREDIT_HISTORY_DIR=str(class_history),
        LIFECREDIT_CORRECTIONS_DIR=str(root / "corrections"),
    )
    snapshot = pl.read_parquet(served_champion["features"] / "latest.parquet")
    ids = snapshot["merchant_id"].to_list()
    as_of = snapshot["as_of"].max()
    recent = (
        pl.read_parquet(validated_market / "complaints.parquet")
        .filter(
            pl.col("merchant_id").is_in(ids),
            pl.col("received_at").dt.date() < as_of,
            pl.col("received_at").dt.date() >= as_of - timedelta(days=300),
        )
        .sort("merchant_id", "complaint_id")
    )
    mine = recent.row(0, named=True)
    keys = {}
    for role, merchant in (("bank", None), ("admin", None), ("merchant", mine["merchant_id"])):
        args = ["keys", "create", "--role", role] + (["--merchant", merchant] if merchant else [])
        keys[role] = cli(args, env).strip().splitlines()[-1]
    with serve(env, root / "serve.log") as url:
        yield {"url": url, "env": env, "keys": keys, "ids": ids, "merchant": mine["merchant_id"], "root": root} | {
            "complaint": mine["complaint_id"]
        }


def test_report_objection_correction_rescore(flow):
    url, keys, m, complaint = flow["url"], flow["keys"], flow["merchant"], flow["complaint"]
    bank, admin, merchant = keys["bank"], keys["admin"], keys["merchant"]

    # the merchant's own report: answer, 12+ months of history, the complaint on record
    r = _call(url, "GET", "/merchant/report", merchant)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["merchant_id"] == m and report["current"]["class"] in "ABCD"
    assert report["current"]["class_text"]["zh"] and len(report["master_scale"]) == 4
    assert len([h for h in report["history"] if h["kind"] == "monthly"]) >= 12
    listed = {c["record_id"]: c for c in report["records"]["complaints"]}
    assert complaint in listed and not listed[complaint]["under_objection"]
    assert all(c["source"] and c["date"] for c in report["records"]["complaints"])
    before = _answers(url, bank, flow["ids"])
    decided = _call(
        url,
        "POST",
        "/decide",
        bank,
        {"merchant_id": m, "requested_amount_fen": 1_000_000, "term_months": 12, "product": "term_loan"},
    ).json()

    # object: an id, status received, a 20-day deadline; marked in the report and counted for the bank
    r = _call(
        url,
        "POST",
        "/merchant/objections",
        merchant,
        {"table": "complaints", "record_id": complaint, "reason": "not our shop", "evidence": "receipt"},
    )
    assert r.status_code == 201, r.text
    objection = r.json()
    assert objection["status"] == "received" and objection["objection_id"].startswith("OBJ-")
    again = _call(
        url,
        "POST",
        "/merchant/objections",
        merchant,
        {"table": "complaints", "record_id": complaint, "reason": "twice"},
    )
    assert again.status_code == 409 and again.json()["objection_id"] == objection["objection_id"]
    due = datetime.fromisoformat(objection["due_by"]) - datetime.fromisoformat(objection["received_at"])
    assert due == timedelta(days=20)
    marked = {
        c["record_id"]: c for c in _call(url, "GET", "/merchant/report", merchant).json()["records"]["complaints"]
    }
    assert marked[complaint]["under_objection"] and marked[complaint]["objection_id"] == objection["objection_id"]
    assert _call(url, "POST", "/score", bank, {"merchant_id": m}).json()["records_under_objection"] == 1
    assert _answers(url, bank, [m])[m]["records_under_objection"] == 1
    listed = _call(url, "GET", "/admin/objections?status=received", admin).json()
    assert [o["objection_id"] for o in listed["objections"]] == [objection["objection_id"]]
    assert listed["counts"]["open"] == 1

    # the steward deletes the complaint: the merchant is re-scored from its own rows, in seconds
    r = _call(
        url,
        "POST",
        f"/admin/objections/{objection['objection_id']}/resolve",
        admin,
        {"outcome": "corrected", "correction": {"action": "delete"}, "note": "complaint was another shop's"},
    )
    assert r.status_code == 200, r.text
    resolved = r.json()
    assert resolved["objection"]["status"] == "resolved" and resolved["objection"]["outcome"] == "corrected"
    rescore = resolved["rescore"]
    assert rescore["seconds"] < 10 and rescore["after"]["merchant_id"] == m
    assert rescore["features"]["complaints_365d"] == before_feature(flow, m, "complaints_365d") - 1
    assert (
        _call(
            url, "POST", f"/admin/objections/{objection['objection_id']}/resolve", admin, {"outcome": "upheld"}
        ).status_code
        == 409
    )

    # only that merchant's answer changed
    after = _answers(url, bank, flow["ids"])
    changed = [i for i in flow["ids"] if before[i] != after[i]]
    assert changed == [m], changed
    assert after[m]["pd"] != before[m]["pd"] and after[m]["records_under_objection"] == 0

    # the merchant sees the new class, the re-score in its history with the reason, the record gone
    report = _call(url, "GET", "/merchant/report", merchant).json()
    assert report["current"]["pd"] == after[m]["pd"] and report["current"]["rescored_at"]
    assert complaint not in {c["record_id"] for c in report["records"]["complaints"]}
    rescored = [h for h in report["history"] if h["kind"] == "rescore"]
    assert len(rescored) == 1 and resolved["correction"]["correction_id"] in rescored[0]["note_en"]
    assert report["objections"][0]["outcome"] == "corrected"
    lookups = {(q["by"].split("-")[0], q["purpose"]) for q in report["queries"]}  # 查询记录: who looked, and why
    assert {("bank", "score"), ("bank", "loan_decision"), ("admin", "objection_answered")} <= lookups, lookups

    # the decision made before the correction still replays; the re-score survives a reload
    res = subprocess.run(
        [str(BIN / "lifecredit"), "replay", decided["decision_id"]],
        env=flow["env"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert reload_over_http(url, admin)["status"] == "succeeded"
    assert _answers(url, bank, [m])[m]["pd"] == after[m]["pd"]

    # the same report from the command line, as a file (and a PDF where a PDF engine is installed)
    out = flow["root"] / "report.html"
    pdf = ["--pdf"] if shutil.which("chromium") else []
    res = subprocess.run(
        [str(BIN / "lifecredit"), "merchant-report", "--merchant", m, "--out", str(out), *pdf],
        env=flow["env"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    page = out.read_text(encoding="utf-8")
    assert m in page and resolved["correction"]["correction_id"] in page and f"{after[m]['pd']:.2%}" in page
    assert not pdf or out.with_suffix(".pdf").read_bytes().startswith(b"%PDF")

    # every step audited: who, when, before and after
    from core.audit import AuditLog

    log = AuditLog(f"sqlite:///{flow['root'] / 'var' / 'audit.db'}")
    try:
        assert log.count("/merchant/objections") == 1
        steps = [r for r in log.outputs(("/admin/objections/resolve",))]
        assert len(steps) == 1
        outputs = json.loads(steps[0][2]) if isinstance(steps[0][2], str) else steps[0][2]
        assert outputs["before"]["status"] == "received" and outputs["after"]["outcome"] == "corrected"
    finally:
        log.close()


def before_feature(flow, merchant_id: str, name: str):
    """The merchant's feature value in the served snapshot (before any correction)."""
    snapshot = Path(flow["env"]["LIFECREDIT_SNAPSHOT_DIR"]) / "latest.parquet"
    return pl.read_parquet(snapshot).filter(pl.col("merchant_id") == merchant_id)[name][0]


def test_credit_repair_of_a_listing_refers_then_clears_the_decline(flow, validated_market):
    """A listed merchant asks for credit repair (信用修复): while it is open the listing's hard decline refers;
    once the steward records the removal, the re-scored merchant is no longer listed."""
    from serving.keys import KeyStore

    url, bank, admin = flow["url"], flow["keys"]["bank"], flow["keys"]["admin"]
    snapshot = pl.read_parquet(Path(flow["env"]["LIFECREDIT_SNAPSHOT_DIR"]) / "latest.parquet")
    as_of = snapshot["as_of"].max()
    listed = snapshot.filter(
        pl.col("abnormal_operation_listed"),
        ~pl.col("serious_violation_listed").fill_null(False),
        pl.col("current_dpd").fill_null(0) < 90,
    )["merchant_id"].to_list()
    records = pl.read_parquet(validated_market / "public_records.parquet").filter(
        pl.col("record_type") == "abnormal_operation_listed",
        pl.col("published_on") < as_of,
        pl.col("removed_on").is_null() | (pl.col("removed_on") >= as_of),
    )
    request = {"requested_amount_fen": 1_000_000, "term_months": 12, "product": "term_loan"}
    declined = None
    for m in listed:
        first = _call(url, "POST", "/decide", bank, {"merchant_id": m, **request}).json()
        rules = {f["rule"]: f["outcome"] for f in first["policy_rules_fired"]}
        if first["class"] != "D" and rules.get("abnormal_operation_listed") == "decline":
            declined = m
            break
    assert declined, f"no listed merchant outside class D among {len(listed)} listed ones"
    mine = records.filter(pl.col("merchant_id") == declined)["record_id"].to_list()
    key = KeyStore(flow["root"] / "var" / "api_keys.json").create("merchant", merchant_id=declined)

    r = _call(
        url,
        "POST",
        "/merchant/objections",
        key,
        {"table": "public_records", "record_id": mine[0], "reason": "filed the annual report", "kind": "repair"},
    )
    assert r.status_code == 201, r.text
    repair = r.json()
    assert repair["kind"] == "repair" and repair["record_type"] == "abnormal_operation_listed"
    decided = _call(url, "POST", "/decide", bank, {"merchant_id": declined, **request}).json()
    rules = {f["rule"]: f for f in decided["policy_rules_fired"]}
    assert decided["decision"] == "refer" and rules["abnormal_operation_listed"]["outcome"] == "refer"
    assert (
        repair["objection_id"] in rules["abnormal_operation_listed"]["text_en"]
        and decided["records_under_objection"] == 1
    )

    removed = {"removed_on": (as_of - timedelta(days=1)).isoformat()}
    for rid in mine[1:]:  # any other current listing of the merchant is removed by the same repair
        repair_more = _call(
            url,
            "POST",
            "/merchant/objections",
            key,
            {"table": "public_records", "record_id": rid, "reason": "same", "kind": "repair"},
        ).json()
        _call(
            url,
            "POST",
            f"/admin/objections/{repair_more['objection_id']}/resolve",
            admin,
            {"outcome": "corrected", "correction": {"action": "update", "corrected_fields": removed}},
        )
    r = _call(
        url,
        "POST",
        f"/admin/objections/{repair['objection_id']}/resolve",
        admin,
        {
            "outcome": "corrected",
            "correction": {"action": "update", "corrected_fields": removed},
            "note": "listing removed",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["rescore"]["features"]["abnormal_operation_listed"] is False
    after = _call(url, "POST", "/decide", bank, {"merchant_id": declined, **request}).json()
    assert "abnormal_operation_listed" not in {f["rule"] for f in after["policy_rules_fired"]}
    assert after["records_under_objection"] == 0
    report = _call(url, "GET", "/merchant/report", key).json()
    listing = {p["record_id"]: p for p in report["records"]["public_records"]}[mine[0]]
    assert listing["removed_on"] == removed["removed_on"] and listing["current"] is False
