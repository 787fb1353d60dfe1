"""The dashboard in a real browser (headless chromium) against a running service with real jobs:
sign-in (and a wrong key), the jobs list, a job's loss plot and sample predictions, cancel, the
compare view, and no console error on the way."""

from __future__ import annotations

import json

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec

from tests.ui.browser import open_page, sign_in, wait

pytestmark = pytest.mark.integration


def console_errors(browser) -> list[str]:
    """SEVERE console entries since the last call (reading the log empties it)."""
    return [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]


@pytest.fixture(scope="module")
def submitted() -> dict[str, str]:
    return {}


@pytest.fixture
def jobs(ui_stack, tiny_spec, submitted):
    """A 2-step job evaluated at step 1 and at the end, then a long one queued behind it (one
    worker); submitted once for the module."""
    if not submitted:
        submitted["done"] = ui_stack.submit(tiny_spec(iterations=2, name="ui-tiny", eval_every=1))["id"]
        submitted["long"] = ui_stack.submit(tiny_spec(iterations=500, name="ui-long"))["id"]
    return submitted


def test_wrong_key_shows_an_error(ui_stack, browser):
    sign_in(browser, ui_stack.url, "not-a-key")
    error = wait(browser, ec.visibility_of_element_located((By.ID, "error")))
    assert "unknown or revoked API key" in error.text
    assert browser.find_element(By.ID, "api-key").is_displayed()
    assert browser.execute_script("return sessionStorage.getItem('mar.apiKey')") is None
    console_errors(browser)  # the 401 itself is logged by the browser: expected here


def test_signed_in_list_shows_a_submitted_job(ui_stack, browser, jobs, screenshot):
    sign_in(browser, ui_stack.url, ui_stack.api_key)
    row = wait(
        browser, ec.presence_of_element_located((By.CSS_SELECTOR, f"tr[data-job-id='{jobs['done']}']"))
    )
    assert "ui-tiny" in row.text and "train" in row.text
    assert ui_stack.api_key not in browser.current_url
    assert browser.execute_script("return sessionStorage.getItem('mar.apiKey')") == ui_stack.api_key
    assert console_errors(browser) == []


def test_queued_jobs_show_their_place_in_their_pools_queue(ui_stack, browser, tiny_spec):
    """Two jobs for pool ``cpu``, which has no worker: #1 and #2 there, and the note says why."""
    ids = [
        ui_stack.submit(
            {**tiny_spec(iterations=2, name=f"ui-cpu-{i}"), "resources": {"device": "cpu", "pool": "cpu"}}
        )["id"]
        for i in range(2)
    ]
    try:
        sign_in(browser, ui_stack.url, ui_stack.api_key)
        for position, job_id in enumerate(ids, 1):
            cell = wait(
                browser,
                ec.presence_of_element_located(
                    (By.CSS_SELECTOR, f"tr[data-job-id='{job_id}'] td[data-position]")
                ),
            )
            assert cell.get_attribute("data-position") == str(position)
            assert f"queued #{position} in cpu" in cell.text
            assert "no live worker in pool 'cpu'" in cell.get_attribute("title")
        assert console_errors(browser) == []
    finally:
        for job_id in ids:
            ui_stack.client.cancel(job_id)


def test_pause_resume_and_cancel_from_the_job_page(ui_stack, browser, jobs):
    open_page(browser, ui_stack.url, f"#/job/{jobs['long']}")
    wait(browser, ec.element_to_be_clickable((By.ID, "pause"))).click()
    wait(browser, lambda b: ui_stack.job(jobs["long"])["status"] in ("pausing", "paused"))
    wait(browser, lambda b: ui_stack.job(jobs["long"])["status"] == "paused")
    open_page(browser, ui_stack.url, f"#/job/{jobs['long']}")
    wait(browser, ec.text_to_be_present_in_element((By.ID, "job-status"), "paused"))
    assert not browser.find_element(By.ID, "pause").is_enabled()
    wait(browser, ec.element_to_be_clickable((By.ID, "resume"))).click()
    wait(browser, lambda b: ui_stack.job(jobs["long"])["status"] in ("queued", "starting", "running"))
    button = wait(browser, ec.element_to_be_clickable((By.ID, "cancel")))
    button.click()
    wait(browser, lambda b: ui_stack.job(jobs["long"])["status"] in ("cancelling", "cancelled"))
    wait(browser, ec.text_to_be_present_in_element((By.ID, "job-status"), "cancel"))
    assert ui_stack.wait_terminal(jobs["long"], timeout=60)["status"] == "cancelled"
    assert console_errors(browser) == []


