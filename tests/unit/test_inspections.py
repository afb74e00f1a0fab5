"""Inspection plans, results and the finding rate on synthetic frames (regulator.inspections, simulation.inspections).

The plan: the same seed and policy give the same bytes, another seed another sample, every class x province
stratum draws round(ratio x eligible) (within one merchant of the policy), exclusions are honoured, and the
sample can be redrawn from the published method with nothing but SHA-256 (一公开). Results: the contract and
the store checks quarantine bad rows with every reason, nothing is lost, re-recording appends nothing.
"""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from pydantic import ValidationError

from core.settings import get_settings
from core.vocabulary import CLASSES
from regulator import inspections as ins
from simulation.inspections import finding_probabilities, simulate_findings

PROVINCES = ("11", "33", "44", "51", None)


def month_frame(n: int = 6000, month: str = "2025-07", seed: int = 3) -> pl.DataFrame:
    """A class-history month of ``n`` merchants spread over the classes and five provinces (one unknown)."""
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "merchant_id": [f"M{i:08d}" for i in range(1, n + 1)],
            "month": month,
            "as_of": date(int(month[:4]), int(month[5:]), 1),
            "class": rng.choice(CLASSES, n, p=[0.3, 0.25, 0.3, 0.15]).tolist(),
            "province": rng.choice(np.array(PROVINCES, dtype=object), n).tolist(),
            "sector": "catering",
            "city": None,
            "model_name": "lifecredit-merchant-pd",
            "model_version": "3",
        },
        schema_overrides={"city": pl.String, "province": pl.String},
    )


def policy(tmp_path: Path, **changes) -> ins.InspectionPolicy:
    data = yaml.safe_load(ins.POLICY_FILE.read_text(encoding="utf-8")) | changes
    path = tmp_path / f"policy-{len(changes)}-{hashlib.sha256(repr(changes).encode()).hexdigest()[:6]}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return ins.load_policy(path)


def test_shipped_policy_rises_from_a_to_d_says_it_is_local_and_is_hashed():
    p = ins.load_policy()
    ratios = [p.ratios[c] for c in CLASSES]
    assert ratios == sorted(ratios) and ratios[0] < ratios[-1]
    assert "地方可根据实际设定" in ins.POLICY_FILE.read_text(encoding="utf-8")
    assert p.sha256 == hashlib.sha256(ins.POLICY_FILE.read_bytes()).hexdigest()
    assert p.exclusions.inspected_within_months == 12 and p.exclusions.closed.no_sale_days == 90


@pytest.mark.parametrize(
    "change, words",
    [
        ({"ratio": {"A": 0.1}}, "ratio"),  # a typo: unknown key
        ({"ratios": {"A": 0.1, "B": 0.1, "C": 0.1}}, "missing D"),
        ({"ratios": {"A": 0.1, "B": 0.1, "C": 0.1, "D": 1.5}}, "between 0 and 1"),
        ({"exclusions": {"inspected_within_months": 12, "closd": {}}}, "closd"),
    ],
)
def test_a_policy_with_a_wrong_key_or_value_is_refused(tmp_path, change, words):
    with pytest.raises(ValidationError, match=words):
        policy(tmp_path, **change)


@pytest.mark.parametrize(
    "ratio, eligible, n", [(0.005, 100, 1), (0.005, 99, 0), (0.05, 30, 2), (0.15, 10, 2), (0.02, 25, 1), (1.0, 7, 7)]
)
def test_sample_size_rounds_half_up_in_decimals(ratio, eligible, n):
    assert ins.sample_size(ratio, eligible) == n


def test_the_same_seed_and_policy_give_the_same_bytes_and_another_seed_another_sample():
    frame, p = month_frame(), ins.load_policy()
    one = ins.plan_bytes(ins.draw_plan(frame, p, 42, closed=["M00000002"]))
    two = ins.plan_bytes(ins.draw_plan(frame.sample(fraction=1.0, shuffle=True, seed=1), p, 42, closed=["M00000002"]))
    assert one == two  # row order of the history does not matter
    other = ins.draw_plan(frame, p, 43, closed=["M00000002"])
    mine = ins.draw_plan(frame, p, 42, closed=["M00000002"])
    assert {m["merchant_id"] for m in other["merchants"]} != {m["merchant_id"] for m in mine["merchants"]}
    assert other["plan_id"] != mine["plan_id"] and other["drawn"] == mine["drawn"]
    assert b"T" not in one.split(b'"as_of"')[1][:20]  # no timestamp: as_of is a date
    assert one.endswith(b"\n") and one == ins.plan_bytes(mine)


