"""A merchant's own credit report as one self-contained, bilingual HTML page (and a PDF printed from it).

Input is the ``GET /merchant/report`` answer (the merchant API contract); output has no script and no
external resource, so it reads offline and prints on A4. Every value is escaped; a missing one shows as "—".
"""

from __future__ import annotations

import html
from pathlib import Path

from core.files import atomic_path, write_text_atomic
from core.vocabulary import CLASSES
from regulator.figures import CLASS_COLOURS
from regulator.labels import label
from regulator.pdf import PdfUnavailable, html_to_pdf

__all__ = ["PdfUnavailable", "render", "write_report"]

MISSING = "—"

WORDS: dict[str, tuple[str, str]] = {
    # complaint / loan / objection statuses
    "open": ("待处理", "open"),
    "resolved": ("已处理", "resolved"),
    "received": ("已受理", "received"),
    "overdue": ("逾期未答复", "overdue"),
    "current": ("正常", "current"),
    "delinquent": ("逾期", "past due"),
    "default": ("违约", "default"),
    "written_off": ("已核销", "written off"),
    "closed": ("已结清", "repaid"),
    # objections
    "objection": ("异议", "objection"),
    "repair": ("信用修复", "credit repair"),
    "corrected": ("已更正", "corrected"),
    "upheld": ("维持原记录", "record upheld"),
    "monthly": ("月度评分", "monthly"),
    "rescore": ("重新评分", "re-score"),
    # record tables and types
    "complaints": ("投诉", "complaint"),
    "public_records": ("公共记录", "public record"),
    "loans": ("贷款", "loan"),
    "loan_performance": ("还款状态", "repayment status"),
    "administrative_penalty": ("行政处罚", "administrative penalty"),
    "abnormal_operation_listed": ("列入经营异常名录", "listed: abnormal operation"),
    "abnormal_operation_removed": ("移出经营异常名录", "removed: abnormal operation"),
    "serious_violation_listed": ("列入严重违法失信名单", "listed: serious violation"),
    "serious_violation_removed": ("移出严重违法失信名单", "removed: serious violation"),
    "term_loan": ("分期贷款", "term loan"),
    "revenue_based": ("按营业额还款", "revenue-based"),
    # complaint sources and categories
    "hotline_12315": ("12315热线", "12315 hotline"),
    "platform": ("平台", "platform"),
    "regulator_referral": ("监管转办", "regulator referral"),
    "food_safety": ("食品安全", "food safety"),
    "hygiene": ("卫生", "hygiene"),
    "service_quality": ("服务质量", "service quality"),
    "price_dispute": ("价格争议", "price dispute"),
    "refund_dispute": ("退款争议", "refund dispute"),
    "false_advertising": ("虚假宣传", "false advertising"),
    "property_damage": ("财物损坏", "property damage"),
    "other": ("其他", "other"),
}
"""Display words for the codes in the report; a code not listed shows as itself."""


# -- formatting: every value from the dict goes through one of these ------------------------------
def _e(value) -> str:
    """The value escaped for HTML; None or "" as the missing mark."""
    return MISSING if value is None or value == "" else html.escape(str(value))


def _en(text: str) -> str:
    return f'<span class="en" lang="en">{text}</span>'


def _bi(zh: str, en: str) -> str:
    """Chinese then English, both escaped (the English marked ``lang="en"``)."""
    return f"{html.escape(zh)} {_en(html.escape(en))}"


def _pair(zh, en, sep: str = " ") -> str:
    """Two values from the dict, Chinese then English, both escaped."""
    return f"{_e(zh)}{sep}{_en(_e(en))}"


def _word(code) -> str:
    zh, en = WORDS.get(code, (None, None)) if isinstance(code, str) else (None, None)
    return _bi(zh, en) if zh else _e(code)


def _labelled(dimension: str, code) -> str:
    lbl = label(dimension, code) if code is not None else None
    if not lbl:
        return MISSING
    return _e(lbl["zh"]) if lbl["zh"] == lbl["en"] else _bi(lbl["zh"], lbl["en"])


def _pct(pd) -> str:
    return MISSING if pd is None else f"{100 * pd:.2f}%"


def _yuan(fen) -> str:
    return MISSING if fen is None else f"¥{fen / 100:,.2f}"


def _num(value) -> str:
    if isinstance(value, bool):
        return _bi("是", "yes") if value else _bi("否", "no")
    if isinstance(value, float) and value.is_integer():
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return f"{value:,}" if isinstance(value, int) else _e(value)


