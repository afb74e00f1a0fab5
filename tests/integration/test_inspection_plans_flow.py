"""Inspection plans on the small simulated market, through the CLI and the regulator routes (双随机、一公开).

The session champion scores three months (``lifecredit score-all``) into a class history of this module.
The module fixture then inspects every eligible merchant of each month (a local census policy, ratio 1:
the small market's classes A and D are too thin for the shipped ratios to separate anything), simulates
the findings from the true PD and records them, so that the finding rate per class can be measured.
The routes run in a bare FastAPI app with the service's key middleware (serving.auth) and the router.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from core.vocabulary import CLASSES
from helpers import apply_env
from regulator import inspections as ins

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`"),
]
MONTHS = ("2025-05", "2025-06", "2025-07")
CENSUS = "test-census"


def cli(*args: str) -> dict:
    from lifecredit.cli import app

    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def market(served_champion, validated_market, small_market, tmp_path_factory):
    """Three months of class history; census plans of each month inspected (simulated) and recorded."""
    from core.settings import get_settings

    root = tmp_path_factory.mktemp("inspections")
    (root / "data").mkdir()
    (root / "data" / "validated").symlink_to(validated_market)
    env = {
        **served_champion["env"],
        "LIFECREDIT_DATA_DIR": str(root / "data"),
        "LIFECREDIT_HISTORY_DIR": str(root / "history"),
        "LIFECREDIT_VAR_DIR": str(root / "var"),
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    census = yaml.safe_load(ins.POLICY_FILE.read_text(encoding="utf-8"))
    census.update(version=CENSUS, ratios={c: 1.0 for c in CLASSES})
    census["exclusions"]["inspected_within_months"] = 0
    local = root / "var" / "inspections" / "policies" / "census.yaml"
    local.parent.mkdir(parents=True)
    local.write_text(yaml.safe_dump(census, allow_unicode=True), encoding="utf-8")
    plans = {}
    with pytest.MonkeyPatch.context() as mp:
        apply_env(env, mp)
        cli("score-all", "--months", str(len(MONTHS)), "--validated", str(validated_market))
        for month in MONTHS:
            plan_file, results = root / f"census-{month}.json", root / f"results-{month}.csv"
            plans[month] = cli("inspections", "plan", "--month", month, "--policy", str(local), "--out", str(plan_file))
            cli("simulate-inspections", "--plan", str(plan_file), "--raw", str(small_market), "--out", str(results))
            recorded = cli("inspections", "record", "--file", str(results))
            assert recorded["rejected"] == 0 and recorded["valid"] == plans[month]["drawn"] > 300
    get_settings.cache_clear()
    return {"env": env, "root": root, "plans": plans, "policy": local}


@pytest.fixture
def env(market, monkeypatch):
    """The module's stores applied to this test (the autouse fixture isolated the settings)."""
    apply_env(market["env"], monkeypatch)
    return market


def test_the_same_seed_and_policy_give_the_same_plan_byte_for_byte_audited(env, tmp_path):
    from core.audit import AuditLog
    from core.settings import get_settings

    one = cli("inspections", "plan", "--month", "2025-07", "--out", str(tmp_path / "one.json"))
    two = cli("inspections", "plan", "--month", "2025-07", "--seed", "202507", "--out", str(tmp_path / "two.json"))
    other = cli("inspections", "plan", "--month", "2025-07", "--seed", "1", "--out", str(tmp_path / "other.json"))
    data = (tmp_path / "one.json").read_bytes()
    assert data == (tmp_path / "two.json").read_bytes()  # the default seed is the month, YYYYMM
    assert one["plan_id"] == two["plan_id"] != other["plan_id"]
    assert (tmp_path / "other.json").read_bytes() != data
    assert Path(one["stored"]).read_bytes() == data

    log = AuditLog(get_settings().audit_url, checkpoint_seconds=None)
    try:
        record = log.get(one["audit_id"])
    finally:
        log.close()
    assert record["endpoint"] == ins.CLI_PLAN_ENDPOINT and record["key_name"].startswith("cli")
    assert record["policy_hash"] == hashlib.sha256(ins.POLICY_FILE.read_bytes()).hexdigest()
    assert record["request"]["seed"] == 202507 and not record["request"]["seed_given"]
    assert record["outputs"]["plan_sha256"] == hashlib.sha256(data).hexdigest()


