"""The one scoring result: PD, score, grade, class and reasons per row, and its renderings.

:meth:`training.bundle.ScoringBundle.score` computes a :class:`Scores` once; every caller
renders it instead of recomputing any part: the pyfunc and ``ScoringBundle.predict`` as a frame
(:meth:`Scores.to_frame`), the server and replay as JSON objects (:meth:`Scores.row`), the class
history as its columns.

Frame columns (one row per input row, same order and index): ``pd`` (float, 12-month PD after
calibration and the scale's PD floor), ``score`` (int), ``grade`` (str), ``class`` (A-D), and
``reason_{k}_code`` / ``reason_{k}_en`` / ``reason_{k}_zh`` for k = 1..4: the features that
raised this merchant's risk most, by their contribution to the margin against the baseline
(for TreeSHAP the model's expected margin over the training window), largest first. The code is
the catalogue feature name; fewer than four risk-raising features leave the rest null. Flat
columns rather than a list column: every bank API, CSV export and Parquet reader handles them
without nesting.

Only reason-capable features are reasons (``ModelInput.reason``, from the catalogue: never the
identity features nor those without a risk direction); the next one moves up. A catalogue
reason text names a high or a low value ("Currently past due on a loan"), so a feature whose
value is missing in the row (no loan at all) is no reason for that row: its contribution is
that of the missing value, which the text does not describe. Nor is it one on the wrong side of
its ``reason_threshold`` (no "Sales fell" where sales grew, though a flat month may still raise
the risk against the average). Features without a text (bring-your-own tables) are reasons
whatever their value, as "<name> raised the risk".
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from training.bundle import ModelInput
    from training.master_scale import MasterScale

N_REASONS = 4
LANGUAGES = ("en", "zh")
REASON_COLUMNS = [f"reason_{k}_{part}" for k in range(1, N_REASONS + 1) for part in ("code", *LANGUAGES)]
OUTPUT_COLUMNS = ["pd", "score", "grade", "class", *REASON_COLUMNS]


@dataclass(frozen=True)
class Reasons:
    """Up to :data:`N_REASONS` reasons per row: codes and texts, each an (rows, N_REASONS) object array
    whose unused places are None."""

    code: np.ndarray
    en: np.ndarray
    zh: np.ndarray

    def columns(self) -> dict[str, np.ndarray]:
        """The flat ``reason_{k}_{code,en,zh}`` columns, in :data:`REASON_COLUMNS` order."""
        out: dict[str, np.ndarray] = {}
        for r in range(N_REASONS):
            out[f"reason_{r + 1}_code"] = self.code[:, r]
            out[f"reason_{r + 1}_en"] = self.en[:, r]
            out[f"reason_{r + 1}_zh"] = self.zh[:, r]
        return out

    def row(self, j: int) -> list[dict]:
        """Row ``j``'s reasons as ``[{"code", "en", "zh"}, ...]``, largest first (the API's shape)."""
        return [
            {"code": c, "en": e, "zh": z}
            for c, e, z in zip(self.code[j], self.en[j], self.zh[j], strict=True)
            if c is not None
        ]


@dataclass(frozen=True)
class Scores:
    """PD, score, grade and class per row (arrays of one length), with the reasons when asked for."""

    pd: np.ndarray
    score: np.ndarray
    grade: np.ndarray
    klass: np.ndarray  # "class" in every rendering
    reasons: Reasons | None = None

    @classmethod
    def from_pd(cls, scale: MasterScale, p: np.ndarray, reasons: Reasons | None = None) -> Scores:
        """Score, grade and class of calibrated PDs on the master scale: the one place they are derived."""
        return cls(p, scale.score(p), scale.grade(p).astype(str), scale.risk_class(p).astype(str), reasons)

    def __len__(self) -> int:
        return len(self.pd)

    def to_frame(self, index: pd.Index | None = None) -> pd.DataFrame:
        """The pyfunc's frame: ``pd``, ``score``, ``grade``, ``class`` (and the reason columns)."""
        out = pd.DataFrame(
            {"pd": self.pd, "score": self.score, "grade": self.grade, "class": self.klass},
            index=pd.RangeIndex(len(self)) if index is None else index,
        )
        if self.reasons is not None:
            for col, values in self.reasons.columns().items():
                out[col] = values
        return out

    def row(self, j: int) -> dict[str, Any]:
        """Row ``j`` as plain JSON values: ``pd``, ``score``, ``grade``, ``class`` (and ``reasons``)."""
        out: dict[str, Any] = {
            "pd": float(self.pd[j]),
            "score": int(self.score[j]),
            "grade": str(self.grade[j]),
            "class": str(self.klass[j]),
        }
        if self.reasons is not None:
            out["reasons"] = self.reasons.row(j)
        return out


