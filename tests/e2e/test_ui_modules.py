"""The UI's pure modules (sizes, times, folder rows, link expiry), run in the browser itself.

The page imports its own ES modules and the test reads what they return, so edge cases
(a newline in a name, a link about to expire) are checked without making a job for each.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("playwright.sync_api", reason="no playwright: make venv")


def run(page: Any, module: str, body: str) -> Any:
    """Evaluate ``body`` (an expression using ``m``, the module) in the UI's page."""
    page.goto("/healthz")  # same origin, no UI running: nothing else touches the page
    return page.evaluate(
        f"async () => {{ const m = await import('/js/{module}'); return {body}; }}"
    )


def test_sizes_read_as_people_write_them_and_stay_exact_in_the_title(page: Any) -> None:
    shown = run(
        page,
        "format.js",
        "[0, 6, 1023, 1024, 1536, 10 * 1024, 5 * 2**30 + 1, 2**53].map(m.formatBytes)"
        ".concat([m.exactBytes(1), m.exactBytes(3000005)])",
    )

    assert shown == [
        "0 B",
        "6 B",
        "1023 B",
        "1 KiB",
        "1.5 KiB",
        "10 KiB",
        "5 GiB",
        "8 PiB",
        "1 byte",
        "3,000,005 bytes",
    ]


def test_expiry_counts_whole_units_toward_now(page: Any) -> None:
    shown = run(
        page,
        "format.js",
        """(() => {
          const now = new Date("2026-01-01T00:00:00Z");
          const at = (seconds) => new Date(now.getTime() + seconds * 1000);
          return [7 * 86400 - 5, 2 * 86400, 86400, 2 * 3600 - 1, 90, -3 * 86400]
            .map((s) => m.relativeTime(at(s), now));
        })()""",
    )

    assert shown == [
        "in 6 days",
        "in 2 days",
        "in 24 hours",
        "in 119 minutes",
        "in 90 seconds",
        "3 days ago",
    ]


def test_breadcrumbs_parents_and_names_within_a_folder(page: Any) -> None:
    shown = run(
        page,
        "folders.js",
        """[m.crumbs("sub/deep/"), m.crumbs(""), m.parentOf("sub/deep/"), m.parentOf("sub/"),
            m.nameIn("sub/deep/", "sub/deep/y.txt"), m.nameIn("", "a.txt")]""",
    )

    assert shown == [
        [
            {"label": "All files", "path": ""},
            {"label": "sub", "path": "sub/"},
            {"label": "deep", "path": "sub/deep/"},
        ],
        [{"label": "All files", "path": ""}],
        "sub/",
        "",
        "y.txt",
        "a.txt",
    ]


def test_control_characters_in_names_are_made_visible(page: Any) -> None:
    shown = run(page, "format.js", r'm.visibleName("new\nline\ttab\u007f.txt")')

    assert shown == "new\u240aline\u2409tab\u2421.txt"


def test_signed_links_tell_when_they_stop_working(page: Any) -> None:
    expiries = run(
        page,
        "api.js",
        """[
          "http://s3.test/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20260101T120000Z"
            + "&X-Amz-Expires=300&X-Amz-Signature=abc",
          "/jobs/job-202009250153-34s0ti/artifacts.zip?expires=1767268800&signature=abc",
          "http://s3.test/b/k",
        ].map(m.linkExpiry)""",
    )

    assert expiries == [1767269100000, 1767268800000, None]