def test_each_stratum_draws_within_one_merchant_and_exclusions_hold(env, tmp_path):
    """The shipped policy on 2025-07 after the census inspections of May and June: those merchants are out."""
    cli("inspections", "plan", "--month", "2025-07", "--out", str(tmp_path / "plan.json"))
    plan = json.loads((tmp_path / "plan.json").read_bytes())
    policy = ins.load_policy()
    for s in plan["strata"]:
        assert abs(s["drawn"] - policy.ratios[s["class"]] * s["eligible"]) <= 0.5, s
    from core.settings import get_settings

    results = ins.read_results(get_settings())
    inspected = set(results.filter(pl.col("inspected_on").dt.strftime("%Y-%m") < "2025-07")["merchant_id"])
    history = pl.read_parquet(Path(env["env"]["LIFECREDIT_HISTORY_DIR"]) / "month=2025-07" / "part-0.parquet")
    assert set(plan["excluded"]["recently_inspected"]) == inspected & set(history["merchant_id"])
    assert plan["excluded"]["closed"]  # merchants without a sale in the 90 days before 2025-07-01
    drawn = {m["merchant_id"] for m in plan["merchants"]}
    assert not drawn & (inspected | set(plan["excluded"]["closed"]))
    assert plan["population"]["eligible"] == history.height - sum(len(v) for v in plan["excluded"].values())


def test_the_finding_rate_rises_from_a_to_d_with_jeffreys_intervals_apart(env, capsys):
    view = cli("inspections", "findings")
    rows = {r["key"]: r for r in view["rows"]}
    with capsys.disabled():
        print("\nfinding rate per class (simulated census of", ", ".join(view["months_with_inspections"]) + "):")
        for c in CLASSES:
            a = rows[c]["any_finding"]
            print(f"  {c}: {a['count']}/{rows[c]['inspections']['count']} = {a['rate']:.3f} {a['interval']}")
    a, d = rows["A"]["any_finding"], rows["D"]["any_finding"]
    assert a["rate"] < d["rate"]
    assert a["interval"]["high"] < d["interval"]["low"]
    assert rows["A"]["inspections"]["count"] >= 100 and rows["D"]["inspections"]["count"] >= 30
    assert view["months_with_inspections"] == list(MONTHS)


# ---------------------------------------------------------------- the routes


@pytest.fixture(scope="module")
def api(market):
    """The router in a bare FastAPI app behind the service's key middleware; keys per role."""
    from fastapi import FastAPI
    from starlette.testclient import TestClient

    from core.settings import get_settings
    from serving.auth import AuthMiddleware
    from serving.keys import KeyStore
    from serving.regulator.inspections_api import router

    with pytest.MonkeyPatch.context() as mp:
        apply_env(market["env"], mp)
        settings = get_settings()
        store = KeyStore(settings.api_keys_file)
        keys = {role: store.create(role, f"{role}-inspections") for role in ("bank", "regulator")}
        app = FastAPI()
        app.include_router(router)
        app.state.settings = settings
        with TestClient(AuthMiddleware(app, settings), raise_server_exceptions=False) as client:
            yield client, keys
        log = getattr(app.state, "inspections_audit", None)
        if log is not None:
            log.close()
    get_settings.cache_clear()


def _call(api, method: str, path: str, role: str = "regulator", **kw):
    client, keys = api
    return client.request(
        method, path, headers={"Authorization": f"Bearer {keys[role]}", **kw.pop("headers", {})}, **kw
    )


def test_post_draws_the_same_plan_as_the_cli_audited_with_the_key_name(env, api):
    from core.audit import AuditLog
    from core.settings import get_settings

    r = _call(api, "POST", "/regulator/inspections", json={"month": "2025-06", "policy": CENSUS})
    assert r.status_code == 200, r.text  # the command line drew and stored this very plan
    stored = ins.read_plan(get_settings(), env["plans"]["2025-06"]["plan_id"])
    assert r.content == ins.plan_bytes(stored)
    assert r.headers["x-plan-id"] == stored["plan_id"]

    r = _call(api, "POST", "/regulator/inspections", json={"month": "2025-07", "seed": 77})
    assert r.status_code == 201, r.text
    plan = r.json()
    assert plan["seed"] == 77 and plan["policy"]["version"] == ins.load_policy().version
    again = _call(api, "POST", "/regulator/inspections", json={"month": "2025-07", "seed": 77})
    assert again.status_code == 200 and again.content == r.content

    log = AuditLog(get_settings().audit_url, checkpoint_seconds=None)
    try:
        record = log.get(r.headers["x-audit-id"])
    finally:
        log.close()
    assert record["endpoint"] == "/regulator/inspections" and record["key_name"] == "regulator-inspections"
    assert record["request"] == {"month": "2025-07", "seed": 77, "seed_given": True, "policy": "2026.12-1"}
    assert record["policy_hash"] == plan["policy"]["sha256"]
    assert record["outputs"]["plan_sha256"] == hashlib.sha256(r.content).hexdigest()

    listed = _call(api, "GET", "/regulator/inspections", params={"month": "2025-07"}).json()
    assert plan["plan_id"] in {p["plan_id"] for p in listed["plans"]}
    assert {p["month"] for p in listed["plans"]} == {"2025-07"}
    one = _call(api, "GET", f"/regulator/inspections/plans/{plan['plan_id']}")
    assert one.status_code == 200 and one.content == r.content