def test_every_stratum_draws_within_one_merchant_of_the_policy_ratio():
    frame, p = month_frame(), ins.load_policy()
    plan = ins.draw_plan(frame, p, 7)
    assert len(plan["strata"]) == len(CLASSES) * len(PROVINCES)
    drawn = pl.DataFrame(plan["merchants"])
    for s in plan["strata"]:
        assert abs(s["drawn"] - p.ratios[s["class"]] * s["eligible"]) <= 0.5
        got = drawn.filter((pl.col("class") == s["class"]) & (pl.col("province") == s["province"])).height
        assert got == s["drawn"]
    assert {s["province"] for s in plan["strata"]} == {"11", "33", "44", "51", "unknown"}
    assert plan["drawn"] == drawn.height == sum(s["drawn"] for s in plan["strata"])


def test_anyone_can_redraw_the_plan_from_the_published_method():
    """一公开: from the plan's seed, month, strata ratios and population, SHA-256 alone gives the same merchants."""
    frame = month_frame(2000)
    plan = ins.draw_plan(frame, ins.load_policy(), 2025, recently_inspected=["M00000010"], closed=["M00000011"])
    excluded = set(plan["excluded"]["recently_inspected"]) | set(plan["excluded"]["closed"])
    redrawn = set()
    for (klass, _province), part in frame.with_columns(pl.col("province").fill_null("unknown")).group_by(
        "class", "province"
    ):
        ids = sorted(
            (m for m in part["merchant_id"] if m not in excluded),
            key=lambda m: hashlib.sha256(f"{plan['seed']}:{plan['month']}:{m}".encode()).hexdigest(),
        )
        ratio = plan["policy"]["ratios"][klass]
        n = int(ratio * len(ids) + 0.5 + 1e-9)
        redrawn |= set(ids[:n])
    assert redrawn == {m["merchant_id"] for m in plan["merchants"]}
    eligible = sorted(set(frame["merchant_id"]) - excluded)
    assert hashlib.sha256("\n".join(eligible).encode()).hexdigest() == plan["population"]["eligible_sha256"]


def test_exclusions_are_honoured_and_listed():
    frame, p = month_frame(3000), ins.load_policy()
    full = ins.draw_plan(frame, p, 1)
    drawn_before = [m["merchant_id"] for m in full["merchants"]]
    recent, closed = set(drawn_before[:10]), set(drawn_before[10:20]) | {drawn_before[0]}
    plan = ins.draw_plan(frame, p, 1, recently_inspected=recent, closed=closed)
    chosen = {m["merchant_id"] for m in plan["merchants"]}
    assert not chosen & (recent | closed)
    assert set(plan["excluded"]["recently_inspected"]) == recent
    assert set(plan["excluded"]["closed"]) == closed - recent  # listed once, as recently inspected
    assert sum(s["excluded_recently_inspected"] + s["excluded_closed"] for s in plan["strata"]) == 20
    assert plan["population"]["eligible"] == frame.height - 20


def test_exclusion_windows_read_results_before_as_of_and_sales_in_the_last_90_days(tmp_path):
    p = ins.load_policy()
    as_of = date(2025, 7, 1)
    results = pl.DataFrame(
        {
            "merchant_id": ["M00000001", "M00000002", "M00000003"],
            "inspected_on": [date(2024, 7, 1), date(2024, 6, 30), date(2025, 7, 1)],
        }
    )
    validated = tmp_path / "validated"
    validated.mkdir()
    pl.DataFrame(
        {
            "merchant_id": ["M00000001", "M00000002", "M00000003", "M00000004"],
            "registered_on": [date(2020, 1, 1), date(2020, 1, 1), date(2025, 5, 1), date(2020, 1, 1)],
        }
    ).write_parquet(validated / "merchants.parquet")
    ts = pl.Datetime("us", "Asia/Shanghai")
    pl.DataFrame(
        {
            "merchant_id": ["M00000001", "M00000004", "M00000002"],
            "ts": ["2025-06-30 23:00:00", "2025-04-01 12:00:00", "2025-04-02 00:00:00"],
            "txn_type": ["sale", "sale", "refund"],
        }
    ).with_columns(pl.col("ts").str.to_datetime().dt.replace_time_zone("Asia/Shanghai").cast(ts)).write_parquet(
        validated / "transactions.parquet"
    )
    recent, closed = ins.exclusions_for(p, as_of, results, validated)
    assert recent == {"M00000001"}  # 12 months: from 2024-07-01, before 2025-07-01
    # M2: a refund is not a sale; M3: registered 61 days before, starting up; M4: last sale the day before the window
    assert closed == {"M00000002", "M00000004"}


