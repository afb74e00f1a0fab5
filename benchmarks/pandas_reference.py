"""pandas reference for the features benchmark: the sales, refund and customer features with the
same algorithm as ``features`` (merchant-day rollup, running totals read at as_of - w; customer
rollup per segment, distinct/repeat by difference arrays, concentration by explicit windows).

Benchmark only; not part of the package. It must give the same numbers as the Polars pipeline
(the benchmark checks a sample).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from features.customers import CONCENTRATION_WINDOW, COUNT_WINDOWS, segment_bounds

OFFSETS = (0, 30, 90, 180, 365)
SUMS = ("sale_amt", "sale_cnt", "refund_amt", "refund_cnt", "active", "net")
_UTC8_US = 8 * 3600 * 1_000_000
_DAY_US = 86_400 * 1_000_000


def _days(d: list[date]) -> np.ndarray:
    return np.array(d, dtype="datetime64[D]").astype(np.int64)


def load(raw: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    cols = ["merchant_id", "ts", "txn_type", "amount_fen", "customer_hash"]
    txn = pd.read_parquet(raw / "transactions.parquet", columns=cols)
    merchants = pd.read_parquet(raw / "merchants.parquet", columns=["merchant_id", "registered_on"])
    return txn, merchants


def reference_features(txn: pd.DataFrame, merchants: pd.DataFrame, as_of: list[date]) -> pd.DataFrame:
    as_of = sorted(set(as_of))
    a_days = _days(as_of)
    us = (
        txn["ts"].astype("int64").to_numpy()
        if txn["ts"].dt.unit == "us"
        else txn["ts"].dt.as_unit("us").astype("int64").to_numpy()
    )
    day = (us + _UTC8_US) // _DAY_US
    sale = (txn["txn_type"] == "sale").to_numpy()
    amt = txn["amount_fen"].to_numpy()
    mkey = txn["merchant_id"].str.slice(1).astype("int64").to_numpy()

    # merchant-day rollup and running totals
    df = pd.DataFrame(
        {
            "mkey": mkey,
            "day": day,
            "sale_amt": np.where(sale, amt, 0),
            "sale_cnt": sale.astype(np.int64),
            "refund_amt": np.where(sale, 0, amt),
            "refund_cnt": (~sale).astype(np.int64),
        }
    )
    daily = df.groupby(["mkey", "day"], sort=True).sum().reset_index()
    daily["active"] = (daily["sale_cnt"] > 0).astype(np.int64)
    daily["net"] = daily["sale_amt"] - daily["refund_amt"]
    cum = daily.groupby("mkey")[list(SUMS)].cumsum()
    cum.insert(0, "day", daily["day"])
    cum.insert(0, "mkey", daily["mkey"])

    reg = pd.to_datetime(merchants["registered_on"]).to_numpy().astype("datetime64[D]").astype(np.int64)
    pop = pd.DataFrame(
        {
            "mkey": np.repeat(merchants["merchant_id"].str.slice(1).astype("int64").to_numpy(), len(as_of)),
            "as_of": np.tile(a_days, len(merchants)),
            "reg": np.repeat(reg, len(as_of)),
        }
    )
    pop = pop[pop["reg"] < pop["as_of"]].drop(columns="reg").sort_values(["mkey", "as_of"]).reset_index(drop=True)

    cum_sorted = cum.sort_values("day")
    read = {}
    for o in OFFSETS:
        q = pd.DataFrame({"mkey": pop["mkey"], "t": pop["as_of"] - o - 1, "i": np.arange(len(pop))}).sort_values("t")
        r = pd.merge_asof(q, cum_sorted, left_on="t", right_on="day", by="mkey", direction="backward")
        r = r.sort_values("i")
        for c in SUMS:
            read[(c, o)] = r[c].fillna(0).to_numpy()
    out = pd.DataFrame({"mkey": pop["mkey"].to_numpy(), "as_of": pop["as_of"].to_numpy()})

    def win(c: str, w: int) -> np.ndarray:
        return read[(c, 0)] - read[(c, w)]

    def ratio(n: np.ndarray, d: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(d > 0, n / np.where(d > 0, d, 1), np.nan)

    for w in (30, 90, 180, 365):
        out[f"sales_gross_yuan_{w}d"] = win("sale_amt", w) / 100.0
        out[f"sales_net_yuan_{w}d"] = win("net", w) / 100.0
        out[f"sale_count_{w}d"] = win("sale_cnt", w)
        out[f"active_days_{w}d"] = win("active", w)
    for w in (30, 90, 365):
        out[f"avg_ticket_yuan_{w}d"] = ratio(win("sale_amt", w) / 100.0, win("sale_cnt", w))
        out[f"refund_rate_count_{w}d"] = ratio(win("refund_cnt", w), win("sale_cnt", w))
        out[f"refund_rate_amount_{w}d"] = ratio(win("refund_amt", w), win("sale_amt", w))

    # customers: rollup per merchant x customer x segment
    bounds = _days(segment_bounds(as_of))
    known = sale & txn["customer_hash"].notna().to_numpy()
    inb = known & (day >= bounds[0]) & (day < bounds[-1])
    c = pd.DataFrame(
        {
            "mkey": mkey[inb],
            "ckey": txn["customer_hash"].to_numpy()[inb],
            "seg": np.searchsorted(bounds, day[inb], side="right") - 1,
            "amt": amt[inb],
        }
    )
    roll = c.groupby(["mkey", "ckey", "seg"], sort=True).agg(cnt=("amt", "size"), amt=("amt", "sum")).reset_index()
    start, end = bounds[:-1], bounds[1:]
    lo = np.searchsorted(a_days, end, side="left")
    n_a = len(a_days)
    seg = roll["seg"].to_numpy()
    r_lo, r_start = lo[seg], start[seg]
    same_next = np.r_[
        (roll["mkey"].to_numpy()[1:] == roll["mkey"].to_numpy()[:-1])
        & (roll["ckey"].to_numpy()[1:] == roll["ckey"].to_numpy()[:-1]),
        False,
    ]
    same_prev = np.r_[False, same_next[:-1]]
    owner_hi = np.where(same_next, np.r_[r_lo[1:], 0], n_a)
    prev_start = np.where(same_prev, np.r_[0, r_start[:-1]], -(10**9))
    t2 = np.where(roll["cnt"].to_numpy() >= 2, r_start, prev_start)
    m = roll["mkey"].to_numpy()
    counts = {}
    for w in COUNT_WINDOWS:
        for key, hi in (
            (f"dist_{w}", np.minimum(owner_hi, np.searchsorted(a_days, r_start + w, side="right"))),
            (f"rep_{w}", np.minimum(owner_hi, np.searchsorted(a_days, t2 + w, side="right"))),
        ):
            ok = hi > r_lo
            delta = (
                pd.concat(
                    [
                        pd.DataFrame({"mkey": m[ok], "idx": r_lo[ok], "d": 1}),
                        pd.DataFrame({"mkey": m[ok & (hi < n_a)], "idx": hi[ok & (hi < n_a)], "d": -1}),
                    ]
                )
                .groupby(["mkey", "idx"], sort=True)["d"]
                .sum()
                .reset_index()
            )
            delta["run"] = delta.groupby("mkey")["d"].cumsum()
            counts[key] = delta
    pop_idx = pd.DataFrame(
        {"mkey": out["mkey"], "idx": np.searchsorted(a_days, out["as_of"]), "i": np.arange(len(out))}
    )
    pop_idx = pop_idx.sort_values("idx")
    for key, delta in counts.items():
        r = pd.merge_asof(
            pop_idx, delta.sort_values("idx")[["mkey", "idx", "run"]], on="idx", by="mkey", direction="backward"
        ).sort_values("i")
        out[key] = r["run"].fillna(0).to_numpy()
    for w in COUNT_WINDOWS:
        out[f"distinct_customers_{w}d"] = out.pop(f"dist_{w}")
        out[f"repeat_customer_share_{w}d"] = ratio(out.pop(f"rep_{w}"), out[f"distinct_customers_{w}d"].to_numpy())
    w = CONCENTRATION_WINDOW
    hi_w = np.searchsorted(a_days, start + w, side="right")
    seg_idx = pd.DataFrame({"seg": np.arange(len(start)), "lo": lo, "hi": hi_w})
    seg_idx = seg_idx[seg_idx["hi"] > seg_idx["lo"]]
    seg_idx = seg_idx.assign(idx=[list(range(a, b)) for a, b in zip(seg_idx["lo"], seg_idx["hi"])]).explode("idx")
    ex = roll[["mkey", "ckey", "seg", "amt"]].merge(seg_idx[["seg", "idx"]], on="seg")
    per_c = ex.groupby(["mkey", "idx", "ckey"], sort=False)["amt"].sum().reset_index()
    per_c["sq"] = per_c["amt"].astype(float) ** 2
    per_c = per_c.sort_values(["mkey", "idx", "amt"], ascending=[True, True, False])
    per_c["rank"] = per_c.groupby(["mkey", "idx"]).cumcount()
    g = per_c.groupby(["mkey", "idx"])
    conc = pd.DataFrame(
        {
            "tot": g["amt"].sum(),
            "top10": per_c[per_c["rank"] < 10].groupby(["mkey", "idx"])["amt"].sum(),
            "sq": g["sq"].sum(),
        }
    ).reset_index()
    conc["as_of"] = a_days[conc["idx"].astype(np.int64)]
    conc[f"customer_top10_share_{w}d"] = conc["top10"] / conc["tot"]
    conc[f"customer_hhi_{w}d"] = conc["sq"] / conc["tot"].astype(float) ** 2
    out = out.merge(
        conc[["mkey", "as_of", f"customer_top10_share_{w}d", f"customer_hhi_{w}d"]], on=["mkey", "as_of"], how="left"
    )
    out["merchant_id"] = "M" + out["mkey"].astype(str).str.zfill(8)
    out["as_of"] = out["as_of"].astype("datetime64[D]")
    return out.drop(columns="mkey")
