"""The regulator API in the real service (ASGI test client): roles, JSON shapes, suppression, bad queries.

The session champion scores 14 months of the small market into a class history
(``lifecredit score-all``, the module fixture of ``test_regulator_flow``); a bank key makes real
decisions through ``/decide`` so the inclusive-finance view has something to count, and merchants'
objections are filed into the module's objections store (:func:`seed_objections`).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from helpers import REGULATOR_MONTHS as MONTHS
from helpers import apply_env, file_objections, in_process_app
from serving.keys import KeyStore

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
ROUTES = (
    "/regulator/months",
    "/regulator/distribution",
    "/regulator/stability",
    "/regulator/migration",
    "/regulator/outcomes",
    "/regulator/concentration",
    "/regulator/inclusion",
    "/regulator/objections",
    "/regulator/validation",
)


@pytest.fixture(scope="module")
def api(regulator, served_champion):
    """A running service (ASGI) over the 14-month class history, keys per role, 60 decisions made by a bank."""
    from starlette.testclient import TestClient

    from core.settings import get_settings

    with pytest.MonkeyPatch.context() as mp:
        apply_env(regulator["env"], mp)
        store = KeyStore(get_settings().api_keys_file)
        keys = {role: store.create(role, f"{role}-api") for role in ("bank", "regulator", "admin")}
        ids = pl.read_parquet(served_champion["features"] / "latest.parquet")["merchant_id"].to_list()
        seed_objections(get_settings().objections_file, ids)
        with TestClient(in_process_app(), raise_server_exceptions=False) as client:
            deadline = time.monotonic() + 120
            while client.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, "service not ready in 120 s"
                time.sleep(0.1)
            for mid in ids[:60]:
                r = client.post(
                    "/decide",
                    headers={"Authorization": f"Bearer {keys['bank']}"},
                    json={
                        "merchant_id": mid,
                        "requested_amount_fen": 3_000_000,
                        "term_months": 12,
                        "product": "term_loan",
                    },
                )
                assert r.status_code == 200, r.text
            yield client, keys, regulator["env"]
    get_settings.cache_clear()


NOW = datetime.now(UTC)
OBJECTION_MONTH = (NOW - timedelta(days=12)).strftime("%Y-%m")


def seed_objections(path, ids: list[str]) -> None:
    """40 objections of 34 merchants received 12 days ago (half resolved), 6 repair requests 60 days ago (overdue)."""
    file_objections(
        path, ids[:34] + ids[:6], ids[100:106], NOW - timedelta(days=12), NOW - timedelta(days=60), timedelta(days=3)
    )


@pytest.fixture
def reg(api, monkeypatch):
    """The module's service with its settings applied to this test (the autouse fixture isolated them)."""
    apply_env(api[2], monkeypatch)
    return api


@contextmanager
def app_settings(settings):
    """The app reads these settings for a while, then its own again.

    Not ``monkeypatch.setattr``: Starlette's ``State`` keeps attributes in a dict, so its undo
    deletes ``settings`` instead of restoring them, and every later test would find none.
    """
    from serving.service import read_api

    before = read_api.state.settings
    read_api.state.settings = settings
    try:
        yield
    finally:
        read_api.state.settings = before


def _get(api, path: str, role: str = "regulator", **params):
    client, keys, _ = api
    return client.get(path, params=params, headers={"Authorization": f"Bearer {keys[role]}"})


def _cells(obj) -> list[dict]:
    """Every count cell (a dict with "count" and "suppressed") anywhere in an answer."""
    if isinstance(obj, dict):
        found = [obj] if {"count", "suppressed"} <= set(obj) else []
        return found + [c for v in obj.values() for c in _cells(v)]
    if isinstance(obj, list):
        return [c for v in obj for c in _cells(v)]
    return []


