"""Decision policy: declines, referrals, limits and prices follow the YAML, not code."""

import pytest
import yaml
from pydantic import ValidationError

from serving.policy import DEFAULT_POLICY, decide, load_policy

CLEAN = {
    "sales_net_yuan_180d": 600_000.0,
    "thin_file": False,
    "abnormal_operation_listed": False,
    "serious_violation_listed": False,
    "current_dpd": 0,
}


@pytest.fixture(scope="module")
def policy():
    return load_policy()


def test_clean_class_a_within_limit_is_approved_at_requested_amount(policy):
    out = decide(policy, "A", CLEAN, 5_000_000, 12, "term_loan")
    assert out["decision"] == "approve" and out["approved_limit_fen"] == 5_000_000
    assert out["price"] == {"product": "term_loan", "annual_rate": 0.045}
    assert out["policy_rules_fired"] == [] and out["policy_hash"] == policy.sha256


@pytest.mark.parametrize(
    "change, rule",
    [
        ({"abnormal_operation_listed": True}, "abnormal_operation_listed"),
        ({"serious_violation_listed": True}, "serious_violation_listed"),
        ({"current_dpd": 95}, "loan_90_plus_days_past_due"),
    ],
)
def test_hard_declines(policy, change, rule):
    out = decide(policy, "A", {**CLEAN, **change}, 1_000_000, 12, "term_loan")
    assert out["decision"] == "decline" and out["approved_limit_fen"] == 0
    assert rule in [f["rule"] for f in out["policy_rules_fired"]]


def test_class_d_is_declined_and_89_days_is_not(policy):
    assert decide(policy, "D", CLEAN, 1_000_000, 12, "term_loan")["decision"] == "decline"
    assert decide(policy, "B", {**CLEAN, "current_dpd": 89}, 1_000_000, 12, "term_loan")["decision"] == "approve"


def test_thin_file_is_referred_with_indicative_limit(policy):
    out = decide(policy, "B", {**CLEAN, "thin_file": True}, 1_000_000, 12, "term_loan")
    assert out["decision"] == "refer" and out["approved_limit_fen"] == 0 and out["indicative_limit_fen"] == 1_000_000


def test_limit_is_class_multiple_of_monthly_sales_and_product_cap(policy):
    # 600,000 yuan over 6 months = 100,000 yuan/month = 10,000,000 fen; class C multiple 1.0
    out = decide(policy, "C", CLEAN, 40_000_000, 12, "term_loan")
    assert out["approved_limit_fen"] == 10_000_000
    assert "limit_by_sales" in [f["rule"] for f in out["policy_rules_fired"]]
    big = {**CLEAN, "sales_net_yuan_180d": 60_000_000.0}
    out = decide(policy, "A", big, 90_000_000, 12, "revenue_based")
    assert out["approved_limit_fen"] == policy.limit.product_cap_fen["revenue_based"]
    assert out["price"]["minimum_payment_per_60_days_fen"] == -(-out["approved_limit_fen"] * 1.06 // 6)


def test_no_sales_means_referral_for_limit_below_minimum(policy):
    out = decide(policy, "A", {**CLEAN, "sales_net_yuan_180d": None}, 1_000_000, 12, "term_loan")
    assert out["decision"] == "refer"
    assert "limit_below_minimum" in [f["rule"] for f in out["policy_rules_fired"]]


def test_changing_a_multiple_needs_no_code(policy, tmp_path):
    data = yaml.safe_load(DEFAULT_POLICY.read_text())
    data["limit"]["multiple_by_class"]["C"] = 0.5
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data))
    changed = load_policy(path)
    assert changed.sha256 != policy.sha256
    assert decide(changed, "C", CLEAN, 40_000_000, 12, "term_loan")["approved_limit_fen"] == 5_000_000


def test_typo_in_policy_is_an_error(tmp_path):
    data = yaml.safe_load(DEFAULT_POLICY.read_text())
    data["limit"]["multiple_by_clas"] = data["limit"].pop("multiple_by_class")
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValidationError, match="multiple_by_clas"):
        load_policy(path)


def test_every_feature_the_policy_reads_is_in_the_catalogue(policy):
    from features import load_catalog

    names = {f.name for f in load_catalog().features}
    assert policy.features <= names, policy.features - names


LISTING = {"table": "public_records", "record_type": "abnormal_operation_listed", "objection_id": "OBJ-1"}


def test_a_hard_decline_resting_on_a_record_under_objection_refers(policy):
    listed = {**CLEAN, "abnormal_operation_listed": True}
    assert decide(policy, "B", listed, 1_000_000, 12, "term_loan")["decision"] == "decline"
    out = decide(policy, "B", listed, 1_000_000, 12, "term_loan", [LISTING])
    assert out["decision"] == "refer"
    fired = {f["rule"]: f for f in out["policy_rules_fired"]}
    assert (
        fired["abnormal_operation_listed"]["outcome"] == "refer"
        and "OBJ-1" in fired["abnormal_operation_listed"]["text_en"]
    )


def test_an_objection_elsewhere_leaves_the_decline(policy):
    listed = {**CLEAN, "abnormal_operation_listed": True}
    complaint = {"table": "complaints", "record_type": None, "objection_id": "OBJ-2"}
    other_list = {**LISTING, "record_type": "serious_violation_listed"}
    for objected in ([complaint], [other_list]):
        assert decide(policy, "B", listed, 1_000_000, 12, "term_loan", objected)["decision"] == "decline"
    # class D rests on no record: an objection never turns it into a referral
    assert decide(policy, "D", CLEAN, 1_000_000, 12, "term_loan", [LISTING])["decision"] == "decline"
    # and a second decline that rests on no objected record still declines
    both = {**listed, "current_dpd": 120}
    assert decide(policy, "B", both, 1_000_000, 12, "term_loan", [LISTING])["decision"] == "decline"


def test_the_referral_is_policy_data(policy, tmp_path):
    data = yaml.safe_load(DEFAULT_POLICY.read_text())
    del data["objection_referral"]
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    strict = load_policy(path)
    listed = {**CLEAN, "abnormal_operation_listed": True}
    assert decide(strict, "B", listed, 1_000_000, 12, "term_loan", [LISTING])["decision"] == "decline"
