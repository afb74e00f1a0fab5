"""The catalogue is complete, well formed and the single source of the pipeline's columns."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

import features
from features import RawTables, compute_features, load_catalog
from features.catalog import Catalog
from market_frames import tiny_market

ROOT = Path(__file__).resolve().parents[2]


def test_catalogue_header_and_completeness():
    cat = load_catalog()
    assert (cat.name, cat.version) == ("lifecredit-merchant-features", "1.4.0")
    assert (features.FEATURE_SET_NAME, features.FEATURE_SET_VERSION) == (cat.name, cat.version)
    assert len(cat.features) >= 60
    for f in cat.features:
        assert re.search(r"[\u4e00-\u9fff]", f.description_zh), f.name
        assert not f.shows_reason or re.search(r"[\u4e00-\u9fff]", f.reason_zh), f.name
        assert f.window_days is None or f.window_days in (30, 60, 90, 180, 365, 455), f.name
    # every family the issue asks for is present
    names = set(cat.names)
    for required in (
        "sales_gross_yuan_30d",
        "sales_net_yuan_365d",
        "sale_count_90d",
        "active_days_180d",
        "avg_ticket_yuan_90d",
        "daily_sales_cv_90d",
        "sales_trend_180d",
        "sales_growth_mom",
        "sales_growth_yoy",
        "sales_share_30d_in_90d",
        "weekend_share_90d",
        "days_since_last_sale",
        "refund_rate_count_90d",
        "refund_rate_amount_90d",
        "distinct_customers_365d",
        "repeat_customer_share_365d",
        "customer_top10_share_90d",
        "customer_hhi_90d",
        "digital_rmb_share_90d",
        "channel_share_wechat_pay_365d",
        "complaints_90d",
        "complaints_per_1k_txn_365d",
        "complaint_severity_sum_365d",
        "complaints_unresolved_share_365d",
        "complaint_median_days_to_resolve_365d",
        "days_since_last_complaint",
        "complaints_food_safety_365d",
        "prior_loans",
        "current_outstanding_yuan",
        "worst_dpd_ever",
        "worst_dpd_365d",
        "months_since_last_delinquency",
        "penalties_365d",
        "abnormal_operation_listed",
        "serious_violation_listed",
        "sector",
        "province",
        "urban_rural",
        "business_form",
        "tenure_months",
        "registered_capital_log",
        "net_sales_90d_peer_pct",
        "complaint_rate_365d_peer_pct",
        "thin_file",
    ):
        assert required in names, required


def test_risk_directions_are_the_honest_ones():
    cat = load_catalog()
    direction = {f.name: f.risk_direction for f in cat.features}
    assert direction["complaints_unresolved_share_365d"] == 1
    assert direction["sales_net_yuan_90d"] == -1
    assert direction["thin_file"] == 1 and direction["worst_dpd_365d"] == 1
    assert all(direction[n] == 0 for n in cat.categorical())
    assert cat.monotone_constraints() == [f.risk_direction for f in cat.features]


# Words that name the adverse side of a feature: a high (or present) value for risk_direction +1,
# a low one for -1. A reason text must hold a word of its own side and none of the other side's,
# so "Few refunds" on a +1 feature or "High sales" on a -1 one fails.
HIGH_EN = r"high|higher|many|more|long|slow|slowly|rising|currently|previously|on record"
LOW_EN = r"low|lower|few|fewer|fell|falling|declining|below|short|recent|recently|young"
HIGH_ZH = ("偏高", "较高", "高于", "较多", "上升", "较长", "较慢", "慢于", "偏大", "当前", "曾", "记录")
LOW_ZH = ("偏低", "较低", "低于", "偏少", "较少", "少于", "下降", "下滑", "较短", "不足", "较近")
IDENTITY = ("sector", "province", "urban_rural", "business_form")


def _words(pattern: str, text: str) -> set[str]:
    return {m.group(0) for m in re.finditer(rf"\b(?:{pattern})\b", text.lower())}


def test_every_reason_text_names_the_adverse_direction():
    cat = load_catalog()
    reasons = [f for f in cat.features if f.shows_reason]
    assert len(reasons) >= 60
    for f in reasons:
        own, other = (HIGH_EN, LOW_EN) if f.risk_direction == 1 else (LOW_EN, HIGH_EN)
        assert _words(own, f.reason_en) and not _words(other, f.reason_en), (f.name, f.risk_direction, f.reason_en)
        own_zh = HIGH_ZH if f.risk_direction == 1 else LOW_ZH
        assert any(w in f.reason_zh for w in own_zh), (f.name, f.risk_direction, f.reason_zh)
    texts = [f.reason_en for f in reasons]
    assert len(set(texts)) == len(texts), "two reasons read the same"
    # the check is not trivially true: a text of the wrong side or a bare description fails it
    assert not _words(HIGH_EN, "Low net sales over the last 90 days")
    assert not _words(LOW_EN, "Outstanding loan balance") and not _words(HIGH_EN, "Outstanding loan balance")


MARKET_CONDITIONS = {
    "sector_sales_momentum",
    "province_sales_momentum",
    "sector_default_rate_365d",
    "province_default_rate_365d",
    "sector_complaints_90d",
}


def test_identity_and_directionless_features_are_never_reasons():
    cat = load_catalog()
    for f in cat.features:
        if f.name in {*IDENTITY, *MARKET_CONDITIONS} or f.dtype == "category" or f.risk_direction == 0:
            # stated in the catalogue, not left to the default, and no text that would never be shown
            assert f.reason is False and f.reason_en is None and f.reason_zh is None, f.name
        else:
            assert f.shows_reason, f.name
    assert not (set(IDENTITY) | MARKET_CONDITIONS) & set(cat.reason_features())


def test_catalogue_reason_rules(tmp_path):
    doc = yaml.safe_load((ROOT / "features" / "catalog.yaml").read_text(encoding="utf-8"))
    sector = next(f for f in doc["features"] if f["name"] == "sector")
    dpd = next(f for f in doc["features"] if f["name"] == "current_dpd")
    for broken, match in (
        ({**sector, "reason": True, "reason_en": "Sector", "reason_zh": "所属行业"}, "cannot be a reason"),
        ({**sector, "reason_en": "Sector"}, "never be shown"),
        ({k: v for k, v in dpd.items() if k != "reason_zh"}, "needs reason_en and reason_zh"),
    ):
        with pytest.raises(ValidationError, match=match):
            Catalog.model_validate({**doc, "features": [broken]})
    # without `reason`, a feature is a reason exactly when it has a direction
    plain = {k: v for k, v in sector.items() if k != "reason"}
    assert Catalog.model_validate({**doc, "features": [plain, dpd]}).reason_features() == ["current_dpd"]
    silent = {
        **dpd,
        "reason": False,
        "reason_en": None,
        "reason_zh": None,
        "reason_threshold": None,
        "reason_group": None,
    }
    assert Catalog.model_validate({**doc, "features": [silent]}).reason_features() == []
    with pytest.raises(ValidationError, match="reason_group on a feature that is never a reason"):
        Catalog.model_validate({**doc, "features": [{**silent, "reason_group": "arrears"}]})
    with pytest.raises(ValidationError, match="reason_threshold on a feature that is never a reason"):
        Catalog.model_validate({**doc, "features": [{**silent, "reason_threshold": 0}]})


# Texts that state a fact with a natural zero point (a change, a comparison, a present state)
# must say where it starts to hold, or they would be shown on the wrong side of it.
COMPARATIVE_EN = r"fell|falling|rising|declining|below|above|than|compared|currently|previously|on record|recently|many"


def test_comparative_texts_carry_the_point_where_they_become_true():
    cat = load_catalog()
    for f in cat.features:
        if f.shows_reason and _words(COMPARATIVE_EN, f.reason_en):
            assert f.reason_threshold is not None, (f.name, f.reason_en)
    assert cat["sales_growth_yoy"].reason_threshold == 0 and cat["current_dpd"].reason_threshold == 0
    assert cat["sales_level_30d_vs_365d"].reason_threshold == 1
    assert cat["net_sales_90d_peer_pct"].reason_threshold == 0.5


def test_catalogue_rejects_unknown_keys_and_bad_values(tmp_path):
    doc = yaml.safe_load((ROOT / "features" / "catalog.yaml").read_text(encoding="utf-8"))
    doc["features"][0]["unit"] = "yuan"
    with pytest.raises(ValidationError):
        Catalog.model_validate(doc)
    doc["features"][0].pop("unit")
    doc["features"][0]["risk_direction"] = 2
    with pytest.raises(ValidationError):
        Catalog.model_validate(doc)
    doc["features"][0]["risk_direction"] = -1
    doc["features"].append(dict(doc["features"][0]))
    with pytest.raises(ValidationError, match="duplicate"):
        Catalog.model_validate(doc)


def test_pipeline_and_catalogue_agree():
    """Columns, order and dtypes of the pipeline output are exactly the catalogue's."""
    cat = load_catalog()
    feats = compute_features(RawTables.from_frames(**tiny_market(11)), [date(2024, 1, 1), date(2024, 6, 1)])
    assert feats.columns[2:] == cat.names
    assert {n: feats.schema[n] for n in cat.names} == cat.schema()


