"""The fast one-row path (training.fast_row) gives exactly the batch path's answer: encoding, margin,
contributions, reasons and the rendered row, from many threads at once; and its type check words
every problem as the server's does."""

from __future__ import annotations

import dataclasses
import gc
import os
import threading

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from training.bundle import MissingFeatureError, ModelInput, ScoringBundle, encode
from training.fast_row import OneRowBooster, OneRowReasons, RowScorer, row_problems
from training.master_scale import MasterScale
from training.result import rank_reasons, reason_groups

SECTORS = ("catering", "laundry", "retail", "310000")
FEATURES = [
    ModelInput("complaints", "float", 1, reason_en="Many complaints", reason_zh="投诉较多", reason_threshold=0.5),
    ModelInput("sales_30d", "float", -1, reason_en="Low sales", reason_zh="销售额偏低", reason_group="sales"),
    ModelInput(
        "sales_90d",
        "float",
        -1,
        reason_en="Sales fell",
        reason_zh="销售额下降",
        reason_group="sales",
        reason_threshold=9.0,
    ),
    ModelInput("thin_file", "bool", 1, reason_en="Short history", reason_zh="经营记录较短"),
    ModelInput("sector", "category", 0, categories=SECTORS, reason_en="Sector risk", reason_zh="行业风险"),
    ModelInput("age_months", "int", -1),  # no text: a reason whatever its value
    ModelInput("region_code", "int", 0, reason=False),
]
NAMES = [f.name for f in FEATURES]


def _rows(n: int, seed: int) -> list[dict]:
    """Request-like rows: JSON values with nulls, unseen and integer-coded categories, flags."""
    rng = np.random.default_rng(seed)
    health = rng.normal(0, 1, n)
    rows = []
    for i in range(n):
        sector = rng.choice([*SECTORS, "karaoke", None, 310000])
        rows.append(
            {
                "complaints": float(np.exp(-health[i] + rng.normal(0, 0.6))),
                "sales_30d": None if rng.random() < 0.1 else float(10 + health[i] + rng.normal(0, 0.3)),
                "sales_90d": None if rng.random() < 0.1 else float(10 + health[i] + rng.normal(0, 0.5)),
                "thin_file": None if rng.random() < 0.05 else bool(rng.random() < 0.2),
                "sector": sector if not isinstance(sector, np.str_) else str(sector),
                "age_months": int(rng.integers(1, 120)),
                "region_code": int(rng.integers(0, 30)),
            }
        )
    return rows


@pytest.fixture(scope="module")
def booster() -> lgb.Booster:
    rows = _rows(3000, 0)
    X = encode(pd.DataFrame(rows), FEATURES)
    rng = np.random.default_rng(1)
    z = -2.5 + 0.8 * np.nan_to_num(X[:, 0]) - 0.6 * np.nan_to_num(X[:, 1] - 10) + 0.7 * (X[:, 4] == 0)
    y = (rng.random(len(X)) < 1 / (1 + np.exp(-z))).astype(int)
    params = {"objective": "binary", "num_leaves": 7, "min_data_in_leaf": 20, "verbose": -1, "num_threads": 1}
    return lgb.train(params, lgb.Dataset(X, y, categorical_feature=[4]), num_boost_round=40)


def _bundle(booster, kind: str = "lightgbm") -> ScoringBundle:
    logistic = {
        "centred_intercept": -2.0,
        "numeric": [
            {"name": "complaints", "median": 1.0, "mean": 1.2, "sd": 0.9, "coef": 0.5, "missing_coef": 0.1},
            {"name": "sales_30d", "median": 10.0, "mean": 10.0, "sd": 1.0, "coef": -0.4, "missing_coef": 0.3},
        ],
        "categorical": [{"name": "sector", "coefs": {"catering": 0.4, "retail": -0.2}, "missing": 0.1, "mean": 0.05}],
    }
    for t in logistic["numeric"]:
        t["missing_mean"] = 0.1
    return ScoringBundle(
        booster=None if kind == "logistic" else booster,
        calibrator={"kind": "platt", "a": 1.1, "b": -0.2},
        scale=MasterScale.load(),
        features=FEATURES,
        kind=kind,
        logistic=None if kind == "lightgbm" else logistic,
        blend={"intercept": -0.1, "lightgbm": 0.7, "logistic": 0.4} if kind == "blend" else None,
    )


