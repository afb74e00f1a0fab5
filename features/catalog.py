"""The feature catalogue (``catalog.yaml``): the one list of features, their meaning and risk direction.

Training derives LightGBM monotone constraints from ``risk_direction``, serving maps the
top contributions to ``reason_en`` / ``reason_zh``, and the docs render the reference from it.
The pipeline's output columns must equal the catalogue, in order and dtype (a test enforces it).
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
    reason_en: str = Field(min_length=1)
    reason_zh: str = Field(min_length=1)

    @model_validator(mode="after")
    def _category_has_no_direction(self) -> "Feature":
        if self.dtype == "category" and self.risk_direction != 0:
            raise ValueError(f"{self.name}: a category feature cannot carry a monotone risk direction")
        return self


class Catalog(BaseModel):
    """A named, versioned feature set; feature order is the output column order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    features: tuple[Feature, ...]

    @model_validator(mode="after")
    def _unique_names(self) -> "Catalog":
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

    def categorical(self) -> list[str]:
        """Names of the category features."""
        return [f.name for f in self.features if f.dtype == "category"]


@lru_cache(maxsize=4)
def load_catalog(path: Path = CATALOG_PATH) -> Catalog:
    """Parse and check the catalogue (unknown keys, bad directions or dtypes fail here)."""
    with open(path, encoding="utf-8") as fh:
        return Catalog.model_validate(yaml.safe_load(fh))
