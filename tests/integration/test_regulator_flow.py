"""The regulator flow on the small market: score-all builds the class history with the session champion,
every view answers on it without publishing a small count, and the report is one self-contained file."""

from __future__ import annotations

import json
import re
from datetime import date

import polars as pl
import pytest
from typer.testing import CliRunner

from helpers import REGULATOR_MONTHS as MONTHS
from lifecredit.cli import app


@pytest.fixture
def in_regulator(regulator, monkeypatch):
    from core.settings import get_settings

    for k, v in regulator["env"].items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    return regulator


def test_score_all_writes_every_merchant_every_month(in_regulator):
    from core.settings import get_settings
    from regulator.history import scan_history
    from training.bundle import ScoringBundle
    from training.model_source import from_mlflow

    summary = in_regulator["summary"]
    latest = pl.read_parquet(in_regulator["features"] / "latest.parquet")
    assert len(summary["months"]) == MONTHS and summary["months"][-1]["as_of"] == str(latest["as_of"].max())
    assert summary["months"][-1]["merchants"] == latest.height  # borrowers or not
    h = scan_history(get_settings().class_history_dir).collect()
    assert h.select("merchant_id", "month").is_duplicated().sum() == 0
    assert h["city"].null_count() == 0 and (h["city"].str.slice(0, 2) == h["province"]).all()
    # one definition: the history's PD for a borrower-month is the model's PD on the panel's feature row
    bundle = ScoringBundle.load(from_mlflow(get_settings()).bundle_dir)
    panel = pl.read_parquet(in_regulator["features"] / "panel.parquet").filter(
        pl.col("as_of") == date.fromisoformat(summary["months"][-2]["as_of"])
    )
    expected = panel.select("merchant_id").with_columns(pd_panel=pl.Series(bundle.predict(panel, reasons=False)["pd"]))
    joined = expected.join(h.filter(pl.col("month") == summary["months"][-2]["month"]), on="merchant_id")
    assert joined.height == panel.height
    assert (joined["pd"] - joined["pd_panel"]).abs().max() < 1e-12


def test_rescoring_a_month_replaces_it(in_regulator):
    from core.settings import get_settings
    from regulator.history import scan_history

    last = in_regulator["summary"]["months"][-1]
    res = CliRunner().invoke(
        app, ["score-all", "--as-of", last["as_of"], "--validated", str(in_regulator["validated"])]
    )
    assert res.exit_code == 0, res.output
    h = scan_history(get_settings().class_history_dir).collect()
    assert h.filter(pl.col("month") == last["month"]).height == last["merchants"]
    assert h["month"].n_unique() == MONTHS
    bad = CliRunner().invoke(app, ["score-all", "--as-of", "2031-01-01"])
    assert bad.exit_code == 2 and "after the latest snapshot" in bad.stderr


def _counts(obj, found: list) -> list:
    if isinstance(obj, dict):
        if isinstance(obj.get("count"), int):
            found.append(obj["count"])
        for v in obj.values():
            _counts(v, found)
    elif isinstance(obj, list):
        for v in obj:
            _counts(v, found)
    return found


def test_views_answer_and_never_publish_a_small_count(in_regulator):
    from core.audit import AuditLog, AuditRecord
    from core.settings import get_settings
    from regulator.views import RegulatorViews

    settings = get_settings()
    log = AuditLog(settings.audit_url, checkpoint_seconds=None)
    ids = pl.read_parquet(in_regulator["features"] / "latest.parquet")["merchant_id"].to_list()
    for n, mid in enumerate(ids[:120]):
        decision = "approve" if n % 3 else "refer"
        log.append(
            AuditRecord(
                endpoint="/decide",
                key_name="bank-one",
                request={},
                merchant_id=mid,
                outputs={"decision": decision, "approved_limit_fen": 2_000_000 if n % 3 else 0},
            )
        )
    log.close()
    views = RegulatorViews(settings)
    k = settings.min_cell_count
    months = views.months()
    answers = [
        views.distribution(by, months[-1])
        for by in ("sector", "province", "city", "business_form", "urban_rural", "month")
    ]
    answers += [
        views.outcomes("class"),
        views.outcomes("grade"),
        views.stability(),
        views.migration(),
        views.concentration(),
        views.inclusion("business_form"),
        views.inclusion("province"),
    ]
    for a in answers:
        json.dumps(a)
        assert not [c for c in _counts(a, []) if 1 <= c < k], a["view"]
    outcomes = answers[6]
    assert outcomes["months_with_outcomes"] and outcomes["total"]["n"]["count"] > 0
    assert len(answers[8]["rows"]) == MONTHS - 1
    inc = answers[11]
    assert inc["total"]["decisions"]["count"] == 120
    assert inc["total"]["approval_rate"] == pytest.approx(80 / 120)
    v = views.validation()
    assert 0.5 < v["discrimination"]["auc"] <= 1 and len(v["calibration"]["by_class"]) == 4


def test_report_is_one_self_contained_bilingual_file(in_regulator, tmp_path):
    month = in_regulator["summary"]["months"][-1]["month"]
    out = tmp_path / "report.html"
    res = CliRunner().invoke(app, ["report", "--month", month, "--out", str(out)])
    assert res.exit_code == 0, res.output
    page = out.read_text(encoding="utf-8")
    for heading in (
        "风险分类分布",
        "Distribution over credit-risk classes",
        "稳定性",
        "Stability",
        "分类迁移",
        "Class migration",
        "模型验证证据",
        "Validation evidence",
        "Jeffreys",
    ):
        assert heading in page
    assert len(re.findall(r'src="data:image/png;base64,', page)) >= 4
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from elsewhere
    # suppressed cells (the city table of 400 merchants has some) show as "<10", escaped in the HTML
    assert '<span class="sup" title="suppressed / 已抑制">&lt;10</span>' in page and ">c</span>" not in page
    assert CliRunner().invoke(app, ["report", "--month", "1999-01", "--out", str(out)]).exit_code == 2
    pdf = CliRunner().invoke(app, ["report", "--month", month, "--out", str(tmp_path / "r.html"), "--pdf"])
    from regulator.report import pdf_engine

    if pdf_engine() is None:
        assert pdf.exit_code == 3 and "no PDF engine" in pdf.stderr and (tmp_path / "r.html").exists()
    else:
        assert pdf.exit_code == 0 and (tmp_path / "r.pdf").stat().st_size > 1000
        assert (tmp_path / "r.pdf").read_bytes().startswith(b"%PDF-")
