"""The regulator dashboard in headless Chromium, against a real ``lifecredit serve`` over HTTP.

The session champion scores 14 months of the small market (``lifecredit score-all``), a bank
makes a few decisions, merchants' objections are filed into the server's objections store, then a
regulator signs in on ``/regulator/``: the page loads with no console error, every chart draws,
changing a filter redraws the chart, suppressed cells read ``<10``, the language toggles, the
objections section follows its own dimension and kind, and a screenshot is kept
(``artifacts/dashboard.png`` and the test's tmp folder). Skipped, saying so, only when Chromium or chromedriver is missing
(``scripts/setup_browser.sh`` installs both).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from helpers import BIN, REGULATOR_MONTHS, ROOT, apply_env, file_objections, free_port, headless_chromium, http, server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
MONTHS = REGULATOR_MONTHS  # the oldest two have fully observed 12-month outcomes in the 30-month small market
CANVASES = (
    "chart-distribution",
    "chart-shares",
    "chart-psi",
    "chart-outcomes",
    "chart-approval",
    "chart-calibration",
    "chart-objections",
    "chart-inspections",
)
RECEIVED = datetime.now(UTC) - timedelta(days=10)

pytestmark = pytest.mark.skipif(
    not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
    reason=f"headless browser test needs {CHROMIUM} and {CHROMEDRIVER}: run scripts/setup_browser.sh "
    "(apt-get install chromium chromium-driver)",
)


def _inspect_everyone(served_champion, small_market, root, run) -> str:
    """A census inspection plan (every eligible merchant) of the latest month, its simulated findings recorded."""
    import polars as pl
    import yaml

    from regulator.inspections import POLICY_FILE

    month = pl.read_parquet(served_champion["features"] / "latest.parquet")["as_of"].max().strftime("%Y-%m")
    census = yaml.safe_load(POLICY_FILE.read_text(encoding="utf-8"))
    census.update(version="test-census", ratios={c: 1.0 for c in "ABCD"})
    policy = root / "var" / "inspections" / "policies" / "census.yaml"
    policy.parent.mkdir(parents=True)
    policy.write_text(yaml.safe_dump(census, allow_unicode=True), encoding="utf-8")
    from typer.testing import CliRunner

    from lifecredit.cli import app

    plan, results = root / "plan.json", root / "results.csv"
    lifecredit = {k: v for k, v in run["env"].items() if k.startswith("LIFECREDIT_")}
    with pytest.MonkeyPatch.context() as mp:  # in this process: the CLI's imports are already loaded
        apply_env(lifecredit, mp)
        for args in (
            ["inspections", "plan", "--month", month, "--policy", str(policy), "--seed", "7", "--out", str(plan)],
            ["simulate-inspections", "--plan", str(plan), "--raw", str(small_market), "--out", str(results)],
            ["inspections", "record", "--file", str(results)],
        ):
            res = CliRunner().invoke(app, args)
            assert res.exit_code == 0, res.output[-3000:]
    from core.settings import get_settings

    get_settings.cache_clear()
    import json

    return json.loads(plan.read_text(encoding="utf-8"))["plan_id"]


@pytest.fixture(scope="module")
def board(served_champion, validated_market, small_market, class_history, tmp_path_factory):
    """A real server over a 14-month class history; yields its URL and a regulator key."""
    root = tmp_path_factory.mktemp("dashboard")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIFECREDIT_")}
    env.update(
        served_champion["env"],
        LIFECREDIT_VAR_DIR=str(root / "var"),
        LIFECREDIT_HISTORY_DIR=str(class_history),
        OMP_WAIT_POLICY="PASSIVE",
        BENTOML_DO_NOT_TRACK="true",
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
        BENTOML_HOME=str(root / "bentoml_home"),
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    run = dict(env=env, capture_output=True, text=True, cwd=ROOT, timeout=600)
    keys = {
        role: subprocess.run([str(BIN / "lifecredit"), "keys", "create", "--role", role], **run, check=True)
        .stdout.strip()
        .splitlines()[-1]
        for role in ("bank", "regulator")
    }
    import polars as pl

    ids = pl.read_parquet(served_champion["features"] / "latest.parquet")["merchant_id"].to_list()
    # 14 merchants' objections 10 days ago (half resolved), 3 repair requests 40 days ago (overdue)
    file_objections(
        root / "var" / "objections.db", ids[:14], ids[20:23], RECEIVED, RECEIVED - timedelta(days=30), timedelta(days=2)
    )
    plan_id = _inspect_everyone(served_champion, small_market, root, run)
    port = free_port()
    with server([str(BIN / "lifecredit"), "serve", "--port", str(port)], env, port, root / "serve.log") as url:
        for mid in ids[:120]:
            status, body = http(
                "POST",
                f"{url}/decide",
                {"merchant_id": mid, "requested_amount_fen": 2_000_000, "term_months": 12, "product": "term_loan"},
                keys["bank"],
            )
            assert status == 200, body
        yield {"url": url, "key": keys["regulator"], "bank": keys["bank"], "root": root, "plan_id": plan_id}


@pytest.fixture(scope="module")
def browser(board):
    with headless_chromium(1440, 900) as driver:
        yield driver


def _wait(driver, script: str, seconds: float = 60, what: str = ""):
    """Poll a JavaScript expression until it is truthy; return its value."""
    deadline = time.monotonic() + seconds
    while True:
        value = driver.execute_script(f"return ({script});")
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what or script}"
        time.sleep(0.2)


def _severe(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _labels(driver, canvas: str) -> list:
    return driver.execute_script(f"const c = Chart.getChart('{canvas}'); return c ? c.data.labels : null;")


def _painted(driver, canvas: str) -> int:
    """How many pixels of the canvas are not transparent (a drawn chart has thousands)."""
    return driver.execute_script(
        """
        const c = document.getElementById(arguments[0]);
        if (!c || !c.width || !c.height) return 0;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n;""",
        canvas,
    )


def _changes(driver, expression: str, action, seconds: float = 60) -> None:
    """Do ``action`` and wait until the JSON of a page expression differs from what it was before."""
    script = f"return JSON.stringify({expression});"
    before = driver.execute_script(script)
    action()
    deadline = time.monotonic() + seconds
    while driver.execute_script(script) == before:
        assert time.monotonic() < deadline, f"{expression} did not change"
        time.sleep(0.2)


def _select(driver, element_id: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, element_id)).select_by_value(value)


def test_dashboard_signs_in_draws_filters_and_suppresses(board, browser, tmp_path):
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(f"{board['url']}/regulator/")
    assert driver.find_element(By.ID, "signin").is_displayed()
    assert not driver.find_element(By.ID, "board").is_displayed()
    driver.find_element(By.ID, "key").send_keys(board["key"])
    driver.find_element(By.CSS_SELECTOR, "#signin-form button").click()
    _wait(driver, "document.body.dataset.ready === 'true'", what="the dashboard to load its views")
    assert driver.execute_script("return sessionStorage.getItem('lifecredit.regulatorKey')") == board["key"]
    assert not driver.find_element(By.ID, "board-error").text, driver.find_element(By.ID, "board-error").text

    # every chart drew something; the heatmap has its 5 x 5 cells
    for canvas in CANVASES:
        assert _wait(driver, f"!!Chart.getChart('{canvas}')", what=canvas)
        assert _painted(driver, canvas) > 500, f"{canvas} is blank"
    assert len(driver.find_elements(By.CSS_SELECTOR, "#heatmap svg rect.cell")) == 25
    assert len(_labels(driver, "chart-shares")) == MONTHS and len(_labels(driver, "chart-psi")) == MONTHS - 1
    model = driver.find_element(By.ID, "table-model").text
    assert "AUC" in model and "lifecredit-merchant-pd" in model

    # a filter changes the chart: dimension, then month, then sector (the time series)
    pixels = driver.execute_script("return document.getElementById('chart-distribution').toDataURL();")
    _changes(driver, "Chart.getChart('chart-distribution').data.labels", lambda: _select(driver, "f-by", "urban_rural"))
    assert set(_labels(driver, "chart-distribution")) <= {"Urban", "Rural", "unknown"}
    assert driver.execute_script("return document.getElementById('chart-distribution').toDataURL();") != pixels
    months = [o.get_attribute("value") for o in driver.find_elements(By.CSS_SELECTOR, "#f-month option")]
    _changes(
        driver,
        "Chart.getChart('chart-distribution').data.datasets.map(d => d.data)",
        lambda: _select(driver, "f-month", months[-1]),
    )  # the oldest month
    _wait(
        driver,
        "document.getElementById('migration-sub').textContent.startsWith('No month before')",
        what="the migration view to follow the month",
    )  # nothing before the oldest month
    sector = driver.find_elements(By.CSS_SELECTOR, "#f-sector option")[1].get_attribute("value")
    _changes(
        driver,
        "Chart.getChart('chart-shares').data.datasets.map(d => d.data)",
        lambda: _select(driver, "f-sector", sector),
    )
    assert not driver.find_element(By.ID, "f-province").is_enabled()
    _select(driver, "f-sector", "")

    # small cells: 400 merchants over ~100 cities, so the city table hides cells, shown as <10
    _select(driver, "f-month", months[0])
    _changes(driver, "Chart.getChart('chart-distribution').data.labels", lambda: _select(driver, "f-by", "city"))
    _wait(driver, "document.querySelectorAll('#table-distribution .sup').length > 0", what="suppressed cells")
    _wait(driver, "document.querySelectorAll('#heatmap svg rect.sup-cell').length > 0", what="hidden heatmap cells")
    assert "<10" in driver.find_element(By.ID, "heatmap").text
    marks = {e.text for e in driver.find_elements(By.CSS_SELECTOR, "#table-distribution .sup")}
    assert marks == {"<10"}
    assert driver.find_element(By.ID, "sup-mark").text == "<10"

    # language toggle
    heading = driver.find_element(By.CSS_SELECTOR, "#sec-distribution h2").text
    driver.find_element(By.ID, "lang").click()
    _wait(driver, f"document.querySelector('#sec-distribution h2').textContent !== {_js_str(heading)}", what="toggle")
    toggled = driver.find_element(By.CSS_SELECTOR, "#sec-distribution h2").text
    assert {heading, toggled} == {"Distribution over credit-risk classes", "风险分类分布"}
    if toggled != "Distribution over credit-risk classes":
        driver.find_element(By.ID, "lang").click()

    assert not _severe(driver), _severe(driver)
    _screenshot(driver, tmp_path)


def test_objections_section_draws_and_follows_its_choices(board, browser):
    from selenium.webdriver.common.by import By

    driver = browser
    driver.set_window_size(1440, 900)  # the first test's screenshot left it page-high
    driver.get(f"{board['url']}/regulator/")
    if driver.execute_script("return sessionStorage.getItem('lifecredit.regulatorKey')") is None:
        driver.find_element(By.ID, "key").send_keys(board["key"])
        driver.find_element(By.CSS_SELECTOR, "#signin-form button").click()
    _wait(driver, "document.body.dataset.ready === 'true'", what="the dashboard to load its views")
    if driver.find_element(By.ID, "lang").text != "中文":
        driver.find_element(By.ID, "lang").click()  # English
    assert driver.find_element(By.CSS_SELECTOR, "#sec-objections h2").text == "Objections and credit repair"
    assert _wait(driver, "!!Chart.getChart('chart-objections')", what="the objections chart")
    assert _painted(driver, "chart-objections") > 500

    # by month of receipt: the 14 objections' month is published (14 merchants), its parts are small
    month = RECEIVED.strftime("%Y-%m")
    assert month in _labels(driver, "chart-objections")
    table = driver.find_element(By.ID, "table-objections")
    head = [th.text for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
    assert head[:3] == ["Month", "Received", "Resolved"] and "Overdue" in head
    row = next(tr for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr") if tr.text.startswith(month))
    cells = [td.text for td in row.find_elements(By.CSS_SELECTOR, "td")]
    assert cells[1] == "14" and "<10" in cells, cells
    assert not driver.find_element(By.ID, "o-month").is_enabled()

    # by sector: one month of receipt, sector rows, a total; every small cell reads <10
    _changes(driver, "Chart.getChart('chart-objections').data.labels", lambda: _select(driver, "o-by", "sector"))
    assert driver.find_element(By.ID, "o-month").is_enabled()
    assert driver.find_element(By.ID, "o-month").get_attribute("value") == month
    rows = driver.find_elements(By.CSS_SELECTOR, "#table-objections tbody tr")
    assert rows[-1].text.startswith("Total") and len(rows) >= 2
    marks = {e.text for e in driver.find_elements(By.CSS_SELECTOR, "#table-objections .sup")}
    assert marks == {"<10"}
    assert month in driver.find_element(By.ID, "objections-sub").text

    # repair requests only: the earlier month, every non-zero count hidden (3 merchants)
    _select(driver, "o-by", "month")
    _wait(driver, "document.getElementById('o-month').disabled", what="the by-month table")
    _select(driver, "o-kind", "repair")
    _wait(driver, "document.getElementById('objections-sub').textContent.startsWith('Credit repair')", what="repairs")
    earlier = (RECEIVED - timedelta(days=30)).strftime("%Y-%m")
    row = next(
        tr for tr in driver.find_elements(By.CSS_SELECTOR, "#table-objections tbody tr") if tr.text.startswith(earlier)
    )
    assert [td.text for td in row.find_elements(By.CSS_SELECTOR, "td")][1] == "<10"
    assert not driver.find_element(By.ID, "board-error").text
    assert not _severe(driver), _severe(driver)
    _select(driver, "o-kind", "")


def test_inspections_section_shows_finding_rates_by_class_and_the_plans(board, browser):
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(f"{board['url']}/regulator/")
    if driver.execute_script("return sessionStorage.getItem('lifecredit.regulatorKey')") is None:
        driver.find_element(By.ID, "key").send_keys(board["key"])
        driver.find_element(By.CSS_SELECTOR, "#signin-form button").click()
    _wait(driver, "document.body.dataset.ready === 'true'", what="the dashboard to load its views")
    assert _wait(driver, "!!Chart.getChart('chart-inspections')", what="the inspections chart")
    assert _painted(driver, "chart-inspections") > 500
    rows = driver.find_elements(By.CSS_SELECTOR, "#table-inspections tbody tr")
    assert len(rows) >= 5 and all("%" in r.text for r in rows[:4]), [r.text for r in rows]  # classes A-D, total
    assert board["plan_id"] in driver.find_element(By.ID, "table-plans").text
    assert not driver.find_element(By.ID, "board-error").text
    assert not _severe(driver), _severe(driver)


def test_a_bank_key_cannot_sign_in(board, browser):
    from selenium.webdriver.common.by import By

    driver = browser
    driver.execute_script("sessionStorage.clear()")
    driver.get(f"{board['url']}/regulator/")
    driver.find_element(By.ID, "key").send_keys(board["bank"])
    driver.find_element(By.CSS_SELECTOR, "#signin-form button").click()
    message = _wait(driver, "document.getElementById('signin-error').textContent", what="the refusal")
    assert "regulator" in message and not driver.find_element(By.ID, "board").is_displayed()
    assert driver.execute_script("return sessionStorage.getItem('lifecredit.regulatorKey')") is None
    # the page and its assets are public, the data is not
    assert http("GET", f"{board['url']}/regulator/static/chart.umd.min.js")[0] == 200
    assert http("GET", f"{board['url']}/regulator/distribution")[0] == 401
    assert http("GET", f"{board['url']}/regulator/static/..%2Fapi.py")[0] == 404


def _js_str(text: str) -> str:
    import json

    return json.dumps(text)


def _screenshot(driver, tmp_path: Path) -> None:
    """Full-page screenshot into the test's tmp folder and artifacts/ (git-ignored); the path is printed."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1440, min(max(height, 900), 6000))
    shot = tmp_path / "dashboard.png"
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 20_000
    keep = ROOT / "artifacts" / "dashboard.png"
    keep.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, keep)
    print(f"dashboard screenshot: {keep} (and {shot})")
