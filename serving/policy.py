"""The micro-loan decision policy: hard declines, referrals, limit and price, read from YAML.

A decision is a pure function of (policy, model output, feature row, request): the same four
give the same decision, which is what makes replay from the audit log possible.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_POLICY = Path(__file__).with_name("policy.yaml")
RiskClass = Literal["A", "B", "C", "D"]
Product = Literal["term_loan", "revenue_based"]
OBJECTED_KEY = "records_under_objection"  # in answers: their count; in an audited decision's row: what it saw


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RestsOn(_Strict):
    """The records a rule's feature is read from: tables and, for public records, their types."""

    tables: list[str] = Field(min_length=1)
    record_types: list[str] | None = None

    def matches(self, objection: dict[str, Any]) -> bool:
        return objection.get("table") in self.tables and (
            self.record_types is None or objection.get("record_type") in self.record_types
        )


class Rule(_Strict):
    """Fires on a feature value (true flag or threshold) or on the risk class."""

    rule: str
    text_en: str
    text_zh: str
    feature: str | None = None
    is_true: bool | None = None
    at_least: float | None = None
    classes: list[RiskClass] | None = None
    rests_on: RestsOn | None = None

    def fires(self, risk_class: str, features: dict[str, Any]) -> bool:
        if self.classes is not None:
            return risk_class in self.classes
        value = features.get(self.feature)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        if self.is_true is not None:
            return bool(value) is self.is_true
        return self.at_least is not None and float(value) >= self.at_least


class Limit(_Strict):
    sales_feature: str
    sales_months: int = Field(gt=0)
    multiple_by_class: dict[RiskClass, float]
    minimum_fen: int = Field(ge=0)
    product_cap_fen: dict[Product, int]


class Term(_Strict):
    min: int = Field(ge=1)
    max: int = Field(ge=1)


class TermLoan(_Strict):
    term_months: Term
    annual_rate_by_class: dict[RiskClass, float]


class RevenueBased(_Strict):
    term_months: Term
    factor_by_class: dict[RiskClass, float]
    remit_share_by_class: dict[RiskClass, float]


class Products(_Strict):
    term_loan: TermLoan
    revenue_based: RevenueBased


class ObjectionReferral(_Strict):
    """What a hard decline becomes when the records it rests on are under the merchant's objection (异议)."""

    outcome: Literal["refer"] = "refer"
    text_en: str
    text_zh: str


class Policy(_Strict):
    """The whole policy file; ``sha256`` identifies exactly which text decided."""

    version: str
    description: str
    hard_declines: list[Rule]
    referrals: list[Rule]
    limit: Limit
    products: Products
    objection_referral: ObjectionReferral | None = None
    sha256: str = ""

    @property
    def features(self) -> set[str]:
        """Feature columns the policy reads (each must exist in the catalogue)."""
        rules = [r.feature for r in [*self.hard_declines, *self.referrals] if r.feature]
        return {*rules, self.limit.sales_feature}

    def term_range(self, product: Product) -> Term:
        return getattr(self.products, product).term_months


def load_policy(path: Path = DEFAULT_POLICY) -> Policy:
    """Parse and check the policy; a typo in a key is an error naming it."""
    raw = Path(path).read_bytes()
    data = yaml.safe_load(raw)
    return Policy(**data, sha256=hashlib.sha256(raw).hexdigest())


def _fired(rules: list[Rule], risk_class: str, features: dict[str, Any], outcome: str) -> list[dict]:
    return [
        {"rule": r.rule, "outcome": outcome, "text_en": r.text_en, "text_zh": r.text_zh}
        for r in rules
        if r.fires(risk_class, features)
    ]


def sales_based_limit(policy: Policy, risk_class: str, features: dict[str, Any]) -> int:
    """Class multiple x verified average monthly net sales, in fen (0 without sales)."""
    sales_yuan = features.get(policy.limit.sales_feature)
    if sales_yuan is None or (isinstance(sales_yuan, float) and math.isnan(sales_yuan)) or sales_yuan <= 0:
        return 0
    monthly_fen = float(sales_yuan) * 100 / policy.limit.sales_months
    return int(policy.limit.multiple_by_class.get(risk_class, 0.0) * monthly_fen)


