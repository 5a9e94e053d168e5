"""The Artifacts tab's retention and viewer in real chromium, against the running dev stack.

The dev stack's user is the admin ``dev``: it sees Keep, Extend and Delete. A job writes a
text file, a real PNG, an HTML page with a script, and HTML named ``x.png``; the page must
show the first two and never run the others.
"""

from __future__ import annotations

import base64
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.browser import StackClient

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed: make venv"
)
expect = sync_api.expect

HOSTILE = (
    b"<html><body><script>window.parent.pwned = 1; document.title = 'pwned'</script></body></html>"
)


def one_pixel_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1, 8-bit RGB
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def write(name: str, body: bytes) -> str:
    return f"echo {base64.b64encode(body).decode()} | base64 -d > artifacts/{name}"


@dataclass(frozen=True)
class Jobs:
    files: str
    keep: str


@pytest.fixture(scope="module")
def jobs(stack: StackClient) -> Jobs:
    command = "; ".join(
        [
            "mkdir -p artifacts",
            "echo hello > artifacts/test.txt",
            write("dot.png", one_pixel_png()),
            write("report.html", HOSTILE),
            write("x.png", HOSTILE),
        ]
    )
    started = Jobs(
        files=stack.create_job(command, name="viewable files"),
        keep=stack.create_job("mkdir -p artifacts; echo hello > artifacts/test.txt", name="keep"),
    )
    stack.wait_finished(started.files, started.keep)
    return started


def artifacts(page: Any, job_id: str) -> Any:
    page.goto(f"/jobs/{job_id}#artifacts")
    panel = page.get_by_role("tabpanel", name="Artifacts")
    expect(panel.locator("tr.file-row").first).to_be_visible()
    return panel


def test_the_retention_sentence_then_extend_then_keep(
    page: Any, jobs: Jobs, screenshots: Path
) -> None:
    panel = artifacts(page, jobs.keep)
    line = panel.locator(".artifact-retention")

    expect(line).to_have_attribute("data-state", "EXPIRES")
    expect(line.locator(".retention-reason")).to_have_text(
        re.compile(r"^Expires on \d+ \w+ at \d\d:\d\d UTC\.$")
    )
    line.get_by_role("button", name="Extend 7 days").click()
    expect(line.locator(".retention-reason")).to_have_text(
        re.compile(r"^Extended by dev on \d+ \w+: expires on \d+ \w+ at \d\d:\d\d UTC\.$")
    )
    page.screenshot(path=screenshots / "artifacts-extended.png", full_page=True)
    panel.locator(".artifact-retention").get_by_role("button", name="Keep").click()

    kept = panel.locator(".artifact-retention[data-state=KEPT]")
    expect(kept.locator(".retention-reason")).to_have_text(
        re.compile(r"^Kept by dev on \d+ \w+\.$")
    )
    expect(kept.get_by_role("button", name="Keep")).to_have_count(0)
    expect(panel.locator(".artifact-expiry")).to_have_count(0)
    page.screenshot(path=screenshots / "artifacts-kept.png", full_page=True)


def test_a_text_file_and_an_image_open_in_the_page(
    page: Any, jobs: Jobs, screenshots: Path
) -> None:
    panel = artifacts(page, jobs.files)

    panel.get_by_role("button", name="View test.txt").click()
    expect(panel.locator(".viewer .viewer-text")).to_have_text("hello\n")
    panel.get_by_role("button", name="View dot.png").click()
    image = panel.locator(".viewer img.viewer-image")
    expect(image).to_be_visible()
    page.wait_for_function("() => document.querySelector('.viewer img')?.complete")
    assert image.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [1, 1]
    page.screenshot(path=screenshots / "artifacts-viewer.png", full_page=True)


def test_html_downloads_and_html_named_png_is_refused_never_rendered(
    page: Any, jobs: Jobs, stack: StackClient
) -> None:
    panel = artifacts(page, jobs.files)

    expect(panel.get_by_role("button", name="View report.html")).to_have_count(0)
    with page.expect_download() as download:
        panel.get_by_role("link", name="report.html", exact=True).click()
    assert Path(download.value.path()).read_bytes() == HOSTILE
    panel.get_by_role("button", name="View x.png").click()
    expect(panel.locator(".viewer .viewer-refused")).to_contain_text("HTML, SVG or XML")
    # The view link itself, opened as a page: a JSON refusal, sandboxed, nothing runs.
    link = panel.locator("tr.file-row[data-path='x.png'] .view-file")
    assert link.count() == 1
    view_url = stack.graphql(
        "query ($id: ID!) { phJob(where: {id: $id}) "
        '{ artifact { item(name: "x.png") { viewUrl } } } }',
        {"id": jobs.files},
    )["phJob"]["artifact"]["item"]["viewUrl"]
    response = page.goto(view_url)
    assert response.status == 415
    assert response.headers["x-content-type-options"] == "nosniff"
    assert page.evaluate("() => [window.pwned, document.title]") == [None, ""]
