"""The feature catalogue (``catalog.yaml``): the one list of features, their meaning and risk direction.

Training derives LightGBM monotone constraints from ``risk_direction``, serving maps the
top contributions to ``reason_en`` / ``reason_zh``, and the docs render the reference from it.
The pipeline's output columns must equal the catalogue, in order and dtype (a test enforces it).

Reason codes: a feature is shown as a reason (:attr:`Feature.shows_reason`) only if it has a
risk direction (+1 or -1) and is not marked ``reason: false``; its ``reason_en`` / ``reason_zh``
then state the adverse side of that direction (a high value for +1, a low one for -1) in words
a merchant can act on, and ``reason_threshold`` (optional) is the value beyond which the text is
literally true ("Sales fell": below 0), so that it is never shown on the other side of it. Features without a direction (non-monotone: no fixed adverse side) and
identity features (sector, province, urban/rural, business form: who the merchant is, not what
it does) are never reasons and carry no reason texts.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

CATALOG_PATH = Path(__file__).with_name("catalog.yaml")

SOURCES = ("transactions", "complaints", "loans", "loan_performance", "public_records", "merchants")

POLARS_DTYPES: dict[str, pl.DataType] = {
    "float": pl.Float64(),
    "int": pl.Int64(),
    "bool": pl.Boolean(),
    "category": pl.String(),
}
"""Output column dtype for each catalogue dtype (categories travel as plain strings)."""


class Feature(BaseModel):
    """One feature: what it measures (en/zh), where from, over which window, and how risk moves with it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description_en: str = Field(min_length=1)
    description_zh: str = Field(min_length=1)
    source: Literal["transactions", "complaints", "loans", "loan_performance", "public_records", "merchants"]
    window_days: int | None = Field(None, ge=1)
    dtype: Literal["float", "int", "bool", "category"]
    risk_direction: Literal[-1, 0, 1] = Field(
        description="+1: riskier as the value grows; -1: safer; 0: not monotone or unknown (no constraint)."
    )
    model_input: bool = Field(
        True,
        description="Whether models train on it. false: kept in the panel and the snapshot (peer groups, "
        "regulator views) but not a model input - identities a new economy does not share.",
    )
    reason: bool | None = Field(
        None,
        description="Whether the feature may be a reason code; default: only with a risk direction. "
        "false: never (identity features, non-monotone features).",
    )
    counts_removed: bool = Field(
        False,
        description="public_records features only: whether a record removed before as_of (credit repair, "
        "publicity ended, taken off a list) still counts. false (default): only current records.",
    )
    reason_en: str | None = Field(None, min_length=1)
    reason_zh: str | None = Field(None, min_length=1)
    reason_group: str | None = Field(
        None,
        pattern=r"^[a-z][a-z0-9_]*$",
        description="Reason features telling one story (e.g. sales, arrears, complaints): a merchant gets at most "
        "one reason per group, the groups ranked by their members' summed contribution.",
    )
    reason_threshold: float | None = Field(
        None,
        description="Where the text starts to be true: the reason is given only for a value above it "
        "(risk_direction +1) or below it (-1), e.g. 0 for 'Sales fell', 1 for 'below its own "
        "yearly level', 0.5 for a peer percentile. Absent: wherever the value raises the risk.",
    )

    @model_validator(mode="after")
    def _removed_records_are_public_records(self) -> Feature:
        if self.counts_removed and self.source != "public_records":
            raise ValueError(f"{self.name}: counts_removed applies to public_records features only")
        return self

    @model_validator(mode="after")
    def _category_has_no_direction(self) -> Feature:
        if self.dtype == "category" and self.risk_direction != 0:
            raise ValueError(f"{self.name}: a category feature cannot carry a monotone risk direction")
        return self

    @model_validator(mode="after")
    def _reason_needs_direction_and_texts(self) -> Feature:
        if self.reason and self.risk_direction == 0:
            raise ValueError(
                f"{self.name}: a feature without a risk direction cannot be a reason "
                "(its adverse side is not fixed); set reason: false"
            )
        if self.shows_reason and not (self.reason_en and self.reason_zh):
            raise ValueError(f"{self.name}: a reason feature needs reason_en and reason_zh")
        if self.reason is False and (self.reason_en or self.reason_zh):
            raise ValueError(f"{self.name}: reason: false with reason texts that would never be shown")
        if self.reason and not self.model_input:
            raise ValueError(f"{self.name}: a feature that is not a model input cannot be a reason")
        if self.reason_group is not None and not self.shows_reason:
            raise ValueError(f"{self.name}: reason_group on a feature that is never a reason")
        if self.reason_threshold is not None and not self.shows_reason:
            raise ValueError(f"{self.name}: reason_threshold on a feature that is never a reason")
        return self

    @property
    def shows_reason(self) -> bool:
        """May this feature be given as a reason code? (``reason``, default: a model input with a risk direction)."""
        return self.model_input and self.risk_direction != 0 if self.reason is None else self.reason


class Catalog(BaseModel):
    """A named, versioned feature set; feature order is the output column order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    features: tuple[Feature, ...]

    @model_validator(mode="after")
    def _unique_names(self) -> Catalog:
        names = [f.name for f in self.features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate feature names in catalogue: {dupes}")
        return self

    @property
    def names(self) -> list[str]:
        """Feature names in output order."""
        return [f.name for f in self.features]

    @property
    def feature_set(self) -> str:
        """``name@version``, recorded with every output and every model."""
        return f"{self.name}@{self.version}"

    def __getitem__(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def schema(self) -> dict[str, pl.DataType]:
        """Output schema of the feature columns."""
        return {f.name: POLARS_DTYPES[f.dtype] for f in self.features}

    def monotone_constraints(self, names: list[str] | None = None) -> list[int]:
        """LightGBM ``monotone_constraints`` for ``names`` (default: all features, catalogue order)."""
        return [self[n].risk_direction for n in (names or self.names)]

    def model_features(self) -> list[Feature]:
        """The features models train on (``model_input``), in catalogue order."""
        return [f for f in self.features if f.model_input]

    def reason_features(self) -> list[str]:
        """Names of the features that may be reason codes."""
        return [f.name for f in self.features if f.shows_reason]

    def categorical(self) -> list[str]:
        """Names of the category features."""
        return [f.name for f in self.features if f.dtype == "category"]


@lru_cache(maxsize=4)
def load_catalog(path: Path = CATALOG_PATH) -> Catalog:
    """Parse and check the catalogue (unknown keys, bad directions or dtypes fail here)."""
    with open(path, encoding="utf-8") as fh:
        return Catalog.model_validate(yaml.safe_load(fh))