def price(policy: Policy, product: Product, risk_class: str, limit_fen: int, term_months: int) -> dict:
    """Price terms for the class: an annual rate, or a factor with a daily remittance share."""
    if product == "term_loan":
        return {"product": product, "annual_rate": policy.products.term_loan.annual_rate_by_class[risk_class]}
    rb = policy.products.revenue_based
    factor = rb.factor_by_class[risk_class]
    periods = max(1, math.ceil(term_months / 2))
    return {
        "product": product,
        "factor": factor,
        "remit_share_of_daily_sales": rb.remit_share_by_class[risk_class],
        "minimum_payment_per_60_days_fen": math.ceil(limit_fen * factor / periods),
    }


def _declines(policy: Policy, risk_class: str, features: dict[str, Any], objected: list[dict]) -> tuple[list, list]:
    """(declines, referrals instead of declines): a hard decline that rests on records under the merchant's
    objection refers, where the policy says so (``objection_referral``, ``rests_on``)."""
    declines, deferred = [], []
    swap = policy.objection_referral
    for fired, rule in zip(
        _fired(policy.hard_declines, risk_class, features, "decline"),
        [r for r in policy.hard_declines if r.fires(risk_class, features)],
        strict=True,
    ):
        under = [o for o in objected if rule.rests_on is not None and rule.rests_on.matches(o)]
        if swap is None or not under:
            declines.append(fired)
            continue
        ids = ", ".join(sorted({o["objection_id"] for o in under}))
        deferred.append(
            {
                **fired,
                "outcome": swap.outcome,
                "text_en": f"{fired['text_en']}: {swap.text_en} ({ids})",
                "text_zh": f"{fired['text_zh']}：{swap.text_zh}（{ids}）",
            }
        )
    return declines, deferred


def decide(
    policy: Policy,
    risk_class: str,
    features: dict[str, Any],
    requested_amount_fen: int,
    term_months: int,
    product: Product,
    objected: list[dict] = (),
) -> dict:
    """Approve, refer or decline; the limit and price; and every policy rule that fired.

    ``objected``: the merchant's records under open objection ({table, record_type, objection_id}).
    """
    declines, deferred = _declines(policy, risk_class, features, list(objected))
    referrals = deferred + _fired(policy.referrals, risk_class, features, "refer")
    fired = declines + referrals
    sales_limit = sales_based_limit(policy, risk_class, features)
    cap = policy.limit.product_cap_fen[product]
    limit = min(requested_amount_fen, sales_limit, cap)
    if limit < requested_amount_fen and not declines:
        binding = "limit_by_sales" if sales_limit <= cap else "limit_by_product_cap"
        fired.append(
            {
                "rule": binding,
                "outcome": "reduce",
                "text_en": f"Limit reduced to {limit / 100:,.0f} yuan ({'verified sales' if binding == 'limit_by_sales' else 'product cap'})",
                "text_zh": f"额度调整为{limit / 100:,.0f}元（{'按核实流水' if binding == 'limit_by_sales' else '产品上限'}）",
            }
        )
    if not declines and not referrals and limit < policy.limit.minimum_fen:
        fired.append(
            {
                "rule": "limit_below_minimum",
                "outcome": "refer",
                "text_en": f"Sales-based limit under the {policy.limit.minimum_fen / 100:,.0f} yuan minimum",
                "text_zh": f"按流水核定额度低于最低额度{policy.limit.minimum_fen / 100:,.0f}元",
            }
        )
    if declines:
        decision = "decline"
    elif any(f["outcome"] == "refer" for f in fired):
        decision = "refer"
    else:
        decision = "approve"
    return {
        "decision": decision,
        "approved_limit_fen": limit if decision == "approve" else 0,
        "indicative_limit_fen": max(limit, 0) if decision == "refer" else None,
        "price": price(policy, product, risk_class, limit, term_months) if decision != "decline" else None,
        "policy_rules_fired": fired,
        "policy_version": policy.version,
        "policy_hash": policy.sha256,
    }