@pytest.mark.parametrize("kind", ["lightgbm", "blend", "logistic"])
def test_one_row_equals_the_batch_path(booster, kind):
    bundle = _bundle(booster, kind)
    rows = _rows(300, 5)
    X = bundle.encode(pd.DataFrame(rows))
    batch = bundle.score_encoded(X)
    scorer = RowScorer(bundle)
    for i, row in enumerate(rows):
        x1 = scorer.encode(row)
        np.testing.assert_array_equal(x1, X[i : i + 1])
        if i < 40:  # the frame of that one row (the batch above shares its columns' dtypes with other rows)
            np.testing.assert_array_equal(x1, bundle.encode(pd.DataFrame([row])))
        scores = scorer.score(x1)
        assert scores.pd[0] == batch.pd[i]
        assert scores.row(0) == batch.row(i)
    assert any(batch.row(i)["reasons"] for i in range(len(rows)))


def test_margin_is_the_raw_score_and_contributions_are_pred_contrib(booster):
    copy = lgb.Booster(model_str=booster.model_to_string())
    copy.best_iteration = 25  # Booster.predict then scores 25 trees: so must the one-row path
    fast = OneRowBooster(copy)
    X = encode(pd.DataFrame(_rows(200, 6)), FEATURES)
    raw, contrib = copy.predict(X, raw_score=True), copy.predict(X, pred_contrib=True)
    assert not np.allclose(raw, booster.predict(X, raw_score=True))
    for i in range(len(X)):
        assert fast.predict(X[i : i + 1], raw_score=True)[0] == raw[i]
        np.testing.assert_allclose(fast.predict(X[i : i + 1], pred_contrib=True)[0], contrib[i], rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="one row"):
        fast.predict(X[:2], raw_score=True)


def test_encode_reads_values_as_the_frame_encoder_does(booster):
    scorer = RowScorer(_bundle(booster))
    base = _rows(1, 7)[0]
    odd = [
        {"sector": 310000},  # integer code
        {"sector": 310000.0},  # an integer column with nulls, read as a float
        {"sector": "310000.0"},  # text is matched as written
        {"sector": True},
        {"sector": float("nan")},
        {"sector": 2.5},
        {"complaints": np.float64(2.5), "age_months": np.int64(7)},
        {"complaints": "3.5", "thin_file": True, "age_months": 2**60},
        {"complaints": float("nan"), "thin_file": False, "sales_30d": float("inf")},
    ]
    for change in odd:
        row = {**base, **change}
        np.testing.assert_array_equal(scorer.encode(row), encode(pd.DataFrame([row]), FEATURES), err_msg=str(change))
    assert scorer.encode({**base, "sector": 310000})[0, 4] == 3.0
    assert np.isnan(scorer.encode({**base, "sector": "karaoke", "merchant_id": "m1"})[0, 4])  # unseen; extras ignored
    with pytest.raises(MissingFeatureError, match="sector"):
        scorer.encode({k: v for k, v in base.items() if k != "sector"})
    with pytest.raises(ValueError, match="'complaints'"):
        scorer.encode({**base, "complaints": "a lot"})


