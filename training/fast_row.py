"""One feature row scored live, fast: the same answer as :class:`training.bundle.ScoringBundle` gives
that row in a batch, without the per-call costs that dominate when the batch is one row.

A :class:`RowScorer` is built once per model and called from many threads:

* :meth:`RowScorer.encode` turns a request's feature dict into the model's (1, n) row with dict
  lookups instead of pandas (anything outside the plain JSON types goes through
  :func:`training.bundle.encode`, the one definition, so the result is always what it gives);
* :meth:`RowScorer.score` runs the bundle's own margin, contribution, calibration and master-scale
  code with the booster swapped for :class:`OneRowBooster` (LightGBM's single-row fast path, bitwise
  the same numbers as ``Booster.predict``), and ranks reasons with :class:`OneRowReasons`, the
  one-row form of :func:`training.result.rank_reasons` (the tests hold it to that function).
  Scorecard and logistic bundles have no booster: they score through the bundle unchanged.

:func:`row_problems` is the type check of a request's row (every problem listed, in the API's
``detail`` shape), written without building an array per feature.
"""

from __future__ import annotations

import ctypes
import dataclasses
import heapq
import math
import weakref
from typing import Any

import numpy as np
import pandas as pd

from training.bundle import ModelInput, ScoringBundle, encode
from training.result import N_REASONS, Reasons, Scores, rank_reasons

_PREDICT_RAW_SCORE = 1  # C_API_PREDICT_RAW_SCORE (LightGBM c_api.h)
_PREDICT_CONTRIB = 3  # C_API_PREDICT_CONTRIB
_DTYPE_FLOAT64 = 1  # C_API_DTYPE_FLOAT64
_EXACT_INT = 2**53  # integers a float64 holds exactly: the fast path reads them, larger ones take encode()


# -- the request's row: type check ----------------------------------------------------------------
def _finite(v: float) -> bool:
    try:
        return math.isfinite(float(v))
    except OverflowError:  # an integer beyond float range
        return False


def _is_number(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float)) and _finite(v)


def row_problems(features: list[ModelInput], row: dict[str, Any], *, ignore_extra: bool = False) -> list[dict]:
    """Every problem with a request's feature row as ``{loc, msg, type}`` (empty: the row is fine).

    Numbers for numeric features, true/false for flags, strings (or integer codes) for
    categories, null for missing; keys that are not model features are a problem unless
    ``ignore_extra`` (a stored snapshot row carries ids and the label too).
    """
    detail: list[dict] = []
    if not ignore_extra:
        known = {f.name for f in features}
        for name in sorted(set(row) - known):
            detail.append(
                {
                    "loc": ["features", name],
                    "msg": "not a feature of this model (see GET /model)",
                    "type": "extra_forbidden",
                }
            )
    for f in features:
        name, dtype = f.name, f.dtype
        if name not in row:
            detail.append({"loc": ["features", name], "msg": f"missing ({dtype}; null if unknown)", "type": "missing"})
            continue
        v = row[name]
        t = type(v)
        if v is None:
            continue
        if dtype == "category":
            if t is not str and t is not int and (isinstance(v, bool) or not isinstance(v, (str, int))):
                detail.append(
                    {"loc": ["features", name], "msg": "expected a category (string) or null", "type": "string_type"}
                )
        elif dtype == "bool":
            if t is not bool:
                detail.append({"loc": ["features", name], "msg": "expected true, false or null", "type": "bool_type"})
        elif not (math.isfinite(v) if t is float else _finite(v) if t is int else _is_number(v)):
            detail.append(
                {"loc": ["features", name], "msg": f"expected a finite number ({dtype}) or null", "type": "number_type"}
            )
    return detail


# -- the row's encoding ----------------------------------------------------------------------------
class _NotPlain(Exception):
    """A value outside the fast encoder's plain types: :func:`training.bundle.encode` decides it."""


def _category_code(v: Any, codes: dict[str, float]) -> float:
    """A category value's code as :func:`training.bundle.encode` gives it for a one-row column
    (strings and integer codes matched as text, 310000.0 as "310000", null and unseen NaN)."""
    t = type(v)
    if v is None:
        return math.nan
    if t is str:
        return codes.get(v, math.nan)
    if t is int and -_EXACT_INT < v < _EXACT_INT:
        return codes.get(str(v), math.nan)
    if t is float:
        if v != v:
            return math.nan
        if v.is_integer() and -_EXACT_INT < v < _EXACT_INT:
            return codes.get(str(int(v)), math.nan)
    raise _NotPlain