def test_roles_on_every_regulator_route(reg):
    client, keys, _ = reg
    for path in ROUTES:
        assert _get(reg, path).status_code == 200, (path, _get(reg, path).text)
        r = _get(reg, path, "bank")
        assert r.status_code == 403 and "allowed: regulator" in r.json()["error"], path
        assert client.get(path).status_code == 401, path
        assert _get(reg, path, "admin").status_code == 403, path
    # a regulator key does not score or decide
    for path, body in (
        ("/score", {"merchant_id": "M00000001"}),
        ("/score_batch", {"merchant_ids": ["M00000001"]}),
        ("/decide", {"merchant_id": "M00000001", "requested_amount_fen": 1, "term_months": 12, "product": "term_loan"}),
    ):
        r = client.post(path, json=body, headers={"Authorization": f"Bearer {keys['regulator']}"})
        assert r.status_code == 403, path
    assert _get(reg, "/model").status_code == 200  # the model card is for every role
    # an unlisted path needs a key, then answers 404 (it serves nothing)
    assert client.get("/regulator-elsewhere").status_code == 401
    assert _get(reg, "/regulator-elsewhere").status_code == 404
    assert _get(reg, "/regulator/nothing-here").status_code == 404


def test_distribution_shape_and_suppression(reg):
    from core.settings import get_settings

    k = get_settings().min_cell_count
    months = _get(reg, "/regulator/months").json()
    assert len(months["months"]) == MONTHS and months["min_cell_count"] == k
    for by in ("sector", "province", "city", "business_form", "urban_rural"):
        body = _get(reg, "/regulator/distribution", by=by, month=months["months"][-1]).json()
        assert body["by"] == by and body["month"] == months["months"][-1] and body["rows"]
        assert [c["class"] for c in body["classes"]] == ["A", "B", "C", "D"]
        for row in body["rows"]:
            assert set(row["cells"]) == {"A", "B", "C", "D"} and row["label"]["en"] and row["label"]["zh"]
        cells = _cells(body)
        assert not [c for c in cells if c["count"] is not None and 1 <= c["count"] < k], by
        hidden = [c for c in cells if c["suppressed"]]
        assert all(c["count"] is None and c.get("share") is None for c in hidden)
        published = sum(r["total"]["count"] for r in body["rows"] if not r["total"]["suppressed"])
        assert published <= body["total"]["total"]["count"]
    # 400 merchants over some 100 cities: the city table must hide cells
    city = _get(reg, "/regulator/distribution", by="city").json()
    assert city["suppressed_cells"] > 0 and any(c["suppressed"] for c in _cells(city))
    assert {"count": None, "suppressed": True, "share": None} in [c for r in city["rows"] for c in r["cells"].values()]


def test_filters_narrow_the_published_rows(reg):
    by_sector = _get(reg, "/regulator/distribution", by="sector").json()
    one = by_sector["rows"][0]
    narrowed = _get(reg, "/regulator/distribution", by="sector", sector=one["key"]).json()
    assert [r["key"] for r in narrowed["rows"]] == [one["key"]] and narrowed["rows"][0] == one
    province = _get(reg, "/regulator/distribution", by="province").json()["rows"][0]["key"]
    cities = _get(reg, "/regulator/distribution", by="city", province=province).json()["rows"]
    assert cities and all(r["key"].startswith(province) for r in cities)
    series = _get(reg, "/regulator/distribution", by="month").json()
    assert len(series["rows"]) == MONTHS and series["rows"][-1]["total"]["count"] > 0
    sector_series = _get(reg, "/regulator/distribution", by="month", sector=one["key"]).json()
    assert sector_series["filters"] == {"sector": one["key"]}
    assert sector_series["rows"][-1]["cells"] == one["cells"] | {}  # the same published row as by=sector
    assert sector_series["rows"][-1]["total"]["count"] == one["total"]["count"]


