"""The regulator report: one self-contained HTML file (figures embedded as PNG), optionally a PDF.

Sections, each headed in Chinese and English: class distribution (by month and, for the
report month, by sector, province, city, business form and urban/rural), stability (PSI with
its bands), migration (matrix and heatmap), concentration, observed outcomes, inclusive
finance (when the service has made decisions), the champion's validation evidence, and the
methods (classes, grades, bands, Jeffreys intervals, small-cell protection).

Every number comes from :class:`regulator.views.RegulatorViews`, the same functions
the API serves, so the report never shows a cell the API would hide. This module assembles
the HTML (headings, tables and notes bilingual); the charts are :mod:`regulator.figures`, the
PDF printing :mod:`regulator.pdf` (its names are re-exported here for the CLI).

The module is over 400 lines because it is the page itself: the bilingual sections, their tables
and notes read top to bottom in the order the report prints them.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

from core.files import write_text_atomic
from core.vocabulary import CLASSES, DECISIONS, PSI_BANDS
from regulator import figures
from regulator.common import DIMENSIONS, INCLUSION_DIMENSIONS
from regulator.html import CSS, bilingual, count, count_share, esc, heading, num, para, pct, table
from regulator.labels import label
from regulator.pdf import PdfUnavailable, html_to_pdf, pdf_engine
from regulator.suppression import (
    SUPPRESSED_NOTE_EN,
    SUPPRESSED_NOTE_ZH,
    suppressed_mark,
)
from regulator.views import RegulatorViews

STABLE, SHIFTED = (f"{PSI_BANDS[band]:.2f}" for band in ("stable", "shifted"))
"""The PSI bands as the text shows them ("0.10", "0.25")."""

__all__ = ["PdfUnavailable", "build_report", "html_to_pdf", "pdf_engine", "write_report"]


# -- sections -------------------------------------------------------------------------------------
def _distribution_section(views: RegulatorViews, month: str, months: list[str]) -> str:
    k = views.k
    by_month = views.distribution("month", to_month=month, from_month=months[0])
    parts = [
        heading(2, "一、风险分类分布", "1. Distribution over credit-risk classes", "distribution"),
        para(
            "各月A–D类商户占比；下表为报告月按维度的分布（户数与该组内占比）。",
            "Share of merchants in classes A–D per month; the tables give the report month by dimension "
            "(count and share within the row).",
        ),
        figures.class_shares(by_month["rows"]),
    ]
    head = ["月份 <span class=en>Month</span>", "合计 <span class=en>Total</span>"] + [
        f"{c} <span class=en>{esc(label('class', c)['en'].split(': ')[1])}</span>" for c in CLASSES
    ]
    rows = [
        [esc(r["key"]), count(k, r["total"])] + [count_share(k, r["cells"][c]) for c in CLASSES]
        for r in by_month["rows"]
    ]
    parts.append(table(head, rows, "num"))
    for dim in DIMENSIONS:
        d = views.distribution(dim, month)
        parts.append(heading(3, f"按{d['by_label']['zh']}（{month}）", f"By {d['by_label']['en'].lower()} ({month})"))
        head = [bilingual(d["by_label"]), "合计 <span class=en>Total</span>", "占比 <span class=en>Share</span>"] + [
            c for c in CLASSES
        ]
        rows = [
            [bilingual(r["label"]), count(k, r["total"]), pct(r["total"]["share"])]
            + [count_share(k, r["cells"][c]) for c in CLASSES]
            for r in d["rows"]
        ]
        t = d["total"]
        rows.append(
            ["<b>合计 Total</b>", count(k, t["total"]), pct(1.0 if t["total"]["count"] else None)]
            + [count_share(k, t["cells"][c]) for c in CLASSES]
        )
        parts.append(table(head, rows, "num"))
    return "\n".join(parts)


def _stability_section(views: RegulatorViews, month: str, months: list[str]) -> str:
    s = views.stability(from_month=months[0], to_month=month)
    parts = [
        heading(2, "二、稳定性", "2. Stability", "stability"),
        para(
            f"群体稳定性指数（PSI）：本月相对上月的分类分布和评分分布。低于{STABLE}为稳定，{STABLE}–{SHIFTED}为轻微漂移，"
            f"{SHIFTED}及以上为显著变化。",
            "Population stability index (PSI) of the class and score distributions, each month against the "
            f"month before. Below {STABLE} stable, {STABLE}–{SHIFTED} drifting, {SHIFTED} and above shifted.",
        ),
    ]
    if not s["rows"]:
        parts.append(para("历史不足两个月，无法计算。", "Fewer than two months of history: nothing to compare."))
        return "\n".join(parts)
    parts.append(figures.psi_over_time(s["rows"]))
    band_zh = {"stable": "稳定", "drifting": "漂移", "shifted": "显著变化", None: "–"}
    rows = [
        [
            esc(r["month"]),
            esc(r["previous"]),
            num(r["psi_class"]),
            f"{band_zh[r['band_class']]} <span class=en>{esc(r['band_class'] or '')}</span>",
            num(r["psi_score"]),
            f"{band_zh[r['band_score']]} <span class=en>{esc(r['band_score'] or '')}</span>",
        ]
        for r in s["rows"]
    ]
    parts.append(
        table(
            [
                "月份 <span class=en>Month</span>",
                "对比月 <span class=en>Against</span>",
                "分类PSI <span class=en>Class PSI</span>",
                "区间 <span class=en>Band</span>",
                "评分PSI <span class=en>Score PSI</span>",
                "区间 <span class=en>Band</span>",
            ],
            rows,
            "num",
        )
    )
    conc = views.concentration(from_month=months[0], to_month=month)
    parts.append(heading(3, "评级集中度（赫芬达尔指数）", "Grade concentration (Herfindahl index)"))
    parts.append(para(conc["definition_zh"], conc["definition_en"]))
    parts.append(
        table(
            [
                "月份 <span class=en>Month</span>",
                "商户数 <span class=en>Merchants</span>",
                "HHI",
                "标准化 <span class=en>Normalised</span>",
            ],
            [
                [
                    esc(r["month"]),
                    esc(suppressed_mark(views.k)) if r["suppressed"] else f"{r['merchants']:,}",
                    num(r["herfindahl"]),
                    num(r["herfindahl_normalised"]),
                ]
                for r in conc["rows"]
            ],
            "num",
        )
    )
    return "\n".join(parts)


def _migration_section(views: RegulatorViews, month: str, months: list[str]) -> str:
    k = views.k
    parts = [heading(2, "三、分类迁移", "3. Class migration", "migration")]
    earlier = [m for m in months if m < month]
    if not earlier:
        parts.append(para("报告月之前没有历史月份。", "No month before the report month in the history."))
        return "\n".join(parts)
    mig = views.migration(from_month=earlier[-1], to_month=month)
    parts.append(
        para(
            f"{mig['from']}至{mig['to']}：行为上月分类（“新进入”为上月未评分的商户），列为本月分类（“退出”为本月未评分的商户）；"
            "括号内为行占比。",
            f"{mig['from']} to {mig['to']}: rows are the class in {mig['from']} (new: not scored then), columns "
            f"the class in {mig['to']} (left: not scored now); row shares in brackets.",
        )
    )
    parts.append(figures.migration_heatmap(mig, k))
    cols = [*CLASSES, "exited"]
    head = (
        ["上月 \\ 本月 <span class=en>from \\ to</span>"]
        + [bilingual(label("class", c)) if c in CLASSES else bilingual(label("migration", c)) for c in cols]
        + ["合计 <span class=en>Total</span>"]
    )
    rows = [
        [bilingual(r["label"])] + [count_share(k, r["cells"][c]) for c in cols] + [count(k, r["total"])]
        for r in mig["rows"]
    ]
    rows.append(["<b>合计 Total</b>"] + [count(k, mig["column_totals"][c]) for c in cols] + [count(k, mig["total"])])
    parts.append(table(head, rows, "num"))
    s = mig["summary"]
    if s["suppressed"]:
        parts.append(
            para(
                "升级/降级/维持占比不公布（会暴露被隐藏的单元格或人数过少）。",
                "Upgrade / downgrade / stable shares withheld (they would expose a hidden cell, or count too "
                "few merchants).",
            )
        )
    else:
        parts.append(
            para(
                f"两月均有评分的商户{s['merchants_in_both']:,}户：升级{pct(s['upgrades_share'])}，"
                f"降级{pct(s['downgrades_share'])}，维持{pct(s['stable_share'])}。",
                f"{s['merchants_in_both']:,} merchants scored in both months: {pct(s['upgrades_share'])} "
                f"upgraded (to a lower-risk class), {pct(s['downgrades_share'])} downgraded, "
                f"{pct(s['stable_share'])} stable.",
            )
        )
    return "\n".join(parts)


def _outcomes_section(views: RegulatorViews, month: str, months: list[str]) -> str:
    k = views.k
    parts = [heading(2, "四、违约表现", "4. Observed outcomes", "outcomes")]
    out = views.outcomes("class", from_month=months[0], to_month=month)
    parts.append(
        para(
            out["definition_zh"] + " 区间为95% Jeffreys区间；p值为单侧Jeffreys检验（违约率高于平均PD），"
            "p值小表示PD可能低估。",
            out["definition_en"] + " Intervals: 95% Jeffreys; p: one-sided Jeffreys test that the default rate "
            "exceeds the mean PD (small: PD may be underestimated).",
        )
    )
    if not out["months_with_outcomes"]:
        parts.append(
            para("所选月份尚无完整的12个月表现期。", "No month in range has a fully observed 12-month outcome yet.")
        )
        return "\n".join(parts)
    parts.append(
        para(
            f"有表现数据的月份：{out['months_with_outcomes'][0]}–{out['months_with_outcomes'][-1]}（合并计算）。",
            f"Months with outcomes: {out['months_with_outcomes'][0]} – {out['months_with_outcomes'][-1]} (pooled).",
        )
    )
    parts.append(figures.default_rates(out["rows"], k))
    for by in ("class", "grade"):
        o = out if by == "class" else views.outcomes("grade", from_month=months[0], to_month=month)
        rows = [
            [
                bilingual(r["label"]),
                count(k, r["n"]),
                count(k, r["defaults"]),
                pct(r["default_rate"], 2),
                f"{pct(r['interval']['low'], 2)} – {pct(r['interval']['high'], 2)}" if r["interval"] else "–",
                pct(r["mean_pd"], 2),
                num(r["jeffreys_p"]),
            ]
            for r in [*o["rows"], {**o["total"], "label": {"zh": "合计", "en": "Total"}}]
        ]
        parts.append(
            table(
                [
                    "分组 <span class=en>Group</span>",
                    "户月数 <span class=en>Merchant-months</span>",
                    "违约 <span class=en>Defaults</span>",
                    "违约率 <span class=en>Rate</span>",
                    "95% Jeffreys",
                    "平均PD <span class=en>Mean PD</span>",
                    "p",
                ],
                rows,
                "num",
            )
        )
    return "\n".join(parts)


def _inclusion_section(views: RegulatorViews, month: str, months: list[str]) -> str:
    k = views.k
    parts = [heading(2, "五、普惠金融", "5. Inclusive finance", "inclusion")]
    first = views.inclusion("urban_rural", from_month=months[0], to_month=month)
    if not first["total"]["decisions"]["count"] and not first["total"]["decisions"]["suppressed"]:
        parts.append(para("审计日志中尚无授信决策（/decide）。", "No credit decisions (/decide) in the audit log yet."))
        return "\n".join(parts)
    parts.append(
        para(
            "通过服务作出的授信决策：各组批准、转人工、拒绝比例，平均批准额度，及批准率相对总体的比值。",
            "Decisions made through the service: approval, referral and decline rates, average approved "
            "limit, and each segment's approval rate relative to the overall rate.",
        )
    )
    for by in INCLUSION_DIMENSIONS:
        inc = first if by == "urban_rural" else views.inclusion(by, from_month=months[0], to_month=month)
        rows = [
            [bilingual(r["label"]), count(k, r["decisions"])]
            + [count_share(k, r["cells"][d], "rate") for d in DECISIONS]
            + [
                num(r["approval_ratio"], 2),
                "–" if r["average_approved_limit_fen"] is None else f"{r['average_approved_limit_fen'] / 100:,.0f}",
            ]
            for r in [*inc["rows"], {**inc["total"], "label": {"zh": "合计", "en": "Total"}}]
        ]
        parts.append(heading(3, f"按{inc['by_label']['zh']}", f"By {inc['by_label']['en'].lower()}"))
        parts.append(
            table(
                [bilingual(inc["by_label"]), "决策数 <span class=en>Decisions</span>"]
                + [bilingual(label("decision", d)) for d in DECISIONS]
                + [
                    "批准率比值 <span class=en>Approval ratio</span>",
                    "平均额度（元）<span class=en>Avg limit (yuan)</span>",
                ],
                rows,
                "num",
            )
        )
    return "\n".join(parts)


def _validation_section(views: RegulatorViews, plots_dir: Path) -> tuple[str, str | None]:
    parts = [heading(2, "六、模型验证证据", "6. Validation evidence", "validation")]
    try:
        v = views.validation_with_plots(plots_dir)
    except Exception as err:  # no champion, or an unreadable run: the rest of the report still stands
        parts.append(para(f"无法读取冠军模型的验证证据：{err}", f"Validation evidence unavailable: {err}"))
        return "\n".join(parts), str(err)
    m, w = v["model"], v["windows"] or {}
    parts.append(
        para(
            f"冠军模型 {m['name']} 第{m['version']}版（运行 {m['run_id'][:12]}），测试窗口 {w.get('test_from', '?')} – "
            f"{w.get('test_to', '?')}。{v['note_zh']}",
            f"Champion {m['name']} version {m['version']} (run {m['run_id'][:12]}), test window "
            f"{w.get('test_from', '?')} – {w.get('test_to', '?')}. {v['note_en']}",
        )
    )
    d, c, s = v["discrimination"], v["calibration"], v["stability"]
    parts.append(
        table(
            ["指标 <span class=en>Metric</span>", "值 <span class=en>Value</span>"],
            [
                ["AUC", num(d["auc"])],
                ["Gini", num(d["gini"])],
                ["KS", num(d["ks"])],
                ["Brier", num(c["brier"])],
                ["ECE", num(c["ece"])],
                ["测试样本 <span class=en>Test rows</span>", num(c["n"])],
                ["违约 <span class=en>Defaults</span>", num(c["defaults"])],
                ["训练/测试评分PSI <span class=en>Score PSI train→test</span>", num(s["psi_score_train_test"])],
                ["被拒绝的分类 <span class=en>Classes rejected</span>", num(c["classes_rejected"])],
                ["挑战者AUC <span class=en>Challenger AUC</span>", num(v["challenger"]["auc"])],
            ],
            "num narrow",
        )
    )
    for key, zh, en in (
        ("by_class", "按分类校准", "Calibration per class"),
        ("by_grade", "按评级校准", "Calibration per grade"),
    ):
        parts.append(heading(3, zh, f"{en} (Jeffreys, α = {c['jeffreys_alpha']})"))
        rows = [
            [
                esc(r["group"]),
                f"{r['n']:,}",
                f"{r['defaults']:,}",
                pct(r["mean_pd"], 2),
                pct(r["default_rate"], 2),
                num(r["jeffreys_p"]),
                "是 <span class=en>yes</span>" if r["rejected"] else "否 <span class=en>no</span>",
            ]
            for r in c[key] or []
        ]
        parts.append(
            table(
                [
                    "组 <span class=en>Group</span>",
                    "n",
                    "违约 <span class=en>Defaults</span>",
                    "平均PD <span class=en>Mean PD</span>",
                    "违约率 <span class=en>Default rate</span>",
                    "Jeffreys p",
                    "拒绝 <span class=en>Rejected</span>",
                ],
                rows,
                "num",
            )
        )
    if s["csi_top"]:
        parts.append(heading(3, "特征稳定性（CSI最高的特征）", "Feature stability (largest CSI)"))
        parts.append(
            table(
                ["特征 <span class=en>Feature</span>", "CSI"],
                [[esc(r["feature"]), num(r["csi"])] for r in s["csi_top"]],
                "num narrow",
            )
        )
    shown = [figures.png_file(v["plots"][k], k) for k in ("roc", "calibration") if k in v["plots"]]
    if shown:
        parts.append('<div class="plots">' + "".join(shown) + "</div>")
    return "\n".join(parts), None


def _methods_section(k: int) -> str:
    from training.master_scale import MasterScale

    scale = MasterScale.load()
    rows = [
        [
            esc(g.grade),
            pct(g.pd_min, 2),
            pct(g.pd_max, 2) if not g.default else "–",
            esc(g.risk_class),
            bilingual(label("class", g.risk_class)),
        ]
        for g in scale.grades
    ]
    return "\n".join(
        [
            heading(2, "七、方法说明", "7. Methods", "methods"),
            para(
                "每月对所有在册商户（无论是否借款）以冠军模型评分：12个月违约概率（PD）→ 评分 → 评级 → 信用风险分类A（低）/B（一般）/C（较高）/D（高）。"
                "评级D表示已观察到违约，模型不会给出。",
                "Every month each registered merchant (borrower or not) is scored with the champion: 12-month probability "
                "of default (PD) → score → grade → credit-risk class A (low) / B (general) / C (higher) / D (high). Grade D "
                "means an observed default; the model never assigns it.",
            ),
            table(
                ["评级 <span class=en>Grade</span>", "PD ≥", "PD <", "分类 <span class=en>Class</span>", ""],
                rows,
                "num narrow",
            ),
            para(
                f"小单元格保护：少于{k}户商户的计数（含合计）不公布；若某行或某列只有一个被隐藏的单元格，则再隐藏该行/列中次小的单元格，"
                "并确保被隐藏单元格在行列方程组中都处于“环”上，使任何隐藏值都不能由合计推算；被隐藏单元格的占比、比率、均值同样不公布。"
                f"所有被隐藏单元格统一显示为“<{k}”（补充隐藏的单元格也可能不少于{k}户）。",
                f"Small-cell protection: counts (totals included) of fewer than {k} merchants are not published; a row or "
                "column with a single hidden cell gets its next-smallest cell hidden too, and hidden cells are completed so "
                "that each lies on a cycle of hidden cells, so no hidden value can be worked out from the totals; shares, "
                f"rates and means of hidden cells are hidden as well. Every hidden cell shows as '<{k}' (a cell hidden as a "
                f"complement may hold {k} or more).",
            ),
        ]
    )


def build_report(views: RegulatorViews, month: str) -> tuple[str, list[str]]:
    """The report as one HTML string, and warnings (sections that could not be filled)."""
    months = views.months_up_to(month, 24)
    k = views.k
    warnings = []
    with tempfile.TemporaryDirectory() as tmp:
        validation, problem = _validation_section(views, Path(tmp))
    if problem:
        warnings.append(f"validation evidence unavailable: {problem}")
    body = [
        '<h1>生活服务商户信用风险分类监管报告 <span class="en">/ Regulator report: credit-risk classes of '
        "life-service merchants</span></h1>",
        f'<p class="meta">报告月 Report month: <b>{esc(month)}</b> · 历史 History: {esc(months[0])} – {esc(months[-1])} · '
        f"最小单元格 Minimum cell: {k} · 生成时间 Generated: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}</p>",
        f'<p class="legend">{esc(SUPPRESSED_NOTE_ZH.format(k=k))}<br>'
        f'<span class="en">{esc(SUPPRESSED_NOTE_EN.format(k=k))}</span></p>',
        _distribution_section(views, month, months),
        _stability_section(views, month, months),
        _migration_section(views, month, months),
        _outcomes_section(views, month, months),
        _inclusion_section(views, month, months),
        validation,
        _methods_section(k),
    ]
    page = (
        f'<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>监管报告 Regulator report {esc(month)}</title><style>{CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )
    return page, warnings


def write_report(views: RegulatorViews, month: str, out: Path) -> dict:
    """Write the HTML report to ``out`` (atomically); returns ``{"html": path, "warnings": [...]}``."""
    page, warnings = build_report(views, month)
    out = write_text_atomic(out, page)
    return {"html": str(out), "bytes": len(page.encode()), "warnings": warnings}
