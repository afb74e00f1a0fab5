"""The serving bundle: everything needed to turn feature rows into PD, score, grade, class and reasons.

One definition, offline and online: training evaluates with it, the MLflow pyfunc wraps it,
and serving loads it straight from the artefact directory without the pyfunc layer. It
imports NumPy, pandas, LightGBM and PyYAML only (no MLflow, no scikit-learn; a
scorecard or blend bundle imports ``training.scorecard``, hence scikit-learn, when it scores).

Layout of a bundle directory (``serving_bundle/`` in every training run)::

    serving_bundle/
      bundle.json         format version, model kind, feature list (name, dtype, categories,
                          risk direction, reason flag and texts en/zh), id columns, target, feature-set
                          name and version, TreeSHAP baseline (expected margin and its PD)
      model.txt           the LightGBM booster, native text format
      calibrator.json     {"kind": "platt", "a", "b"} or {"kind": "isotonic", "x", "y"}:
                          margin -> PD (see training.calibration)
      master_scale.yaml   PD -> score -> grade -> class (see training.master_scale)
      catalog.yaml        the feature catalogue the model was trained with (absent for
                          bring-your-own tables)
      scorecard.json      kind "scorecard" (or a blend with it): the WoE scorecard spec (bins,
                          WoE, coefficients, points; see training.scorecard)
      logistic.json       kind "logistic" (or a blend with it): the one-hot logistic model

Model kinds (``bundle.json`` ``kind``; a bundle without one is "lightgbm"):

* ``lightgbm``: margin = the booster's raw score; reasons by TreeSHAP (format 1, as ever).
* ``scorecard``: margin = the WoE scorecard's log-odds; no ``model.txt``. Reasons from the points:
  a feature's contribution is ``coef * (WoE of the row's bin - lowest WoE of the feature)``, i.e. the
  points the row lost against the feature's best bin (in margin units), so the reasons are the
  features where the merchant scored furthest below the best bin.
* ``logistic``: a one-hot logistic regression (numerics median-imputed with a missing indicator and
  standardised, categoricals one-hot with missing as a level, unseen ignored; ``logistic.json``).
  Reasons: each feature's term against its mean over the training rows (the exact SHAP value of a
  linear model), so "raised the risk" means against the average row, as with TreeSHAP.
* ``blend``: margin = ``intercept + w_lightgbm * booster margin + w_linear * linear log-odds``, the
  linear part the scorecard or the logistic model (weights in ``bundle.json`` ``blend``, both
  positive); reasons from the LightGBM part (its TreeSHAP contributions times ``w_lightgbm``).

Every kind then goes through the same calibrator and master scale. Bundles of a kind other
than lightgbm are written as format 2, which older readers refuse by name instead of failing
on a missing ``model.txt``; format 1 bundles load as before.

Inputs: a pandas (or Polars) frame with every feature column, in any order; extra columns
are ignored; a missing feature column raises :class:`MissingFeatureError` naming it.
Categorical features are matched by value against the categories seen in training; an
unseen or null category is treated as missing.

Outputs: one :class:`training.result.Scores` per call (:meth:`ScoringBundle.score`): PD, score,
grade, class and up to four reasons per row; :mod:`training.result` describes the columns and
the reason rules, and renders the result for every caller.

The module is over 400 lines because the bundle's directory format (write, load, check) and the
scoring that reads it must change together.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from training.linear import decode, logistic_terms, scorecard_contributions
from training.master_scale import MasterScale
from training.result import OUTPUT_COLUMNS, REASON_COLUMNS, Reasons, Scores, rank_reasons, reason_groups

__all__ = [
    "OUTPUT_COLUMNS",
    "REASON_COLUMNS",
    "MissingFeatureError",
    "ModelInput",
    "Scores",
    "ScoringBundle",
    "apply_calibration",
    "decode",
    "default_threads",
    "encode",
    "logistic_terms",
    "scorecard_contributions",
]
FORMAT_VERSION = 1
FORMAT_VERSIONS = (1, 2)  # 2: a model kind other than lightgbm (format 1 readers refuse it by name)
KINDS = ("lightgbm", "scorecard", "logistic", "blend")
PD_EPS = 1e-6


class MissingFeatureError(KeyError):
    """The input frame lacks feature columns the model needs."""

    def __init__(self, missing: list[str]):
        self.missing = missing
        super().__init__(f"missing feature column(s): {', '.join(missing)}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


def _category_keys(values: np.ndarray) -> np.ndarray:
    """Category values as strings (null stays null), so codes read as numbers still match."""
    series = pd.Series(values)
    if pd.api.types.is_float_dtype(series) and (series.dropna() % 1 == 0).all():
        series = series.astype("Int64")  # 310000.0 (an integer column with nulls) -> "310000"
    keys = series.astype(object)
    return keys.where(keys.isna(), keys.astype(str)).to_numpy()


@dataclass(frozen=True)
class ModelInput:
    """One model input as the bundle needs it."""

    name: str
    dtype: str = "float"  # float | int | bool | category
    direction: int = 0  # +1 riskier as it grows, -1 safer, 0 unknown
    categories: tuple[str, ...] = ()
    reason_en: str = ""
    reason_zh: str = ""
    reason: bool = True  # may be a reason code (catalogue: false for identity and direction-0 features)
    reason_threshold: float | None = None  # the text holds only above it (direction +1) or below it (-1)
    reason_group: str = ""  # features telling one story (e.g. "sales"); empty: a group of its own

    @property
    def is_categorical(self) -> bool:
        return self.dtype == "category"

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "direction": self.direction,
            "categories": list(self.categories),
            "reason_en": self.reason_en,
            "reason_zh": self.reason_zh,
            "reason": self.reason,
            "reason_threshold": self.reason_threshold,
            "reason_group": self.reason_group,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ModelInput:
        return cls(
            name=d["name"],
            dtype=d.get("dtype", "float"),
            direction=int(d.get("direction", 0)),
            categories=tuple(d.get("categories", ())),
            reason_en=d.get("reason_en", ""),
            reason_zh=d.get("reason_zh", ""),
            reason=bool(d.get("reason", True)),  # absent: older bundles
            reason_threshold=d.get("reason_threshold"),
            reason_group=d.get("reason_group", ""),
        )


def encode(frame, features: list[ModelInput]) -> np.ndarray:
    """Feature columns of ``frame`` as a float64 matrix in model order.

    Numeric and boolean columns become floats (null -> NaN); a categorical column becomes the
    index of its value among the feature's training categories (unseen or null -> NaN), which
    LightGBM reads as a native categorical.
    """
    columns = set(frame.columns)
    missing = [f.name for f in features if f.name not in columns]
    if missing:
        raise MissingFeatureError(missing)
    out = np.empty((len(frame), len(features)), dtype=np.float64)
    for j, f in enumerate(features):
        values = frame[f.name]
        values = values.to_numpy() if hasattr(values, "to_numpy") else np.asarray(values)
        if f.is_categorical:
            codes = pd.Index(list(f.categories), dtype=object).get_indexer(_category_keys(values))
            out[:, j] = np.where(codes < 0, np.nan, codes)
        else:
            try:
                out[:, j] = np.asarray(values, dtype=np.float64)
            except (TypeError, ValueError) as err:
                raise ValueError(f"feature column {f.name!r} must be numeric ({f.dtype}): {err}") from err
    return out


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, PD_EPS, 1.0 - PD_EPS)
    return np.log(p / (1.0 - p))


def apply_calibration(params: dict, margin) -> np.ndarray:
    """Margin -> PD with a calibrator's parameters (``training.calibration`` fits them)."""
    m = np.asarray(margin, dtype=np.float64)
    if params["kind"] == "platt":
        p = 1.0 / (1.0 + np.exp(-(params["a"] * m + params["b"])))
    elif params["kind"] == "isotonic" and "tail_slope" in params:  # logit interpolation, logit-linear tails
        x = np.asarray(params["x"], dtype=np.float64)
        z = _logit(np.asarray(params["y"], dtype=np.float64))
        a = float(params["tail_slope"])
        inner = np.interp(m, x, z)
        z_m = np.where(m < x[0], z[0] + a * (m - x[0]), np.where(m > x[-1], z[-1] + a * (m - x[-1]), inner))
        p = 1.0 / (1.0 + np.exp(-z_m))
    elif params["kind"] == "isotonic":  # bundles written before the tails: steps clipped at both ends
        p = np.interp(m, np.asarray(params["x"], dtype=np.float64), np.asarray(params["y"], dtype=np.float64))
    else:
        raise ValueError(f"unknown calibrator kind {params['kind']!r}; expected 'platt' or 'isotonic'")
    return np.clip(p, PD_EPS, 1.0 - PD_EPS)