def test_the_other_views_answer_with_their_shapes(reg):
    months = _get(reg, "/regulator/months").json()["months"]
    stab = _get(reg, "/regulator/stability", **{"from": months[0], "to": months[-1]}).json()
    assert len(stab["rows"]) == MONTHS - 1 and stab["bands"] == {"stable_below": 0.10, "shifted_from": 0.25}
    assert all(r["band_class"] in ("stable", "drifting", "shifted") for r in stab["rows"])
    mig = _get(reg, "/regulator/migration", **{"from": months[-2], "to": months[-1]}).json()
    assert [r["key"] for r in mig["rows"]] == ["A", "B", "C", "D", "new"]
    assert set(mig["rows"][0]["cells"]) == {"A", "B", "C", "D", "exited"} and "summary" in mig
    out = _get(reg, "/regulator/outcomes").json()
    assert [r["key"] for r in out["rows"]] == ["A", "B", "C", "D"] and out["months_with_outcomes"]
    known = [r for r in out["rows"] if r["interval"]]
    assert known and all(r["interval"]["low"] <= r["default_rate"] <= r["interval"]["high"] for r in known)
    inc = _get(reg, "/regulator/inclusion", by="business_form").json()
    assert inc["total"]["decisions"]["count"] == 60 and inc["rows"]
    rate, approved = inc["total"]["approval_rate"], inc["total"]["cells"]["approve"]
    assert rate is None if approved["suppressed"] else rate == pytest.approx(approved["count"] / 60)
    assert inc["calibration"] is None or inc["calibration"]["rows"]
    val = _get(reg, "/regulator/validation").json()
    assert 0.5 < val["discrimination"]["auc"] <= 1 and len(val["calibration"]["by_class"]) == 4
    assert all("jeffreys_p" in r for r in val["calibration"]["by_class"])
    conc = _get(reg, "/regulator/concentration").json()
    assert len(conc["rows"]) == MONTHS


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        ("/regulator/distribution", {"by": "colour"}, "by"),
        ("/regulator/distribution", {"month": "2024-13"}, "month"),
        ("/regulator/distribution", {"month": "July"}, "month"),
        ("/regulator/distribution", {"by": "sector", "province": "44"}, "province"),
        ("/regulator/distribution", {"by": "urban_rural", "sector": "retail"}, "sector"),
        ("/regulator/distribution", {"by": "sector", "from": "2024-01"}, "from"),
        ("/regulator/stability", {"from": "2024-1"}, "from"),
        ("/regulator/stability", {"from": "2025-06", "to": "2025-01"}, "from"),
        ("/regulator/stability", {"form": "2025-01"}, "form"),
        ("/regulator/migration", {"to": "2025/06"}, "to"),
        ("/regulator/inclusion", {"by": "city"}, "by"),
        ("/regulator/outcomes", {"by": "sector"}, "by"),
        ("/regulator/validation", {"month": "2025-01"}, "month"),
        ("/regulator/objections", {"by": "city"}, "by"),
        ("/regulator/objections", {"by": "sector", "month": "2025-13"}, "month"),
        ("/regulator/objections", {"by": "month", "month": "2025-07"}, "month"),
        ("/regulator/objections", {"kind": "complaint"}, "kind"),
        ("/regulator/objections", {"from": "2025-01"}, "from"),
    ],
)
def test_bad_queries_name_the_parameter(reg, path, params, parameter):
    r = _get(reg, path, **params)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["parameter"] == parameter and body["expected"] and f"'{parameter}'" in body["error"]


def test_unknown_month_or_segment_is_404_and_says_what_exists(reg):
    r = _get(reg, "/regulator/distribution", month="1999-01")
    assert r.status_code == 404 and "available" in r.json()["error"]
    r = _get(reg, "/regulator/distribution", by="sector", sector="no_such_sector")
    assert r.status_code == 404 and "no_such_sector" in r.json()["error"]
    assert _get(reg, "/regulator/migration", **{"from": "1999-01", "to": "1999-02"}).status_code == 404


