"""The web UI in a real browser against the running dev stack (api, controller, janitor).

Jobs really run (the controller's local runtime, run-job.sh and the uploader) and their
artifacts really land in the S3 server, so what a test sees on the page went the whole way.
Jobs several tests only look at are started together, once per module, so the module
waits for one round of jobs instead of one per test.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.browser import StackClient
from support.journey import SEED_COMMAND as SEED

from artifacts_shared.manifest import Manifest, ManifestFile, ManifestLimits

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed: make venv"
)
expect = sync_api.expect

MARKUP = "<img src=x onerror=window.pwned=1>.txt"
QUOTES = "say \"hi\" & 'bye'.txt"
JOB_RUN_TIMEOUT = 60_000


@dataclass(frozen=True)
class Finished:
    seed: str
    empty: str
    over_limit: str
    markup: str


@pytest.fixture(scope="module")
def finished(stack: StackClient) -> Finished:
    """Jobs that have ended, one per state the Artifacts tab has to show."""
    jobs = Finished(
        seed=stack.create_job(SEED, name="seed"),
        empty=stack.create_job("echo nothing to keep", name="no artifacts"),
        over_limit=stack.create_job(
            "mkdir -p artifacts; for i in $(seq 1001); do : > artifacts/f$i; done",
            name="too many files",
        ),
        markup=stack.create_job(
            f"mkdir -p artifacts; echo x > artifacts/{shlex.quote(MARKUP)}; "
            f"echo y > artifacts/{shlex.quote(QUOTES)}",
            name="<b>markup</b> in names",
        ),
    )
    stack.wait_finished(jobs.seed, jobs.empty, jobs.over_limit, jobs.markup)
    return jobs


def artifacts_panel(page: Any) -> Any:
    return page.get_by_role("tabpanel", name="Artifacts")


def phase_badge(page: Any) -> Any:
    return page.locator(".head-side [data-phase]")


def press_until_focused(page: Any, key: str, target: Any, *, presses: int) -> None:
    """Press ``key`` (Tab, Shift+Tab) until ``target`` has the focus, at most ``presses``
    times: the caller's ``expect(target).to_be_focused()`` says whether it got there."""
    for _ in range(presses):
        page.keyboard.press(key)
        if target.evaluate("element => element === document.activeElement"):
            return


def test_the_seed_journey_from_the_form_to_a_downloaded_hello(page: Any, screenshots: Path) -> None:
    page.goto("/")
    expect(page.get_by_role("heading", name="Jobs", level=1)).to_be_visible()
    form = page.get_by_role("form", name="New job")
    if not form.is_visible():
        page.get_by_role("button", name="New job").click()
    form.get_by_label("Display name").fill("seed journey")
    form.get_by_label("Group").fill("team-e2e")
    form.get_by_label("Command").fill(SEED)
    form.get_by_role("button", name="Create job").click()

    expect(page).to_have_url(re.compile(r"/jobs/job-[0-9]{12}-[a-z0-9]{6}$"))
    job_id = page.url.rsplit("/", 1)[1]
    expect(page.get_by_role("heading", level=1)).to_have_text("seed journey")
    expect(phase_badge(page)).to_have_text("Succeeded", timeout=JOB_RUN_TIMEOUT)
    tab = page.get_by_role("tab", name="Artifacts")
    tab.click()

    expect(tab).to_have_attribute("aria-selected", "true")
    expect(page).to_have_url(re.compile(r"#artifacts$"))
    panel = artifacts_panel(page)
    # The top folder: the folder sub/ (its totals from the manifest), then test.txt.
    expect(panel.locator("tbody tr")).to_have_count(2)
    assert panel.locator("tbody tr").evaluate_all("rows => rows.map(r => r.dataset.path)") == [
        "sub/",
        "test.txt",
    ]
    expect(panel.locator("tr.folder-row")).to_contain_text("1 file")
    expect(panel.locator("tr.file-row .size")).to_have_text(["6 B"])
    expect(panel.locator(".artifact-totals")).to_have_text("2 files · 12 B")
    expect(panel.locator(".artifact-expiry")).to_contain_text("Expires in 6 days")
    page.screenshot(path=screenshots / "artifacts-tab.png", full_page=True)

    panel.get_by_role("button", name="Folder sub/").click()
    expect(panel.get_by_role("navigation", name="Folder")).to_contain_text("sub")
    expect(panel.locator("tr.file-row .size")).to_have_text(["6 B"])
    page.screenshot(path=screenshots / "artifacts-folder.png", full_page=True)
    with page.expect_download() as download:
        panel.get_by_role("link", name="sub/test.txt", exact=True).click()
    assert Path(download.value.path()).read_bytes() == b"hello\n"
    assert download.value.suggested_filename == "test.txt"
    with page.expect_download() as zipped:
        panel.get_by_role("link", name="Download all (zip)").click()
    with zipfile.ZipFile(zipped.value.path()) as archive:
        assert sorted(archive.namelist()) == ["sub/test.txt", "test.txt"]
        assert archive.read("sub/test.txt") == b"hello\n"

    page.get_by_role("link", name="All jobs").click()
    row = page.locator(f"tr[data-job-id='{job_id}']")
    expect(row.locator("[data-phase]")).to_have_text("Succeeded")
    expect(row.get_by_role("link", name="seed journey")).to_be_visible()