def reason_groups(features: list[ModelInput]) -> list[np.ndarray]:
    """Feature positions per reason group (``ModelInput.reason_group``, else the feature alone)."""
    groups: dict[str, list[int]] = {}
    for j, f in enumerate(features):
        groups.setdefault(f.reason_group or f.name, []).append(j)
    return [np.asarray(m) for m in groups.values()]


def rank_reasons(
    features: list[ModelInput], members: list[np.ndarray], contrib: np.ndarray, X: np.ndarray | None = None
) -> Reasons:
    """Top risk-raising reason-capable features per row from margin contributions, at most one per
    reason group (``members``, from :func:`reason_groups`; groups ranked by their members' summed
    risk-raising contribution).

    ``X`` (the encoded rows) lets a feature with a catalogue text be skipped where its value is
    missing or on the wrong side of its threshold (see the module docstring); without it only
    ``ModelInput.reason`` filters.
    """
    n = contrib.shape[0]
    eligible = np.array([f.reason for f in features], dtype=bool)
    contrib = np.where(eligible, contrib, -np.inf)
    if X is not None:
        texted = np.array([bool(f.reason_en) for f in features], dtype=bool)
        contrib = np.where(texted & np.isnan(X), -np.inf, contrib)
        for j, f in enumerate(features):
            if f.reason_threshold is not None:
                holds = X[:, j] > f.reason_threshold if f.direction >= 0 else X[:, j] < f.reason_threshold
                contrib[:, j] = np.where(holds, contrib[:, j], -np.inf)
    # one reason per group: groups ranked by the sum of their members' risk-raising contributions,
    # each shown as its largest member (several sales features do not crowd out complaints, and a
    # decline spread thin over a dozen sales windows still counts as one strong reason)
    raising = np.where(contrib > 0, contrib, 0.0)  # summed in member order whatever the number of rows, so one
    score = np.column_stack([functools.reduce(np.add, (raising[:, j] for j in m)) for m in members])  # row = a batch
    best = np.column_stack([m[np.argmax(contrib[:, m], axis=1)] for m in members])
    k = min(N_REASONS, len(members))
    rank = np.argsort(-score, axis=1, kind="stable")[:, :k]
    order = np.take_along_axis(best, rank, axis=1)
    top = np.take_along_axis(score, rank, axis=1)
    names = np.array([f.name for f in features], dtype=object)
    texts = {
        "en": np.array([f.reason_en or f"{f.name} raised the risk" for f in features], dtype=object),
        "zh": np.array([f.reason_zh or f"{f.name} 提高了风险" for f in features], dtype=object),
    }
    parts: dict[str, list[np.ndarray]] = {"code": [], "en": [], "zh": []}
    for r in range(N_REASONS):
        raising = top[:, r] > 0 if r < k else np.zeros(n, dtype=bool)
        idx = order[:, r] if r < k else np.zeros(n, dtype=int)
        parts["code"].append(np.where(raising, names[idx], None))
        for lang, text in texts.items():
            parts[lang].append(np.where(raising, text[idx], None))
    return Reasons(**{part: _stack(columns, n) for part, columns in parts.items()})


def _stack(columns: list[np.ndarray], n: int) -> np.ndarray:
    """Reason columns side by side as one (rows, N_REASONS) object array."""
    out = np.empty((n, len(columns)), dtype=object)
    for r, col in enumerate(columns):
        out[:, r] = col
    return out
