"""Fixtures of the dashboard's browser tests: one embedded service (API + worker + reaper, as
``mar up`` runs it) with a real tiny job, and headless Debian ``chromium`` driven by Selenium.

Without ``chromium``/``chromedriver`` (``apt-get install chromium chromium-driver``) or the
``selenium`` package the tests fail under ``CI=true`` and are skipped otherwise.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import conftest as integration
from tests.integration.conftest import unavailable
from tests.integration.service import ServiceStack, base_env
from worker.stack import Stack
from worker.stack_db import prepare_database, settings_from_env

try:  # the tests are skipped (or fail under CI=true) without selenium
    from tests.ui import browser as chromium
except ImportError:
    chromium = None

logger = logging.getLogger(__name__)

# The integration tests' fixtures: a tiny synthetic set and the job spec that trains on it.
it_root, data_root, checkpoint_root = integration.it_root, integration.data_root, integration.checkpoint_root
tiny_spec = integration.tiny_spec

# Where the tests save a screenshot of each page (their 2-step job; the README's pictures come from
# a trained run through scripts/dashboard_screenshots.py).
SCREENSHOTS = os.environ.get("MAR_DASHBOARD_SCREENSHOTS")


@pytest.fixture(scope="session")
def ui_stack(it_root: Path, data_root: Path, checkpoint_root: Path) -> Iterator[ServiceStack]:
    """The embedded flavour (SQLite + ``filesystem://``), the ``mar up`` default."""
    state = it_root / "state-ui"
    env = {**base_env(state, data_root, checkpoint_root), "MAR_POOLS": "gpu,cpu"}  # no cpu worker
    service = ServiceStack("ui", env, settings_from_env(env), Stack(env, log_dir=state / "logs"))
    try:
        service.api_key = prepare_database(env)
        service.start()
        yield service
    finally:
        service.close()


@pytest.fixture(scope="session")
def browser():
    """Headless chromium (``tests.ui.browser.start_chromium``)."""
    if chromium is None:
        unavailable("the selenium package is not installed (pip install -e '.[dev]')")
    try:
        driver = chromium.start_chromium()
    except chromium.BrowserUnavailable as e:
        unavailable(str(e))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshot(browser):
    """``screenshot("jobs")``: save the page as ``dashboard-jobs.png`` under $MAR_DASHBOARD_SCREENSHOTS."""

    def take(name: str) -> None:
        if SCREENSHOTS:
            chromium.save_screenshot(browser, SCREENSHOTS, name)

    return take