def test_phases_update_live_and_the_artifacts_tab_opens_only_once_the_job_has_finished(
    page: Any, stack: StackClient, tmp_path: Path, screenshots: Path
) -> None:
    release = tmp_path / "release"
    job_id = stack.create_job(
        f"while [ ! -e {shlex.quote(str(release))} ]; do sleep 0.1; done; "
        "mkdir -p artifacts; echo done > artifacts/done.txt",
        name="waits for the test",
    )
    page.goto("/")
    row = page.locator(f"tr[data-job-id='{job_id}']")
    expect(row.locator("[data-phase]")).to_have_text("Running", timeout=JOB_RUN_TIMEOUT)

    page.goto(f"/jobs/{job_id}#artifacts")
    expect(phase_badge(page)).to_have_text("Running")
    tab = page.get_by_role("tab", name="Artifacts")
    expect(tab).to_have_attribute("aria-disabled", "true")
    expect(page.locator("#artifacts-hint")).to_have_text(
        "Artifacts can be opened once the job has finished."
    )
    tab.click(force=True)  # a click on a disabled tab changes nothing...
    page.get_by_role("tab", name="Summary").press("ArrowRight")  # ...nor do the arrow keys
    expect(tab).to_be_focused()
    expect(tab).to_have_attribute("aria-selected", "false")
    expect(page.get_by_role("tabpanel", name="Summary")).to_be_visible()
    expect(artifacts_panel(page)).to_be_hidden()
    page.screenshot(path=screenshots / "job-running.png", full_page=True)

    release.touch()
    # The deep link asked for #artifacts: the tab opens by itself when the job ends.
    expect(phase_badge(page)).to_have_text("Succeeded", timeout=JOB_RUN_TIMEOUT)
    expect(tab).to_have_attribute("aria-selected", "true")
    expect(artifacts_panel(page).get_by_role("link", name="done.txt", exact=True)).to_be_visible()

    page.go_back()
    expect(row.locator("[data-phase]")).to_have_text("Succeeded")


def test_a_job_that_left_nothing_in_artifacts_says_so(page: Any, finished: Finished) -> None:
    page.goto(f"/jobs/{finished.empty}#artifacts")

    state = artifacts_panel(page).locator("[data-state]")
    expect(state).to_have_attribute("data-state", "empty")
    expect(state).to_contain_text("This job left no artifacts.")
    expect(artifacts_panel(page).locator("table")).to_have_count(0)


def test_the_summary_shows_the_instance_type_and_the_time_limit_a_job_asked_for(
    page: Any, stack: StackClient
) -> None:
    created = stack.graphql(
        "mutation ($data: PhJobCreateInput!) { createPhJob(data: $data) { id } }",
        {
            "data": {
                "displayName": "sized",
                "groupId": "phusers",
                "command": "true",
                "instanceType": "cpu-2",
                "activeDeadlineSeconds": 600,
            }
        },
    )
    page.goto(f"/jobs/{created['createPhJob']['id']}")

    summary = page.locator(".summary-row")
    expect(summary.filter(has_text="Instance type").locator("dd")).to_have_text(
        "CPU 2 (2 CPUs, 4 GB memory)"
    )
    expect(summary.filter(has_text="Time limit").locator("dd")).to_have_text("10 minutes")


