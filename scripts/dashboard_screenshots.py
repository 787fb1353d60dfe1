"""Screenshots of the dashboard's three pages from a running service, for the README.

    .venv/bin/python -m scripts.dashboard_screenshots COMPARE_URL --key-file STATE/api_key [--job ID] [--out docs]

``COMPARE_URL`` is the compare view ``mar demo`` prints (``http://HOST:PORT/ui/#/compare?jobs=A,B...``);
the job page shown is ``--job`` (default the last job compared), down to its sample predictions.
Writes ``dashboard-jobs.png``,
``dashboard-job.png`` and ``dashboard-compare.png`` with the browser tests' helpers
(``tests.ui.browser``: headless Debian chromium and Selenium).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from selenium.webdriver.common.by import By

from tests.ui.browser import WINDOW, open_page, save_screenshot, sign_in, start_chromium, wait

logger = logging.getLogger("dashboard_screenshots")


def split_compare_url(url: str) -> tuple[str, str, list[str]]:
    """``(service URL, the compare page's hash, its job ids)`` of a compare-view URL."""
    parts = urlsplit(url)
    if not parts.fragment.startswith("/compare?"):
        raise SystemExit(f"not a compare-view URL (…/ui/#/compare?jobs=…): {url}")
    jobs = parse_qs(parts.fragment.split("?", 1)[1]).get("jobs", [""])[0].split(",")
    return f"{parts.scheme}://{parts.netloc}", f"#{parts.fragment}", [j for j in jobs if j]


def fit_height(browser, element_id: str) -> None:
    """Size the window to show the page down to the element ``element_id`` (at least 600 px)."""
    bottom = browser.execute_script(
        f"return Math.ceil(document.getElementById('{element_id}').getBoundingClientRect().bottom + scrollY)"
    )
    bars = browser.get_window_size()["height"] - browser.execute_script("return innerHeight")
    browser.set_window_size(WINDOW[0], max(600, bottom + 24 + bars))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("compare_url")
    p.add_argument("--key-file", type=Path, required=True, help="a file holding the API key (STATE/api_key)")
    p.add_argument("--job", help="the job page to show (default: the last job compared)")
    p.add_argument("--out", type=Path, default=Path("docs"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    url, compare, jobs = split_compare_url(args.compare_url)
    job = args.job or jobs[-1]
    browser = start_chromium()
    try:
        sign_in(browser, url, args.key_file.read_text().strip())
        wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, f"tr[data-job-id='{job}']"))
        pages = (("jobs", "#/jobs", "view"), ("job", f"#/job/{job}", "samples"), ("compare", compare, "view"))
        for name, page, last_shown in pages:
            open_page(browser, url, page)
            if name == "job":  # the sample pictures are fetched after the page's data
                wait(browser, lambda b: b.execute_script(
                    "const imgs = [...document.querySelectorAll('#samples img')];"
                    "return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);"
                ))  # fmt: skip
            fit_height(browser, last_shown)
            logger.info("%s", save_screenshot(browser, args.out, name))
            browser.set_window_size(*WINDOW)
    finally:
        browser.quit()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