def _when(value) -> str:
    """An ISO date or time as written, the date and the time each kept on one line."""
    if not isinstance(value, str) or not value:
        return _e(value)
    return " ".join(f'<span class="nw">{_e(part)}</span>' for part in value.split("T", 1))


def _h(level: int, zh: str, en: str) -> str:
    return f"<h{level}>{_bi(zh, en)}</h{level}>"


def _table(head: str, rows: list[tuple[str, list[str]]], empty: tuple[str, str]) -> str:
    """A table; ``head`` is "中文 English|..." (one column each), a row is (css class, cells already HTML)."""
    if not rows:
        return f'<p class="none">{_bi(*empty)}</p>'
    th = "".join(f"<th>{_bi(*col.split(' ', 1))}</th>" for col in head.split("|"))
    body = "".join(f'<tr class="{cls}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>" for cls, cells in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _objected(rec: dict) -> tuple[str, str]:
    """The row class and the 异议处理中 mark of a record under objection ("" for the others)."""
    if not rec.get("under_objection"):
        return "", ""
    mark = f'<br><span class="mark">异议处理中 {_en("Under objection")} <span class="nw">{_e(rec.get("objection_id"))}</span></span>'
    return "objected", mark


# -- sections -------------------------------------------------------------------------------------
def _header(report: dict) -> str:
    profile, cur = report.get("profile") or {}, report.get("current") or {}
    model = f"{_e(cur.get('model_name'))} v{_e(cur.get('model_version'))}"
    facts = [
        (("商户编号", "Merchant ID"), _e(report.get("merchant_id"))),
        (("行业", "Sector"), _labelled("sector", profile.get("sector"))),
        (("省份", "Province"), _labelled("province", profile.get("province"))),
        (("经营主体", "Business form"), _labelled("business_form", profile.get("business_form"))),
        (("登记日期", "Registered on"), _when(profile.get("registered_on"))),
        (("城乡", "Urban / rural"), _labelled("urban_rural", profile.get("urban_rural"))),
        (("生成时间", "Generated at"), _when(report.get("generated_at"))),
        (("模型版本", "Model version"), model),
        (("数据截至", "Features as of"), _when(cur.get("features_as_of"))),
    ]
    cells = "".join(f"<tr><th>{_bi(*k)}</th><td>{v}</td></tr>" for k, v in facts)
    n = report.get("records_under_objection")
    note = f'<p class="notice">{n} 条记录异议处理中 {_en(f"{n} record(s) under objection")}</p>' if n else ""
    title = _bi("商户信用报告", "Merchant credit report")
    return f'<header><h1>{title}</h1><table class="facts">{cells}</table>{note}</header>'


def _current(report: dict) -> str:
    cur = report.get("current") or {}
    text = cur.get("class_text") or {}
    lo, hi = (list(cur.get("grade_pd_range") or []) + [None, None])[:2]
    again = f"更正后重新评分于 {_when(cur.get('rescored_at'))} {_en('Re-scored after a correction')}"
    rescored = f'<p class="notice">{again}</p>' if cur.get("rescored_at") else ""
    cls = cur.get("class")
    colour = CLASS_COLOURS.get(cls, "#777") if isinstance(cls, str) else "#777"
    card = (
        f'<div class="card"><div class="big" style="background:{colour}">{_e(cls)}</div><div>'
        f"<p><b>{_pair(text.get('zh'), text.get('en'))}</b></p>"
        f"<p>{_bi('违约概率（12个月）', 'Probability of default, 12 months')}: <b>{_pct(cur.get('pd'))}</b></p>"
        f"<p>{_bi('评分', 'Score')}: <b>{_num(cur.get('score'))}</b> · {_bi('评级', 'Grade')}: <b>{_e(cur.get('grade'))}</b>"
        f" ({_pct(lo)} – {_pct(hi)})</p></div></div>"
    )
    rows = []
    for s in report.get("master_scale") or []:
        top = s.get("pd_max") is None or s.get("pd_max") >= 1
        span = f"≥ {_pct(s.get('pd_min'))}" if top else f"{_pct(s.get('pd_min'))} – {_pct(s.get('pd_max'))}"
        grades = ", ".join(_e(g) for g in s.get("grades") or []) or MISSING
        cells = [f"<b>{_e(s.get('class'))}</b>", _pair(s.get("zh"), s.get("en")), span, grades]
        rows.append(("this" if s.get("class") == cls else "", cells))
    scale = _table("分类 Class|含义 Meaning|违约概率区间 PD range|评级 Grades", rows, ("无", "No master scale"))
    title = _h(2, "当前信用风险分类", "Current credit-risk class")
    return title + card + rescored + _h(3, "分类标准（主标尺）", "Master scale") + scale


def _chart(history: list[dict]) -> str:
    """The class history as an inline SVG step chart: classes A–D down the y axis, months along x."""
    points = [(i, h) for i, h in enumerate(history) if h.get("class") in CLASSES]
    if not points:
        return ""
    step, left, top, row = 46, 40, 14, 34
    width, height = left + step * len(history) + 10, top + row * len(CLASSES) + 62
    y = {c: top + row * k + row // 2 for k, c in enumerate(CLASSES)}
    parts = [
        f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="信用风险分类历史 Class history"><title>信用风险分类历史 Class history</title>'
    ]
    for c in CLASSES:
        parts.append(
            f'<line x1="{left}" x2="{width - 6}" y1="{y[c]}" y2="{y[c]}" stroke="#ddd"/>'
            f'<text x="{left - 14}" y="{y[c] + 5}" font-size="14" font-weight="bold" fill="{CLASS_COLOURS[c]}">{c}</text>'
        )
    xs = {i: left + step * i + step // 2 for i in range(len(history))}
    path = "".join(
        f"{'M' if n == 0 else 'H'}{xs[i]} {'' if n == 0 else 'V'}{y[h['class']]}" for n, (i, h) in enumerate(points)
    )
    parts.append(f'<path d="{path}" fill="none" stroke="#1565c0" stroke-width="2"/>')
    for i, h in enumerate(history):
        label_y = top + row * len(CLASSES) + 14
        parts.append(
            f'<text x="{xs[i]}" y="{label_y}" font-size="9" text-anchor="end" '
            f'transform="rotate(-45 {xs[i]} {label_y})">{_e(h.get("month"))}</text>'
        )
        if h.get("class") not in CLASSES:
            continue
        colour = CLASS_COLOURS[h["class"]]
        if h.get("kind") == "rescore":
            parts.append(
                f'<line x1="{xs[i]}" x2="{xs[i]}" y1="{top}" y2="{top + row * len(CLASSES)}" stroke="#e65100" '
                f'stroke-dasharray="3 3"/><circle cx="{xs[i]}" cy="{y[h["class"]]}" r="7" fill="#fff" '
                f'stroke="#e65100" stroke-width="2"/><text x="{xs[i] - 5}" y="{top + 9}" font-size="9" fill="#e65100" '
                'text-anchor="end">'
                "重评 re-score</text>"
            )
        parts.append(f'<circle cx="{xs[i]}" cy="{y[h["class"]]}" r="4" fill="{colour}"/>')
    return '<figure class="chart">' + "".join(parts) + "</svg></figure>"


def _history(report: dict) -> str:
    history = report.get("history") or []
    rows = []
    for h in history:
        rescore = h.get("kind") == "rescore"
        note = _pair(h.get("note_zh"), h.get("note_en"), "<br>") if rescore else ""
        cells = [_e(h.get("month")), f"<b>{_e(h.get('class'))}</b>", _e(h.get("grade")), _num(h.get("score"))]
        cells += [_pct(h.get("pd")), _word(h.get("kind")), _when(h.get("at")), note]
        rows.append(("rescore" if rescore else "", cells))
    head = "月份 Month|分类 Class|评级 Grade|评分 Score|违约概率 PD|类型 Kind|时间 At|说明 Note"
    return _h(2, "分类历史", "Class history") + _chart(history) + _table(head, rows, ("暂无", "No class history yet"))


def _reasons(report: dict) -> str:
    peers = report.get("peer_group") or {}
    k = peers.get("min_cell_count")
    rows = []
    for r in report.get("reasons") or (report.get("current") or {}).get("reasons") or []:
        if r.get("peer_suppressed"):
            median = f'<span class="sup">同类商户不足{_e(k)}家，不显示 {_en(f"fewer than {_e(k)} peers")}</span>'
        else:
            median = _num(r.get("peer_median"))
        feature = _pair(r.get("description_zh"), r.get("description_en"), "<br>")
        rows.append(("", [_pair(r.get("zh"), r.get("en"), "<br>"), feature, _num(r.get("value")), median]))
    group = (
        f"{_bi('同类商户', 'Peers')}: {_labelled('sector', peers.get('sector'))} · "
        f"{_labelled('province', peers.get('province'))} · {_num(peers.get('merchants'))}"
    )
    head = "原因 Reason|指标 Measure|本商户 This merchant|同类中位数 Peer median"
    advice = (
        "".join(f"<li>{_pair(a.get('zh'), a.get('en'), '<br>')}</li>" for a in report.get("advice") or [])
        or f"<li>{_bi('暂无建议', 'No advice')}</li>"
    )
    improve = _h(3, "如何改善分类", "What would improve the class") + f"<ul>{advice}</ul>"
    title = _h(2, "影响分类的主要原因", "Main reasons for the class")
    return title + f'<p class="meta">{group}</p>' + _table(head, rows, ("无", "None")) + improve


def _records(report: dict) -> str:
    recs = report.get("records") or {}
    complaints, public, loans = (recs.get(t) or [] for t in ("complaints", "public_records", "loans"))
    ids = "编号 Record ID|日期 Date|来源 Source|"

    def row(rec: dict, cells: list[str]) -> tuple[str, list[str]]:
        cls, mark = _objected(rec)
        return cls, [f"{_e(rec.get('record_id'))} {mark}", _when(rec.get("date")), _word(rec.get("source")), *cells]

    n, shut = len(complaints), sum(1 for c in complaints if c.get("status") == "resolved")
    opened = sum(1 for c in complaints if c.get("status") == "open")
    counts = f'<p class="meta">收到 {n} · 已处理 {shut} · 待处理 {opened} {_en(f"received {n}, resolved {shut}, open {opened}")}</p>'
    c_rows = []
    for c in complaints:
        cells = [_word(c.get("category")), _num(c.get("severity")), _word(c.get("status"))]
        c_rows.append(row(c, [*cells, _when(c.get("received_at")), _when(c.get("resolved_at"))]))
    p_rows = []
    for p in public:
        state = _bi("当前有效", "current") if p.get("current") else _bi("已移除", "removed")
        cells = [_word(p.get("record_type")), _when(p.get("published_on")), state, _when(p.get("removed_on"))]
        p_rows.append(row(p, [*cells, _yuan(p.get("penalty_fen"))]))
    l_rows = []
    for ln in loans:
        cells = [_word(ln.get("product")), _yuan(ln.get("principal_fen")), _num(ln.get("term_months"))]
        cells += [_word(ln.get("status")), _num(ln.get("days_past_due")), _yuan(ln.get("outstanding_fen"))]
        l_rows.append(row(ln, [*cells, _when(ln.get("reported_on")), _e(ln.get("performance_record_id"))]))
    none = ("无记录", "No records")
    c_head = ids + "类别 Category|严重程度 Severity|状态 Status|受理 Received|处理完毕 Resolved"
    p_head = ids + "类型 Type|公示日期 Published|状态 Status|移出日期 Removed on|罚款 Penalty"
    l_head = ids + "产品 Product|本金 Principal|期限（月） Term (months)|还款状态 Status|逾期天数 Days past due|"
    l_head += "未还余额 Outstanding|报送日 Reported|还款记录编号 Status record ID"
    parts = [_h(2, "信用记录", "Records"), _h(3, "投诉", "Complaints"), counts, _table(c_head, c_rows, none)]
    parts += [_h(3, "公共记录", "Public records"), _table(p_head, p_rows, none)]
    return "".join([*parts, _h(3, "贷款及还款", "Loans and repayment"), _table(l_head, l_rows, none)])


def _objections(report: dict) -> str:
    rows = []
    for o in report.get("objections") or []:
        overdue = bool(o.get("overdue")) or o.get("status") == "overdue"
        state = _word(o.get("status")) + (' <span class="mark">⚠ 逾期 ' + _en("Overdue") + "</span>" if overdue else "")
        record = f"{_word(o.get('table'))} {_e(o.get('record_id'))}"
        outcome = _word(o.get("outcome")) + (f"<br><small>{_e(o.get('note'))}</small>" if o.get("note") else "")
        cells = [_e(o.get("objection_id")), record, _word(o.get("kind")), _when(o.get("received_at"))]
        rows.append(("overdue" if overdue else "", [*cells, _when(o.get("due_by")), state, outcome]))
    head = "异议编号 Objection ID|记录 Record|类型 Kind|受理时间 Received|答复期限 Due by|状态 Status|结果 Outcome"
    return _h(2, "我的异议", "My objections") + _table(head, rows, ("未提出异议", "No objections"))


def _queries(report: dict) -> str:
    rows = [
        ("", [_when(q.get("at")), _e(q.get("by")), _pair(q.get("zh"), q.get("en"))])
        for q in report.get("queries") or []
    ]
    head = "时间 When|机构 Who|用途 Purpose"
    return _h(2, "查询记录", "Who looked at this record") + _table(head, rows, ("尚无查询记录", "No lookups yet"))


FOOTER_ZH = (
    "您有权对本报告中的任何记录提出异议，数据管理方在收到异议后20日内答复，处理期间该记录标注“异议处理中”。"
    "对已公示的经营异常名录等失信记录，符合条件的可申请信用修复。"
    "提出异议或信用修复，请登录商户页面 /merchant/，或联系您的开户银行。"
)
FOOTER_EN = (
    "You may object to any record in this report; the data steward answers within 20 days of receiving the "
    "objection, and the record is marked 'under objection' meanwhile. For published listings (such as the "
    "abnormal-operation list) you may apply for credit repair once the conditions are met. To object or apply, "
    "use the merchant page /merchant/ or ask your bank."
)

CSS = """
@page{size:A4;margin:14mm 12mm}
body{font-family:"Noto Sans CJK SC","WenQuanYi Micro Hei","PingFang SC","Microsoft YaHei",sans-serif;color:#1a1a1a;
line-height:1.45;max-width:1000px;margin:1.5em auto;padding:0 1em;font-size:14px}
h1{font-size:1.5em;border-bottom:3px solid #1565c0;padding-bottom:.3em}h2{margin-top:1.6em;color:#0d47a1;
border-bottom:1px solid #bbb;break-after:avoid}h3{font-size:1.05em;break-after:avoid}.en{color:#555;font-weight:normal}
table{border-collapse:collapse;width:100%;margin:.5em 0 1em;font-size:.85em}th,td{border:1px solid #ccc;padding:3px 6px;
vertical-align:top;text-align:left}th{background:#eef3fa}thead{display:table-header-group}tr,figure,.card{break-inside:avoid}
table.facts{width:auto}table.facts th{width:12em}.card{display:flex;gap:1em;align-items:center;border:1px solid #ccc;
padding:.6em 1em}.card p{margin:.2em 0}.big{color:#fff;font-size:2.6em;font-weight:bold;width:1.6em;text-align:center;
border-radius:6px}tr.this td{background:#e3f2fd;font-weight:bold}tr.rescore td,tr.objected td{background:#fff8e1}
tr.overdue td{background:#ffebee}.mark{color:#b71c1c;font-weight:bold}.nw{white-space:nowrap}.sup{color:#6d4c41}
.notice{background:#fff8e1;border-left:4px solid #ffa000;padding:.4em .8em}.meta{color:#444}figure{margin:0}
footer{margin-top:2em;border-top:2px solid #1565c0;padding-top:.6em;font-size:.9em;break-inside:avoid}
@media print{body{margin:0;max-width:none;font-size:12px}}
"""


def render(report: dict) -> str:
    """The whole report as one HTML document: inline CSS and SVG only, every value escaped."""
    title = f"商户信用报告 Merchant credit report {_e(report.get('merchant_id'))}"
    body = [section(report) for section in (_header, _current, _history, _reasons, _records, _objections, _queries)]
    body += [
        f"<footer>{_h(2, '您的权利', 'Your rights')}<p>{html.escape(FOOTER_ZH)}</p>"
        f"<p>{_en(html.escape(FOOTER_EN))}</p></footer>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )


def write_report(report: dict, out: Path, *, pdf: bool = False) -> dict:
    """Write the HTML atomically and, with ``pdf``, the PDF beside it; ``{"html": path, "pdf": path | None}``.

    Raises :class:`PdfUnavailable` (naming what to install) when no PDF engine exists; the HTML is written first.
    """
    out = write_text_atomic(Path(out), render(report))
    if not pdf:
        return {"html": out, "pdf": None}
    target = out.with_suffix(".pdf")
    try:
        with atomic_path(target) as tmp:
            html_to_pdf(out, tmp)
    except PdfUnavailable as err:
        raise PdfUnavailable(f"{err} (the HTML report is at {out})") from err
    return {"html": out, "pdf": target}