def _number(v: Any) -> float:
    """A numeric or flag value as a float (null NaN, true 1.0)."""
    t = type(v)
    if v is None:
        return math.nan
    if t is float or t is bool or (t is int and -_EXACT_INT < v < _EXACT_INT):
        return float(v)
    raise _NotPlain


# -- the booster: LightGBM's single-row fast path --------------------------------------------------
class _Slot:
    """One caller's FastConfigs (raw score and contributions) with their preallocated buffers."""

    def __init__(self, lib, handle: ctypes.c_void_p, n: int, iteration: int):
        from lightgbm.basic import _safe_call

        self.x = np.empty(n, dtype=np.float64)
        self.raw = np.empty(1, dtype=np.float64)
        self.contrib = np.empty(n + 1, dtype=np.float64)
        self.out_len = ctypes.c_int64()
        self.configs: list[ctypes.c_void_p] = []
        for kind in (_PREDICT_RAW_SCORE, _PREDICT_CONTRIB):
            config = ctypes.c_void_p()
            _safe_call(
                lib.LGBM_BoosterPredictForMatSingleRowFastInit(
                    handle,
                    ctypes.c_int(kind),
                    ctypes.c_int(0),  # start_iteration
                    ctypes.c_int(iteration),  # num_iteration (<= 0: all)
                    ctypes.c_int(_DTYPE_FLOAT64),
                    ctypes.c_int32(n),
                    ctypes.c_char_p(b""),  # no num_threads: leaves the caller's OpenMP setting alone
                    ctypes.byref(config),
                )
            )
            self.configs.append(config)
        x, length = ctypes.c_void_p(self.x.ctypes.data), ctypes.byref(self.out_len)
        self.calls = {
            _PREDICT_RAW_SCORE: ((self.configs[0], x, length, ctypes.c_void_p(self.raw.ctypes.data)), self.raw),
            _PREDICT_CONTRIB: ((self.configs[1], x, length, ctypes.c_void_p(self.contrib.ctypes.data)), self.contrib),
        }


def _free_slots(lib, slots: list[_Slot], booster: object) -> None:
    """Free every FastConfig; the booster they point into is released only after (it is an argument)."""
    for slot in slots:
        for config in slot.configs:
            lib.LGBM_FastConfigFree(config)
    slots.clear()
    del booster


class OneRowBooster:
    """``Booster.predict`` for one row (raw score or contributions) through LightGBM's single-row fast
    path: the same C++ prediction code as a batch ``predict``, without its per-call setup.

    FastConfigs and their buffers are not safe to share between threads at once: each call takes
    a free slot from a pool (a new one when all are busy, so there are as many as the most
    concurrent callers) and gives it back. They are freed when this object is collected.
    """

    def __init__(self, booster):
        from lightgbm.basic import _LIB

        if booster.num_model_per_iteration() != 1:
            raise ValueError("the single-row path scores one-output (binary) boosters only")
        self._lib, self._handle = _LIB, booster._handle
        self.n = booster.num_feature()
        self._iteration = booster.best_iteration  # what Booster.predict uses when num_iteration is None
        self._free: list[_Slot] = []
        self._slots: list[_Slot] = []
        self._finalizer = weakref.finalize(self, _free_slots, _LIB, self._slots, booster)
        self._free.append(self._new_slot())  # fail at build time, not on the first request

    def _new_slot(self) -> _Slot:
        slot = _Slot(self._lib, self._handle, self.n, self._iteration)
        self._slots.append(slot)
        return slot

    def predict(
        self, X: np.ndarray, *, raw_score: bool = False, pred_contrib: bool = False, num_threads: int | None = None
    ) -> np.ndarray:
        """Raw score, shape (1,), or contributions with the expected value last, shape (1, n + 1)."""
        if raw_score == pred_contrib:
            raise ValueError("ask for raw_score or pred_contrib")
        if X.shape != (1, self.n):
            raise ValueError(f"one row of {self.n} features expected, got shape {X.shape}")
        kind = _PREDICT_CONTRIB if pred_contrib else _PREDICT_RAW_SCORE
        try:
            slot = self._free.pop()
        except IndexError:
            slot = self._new_slot()
        try:
            slot.x[:] = X[0]
            args, out = slot.calls[kind]
            if self._lib.LGBM_BoosterPredictForMatSingleRowFast(*args) != 0:
                from lightgbm.basic import LightGBMError

                raise LightGBMError(self._lib.LGBM_GetLastError().decode("utf-8"))
            return out.reshape(1, -1).copy() if pred_contrib else out.copy()
        finally:
            self._free.append(slot)