def test_a_job_over_the_file_limit_says_which_limit_with_the_figures(
    page: Any, finished: Finished, screenshots: Path
) -> None:
    page.goto(f"/jobs/{finished.over_limit}#artifacts")

    state = artifacts_panel(page).locator("[data-state]")
    expect(state).to_have_attribute("data-state", "skipped")
    expect(state).to_contain_text("Artifacts were not collected: a limit was exceeded.")
    expect(state).to_contain_text("1001 files exceed the limit of 1000; nothing uploaded.")
    page.screenshot(path=screenshots / "artifacts-limit-exceeded.png", full_page=True)


def test_artifacts_the_janitor_deleted_say_when_they_expired(
    page: Any, stack: StackClient, screenshots: Path
) -> None:
    job_id = stack.create_job(SEED, name="kept one second", retention_seconds=1)
    finish = stack.wait_finished(job_id)[job_id]["finishTime"]
    expired_at = datetime.fromisoformat(finish.replace("Z", "+00:00")) + timedelta(seconds=1)
    # The janitor deletes only what has expired: ask again until this folder has.
    deadline = time.monotonic() + 20
    while True:
        run = stack.run_cleanup()
        assert run["state"] == "COMPLETE", run
        if any(job_id in prefix for prefix in run["result"]["deleted"]):
            break
        assert time.monotonic() < deadline, run
        time.sleep(0.5)
    # The journey's step 4 happens after the retention period as the job states it
    # (finishTime + retention). The script's expiredAt counts from the command's end,
    # before the upload that finishTime waits for, so the janitor may delete a moment
    # earlier; open the page once the stated expiry has passed.
    time.sleep(max(0.0, (expired_at - datetime.now(UTC)).total_seconds()) + 0.2)

    page.goto(f"/jobs/{job_id}#artifacts")

    state = artifacts_panel(page).locator("[data-state]")
    expect(state).to_have_attribute("data-state", "expired")
    when = f"{expired_at.astimezone(UTC):%b} {expired_at.day}, {expired_at.year}"
    expect(state).to_contain_text(f"Artifacts expired on {when}")
    expect(state).to_contain_text("They were kept for 1 second after the job ended")
    page.screenshot(path=screenshots / "artifacts-expired.png", full_page=True)


def test_a_failed_listing_shows_the_error_and_retry_lists_the_files(
    page: Any, finished: Finished
) -> None:
    failed: list[str] = []

    def storage_down_once(route: Any) -> None:
        if "query Artifacts" in (route.request.post_data or "") and not failed:
            failed.append(route.request.url)
            route.fulfill(
                status=200,
                content_type="application/json",
                body=json.dumps(
                    {
                        "data": None,
                        "errors": [
                            {
                                "message": "object storage is unavailable",
                                "extensions": {"code": "UNAVAILABLE"},
                            }
                        ],
                    }
                ),
            )
        else:
            route.continue_()

    page.route("**/graphql", storage_down_once)
    page.goto(f"/jobs/{finished.seed}#artifacts")

    alert = artifacts_panel(page).get_by_role("alert")
    expect(alert).to_contain_text("The artifacts could not be loaded.")
    expect(alert).to_contain_text("object storage is unavailable")
    alert.get_by_role("button", name="Retry").click()
    expect(artifacts_panel(page).locator("tbody tr")).to_have_count(2)
    assert len(failed) == 1


def test_the_job_page_works_with_the_keyboard_alone(page: Any, finished: Finished) -> None:
    page.goto(f"/jobs/{finished.seed}")
    summary = page.get_by_role("tab", name="Summary")
    expect(summary).to_have_attribute("aria-selected", "true")
    press_until_focused(page, "Tab", summary, presses=8)
    expect(summary).to_be_focused()

    page.keyboard.press("ArrowRight")
    tab = page.get_by_role("tab", name="Artifacts")
    expect(tab).to_be_focused()
    expect(tab).to_have_attribute("aria-selected", "true")
    panel = artifacts_panel(page)
    folder = panel.get_by_role("button", name="Folder sub/")
    expect(folder).to_be_visible()
    press_until_focused(page, "Tab", folder, presses=12)
    expect(folder).to_be_focused()
    # Into the folder: its breadcrumb takes the focus, its file is a Tab away.
    page.keyboard.press("Enter")
    expect(panel.locator("tr[data-path='sub/test.txt']")).to_be_visible()
    expect(panel.locator(".crumbs [aria-current]")).to_be_focused()
    link = panel.get_by_role("link", name="sub/test.txt", exact=True)
    press_until_focused(page, "Tab", link, presses=8)
    expect(link).to_be_focused()
    with page.expect_download() as download:
        page.keyboard.press("Enter")
    assert Path(download.value.path()).read_bytes() == b"hello\n"

    # And back: Shift+Tab to the "Up" row, Enter; the focus is on the folder that was left.
    up = panel.get_by_role("button", name="Up to .. all files")
    press_until_focused(page, "Shift+Tab", up, presses=8)
    expect(up).to_be_focused()
    page.keyboard.press("Enter")
    expect(panel.locator("tr[data-path='test.txt']")).to_be_visible()
    expect(panel.get_by_role("button", name="Folder sub/")).to_be_focused()

    # Back on the tabs: Home selects the summary again.
    tab.focus()
    page.keyboard.press("Home")
    expect(summary).to_be_focused()
    expect(page).not_to_have_url(re.compile("#artifacts"))


