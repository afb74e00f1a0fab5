"""Scored rows as the API's answers: the one rendering for the answer store, live rows and replay."""

from __future__ import annotations

import numpy as np

from training.bundle import ScoringBundle
from training.result import Scores

CHUNK_ROWS = 20_000


def results(
    bundle: ScoringBundle,
    X: np.ndarray,
    merchant_ids: list[str | None],
    as_of: list[str | None],
    model_name: str,
    model_version: str,
    *,
    threads: int = 1,
) -> list[dict]:
    """Response objects for the rows of ``X``: the bundle's :class:`training.result.Scores` rendered
    row by row, with the ids and the model."""
    out: list[dict] = []
    for start in range(0, len(X), CHUNK_ROWS):
        scores = bundle.score_encoded(X[start : start + CHUNK_ROWS], threads=threads)
        end = start + len(scores)
        out.extend(render(scores, merchant_ids[start:end], as_of[start:end], model_name, model_version))
    return out


def render(
    scores: Scores, merchant_ids: list[str | None], as_of: list[str | None], model_name: str, model_version: str
) -> list[dict]:
    """One answer per scored row: the merchant, PD, score, grade, class, reasons, the model and the as_of."""
    return [
        {
            "merchant_id": merchant_ids[j],
            **scores.row(j),
            "model_name": model_name,
            "model_version": model_version,
            "features_as_of": as_of[j],
        }
        for j in range(len(scores))
    ]
