"""The merchant's own credit report as HTML: complete, bilingual, escaped, offline, and printable to PDF."""

from __future__ import annotations

import copy
import re
from html.parser import HTMLParser

import pytest

from merchant.html import PdfUnavailable, render, write_report
from regulator.pdf import pdf_engine

HOSTILE = "<img src=x onerror=alert(1)>"
OBJ_OPEN, OBJ_LATE = "OBJ-1A2B3C4D5E6F", "OBJ-99AA88BB77CC"
VOID = {"meta", "br", "img", "hr", "input", "link", "circle", "line", "path", "rect"}


def _month(i: int) -> str:
    return f"{2024 + (5 + i) // 12}-{(5 + i) % 12 + 1:02d}"


def sample_report() -> dict:
    """A report as ``GET /merchant/report`` answers it: 14 months with a re-score, records, two objections."""
    classes = "BBBBCCBBBBBBBB"
    history = [
        {
            "month": _month(i),
            "as_of": f"{_month(i)}-01",
            "pd": 0.05 if c == "C" else 0.0123 + i / 10000,
            "score": 600 + i,
            "grade": "6" if c == "C" else "4",
            "class": c,
            "kind": "monthly",
            "at": f"{_month(i)}-01",
            "note_en": None,
            "note_zh": None,
        }
        for i, c in enumerate(classes)
    ]
    history.append(
        {
            "month": "2025-07",
            "as_of": "2025-07-01",
            "pd": 0.008,
            "score": 670,
            "grade": "3",
            "class": "A",
            "kind": "rescore",
            "at": "2026-12-06T03:01:00+00:00",
            "note_en": "Re-scored after correction COR-0007 (objection OBJ-5566): complaint C0000009 deleted",
            "note_zh": "因更正 COR-0007（异议 OBJ-5566）重新评分：投诉 C0000009 已删除",
        }
    )
    reason = {"en": "Many complaints in the last year", "zh": "近一年投诉较多"}
    scale = [
        ("A", "low credit risk", "信用风险低", 0.0, 0.01, ["1", "2", "3"]),
        ("B", "general credit risk", "信用风险一般", 0.01, 0.04, ["4", "5"]),
        ("C", "higher credit risk", "信用风险较高", 0.04, 0.15, ["6", "7"]),
        ("D", "high credit risk", "信用风险高", 0.15, 1.0, ["8", "9", "D"]),
    ]
    no_objection = {"under_objection": False, "objection_id": None}
    pending = {"filed_by": "merchant-M00000123", "resolved_at": None, "resolved_by": None, "outcome": None}
    pending |= {"correction_id": None, "note": None}
    return {
        "merchant_id": "M00000123",
        "generated_at": "2026-12-06T03:00:00+00:00",
        "profile": {
            "sector": "catering",
            "province": "44",
            "business_form": "individual_business",
            "registered_on": "2019-03-01",
            "urban_rural": "urban",
        },
        "current": {
            "pd": 0.0123,
            "score": 640,
            "grade": "4",
            "class": "B",
            "class_text": {"en": "general credit risk", "zh": "信用风险一般"},
            "grade_pd_range": [0.01, 0.02],
            "features_as_of": "2025-07-01",
            "model_name": "lifecredit-merchant-pd",
            "model_version": "3",
            "rescored_at": None,
            "reasons": [{"code": "complaints_365d", **reason}],
        },
        "master_scale": [
            {"class": c, "en": en, "zh": zh, "pd_min": lo, "pd_max": hi, "grades": g} for c, en, zh, lo, hi, g in scale
        ],
        "history": history,
        "reasons": [
            {
                "code": "complaints_365d",
                **reason,
                "feature": "complaints_365d",
                "description_en": "Complaints received in the last 365 days",
                "description_zh": "近365天收到的投诉数",
                "value": 4.0,
                "peer_median": 1.0,
                "peer_count": 57,
                "peer_suppressed": False,
            },
            {
                "code": "revenue_trend_90d",
                "en": HOSTILE,
                "zh": "近90天营业额下降",
                "feature": "revenue_trend_90d",
                "description_en": "Change in revenue over 90 days",
                "description_zh": "近90天营业额变化",
                "value": -0.1834,
                "peer_median": 0.02,
                "peer_count": 57,
                "peer_suppressed": False,
            },
            {
                "code": "loan_dpd_max_180d",
                "en": "Late repayment",
                "zh": "近期还款逾期",
                "feature": "loan_dpd_max_180d",
                "description_en": "Longest days past due in 180 days",
                "description_zh": "近180天最长逾期天数",
                "value": 30.0,
                "peer_median": None,
                "peer_count": 6,
                "peer_suppressed": True,
            },
        ],
        "advice": [
            {
                "feature": "complaints_365d",
                "en": "Fewer complaints would improve the class.",
                "zh": "减少投诉可改善分类。",
            },
            {"feature": "loan_dpd_max_180d", "en": "Repay on time.", "zh": "按时还款。"},
        ],
        "peer_group": {
            "sector": "catering",
            "province": "44",
            "merchants": 57,
            "suppressed": False,
            "min_cell_count": 10,
        },
        "records": {
            "complaints": [
                {
                    "table": "complaints",
                    "record_id": "C0000001",
                    "date": "2025-03-02",
                    "source": "hotline_12315",
                    "category": "service_quality",
                    "severity": 2,
                    "status": "open",
                    "received_at": "2025-03-02T10:00:00+08:00",
                    "resolved_at": None,
                    "under_objection": True,
                    "objection_id": OBJ_OPEN,
                },
                {
                    "table": "complaints",
                    "record_id": "C0000002",
                    "date": "2024-11-20",
                    "source": "platform",
                    "category": "refund_dispute",
                    "severity": 1,
                    "status": "resolved",
                    "received_at": "2024-11-20T09:30:00+08:00",
                    "resolved_at": "2024-11-25T16:00:00+08:00",
                    **no_objection,
                },
            ],
            "public_records": [
                {
                    "table": "public_records",
                    "record_id": "P0000042",
                    "date": "2024-01-05",
                    "source": "market regulator publication (市场监管部门公示)",
                    "record_type": "abnormal_operation_listed",
                    "published_on": "2024-01-05",
                    "removed_on": "2024-09-30",
                    "penalty_fen": None,
                    "current": False,
                    **no_objection,
                }
            ],
            "loans": [
                {
                    "table": "loans",
                    "record_id": "L0000777",
                    "date": "2023-05-01",
                    "source": "lender B01",
                    "product": "term_loan",
                    "principal_fen": 5000000,
                    "term_months": 24,
                    "status": "delinquent",
                    "days_past_due": 30,
                    "outstanding_fen": 1234567,
                    "reported_on": "2025-06-30",
                    "performance_record_id": "L0000777|2025-06-30",
                    **no_objection,
                }
            ],
        },
        "objections": [
            {
                "objection_id": OBJ_LATE,
                "merchant_id": "M00000123",
                "kind": "repair",
                "table": "public_records",
                "record_id": "P0000042",
                "record_type": "abnormal_operation_listed",
                "reason": "rectified",
                "evidence": "certificate",
                "received_at": "2025-05-01T09:00:00+00:00",
                "due_by": "2025-05-21T09:00:00+00:00",
                **pending,
                "status": "overdue",
                "overdue": True,
            },
            {
                "objection_id": OBJ_OPEN,
                "merchant_id": "M00000123",
                "kind": "objection",
                "table": "complaints",
                "record_id": "C0000001",
                "record_type": None,
                "reason": "not our shop",
                "evidence": "receipt",
                "received_at": "2026-12-01T09:00:00+00:00",
                "due_by": "2026-12-21T09:00:00+00:00",
                **pending,
                "status": "received",
                "overdue": False,
            },
        ],
        "records_under_objection": 1,
    }


