"""Request and response models of the scoring API: the contract banks code against.

Requests forbid unknown fields, so a typo is a 400 naming it rather than a silently ignored
option. Responses are documented here (and in the OpenAPI document at ``/docs.json``); the
service writes their JSON directly (see :mod:`serving.scorer`), in exactly these shapes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_BATCH = 10_000
MAX_AMOUNT_FEN = 1_000_000_000  # 10 million yuan: 20x the largest product cap; anything above is a typo
MERCHANT_ID = Field(
    min_length=1,
    max_length=64,
    pattern=r"^[A-Za-z0-9_.:-]+$",
    description="Merchant id as in the feature snapshot (`merchant_id`).",
    examples=["M00000042"],
)
FeatureValue = float | int | bool | str | None


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScoreRequest(_Request):
    """Score one merchant: by id (features from the latest snapshot) or from a full feature row."""

    model_config = ConfigDict(json_schema_extra={"example": {"merchant_id": "M00000042"}})

    merchant_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Score this merchant with its row of the latest feature snapshot.",
        examples=["M00000042"],
    )
    features: dict[str, FeatureValue] | None = Field(
        None,
        description="Score this feature row instead: every feature of the model's feature set (see GET /model), "
        "numbers for numeric features, true/false for flags, strings for categories, null for missing.",
        examples=[{"sales_net_yuan_180d": 182000.0, "thin_file": False, "sector": "catering", "...": "..."}],
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ScoreRequest:
        if (self.merchant_id is None) == (self.features is None):
            raise ValueError("give exactly one of merchant_id or features")
        return self


class BatchRequest(_Request):
    """Score up to 10,000 merchants of the latest snapshot in one call."""

    model_config = ConfigDict(json_schema_extra={"example": {"merchant_ids": ["M00000042", "M00000043"]}})

    merchant_ids: list[str] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description=f"Merchant ids, 1 to {MAX_BATCH:,}; results come back in this order.",
    )


class DecideRequest(_Request):
    """Ask for a micro-loan decision for one merchant."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "merchant_id": "M00000042",
                "requested_amount_fen": 5000000,
                "term_months": 12,
                "product": "term_loan",
            }
        }
    )

    merchant_id: str = MERCHANT_ID
    requested_amount_fen: int = Field(
        strict=True,
        gt=0,
        le=MAX_AMOUNT_FEN,
        description="Requested amount in fen (1 yuan = 100 fen), a whole number.",
        examples=[5000000],
    )
    term_months: int = Field(
        strict=True,
        ge=1,
        le=120,
        description="Term in months; each product has its own range (term_loan 3-36, "
        "revenue_based 3-18 under the current policy).",
        examples=[12],
    )
    product: Literal["term_loan", "revenue_based"] = Field(
        description="`term_loan`: fixed annual rate; `revenue_based`: repaid as a share of daily sales.",
        examples=["term_loan"],
    )


class Reason(BaseModel):
    """A feature that raised this merchant's risk, largest first (TreeSHAP contribution)."""

    code: str = Field(
        description="Catalogue feature name, stable across model versions.",
        examples=["complaints_unresolved_share_365d"],
    )
    en: str = Field(description="Explanation in English.", examples=["Many complaints left unresolved"])
    zh: str = Field(description="Explanation in Chinese.", examples=["未解决投诉占比偏高"])


class ScoreResult(BaseModel):
    """One merchant's risk: probability of default, score, grade, class and reasons."""

    model_config = ConfigDict(populate_by_name=True)

    merchant_id: str | None = Field(description="The merchant scored (null for a feature row).")
    pd: float = Field(
        description="Probability of default within 12 months (90+ days past due or written off), "
        "calibrated, between 0 and 1.",
        examples=[0.0213],
    )
    score: int = Field(description="Points: 600 at 50:1 good:bad odds, 20 more points double the odds.", examples=[598])
    grade: str = Field(description="Master-scale rating grade (1 best).", examples=["4"])
    risk_class: Literal["A", "B", "C", "D"] = Field(
        alias="class", description="Credit-risk class: A low, B general, C higher, D high risk.", examples=["B"]
    )
    reasons: list[Reason] = Field(description="Up to 4 features that raised the risk most; empty when none did.")
    model_name: str = Field(examples=["lifecredit-merchant-pd"])
    model_version: str = Field(description="Registered model version that scored.", examples=["3"])
    features_as_of: str | None = Field(
        description="Snapshot date of the features (events strictly before it); "
        "null for a feature row sent in the request.",
        examples=["2025-07-01"],
    )


class ScoreResponse(ScoreResult):
    """A scored merchant with the id of its audit record."""

    decision_id: str = Field(
        description="Audit record id: GET /decisions/{decision_id} returns it.",
        examples=["6f1c0e3a9b2d4c58a7e1f0b3c2d4e5f6"],
    )


class ItemError(BaseModel):
    status: int = Field(examples=[404])
    code: str = Field(examples=["unknown_merchant"])
    message: str


class BatchItemError(BaseModel):
    """A batch item that could not be scored (the rest of the batch is unaffected)."""

    merchant_id: str
    error: ItemError


class BatchResponse(BaseModel):
    decision_id: str = Field(description="One audit record for the whole batch.")
    count: int
    errors: int = Field(description="Items that carry an error instead of a result.")
    model_name: str
    model_version: str
    features_as_of: str | None
    results: list[ScoreResult | BatchItemError] = Field(description="One entry per requested id, in request order.")


class RuleFired(BaseModel):
    rule: str = Field(examples=["thin_file"])
    outcome: Literal["decline", "refer", "reduce"]
    text_en: str
    text_zh: str


class Price(BaseModel):
    """Price terms for the merchant's class."""

    product: Literal["term_loan", "revenue_based"]
    annual_rate: float | None = Field(None, description="term_loan: annual interest rate.", examples=[0.068])
    factor: float | None = Field(None, description="revenue_based: total repaid = factor x amount.", examples=[1.10])
    remit_share_of_daily_sales: float | None = Field(None, description="revenue_based: share of daily sales remitted.")
    minimum_payment_per_60_days_fen: int | None = Field(
        None, description="revenue_based: floor on repayment per 60-day period, in fen."
    )


class DecideResponse(ScoreResponse):
    """The micro-loan decision with its price, the policy rules that fired, and the risk behind it."""

    decision: Literal["approve", "refer", "decline"] = Field(
        description="approve: lend up to approved_limit_fen; refer: a loan officer decides; decline: do not lend."
    )
    approved_limit_fen: int = Field(description="Approved amount in fen (0 unless approved).")
    indicative_limit_fen: int | None = Field(description="For a referral: the limit the policy would allow.")
    price: Price | None = Field(description="Price terms (null when declined).")
    policy_rules_fired: list[RuleFired]
    policy_version: str
    policy_hash: str = Field(description="SHA-256 of the policy file that decided.")


class ModelCard(BaseModel):
    """What is serving: model version, its evidence, its feature set and the decision policy."""

    name: str
    version: str
    alias: str
    run_id: str
    source: str = Field(description="Where the model was loaded from: mlflow registry or BentoML model store.")
    windows: dict = Field(
        description="Booster (train), calibration and test rows: dates, rows, defaults, merchants held out."
    )
    test_metrics: dict = Field(description="Discrimination and calibration on the out-of-time test window.")
    feature_set: dict = Field(description="Feature set name, version and feature list.")
    master_scale: str
    calibrator: str | None
    policy: dict = Field(description="Decision policy version and hash.")
    snapshot: dict = Field(description="The feature snapshot scored by merchant id: as_of, merchants, sha256.")