def test_routes_are_in_the_openapi_document(reg):
    client, _, _ = reg
    spec = client.get("/docs.json").json()
    for path in ROUTES:
        assert path in spec["paths"] and "get" in spec["paths"][path], path
    params = {p["name"] for p in spec["paths"]["/regulator/stability"]["get"]["parameters"]}
    assert params == {"from", "to"}
    assert "/regulator/" not in spec["paths"]  # the page is not an API route


def test_no_history_is_503_naming_the_command(reg, tmp_path, monkeypatch):
    """The routes read the settings the service gave its app (read once per process): swap them for one without a history."""
    from core.settings import get_settings

    apply_env({**reg[2], "LIFECREDIT_HISTORY_DIR": str(tmp_path / "none")}, monkeypatch)
    with app_settings(get_settings()):
        r = _get(reg, "/regulator/stability")
    assert r.status_code == 503 and "lifecredit score-all" in r.json()["error"]


def test_objections_by_month_sector_and_province(reg):
    from core.settings import get_settings

    k = get_settings().min_cell_count
    by_month = _get(reg, "/regulator/objections").json()
    assert by_month["view"] == "objections" and by_month["by"] == "month" and by_month["total"] is None
    assert by_month["deadline_days"] == 20 and by_month["min_cell_count"] == k
    assert [m["key"] for m in by_month["measures"]] == [
        "received",
        "resolved",
        "corrected",
        "upheld",
        "open",
        "overdue",
        "resolved_in_time",
        "open_in_time",
    ]
    rows = {r["key"]: r for r in by_month["rows"]}
    assert OBJECTION_MONTH in rows and by_month["to"] == OBJECTION_MONTH
    cells = rows[OBJECTION_MONTH]["cells"]
    assert cells["received"]["count"] == 40 and cells["open"]["count"] == 20 and cells["overdue"]["count"] == 0
    assert cells["resolved"]["count"] == 20 and rows[OBJECTION_MONTH]["resolved_within_deadline_share"] == 1.0
    assert rows[OBJECTION_MONTH]["median_days_to_resolve"] == 3.0
    repairs = _get(reg, "/regulator/objections", kind="repair").json()
    month = repairs["months"][0]
    first = {r["key"]: r for r in repairs["rows"]}[month]["cells"]
    assert first["received"] == {"count": None, "suppressed": True}  # 6 merchants: below the threshold
    assert all(c["suppressed"] for c in first.values() if c["count"] != 0)
    for by in ("sector", "province"):
        body = _get(reg, "/regulator/objections", by=by, month=OBJECTION_MONTH).json()
        assert body["month"] == OBJECTION_MONTH and body["rows"] and body["total"]["cells"] == cells
        assert all(r["label"]["en"] and r["label"]["zh"] for r in body["rows"])
        published = _cells(body)
        assert not [c for c in published if c["count"] is not None and 1 <= c["count"] < k], by
        assert body["suppressed_cells"] > 0 and {"count": None, "suppressed": True} in published
        assert sum(r["cells"]["received"]["count"] or 0 for r in body["rows"]) <= 40
    default = _get(reg, "/regulator/objections", by="sector").json()
    assert default["month"] == by_month["months"][-1]


def test_objections_without_a_store_are_zero(reg, tmp_path, monkeypatch):
    """No objections file in the app's var folder: zero objections, and the file is not created by reading."""
    from core.settings import get_settings

    apply_env({**reg[2], "LIFECREDIT_VAR_DIR": str(tmp_path / "var")}, monkeypatch)
    with app_settings(get_settings()):
        r = _get(reg, "/regulator/objections")
        assert r.status_code == 200 and r.json()["rows"] == [] and r.json()["months"] == []
        r = _get(reg, "/regulator/objections", by="province", kind="objection")
    assert r.status_code == 200 and r.json()["rows"] == []
    assert r.json()["total"]["cells"]["received"] == {"count": 0, "suppressed": False}
    assert not (tmp_path / "var" / "objections.db").exists()
