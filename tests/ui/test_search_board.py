"""The job page of a distiller search (``distill.method: "auto"``) shows its leaderboard: every
candidate's selection AP at each rung, the leading one first, in a real browser."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By

from tests.integration.teachers import write_teacher
from tests.ui.browser import open_page, sign_in, wait
from tests.ui.test_dashboard import console_errors

pytestmark = pytest.mark.integration


def test_search_job_page_shows_the_leaderboard(ui_stack, browser, tiny_spec, checkpoint_root):
    spec = tiny_spec(iterations=8, name="ui-search")
    teacher = write_teacher(checkpoint_root, spec["model"], "ui-search")
    spec.update(
        kind="distill",
        teacher={"checkpoint": str(teacher), "model": spec["model"]},
        distill={"method": "auto"},
    )
    job_id = ui_stack.submit(spec)["id"]
    job = ui_stack.wait_terminal(job_id, timeout=300)
    assert job["status"] == "succeeded", ui_stack.log_tails()

    sign_in(browser, ui_stack.url, ui_stack.api_key)
    open_page(browser, ui_stack.url, f"#/job/{job_id}")
    wait(browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, "#search-board tbody tr")) == 4)
    rows = browser.find_elements(By.CSS_SELECTOR, "#search-board tbody tr")
    labels = [r.get_attribute("data-candidate") for r in rows]
    assert sorted(labels) == ["cwd_head_x9", "mar", "mar_cross", "none"]
    states = [r.find_elements(By.CSS_SELECTOR, "td")[-1].text for r in rows]
    assert (
        states[0] == "leading" and states[1] == "in" and all(s.startswith("out at step") for s in states[2:])
    )
    headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#search-board thead th")]
    assert headers == ["Candidate", "step 1", "step 3", "State"]
    assert console_errors(browser) == []