# ---------------------------------------------------------------- results


@pytest.fixture
def stores(tmp_path):
    """Settings of this test with a validated merchants table of M00000001..M00000050 and one stored plan."""
    settings = get_settings()
    validated = settings.validated_dir
    validated.mkdir(parents=True)
    pl.DataFrame({"merchant_id": [f"M{i:08d}" for i in range(1, 51)]}).write_parquet(validated / "merchants.parquet")
    plan = ins.draw_plan(month_frame(50), policy(tmp_path, ratios={c: 0.5 for c in CLASSES}), 9)
    ins.store_plan(settings, plan)
    return settings, plan


def _csv(path: Path, rows: list[str], header: str = "merchant_id,inspected_on,finding,plan_id,inspector") -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_bad_rows_are_quarantined_with_every_reason_and_nothing_is_lost(stores, tmp_path):
    settings, plan = stores
    drawn = [m["merchant_id"] for m in plan["merchants"]]
    not_drawn = next(f"M{i:08d}" for i in range(1, 51) if f"M{i:08d}" not in drawn)
    pid = plan["plan_id"]
    file = _csv(
        tmp_path / "results.csv",
        [
            f"{drawn[0]},2025-07-03,none,{pid},team-01",  # fine
            f"{drawn[1]},2025-07-04,serious,,",  # fine, no plan
            "M00000003,2025-07-05,terrible,,",  # unknown finding
            "M00000004,2099-01-01,minor,,",  # in the future
            "M09999999,2025-07-05,minor,,",  # unknown merchant
            "M00000005,2025-02-30,none,,",  # no such day
            f"{drawn[0]},2025-07-03,minor,,",  # the same inspection twice in the file
            f"{not_drawn},2025-07-06,none,{pid},",  # the plan did not draw it
            "M00000006,2025-07-06,none,IP-2025-07-000000000000,",  # no such plan
            "M00000007,2099-01-01,awful,IP-2025-07-000000000000,",  # three reasons at once
        ],
    )
    out = ins.record_results(settings, file, today=date(2026, 1, 1))
    assert (out["rows_in"], out["valid"], out["rejected"]) == (10, 2, 8)
    q = pl.read_parquet(out["quarantine"])
    reasons = dict(zip(q["csv_line"].to_list(), q["rejection_reasons"].to_list()))
    assert reasons == {
        4: ["finding:allowed_values"],
        5: ["inspected_on:not_in_future"],
        6: ["merchant_id:foreign_key"],
        7: ["inspected_on:type"],
        8: ["merchant_id+inspected_on:primary_key_unique"],
        9: ["plan_id:merchant_in_plan"],
        10: ["plan_id:known_plan"],
        11: ["finding:allowed_values", "inspected_on:not_in_future", "plan_id:known_plan"],
    }
    assert q["finding"].to_list()[0] == "terrible"  # raw values kept as received
    stored = ins.read_results(settings)
    assert stored.select("merchant_id", "finding").rows() == [(drawn[0], "none"), (drawn[1], "serious")]
    assert stored["source_sha256"].unique().to_list() == [out["sha256"]]

    again = ins.record_results(settings, file, today=date(2026, 1, 1))
    assert again["already_recorded"] and again["valid"] == 0 and ins.read_results(settings).height == 2
    later = _csv(tmp_path / "later.csv", [f"{drawn[1]},2025-07-04,minor,,", "M00000020,2025-07-09,minor,,"])
    out = ins.record_results(settings, later, today=date(2026, 1, 1))
    assert (out["valid"], out["rejected_by_rule"]) == (1, {"merchant_id+inspected_on:already_recorded": 1})
    assert ins.read_results(settings).height == 3