def test_names_with_markup_and_quotes_are_shown_as_text(page: Any, finished: Finished) -> None:
    page.goto(f"/jobs/{finished.markup}#artifacts")

    panel = artifacts_panel(page)
    expect(panel.get_by_role("link", name=MARKUP, exact=True)).to_have_text(MARKUP)
    expect(panel.get_by_role("link", name=QUOTES, exact=True)).to_have_text(QUOTES)
    expect(page.get_by_role("heading", level=1)).to_have_text("<b>markup</b> in names")
    assert panel.locator("img").count() == 0 and page.locator("h1 b").count() == 0
    assert page.evaluate("window.pwned") is None


def test_a_stale_download_link_is_renewed_before_it_is_followed(
    page: Any, finished: Finished
) -> None:
    page.goto(f"/jobs/{finished.seed}#artifacts")
    link = artifacts_panel(page).get_by_role("link", name="test.txt", exact=True)
    expect(link).to_be_visible()
    # Signed long ago: its X-Amz-Date plus X-Amz-Expires is in the past.
    link.evaluate(
        "a => { a.href = a.href.replace("
        "/X-Amz-Date=\\d{8}T\\d{6}Z/, 'X-Amz-Date=20000101T000000Z') }"
    )
    with page.expect_request(lambda request: "query ItemLink" in (request.post_data or "")):
        with page.expect_download() as download:
            link.click()

    assert Path(download.value.path()).read_bytes() == b"hello\n"
    assert "X-Amz-Date=2000" not in (link.get_attribute("href") or "")


def test_at_360_px_the_list_and_the_artifacts_tab_fit_without_sideways_scrolling(
    page: Any, finished: Finished, screenshots: Path
) -> None:
    page.goto("/")
    expect(page.locator(f"tr[data-job-id='{finished.seed}']")).to_be_visible()
    page.screenshot(path=screenshots / "job-list.png", full_page=True)
    page.set_viewport_size({"width": 360, "height": 740})
    list_width = page.evaluate("document.documentElement.scrollWidth")
    page.screenshot(path=screenshots / "job-list-360px.png", full_page=True)

    page.goto(f"/jobs/{finished.seed}#artifacts")
    panel = artifacts_panel(page)
    expect(panel.locator("tbody tr")).to_have_count(2)
    expect(panel.get_by_role("link", name="Download all (zip)")).to_be_visible()
    page.screenshot(path=screenshots / "artifacts-tab-360px.png", full_page=True)

    assert list_width <= 360
    assert page.evaluate("document.documentElement.scrollWidth") <= 360


def test_a_token_in_the_address_is_kept_for_the_tab_and_sent_as_a_bearer(page: Any) -> None:
    sent: list[str | None] = []
    page.route(
        "**/graphql",
        lambda route: (sent.append(route.request.headers.get("authorization")), route.continue_()),
    )

    page.goto("/#token=e2e-token")

    expect(page.get_by_role("heading", name="Jobs", level=1)).to_be_visible()
    assert "token" not in page.url
    assert page.evaluate("sessionStorage.getItem('artifacts.token')") == "e2e-token"
    assert sent and all(header == "Bearer e2e-token" for header in sent)
    page.get_by_role("button", name="Sign out").click()
    assert page.evaluate("sessionStorage.getItem('artifacts.token')") is None