def test_one_row_reasons_are_rank_reasons():
    """Random contributions (with exact ties) over groups of 1 to 20 features, thresholds both ways,
    missing values, features that may not be reasons: every row ranked as rank_reasons ranks it."""
    rng = np.random.default_rng(11)
    features, group = [], 0
    while len(features) < 90:
        size = int(rng.integers(1, 21))
        for _ in range(size):
            j = len(features)
            features.append(
                ModelInput(
                    f"f{j}",
                    direction=int(rng.choice([-1, 0, 1])),
                    reason_en="" if rng.random() < 0.2 else f"text {j}",
                    reason_zh="" if rng.random() < 0.5 else f"文字 {j}",
                    reason=bool(rng.random() < 0.85),
                    reason_threshold=float(rng.normal()) if rng.random() < 0.3 else None,
                    reason_group=f"g{group}" if size > 1 else "",
                )
            )
        group += 1
    members = reason_groups(features)
    n = 1500
    contrib = np.where(rng.random((n, len(features))) < 0.5, rng.normal(0, 1, (n, len(features))), 0.0)
    contrib[: n // 3] = np.round(contrib[: n // 3] * 2) / 2  # many exact ties
    contrib[rng.random(contrib.shape) < 0.02] = 1e-300
    X = np.where(rng.random(contrib.shape) < 0.1, np.nan, rng.normal(0, 1, contrib.shape))
    X[:, :5] = np.array([f.reason_threshold or 0.0 for f in features[:5]])  # values on the threshold itself
    expected = rank_reasons(features, members, contrib, X)
    one = OneRowReasons(features, members)
    for i in range(n):
        got = one(contrib[i], X[i])
        assert got.row(0) == expected.row(i)
        for part in ("code", "en", "zh"):
            assert list(getattr(got, part)[0]) == list(getattr(expected, part)[i])
    # the group scores and best members themselves, bit for bit, as rank_reasons computes them on many rows
    c = np.where(np.array([f.reason for f in features]), contrib, -np.inf)
    batch = np.column_stack([np.where(c[:, m] > 0, c[:, m], 0.0).sum(axis=1) for m in members])
    best = np.column_stack([m[np.argmax(c[:, m], axis=1)] for m in members])
    unfiltered = OneRowReasons([dataclasses.replace(f, reason_en="", reason_threshold=None) for f in features], members)
    for i in range(n):
        scores, tops = unfiltered.group_scores(contrib[i], X[i])
        assert scores == batch[i].tolist() and tops == best[i].tolist()


def test_threads_scoring_at_once_get_the_same_answers(booster):
    bundle = _bundle(booster)
    rows = _rows(100, 8)
    scorer = RowScorer(bundle)
    expected = [scorer.score(scorer.encode(r)).row(0) for r in rows]  # one thread (the batch path's, as tested above)
    start, failures = threading.Barrier(6), []

    def work(scorer: RowScorer, offset: int) -> None:
        start.wait()
        for k in range(2 * len(rows)):
            i = (offset * 37 + k) % len(rows)
            if scorer.score(scorer.encode(rows[i])).row(0) != expected[i]:
                failures.append(i)

    threads = [threading.Thread(target=work, args=(scorer, t)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    fast = scorer._fast.booster
    assert 1 <= len(fast._slots) <= 6 and len(fast._free) == len(fast._slots)
    finalizer = fast._finalizer
    del scorer, fast
    gc.collect()
    assert not finalizer.alive  # the FastConfigs were freed with the scorer
    assert booster.predict(encode(pd.DataFrame(rows[:3]), FEATURES)).shape == (3,)  # the booster itself lives on


def test_row_problems_word_every_problem_as_the_server_does(booster):
    from serving.scorer import InputError, row_frame

    bundle = _bundle(booster)
    base = _rows(1, 9)[0]
    cases = [
        base,
        {**base, "sector": None, "complaints": None, "thin_file": None},
        {**base, "sector": True, "thin_file": 1, "complaints": "3", "unknown": 1, "another": None},
        {**base, "sector": 2.5, "thin_file": "yes", "complaints": float("inf"), "age_months": 10**400},
        {**base, "sector": ["a"], "complaints": True, "age_months": float("nan"), "sales_30d": {"x": 1}},
        {**base, "sector": 310000, "thin_file": False, "complaints": 3, "sales_30d": -1e308},
        {k: v for k, v in base.items() if k not in ("sector", "complaints")},
        {},
    ]
    for row in cases:
        for ignore_extra in (False, True):
            try:
                row_frame(bundle, row, ignore_extra=ignore_extra)
                detail = []
            except InputError as err:
                detail = err.detail
            assert row_problems(FEATURES, row, ignore_extra=ignore_extra) == detail
