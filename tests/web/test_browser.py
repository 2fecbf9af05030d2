"""The dashboard in a real browser (headless Debian chromium via Selenium) against the real
all-in-one process: sign in, see jobs and runs, steer jobs, and stay safe.

Each page is also photographed at 1280 px and at phone width into tests/web/screenshots/.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2 as httpx
import pytest
from selenium.common.exceptions import (
    NoAlertPresentException,
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from cronicorn.service import Services
from cronicorn.service.schemas import JobOut
from tests.web.conftest import SCREENSHOTS, XSS_NAME, LiveDashboard

pytestmark = pytest.mark.slow
WAIT_S = 30.0


def wait_for(
    driver: WebDriver, condition: Callable[[WebDriver], Any], timeout: float = WAIT_S
) -> Any:
    """Poll until `condition` is truthy; elements replaced by a navigation or a live refresh
    in the meantime are looked up again."""
    ignored = (NoSuchElementException, StaleElementReferenceException)
    wait = WebDriverWait(driver, timeout, poll_frequency=0.2, ignored_exceptions=ignored)
    return wait.until(condition)


def shoot(driver: WebDriver, name: str) -> None:
    """A full-page screenshot at 1280 px, and the page screen by screen at phone width."""
    driver.set_window_size(1280, 900)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(int(height) + 140, 6000))
    driver.save_screenshot(str(SCREENSHOTS / f"{name}-desktop.png"))
    driver.set_window_size(390, 844)
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    for part, top in enumerate(range(0, min(height, 6000), 700), start=1):
        driver.execute_script("window.scrollTo(0, arguments[0])", top)
        driver.save_screenshot(str(SCREENSHOTS / f"{name}-phone-{part}.png"))
    driver.execute_script("window.scrollTo(0, 0)")
    driver.set_window_size(1280, 900)


def sign_in(driver: WebDriver, live: LiveDashboard, who: str) -> None:
    driver.delete_all_cookies()
    driver.get(live.url + "/")
    driver.find_element(By.ID, "signin-key").send_keys(live.keys[who])
    driver.find_element(By.CSS_SELECTOR, "form[action='/signin'] button").click()
    wait_for(driver, lambda d: d.current_url.endswith("/jobs"))


def text(driver: WebDriver) -> str:
    return str(driver.find_element(By.TAG_NAME, "body").text)


def run_rows(driver: WebDriver) -> int:
    return len(driver.find_elements(By.CSS_SELECTOR, "#runs-table tbody tr"))


def alice_jobs(live: LiveDashboard) -> list[JobOut]:
    async def jobs(services: Services) -> list[JobOut]:
        principal = await services.keys.authenticate(live.keys["alice"])
        assert principal is not None
        return await services.jobs.list(principal, limit=1000)

    return live.call(jobs)


def session_cookie(driver: WebDriver) -> str:
    cookie = driver.get_cookie("cronicorn_session")
    assert cookie is not None
    return str(cookie["value"])


def test_sign_in_shows_the_job_list(driver: WebDriver, dashboard: LiveDashboard) -> None:
    driver.delete_all_cookies()
    driver.get(dashboard.url + "/")
    assert driver.find_element(By.CSS_SELECTOR, "label[for='signin-key']").text == "API key"
    shoot(driver, "signin")
    sign_in(driver, dashboard, "alice")
    table = driver.find_element(By.ID, "jobs-table").text
    for name in ("orders-sync", "nightly-reports", XSS_NAME):
        assert name in table
    cookie = driver.get_cookie("cronicorn_session")
    assert cookie is not None
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["value"] != dashboard.keys["alice"]
    shoot(driver, "jobs")


def test_job_page_shows_runs_and_the_next_run_source(
    driver: WebDriver, dashboard: LiveDashboard
) -> None:
    sign_in(driver, dashboard, "alice")
    driver.get(f"{dashboard.url}/jobs/{dashboard.jobs['orders']}")
    wait_for(driver, lambda d: run_rows(d) >= 1)  # the engine runs it; the page refreshes itself
    wait_for(driver, lambda d: d.find_elements(By.ID, "next-run-source"))
    assert driver.find_element(By.ID, "next-run-source").text == "baseline_interval"
    page = text(driver)
    assert "header-secret-value" not in driver.page_source
    assert "bearer-secret-value" not in driver.page_source
    assert "X-Api-Key: ***" in page
    assert driver.find_elements(By.CSS_SELECTOR, ".timeline-svg circle")
    shoot(driver, "job")
    driver.find_element(By.CSS_SELECTOR, "#runs-table tbody tr a").click()
    wait_for(driver, lambda d: "/runs/" in d.current_url)
    wait_for(driver, lambda d: d.find_elements(By.ID, "results-table"))
    results = driver.find_element(By.ID, "results-table").text
    assert "backlog" in results
    assert "200" in results
    shoot(driver, "run")


def test_run_now_brings_a_new_run(driver: WebDriver, dashboard: LiveDashboard) -> None:
    sign_in(driver, dashboard, "alice")
    driver.get(f"{dashboard.url}/jobs/{dashboard.jobs['orders']}")
    wait_for(driver, lambda d: run_rows(d) >= 1)
    before = run_rows(driver)
    driver.find_element(By.ID, "run-now").click()
    wait_for(driver, lambda d: "Run requested" in text(d))
    wait_for(driver, lambda d: run_rows(d) > before)  # live refresh, no reload


def test_pause_and_resume(driver: WebDriver, dashboard: LiveDashboard) -> None:
    sign_in(driver, dashboard, "alice")
    driver.get(f"{dashboard.url}/jobs/{dashboard.jobs['orders']}")
    driver.find_element(By.ID, "pause").click()
    wait_for(driver, lambda d: d.find_element(By.ID, "job-status").text == "paused")
    assert "Job paused" in text(driver)
    assert driver.find_element(By.ID, "run-now").get_attribute("disabled") is not None
    driver.find_element(By.ID, "resume").click()
    wait_for(driver, lambda d: d.find_element(By.ID, "job-status").text == "active")
    assert driver.find_elements(By.ID, "pause")


def test_a_bad_cron_shows_the_api_message_and_stores_nothing_until_fixed(
    driver: WebDriver, dashboard: LiveDashboard
) -> None:
    sign_in(driver, dashboard, "alice")
    jobs_before = alice_jobs(dashboard)
    api = httpx.post(
        f"{dashboard.url}/api/jobs",
        json={"name": "bad-cron", "definition": "x", "cron": "every tuesday"},
        headers={"Authorization": f"Bearer {dashboard.keys['alice']}"},
    )
    assert api.status_code == 422
    api_message = api.json()["detail"][0]["msg"]
    driver.find_element(By.CSS_SELECTOR, "#new-job summary").click()
    driver.find_element(By.ID, "new-name").send_keys("bad-cron")
    driver.find_element(By.ID, "new-definition").send_keys("Call the thing.")
    driver.find_element(By.ID, "new-cron").send_keys("every tuesday")
    driver.find_element(By.CSS_SELECTOR, "#new-job button[type='submit']").click()
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".field-error"))
    errors = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".field-error")]
    assert api_message in errors
    assert driver.find_element(By.ID, "new-cron").get_attribute("aria-invalid") == "true"
    assert driver.find_element(By.ID, "new-name").get_attribute("value") == "bad-cron"
    shoot(driver, "new-job-error")
    after = alice_jobs(dashboard)
    assert [j.id for j in after] == [j.id for j in jobs_before]
    assert "bad-cron" not in [j.name for j in after]
    cron = driver.find_element(By.ID, "new-cron")
    cron.clear()
    cron.send_keys("*/5 * * * *")
    driver.find_element(By.ID, "new-start_paused").click()
    driver.find_element(By.CSS_SELECTOR, "#new-job button[type='submit']").click()
    wait_for(driver, lambda d: "Job created" in text(d))
    assert driver.find_element(By.CSS_SELECTOR, "h1.job-title").text.startswith("bad-cron")
    assert "cron */5 * * * * (UTC)" in text(driver)
    assert "bad-cron" in [j.name for j in alice_jobs(dashboard) if j.status == "paused"]


def test_a_job_named_like_markup_renders_as_text(
    driver: WebDriver, dashboard: LiveDashboard
) -> None:
    sign_in(driver, dashboard, "alice")
    for path in ("/jobs", f"/jobs/{dashboard.jobs['xss']}"):
        driver.get(dashboard.url + path)
        assert XSS_NAME in text(driver)
        assert not driver.find_elements(By.CSS_SELECTOR, "img[src='x']")
        with pytest.raises(NoAlertPresentException):
            driver.switch_to.alert.text  # noqa: B018 - raises when no alert is open
    assert driver.find_element(By.CSS_SELECTOR, "h1.job-title").text.startswith(XSS_NAME)


def test_a_second_tenant_sees_none_of_the_first_ones_jobs(
    driver: WebDriver, dashboard: LiveDashboard
) -> None:
    sign_in(driver, dashboard, "bob")
    page = text(driver)
    for name in ("orders-sync", "nightly-reports", XSS_NAME):
        assert name not in page
    assert "No jobs" in page
    driver.get(f"{dashboard.url}/jobs/{dashboard.jobs['orders']}")
    assert "Not found" in text(driver)
    assert "orders-sync" not in text(driver)


def test_sign_out_ends_the_session(driver: WebDriver, dashboard: LiveDashboard) -> None:
    sign_in(driver, dashboard, "alice")
    old = session_cookie(driver)
    driver.find_element(By.CSS_SELECTOR, "form.signout button").click()
    wait_for(driver, lambda d: "You are signed out" in text(d))
    driver.get(dashboard.url + "/jobs")
    wait_for(driver, lambda d: d.find_elements(By.ID, "signin-key"))
    replay = httpx.get(
        dashboard.url + "/jobs", cookies={"cronicorn_session": old}, follow_redirects=False
    )
    assert replay.status_code == 303
    assert replay.headers["location"].startswith("/?next=")


def test_posts_without_the_csrf_token_are_refused(
    driver: WebDriver, dashboard: LiveDashboard
) -> None:
    sign_in(driver, dashboard, "alice")
    cookies = {"cronicorn_session": session_cookie(driver)}
    job_id = dashboard.jobs["orders"]
    with httpx.Client(base_url=dashboard.url, cookies=cookies) as client:
        assert client.get(f"/jobs/{job_id}").status_code == 200  # the cookie is valid
        for form in ({}, {"csrf_token": "forged"}):
            for path in (f"/jobs/{job_id}/pause", f"/jobs/{job_id}/run-now", "/signout"):
                assert client.post(path, data=form).status_code == 403
            created = client.post("/jobs", data={**form, "name": "csrf", "definition": "x"})
            assert created.status_code == 403
        assert client.post("/signin", data={"key": dashboard.keys["alice"]}).status_code == 403
        assert client.get(f"/jobs/{job_id}").status_code == 200  # still signed in
    jobs = {j.id: j for j in alice_jobs(dashboard)}
    assert jobs[job_id].status == "active"
    assert "csrf" not in [j.name for j in jobs.values()]


def test_workers_and_keys_pages_for_an_admin(driver: WebDriver, dashboard: LiveDashboard) -> None:
    sign_in(driver, dashboard, "admin")
    driver.get(dashboard.url + "/workers")
    wait_for(driver, lambda d: "web-test-worker" in text(d))
    shoot(driver, "workers")
    driver.get(dashboard.url + "/keys")
    driver.find_element(By.ID, "key-tenant").send_keys("carol")
    driver.find_element(By.CSS_SELECTOR, "form[action='/keys'] button").click()
    shown = wait_for(driver, lambda d: d.find_elements(By.ID, "created-key"))
    new_key = shown[0].get_attribute("value")
    assert new_key.startswith("ck_")
    shoot(driver, "keys")
    driver.get(dashboard.url + "/keys")
    assert new_key not in driver.page_source  # shown once
    sign_in(driver, dashboard, "alice")
    driver.get(dashboard.url + "/keys")
    assert "Admins only" in text(driver)