def test_job_page_plots_losses_and_shows_sample_predictions(ui_stack, browser, jobs, screenshot, tmp_path):
    job = ui_stack.wait_terminal(jobs["done"], timeout=240)
    assert job["status"] == "succeeded", ui_stack.log_tails()
    open_page(browser, ui_stack.url, f"#/job/{jobs['done']}")
    wait(browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, "#samples img")) == 4)
    loss = browser.find_elements(By.CSS_SELECTOR, "figure[data-title='Loss per term'] polyline.series")
    series = {el.get_attribute("data-name"): int(el.get_attribute("data-count")) for el in loss}
    assert series.get("loss/total") == 2, series  # log_every 1, 2 steps
    assert all(
        len(el.get_attribute("points").split()) == series[el.get_attribute("data-name")] for el in loss
    )
    widths = browser.execute_script(
        "const imgs = [...document.querySelectorAll('#samples img')];"
        "return Promise.all(imgs.map(i => i.decode().then(() => i.naturalWidth)));"
    )
    assert widths == [64, 64, 64, 64]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#pr-plots figure")) == 2
    names = {td.text for td in browser.find_elements(By.CSS_SELECTOR, "#artifacts td:first-child")}
    assert {"model.pt", "report.json", "pr_curves.json", "samples/student-1.png"} <= names
    assert {"pr_curves/step-1.json", "samples/step-1/student-4.png"} <= names  # registered at step 1
    browser.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)}
    )
    browser.find_element(By.CSS_SELECTOR, "button[aria-label='download report.json']").click()
    wait(browser, lambda b: (tmp_path / "report.json").is_file())  # fetched with the key, saved from a Blob
    assert json.loads((tmp_path / "report.json").read_text())["name"] == "ui-tiny"
    assert browser.find_elements(By.CSS_SELECTOR, "#class-ap tbody tr")
    assert "succeeded" in browser.find_element(By.ID, "events").text
    screenshot("job")
    open_page(browser, ui_stack.url, "#/jobs")
    row = f"tr[data-job-id='{jobs['done']}']"
    assert "100%" in browser.find_element(By.CSS_SELECTOR, row).text
    screenshot("jobs")
    assert browser.find_element(By.CSS_SELECTOR, "label[for=state-filter]").is_displayed()
    browser.find_element(By.ID, "state-filter").send_keys("cancelled")  # by keyboard
    wait(browser, lambda b: not b.find_elements(By.CSS_SELECTOR, row))
    assert browser.find_elements(By.CSS_SELECTOR, f"tr[data-job-id='{jobs['long']}']")
    assert console_errors(browser) == []


def test_evaluation_selector_shows_each_steps_curves_and_samples(ui_stack, browser, jobs):
    ui_stack.wait_terminal(jobs["done"], timeout=240)
    open_page(browser, ui_stack.url, f"#/job/{jobs['done']}")
    view = browser.find_element(By.ID, "view")
    wait(browser, lambda b: view.get_attribute("data-eval-step") == "final")
    select = browser.find_element(By.ID, "eval-step")
    assert (
        select.is_displayed() and browser.find_element(By.CSS_SELECTOR, "label[for=eval-step]").is_displayed()
    )
    options = [o.text for o in select.find_elements(By.TAG_NAME, "option")]
    assert options == ["step 1", "last (step 2)"]
    select.send_keys(Keys.HOME)  # by keyboard: the first evaluation
    wait(browser, lambda b: view.get_attribute("data-eval-step") == "1")
    alts = [img.get_attribute("alt") for img in browser.find_elements(By.CSS_SELECTOR, "#samples img")]
    assert alts == [f"student prediction {n}, step 1" for n in range(1, 5)]
    titles = [
        f.get_attribute("data-title") for f in browser.find_elements(By.CSS_SELECTOR, "#pr-plots figure")
    ]
    assert len(titles) == 2 and all("(step 1)" in t for t in titles), titles
    select.send_keys(Keys.END)
    wait(browser, lambda b: view.get_attribute("data-eval-step") == "final")
    assert all(
        "(step 2)" in f.get_attribute("data-title")
        for f in browser.find_elements(By.CSS_SELECTOR, "#pr-plots figure")
    )
    assert console_errors(browser) == []


def test_compare_view_puts_jobs_on_the_same_axes(ui_stack, browser, jobs, screenshot):
    ui_stack.wait_terminal(jobs["done"], timeout=240)
    open_page(browser, ui_stack.url, f"#/compare?jobs={jobs['done']},{jobs['long']}&teacher={jobs['done']}")
    rows = browser.find_elements(By.CSS_SELECTOR, "#compare-table tbody tr")
    assert [r.text.split()[0] for r in rows] == ["ui-tiny", "ui-long"]
    ap = "figure[data-title='AP (val)']"
    assert browser.find_elements(By.CSS_SELECTOR, f"{ap} polyline.series[data-name='ui-tiny']")
    assert browser.find_elements(By.CSS_SELECTOR, f"{ap} line.reference")
    assert browser.find_elements(By.CSS_SELECTOR, "figure[data-title='Total loss'] polyline.series")
    screenshot("compare")
    sources = browser.execute_script("return performance.getEntriesByType('resource').map(r => r.name)")
    assert sources and all(s.startswith((ui_stack.url, "blob:")) for s in sources), sources  # no CDN
    assert console_errors(browser) == []


def test_static_files_need_no_key(ui_stack):
    with httpx.Client(base_url=ui_stack.url) as client:
        assert client.get("/ui").headers["location"].endswith("/ui/")
        page = client.get("/ui/")
        assert page.status_code == 200 and 'id="login-form"' in page.text
        script = client.get("/ui/app.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert client.get("/jobs").status_code == 401  # the data still needs the key
