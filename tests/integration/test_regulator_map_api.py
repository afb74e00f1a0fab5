"""``GET /regulator/map`` in the real service (ASGI test client) over the small market: shapes, suppression,
bad queries, roles, and the answer time from the precomputed aggregates (≤ 200 ms).

The module's class history is the session champion's 14 months (``regulator`` fixture); the consumption
aggregates are built from the validated small market with ``regulator.consumption`` into the module's own
data folder, and a few inspection results are written beside them.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, date, datetime

import polars as pl
import pytest

from helpers import apply_env, in_process_app
from serving.keys import KeyStore
from test_regulator_api import app_settings

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
PROVINCES = {"11", "33", "37", "41", "42", "44", "51", "53"}


@pytest.fixture(scope="module")
def api(regulator, validated_market, tmp_path_factory):
    """A running service over the 14-month history, the consumption aggregates and a month of inspections."""
    from starlette.testclient import TestClient

    from core.settings import get_settings
    from regulator.consumption import build_consumption
    from regulator.inspections import RESULT_SCHEMA, results_dir

    data = tmp_path_factory.mktemp("map_data")
    (data / "validated").symlink_to(validated_market)
    env = {**regulator["env"], "LIFECREDIT_DATA_DIR": str(data)}
    with pytest.MonkeyPatch.context() as mp:
        apply_env(env, mp)
        settings = get_settings()
        build_consumption(validated_market, settings.consumption_folder, k=settings.min_cell_count, hash_inputs=False)
        months = regulator["summary"]["months"]
        inspected = pl.read_parquet(regulator["root"] / "history" / f"month={months[-1]['month']}" / "part-0.parquet")
        results = inspected.select("merchant_id").head(300).with_row_index("n")
        results = results.select(
            "merchant_id",
            inspected_on=pl.lit(date.fromisoformat(months[-1]["as_of"])),
            finding=pl.when(pl.col("n") % 3 == 0).then(pl.lit("minor")).otherwise(pl.lit("none")),
            plan_id=pl.lit(None),
            inspector=pl.lit(None),
            source_sha256=pl.lit("test"),
            recorded_at=pl.lit(datetime(2026, 1, 1, tzinfo=UTC)),
        ).cast(RESULT_SCHEMA)
        results_dir(settings).mkdir(parents=True)
        results.write_parquet(results_dir(settings) / "results.parquet")
        store = KeyStore(settings.api_keys_file)
        keys = {role: store.create(role, f"{role}-map") for role in ("bank", "regulator")}
        with TestClient(in_process_app(), raise_server_exceptions=False) as client:
            deadline = time.monotonic() + 120
            while client.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, "service not ready in 120 s"
                time.sleep(0.1)
            found = results.join(inspected.select("merchant_id", "province"), on="merchant_id")
            rates = found.group_by("province").agg((pl.col("finding") != "none").mean()).rows()
            yield client, keys, [m["month"] for m in months], dict(rates)
    get_settings.cache_clear()


def _get(api, role: str = "regulator", **params):
    client, keys, *_ = api
    return client.get("/regulator/map", params=params, headers={"Authorization": f"Bearer {keys[role]}"})


def test_the_route_lists_its_measures(api):
    r = _get(api)
    assert r.status_code == 200, r.text
    body = r.json()
    keys = [m["key"] for m in body["measures"]]
    assert keys[:6] == ["merchants", "class_A", "class_B", "class_C", "class_D", "mean_pd"]
    assert {"active_merchants", "consumption_amount", "consumption_yoy", "digital_share", "consumption_index"} <= set(
        keys
    )
    assert "finding_rate" in keys
    assert all(m["available"] and m["label"]["zh"] and m["label"]["en"] and m["unit"]["en"] for m in body["measures"])
    assert body["months"] == api[2] and body["levels"] == ["province", "prefecture"]
    assert body["sectors"] and all(s["label"]["zh"] for s in body["sectors"])
    assert body["suppressed_label"] == {"en": "<10 merchants, not shown", "zh": "少于10家，不显示"}


def test_every_measure_answers_per_region_with_hidden_regions_as_suppressed(api):
    listing = _get(api).json()
    month = api[2][-1]
    for measure in listing["measures"]:
        months = listing["consumption_months"] if measure["source"] == "consumption" else listing["months"]
        for level in measure["levels"]:
            r = _get(api, measure=measure["key"], level=level)  # the latest month of the measure's source
            assert r.status_code == 200, (measure["key"], level, r.text)
            body = r.json()
            assert body["month"] == months[-1] and body["months"] == months
            assert body["level"] == level and body["measure"]["key"] == measure["key"]
            for region in body["regions"]:
                assert region["status"] in ("shown", "suppressed", "no_data")
                if region["status"] != "shown":
                    assert region["value"] is None and region["merchants"] is None
                assert len(region["code"]) == (2 if level == "province" else 4) or region["code"] == "unknown"
            if level == "province" and measure["source"] != "inspections":
                assert {r["code"] for r in body["regions"]} >= PROVINCES
    merchants = _get(api, measure="merchants", month=month).json()["regions"]
    assert sum(r["value"] for r in merchants if r["status"] == "shown") <= 400
    cities = _get(api, measure="merchants", month=month, level="prefecture").json()["regions"]
    hidden = [r for r in cities if r["status"] == "suppressed"]
    assert hidden and all(r["value"] is None for r in hidden)  # 400 merchants over 29 prefectures
    assert listing["consumption_months"][-1] < month  # sales within a month; the classes as of its first day
    index = _get(api, measure="consumption_index").json()["regions"]  # the index per province, as the route serves it
    shown = [r["value"] for r in index if r["status"] == "shown"]
    assert shown and all(v > 0 for v in shown)
    catering = _get(api, measure="consumption_amount", sector="catering").json()
    assert catering["sector"]["label"]["zh"] == "餐饮" and catering["regions"]
    rates = _get(api, measure="finding_rate", month=month).json()
    shown = [r for r in rates["regions"] if r["status"] == "shown"]
    assert shown and all(r["value"] == pytest.approx(api[3][r["code"]], abs=1e-6) for r in shown)


@pytest.mark.parametrize(
    ("params", "status", "parameter"),
    [
        ({"measure": "colour"}, 400, "measure"),
        ({"measure": "merchants", "level": "county"}, 400, "level"),
        ({"measure": "merchants", "month": "2025-13"}, 400, "month"),
        ({"measure": "merchants", "region": "33"}, 400, "region"),
        ({"measure": "mean_pd", "sector": "catering"}, 400, None),
        ({"measure": "finding_rate", "level": "prefecture"}, 400, None),
        ({"measure": "merchants", "month": "1999-01"}, 404, None),
        ({"measure": "digital_share", "month": "2030-01"}, 404, None),
        ({"measure": "active_merchants", "sector": "shipyards"}, 404, None),
    ],
)
def test_bad_queries_answer_json_errors(api, params, status, parameter):
    r = _get(api, **params)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] and body.get("parameter") == parameter


def test_roles_and_a_missing_history(api, tmp_path):
    from core.settings import get_settings

    client = api[0]
    assert client.get("/regulator/map").status_code == 401
    assert _get(api, "bank").status_code == 403
    with app_settings(get_settings().model_copy(update={"history_dir": tmp_path / "none"})):
        r = _get(api, measure="merchants")
    assert r.status_code == 503 and "score-all" in r.json()["error"]


def test_answers_from_the_precomputed_aggregates_within_200_ms(api):
    """Each month and level computed once; after that every answer comes from memory."""
    months = api[2]
    sales_months = _get(api).json()["consumption_months"][-len(months) :]
    cold = []
    for month in months:
        start = time.perf_counter()
        assert _get(api, measure="mean_pd", month=month, level="prefecture").status_code == 200
        cold.append(time.perf_counter() - start)
    warm = []
    for measure in ("merchants", "class_D", "mean_pd", "active_merchants", "consumption_yoy", "finding_rate"):
        for month in sales_months if measure.startswith(("active", "consumption")) else months:
            start = time.perf_counter()
            r = _get(api, measure=measure, month=month)
            warm.append(time.perf_counter() - start)
            assert r.status_code == 200, r.text
    print(
        f"map route: first answer per month median {statistics.median(cold) * 1000:.1f} ms (max {max(cold) * 1000:.1f}); "
        f"warm median {statistics.median(warm) * 1000:.1f} ms, max {max(warm) * 1000:.1f} ms over {len(warm)} requests"
    )
    assert max(warm) <= 0.2 and max(cold) <= 2.0
