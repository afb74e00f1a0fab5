"""The merchant's own credit-report page (``/merchant/``) in headless Chromium, against a real ``lifecredit serve``.

The session champion scores 14 months of the small market (``lifecredit score-all``), so the class history
exists; a merchant with complaints, a current public record and a loan gets a merchant key. In the browser:
the page loads with no console error in zh-CN and English (the ``lang`` attribute follows, the choice is
remembered); a bad key is refused in words; signed in, every section draws; axe-core (vendored in
``vendor/``, injected, nothing downloaded) finds nothing serious or critical in either language, dialog
open or not; at a 640 x 800 viewport (a 1280-pixel screen zoomed to 200 %) nothing scrolls sideways and every
control can be reached; and with the keyboard alone an owner objects to a record (Tab, Enter, type, Enter),
sees it marked "under objection" and the objection listed as received, while Escape closes a dialog and
gives focus back. Screenshots go to the test's tmp folder and ``artifacts/``. Skipped, saying so, only when
Chromium or chromedriver is missing (``scripts/setup_browser.sh`` installs both).
"""

from __future__ import annotations

import base64
import json
import shutil
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest

import test_dashboard as dashboard
from helpers import ROOT, headless_chromium, http

pytestmark = dashboard.pytestmark  # the same Chromium and chromedriver, the same skip when they are missing
_wait, _severe = dashboard._wait, dashboard._severe

AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
MONTHS = 14
TITLES = {"zh": "我的信用报告", "en": "My credit report"}
SECTIONS = (
    *("sec-current", "sec-scale", "sec-history", "sec-reasons", "sec-advice", "sec-records", "sec-objections"),
    "sec-queries",
)
FOCUSABLE = "a[href], button, input, textarea, select, [tabindex]:not([tabindex='-1'])"


@pytest.fixture(scope="module")
def site(served_champion, validated_market, class_history, tmp_path_factory):
    """A real server over 14 months of class history and a key for a merchant with records of every kind."""
    from benchmarks.soak import base_env, cli, serve

    root = tmp_path_factory.mktemp("merchant_page")
    env = base_env(
        **served_champion["env"],
        LIFECREDIT_VAR_DIR=str(root / "var"),
        LIFECREDIT_HISTORY_DIR=str(class_history),
        LIFECREDIT_CORRECTIONS_DIR=str(root / "corrections"),
        BENTOML_HOME=str(root / "bentoml_home"),
    )
    merchant = _merchant_with_records(validated_market, served_champion["features"] / "latest.parquet")
    keys = {
        "merchant": cli(["keys", "create", "--role", "merchant", "--merchant", merchant], env).strip().splitlines()[-1],
        **{role: cli(["keys", "create", "--role", role], env).strip().splitlines()[-1] for role in ("bank", "admin")},
    }
    with serve(env, root / "serve.log") as url:
        yield {"url": url, "keys": keys, "merchant": merchant, "root": root}


def _merchant_with_records(validated: Path, snapshot: Path) -> str:
    """The first scored merchant (by id) with a complaint, a public record still current and a loan."""
    scored = pl.read_parquet(snapshot, columns=["merchant_id"])["merchant_id"]
    with_complaints = set(pl.read_parquet(validated / "complaints.parquet", columns=["merchant_id"])["merchant_id"])
    public = pl.read_parquet(validated / "public_records.parquet", columns=["merchant_id", "removed_on"])
    with_public = set(public.filter(pl.col("removed_on").is_null())["merchant_id"])
    with_loans = set(pl.read_parquet(validated / "loans.parquet", columns=["merchant_id"])["merchant_id"])
    chosen = sorted(set(scored) & with_complaints & with_public & with_loans)
    assert chosen, "the small market has no merchant with a complaint, a current public record and a loan"
    return chosen[0]


@pytest.fixture(scope="module")
def browser(site):
    """Headless Chromium at 1280 x 900, English locale (the page must still open in zh-CN: its default)."""
    with headless_chromium(1280, 900) as driver:
        yield driver