def test_an_api_that_wants_a_token_gets_a_sign_in_form_and_then_the_token(page: Any) -> None:
    def needs_token(route: Any) -> None:
        if route.request.headers.get("authorization") == "Bearer good-token":
            route.continue_()
            return
        route.fulfill(
            status=401,
            content_type="application/json",
            body=json.dumps(
                {
                    "errors": [
                        {
                            "message": "a bearer token is required",
                            "extensions": {"code": "UNAUTHENTICATED"},
                        }
                    ]
                }
            ),
        )

    page.route("**/graphql", needs_token)
    page.goto("/")

    expect(page.get_by_role("heading", name="Sign in", level=1)).to_be_visible()
    page.get_by_label("Access token").fill("good-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Jobs", level=1)).to_be_visible()


def test_a_job_of_10000_files_opens_at_once_a_folder_at_a_time(
    page: Any, stack: StackClient, devstack: Any, screenshots: Path
) -> None:
    job_id = stack.create_job("mkdir -p artifacts; echo x > artifacts/first.txt", name="10,000")
    stack.wait_finished(job_id)
    # The collector's limit is 1,000 files: the other 9,999 and their manifest go straight
    # into the stack's bucket, as a job allowed more would have left them.
    prefix = f"groups/team-e2e/jobArtifacts/{job_id}/"
    names = ["first.txt", *(f"dir{i % 10}/file-{i:05d}.txt" for i in range(1, 10_000))]
    client = devstack.s3_client()
    with ThreadPoolExecutor(10) as pool:
        for done in [
            pool.submit(client.put_object, Bucket=devstack.bucket, Key=f"{prefix}{n}", Body=b"x\n")
            for n in names[1:]
        ]:
            done.result()
    digest = hashlib.sha256(b"x\n").hexdigest()
    manifest = Manifest(
        job=job_id,
        group="team-e2e",
        collected_at=datetime.now(UTC),
        file_count=len(names),
        total_size=2 * len(names),
        limits=ManifestLimits(size_mb=100, files=10_000),
        files=[ManifestFile(name=name, size=2, sha256=digest) for name in names],
    )
    client.put_object(
        Bucket=devstack.bucket, Key=f"{prefix}.primehub/metadata/manifest.json",
        Body=manifest.to_json(),
    )  # fmt: skip

    page.goto(f"/jobs/{job_id}")
    tab = page.get_by_role("tab", name="Artifacts")
    expect(tab).not_to_have_attribute("aria-disabled", "true")
    panel = artifacts_panel(page)
    tab.click()
    # The acceptance bound of issue 18: the first folder is on screen within 2 s.
    expect(panel.get_by_role("button", name="Folder dir9/")).to_be_visible(timeout=2_000)

    expect(panel.locator("tbody tr")).to_have_count(11)  # dir0/ ... dir9/ and first.txt
    expect(panel.locator(".artifact-totals")).to_have_text("10,000 files · 20 KiB")
    expect(panel.locator("tr[data-path='dir3/']")).to_contain_text("1,000 files")
    page.screenshot(path=screenshots / "artifacts-10000.png", full_page=True)

    # Into a folder with the keyboard: Tab to it, Enter; its breadcrumb takes the focus.
    folder = panel.get_by_role("button", name="Folder dir3/")
    press_until_focused(page, "Tab", folder, presses=30)
    expect(folder).to_be_focused()
    page.keyboard.press("Enter")
    expect(panel.locator(".crumbs [aria-current]")).to_be_focused()
    files = panel.locator("tr.file-row")
    expect(files).to_have_count(100)  # one page, never the folder's 1,000 rows
    first_page = files.first.get_attribute("data-path")
    panel.get_by_role("button", name="Next page").click()
    expect(panel.locator(".pager")).to_contain_text("Page 2")
    expect(files).to_have_count(100)
    assert files.first.get_attribute("data-path") != first_page
    panel.get_by_role("button", name="Previous page").click()
    expect(files.first).to_have_attribute("data-path", first_page or "")

    panel.get_by_label("Filter this folder").fill("file-0999")
    expect(files).to_have_count(1)
    expect(files).to_have_attribute("data-path", "dir3/file-09993.txt")
    page.screenshot(path=screenshots / "artifacts-10000-filtered.png", full_page=True)

    # And back with the keyboard: Shift+Tab to the "Up" row, Enter; the top folder's first
    # page again, the focus on the folder that was left.
    up = panel.get_by_role("button", name="Up to .. all files")
    press_until_focused(page, "Shift+Tab", up, presses=30)
    expect(up).to_be_focused()
    page.keyboard.press("Enter")
    expect(panel.locator("tbody tr")).to_have_count(11)
    expect(folder).to_be_focused()
