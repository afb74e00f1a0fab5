"""The WoE scorecard challenger: monotone bins, WoE, points that add up to the score."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.master_scale import MasterScale
from training.scorecard import MISSING, OTHER, WoEScorecard, scorecard_predict


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    n = 6000
    health = rng.normal(0, 1, n)
    frame = pd.DataFrame(
        {
            "complaints": np.exp(-health + rng.normal(0, 1.0, n)),  # riskier as it grows
            "sales": np.exp(10 + health + rng.normal(0, 1.0, n)),  # safer as it grows
            "channel_mix": rng.random(n),  # pure noise, direction unknown
            "sector": rng.choice(["catering", "retail", "laundry", "rare"], n, p=[0.4, 0.35, 0.24, 0.01]),
        }
    )
    frame.loc[rng.random(n) < 0.05, "sales"] = np.nan
    y = (rng.random(n) < 1 / (1 + np.exp(3.3 + 1.2 * health - 0.5 * (frame["sector"] == "catering")))).astype(int)
    return frame, y


@pytest.fixture(scope="module")
def fitted(data):
    frame, y = data
    return WoEScorecard(directions={"complaints": 1, "sales": -1, "channel_mix": 0}, categorical=["sector"]).fit(
        frame, y
    )


def test_directed_bins_follow_the_catalogue_direction(fitted):
    table = fitted.points_table_
    for feature, direction in (("complaints", 1), ("sales", -1)):
        rows = table[(table["feature"] == feature) & (table["bin"] != MISSING)]
        assert len(rows) >= 3
        rates = rows["event_rate"].to_numpy()
        assert np.all(np.diff(rates) * direction > 0), (feature, rates)
        # more risk, fewer points
        assert np.all(np.diff(rows["points"].to_numpy()) * direction < 0)


def test_noise_is_left_out_and_signal_kept(fitted):
    assert "channel_mix" not in fitted.selected_
    assert {"complaints", "sales", "sector"} <= set(fitted.selected_)
    assert fitted.information_value_["complaints"] > 0.3


def test_points_add_up_to_the_score_of_the_pd(fitted, data):
    frame, _ = data
    scale = MasterScale.load()
    spec = fitted.spec_
    total = np.zeros(len(frame))
    from training.scorecard import _assign

    for f in spec["features"]:
        total += pd.Series(_assign(f, frame[f["name"]])).map(f["points"]).to_numpy()
    pd_model = fitted.predict_proba(frame)[:, 1]
    np.testing.assert_allclose(total, scale.score_float(pd_model), atol=1e-6)


def test_missing_and_rare_values_get_their_own_bins(fitted, data):
    table = fitted.points_table_
    assert MISSING in set(table.loc[table["feature"] == "sales", "bin"])
    sector_bins = set(table.loc[table["feature"] == "sector", "bin"])
    assert "rare" not in sector_bins and OTHER in sector_bins


def test_unseen_category_scores_like_other_and_spec_matches_estimator(fitted, data):
    frame, _ = data
    probe = frame.head(50).copy()
    probe["sector"] = "never-seen"
    as_other = probe.assign(sector="rare")
    np.testing.assert_allclose(fitted.predict_proba(probe), fitted.predict_proba(as_other))
    scale = MasterScale.load()
    out = scorecard_predict(fitted.spec_, frame.iloc[::-1], scale)
    np.testing.assert_allclose(out["pd"].to_numpy(), scale.floor(fitted.predict_proba(frame.iloc[::-1])[:, 1]))
    assert list(out.index) == list(frame.index[::-1])


def test_discriminates(fitted, data):
    from sklearn.metrics import roc_auc_score

    frame, y = data
    assert roc_auc_score(y, fitted.predict_proba(frame)[:, 1]) > 0.75


def test_collinear_copies_are_left_out(data):
    frame, y = data
    twin = frame.assign(complaints_copy=frame["complaints"] * 1.01)
    sc = WoEScorecard(directions={"complaints": 1, "complaints_copy": 1, "sales": -1}, categorical=["sector"]).fit(
        twin, y
    )
    assert len({"complaints", "complaints_copy"} & set(sc.selected_)) == 1