# -- reasons for one row ---------------------------------------------------------------------------
class OneRowReasons:
    """:func:`training.result.rank_reasons` for one row, its rule applied across the row's features
    instead of down the rows: the same filters (reason-capable, a texted feature's missing value,
    the wrong side of its threshold), the same group scores and best members, the same stable
    ranking and the same texts.

    A group's score is its members' risk-raising contributions added one by one in member order,
    which is how NumPy adds ``rank_reasons``' column slice of two rows or more; for a single row
    it adds pairwise, which may differ in the last bit (see the report on issue 16).
    """

    def __init__(self, features: list[ModelInput], members: list[np.ndarray]):
        self.eligible = np.array([f.reason for f in features], dtype=bool)
        self.texted = np.array([bool(f.reason_en) for f in features], dtype=bool)
        self.threshold = np.array([np.nan if f.reason_threshold is None else f.reason_threshold for f in features])
        self.has_threshold = np.array([f.reason_threshold is not None for f in features], dtype=bool)
        self.upward = np.array([f.direction >= 0 for f in features], dtype=bool)
        self.members = [[int(j) for j in m] for m in members]
        self.k = min(N_REASONS, len(members))
        # the codes and texts as rank_reasons words them: feature j alone raising the risk, unfiltered
        n = len(features)
        texts = rank_reasons(features, members, np.eye(n), None)
        self.code = [texts.code[j, 0] for j in range(n)]
        self.en = [texts.en[j, 0] for j in range(n)]
        self.zh = [texts.zh[j, 0] for j in range(n)]

    def group_scores(self, contrib: np.ndarray, x: np.ndarray) -> tuple[list[float], list[int]]:
        """Per reason group, its score (summed risk-raising contributions) and its best member."""
        c = np.where(self.eligible, contrib, -np.inf)
        holds = np.where(self.upward, x > self.threshold, x < self.threshold)
        c[(self.texted & np.isnan(x)) | (self.has_threshold & ~holds)] = -np.inf
        values = c.tolist()
        scores, best = [], []
        for m in self.members:
            total, top = 0.0, m[0]
            for j in m:
                v = values[j]
                if v > 0:
                    total += v
                if v > values[top]:
                    top = j
            scores.append(total)
            best.append(top)
        return scores, best

    def __call__(self, contrib: np.ndarray, x: np.ndarray) -> Reasons:
        """The reasons of one row from its contributions (n,) and its encoded values (n,)."""
        scores, best = self.group_scores(contrib, x)
        out = np.full((3, 1, N_REASONS), None, dtype=object)
        for r, g in enumerate(heapq.nlargest(self.k, range(len(scores)), key=scores.__getitem__)):
            if scores[g] > 0:
                j = best[g]
                out[0, 0, r], out[1, 0, r], out[2, 0, r] = self.code[j], self.en[j], self.zh[j]
        return Reasons(out[0], out[1], out[2])


# -- the scorer -----------------------------------------------------------------------------------
class RowScorer:
    """A bundle's scoring of one request row, fast (module docstring); built once per model, thread-safe."""

    def __init__(self, bundle: ScoringBundle):
        self.bundle = bundle
        self.features = bundle.features
        self._plan: list[tuple[str, dict[str, float] | None]] = []
        self._plain = True  # every categorical's categories are distinct strings (else encode() always decides)
        for f in bundle.features:
            if f.is_categorical:
                codes = {c: float(i) for i, c in enumerate(f.categories)}
                self._plain &= len(codes) == len(f.categories) and all(type(c) is str for c in f.categories)
                self._plan.append((f.name, codes))
            else:
                self._plan.append((f.name, None))
        self._fast: ScoringBundle | None = None
        if bundle.booster is not None and bundle.kind in ("lightgbm", "blend"):
            self._fast = dataclasses.replace(bundle, booster=OneRowBooster(bundle.booster))
            self._reasons = OneRowReasons(bundle.features, bundle.reason_groups)

    def encode(self, row: dict[str, Any]) -> np.ndarray:
        """The row as the model's (1, n) float matrix: ``bundle.encode(pd.DataFrame([row]))``, which
        also raises for a missing feature or a value that is no number."""
        if self._plain:
            try:
                values = [
                    _number(row[name]) if codes is None else _category_code(row[name], codes)
                    for name, codes in self._plan
                ]
                return np.array([values], dtype=np.float64)
            except (KeyError, _NotPlain):
                pass
        return encode(pd.DataFrame([row]), self.features)

    def score(self, X1: np.ndarray) -> Scores:
        """``bundle.score_encoded(X1)`` for one encoded row (:meth:`encode`): the same PD, score, grade,
        class and reasons."""
        if self._fast is None:
            return self.bundle.score_encoded(X1)
        b = self._fast
        p = b.pd_from_margin(b.margin(X1))
        return Scores.from_pd(b.scale, p, self._reasons(b.contributions(X1)[0], X1[0]))
