"""Headless Debian ``chromium`` driven by Selenium, and the dashboard steps shared by the browser
tests and ``scripts/dashboard_screenshots.py``: sign in with a key, open a page and wait until it
shows what the API has, save a screenshot."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = os.environ.get("MAR_TEST_CHROMIUM", "chromium")
CHROMEDRIVER = os.environ.get("MAR_TEST_CHROMEDRIVER", "chromedriver")
WINDOW = (1280, 1700)  # width, height (px)
WAIT = 30  # seconds for a page to show what the API has


class BrowserUnavailable(RuntimeError):
    """``chromium`` or ``chromedriver`` is not installed."""


def start_chromium(window: tuple[int, int] = WINDOW) -> webdriver.Chrome:
    """Headless chromium, its window ``window`` px; its console log is kept
    (``driver.get_log("browser")``). The caller quits it."""
    binary, driver_path = shutil.which(CHROMIUM), shutil.which(CHROMEDRIVER)
    if binary is None or driver_path is None:
        raise BrowserUnavailable(
            f"{CHROMIUM} or {CHROMEDRIVER} not found (apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size={},{}".format(*window),
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    driver.set_script_timeout(30)
    return driver


def wait(browser, condition, timeout: float = WAIT):
    return WebDriverWait(browser, timeout, poll_frequency=0.2).until(condition)


def sign_in(browser, url: str, key: str) -> None:
    """Open the dashboard at ``url`` with no key kept, and submit ``key`` in its form.

    Clearing the kept key under a dashboard page makes that page's requests still in flight or
    polling fail with 401: the page is left for ``about:blank`` (which aborts them) and what the
    browser logged meanwhile is dropped, so it is not reported as an error of the next page."""
    browser.get(f"{url}/ui/")
    browser.execute_script("sessionStorage.clear()")
    browser.get("about:blank")
    browser.get_log("browser")
    browser.get(f"{url}/ui/#/jobs")
    field = wait(browser, ec.visibility_of_element_located((By.ID, "api-key")))
    field.send_keys(key)
    browser.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()


def open_page(browser, url: str, hash_: str) -> None:
    """Open the page ``hash_`` (``#/jobs``, ``#/job/<id>``, ...) and wait until it has loaded its data."""
    browser.get(f"{url}/ui/{hash_}")
    wait(browser, lambda b: b.find_element(By.ID, "view").get_attribute("data-loaded") == "true")


def save_screenshot(browser, folder: Path | str, name: str) -> Path:
    """Save the window as ``dashboard-<name>.png`` in ``folder``."""
    path = Path(folder) / f"dashboard-{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(path))
    return path
