"""Every route x role (none, bank, regulator, admin, own merchant, other merchant) over HTTP, the rate and size
limits, and no key text anywhere.

Routes come from the service's OpenAPI document plus the few it does not list; a route
without an expected row in ``EXPECTED`` fails the test, so a new route needs a decision here.
Runs on the session's ``live_service`` (rate limit 60 a minute, burst 30, per key).
"""

from __future__ import annotations

import sqlite3

import httpx
import pytest

ROLES = ("none", "bank", "regulator", "admin", "merchant", "other_merchant")  # merchant: the one asked about
PUBLIC = {role: 200 for role in ROLES}
MERCHANTS = ("merchant", "other_merchant")


def only(*roles: str, **status: int) -> dict[str, int]:
    """401 without a key, 403 for a role not listed, 200 (or ``status[role]``) for one listed."""
    return {"none": 401, **{r: status.get(r, 200) if r in roles else 403 for r in ROLES[1:]}}


EXPECTED: dict[tuple[str, str], dict[str, int]] = {
    ("GET", "/livez"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/"): PUBLIC,
    ("GET", "/docs.json"): PUBLIC,
    ("GET", "/schema.json"): PUBLIC,
    ("GET", "/regulator/"): PUBLIC,  # the dashboard page; its data needs a regulator key
    ("GET", "/regulator/static/dashboard.js"): PUBLIC,
    ("GET", "/merchant/"): PUBLIC,  # the merchant's page; its data needs the merchant's key
    ("GET", "/merchant/static/merchant.js"): PUBLIC,
    ("GET", "/merchant/report"): only(*MERCHANTS),  # each merchant key reads its own report
    ("GET", "/merchant/report?merchant_id={merchant_id}"): only(*MERCHANTS, other_merchant=404),
    ("GET", "/merchant/objections"): only(*MERCHANTS),
    ("POST", "/merchant/objections"): only(*MERCHANTS, merchant=201, other_merchant=404),  # a record of the merchant
    ("GET", "/admin/objections"): only("admin"),
    ("POST", "/regulator/inspections"): only("regulator", regulator=201),  # draws and stores a plan
    ("GET", "/regulator/inspections"): only("regulator"),
    ("GET", "/regulator/consumption-index"): only("regulator"),
    ("GET", "/regulator/inspections/findings"): only("regulator"),
    ("GET", "/regulator/inspections/plans/{plan_id}"): only("regulator", regulator=404),  # no such plan
    ("POST", "/admin/objections/{objection_id}/resolve"): only("admin"),
    ("POST", "/score"): only("bank"),
    ("POST", "/score_batch"): only("bank"),
    ("POST", "/decide"): only("bank"),
    ("GET", "/decisions/{decision_id}"): only("bank", "admin"),
    ("GET", "/model"): only("bank", "regulator", "admin"),
    ("POST", "/admin/reload"): only("admin", admin=202),  # a job starts; the old answers keep serving
    ("GET", "/admin/reload/{job_id}"): only("admin", admin=404),  # no such job
    **{
        ("GET", f"/regulator/{view}"): only("regulator")
        for view in (
            "months",
            "distribution",
            "stability",
            "migration",
            "outcomes",
            "concentration",
            "inclusion",
            "validation",
            "objections",
            "map",
        )
    },
}
NOT_IN_OPENAPI = {
    ("GET", "/"),
    ("GET", "/docs.json"),
    ("GET", "/schema.json"),
    ("GET", "/regulator/"),
    ("GET", "/regulator/static/dashboard.js"),
    ("GET", "/merchant/"),
    ("GET", "/merchant/static/merchant.js"),
    ("GET", "/merchant/report?merchant_id={merchant_id}"),  # a query variant of /merchant/report
}
SEEN: dict[str, list] = {"keys": [], "bodies": []}  # for the leak test at the end of this module


def _key(live_service, role: str, merchant_id: str | None = None) -> str:
    key = live_service["new_key"](role, merchant_id)
    SEEN["keys"].append(key)
    return key


def _call(url: str, method: str, path: str, key: str | None, body=None, **kw) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    r = httpx.request(method, url + path, json=body, headers=headers, timeout=120, **kw)
    SEEN["bodies"].append(r.text)
    return r


def _with_complaint(validated_market, ids: list[str]) -> tuple[str, str]:
    """A served merchant with a complaint on record, and that complaint's id."""
    import polars as pl

    complaints = pl.read_parquet(validated_market / "complaints.parquet").filter(pl.col("merchant_id").is_in(ids))
    first = complaints.sort("merchant_id", "complaint_id").row(0, named=True)
    return first["merchant_id"], first["complaint_id"]


def live_service_month(live_service) -> str:
    """The latest month of the live service's class history (a plan is drawn over it)."""
    return httpx.get(
        f"{live_service['url']}/regulator/months",
        headers={"Authorization": f"Bearer {live_service['new_key']('regulator')}"},
        timeout=60,
    ).json()["months"][-1]


def test_every_route_every_role(live_service, validated_market):
    url = live_service["url"]
    m, complaint = _with_complaint(validated_market, live_service["ids"])
    other = next(i for i in live_service["ids"] if i != m)
    keys = {role: _key(live_service, role) for role in ("bank", "regulator", "admin")}
    keys["merchant"] = _key(live_service, "merchant", m)
    keys["other_merchant"] = _key(live_service, "merchant", other)
    keys["none"] = None
    objection = _call(
        url,
        "POST",
        "/merchant/objections",
        keys["merchant"],
        {"table": "complaints", "record_id": complaint, "reason": "x"},
    )
    assert objection.status_code == 201, objection.text
    routes = {
        (method.upper(), path) for path, ops in httpx.get(f"{url}/docs.json").json()["paths"].items() for method in ops
    }
    assert routes | NOT_IN_OPENAPI == set(EXPECTED), f"routes without an expectation: {routes - set(EXPECTED)}"

    decided = _call(
        url,
        "POST",
        "/decide",
        keys["bank"],
        {"merchant_id": m, "requested_amount_fen": 1_000_000, "term_months": 12, "product": "term_loan"},
    )
    assert decided.status_code == 200, decided.text
    bodies = {
        "/score": {"merchant_id": m},
        "/score_batch": {"merchant_ids": [m]},
        "/decide": {"merchant_id": m, "requested_amount_fen": 1_000_000, "term_months": 12, "product": "term_loan"},
        "/merchant/objections": {"table": "complaints", "record_id": complaint, "reason": "not our shop"},
        "/admin/objections/{objection_id}/resolve": {"outcome": "upheld", "note": "checked with the platform"},
        "/regulator/inspections": {"month": live_service_month(live_service), "seed": 4242},
    }
    wrong = []
    for (method, path), expected in sorted(EXPECTED.items()):
        concrete = (
            path.replace("{decision_id}", decided.json()["decision_id"])
            .replace("{merchant_id}", m)
            .replace("{objection_id}", objection.json()["objection_id"])
            .replace("{plan_id}", "IP-2025-07-000000000000")
            .replace("{job_id}", "RLD-20261206T000000-000000")
        )
        for role in ROLES:
            r = _call(url, method, concrete, keys[role], bodies.get(path))
            if r.status_code != expected[role]:
                wrong.append(f"{method} {path} as {role}: {r.status_code}, expected {expected[role]}: {r.text[:200]}")
            elif r.status_code in (401, 403):
                assert r.json()["error"], r.text
    assert not wrong, "\n".join(wrong)


def test_rate_limit_answers_429_with_retry_after_per_key(live_service):
    url = live_service["url"]
    limited, other = _key(live_service, "bank"), _key(live_service, "bank")
    statuses, refused = [], None
    for _ in range(45):  # burst 30, then one a second
        r = _call(url, "GET", "/model", limited)
        statuses.append(r.status_code)
        if r.status_code == 429:
            refused = r
            break
    assert statuses.count(200) >= 30 and refused is not None, statuses
    wait = int(refused.headers["Retry-After"])
    assert wait >= 1 and "rate limit" in refused.json()["error"] and refused.json()["retry_after_seconds"] == wait
    assert _call(url, "GET", "/model", other).status_code == 200  # buckets are per key
    import time

    time.sleep(wait)
    assert _call(url, "GET", "/model", limited).status_code == 200


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_over_the_size_limit_answers_413(live_service, chunked):
    url, key = live_service["url"], _key(live_service, "bank")
    payload = b'{"merchant_ids": [' + b",".join([b'"M00000001"'] * 200_000) + b"]}"  # ~2.4 MB > 2 MB
    content = iter([payload[i : i + 65536] for i in range(0, len(payload), 65536)]) if chunked else payload
    r = httpx.post(
        f"{url}/score_batch",
        content=content,
        timeout=120,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    SEEN["bodies"].append(r.text)
    assert r.status_code == 413 and "request body over" in r.json()["error"], r.text
    small = _call(url, "POST", "/score_batch", key, {"merchant_ids": live_service["ids"][:3]})
    assert small.status_code == 200


def test_keys_never_in_logs_audit_records_or_error_bodies(live_service):
    url, m = live_service["url"], live_service["ids"][1]
    bank = _key(live_service, "bank")
    forged = bank[:-6] + "AAAAAA"
    SEEN["keys"] += [forged]
    for key in (forged, "lck_nosuchid_" + "x" * 40, bank):
        _call(url, "POST", "/score", key, {"merchant_id": m})
        _call(
            url,
            "POST",
            "/decide",
            key,
            {"merchant_id": m, "requested_amount_fen": -1, "term_months": 0, "product": "x"},
        )
    _call(url, "GET", "/decisions/nope", bank)
    assert len(SEEN["keys"]) > 8
    secrets = SEEN["keys"] + [k.split("_", 2)[2] for k in SEEN["keys"]]  # the secret may itself hold "_"
    log = live_service["log"].read_text(errors="replace")
    with sqlite3.connect(f"file:{live_service['var'] / 'audit.db'}?mode=ro", uri=True) as conn:
        audit = "\n".join(" ".join(map(str, row)) for row in conn.execute("SELECT * FROM audit_log"))
    assert audit.count("\n") > 3
    for where, text in (("server log", log), ("audit records", audit), ("response bodies", "\n".join(SEEN["bodies"]))):
        leaked = [s[:12] + "..." for s in secrets if s in text]
        assert not leaked, f"key text in {where}: {leaked}"
