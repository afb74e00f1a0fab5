"""The life-service dynamic map (生活服务动态地图): one measure per province or prefecture in one month.

Three sources, each published only as its own protected tables allow:

* the class history (merchants, class shares A-D, mean PD): the very province and city tables of
  :func:`regulator.distribution.month_tables`, so the map hides every cell ``/regulator/distribution``
  hides (those two are protected together, :mod:`regulator.joint_suppression`); the PD sums the means
  publish are checked across both levels too, hiding more prefectures until no hidden group of fewer
  than k merchants, nor its PD sum, follows from the published totals (:func:`joint_hidden`);
* the consumption aggregates of ``lifecredit consumption-index`` (active merchants, consumption
  amount and count, their year-on-year change, digital-payment share, optionally per sector),
  read as written: that command already nulls every suppressed cell;
* recorded inspections (finding rate, provinces only): a province x finding table whose finding
  totals are hidden or published exactly as the month's findings view (:mod:`regulator.inspections`).

Each (source, store state, month, level) is computed once and kept in memory, so a request after
the first answers from the cache; a store that changes (re-scored month, rebuilt index, new
results) changes its stamp and is read again. This module is over 400 lines because the measure
catalogue, the three sources and the one region answer share one vocabulary that the API and the
dashboard read back.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from core.settings import Settings
from core.vocabulary import CLASSES
from regulator.common import UnknownValue, ViewError, count_grid, rounded, segment, suppression_note
from regulator.consumption import AGGREGATES_FILE, INDEX_FILE
from regulator.consumption import BUILD_COMMAND as CONSUMPTION_COMMAND
from regulator.distribution import month_tables
from regulator.history import PART_FILE, months_available, scan_history
from regulator.joint_suppression import joint_hidden
from regulator.labels import UNKNOWN, label
from regulator.suppression import ProtectionError, protect

LEVELS = ("province", "prefecture")
HISTORY, CONSUMPTION, INSPECTIONS = "class_history", "consumption", "inspections"
SHOWN, SUPPRESSED, NO_DATA = "shown", "suppressed", "no_data"
_CACHE_SIZE = 256


class SourceMissing(RuntimeError):
    """The store a measure reads has not been built yet; the message names the command that builds it."""


@dataclass(frozen=True)
class Measure:
    """One thing the map can colour regions by."""

    key: str
    source: str
    en: str
    zh: str
    unit_en: str
    unit_zh: str
    kind: str
    """count | amount | share | rate | change | index: how the dashboard scales and formats it."""
    sectors: bool = False
    levels: tuple[str, ...] = LEVELS

    def describe(self, available: bool) -> dict:
        return {
            "key": self.key,
            "label": {"en": self.en, "zh": self.zh},
            "unit": {"en": self.unit_en, "zh": self.unit_zh},
            "kind": self.kind,
            "source": self.source,
            "sectors": self.sectors,
            "levels": list(self.levels),
            "available": available,
        }


_CONSUMPTION_COLUMN = {
    "active_merchants": "merchants",
    "consumption_amount": "consumption_fen",
    "consumption_count": "consumption_count",
    "consumption_yoy": "consumption_yoy",
    "consumption_count_yoy": "consumption_count_yoy",
    "digital_share": "digital_share",
    "consumption_index": "index",
}
_COLUMNS = sorted(set(_CONSUMPTION_COLUMN.values()) - {"index"})
_CONSUMPTION_LEVELS = {
    "province": "province",
    "sector_province": "province",
    "city": "prefecture",
    "sector_city": "prefecture",
}
MEASURES: dict[str, Measure] = {
    m.key: m
    for m in (
        Measure("merchants", HISTORY, "Merchants classified", "参与分类的商户", "merchants", "户", "count"),
        *(
            Measure(f"class_{c}", HISTORY, f"Share in class {c}", f"{c}类商户占比", "share", "占比", "share")
            for c in CLASSES
        ),
        Measure("mean_pd", HISTORY, "Mean probability of default", "平均违约概率", "PD", "违约概率", "rate"),
        Measure(
            "active_merchants",
            CONSUMPTION,
            "Active merchants (supply)",
            "活跃商户（供给）",
            "merchants",
            "户",
            "count",
            sectors=True,
        ),
        Measure(
            "consumption_amount", CONSUMPTION, "Consumption (sales)", "消费金额", "yuan", "元", "amount", sectors=True
        ),
        Measure(
            "consumption_count",
            CONSUMPTION,
            "Consumption (sales count)",
            "消费笔数",
            "sales",
            "笔",
            "count",
            sectors=True,
        ),
        Measure(
            "consumption_yoy",
            CONSUMPTION,
            "Consumption, year on year",
            "消费金额同比",
            "change",
            "同比",
            "change",
            sectors=True,
        ),
        Measure(
            "consumption_count_yoy",
            CONSUMPTION,
            "Sales count, year on year",
            "消费笔数同比",
            "change",
            "同比",
            "change",
            sectors=True,
        ),
        Measure(
            "digital_share",
            CONSUMPTION,
            "Digital-payment share of sales",
            "数字支付占比",
            "share",
            "占比",
            "share",
            sectors=True,
        ),
        Measure(
            "consumption_index",
            CONSUMPTION,
            "Digital consumption index (base month 100)",
            "数字化消费指数（基期=100）",
            "index",
            "指数",
            "index",
            sectors=True,
            levels=("province",),
        ),
        Measure(
            "finding_rate",
            INSPECTIONS,
            "Inspection finding rate",
            "检查问题发现率",
            "share of inspections",
            "占检查数",
            "rate",
            levels=("province",),
        ),
    )
}
SUPPRESSED_LABEL = {"en": "<{k} merchants, not shown", "zh": "少于{k}家，不显示"}


# ---------------------------------------------------------------- the cache


_cache: OrderedDict[tuple, object] = OrderedDict()
_lock = threading.Lock()


def cached(key: tuple, build: Callable[[], object]) -> object:
    """``build()`` once per ``key`` (which carries the store's stamp), the most recent entries kept."""
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    value = build()
    with _lock:
        _cache[key] = value
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return value


def _stat(path: Path) -> tuple:
    s = path.stat()
    return (str(path), s.st_mtime_ns, s.st_size)


def history_stamp(root: Path) -> tuple:
    """Every month partition with its modification time and size: a re-scored month changes it."""
    return tuple(_stat(Path(root) / f"month={m}" / PART_FILE) for m in months_available(root))


# ---------------------------------------------------------------- regions


def _region(level: str, code: str, value, status: str, merchants: int | None) -> dict:
    dim = "province" if level == "province" else "city"
    return {
        "code": code,
        "label": label(dim, code),
        "value": None if status != SHOWN or value is None else int(value) if isinstance(value, int) else rounded(value),
        "status": status,
        "merchants": merchants if status == SHOWN else None,
    }


def history_month(root: Path, month: str, k: int) -> dict[str, dict[str, list[dict]]]:
    """Every class-history measure of one month at both levels: ``{level: {measure: [region, ...]}}``."""
    history = scan_history(root)
    tables, _ = month_tables(history, month, k)
    frame = (
        history.filter(pl.col("month") == month)
        .select(segment("province").alias("province"), segment("city").alias("city"), "pd")
        .collect()
    )
    province_keys, province_t = tables["province"]
    city_keys, city_t = tables["city"]
    pairs = [(p, c, n) for p, c, n in frame.group_by("province", "city").len().sort("province", "city").iter_rows()]
    p_hidden, c_hidden = joint_hidden(
        pairs,
        province_keys,
        province_t.suppressed[: len(province_keys), -1],
        city_keys,
        city_t.suppressed[: len(city_keys), -1],
        k,
    )
    out: dict[str, dict[str, list[dict]]] = {}
    for level, dim, hidden in (("province", "province", p_hidden), ("prefecture", "city", c_hidden)):
        keys, t = tables[dim]
        n = t.shape[1]
        pd_sum = dict(frame.group_by(dim).agg(pl.col("pd").sum()).iter_rows())
        measures: dict[str, list[dict]] = {key: [] for key, ms in MEASURES.items() if ms.source == HISTORY}
        for i, code in enumerate(keys):
            total = int(t.values[i, n])  # a Python int: published as a count, not a float
            status = NO_DATA if total == 0 else SUPPRESSED if hidden[i] else SHOWN
            shown = total if status == SHOWN else None
            measures["merchants"].append(_region(level, code, total, status, shown))
            measures["mean_pd"].append(_region(level, code, pd_sum.get(code, 0.0) / max(total, 1), status, shown))
            for j, c in enumerate(CLASSES):
                cell_status = SUPPRESSED if status == SHOWN and t.suppressed[i, j] else status
                measures[f"class_{c}"].append(_region(level, code, t.values[i, j] / max(total, 1), cell_status, shown))
        out[level] = measures
    return out


# ---------------------------------------------------------------- consumption


def load_consumption(folder: Path) -> dict:
    """The aggregates file as one small frame per ``(level, sector, month)`` (sector None: all sectors), with its
    months and sectors; read once per version of the file."""
    path = Path(folder) / AGGREGATES_FILE
    if not path.is_file():
        raise SourceMissing(f"no consumption aggregates in {folder}: run `{CONSUMPTION_COMMAND}`")

    def build() -> dict:
        frame = (
            pl.read_parquet(path, columns=["level", "sector", "province", "city", "month", "suppressed", *_COLUMNS])
            .filter(pl.col("level").is_in(list(_CONSUMPTION_LEVELS)))
            .with_columns(
                pl.when(pl.col("level").str.starts_with("sector_")).then(pl.col("sector")).alias("sector"),
                pl.when(pl.col("level").str.ends_with("city")).then(pl.col("city")).otherwise("province").alias("code"),
                pl.col("level").replace_strict(_CONSUMPTION_LEVELS).alias("level"),
            )
            .drop("province", "city")
            .sort("code")
        )
        if (Path(folder) / INDEX_FILE).is_file():  # the index is published per province (and sector x province)
            index = pl.read_parquet(
                Path(folder) / INDEX_FILE, columns=["level", "sector", "province", "month", "index"]
            )
            index = index.filter(pl.col("level").is_in(["province", "sector_province"])).select(
                pl.lit("province").alias("level"),
                pl.when(pl.col("level") == "sector_province").then(pl.col("sector")).alias("sector"),
                pl.col("province").alias("code"),
                "month",
                "index",
            )
            frame = frame.join(index, on=["level", "sector", "code", "month"], how="left", nulls_equal=True)
        else:
            frame = frame.with_columns(pl.lit(None, dtype=pl.Float64).alias("index"))
        cells = frame.partition_by("level", "sector", "month", as_dict=True, include_key=False)
        sectors = sorted(s for s in frame["sector"].unique().to_list() if s is not None)
        return {"cells": cells, "months": sorted(frame["month"].unique().to_list()), "sectors": sectors}

    return cached(("consumption", _stat(path)), build)


def consumption_regions(data: dict, measure: str, level: str, sector: str | None, month: str) -> list[dict]:
    """One consumption measure's regions: hidden cells come as the file has them (null, ``suppressed``)."""
    column = _CONSUMPTION_COLUMN[measure]
    part = data["cells"].get((level, sector, month))
    out = []
    for row in [] if part is None else part.iter_rows(named=True):
        active = row["merchants"]
        if row["suppressed"]:
            status = SUPPRESSED
        elif not active:
            status = NO_DATA
        else:
            status = SHOWN if row[column] is not None else NO_DATA
        value = None if status != SHOWN else row[column] / 100 if measure == "consumption_amount" else row[column]
        out.append(_region(level, row["code"], value, status, active))
    return out


# ---------------------------------------------------------------- inspections


def inspection_regions(history_root: Path, results: pl.DataFrame, month: str, k: int) -> list[dict]:
    """Finding rate (minor or serious) per province of the inspections in ``month``.

    The province x finding table's finding totals are hidden exactly where the month's findings
    view hides them (forced) and never chosen as complements where it publishes them (locked);
    if the table cannot be protected so, every province is hidden.
    """
    from regulator.inspections import FINDINGS, finding_rates

    done = results.filter(pl.col("inspected_on").dt.strftime("%Y-%m") == month)
    if done.height == 0:
        return []
    history = scan_history(history_root)
    where = (
        history.filter(pl.col("month") == month)
        .select("merchant_id", segment("province").alias("province"))
        .unique("merchant_id", keep="first")
        .collect()
    )
    done = done.join(where, on="merchant_id", how="left").with_columns(pl.col("province").fill_null(UNKNOWN))
    keys = sorted(done["province"].unique().to_list())
    counts, distinct = count_grid(done, "province", keys, "finding", list(FINDINGS))
    view = finding_rates(history, results, k=k, from_month=month, to_month=month)["total"]
    margin = np.array([view[f]["suppressed"] for f in FINDINGS] + [view["inspections"]["suppressed"]])
    force = np.zeros(distinct.shape, dtype=bool)
    force[-1] = margin
    locked = np.zeros_like(force)
    locked[-1] = ~margin
    try:
        t = protect(counts, k, distinct=distinct, force=force, locked=locked)
        hidden = t.suppressed
    except ProtectionError:
        hidden = np.ones_like(force)
    m, n = counts.shape
    out = []
    for i, code in enumerate(keys):
        total, none = int(counts[i].sum()), int(counts[i, 0])
        status = SUPPRESSED if hidden[i, n] or hidden[i, 0] else SHOWN
        out.append(_region("province", code, (total - none) / total, status, total))
    return out


def inspection_results(settings: Settings) -> tuple[tuple, pl.DataFrame]:
    """The recorded inspections and the stamp of their files (empty when none was recorded)."""
    from regulator.inspections import read_results, results_dir

    folder = results_dir(settings)
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    return tuple(_stat(f) for f in files), read_results(settings)


# ---------------------------------------------------------------- the view


def _check(measure: str | None, level: str, sector: str | None) -> Measure | None:
    if level not in LEVELS:
        raise ViewError(f"level must be one of {'|'.join(LEVELS)}, got {level!r}")
    if measure is None:
        if sector is not None:
            raise ViewError("sector needs a measure that is split by sector")
        return None
    if measure not in MEASURES:
        raise ViewError(f"measure must be one of {'|'.join(MEASURES)}, got {measure!r}")
    m = MEASURES[measure]
    if level not in m.levels:
        raise ViewError(f"measure {measure} is published by {' or '.join(m.levels)} only, not by {level}")
    if sector is not None and not m.sectors:
        with_sectors = ", ".join(k for k, v in MEASURES.items() if v.sectors)
        raise ViewError(f"measure {measure} is not split by sector; measures with a sector: {with_sectors}")
    return m


def history_regions(root: Path, stamp: tuple, month: str, k: int) -> dict[str, dict[str, list[dict]]]:
    """:func:`history_month` of ``month``, computed once per state of the history."""
    return cached(("history", stamp, month, k), lambda: history_month(root, month, k))


_warming: set[tuple] = set()


def warm(root: Path, months: list[str], k: int) -> None:
    """Compute every month of the history in a background thread, newest first, so that the slider's
    months are answered from memory (started once per state of the history)."""
    stamp = history_stamp(root)
    with _lock:
        if (stamp, k) in _warming:
            return
        _warming.add((stamp, k))

    def run() -> None:
        try:
            for month in reversed(months):
                history_regions(root, stamp, month, k)
        except Exception:  # best effort: the request for that month computes it again and reports the error
            return

    threading.Thread(target=run, name="map-warm", daemon=True).start()


def catalogue(settings: Settings, months: list[str], root: Path | None = None) -> dict:
    """``GET /regulator/map`` without a measure: what can be asked, and which sources are built; starts
    computing the history's months in the background (the dashboard asks for this list first)."""
    warm(Path(root or settings.class_history_dir), months, settings.min_cell_count)
    try:
        consumption = load_consumption(settings.consumption_folder)
    except SourceMissing:
        consumption = None
    available = {HISTORY: True, CONSUMPTION: consumption is not None, INSPECTIONS: True}
    return {
        "view": "map",
        "measures": [m.describe(available[m.source]) for m in MEASURES.values()],
        "levels": list(LEVELS),
        "months": months,
        "sectors": [{"key": s, "label": label("sector", s)} for s in (consumption or {}).get("sectors", [])],
        "consumption_months": (consumption or {}).get("months", []),
        "suppressed_label": _suppressed_label(settings.min_cell_count),
        **suppression_note(settings.min_cell_count),
    }


def _suppressed_label(k: int) -> dict:
    return {lang: text.format(k=k) for lang, text in SUPPRESSED_LABEL.items()}


def map_view(
    settings: Settings,
    measure: str | None = None,
    month: str | None = None,
    *,
    sector: str | None = None,
    level: str = "province",
    history_dir: Path | None = None,
) -> dict:
    """One measure for every province (or prefecture) in ``month`` (default: the latest its source holds).

    Class-history and inspection measures range over the class history's months (a month is the
    classification as of its first day); consumption measures over the consumption aggregates' months
    (sales within the month), listed in ``months`` of the answer.

    Each region: ``code`` (GB/T 2260: two digits, or four for a prefecture), ``label``, ``value``,
    ``status`` (shown | suppressed | no_data) and ``merchants`` behind the value (null unless shown).
    """
    m = _check(measure, level, sector)
    root = Path(history_dir or settings.class_history_dir)
    k = settings.min_cell_count
    months = months_available(root)
    if not months:
        scan_history(root)  # raises HistoryError naming the command that builds the history
    if m is None:
        return catalogue(settings, months, root)
    data = load_consumption(settings.consumption_folder) if m.source == CONSUMPTION else None
    if data is not None:  # activity within a month: the index's months, a year before the class history's
        months = data["months"]
    if month is None:
        month = months[-1]
    elif month not in months:
        raise UnknownValue(f"no month {month} in the {m.source} data; available: {months[0]} .. {months[-1]}")
    note = None
    if m.source == HISTORY:
        stamp = history_stamp(root)
        regions = history_regions(root, stamp, month, k)[level][m.key]
    elif data is not None:
        if sector is not None and sector not in data["sectors"]:
            raise UnknownValue(
                f"no sector {sector!r} in the consumption aggregates; known: {', '.join(data['sectors'])}"
            )
        regions = consumption_regions(data, m.key, level, sector, month)
    else:
        files, results = inspection_results(settings)
        key = ("inspections", history_stamp(root), files, month, k)
        regions = cached(key, lambda: inspection_regions(root, results, month, k))
        if not regions:
            note = {"en": f"no inspection recorded in {month}", "zh": f"{month}无已录入的检查结果"}
    shown = [r["value"] for r in regions if r["status"] == SHOWN and r["value"] is not None]
    return {
        "view": "map",
        "measure": m.describe(True),
        "month": month,
        "months": months,
        "level": level,
        "sector": None if sector is None else {"key": sector, "label": label("sector", sector)},
        "regions": regions,
        "range": {"min": min(shown), "max": max(shown)} if shown else None,
        "note": note,
        "suppressed_label": _suppressed_label(k),
        **suppression_note(k),
    }
