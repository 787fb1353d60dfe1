"""Fixtures of the dashboard's browser tests: one embedded service (API + worker + reaper, as
``mar up`` runs it) with a real tiny job, and headless Debian ``chromium`` driven by Selenium.

Without ``chromium``/``chromedriver`` (``apt-get install chromium chromium-driver``) or the
``selenium`` package the tests fail under ``CI=true`` and are skipped otherwise.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import conftest as integration
from tests.integration.conftest import _prepare_database, unavailable
from tests.integration.service import ServiceStack, base_env, settings_from_env
from worker.stack import Stack

logger = logging.getLogger(__name__)

# The integration tests' fixtures: a tiny synthetic set and the job spec that trains on it.
it_root, data_root, checkpoint_root = integration.it_root, integration.data_root, integration.checkpoint_root
tiny_spec = integration.tiny_spec

CHROMIUM = os.environ.get("MAR_TEST_CHROMIUM", "chromium")
CHROMEDRIVER = os.environ.get("MAR_TEST_CHROMEDRIVER", "chromedriver")
# Where the tests save a screenshot of each page (docs/ to refresh the README's pictures).
SCREENSHOTS = os.environ.get("MAR_DASHBOARD_SCREENSHOTS")


@pytest.fixture(scope="session")
def ui_stack(it_root: Path, data_root: Path, checkpoint_root: Path) -> Iterator[ServiceStack]:
    """The embedded flavour (SQLite + ``filesystem://``), the ``mar up`` default."""
    state = it_root / "state-ui"
    env = base_env(state, data_root, checkpoint_root)
    service = ServiceStack("ui", env, settings_from_env(env), Stack(env, log_dir=state / "logs"))
    try:
        service.api_key = _prepare_database(env)
        service.start()
        yield service
    finally:
        service.close()


def _driver_paths() -> tuple[str, str]:
    browser, driver = shutil.which(CHROMIUM), shutil.which(CHROMEDRIVER)
    if browser is None or driver is None:
        unavailable(f"{CHROMIUM} or {CHROMEDRIVER} not found (apt-get install chromium chromium-driver)")
    return browser, driver


@pytest.fixture(scope="session")
def browser():
    """Headless chromium; its console log is kept (``browser.get_log("browser")``)."""
    try:
        from selenium import webdriver
    except ImportError:
        unavailable("the selenium package is not installed (pip install -e '.[dev]')")
    binary, driver_path = _driver_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1700"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshot(browser):
    """``screenshot("jobs")``: save the page as ``dashboard-jobs.png`` under $MAR_DASHBOARD_SCREENSHOTS."""

    def take(name: str) -> None:
        if SCREENSHOTS:
            Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(Path(SCREENSHOTS) / f"dashboard-{name}.png"))

    return take
