"""The dashboard's map tab (生活服务动态地图) in headless Chromium, against the session's real ``lifecredit serve``.

The server of ``live_service`` holds three months of the small market's class history. A regulator signs
in, opens the map tab: the provinces draw as SVG paths from the vendored boundaries, each region the API
answers for is coloured, another measure and the month slider change the fills, the prefecture level
hatches its suppressed regions (400 merchants over 29 prefectures) with the legend entry for them, the
table beside lists every region, axe-core finds nothing serious, and the console stays free of errors. Skipped like the dashboard test
when Chromium or chromedriver is missing.
"""

from __future__ import annotations

import json
import shutil

import pytest

import test_dashboard as dashboard
import test_merchant_page as merchant_page
from helpers import ROOT, headless_chromium, http

pytestmark = dashboard.pytestmark
_wait, _severe, _select = dashboard._wait, dashboard._severe, dashboard._select
GEO = ROOT / "serving" / "regulator" / "static"
FILLS = "Object.fromEntries([...document.querySelectorAll('#map-canvas path.region')].map(p => [p.dataset.code, p.getAttribute('fill')]))"


@pytest.fixture(scope="module")
def chromium(live_service):
    """Headless Chromium at 1440 x 1000, English locale, browser console kept."""
    with headless_chromium(1440, 1000) as driver:
        yield driver


def _redraw(driver, action, attribute: str) -> dict:
    """Do ``action``; wait until the map's SVG carries another ``data-<attribute>``; return the new fills."""
    script = f"const s = document.querySelector('#map-canvas svg'); return s ? s.dataset.{attribute} : null;"
    before = driver.execute_script(script)
    action()
    _wait(driver, f"(() => {{ {script} }})() !== {json.dumps(before)}", what=f"the map's {attribute} to change")
    return driver.execute_script(f"return {FILLS};")


def test_the_map_draws_moves_and_hatches_suppressed_regions(live_service, chromium, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver, url = chromium, live_service["url"]
    key = live_service["new_key"]("regulator")
    driver.get(f"{url}/regulator/")
    driver.find_element(By.ID, "key").send_keys(key, Keys.ENTER)
    _wait(driver, "document.body.dataset.ready === 'true'", what="the dashboard to load")
    if driver.find_element(By.ID, "lang").text != "中文":
        driver.find_element(By.ID, "lang").click()  # English
    driver.find_element(By.ID, "tab-map").click()
    _wait(driver, "document.body.dataset.mapReady === 'true'", what="the map to draw")
    assert not driver.find_element(By.ID, "filters").is_displayed()  # the class view's filters belong to its tab

    # every province of the boundary file is a path; every region the API answers for is drawn with its status
    provinces = json.loads((GEO / "geo-provinces.json").read_text(encoding="utf-8"))["features"]
    fills = driver.execute_script(f"return {FILLS};")
    assert len(fills) == len(provinces) and set(fills) == {f["properties"]["code"] for f in provinces}
    svg = driver.find_element(By.CSS_SELECTOR, "#map-canvas svg")
    assert svg.get_attribute("data-measure") == "merchants"
    assert driver.find_element(By.ID, "map-svg-title").get_attribute("textContent").startswith("Merchants classified")
    status, body = http(
        "GET", f"{url}/regulator/map?measure=merchants&month={svg.get_attribute('data-month')}", key=key
    )
    assert status == 200, body
    drawn = {r["code"]: r for r in body["regions"] if r["code"] in fills}
    assert drawn and all(r["status"] == "shown" for r in drawn.values())  # ~50 merchants per province
    assert all(fills[c].startswith("#") and fills[c] != "#eceff1" for c in drawn)
    rows = driver.find_elements(By.CSS_SELECTOR, "#table-map tbody tr")
    assert len(rows) == len(body["regions"])

    # another measure, then the slider (keyboard: Home is the oldest month), each redraw the fills
    after = _redraw(driver, lambda: _select(driver, "m-measure", "mean_pd"), "measure")
    assert after != fills
    slider = driver.find_element(By.ID, "m-month")
    months = body["months"]
    assert slider.get_attribute("max") == str(len(months) - 1) and slider.get_attribute("value") == str(len(months) - 1)
    moved = _redraw(driver, lambda: slider.send_keys(Keys.HOME), "month")
    assert driver.find_element(By.ID, "m-month-out").text == months[0]
    assert moved != after, "moving the slider changed no region's fill"

    # prefectures: the small ones are hatched, the legend names them, the table reads <10
    fills = _redraw(driver, lambda: _select(driver, "m-level", "prefecture"), "level")
    hatched = [c for c, f in fills.items() if f == "url(#map-hatch)"]
    assert hatched, "no prefecture of 400 merchants is suppressed"
    for code in hatched:
        path = driver.find_element(By.CSS_SELECTOR, f"#map-canvas path[data-code='{code}']")
        assert "suppressed" in path.get_attribute("class").split()
    legend = driver.find_element(By.ID, "map-legend-suppressed")
    assert legend.is_displayed() and legend.text.startswith("<10")
    marks = {e.text for e in driver.find_elements(By.CSS_SELECTOR, "#table-map tr.suppressed .sup")}
    assert marks == {"<10"}
    merchant_page._axe(driver, "map tab")  # nothing serious or critical on the page with the map open

    # the language follows the toggle; nothing went to the console
    driver.find_element(By.ID, "lang").click()
    _wait(driver, "document.getElementById('tab-map').textContent === '生活服务动态地图'", what="Chinese labels")
    assert not driver.find_element(By.ID, "board-error").text
    assert not _severe(driver), _severe(driver)
    shot = tmp_path / "map.png"
    assert driver.save_screenshot(str(shot))
    keep = ROOT / "artifacts" / "map.png"
    keep.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, keep)
