"""The Logs tab in a real browser against the dev stack: jobs really run and print.

A running job's lines appear without a reload and the view follows them until the reader
scrolls up; an ended job shows its log's end (a failed job's last line), pages back to its
start, downloads whole, and shows markup a job printed as text.
"""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from support.browser import StackClient

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed: make venv"
)
expect = sync_api.expect

RUN_TIMEOUT = 60_000
SLOW_TICKS = 'for i in $(seq 1 200); do echo "tick $i"; sleep 0.1; done'


def log_of(stack: StackClient, job_id: str) -> bytes:
    with urllib.request.urlopen(f"{stack.api_url}/jobs/{job_id}/logs", timeout=30) as response:
        body: bytes = response.read()
    return body


def logs_view(page: Any) -> Any:
    return page.get_by_role("tabpanel", name="Logs").get_by_role("log", name="Job log")


def test_a_running_jobs_logs_tab_shows_new_lines_without_a_reload(
    page: Any, stack: StackClient, screenshots: Path
) -> None:
    job_id = stack.create_job(SLOW_TICKS, name="ticking")
    page.goto(f"/jobs/{job_id}#logs")
    view = logs_view(page)
    expect(page.get_by_role("tab", name="Logs")).to_have_attribute("aria-selected", "true")
    expect(view.get_by_text("tick 3", exact=True)).to_be_visible(timeout=RUN_TIMEOUT)
    page.evaluate("window.loadedOnce = true")

    expect(view.get_by_text("tick 25", exact=True)).to_be_visible(timeout=RUN_TIMEOUT)
    assert page.evaluate("window.loadedOnce") is True  # the same page: no reload
    # It follows the end while the reader has not scrolled away.
    assert view.evaluate("v => v.scrollHeight - v.scrollTop - v.clientHeight < 24")
    expect(view).to_have_css("font-family", _monospace())
    page.screenshot(path=screenshots / "logs-live.png", full_page=True)

    view.evaluate("v => { v.scrollTop = 0; v.dispatchEvent(new Event('scroll')); }")
    count = view.locator(".log-line").count()
    expect(view.locator(".log-line")).not_to_have_count(count, timeout=10_000)
    assert view.evaluate("v => v.scrollTop") == 0  # scrolled up: it stays where the reader is
    follow = page.get_by_role("button", name="Follow the end")
    expect(follow).to_be_visible()
    follow.click()
    assert view.evaluate("v => v.scrollHeight - v.scrollTop - v.clientHeight < 24")


def _monospace() -> Any:
    return re.compile(r"monospace")


def test_a_failed_jobs_log_shows_its_last_line_and_downloads_whole(
    page: Any, stack: StackClient, screenshots: Path
) -> None:
    command = (
        'for i in $(seq 1 1500); do echo "step $i of a long run"; done; '
        "echo 'Traceback: the model diverged' >&2; exit 3"
    )
    job_id = stack.create_job(command, name="failing")
    stack.wait_finished(job_id)
    log = log_of(stack, job_id).decode().splitlines()
    assert "Traceback: the model diverged" in log

    page.goto(f"/jobs/{job_id}#logs")
    view = logs_view(page)
    lines = view.locator(".log-line")
    expect(lines.last).to_have_text(log[-1])
    expect(view.get_by_text("Traceback: the model diverged", exact=True)).to_be_visible()
    assert view.evaluate("v => v.scrollHeight - v.scrollTop - v.clientHeight < 24")
    expect(lines).to_have_count(1000)
    shown = f"Lines {len(log) - 999}\N{EN DASH}{len(log)} of {len(log)}."
    expect(page.get_by_text(shown)).to_be_visible()
    page.screenshot(path=screenshots / "logs-failed.png", full_page=True)

    page.get_by_role("button", name="Show earlier lines").click()
    expect(lines).to_have_count(len(log))
    expect(lines.first).to_have_text("step 1 of a long run")
    expect(page.get_by_role("button", name="Show earlier lines")).to_be_hidden()

    with page.expect_download() as download:
        page.get_by_role("link", name="Download log").click()
    assert Path(download.value.path()).read_bytes() == log_of(stack, job_id)
    assert download.value.suggested_filename == f"{job_id}.log"


def test_markup_a_job_prints_is_shown_as_text(page: Any, stack: StackClient) -> None:
    printed = "<img src=x onerror=window.pwned=1> <b>bold?</b>"
    job_id = stack.create_job(f"echo '{printed}'", name="markup in output")
    stack.wait_finished(job_id)

    page.goto(f"/jobs/{job_id}#logs")

    expect(logs_view(page).locator(".log-line").first).to_have_text(printed)
    assert page.evaluate("window.pwned") is None
    assert logs_view(page).locator("img, b").count() == 0