# -- page helpers --------------------------------------------------------------------------------------------------
def _fresh(driver, site, lang: str | None = None) -> None:
    """The page with nothing remembered (no key, no language), or with ``lang`` remembered."""
    driver.get(f"{site['url']}/merchant/")
    driver.execute_script("sessionStorage.clear(); localStorage.clear();")
    if lang:
        driver.execute_script("localStorage.setItem('lifecredit.merchantLang', arguments[0]);", lang)
    driver.get(f"{site['url']}/merchant/")
    _wait(driver, "document.body.dataset.ready === 'signed-out'", what="the sign-in form")


def _sign_in(driver, site) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver.find_element(By.ID, "key").send_keys(site["keys"]["merchant"], Keys.ENTER)
    _wait(driver, "document.body.dataset.ready === 'true'", what="the report to load")


def _lang(driver) -> str:
    return driver.execute_script("return document.documentElement.lang")


def _toggle(driver, to: str) -> None:
    from selenium.webdriver.common.by import By

    if _lang(driver).startswith(to):
        return
    driver.find_element(By.ID, "lang").click()
    _wait(driver, f"document.documentElement.lang.startsWith('{to}')", what=f"the page in {to}")


def _axe(driver, context: str) -> list[dict]:
    """axe-core's serious and critical violations on the page as it stands (all rules axe runs by default)."""
    if not driver.execute_script("return typeof window.axe === 'object'"):
        driver.execute_script(AXE.read_text(encoding="utf-8"))
    found = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        axe.run(document, {resultTypes: ['violations']})
          .then((r) => done(r.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ') + ': ' + n.failureSummary)}))))
          .catch((e) => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));"""
    )
    bad = [v for v in found if v["impact"] in ("serious", "critical")]
    assert not bad, f"axe ({context}, lang {_lang(driver)}): " + json.dumps(bad, ensure_ascii=False, indent=1)
    return found


def _text(driver, css: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css).text


def _press(driver, *keys) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(*keys).perform()


def _active(driver) -> dict:
    """What has focus: its id, tag, text and the record it belongs to."""
    return driver.execute_script(
        """const a = document.activeElement, li = a && a.closest('li[data-record-id]');
        return {id: a.id, tag: a.tagName.toLowerCase(), text: a.textContent.trim(),
                record: li ? li.dataset.recordId : null, table: li ? li.dataset.table : null,
                inDialog: !!a.closest('dialog')};"""
    )


def _tab_to(driver, script: str, limit: int = 400) -> dict:
    """Press Tab until ``script`` (given the focused element as ``a``) is true; returns what has focus then."""
    from selenium.webdriver.common.keys import Keys

    for _ in range(limit):
        _press(driver, Keys.TAB)
        if driver.execute_script(f"const a = document.activeElement; return !!({script});"):
            return _active(driver)
    raise AssertionError(f"Tab never reached {script}")


def _tab_round(driver, limit: int = 600) -> tuple[list[str], list[str]]:
    """Tab once round the page; returns (the controls Tab never reached, the ones scrolled out of sideways view)."""
    from selenium.webdriver.common.keys import Keys

    driver.execute_script(
        "document.querySelectorAll('[data-tabbed]').forEach((e) => e.removeAttribute('data-tabbed'));"
    )
    outside, leaving = [], 0
    for _ in range(limit):
        _press(driver, Keys.TAB)
        seen = driver.execute_script(
            """const a = document.activeElement;
            if (!a || a === document.body) return 'body';
            if (a.hasAttribute('data-tabbed')) return 'again';
            a.setAttribute('data-tabbed', '');
            const r = a.getBoundingClientRect();
            return r.left < 0 || r.right > window.innerWidth ? (a.id || a.textContent.trim()) : 'ok';"""
        )
        if seen == "again":
            break
        leaving = leaving + 1 if seen == "body" else 0  # past the last control focus leaves the page, then wraps
        assert leaving < 3, "Tab left the page and did not come back"
        if seen not in ("ok", "body"):
            outside.append(seen)
    missed = driver.execute_script(
        """return [...document.querySelectorAll(arguments[0])]
          .filter((e) => !e.disabled && !e.closest('[hidden], dialog:not([open])') && e.getClientRects().length)
          .filter((e) => !e.hasAttribute('data-tabbed')).map((e) => e.id || e.outerHTML.slice(0, 120));""",
        FOCUSABLE,
    )
    return missed, outside


def _overflow(driver) -> list:
    """Sideways overflow: the page's scroll width against the viewport, and any element past the right edge."""
    return driver.execute_script(
        """const w = window.innerWidth, out = [];
        if (document.documentElement.scrollWidth > w) out.push(['page', document.documentElement.scrollWidth, w]);
        for (const e of document.querySelectorAll('body *')) {
          if (e.closest('[hidden], dialog:not([open]), .sr-only')) continue;
          const r = e.getBoundingClientRect();
          if (r.width && r.right > w + 1) out.push([e.tagName + (e.id ? '#' + e.id : ''), Math.round(r.right), w]);
        }
        return out.slice(0, 10);"""
    )


def _zoom_200(driver, on: bool) -> None:
    """A 1280 x 1600 screen at 200 % zoom: a 640 x 800 CSS-pixel viewport at two device pixels each."""
    if on:
        metrics = {"width": 640, "height": 800, "deviceScaleFactor": 2, "mobile": False}
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    else:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    _wait(driver, f"window.innerWidth {'===' if on else '>'} 640", what="the viewport width")


def _screenshot(driver, tmp_path: Path, name: str) -> Path:
    """A full-page screenshot into the test's tmp folder and artifacts/ (git-ignored); the path is printed."""
    shot = tmp_path / name
    data = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})["data"]
    shot.write_bytes(base64.b64decode(data))
    assert shot.stat().st_size > 20_000
    keep = ROOT / "artifacts" / name
    keep.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, keep)
    print(f"merchant page screenshot: {keep} (and {shot})")
    return shot


