"""The console as a supervisor and an admin use it: headless chromium against a real `ledger run` fed with examples/.

Screenshots of each page land in tests/artifacts/console/ (git-ignored).
"""
from __future__ import annotations

import base64
import csv
import io
import json
import re
import shutil
import time
from decimal import Decimal
from pathlib import Path

import pytest

from browser_support import ARTIFACTS, Ledger, browser_or_skip, feed_examples, start_ledger, stop_ledger, wait_caught_up
from console_support import PAGE_BUDGET

PERSON, YEAR = "LF-P01", 2022


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("console-ledger") / "data"
    data.mkdir()
    running = start_ledger(data)
    try:
        feed_examples(running)
        yield running
    finally:
        assert stop_ledger(running.proc) == 0
    log = (data.parent / "ledger-run.log").read_text()
    assert "claims-ledger ready" in log and PERSON not in log       # psn_no is in URLs, never in a log line


@pytest.fixture
def browser(tmp_path: Path):
    driver = browser_or_skip(tmp_path / "profile")
    driver.implicitly_wait(2)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
    driver.downloads = tmp_path
    yield driver
    driver.quit()
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def by(driver, css: str):
    from selenium.webdriver.common.by import By
    return driver.find_element(By.CSS_SELECTOR, css)


def all_of(driver, css: str):
    from selenium.webdriver.common.by import By
    return driver.find_elements(By.CSS_SELECTOR, css)


def shoot(driver, name: str) -> Path:
    """A full-page screenshot, and the page checks every page must pass: under budget, every field labelled."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    size = driver.execute_script(
        "const n = performance.getEntriesByType('navigation')[0].decodedBodySize;"
        "return performance.getEntriesByType('resource').reduce((s, r) => s + r.decodedBodySize, n);")
    assert 0 < size < PAGE_BUDGET, (name, size)
    unlabelled = driver.execute_script(
        "return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]"
        ".filter(e => !e.labels.length && !e.getAttribute('aria-label')).map(e => e.name || e.id);")
    assert unlabelled == [], (name, unlabelled)
    assert by(driver, "#lag").text or name == "login"                  # every page shows the projection lag
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": 1280, "height": min(max(height, 600), 6000), "deviceScaleFactor": 1, "mobile": False})
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return path


def log_in(driver, ledger: Ledger, role: str) -> None:
    """With the keyboard only: the token field has the focus, Enter submits."""
    from selenium.webdriver.common.keys import Keys
    driver.delete_all_cookies()
    driver.get(ledger.url + "/")
    assert "/console/login" in driver.current_url
    assert driver.switch_to.active_element.get_attribute("id") == "token"
    shoot(driver, "login")
    driver.switch_to.active_element.send_keys(ledger.tokens[role], Keys.ENTER)
    assert by(driver, "#role").text in ("监管人员", "管理员")


def audit_status(driver) -> str | None:
    """The job page's status, read between two of its own refreshes."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    for _ in range(20):
        try:
            return by(driver, "#audit-status").get_attribute("data-status")
        except (NoSuchElementException, StaleElementReferenceException):
            time.sleep(0.1)
    return None