@dataclass
class ScoringBundle:
    """Booster + calibrator + master scale + feature list: the model as serving sees it."""

    booster: object | None  # lightgbm.Booster (kinds lightgbm and blend)
    calibrator: dict
    scale: MasterScale
    features: list[ModelInput]
    id_columns: list[str] = field(default_factory=list)
    target: str = "bad"
    feature_set: dict = field(default_factory=dict)
    kind: str = "lightgbm"
    catalog_yaml: str | None = None
    num_threads: int = 1
    _baseline: float | None = None
    scorecard: dict | None = None  # the WoE scorecard spec (kinds scorecard and blend)
    blend: dict | None = None  # {"intercept", "lightgbm", "scorecard" or "logistic"}: the blend's weights
    logistic: dict | None = None  # the one-hot logistic model's spec (kind logistic, or a blend's linear part)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown model kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        needs = {
            "lightgbm": ("booster",),
            "scorecard": ("scorecard",),
            "logistic": ("logistic",),
            "blend": ("booster", "blend"),
        }
        lacking = [part for part in needs[self.kind] if getattr(self, part) is None]
        if self.kind == "blend" and not lacking:
            lacking = [part for part in ("scorecard", "logistic") if part in self.blend and getattr(self, part) is None]
        if lacking:
            raise ValueError(f"a {self.kind} bundle needs {', '.join(lacking)}")

    # -- persistence ------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the bundle (layout in the module docstring); returns the directory."""
        d = Path(directory)
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        if self.booster is not None:
            self.booster.save_model(str(d / "model.txt"))
        if self.logistic is not None:
            (d / "logistic.json").write_text(json.dumps(self.logistic, ensure_ascii=False, indent=1), encoding="utf-8")
        if self.scorecard is not None:
            (d / "scorecard.json").write_text(
                json.dumps(self.scorecard, ensure_ascii=False, indent=1), encoding="utf-8"
            )
        (d / "calibrator.json").write_text(json.dumps(self.calibrator), encoding="utf-8")
        (d / "master_scale.yaml").write_text(self.scale.to_yaml(), encoding="utf-8")
        if self.catalog_yaml is not None:
            (d / "catalog.yaml").write_text(self.catalog_yaml, encoding="utf-8")
        baseline = self.baseline
        meaning = (
            (
                "TreeSHAP expected value: the mean model margin over the training window; "
                "reason contributions are measured against it"
            )
            if self.kind == "lightgbm"
            else (
                "the mean model margin over the training rows; reasons are measured against each feature's best "
                "scorecard bin"
                if self.kind == "scorecard"
                else "the mean model margin over the training rows; reasons are each feature's term against its "
                "training mean (exact SHAP of the linear model)"
                if self.kind == "logistic"
                else "the mean model margin over the training rows; reasons are the LightGBM part's TreeSHAP "
                "contributions times its blend weight"
            )
        )
        meta = {
            "format_version": FORMAT_VERSION if self.kind == "lightgbm" else 2,
            "kind": self.kind,
            "features": [f.to_dict() for f in self.features],
            "id_columns": self.id_columns,
            "target": self.target,
            "feature_set": self.feature_set,
            "baseline": {
                "margin": baseline,
                "pd": float(self.pd_from_margin(np.array([baseline]))[0]),
                "meaning": meaning,
            },
            **({"blend": self.blend} if self.blend is not None else {}),
        }
        (d / "bundle.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
        return d

    @staticmethod
    def describe(directory: str | Path) -> dict:
        """``{"features": [names], "feature_set": {...}}`` from ``bundle.json`` alone, without loading the model."""
        meta = json.loads((Path(directory) / "bundle.json").read_text(encoding="utf-8"))
        return {"features": [f["name"] for f in meta["features"]], "feature_set": meta.get("feature_set", {})}

    @classmethod
    def load(cls, directory: str | Path, *, num_threads: int = 1) -> ScoringBundle:
        """Read a bundle directory written by :meth:`save`."""
        import lightgbm as lgb

        d = Path(directory)
        meta = json.loads((d / "bundle.json").read_text(encoding="utf-8"))
        if meta.get("format_version") not in FORMAT_VERSIONS:
            raise ValueError(
                f"{d}: bundle format {meta.get('format_version')} is not one of {', '.join(map(str, FORMAT_VERSIONS))}"
            )
        catalog, model_file, scorecard = d / "catalog.yaml", d / "model.txt", d / "scorecard.json"
        return cls(
            booster=lgb.Booster(model_file=str(model_file)) if model_file.exists() else None,
            scorecard=json.loads(scorecard.read_text(encoding="utf-8")) if scorecard.exists() else None,
            blend=meta.get("blend"),
            logistic=json.loads((d / "logistic.json").read_text(encoding="utf-8"))
            if (d / "logistic.json").exists()
            else None,
            calibrator=json.loads((d / "calibrator.json").read_text(encoding="utf-8")),
            scale=MasterScale.load(d / "master_scale.yaml"),
            features=[ModelInput.from_dict(f) for f in meta["features"]],
            id_columns=list(meta.get("id_columns", [])),
            target=meta.get("target", "bad"),
            feature_set=meta.get("feature_set", {}),
            kind=meta.get("kind", "lightgbm"),
            catalog_yaml=catalog.read_text(encoding="utf-8") if catalog.exists() else None,
            num_threads=num_threads,
            _baseline=meta.get("baseline", {}).get("margin"),
        )

    # -- scoring ----------------------------------------------------------------------------
    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def baseline(self) -> float:
        """TreeSHAP expected margin (the reasons' reference point); for the other kinds the mean
        training margin given at construction (0 if none was)."""
        if self._baseline is None:
            if self.kind != "lightgbm":
                return 0.0
            probe = np.full((1, len(self.features)), np.nan)
            self._baseline = float(self.booster.predict(probe, pred_contrib=True, num_threads=1)[0, -1])
        return self._baseline

    def encode(self, frame) -> np.ndarray:
        return encode(frame, self.features)

    def margin(self, X: np.ndarray, *, threads: int | None = None) -> np.ndarray:
        """The model's raw log-odds margin of encoded rows (before calibration), for every kind."""
        threads = threads or self.num_threads
        if self.kind == "lightgbm":
            return self.booster.predict(X, raw_score=True, num_threads=threads)
        if self.kind == "logistic":
            return self._logistic_margin(X)
        if self.kind == "scorecard":
            return self._scorecard_margin(X)
        w = self.blend
        linear = (
            w["scorecard"] * self._scorecard_margin(X) if "scorecard" in w else w["logistic"] * self._logistic_margin(X)
        )
        return w["intercept"] + w["lightgbm"] * self.booster.predict(X, raw_score=True, num_threads=threads) + linear

    def _scorecard_margin(self, X: np.ndarray) -> np.ndarray:
        from training.scorecard import (
            scorecard_logit,  # lazily: scikit-learn only for scorecard kinds
        )

        return scorecard_logit(self.scorecard, decode(X, self.features))

    def _logistic_margin(self, X: np.ndarray) -> np.ndarray:
        intercept, terms = logistic_terms(self.logistic, X, self.features)
        return intercept + terms.sum(axis=1)

    def contributions(self, X: np.ndarray, *, threads: int | None = None) -> np.ndarray:
        """Per row and feature, how much it raised the margin: the reasons' input (see the module docstring)."""
        threads = threads or self.num_threads
        if self.kind == "scorecard":
            return scorecard_contributions(self.scorecard, X, self.features)
        if self.kind == "logistic":
            return logistic_terms(self.logistic, X, self.features)[1]
        contrib = self.booster.predict(X, pred_contrib=True, num_threads=threads)[:, :-1]
        return contrib if self.kind == "lightgbm" else self.blend["lightgbm"] * contrib

    def pd_from_margin(self, margin: np.ndarray) -> np.ndarray:
        """Calibrated PD of raw margins, floored by the master scale."""
        return self.scale.floor(apply_calibration(self.calibrator, margin))

    def score(self, frame, *, reasons: bool = True, threads: int | None = None) -> Scores:
        """The scoring result for every row of ``frame``, in order (reasons only when asked for)."""
        return self.score_encoded(self.encode(frame), reasons=reasons, threads=threads)

    def score_encoded(self, X: np.ndarray, *, reasons: bool = True, threads: int | None = None) -> Scores:
        """:meth:`score` of rows already encoded (:meth:`encode`)."""
        p = self.pd_from_margin(self.margin(X, threads=threads))
        why = self.reasons(self.contributions(X, threads=threads), X) if reasons else None
        return Scores.from_pd(self.scale, p, why)

    def predict(self, frame, *, reasons: bool = True) -> pd.DataFrame:
        """:meth:`score` as the pyfunc's frame (``frame``'s index kept; see :meth:`Scores.to_frame`)."""
        index = frame.index if isinstance(frame, pd.DataFrame) else None
        return self.score(frame, reasons=reasons).to_frame(index)

    @cached_property
    def reason_groups(self) -> list[np.ndarray]:
        """Feature positions per reason group (``ModelInput.reason_group``, else the feature alone)."""
        return reason_groups(self.features)

    def reasons(self, contrib: np.ndarray, X: np.ndarray | None = None) -> Reasons:
        """Top risk-raising reasons per row from margin contributions (:func:`training.result.rank_reasons`)."""
        return rank_reasons(self.features, self.reason_groups, contrib, X)


def default_threads() -> int:
    """Threads for batch scoring: all cores, at most 2 (serving uses 1 per request)."""
    return max(1, min(2, os.cpu_count() or 1))