def test_findings_route_answers_the_view_and_a_bank_key_is_refused(env, api):
    from core.settings import get_settings

    r = _call(api, "GET", "/regulator/inspections/findings", params={"from": "2025-05", "to": "2025-07"})
    assert r.status_code == 200, r.text
    assert r.json() == json.loads(json.dumps(ins.findings_view(get_settings(), "2025-05", "2025-07")))
    for method, path in (("GET", "/regulator/inspections"), ("POST", "/regulator/inspections")):
        assert _call(api, method, path, role="bank", json={"month": "2025-07"}).status_code == 403
    client, _ = api
    assert client.get("/regulator/inspections").status_code == 401


@pytest.mark.parametrize(
    "body, status, words",
    [
        ({"month": "2025-13"}, 400, "month"),
        ({"month": "2024-01"}, 404, "no month 2024-01"),
        ({"month": "2025-07", "policy": "../../etc/passwd"}, 400, "policy"),
        ({"month": "2025-07", "policy": "nope"}, 404, "no inspection policy 'nope'"),
        ({"month": "2025-07", "seed": "5"}, 400, "seed"),
        ({"month": "2025-07", "seed": -1}, 400, "seed"),
        ({"month": "2025-07", "by": "x"}, 400, "by"),
        ([1, 2], 400, "body"),
    ],
)
def test_post_refuses_what_it_cannot_use(env, api, body, status, words):
    r = _call(api, "POST", "/regulator/inspections", json=body)
    assert r.status_code == status, r.text
    assert words in r.text


def test_routes_refuse_bad_bodies_and_queries(env, api):
    post = lambda **kw: _call(api, "POST", "/regulator/inspections", **kw)  # noqa: E731
    assert post(content=b"{not json", headers={"Content-Type": "application/json"}).status_code == 400
    assert post(content=b'{"month": "2025-07"}', headers={"Content-Type": "text/plain"}).status_code == 415
    assert post(content=b" " * 5000, headers={"Content-Type": "application/json"}).status_code == 413
    assert _call(api, "GET", "/regulator/inspections", params={"mnth": "2025-07"}).json()["parameter"] == "mnth"
    assert _call(api, "GET", "/regulator/inspections", params={"month": "July"}).status_code == 400
    r = _call(api, "GET", "/regulator/inspections/findings", params={"from": "2025-07", "to": "2025-05"})
    assert r.status_code == 400 and r.json()["parameter"] == "from"
    assert _call(api, "GET", "/regulator/inspections/plans/IP-2025-07-000000000000").status_code == 404
    assert _call(api, "GET", "/regulator/inspections/plans/..%2Fsecret").status_code == 404


def test_the_service_includes_the_inspection_routes():
    from serving.service import read_api

    paths = set(read_api.openapi()["paths"])  # included routers are resolved there (not in read_api.routes)
    assert {
        "/regulator/inspections",
        "/regulator/inspections/findings",
        "/regulator/inspections/plans/{plan_id}",
    } <= paths


def test_the_development_report_prints_every_part(env, tmp_path):
    """生活服务数字化发展报告: supply and consumption, the index, classes, loans, inspection findings, zh and en."""
    from lifecredit.cli import app

    data = Path(env["env"]["LIFECREDIT_DATA_DIR"])
    cli("consumption-index", "--validated", str(data / "validated"))
    out = tmp_path / "development.html"
    res = CliRunner().invoke(app, ["report", "--kind", "development", "--month", "2025-07", "--out", str(out)])
    assert res.exit_code == 0, res.output
    page = out.read_text(encoding="utf-8")
    for zh, en in (
        ("供给与消费", "Supply and consumption"),
        ("数字化消费指数", "Digital consumption index"),
        ("信用风险分类分布", "Credit-risk classes"),
        ("小微贷款与普惠金融", "Micro-loans and inclusive finance"),
        ("双随机抽查结果", "Inspection findings by class"),
    ):
        assert zh in page and en in page, en
    assert "请先运行" not in page  # every part had its inputs
    findings = page.split('id="inspections"')[1]
    rows = findings.split("<tbody>")[1].split("</tbody>")[0].split("<tr>")[1:]
    assert len(rows) == 6 and all("%" in r for r in rows[:4])  # A-D with rates, unclassified, total
    index = page.split('id="index"')[1].split('id="classes"')[0]
    last = index.split("<tr>")[-1]  # the latest month of sales before the report month's as_of (2025-07-01)
    assert "2025-06" in last and last.count(".") >= 2 and "Consumption month: 2025-06" in page
    assert "2025-07" in page and "<script" not in page
