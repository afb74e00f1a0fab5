"""The master scale: a 12-month PD becomes a score, a rating grade and a credit-risk class.

The scale lives in ``training/master_scale.yaml`` (or any YAML of the same shape) and is
logged with every model, so a model version always scores with the scale it was validated on.

Example:
    >>> scale = MasterScale.load()
    >>> scale.score([0.0196])            # 50:1 good:bad odds -> base score
    array([600])
    >>> scale.grade([0.0196]).tolist(), scale.risk_class([0.0196]).tolist()
    (['4'], ['B'])
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.vocabulary import CLASSES, RiskClass

DEFAULT_PATH = Path(__file__).with_name("master_scale.yaml")
MIN_NON_DEFAULT_GRADES = 7


def points_scale(base_score: float, base_odds: float, pdo: float) -> tuple[float, float]:
    """``(factor, offset)`` of the points-to-double-odds convention.

    ``score = offset + factor * ln(good:bad odds)`` with ``factor = pdo / ln 2`` and
    ``offset = base_score - factor * ln(base_odds)``.
    """
    factor = pdo / math.log(2.0)
    return factor, base_score - factor * math.log(base_odds)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScoreConfig(_Strict):
    """Points to double the odds: ``base_score`` points at ``base_odds`` good:bad, ``pdo`` to double."""

    base_score: float = 600.0
    base_odds: float = Field(50.0, gt=0)
    pdo: float = Field(20.0, gt=0)


class ClassText(_Strict):
    en: str
    zh: str


class Grade(_Strict):
    """One rating grade: PDs in ``[pd_min, pd_max)`` (the default grade has ``default: true``)."""

    grade: str
    pd_min: float = Field(ge=0.0, le=1.0)
    pd_max: float = Field(ge=0.0, le=1.0)
    risk_class: RiskClass = Field(alias="class")
    default: bool = False


class MasterScale(_Strict):
    """PD -> score (PDO convention) -> grade -> class A (low) / B (general) / C (higher) / D (high)."""

    name: str
    version: str
    score_config: ScoreConfig = Field(alias="score")
    pd_floor: float = Field(0.0005, ge=0.0, lt=0.5)
    classes: dict[str, ClassText]
    grades: list[Grade]

    @model_validator(mode="after")
    def _check(self) -> MasterScale:
        if tuple(sorted(self.classes)) != CLASSES:
            raise ValueError(f"classes must be exactly {CLASSES}, got {sorted(self.classes)}")
        defaults = [g for g in self.grades if g.default]
        live = [g for g in self.grades if not g.default]
        if len(defaults) != 1:
            raise ValueError(f"exactly one default grade expected, got {len(defaults)}")
        if len(live) < MIN_NON_DEFAULT_GRADES:
            raise ValueError(f"at least {MIN_NON_DEFAULT_GRADES} non-default grades expected, got {len(live)}")
        if live[0].pd_min != 0.0 or live[-1].pd_max != 1.0:
            raise ValueError("non-default grades must cover PD from 0 to 1")
        for lower, upper in zip(live, live[1:]):
            if lower.pd_max != upper.pd_min or lower.pd_min >= lower.pd_max:
                raise ValueError(f"grades {lower.grade} and {upper.grade} are not contiguous and increasing")
            if CLASSES.index(lower.risk_class) > CLASSES.index(upper.risk_class):
                raise ValueError(f"class falls from grade {lower.grade} to {upper.grade}")
        if len({g.grade for g in self.grades}) != len(self.grades):
            raise ValueError("grade names must be unique")
        return self

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path | None = None) -> MasterScale:
        """Read a scale from YAML (default: ``training/master_scale.yaml``)."""
        return cls.from_yaml(Path(path or DEFAULT_PATH).read_text(encoding="utf-8"))

    @classmethod
    def from_yaml(cls, text: str) -> MasterScale:
        return cls.model_validate(yaml.safe_load(text))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(by_alias=True, mode="json"), allow_unicode=True, sort_keys=False)

    # -- properties -----------------------------------------------------------------------
    @property
    def live_grades(self) -> list[Grade]:
        """The non-default grades, lowest PD first."""
        return [g for g in self.grades if not g.default]

    @property
    def default_grade(self) -> Grade:
        return next(g for g in self.grades if g.default)

    @property
    def factor(self) -> float:
        """Points per unit of log-odds: ``pdo / ln 2``."""
        return points_scale(**self.score_config.model_dump())[0]

    @property
    def offset(self) -> float:
        """Score at even odds: ``base_score - factor * ln(base_odds)``."""
        return points_scale(**self.score_config.model_dump())[1]

    # -- mapping --------------------------------------------------------------------------
    def floor(self, pd: np.ndarray | list[float]) -> np.ndarray:
        """PDs floored at ``pd_floor`` (and capped just below 1) as float64."""
        return np.clip(np.asarray(pd, dtype=np.float64), self.pd_floor, 1.0 - 1e-9)

    def score_float(self, pd: np.ndarray | list[float]) -> np.ndarray:
        """Unrounded score: ``offset + factor * ln((1 - pd) / pd)``."""
        p = self.floor(pd)
        return self.offset + self.factor * np.log((1.0 - p) / p)

    def score(self, pd: np.ndarray | list[float]) -> np.ndarray:
        """Integer score (higher is safer)."""
        return np.rint(self.score_float(pd)).astype(np.int64)

    def pd_from_score(self, score: np.ndarray | list[float]) -> np.ndarray:
        """Inverse of :meth:`score_float`."""
        s = np.asarray(score, dtype=np.float64)
        return 1.0 / (1.0 + np.exp((s - self.offset) / self.factor))

    def grade_index(self, pd: np.ndarray | list[float]) -> np.ndarray:
        """Index into :attr:`live_grades` of each PD."""
        bounds = np.array([g.pd_max for g in self.live_grades[:-1]])
        return np.searchsorted(bounds, self.floor(pd), side="right")

    def grade(self, pd: np.ndarray | list[float]) -> np.ndarray:
        names = np.array([g.grade for g in self.live_grades], dtype=object)
        return names[self.grade_index(pd)]

    def risk_class(self, pd: np.ndarray | list[float]) -> np.ndarray:
        classes = np.array([g.risk_class for g in self.live_grades], dtype=object)
        return classes[self.grade_index(pd)]

    def table(self) -> list[dict]:
        """The scale as rows (grade, PD range, score range, class) for reports and model cards."""
        rows = []
        for g in self.grades:
            if g.default:
                rows.append(
                    {
                        "grade": g.grade,
                        "pd_min": 1.0,
                        "pd_max": 1.0,
                        "score_min": None,
                        "score_max": None,
                        "class": g.risk_class,
                        "default": True,
                    }
                )
                continue
            hi = self.score_float([max(g.pd_min, self.pd_floor)])[0]
            lo = self.score_float([g.pd_max])[0]
            rows.append(
                {
                    "grade": g.grade,
                    "pd_min": g.pd_min,
                    "pd_max": g.pd_max,
                    "score_min": int(math.ceil(lo)),
                    "score_max": int(math.floor(hi)),
                    "class": g.risk_class,
                    "default": False,
                }
            )
        return rows