def post_status(driver, action: str) -> int:
    """POST a form to `action` from inside the page, with the page's CSRF token, as a forged click would."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const body = new URLSearchParams({_csrf_token: document.querySelector('input[name=_csrf_token]').value});"
        "fetch(arguments[0], {method: 'POST', body, redirect: 'manual'}).then(r => done(r.status));", action)


def test_a_supervisor_reads_a_person_a_settlement_and_audits(ledger: Ledger, browser) -> None:
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select
    d = browser
    log_in(d, ledger, "supervisor")
    d.switch_to.active_element.send_keys(Keys.TAB)                       # the first stop skips to the content
    assert d.switch_to.active_element.get_attribute("class") == "skip"
    assert by(d, "#decisions-today").text.isdigit() and all_of(d, "svg.chart")
    shoot(d, "overview")

    by(d, "#q-psn").send_keys(PERSON)
    by(d, "#q-year").send_keys(str(YEAR), Keys.ENTER)                     # the search box leads to the bookmark
    assert d.current_url.endswith(f"/console/persons/{PERSON}/{YEAR}")
    with ledger.api() as http:
        api = http.get(f"/v1/persons/{PERSON}/years/{YEAR}").json()
    for field, value in (("cap-limit", api["cap"]["limit"]), ("cap-used", api["cap"]["used"]),
                         ("cap-remaining", api["cap"]["remaining"])):
        assert by(d, f"#{field}").text == f"{Decimal(value):,.2f}", field
    assert PERSON not in by(d, "body").text                               # the page names the person by key
    assert "完整" in by(d, "#person-chain").text
    shoot(d, "person-year")

    first = all_of(d, "#settlements a")[0]
    setl_id = first.text
    first.click()
    assert d.current_url.endswith(f"/console/settlements/{setl_id}")
    with ledger.api() as http:
        lines = http.get(f"/v1/settlements/{setl_id}").json()["lines"]
    shown = {r.get_attribute("data-rule"): r.find_element("css selector", ".clause").text
             for r in all_of(d, "#lines tbody tr[data-rule], #later-lines tbody tr[data-rule]")}
    assert shown == {line["rule_id"]: line["clause"] for line in lines}
    shoot(d, "settlement")

    d.get(ledger.url + "/console/audits")
    by(d, "#a-area").send_keys("1410")
    Select(by(d, "#a-o-pack")).select_by_visible_text("linfen-2022")
    by(d, "#a-o-path").send_keys("critical_illness_tilts[linfen.ci.tilt.tekun_dibao_returned].ratio")
    by(d, "#a-o-value").send_keys("0.9", Keys.ENTER)
    deadline = time.monotonic() + 30
    while audit_status(d) in ("queued", "running"):                       # the page refreshes itself
        assert time.monotonic() < deadline, "the audit did not finish"
        time.sleep(0.3)
    assert audit_status(d) == "done"
    rows = all_of(d, "#differences tbody tr")
    assert rows and all(r.find_element("css selector", ".clause").text for r in rows
                        if r.find_elements("css selector", "code") and "linfen.ci" in r.text)
    shoot(d, "audit-job")
    by(d, "#csv-link").click()
    deadline = time.monotonic() + 10
    while not list(d.downloads.glob("audit-*.csv")):
        assert time.monotonic() < deadline, "no CSV was downloaded"
        time.sleep(0.1)
    time.sleep(0.2)
    downloaded = list(d.downloads.glob("audit-*.csv"))[0].read_bytes().decode("utf-8-sig")
    table = list(csv.DictReader(io.StringIO(downloaded)))
    assert len(table) == int(by(d, "#difference-count").text) and all(r["clause"] for r in table if r["kind"] == "line")
    by(d, "#report-link").click()
    shoot(d, "audit-report")
    pdf = base64.b64decode(d.execute_cdp_cmd("Page.printToPDF", {"preferCSSPageSize": True})["data"])
    (ARTIFACTS / "audit-report.pdf").write_bytes(pdf)
    box = re.search(rb"/MediaBox \[0 0 ([0-9.]+) ([0-9.]+)\]", pdf)
    assert box and abs(float(box[1]) - 595.3) < 2 and abs(float(box[2]) - 841.9) < 2   # A4 (not Letter), print.css

    for name, path in (("funds", "/console/funds"), ("warnings", "/console/warnings?state=all")):
        d.get(ledger.url + path)
        shoot(d, name)

    d.get(ledger.url + "/console/dead-letters")
    assert all_of(d, "article.dead-letter") and not all_of(d, "button.redrive")
    target = all_of(d, "article.dead-letter")[0].get_attribute("id").removeprefix("dl-")
    assert post_status(d, f"/console/dead-letters/{target}/redrive") == 403
    shoot(d, "dead-letters-supervisor")


def test_an_admin_redrives_a_dead_letter_once_its_cause_is_fixed(ledger: Ledger, browser) -> None:
    d = browser
    log_in(d, ledger, "admin")
    d.get(ledger.url + "/console/dead-letters?code=unknown_medins")
    article = all_of(d, "article.dead-letter")[0]
    assert article.get_attribute("data-state") == "pending" and "LF-H99" in article.text
    hospital = {"msg_type": "medins", "fixmedins_code": "LF-H99", "fixmedins_name": "临汾测试医院", "admdvs": "141002",
                "designated": True, "in_province": True, "ooc_class": None, "serious_disease_designated": False}
    with ledger.api("platform") as http:                                  # the platform sends the missing hospital
        assert http.post("/v1/messages", content=json.dumps(hospital).encode()).status_code == 200
    article.find_element("css selector", "button.redrive").click()
    redriven = by(d, "article.just-redriven")
    assert redriven.get_attribute("data-state") == "redriven" and "settled" in redriven.text
    shoot(d, "dead-letters-admin")
    with ledger.api() as http:
        wait_caught_up(http)
        assert http.get("/v1/settlements/LF-S011").status_code == 200


def test_without_chromium_ci_fails_and_a_developer_is_told_why(monkeypatch, tmp_path: Path) -> None:
    import browser_support
    monkeypatch.setattr(browser_support, "CHROMIUM", str(tmp_path / "no-chromium-here"))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no-chromium-here"):
        browser_support.browser_or_skip(tmp_path / "profile")
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception, match="make test installs them"):
        browser_support.browser_or_skip(tmp_path / "profile")
