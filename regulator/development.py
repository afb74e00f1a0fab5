"""The life-services digital development report (生活服务数字化发展报告): one self-contained HTML file, Chinese
and English, optionally a PDF.

Sections: supply and consumption by sector and by province (active merchants, consumption and its
year-on-year change, digital-payment share); the digital consumption index; the distribution over
credit-risk classes by sector and province; micro-loan decisions and inclusion by region and sector;
inspection findings by class. Every number comes from the functions the regulator API serves
(:mod:`regulator.consumption`'s files, :class:`regulator.views.RegulatorViews`,
:func:`regulator.inspections.findings_view`), with the same small-cell suppression; a part whose
inputs were not built says which command builds them instead of failing the report.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from core.files import write_text_atomic
from core.vocabulary import CLASSES, DECISIONS
from regulator.consumption import AGGREGATES_FILE, ALL, BUILD_COMMAND, INDEX_FILE
from regulator.html import CSS, bilingual, count, count_share, esc, heading, num, para, pct, table
from regulator.inspections import findings_view
from regulator.labels import dimension_label, label
from regulator.suppression import SUPPRESSED_NOTE_EN, SUPPRESSED_NOTE_ZH, suppressed_mark
from regulator.views import RegulatorViews

INDEX_MONTHS = 13  # a year of monthly changes and the month a year before


def _yuan(fen) -> str:
    return "–" if fen is None else f"{fen / 100:,.0f}"


def _missing(zh: str, en: str, command: str) -> str:
    return para(f"{zh}（请先运行 `{command}`）。", f"{en} (run `{command}` first).")


def _consumption(folder: Path, month: str) -> tuple[pl.DataFrame, pl.DataFrame, str] | None:
    """The aggregates, the index up to ``month`` and the consumption month shown: the latest month of sales at or
    before ``month`` (a class-history month is an ``as_of`` on its first day, so its own sales come later)."""
    agg, idx = folder / AGGREGATES_FILE, folder / INDEX_FILE
    if not (agg.is_file() and idx.is_file()):
        return None
    index = pl.read_parquet(idx).filter(pl.col("month") <= month)
    if index.height == 0:
        return None
    return pl.read_parquet(agg), index, index["month"].max()


def _supply_section(data: tuple[pl.DataFrame, pl.DataFrame, str] | None, k: int) -> str:
    parts = [heading(2, "一、供给与消费", "1. Supply and consumption", "supply")]
    if data is None:
        return "\n".join([*parts, _missing("尚无消费汇总", "No consumption aggregates yet", BUILD_COMMAND)])
    month = data[2]
    agg = data[0].filter(pl.col("month") == month)
    parts.append(
        para(
            "活跃商户：当月至少一笔消费的商户；消费额与笔数为当月消费交易（不含退款）；数字支付占比：微信、支付宝、"
            "云闪付扫码与数字人民币的金额占比；同比：与上年同月相比。",
            "Active merchants: at least one sale in the month; consumption: the month's sales (refunds "
            "excluded); digital share: WeChat Pay, Alipay, UnionPay QR and e-CNY by amount; YoY: against the "
            "same month a year earlier.",
        )
    )
    head = [
        "活跃商户 <span class=en>Active merchants</span>",
        "同比 <span class=en>YoY</span>",
        "消费额（元）<span class=en>Consumption (yuan)</span>",
        "笔数 <span class=en>Sales</span>",
        "同比 <span class=en>YoY</span>",
        "数字支付占比 <span class=en>Digital share</span>",
    ]

    def rows(level: str, key: str, dimension: str) -> list[list[str]]:
        out = []
        for r in agg.filter(pl.col("level").is_in([level, "overall"])).sort("level", key).iter_rows(named=True):
            name = "<b>合计 Total</b>" if r["level"] == "overall" else bilingual(label(dimension, r[key]))
            if r["suppressed"]:
                out.append([name, f'<span class="sup">{esc(suppressed_mark(k))}</span>', *["–"] * 5])
                continue
            out.append(
                [
                    name,
                    f"{r['merchants']:,}",
                    pct(r["merchants_yoy"]),
                    _yuan(r["consumption_fen"]),
                    f"{r['consumption_count']:,}",
                    pct(r["consumption_yoy"]),
                    pct(r["digital_share"]),
                ]
            )
        return out

    for level, key, zh, en in (
        ("sector", "sector", "按行业", "By sector"),
        ("province", "province", "按省份", "By province"),
    ):
        parts.append(heading(3, f"{zh}（{month}）", f"{en} ({month})"))
        parts.append(table([bilingual(dimension_label(key)), *head], rows(level, key, key), "num"))
    return "\n".join(parts)


def _index_section(data: tuple[pl.DataFrame, pl.DataFrame, str] | None) -> str:
    parts = [heading(2, "二、数字化消费指数", "2. Digital consumption index", "index")]
    if data is None:
        return "\n".join([*parts, _missing("尚无消费指数", "No consumption index yet", BUILD_COMMAND)])
    idx, month = data[1], data[2]
    months = sorted(idx["month"].unique().to_list())[-INDEX_MONTHS:]
    parts.append(
        para(
            "基期=100，环比链接：每月只比较前后两月都有消费的商户，商户进入和退出不影响指数；详见 docs/consumption-index.md。",
            "Base month = 100, chain-linked: each month compares only merchants with sales in both months, so "
            "entries and exits do not move the index; method in docs/consumption-index.md.",
        )
    )
    series = idx.filter(pl.col("level").is_in(["overall", "sector"]), pl.col("month").is_in(months))
    keys = [ALL, *sorted(s for s in series["sector"].unique().to_list() if s != ALL)]
    head = ["月份 <span class=en>Month</span>"] + [
        "全部 <span class=en>All</span>" if s == ALL else bilingual(label("sector", s)) for s in keys
    ]
    values = {(r["sector"], r["month"]): r["index"] for r in series.iter_rows(named=True)}
    body = [[esc(m)] + [num(values.get((s, m)), 1) for s in keys] for m in months]
    parts.append(table(head, body, "num"))
    last = idx.filter(pl.col("month") == month, pl.col("level") == "overall")
    if last.height:
        r = last.row(0, named=True)
        parts.append(
            para(
                f"{month}全国指数 {num(r['index'], 1)}，环比 {pct(r['index_mom'])}，同比 {pct(r['index_yoy'])}。",
                f"{month}: national index {num(r['index'], 1)}, month on month {pct(r['index_mom'])}, "
                f"year on year {pct(r['index_yoy'])}.",
            )
        )
    return "\n".join(parts)


def _classes_section(views: RegulatorViews, month: str) -> str:
    k = views.k
    parts = [heading(2, "三、信用风险分类分布", "3. Credit-risk classes", "classes")]
    for by in ("sector", "province"):
        d = views.distribution(by, month)
        parts.append(heading(3, f"按{d['by_label']['zh']}（{month}）", f"By {d['by_label']['en'].lower()} ({month})"))
        body = [
            [bilingual(r["label"]), count(k, r["total"])] + [count_share(k, r["cells"][c]) for c in CLASSES]
            for r in [*d["rows"], {**d["total"], "label": {"zh": "合计", "en": "Total"}}]
        ]
        parts.append(table([bilingual(d["by_label"]), "合计 <span class=en>Total</span>", *CLASSES], body, "num"))
    return "\n".join(parts)


def _loans_section(views: RegulatorViews, months: list[str]) -> str:
    k = views.k
    parts = [heading(2, "四、小微贷款与普惠金融", "4. Micro-loans and inclusive finance", "loans")]
    for by in ("province", "sector", "urban_rural"):
        inc = views.inclusion(by, from_month=months[0], to_month=months[-1])
        if not inc["total"]["decisions"]["count"] and not inc["total"]["decisions"]["suppressed"]:
            return "\n".join([*parts, para("审计日志中尚无授信决策。", "No credit decisions in the audit log yet.")])
        parts.append(heading(3, f"按{inc['by_label']['zh']}", f"By {inc['by_label']['en'].lower()}"))
        body = [
            [bilingual(r["label"]), count(k, r["decisions"])]
            + [count_share(k, r["cells"][d], "rate") for d in DECISIONS]
            + [num(r["approval_ratio"], 2), _yuan(r["average_approved_limit_fen"])]
            for r in [*inc["rows"], {**inc["total"], "label": {"zh": "合计", "en": "Total"}}]
        ]
        head = [bilingual(inc["by_label"]), "决策数 <span class=en>Decisions</span>"]
        head += [bilingual(label("decision", d)) for d in DECISIONS]
        head += ["批准率比值 <span class=en>Approval ratio</span>", "平均额度（元）<span class=en>Avg limit</span>"]
        parts.append(table(head, body, "num"))
    return "\n".join(parts)


def _inspections_section(views: RegulatorViews, months: list[str]) -> str:
    k = views.k
    parts = [heading(2, "五、双随机抽查结果", "5. Inspection findings by class", "inspections")]
    f = findings_view(views.settings, from_month=months[0], to_month=months[-1])
    if f["total"]["inspections"]["count"] == 0:
        return "\n".join(
            [
                *parts,
                _missing("尚无已录入的检查结果", "No inspection results recorded yet", "lifecredit inspections record"),
            ]
        )
    parts.append(para(f["definition_zh"], f["definition_en"]))

    def interval(c: dict) -> str:
        i = c.get("interval")
        return "–" if not i else f"{pct(i['low'])} – {pct(i['high'])}"

    body = [
        [bilingual(r["label"]), count(k, r["inspections"]), count_share(k, r["any_finding"], "rate")]
        + [interval(r["any_finding"]), count_share(k, r["serious"])]
        for r in [*f["rows"], {**f["total"], "label": {"zh": "合计", "en": "Total"}}]
    ]
    head = [
        "分类 <span class=en>Class</span>",
        "检查数 <span class=en>Inspections</span>",
        "发现问题 <span class=en>Any finding</span>",
        "95% Jeffreys",
        "严重问题 <span class=en>Serious</span>",
    ]
    parts.append(table(head, body, "num"))
    return "\n".join(parts)


def build_development_report(views: RegulatorViews, month: str) -> str:
    """The development report for ``month`` as one HTML string."""
    months = views.months_up_to(month, 12)
    k = views.k
    data = _consumption(views.settings.consumption_folder, month)
    body = [
        '<h1>生活服务数字化发展报告 <span class="en">/ Digital life-services development report</span></h1>',
        f'<p class="meta">报告月 Report month: <b>{esc(month)}</b> · 消费月 Consumption month: '
        f"{esc(data[2] if data else '–')} · 贷款与检查期间 Loans and inspections: "
        f"{esc(months[0])} – {esc(months[-1])} · 最小单元格 Minimum cell: {k} · 生成时间 Generated: "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}</p>",
        f'<p class="legend">{esc(SUPPRESSED_NOTE_ZH.format(k=k))}<br>'
        f'<span class="en">{esc(SUPPRESSED_NOTE_EN.format(k=k))}</span></p>',
        _supply_section(data, k),
        _index_section(data),
        _classes_section(views, month),
        _loans_section(views, months),
        _inspections_section(views, months),
    ]
    return (
        f'<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>生活服务数字化发展报告 Development report {esc(month)}</title><style>{CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


def write_development_report(views: RegulatorViews, month: str, out: Path) -> dict:
    """Write the development report to ``out`` (atomically); returns ``{"html": path, "bytes": n}``."""
    page = build_development_report(views, month)
    out = write_text_atomic(out, page)
    return {"html": str(out), "bytes": len(page.encode()), "warnings": []}