class _Checker(HTMLParser):
    """Parses the page, checks that every element closes in order, and keeps the text and the tags."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.tags, self.text, self.errors = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def _parse(page: str) -> _Checker:
    checker = _Checker()
    checker.feed(page)
    checker.close()
    assert not checker.errors and not checker.stack, (checker.errors, checker.stack)
    return checker


def _row_of(page: str, text: str) -> str:
    rows = [r for r in re.findall(r"<tr[^>]*>.*?</tr>", page, flags=re.S) if text in r]
    assert len(rows) >= 1, text
    return rows[0]


@pytest.fixture(scope="module")
def page() -> str:
    return render(sample_report())


def test_the_page_parses_with_balanced_elements_and_says_zh_cn(page):
    checker = _parse(page)
    assert page.startswith("<!DOCTYPE html>")
    assert ("html", {"lang": "zh-CN"}) in checker.tags
    assert any(t == "svg" for t, _ in checker.tags)


def test_every_record_and_objection_id_is_shown(page):
    for ident in ("C0000001", "C0000002", "P0000042", "L0000777", "L0000777|2025-06-30", OBJ_OPEN, OBJ_LATE):
        assert ident in page, ident


def test_the_objected_record_carries_the_mark_and_the_others_do_not(page):
    row = _row_of(page, "C0000001 ")
    assert "异议处理中" in row and "Under objection" in row and OBJ_OPEN in row and 'class="objected"' in row
    for other in ("C0000002", "L0000777", "P0000042 "):
        assert "异议处理中" not in _row_of(page, other), other
    assert "1 条记录异议处理中" in page


def test_both_languages_with_english_marked(page):
    for zh, en in (
        ("商户信用报告", "Merchant credit report"),
        ("分类历史", "Class history"),
        ("如何改善分类", "What would improve the class"),
        ("我的异议", "My objections"),
        ("贷款及还款", "Loans and repayment"),
    ):
        assert zh in page and en in page
    assert page.count('lang="en"') > 50
    assert page.index("商户信用报告") < page.index("Merchant credit report")


def test_no_scripts_and_no_external_resources(page):
    low = page.lower()
    assert "<script" not in low and "http://" not in low and "https://" not in low
    tags = _parse(page).tags
    assert not {t for t, _ in tags} & {"script", "link", "img", "iframe", "object", "embed", "base", "a"}
    assert not [
        (t, k) for t, attrs in tags for k in attrs if k in {"src", "href", "xlink:href", "srcset"} or k[:2] == "on"
    ]
    style = page[page.index("<style>") : page.index("</style>")]
    assert "url(" not in style and "@import" not in style


def test_hostile_text_is_escaped():
    report = sample_report()
    report["profile"]["sector"] = HOSTILE
    report["records"]["complaints"][0]["source"] = HOSTILE
    report["objections"][0]["note"] = '"><script>alert(2)</script>'
    page = render(report)
    _parse(page)
    assert HOSTILE not in page and "<script" not in page and "onerror=alert(1)>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_numbers_are_formatted_and_missing_values_dashed(page):
    assert "1.23%" in page and "¥50,000.00" in page and "¥12,345.67" in page
    row = _row_of(page, "C0000001 ")
    assert row.count("—") >= 1  # an open complaint has no resolved time
    assert "—" in _row_of(page, "P0000042 ")  # no penalty on a list entry
    assert "30" in _row_of(page, "L0000777 ") and "逾期" in _row_of(page, "L0000777 ")


def test_master_scale_lists_all_four_classes_with_their_pd_ranges(page):
    for c, span in (("A", "0.00% – 1.00%"), ("B", "1.00% – 4.00%"), ("C", "4.00% – 15.00%"), ("D", "≥ 15.00%")):
        assert span in page, c
    assert 'class="this"' in _row_of(page, "1.00% – 4.00%")
    assert "信用风险一般" in page and "general credit risk" in page


def test_history_chart_and_table_show_every_month_and_the_rescore(page):
    svg = page[page.index("<svg") : page.index("</svg>")]
    for i in range(14):
        assert _month(i) in svg
    assert all(f">{c}</text>" in svg for c in "ABCD")
    assert "re-score" in svg and svg.count("<circle") == 15 + 1
    row = _row_of(page, "COR-0007")
    assert 'class="rescore"' in row and "重新评分" in row and "因更正 COR-0007" in row


def test_reasons_show_value_next_to_the_peer_median_or_say_why_not(page):
    assert "同类商户不足10家，不显示" in page and "fewer than 10 peers" in page
    row = _row_of(page, "近一年投诉较多")
    assert re.search(r"<td>4</td><td>1</td>", row)
    assert "-0.18" in _row_of(page, "近90天营业额下降")
    assert "减少投诉可改善分类。" in page and "Repay on time." in page


def test_overdue_objection_is_flagged(page):
    late = _row_of(page, OBJ_LATE + "<")
    assert 'class="overdue"' in late and "Overdue" in late and "信用修复" in late
    assert "Overdue" not in _row_of(page, OBJ_OPEN + "<")


def test_footer_states_the_merchants_rights(page):
    footer = page[page.index("<footer>") :]
    for phrase in ("异议", "20日内", "信用修复", "/merchant/", "within 20 days", "credit repair", "your bank"):
        assert phrase in footer


def test_an_empty_report_renders_with_dashes():
    page = render({"merchant_id": None, "records": {}, "history": []})
    _parse(page)
    assert "—" in page and "无记录" in page and "<svg" not in page


def test_write_report_writes_the_html_atomically(tmp_path):
    out = tmp_path / "sub" / "report.html"
    done = write_report(sample_report(), out)
    assert done == {"html": out, "pdf": None}
    assert out.read_text(encoding="utf-8") == render(sample_report())
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.html"]


def test_without_a_pdf_engine_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    if pdf_engine() is not None:
        pytest.skip("WeasyPrint is installed: a PDF engine exists without any browser on PATH")
    out = tmp_path / "report.html"
    with pytest.raises(PdfUnavailable, match=r"install Chromium .*report\.html"):
        write_report(sample_report(), out, pdf=True)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["report.html"]


@pytest.mark.skipif(pdf_engine() is None, reason="no PDF engine: scripts/setup_browser.sh installs Chromium")
def test_the_pdf_prints_beside_the_html(tmp_path):
    report = copy.deepcopy(sample_report())
    done = write_report(report, tmp_path / "M00000123.html", pdf=True)
    pdf = done["pdf"].read_bytes()
    assert done["pdf"] == tmp_path / "M00000123.pdf" and pdf.startswith(b"%PDF-") and len(pdf) > 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["M00000123.html", "M00000123.pdf"]
