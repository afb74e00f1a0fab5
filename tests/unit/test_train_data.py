"""Training tables: catalogue parsing, out-of-time and stratified splits, bring-your-own tables."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest

from training.data import FeatureSet, load_table, stratified_split, time_split


def _months(n_months: int, per_month: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Times, merchant ids (the same merchants every month) and labels (merchant 0..9 bad)."""
    dates = [np.datetime64(date(2023 + m // 12, 1 + m % 12, 1)) for m in range(n_months)]
    times = np.repeat(np.array(dates), per_month)
    groups = np.tile(np.array([f"M{i:04d}" for i in range(per_month)], dtype=object), n_months)
    y = np.tile((np.arange(per_month) < 10).astype(int), n_months)
    return times, groups, y


def test_test_rows_come_from_held_out_merchants_after_every_booster_row():
    times, groups, y = _months(18, 100)
    s = time_split(times, groups, y, seed=1)
    # the test: later than every booster row, and from merchants no booster or calibration row came from
    assert times[s.train].max() < times[s.test].min()
    assert len(np.intersect1d(groups[s.test], np.union1d(groups[s.train], groups[s.valid]))) == 0
    # calibration: the other merchants' rows from the split date on, each merchant in one fold
    assert times[s.train].max() < times[s.valid].min() == times[s.test].min()
    assert set(groups[s.valid]) <= set(groups[s.train])
    assert (s.fold[s.test] == -1).all() and (s.fold[s.train] >= 0).all()
    folds_of = {g: set(s.fold[groups == g]) for g in np.unique(groups[s.train])}
    assert all(len(f) == 1 for f in folds_of.values()) and len({f.pop() for f in folds_of.values()}) == 5
    assert 0.2 <= len(np.unique(groups[s.test])) / 100 <= 0.3
    assert 0.35 <= (len(s.valid) + len(s.test)) / len(times) < 0.45  # the late window
    assert len(s.train) + len(s.valid) + len(s.test) + int(s.bounds["test_groups_unused_rows"]) == len(times)
    assert y[s.test].sum() > 0 and y[s.train].sum() > 0  # merchants with defaults on both sides
    assert s.bounds["test_to"] == "2024-06-01" and s.bounds["train_from"] == "2023-01-01"
    params = s.params(y)
    assert params["split"] == "merchant_disjoint" and params["test_rows"] == len(s.test)
    assert int(params["test_groups"]) + int(params["train_groups"]) == 100  # 25 % of each stratum, rounded
    again = time_split(times, groups, y, seed=1)
    np.testing.assert_array_equal(again.test, s.test)
    np.testing.assert_array_equal(again.fold, s.fold)


def test_time_split_needs_two_dates():
    times, groups, y = _months(2, 50)
    s = time_split(times, groups, y, seed=0)
    assert set(times[s.test]) == {times.max()} and set(times[s.train]) == {times.min()}
    times, groups, y = _months(1, 50)
    with pytest.raises(ValueError, match="at least 2"):
        time_split(times, groups, y, seed=0)


def test_stratified_split_keeps_the_default_rate_and_folds_the_rest():
    y = (np.arange(10_000) % 20 == 0).astype(int)
    s = stratified_split(y, seed=3)
    for idx in (s.train, s.test):
        assert y[idx].mean() == pytest.approx(0.05, abs=0.002)
    assert len(np.intersect1d(s.train, s.test)) == 0
    np.testing.assert_array_equal(s.train, s.valid)  # every fitted row is scored out of fold
    assert (s.fold[s.test] == -1).all() and set(s.fold[s.train]) == set(range(5))
    np.testing.assert_array_equal(stratified_split(y, seed=3).test, s.test)


def test_catalog_reads_directions_dtypes_and_reasons(tmp_path):
    common = "description_en: x, description_zh: x, source: transactions, window_days: 30"
    path = tmp_path / "catalog.yaml"
    path.write_text(
        "name: t\nversion: 2.0.0\nfeatures:\n"
        f"- {{name: a, dtype: float, risk_direction: 1, reason_en: A high, reason_zh: A高, {common}}}\n"
        f"- {{name: s, dtype: category, risk_direction: 0, reason_en: S, reason_zh: S, {common}}}\n",
        encoding="utf-8",
    )
    cat = FeatureSet.read(path)
    assert (cat.name, cat.version) == ("t", "2.0.0")
    assert [(f.name, f.dtype, f.direction) for f in cat.features] == [("a", "float", 1), ("s", "category", 0)]
    assert cat.features[0].reason_zh == "A高" and "A高" in cat.text
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        path.read_text(encoding="utf-8").replace("risk_direction: 1", "risk_direction: 2"), encoding="utf-8"
    )
    with pytest.raises(ValueError, match="risk_direction"):
        FeatureSet.read(broken)


def test_package_catalogue_parses():
    cat = FeatureSet.read()
    assert cat.features and all(f.direction in (-1, 0, 1) for f in cat.features)


def _table(tmp_path, fmt="csv"):
    rng = np.random.default_rng(0)
    n = 600
    frame = pl.DataFrame(
        {
            "loan_id": [f"L{i}" for i in range(n)],
            "month": pl.Series([date(2024, 1 + i % 6, 1) for i in range(n)]),
            "income": rng.normal(5, 1, n),
            "region": rng.choice(["north", "south"], n),
            "branch": rng.integers(1, 4, n),
            "target": (rng.random(n) < 0.2).astype(int),
        }
    )
    path = tmp_path / f"t.{fmt}"
    frame.write_csv(path) if fmt == "csv" else frame.write_parquet(path)
    return path


def test_load_table_infers_features_and_types(tmp_path):
    t = load_table(_table(tmp_path), target="target", id_col="loan_id", categorical=["branch"], monotone={"income": -1})
    kinds = {f.name: (f.dtype, f.direction) for f in t.features}
    assert kinds == {"income": ("float", -1), "region": ("category", 0), "branch": ("category", 0)}
    assert t.split.kind == "stratified_random" and t.id_columns == ["loan_id"]
    assert next(f for f in t.features if f.name == "branch").categories == ("1", "2", "3")


def test_load_table_with_time_column_splits_out_of_time(tmp_path):
    t = load_table(_table(tmp_path, "parquet"), target="target", id_col="loan_id", time_col="month")
    assert t.split.kind == "merchant_disjoint" and "month" not in [f.name for f in t.features]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(target="nope", id_col="loan_id"), "'nope' not found"),
        (dict(target="income", id_col="loan_id"), "must hold both 0 and 1"),
        (dict(target="target", id_col="loan_id", monotone={"region": 1}), "categorical feature cannot"),
        (dict(target="target", id_col="loan_id", categorical=["colour"]), "colour"),
    ],
)
def test_load_table_errors_name_the_problem(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_table(_table(tmp_path), **kwargs)


def test_panel_built_with_another_catalogue_is_refused(tmp_path):
    from training.data import load_panel

    pl.DataFrame({"merchant_id": ["M1"], "as_of": [date(2024, 1, 1)], "bad": [0]}).write_parquet(
        tmp_path / "panel.parquet"
    )
    (tmp_path / "metadata.json").write_text('{"catalog_sha256": "0123456789abcdef"}', encoding="utf-8")
    with pytest.raises(ValueError, match="another catalogue"):
        load_panel(tmp_path)
