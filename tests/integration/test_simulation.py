"""The simulated market: contracts, determinism, stated rates, calibration of the truth, defects.

Most checks read the shared ``small_market`` (400 merchants x 30 panel months from 2023-01 after
12 months of history from 2022-01, thinned transactions).
The statistical claims (default rate, sector differences, decile calibration, AUC) need more
loan-months: ``calibration_market`` simulates 8,000 merchants x 48 months with almost no
transactions (they do not affect loans or truth).
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from scipy.stats import chi2

from data_contracts.uscc import is_valid
from simulation import regions, simulate_market
from simulation.market import HISTORY_MONTHS

CONTRACTS = Path(__file__).resolve().parents[2] / "data_contracts" / "contracts"
TABLES = ("merchants", "transactions", "complaints", "loans", "loan_performance", "public_records")
DTYPES = {
    "String": pl.String,
    "Int8": pl.Int8,
    "Int16": pl.Int16,
    "Int32": pl.Int32,
    "Int64": pl.Int64,
    "Float64": pl.Float64,
    "Date": pl.Date,
    "Datetime(us, Asia/Shanghai)": pl.Datetime("us", "Asia/Shanghai"),
}


def _contract(table: str) -> dict:
    spec = yaml.safe_load((CONTRACTS / f"{table}.yaml").read_text(encoding="utf-8"))
    return spec["schema"][0]


def _read(root: Path, table: str) -> pl.DataFrame:
    return pl.read_parquet(root / f"{table}.parquet")


HISTORY_START = date(2022, 1, 1)
"""First day of the small market's data: its panel starts on 2023-01-01 after 12 months of history."""
PANEL_AS_OF = [date(2023 + m // 12, 1 + m % 12, 1) for m in range(31)]
"""The small market's panel as_of dates: 2023-01-01 .. 2025-07-01 (the day after the data)."""


def _expected_truth_rows(root: Path, as_of: list[date]) -> int:
    """Merchant x as_of pairs with the merchant registered before the as_of."""
    m = _read(root, "merchants")
    return sum(int((m["registered_on"] < a).sum()) for a in as_of)


# ---------------------------------------------------------------- contracts


@pytest.mark.parametrize("table", TABLES)
def test_tables_follow_their_contract(small_market, table):
    """Column names, order and dtypes, required columns, patterns, allowed values, ranges, keys, foreign keys."""
    spec = _contract(table)
    df = _read(small_market, table)
    props = spec["properties"]
    assert df.columns == [p["name"] for p in props]
    assert df.height > 0
    for p in props:
        col = df[p["name"]]
        assert col.dtype == DTYPES[p["physicalType"]], (p["name"], col.dtype)
        if p.get("required"):
            assert col.null_count() == 0, p["name"]
        values = col.drop_nulls()
        opts = p.get("logicalTypeOptions", {})
        if "pattern" in opts:
            assert values.str.contains(opts["pattern"]).all(), p["name"]
        if "maxLength" in opts:
            assert values.str.len_chars().max() <= opts["maxLength"]
        if col.dtype.is_numeric() and "minimum" in opts:
            assert values.min() >= opts["minimum"], p["name"]
        if col.dtype.is_numeric() and "maximum" in opts:
            assert values.max() <= opts["maximum"], p["name"]
        if col.dtype == pl.Date and "minimum" in opts:
            assert (
                date.fromisoformat(opts["minimum"])
                <= values.min()
                <= values.max()
                <= date.fromisoformat(opts["maximum"])
            )
        if col.dtype == pl.Datetime("us", "Asia/Shanghai"):
            assert (
                datetime.fromisoformat(opts["minimum"])
                <= values.min()
                <= values.max()
                <= datetime.fromisoformat(opts["maximum"])
            )
        for q in p.get("quality", []):
            if q.get("rule") == "validValues":
                assert set(values.unique()) <= set(q["validValues"]), p["name"]
        if p.get("unique"):
            assert values.n_unique() == len(values), p["name"]
    pk = next(c["value"] for c in spec["customProperties"] if c["property"] == "primaryKey")
    assert df.select(pk).is_duplicated().sum() == 0
    if table != "merchants":
        known = set(_read(small_market, "merchants")["merchant_id"])
        assert set(df["merchant_id"].unique()) <= known


def test_clean_market_passes_validation_untouched(validated_market):
    import json

    summary = json.loads((validated_market / "validation_summary.json").read_text())
    for name, s in summary["tables"].items():
        assert s["rejected"] == 0, (name, s["rejected_by_rule"])


def test_credit_codes_are_valid_and_match_form_and_region(small_market):
    m = _read(small_market, "merchants")
    assert all(is_valid(c) for c in m["credit_code"])
    prefix = m["credit_code"].str.slice(0, 2)
    assert ((prefix == "92") == (m["business_form"] == "individual_business")).all()
    assert ((prefix == "91") == (m["business_form"] == "enterprise")).all()
    assert (m["credit_code"].str.slice(2, 6) == m["region_code"]).all()


def test_regions_are_real_codes_across_provinces_urban_and_rural(small_market):
    m = _read(small_market, "merchants")
    assert set(m["region_code"]) <= set(regions.CODES)
    assert m["region_code"].str.slice(0, 2).n_unique() >= 5
    rural = m["region_code"].str.slice(4, 2).cast(pl.Int32) >= 21
    assert 0.15 < rural.mean() < 0.6
    for code, name in regions.REGIONS:  # the urban/rural digit convention holds for the embedded list
        county = name.endswith(("县", "市")) and not name.endswith("区")
        assert (int(code[4:6]) >= 21) == county, (code, name)


def test_profile_attributes_vary_realistically(small_market):
    m = _read(small_market, "merchants")
    assert m["sector"].n_unique() == 9
    assert 0.15 < (m["business_form"] == "enterprise").mean() < 0.5
    capital = m.group_by("business_form").agg(pl.col("registered_capital_fen").null_count() / pl.len())
    nulls = dict(capital.iter_rows())
    assert nulls["enterprise"] == 0 and 0.3 < nulls["individual_business"] < 0.8
    established = m.filter(pl.col("registered_on") < HISTORY_START)
    tenure = (HISTORY_START - established["registered_on"]).dt.total_days() / 365.25
    assert tenure.min() > 0 and tenure.quantile(0.1) < 2 and tenure.quantile(0.9) > 8
    assert m["owner_hash"].n_unique() < m.height  # a few owners run two shops


# ---------------------------------------------------------------- determinism


def _frames(root: Path) -> dict[str, pl.DataFrame]:
    return {t: _read(root, t) for t in (*TABLES, "truth")}


def test_same_seed_same_market_other_seed_other_market(tmp_path):
    kw = dict(merchants=300, months=8, volume_scale=0.02, start=date(2024, 1, 1))
    a = simulate_market(tmp_path / "a", seed=5, **kw)
    b = simulate_market(tmp_path / "b", seed=5, **kw)
    simulate_market(tmp_path / "c", seed=6, **kw)
    assert a["rows"] == b["rows"]
    fa, fb, fc = _frames(tmp_path / "a"), _frames(tmp_path / "b"), _frames(tmp_path / "c")
    for t in fa:
        assert fa[t].equals(fb[t]), t
    assert not fa["transactions"].equals(fc["transactions"])
    assert not fa["truth"].equals(fc["truth"])


def test_summary_and_progress(tmp_path):
    calls = []
    s = simulate_market(
        tmp_path,
        merchants=600,
        months=3,
        seed=1,
        volume_scale=0.01,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert set(s["rows"]) == {*TABLES, "truth"} and s["seconds"] > 0
    assert s["history_months"] == HISTORY_MONTHS and s["data_start"] == "2022-01-01"
    assert s["rows"]["truth"] == _expected_truth_rows(
        tmp_path, [date(2023, 1, 1), date(2023, 2, 1), date(2023, 3, 1), date(2023, 4, 1)]
    )
    assert s["entrants"] == int((_read(tmp_path, "merchants")["registered_on"] >= HISTORY_START).sum())
    assert calls[-1] == (600, 600) and [c[0] for c in calls] == sorted(c[0] for c in calls)
    for t, n in s["rows"].items():
        assert pl.scan_parquet(tmp_path / f"{t}.parquet").select(pl.len()).collect().item() == n
    assert not list(tmp_path.glob(".*partial"))


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="scenario"):
        simulate_market(tmp_path, merchants=10, months=2, seed=1, scenario="boom")
    with pytest.raises(ValueError, match="first day"):
        simulate_market(tmp_path, merchants=10, months=2, seed=1, start=date(2023, 1, 5))


# ---------------------------------------------------------------- volumes and behaviour


def test_volume_about_ten_per_merchant_day_with_sector_ordering(tmp_path):
    simulate_market(tmp_path, merchants=1500, months=2, seed=2, volume_scale=1.0, start=date(2023, 5, 1))
    days = (date(2023, 7, 1) - date(2022, 5, 1)).days  # 12 months of history and the 2 panel months
    t = _read(tmp_path, "transactions")
    m = _read(tmp_path, "merchants")
    open_days = (date(2023, 7, 1) - pl.max_horizontal(m["registered_on"], pl.lit(date(2022, 5, 1)))).dt.total_days()
    per_day = t.height / m.select(open_days.alias("d"))["d"].sum()
    assert 8.5 < per_day < 11.5, per_day
    by_sector = (
        m.join(t.group_by("merchant_id").len(), on="merchant_id", how="left")
        .group_by("sector")
        .agg((pl.col("len").fill_null(0).sum() / pl.len() / days).alias("per_day"))
    )
    rate = dict(by_sector.iter_rows())
    high = min(rate["convenience"], rate["catering"])
    low = max(rate["portrait_photography"], rate["appliance_repair"])
    assert high > 10 and low < 1.5
    assert high > max(v for k, v in rate.items() if k not in ("convenience", "catering"))
    assert low < min(v for k, v in rate.items() if k not in ("portrait_photography", "appliance_repair"))
    # thinner files: individual and rural merchants record fewer transactions
    per_m = m.join(t.group_by("merchant_id").len(), on="merchant_id", how="left").with_columns(
        pl.col("len").fill_null(0), rural=pl.col("region_code").str.slice(4, 2).cast(pl.Int32) >= 21
    )
    form = dict(per_m.group_by("business_form").agg(pl.col("len").median()).iter_rows())
    assert form["individual_business"] < form["enterprise"]
    place = dict(per_m.group_by("rural").agg(pl.col("len").median()).iter_rows())
    assert place[True] < place[False]


def test_volume_scale_thins_transactions(small_market):
    t = _read(small_market, "transactions")
    per_day = t.height / (400 * (date(2025, 7, 1) - HISTORY_START).days)
    assert 0.35 < per_day < 0.65  # about 10 x 0.05


def test_transactions_are_sorted_and_carry_customers_and_channels(small_market):
    t = _read(small_market, "transactions")
    assert t["txn_id"].is_sorted()
    keyed = t.select("merchant_id", "ts")
    assert keyed.equals(keyed.sort("merchant_id", "ts"))
    channels = dict(t.group_by("channel").agg(pl.col("customer_hash").null_count() / pl.len()).iter_rows())
    assert set(channels) == {"wechat_pay", "alipay", "unionpay_qr", "bank_card", "digital_rmb", "other"}
    assert channels["other"] == 1.0 and channels["wechat_pay"] == 0.0
    refunds = (t["txn_type"] == "refund").mean()
    assert 0.003 < refunds < 0.05
    repeat = t.drop_nulls("customer_hash").group_by("merchant_id", "customer_hash").len()
    assert (repeat["len"] > 1).mean() > 0.05  # regulars come back
    # Spring Festival: beauty salons are busy before the new year and quiet in the first lunar month
    m = _read(small_market, "merchants")
    beauty = t.join(m.filter(pl.col("sector") == "beauty_hairdressing").select("merchant_id"), on="merchant_id")
    day = beauty["ts"].dt.date()
    before = ((day >= date(2024, 1, 21)) & (day < date(2024, 2, 10))).sum()
    after = ((day >= date(2024, 2, 17)) & (day < date(2024, 3, 8))).sum()
    assert before > 1.5 * after


def test_loan_performance_paths_are_consistent(small_market):
    loans = _read(small_market, "loans")
    perf = _read(small_market, "loan_performance")
    assert perf["reported_on"].dt.month_end().equals(perf["reported_on"])
    status = perf["status"]
    dpd = perf["days_past_due"]
    assert (dpd.filter(status == "current") == 0).all() and (dpd.filter(status == "closed") == 0).all()
    assert dpd.filter(status == "delinquent").is_between(1, 89).all()
    assert (dpd.filter(status == "default") >= 90).all()
    assert (perf.filter(pl.col("status") == "closed")["outstanding_fen"] == 0).all()
    # one report per month from disbursement until closed or written off, nothing after
    per_loan = (
        perf.sort("reported_on")
        .group_by("loan_id")
        .agg(
            pl.col("reported_on").first().alias("first"),
            pl.col("reported_on").last().alias("last"),
            pl.len(),
            pl.col("status").last().alias("final"),
            (pl.col("status").is_in(["closed", "written_off"])).sum().alias("ends"),
        )
    )
    months = (
        (per_loan["last"].dt.year() - per_loan["first"].dt.year()) * 12
        + per_loan["last"].dt.month()
        - per_loan["first"].dt.month()
        + 1
    )
    assert (months == per_loan["len"]).all()
    assert (per_loan["ends"] <= 1).all()
    assert per_loan.filter(pl.col("ends") == 1)["final"].is_in(["closed", "written_off"]).all()
    # the path to default goes through 30/60-day delinquency
    seq = perf.sort("loan_id", "reported_on").with_columns(prev=pl.col("status").shift(1).over("loan_id"))
    first_default = seq.filter((pl.col("status") == "default") & (pl.col("prev") != "default"))
    assert (first_default["prev"] == "delinquent").all()
    # borrowing: a broad subset, some repeatedly, never again after a default
    m = _read(small_market, "merchants")
    per_merchant = loans.group_by("merchant_id").len()
    assert 0.3 < per_merchant.height / m.height < 0.8
    assert (per_merchant["len"] > 1).sum() > 0
    defaulted = (
        perf.filter(pl.col("status") == "default").group_by("merchant_id").agg(pl.col("reported_on").min().alias("d"))
    )
    later = loans.join(defaulted, on="merchant_id").filter(pl.col("disbursed_on") > pl.col("d"))
    assert later.height == 0


def test_health_shows_in_complaints_and_public_records(small_market):
    truth = _read(small_market, "truth").group_by("merchant_id").agg(pl.col("true_pd_12m").mean().alias("pd"))
    c = _read(small_market, "complaints")
    per = c.group_by("merchant_id").agg(pl.len().alias("n"), pl.col("resolved_at").is_null().mean().alias("unresolved"))
    j = truth.join(per, on="merchant_id", how="left").with_columns(pl.col("n").fill_null(0))
    hi = j["pd"] > j["pd"].median()
    assert j.filter(hi)["n"].mean() > 1.3 * j.filter(~hi)["n"].mean()
    assert 0.01 < c["resolved_at"].is_null().mean() < 0.5
    assert set(c["severity"].unique()) == {1, 2, 3}
    p = _read(small_market, "public_records")
    assert {"administrative_penalty", "abnormal_operation_listed"} <= set(p["record_type"])
    assert p.filter(pl.col("record_type") == "administrative_penalty")["penalty_fen"].null_count() == 0
    assert (
        p.filter(pl.col("record_type") != "administrative_penalty")["penalty_fen"].null_count()
        == p.filter(pl.col("record_type") != "administrative_penalty").height
    )


def test_truth_covers_every_panel_as_of(small_market):
    """One row per merchant and panel as_of (2023-01-01 .. 2025-07-01, the latest snapshot's as_of
    included) for every merchant registered before it; none before."""
    truth = _read(small_market, "truth")
    assert truth.schema == pl.Schema({"merchant_id": pl.String, "as_of": pl.Date, "true_pd_12m": pl.Float64})
    assert sorted(truth["as_of"].unique()) == PANEL_AS_OF
    last_day = _read(small_market, "transactions")["ts"].dt.date().max()
    assert PANEL_AS_OF[-1] == date(last_day.year + last_day.month // 12, last_day.month % 12 + 1, 1)
    assert truth.height == _expected_truth_rows(small_market, PANEL_AS_OF)
    registered = truth.join(_read(small_market, "merchants").select("merchant_id", "registered_on"), on="merchant_id")
    assert (registered["registered_on"] < registered["as_of"]).all()
    assert truth["true_pd_12m"].is_between(0, 1).all()
    assert truth.select(pl.struct("merchant_id", "as_of").n_unique()).item() == truth.height


def test_truth_at_the_latest_as_of_uses_the_state_after_the_last_month(small_market):
    """A loan in default at the last month-end has PD 1 at the latest as_of; the truth moves between
    the last two as_of dates (it is not a copy of the previous month)."""
    truth = _read(small_market, "truth")
    perf = _read(small_market, "loan_performance")
    last = perf.filter(pl.col("reported_on") == date(2025, 6, 30))
    in_default = last.filter(pl.col("status") == "default")["merchant_id"].unique()
    latest = truth.filter(pl.col("as_of") == PANEL_AS_OF[-1])
    assert in_default.len() > 0
    assert (latest.filter(pl.col("merchant_id").is_in(in_default.implode()))["true_pd_12m"] == 1.0).all()
    before = truth.filter(pl.col("as_of") == PANEL_AS_OF[-2]).join(latest, on="merchant_id")
    assert (before["true_pd_12m"] != before["true_pd_12m_right"]).mean() > 0.9


# ---------------------------------------------------------------- history and entrants


def _event_days(root: Path) -> dict[str, pl.DataFrame]:
    """merchant_id and the day of every event of each table."""
    days = {
        "transactions": pl.col("ts").dt.date(),
        "complaints": pl.col("received_at").dt.date(),
        "loans": pl.col("disbursed_on"),
        "loan_performance": pl.col("reported_on"),
        "public_records": pl.col("published_on"),
    }
    return {t: _read(root, t).select("merchant_id", e.alias("day")) for t, e in days.items()}


def test_a_year_of_history_precedes_the_panel(small_market):
    """Every table's activity starts on the first day of the history (2022-01-01), never before it;
    the only older dates are the disbursement days of loans already open then (reported from the
    first history month on)."""
    events = _event_days(small_market)
    for table in ("transactions", "complaints", "loan_performance", "public_records"):
        first = events[table]["day"].min()
        assert first >= HISTORY_START, table
        assert (first - HISTORY_START).days < 31, table
    assert events["transactions"]["day"].min() == HISTORY_START
    assert events["transactions"]["day"].max() == date(2025, 6, 30)
    perf = _read(small_market, "loan_performance")
    older = _read(small_market, "loans").filter(pl.col("disbursed_on") < HISTORY_START)["loan_id"]
    assert older.len() > 0
    opening = perf.filter(pl.col("reported_on") == date(2022, 1, 31))["loan_id"]
    assert older.is_in(opening.implode()).all()


def test_no_event_before_a_merchants_registration(small_market):
    m = _read(small_market, "merchants").select("merchant_id", "registered_on")
    for table, ev in _event_days(small_market).items():
        early = ev.join(m, on="merchant_id").filter(pl.col("day") < pl.col("registered_on"))
        assert early.height == 0, (table, early.head())


def test_entrants_open_during_the_history_and_the_panel(small_market):
    """About 3.5 % of the market a year registers inside the data span; they trade from their
    registration, start with worse health (a higher true PD) and borrow only after three months."""
    m = _read(small_market, "merchants")
    entrants = m.filter(pl.col("registered_on") >= HISTORY_START)
    years = (date(2025, 7, 1) - HISTORY_START).days / 365.25
    assert 0.015 < entrants.height / m.height / years < 0.06, entrants.height
    assert entrants["registered_on"].min() < date(2023, 1, 1) <= entrants["registered_on"].max()
    t = _read(small_market, "transactions").select("merchant_id", pl.col("ts").dt.date().alias("day"))
    first = t.group_by("merchant_id").agg(pl.col("day").min()).join(entrants, on="merchant_id")
    assert first.height > 0.8 * entrants.filter(pl.col("registered_on") < date(2025, 6, 1)).height
    assert ((first["day"] - first["registered_on"]).dt.total_days() < 45).mean() > 0.8  # they start trading at once
    loans = _read(small_market, "loans").join(entrants, on="merchant_id")
    if loans.height:
        gap = (loans["disbursed_on"].dt.year() - loans["registered_on"].dt.year()) * 12 + (
            loans["disbursed_on"].dt.month() - loans["registered_on"].dt.month()
        )
        assert (gap >= 3).all()


def test_entrants_start_less_healthy(tmp_path):
    """An entrant's true PD at its first as_of (its health in the registration month) is well above
    the established merchants' (medians: the established include loans in default)."""
    simulate_market(tmp_path, merchants=4000, months=12, seed=21, volume_scale=0.001)
    m = _read(tmp_path, "merchants").select("merchant_id", "registered_on")
    truth = _read(tmp_path, "truth").join(m, on="merchant_id")
    new = (
        truth.filter(pl.col("registered_on") >= HISTORY_START)
        .group_by("merchant_id")
        .agg(pl.col("true_pd_12m").sort_by("as_of").first())
    )
    assert new.height > 150
    assert (
        new["true_pd_12m"].median()
        > 1.3 * truth.filter(pl.col("registered_on") < HISTORY_START)["true_pd_12m"].median()
    )


def test_the_first_panel_as_of_has_full_year_windows(small_market, validated_market):
    """The monthly panel starts where 12 months of data exist: its as_of dates are the truth's, the
    first one's 365-day windows lie inside the data and are as full as a year later's, and
    ``sales_history_days`` reads 365 for established merchants, less only for entrants."""
    from features import RawTables, compute_features, monthly_as_of
    from features.spine import data_date_range

    tables = RawTables.scan(validated_market)
    first_day, last_day = data_date_range(tables)
    assert monthly_as_of(first_day, last_day) == PANEL_AS_OF
    assert (PANEL_AS_OF[0] - first_day).days >= 365
    feats = compute_features(tables, [PANEL_AS_OF[0], PANEL_AS_OF[12]])
    m = _read(small_market, "merchants").select("merchant_id", "registered_on")
    feats = feats.join(m, on="merchant_id")
    f = feats.filter(pl.col("as_of") == PANEL_AS_OF[0])
    old = pl.col("registered_on") < HISTORY_START
    year_later = feats.filter((pl.col("as_of") == PANEL_AS_OF[12]) & old)["active_days_365d"].mean()
    assert f.filter(old)["active_days_365d"].mean() > 0.85 * year_later
    assert f["active_days_365d"].max() > 330
    assert feats["sales_history_days"].max() == 365
    # established merchants read (about) the full year at the first as_of, exactly 365 later on
    assert f.filter(old)["sales_history_days"].median() >= 355
    established = feats.filter((pl.col("as_of") == PANEL_AS_OF[12]) & old)
    assert (established["sales_history_days"].drop_nulls() == 365).mean() > 0.95
    young = f.filter(pl.col("registered_on") >= HISTORY_START)
    assert young.height > 0 and (young["sales_history_days"].drop_nulls() < 365).all()


# ---------------------------------------------------------------- defects


def test_clean_market_has_no_defects(small_market):
    t = _read(small_market, "transactions")
    assert (t["amount_fen"] > 0).all() and t["txn_id"].n_unique() == t.height
    m = _read(small_market, "merchants")
    assert m["merchant_id"].n_unique() == m.height


def test_defect_rate_corrupts_every_table_in_realistic_ways(tmp_path):
    s = simulate_market(tmp_path, merchants=1200, months=24, seed=5, volume_scale=0.01, defect_rate=0.03)
    d = s["defects"]
    for table in TABLES:
        assert sum(d[table].values()) > 0, table
        assert d[table]["duplicate_key"] > 0, table
    m = _read(tmp_path, "merchants")
    assert m["merchant_id"].is_duplicated().any()
    assert not all(is_valid(c) for c in m["credit_code"])
    t = _read(tmp_path, "transactions")
    assert t.schema["ts"] == pl.String
    assert (t["amount_fen"] < 0).any() and (t["amount_fen"] == 0).any()
    assert t["merchant_id"].str.starts_with("M9").any()
    assert t["txn_id"].is_duplicated().any()
    good = t["ts"].str.contains(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+08:00$")
    assert 0.9 < good.mean() < 1.0
    zoneless = t["ts"].str.contains(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
    assert zoneless.any() and (~good & ~zoneless).any()
    c = _read(tmp_path, "complaints")
    assert c.schema["received_at"] == pl.String and c.schema["resolved_at"] == pl.String
    iso = "%Y-%m-%dT%H:%M:%S%:z"
    rec = c["received_at"].str.to_datetime(iso, strict=False)
    res = c["resolved_at"].str.to_datetime(iso, strict=False)
    assert (res < rec).any()
    p = _read(tmp_path, "public_records")
    assert (p["removed_on"] < p["published_on"]).any()
    for table in ("loans", "loan_performance", "public_records"):
        assert _read(tmp_path, table)["merchant_id"].str.starts_with("M9").any() or d[table]["unknown_merchant"] == 0
    total = sum(s["rows"][t] for t in TABLES)
    faulty = sum(sum(v.values()) for v in d.values())
    assert 0.015 < faulty / total < 0.045


def test_public_records_end_through_repair_removal_or_publicity(calibration_market):
    """One row per record; a listing's removed_on is its removal, a penalty's the end of its publicity."""
    r = _read(calibration_market, "public_records")
    assert not r["record_type"].str.ends_with("_removed").any()  # a removal is a date, not a row
    gone = r.filter(pl.col("removed_on").is_not_null())
    assert (gone["removed_on"] > gone["published_on"]).all()
    end = _read(calibration_market, "transactions")["ts"].max().date()
    assert (gone["removed_on"] <= end).all()  # nothing known beyond the data window
    days = (gone["removed_on"] - gone["published_on"]).dt.total_days()
    pen = gone["record_type"] == "administrative_penalty"
    assert set(days.filter(pen).unique().to_list()) <= {3 * 365, *range(365, 485)}  # repaired after ~1 year, else 3
    assert days.filter(pen).is_between(365, 485).any() and (days.filter(pen) == 3 * 365).any()
    listings = r.filter(pl.col("record_type") == "abnormal_operation_listed")
    assert 0.05 < listings["removed_on"].is_not_null().mean() < 0.95  # some come off the list, some stay


# ---------------------------------------------------------------- statistics of defaults and truth


@pytest.fixture(scope="module")
def calibration_market(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("calibration")
    simulate_market(out, merchants=8000, months=48, seed=3, volume_scale=0.001)
    return out


@pytest.fixture(scope="module")
def calibration_outcomes(calibration_market) -> pl.DataFrame:
    return realised_outcomes(calibration_market)


def realised_outcomes(root: Path) -> pl.DataFrame:
    """Spine rows (borrowers and applicants at ``as_of``, not in default) with a fully observed 12-month window.

    ``bad``: any report with status default or written_off on a month-end in [as_of, as_of + 12 months).
    """
    loans = _read(root, "loans")
    perf = _read(root, "loan_performance")
    truth = _read(root, "truth")
    as_of = truth.select("as_of").unique()
    last = (
        perf.join(as_of, how="cross")
        .filter(pl.col("reported_on") < pl.col("as_of"))
        .group_by("loan_id", "as_of")
        .agg(pl.col("status").sort_by("reported_on").last())
    )
    state = (
        loans.join(as_of, how="cross")
        .join(last, on=["loan_id", "as_of"], how="left")
        .with_columns(
            held=(pl.col("disbursed_on") < pl.col("as_of"))
            & pl.col("status").fill_null("current").is_in(["current", "delinquent"]),
            applying=(pl.col("disbursed_on") >= pl.col("as_of"))
            & (pl.col("disbursed_on") < pl.col("as_of").dt.offset_by("1mo")),
            in_default=pl.col("status").is_in(["default", "written_off"]).fill_null(False),
        )
    )
    spine = (
        state.group_by("merchant_id", "as_of")
        .agg(pl.col("held").any(), pl.col("applying").any(), pl.col("in_default").any())
        .filter((pl.col("held") | pl.col("applying")) & ~pl.col("in_default"))
    )
    events = perf.filter(pl.col("status").is_in(["default", "written_off"])).select("merchant_id", "reported_on")
    bad = (
        spine.join(events, on="merchant_id", how="left")
        .with_columns(
            hit=(pl.col("reported_on") >= pl.col("as_of"))
            & (pl.col("reported_on") < pl.col("as_of").dt.offset_by("12mo"))
        )
        .group_by("merchant_id", "as_of")
        .agg(pl.col("hit").fill_null(False).any().alias("bad"))
    )
    observed = perf["reported_on"].max()
    return (
        bad.join(truth, on=["merchant_id", "as_of"])
        .filter(pl.col("as_of").dt.offset_by("12mo") - pl.duration(days=1) <= observed)
        .join(_read(root, "merchants").select("merchant_id", "sector"), on="merchant_id")
    )


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    ranks[order] = np.arange(1, len(score) + 1)
    # average ranks of ties
    _, inv, counts = np.unique(score, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    ranks = (sums / counts)[inv]
    pos = y.sum()
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * (len(y) - pos)))


@pytest.mark.slow
def test_default_rate_sector_spread_calibration_and_auc(calibration_outcomes):
    df = calibration_outcomes
    y = df["bad"].to_numpy()
    pd_true = df["true_pd_12m"].to_numpy()
    assert df.height > 50_000
    # overall 12-month default rate of loan holders, and its spread across sectors
    rate = y.mean()
    assert 0.02 <= rate <= 0.08, rate
    by_sector = df.group_by("sector").agg(pl.col("bad").mean().alias("rate"), pl.col("bad").sum().alias("k"), pl.len())
    r, n, k = (by_sector[c].to_numpy() for c in ("rate", "len", "k"))
    expected = n * rate
    heterogeneity = ((k - expected) ** 2 / (expected * (1 - rate))).sum()
    assert heterogeneity > chi2.ppf(0.999, len(r) - 1), by_sector  # sectors differ
    assert r.max() / r.min() > 1.5
    # discrimination of the truth: as strong as the best real credit models, no stronger
    auc = _auc(y, pd_true)
    assert 0.78 <= auc <= 0.90, auc


@pytest.mark.slow
def test_truth_is_calibrated_across_deciles(calibration_outcomes):
    """Realised default rate per decile of ``true_pd_12m`` matches its mean within binomial error.

    Each merchant contributes only windows twelve months apart (offset by its number), so its
    rows do not overlap: given the state at each ``as_of`` their errors are uncorrelated and the
    binomial variance sum p(1-p) is exact. Per-decile |z| < 3.3 and the sum of z^2 below the
    chi-square(10) 0.999 quantile.
    """
    df = calibration_outcomes.with_columns(
        offset=pl.col("merchant_id").str.slice(1).cast(pl.Int64) % 12,
        month=(pl.col("as_of").dt.year() - 2023) * 12 + pl.col("as_of").dt.month() - 1,
    ).filter((pl.col("month") - pl.col("offset")) % 12 == 0)
    y = df["bad"].to_numpy().astype(float)
    p = df["true_pd_12m"].to_numpy()
    assert y.sum() > 300
    edges = np.quantile(p, np.linspace(0, 1, 11))
    dec = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, 9)
    z = np.array(
        [(y[dec == b] - p[dec == b]).sum() / np.sqrt((p[dec == b] * (1 - p[dec == b])).sum()) for b in range(10)]
    )
    assert np.all(np.abs(z) < 3.3), z
    assert (z**2).sum() < chi2.ppf(0.999, 10), z
    # calibrated in the large too, and monotone: the top decile defaults far more than the bottom
    assert abs(y.mean() - p.mean()) < 3 * np.sqrt((p * (1 - p)).sum()) / len(p)
    assert y[dec == 9].mean() > 10 * max(y[dec == 0].mean(), 1e-3)


@pytest.mark.slow
def test_downturn_raises_defaults_beyond_what_truth_foresaw(tmp_path):
    kw = dict(merchants=2500, months=30, seed=8, volume_scale=0.001)
    simulate_market(tmp_path / "base", **kw)
    simulate_market(tmp_path / "down", scenario="downturn", **kw)
    base, down = realised_outcomes(tmp_path / "base"), realised_outcomes(tmp_path / "down")
    assert down["bad"].mean() > 1.3 * base["bad"].mean()
    # the broad shock is a surprise: realised defaults run above the truth that preceded it
    assert down["bad"].mean() > down["true_pd_12m"].mean()
    assert abs(base["bad"].mean() - base["true_pd_12m"].mean()) < 0.2 * base["true_pd_12m"].mean()