def test_features_package_never_reads_truth():
    """Leakage guard (static half): no module under features/, training/ or serving/ names truth.parquet."""
    offenders = [
        str(p.relative_to(ROOT))
        for pkg in ("features", "training", "serving")
        for p in (ROOT / pkg).rglob("*.py")
        if "truth.parquet" in p.read_text(encoding="utf-8")
        or re.search(r"""["']truth["']""", p.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_identities_stay_in_the_panel_but_are_no_model_inputs():
    """Sector, province, urban/rural and business form feed peer groups and regulator views, not the model
    (issue 13, item 4: an identity stays in the model only if the cross-market check holds with it)."""
    from training.data import FeatureSet as TrainingCatalog

    cat = load_catalog()
    assert set(IDENTITY) <= set(cat.names)
    assert not set(IDENTITY) & {f.name for f in cat.model_features()}
    assert not set(IDENTITY) & {f.name for f in TrainingCatalog.read().features}
    doc = yaml.safe_load((ROOT / "features" / "catalog.yaml").read_text(encoding="utf-8"))
    dpd = next(f for f in doc["features"] if f["name"] == "current_dpd")
    with pytest.raises(ValidationError, match="not a model input cannot be a reason"):
        Catalog.model_validate({**doc, "features": [{**dpd, "model_input": False, "reason": True}]})