def test_optional_columns_may_be_left_out_and_a_missing_column_names_the_file(stores, tmp_path):
    from data_contracts import TableError

    settings, _ = stores
    short = _csv(tmp_path / "short.csv", ["M00000001,2025-07-03,none"], header="merchant_id,inspected_on,finding")
    assert ins.record_results(settings, short, today=date(2026, 1, 1))["valid"] == 1
    broken = _csv(tmp_path / "broken.csv", ["M00000002,2025-07-03"], header="merchant_id,inspected_on")
    with pytest.raises(TableError, match="broken.csv: column finding"):
        ins.record_results(settings, broken)


# ---------------------------------------------------------------- finding rate


def test_finding_rates_per_class_with_intervals_and_small_cells_suppressed():
    history = pl.DataFrame(
        {
            "merchant_id": [f"M{i:08d}" for i in range(200)],
            "month": "2025-07",
            "class": ["A"] * 80 + ["B"] * 40 + ["C"] * 40 + ["D"] * 40,
        }
    )
    findings = ["none"] * 68 + ["minor"] * 12 + ["none"] * 40 + ["none"] * 30 + ["minor"] * 10
    findings += ["none"] * 10 + ["minor"] * 15 + ["serious"] * 15
    results = pl.DataFrame(
        {
            "merchant_id": [f"M{i:08d}" for i in range(200)],
            "inspected_on": [date(2025, 7, 10)] * 200,
            "finding": findings,
        }
    )
    view = ins.finding_rates(history, results, k=10)
    rows = {r["key"]: r for r in view["rows"]}
    assert view["suppressed_cells"] == 0 and view["total"]["inspections"]["count"] == 200
    assert rows["D"]["any_finding"]["count"] == 30 and rows["D"]["any_finding"]["rate"] == 0.75
    assert rows["D"]["serious"]["interval"]["low"] > 0.2 and rows["A"]["serious"]["interval"]["low"] == 0.0
    assert rows["C"]["any_finding"]["rate"] == 0.25 and rows["B"]["any_finding"]["rate"] == 0.0
    assert rows["A"]["minor"]["share"] == 0.15
    assert rows["A"]["any_finding"]["interval"]["high"] < rows["D"]["any_finding"]["interval"]["low"]

    # one inspection of a merchant the history does not classify that month: a small cell, hidden with its complements
    stray = pl.DataFrame({"merchant_id": ["M99999999"], "inspected_on": [date(2025, 7, 11)], "finding": ["minor"]})
    view = ins.finding_rates(history, pl.concat([results, stray]), k=10)
    rows = {r["key"]: r for r in view["rows"]}
    assert rows["unclassified"]["inspections"]["suppressed"] and rows["unclassified"]["any_finding"]["count"] is None
    assert view["suppressed_cells"] >= 4 and view["total"]["inspections"]["count"] == 201
    empty = ins.finding_rates(history, results.clear(), k=10)
    assert empty["total"]["inspections"]["count"] == 0 and empty["months_with_inspections"] == []
    with pytest.raises(ins.ViewError):
        ins.finding_rates(history, results, k=10, from_month="2025-08", to_month="2025-07")


# ---------------------------------------------------------------- simulated findings


def test_simulated_findings_rise_with_the_true_pd_and_repeat_with_the_seed():
    p_any, p_serious = finding_probabilities(np.array([0.005, 0.02, 0.1, 0.3, 1.0]))
    assert (np.diff(p_any) > 0).all() and (np.diff(p_serious) > 0).all()
    frame = month_frame(400)
    plan = ins.draw_plan(frame, ins.load_policy().model_copy(update={"ratios": {c: 1.0 for c in CLASSES}}), 5)
    truth = frame.select("merchant_id", "as_of", true_pd_12m=pl.Series(np.linspace(0.001, 0.6, frame.height)))
    one, two = simulate_findings(plan, truth), simulate_findings(plan, truth)
    assert one.equals(two) and one.height == 400 and not one.equals(simulate_findings(plan, truth, seed=99))
    assert one["inspected_on"].dt.month().unique().to_list() == [7] and one["plan_id"].unique().to_list() == [
        plan["plan_id"]
    ]
    low, high = one.head(100), one.tail(100)
    assert (low["finding"] != "none").mean() < (high["finding"] != "none").mean()
    with pytest.raises(ValueError, match="no true PD"):
        simulate_findings(plan, truth.head(10))