# -- the tests -----------------------------------------------------------------------------------------------------
def test_page_is_public_offline_and_its_data_needs_a_merchant_key(site):
    url = site["url"]
    status, body = http("GET", f"{url}/merchant/")
    assert status == 200 and 'lang="zh-CN"' in body and "/merchant/static/merchant.js" in body
    assert "http://" not in body and "https://" not in body
    for name in ("merchant.js", "merchant.css"):
        assert http("GET", f"{url}/merchant/static/{name}")[0] == 200
    assert "https://" not in http("GET", f"{url}/merchant/static/merchant.js")[1]
    assert http("GET", f"{url}/merchant/static/..%2Fpage.py")[0] == 404
    assert http("GET", f"{url}/merchant/report")[0] == 401
    assert http("GET", f"{url}/merchant/report", key=site["keys"]["bank"])[0] == 403
    assert http("GET", f"{url}/merchant/report", key=site["keys"]["merchant"])[0] == 200


def test_signed_out_page_in_both_languages_and_a_bad_key_in_words(site, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver = browser
    _fresh(driver, site)
    assert _lang(driver) == "zh-CN", "the page opens in Chinese whatever the browser's language"
    assert driver.find_element(By.TAG_NAME, "h1").text == TITLES["zh"]
    assert not driver.find_element(By.ID, "report").is_displayed()
    _axe(driver, "signed out")
    _toggle(driver, "en")
    assert driver.find_element(By.TAG_NAME, "h1").text == TITLES["en"]
    assert driver.find_element(By.ID, "lang").text == "中文"
    _axe(driver, "signed out")
    driver.refresh()
    _wait(driver, "document.body.dataset.ready === 'signed-out'", what="the reloaded page")
    assert _lang(driver) == "en", "the language choice is remembered"
    assert not _severe(driver), _severe(driver)

    # a key the service does not know: refused in words, nothing kept
    driver.find_element(By.ID, "key").send_keys("lck_not-a-real-key", Keys.ENTER)
    message = _wait(driver, "document.getElementById('signin-error').textContent", what="the refusal")
    assert "Key not recognised" in message, message
    assert driver.execute_script("return sessionStorage.getItem('lifecredit.merchantKey')") is None
    assert not driver.find_element(By.ID, "report").is_displayed()
    _toggle(driver, "zh")
    driver.find_element(By.ID, "key").send_keys(site["keys"]["bank"], Keys.ENTER)
    message = _wait(
        driver, "document.getElementById('signin-error').textContent.includes('商户密钥')", what="a refusal"
    )
    assert driver.find_element(By.ID, "signin-error").text.startswith("这不是商户密钥")
    # the browser logs the refused requests (401, 403) and nothing else
    assert all(" 401 " in m or " 403 " in m for m in _severe(driver)), _severe(driver)


def test_report_draws_every_section_and_axe_finds_nothing_serious(site, browser, tmp_path):
    from selenium.webdriver.common.by import By

    driver = browser
    _fresh(driver, site)
    _sign_in(driver, site)
    assert driver.execute_script("return sessionStorage.getItem('lifecredit.merchantKey')") == site["keys"]["merchant"]
    assert not driver.find_element(By.ID, "signin").is_displayed()
    assert not _text(driver, "#report-error"), _text(driver, "#report-error")
    for section in SECTIONS:
        assert driver.find_element(By.ID, section).is_displayed(), section
    report = http("GET", f"{site['url']}/merchant/report", key=site["keys"]["merchant"])[1]
    current = report["current"]

    for lang in ("zh", "en"):
        _toggle(driver, lang)
        facts = _text(driver, "#current-facts")
        assert f"{current['score']}" in facts and "%" in facts and current["grade"] in facts
        headline = _text(driver, "#current-class")
        assert current["class"] in headline and current["class_text"][lang] in headline
        scale = driver.find_elements(By.CSS_SELECTOR, "#scale li")
        assert len(scale) == 4
        mine = driver.find_elements(By.CSS_SELECTOR, "#scale li[aria-current='true']")
        assert len(mine) == 1 and current["class_text"][lang] in mine[0].text

        # history: a row a month (12+) and a point each on the chart, re-scores marked with their note
        rows = driver.find_elements(By.CSS_SELECTOR, "#history-table tbody tr")
        assert len(rows) == len(report["history"]) and len({h["month"] for h in report["history"]}) >= 12
        assert len(driver.find_elements(By.CSS_SELECTOR, "#history-chart svg circle")) == len(
            [h for h in report["history"] if h["kind"] == "monthly"]
        )
        # reasons: each with the merchant's value and the peer median or why it is not shown
        reasons = driver.find_elements(By.CSS_SELECTOR, "#reasons li.reason")
        assert len(reasons) == len(report["reasons"]) >= 1
        for item, reason in zip(reasons, report["reasons"]):
            assert reason[lang] in item.text
            if reason["peer_suppressed"]:
                assert ("不显示" if lang == "zh" else "not shown") in item.text
        assert len(driver.find_elements(By.CSS_SELECTOR, "#advice li")) == max(1, len(report["advice"]))

        # every record, with its id, date and source, and a way to object
        for table in ("complaints", "public_records", "loans"):
            items = driver.find_elements(By.CSS_SELECTOR, f"#records-{table} li.record")
            assert len(items) == len(report["records"][table]) >= 1, table
            for item, record in zip(items, report["records"][table]):
                assert record["record_id"] in item.text and record["date"] in item.text
                assert item.find_elements(By.CSS_SELECTOR, "button.action") or record["under_objection"]
        # who looked at the record (查询记录): one line each, with the purpose in this language
        lookups = driver.find_elements(By.CSS_SELECTOR, "#queries li")
        assert len(lookups) == len(report["queries"])
        for item, q in zip(lookups, report["queries"]):
            assert q["by"] in item.text and q[lang] in item.text
        repairs = driver.find_elements(By.CSS_SELECTOR, "#records-public_records button.action")
        words = {"zh": "申请信用修复", "en": "Ask for credit repair"}[lang]
        assert any(b.text.startswith(words) for b in repairs), "a current public record offers credit repair"
        _axe(driver, "signed in")

    # the dialog too: open, checked, closed
    driver.find_element(By.CSS_SELECTOR, "#records-complaints button.action").click()
    _wait(driver, "document.getElementById('object-dialog').open", what="the dialog")
    _axe(driver, "objection dialog")
    driver.find_element(By.ID, "dialog-cancel").click()
    _wait(driver, "!document.getElementById('object-dialog').open", what="the dialog to close")
    assert not _severe(driver), _severe(driver)
    _screenshot(driver, tmp_path, "merchant_page.png")


def test_at_200_percent_zoom_nothing_scrolls_sideways_and_every_control_is_reached(site, browser, tmp_path):
    from selenium.webdriver.common.by import By

    driver = browser
    _fresh(driver, site, lang="zh")
    _zoom_200(driver, True)
    try:
        assert not _overflow(driver), _overflow(driver)
        _sign_in(driver, site)
        for lang in ("zh", "en"):
            _toggle(driver, lang)
            assert not _overflow(driver), (lang, _overflow(driver))
            missed, outside = _tab_round(driver)
            assert not missed, f"Tab never reaches {missed} ({lang})"
            assert not outside, f"focused controls outside the viewport: {outside} ({lang})"
        driver.find_element(By.CSS_SELECTOR, "#records-public_records button.action").click()
        _wait(driver, "document.getElementById('object-dialog').open", what="the dialog")
        assert not _overflow(driver), ("dialog", _overflow(driver))
        size = driver.execute_script(
            "const r = document.getElementById('object-dialog').getBoundingClientRect(); return [r.left, r.right];"
        )
        assert size[0] >= 0 and size[1] <= 640, size
        driver.find_element(By.ID, "dialog-cancel").click()
        _screenshot(driver, tmp_path, "merchant_page_640.png")
    finally:
        _zoom_200(driver, False)


def test_keyboard_alone_objects_to_a_record_and_escape_gives_focus_back(site, browser):
    from selenium.webdriver.common.keys import Keys

    driver = browser
    _fresh(driver, site, lang="en")
    # the skip link comes first and moves focus to the content, where the key field is next
    assert _tab_to(driver, "a.classList.contains('skip')", limit=1)["tag"] == "a"
    _press(driver, Keys.ENTER)
    _wait(driver, "document.activeElement.id === 'main'", what="focus on the main content")
    assert _tab_to(driver, "a.id === 'key'", limit=1)
    _press(driver, site["keys"]["merchant"], Keys.ENTER)
    _wait(driver, "document.body.dataset.ready === 'true'", what="the report to load")
    assert _active(driver)["id"] == "h-current", "after signing in, focus is at the top of the report"

    # Tab to a complaint's Object button, Enter: the form opens with focus in it
    button = _tab_to(
        driver,
        "a.matches('#records-complaints li.record:not(.objected) button.action') && a.textContent.startsWith('Object')",
    )
    record = button["record"]
    _press(driver, Keys.ENTER)
    _wait(driver, "document.getElementById('object-dialog').open", what="the dialog")
    assert _active(driver)["id"] == "reason"

    # an empty reason is refused, announced, focus kept in the field
    _press(driver, Keys.TAB, Keys.TAB)
    assert _active(driver)["id"] == "dialog-submit"
    _press(driver, Keys.ENTER)
    _wait(driver, "document.getElementById('form-error').textContent.includes('reason')", what="the missing reason")
    assert _active(driver)["id"] == "reason"
    assert driver.execute_script("return document.getElementById('reason').getAttribute('aria-invalid')") == "true"
    assert driver.execute_script("return document.getElementById('form-error').getAttribute('aria-live')")

    # type a reason, Tab past evidence to Submit, Enter: marked under objection, listed as received
    _press(driver, "This complaint is not about our shop.")
    _press(driver, Keys.TAB, Keys.TAB)
    assert _active(driver)["id"] == "dialog-submit"
    _press(driver, Keys.ENTER)
    _wait(driver, "!document.getElementById('object-dialog').open", what="the dialog to close after sending")
    css = f'#records-complaints li[data-record-id="{record}"]'
    _wait(driver, f"document.querySelector('{css}').classList.contains('objected')", what="the objection mark")
    mark = _text(driver, f"{css} .mark")
    objection = driver.execute_script(f"return document.querySelector('{css} .mark').dataset.objectionId")
    assert "Under objection" in mark and objection.startswith("OBJ-") and objection in mark
    listed = _text(driver, f'#objections li[data-objection-id="{objection}"]')
    assert "received" in listed and record in listed
    served = http("GET", f"{site['url']}/merchant/objections", key=site["keys"]["merchant"])[1]["objections"]
    filed = next(o for o in served if o["objection_id"] == objection)
    assert filed["status"] == "received"
    due = datetime.fromisoformat(filed["due_by"]).astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()
    assert due in listed, f"the 20-day due date {due} is shown"
    status = driver.execute_script(
        f"return document.querySelector('#objections li[data-objection-id=\"{objection}\"]').dataset.status"
    )
    assert status == "received"
    assert _active(driver)["record"] == record, "focus lands on the record just marked"
    assert objection in _wait(driver, "document.getElementById('status').textContent", what="the announcement")
    _toggle(driver, "zh")
    assert "异议处理中" in _text(driver, f"{css} .mark")
    _toggle(driver, "en")

    # Space opens credit repair on a current public record; Escape closes it and focus returns to that button
    repair = _tab_to(driver, "a.matches('#records-public_records button.action') && a.textContent.startsWith('Ask')")
    _press(driver, Keys.SPACE)
    _wait(driver, "document.getElementById('object-dialog').open", what="the repair dialog")
    assert _active(driver)["inDialog"] and "credit repair" in _text(driver, "#dialog-title")
    _press(driver, Keys.ESCAPE)
    _wait(driver, "!document.getElementById('object-dialog').open", what="Escape to close the dialog")
    back = _active(driver)
    assert back["record"] == repair["record"] and back["text"].startswith("Ask for credit repair"), back

    # signing out with the keyboard forgets the key
    _tab_to(driver, "a.id === 'signout'")
    _press(driver, Keys.ENTER)
    _wait(driver, "document.body.dataset.ready === 'signed-out'", what="signing out")
    assert driver.execute_script("return sessionStorage.getItem('lifecredit.merchantKey')") is None
    assert not _severe(driver), _severe(driver)


def test_a_corrected_record_shows_the_rescore_its_note_and_the_outcome(site, browser, tmp_path):
    """The data steward corrects a record the merchant objected to: the page shows the re-score and the outcome."""
    from selenium.webdriver.common.by import By

    url, keys = site["url"], site["keys"]
    report = http("GET", f"{url}/merchant/report", key=keys["merchant"])[1]
    complaint = next(c for c in report["records"]["complaints"] if not c["under_objection"])["record_id"]
    status, objection = http(
        "POST",
        f"{url}/merchant/objections",
        {"table": "complaints", "record_id": complaint, "reason": "another shop's complaint", "kind": "objection"},
        keys["merchant"],
    )
    assert status == 201, objection
    oid = objection["objection_id"]
    status, resolved = http(
        "POST",
        f"{url}/admin/objections/{oid}/resolve",
        {"outcome": "corrected", "correction": {"action": "delete"}, "note": "not this merchant's complaint"},
        keys["admin"],
    )
    assert status == 200, resolved
    correction = resolved["correction"]["correction_id"]

    driver = browser
    _fresh(driver, site, lang="en")
    _sign_in(driver, site)
    assert driver.find_element(By.ID, "current-note").is_displayed()
    assert "worked out again" in _text(driver, "#current-note")
    rescore = driver.find_elements(By.CSS_SELECTOR, "#history-table tbody tr.rescore")
    assert len(rescore) == 1 and "Re-score" in rescore[0].text and correction in rescore[0].text
    assert driver.find_elements(By.CSS_SELECTOR, "#history-chart svg polygon.rescore")
    item = driver.find_element(By.CSS_SELECTOR, f'#objections li[data-objection-id="{oid}"]')
    assert item.get_attribute("data-status") == "resolved" and "corrected" in item.text
    assert "not this merchant's complaint" in item.text
    assert not driver.find_elements(By.CSS_SELECTOR, f'#records-complaints li[data-record-id="{complaint}"]')
    _axe(driver, "after a correction")
    _toggle(driver, "zh")
    assert "重新评分" in driver.find_element(By.CSS_SELECTOR, "#history-table tbody tr.rescore").text
    assert "已更正" in driver.find_element(By.CSS_SELECTOR, f'#objections li[data-objection-id="{oid}"]').text
    _axe(driver, "after a correction")
    assert not _severe(driver), _severe(driver)
    _screenshot(driver, tmp_path, "merchant_page_corrected.png")
