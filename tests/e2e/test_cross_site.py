"""A hostile web page in real chromium cannot make the ``none``-mode dev stack run a job.

The dev stack has no login (``API_AUTH_MODE=none``) and a job runs a command on this
machine, so the only guard is the request's address (``artifacts_api/guards.py``). These
tests play the attack in Debian's chromium: a page on another loopback origin submits a
form and a ``text/plain`` fetch to the api (both need no CORS preflight), and a page on a
DNS-rebound name posts to the api as "its own" origin. Neither may create a job; the api's
own pages keep working. The GraphiQL explorer, too, must load nothing from elsewhere.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from support.browser import CHROMIUM_ARGS, StackClient, chromium_path
from support.devstack import DevStack
from support.servers import free_port

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = sync_api.expect

REBOUND = "rebind.test"
"""A name chromium is told resolves to 127.0.0.1, as an attacker's DNS would answer."""
MARK = "cross-site-attack"
MUTATION = "mutation ($data: PhJobCreateInput!) { createPhJob(data: $data) { id } }"
VARIABLES = {"data": {"displayName": MARK, "groupName": "phusers", "command": "touch /tmp/pwned"}}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium that resolves ``rebind.test`` to 127.0.0.1 (the e2e ``browser``, plus that)."""
    executable = chromium_path()
    if executable is None:
        pytest.skip("no chromium: install Debian's chromium (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {REBOUND} 127.0.0.1"],
        )
        try:
            yield launched
        finally:
            launched.close()


def _attack_page(api_url: str) -> bytes:
    variables = json.dumps(VARIABLES).replace("'", "&#39;")
    body = json.dumps({"query": MUTATION, "variables": VARIABLES})
    return f"""<!doctype html>
<html><body>
<form id="form" method="POST" action="{api_url}/graphql" target="sink">
  <input name="query" value="{MUTATION}">
  <input name="variables" value='{variables}'>
</form>
<iframe name="sink" id="sink"></iframe>
<script>
  fetch({json.dumps(api_url + "/graphql")}, {{
    method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}},
    body: {json.dumps(body)},
  }}).then(() => {{ document.body.dataset.fetched = "yes"; }});
  document.getElementById("sink").addEventListener("load", () => {{
    document.body.dataset.posted = "yes";
  }});
  document.getElementById("form").submit();
</script>
</body></html>""".encode()


@pytest.fixture(scope="module")
def attacker(devstack: DevStack) -> Iterator[str]:
    """A web server on another loopback port, serving the attack page."""
    page = _attack_page(devstack.api_url)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/attack.html"
    finally:
        server.shutdown()
        server.server_close()


def _refused_posts(api_url: str) -> float:
    """The api's count of POST /graphql answered 403, from its Prometheus metrics."""
    with urllib.request.urlopen(f"{api_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    wanted = 'artifacts_api_http_requests_total{method="POST",route="/graphql",status="403"}'
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(wanted))


def _attack_jobs(stack: StackClient) -> list[str]:
    found = stack.graphql(
        "query ($where: PhJobWhereInput) { phJobsConnection(where: $where, page: 1) "
        "{ edges { node { id } } } }",
        {"where": {"search": MARK}},
    )
    return [edge["node"]["id"] for edge in found["phJobsConnection"]["edges"]]


def test_a_page_on_another_loopback_origin_cannot_create_a_job(
    browser: Any, attacker: str, devstack: DevStack, stack: StackClient
) -> None:
    refused_before = _refused_posts(devstack.api_url)
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(attacker)
        expect(page.locator("body")).to_have_attribute("data-posted", "yes", timeout=15_000)
        expect(page.locator("body")).to_have_attribute("data-fetched", "yes", timeout=15_000)
        answer = page.frame(name="sink").locator("body").inner_text()
    finally:
        context.close()

    # Both requests reached the api, which refused them: no job exists.
    assert _refused_posts(devstack.api_url) - refused_before == 2
    assert json.loads(answer)["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert _attack_jobs(stack) == []


def test_a_dns_rebound_page_cannot_create_a_job(
    browser: Any, devstack: DevStack, stack: StackClient
) -> None:
    port = devstack.api_url.rsplit(":", 1)[1]
    context = browser.new_context()
    page = context.new_page()
    try:
        # The page's origin is the rebound name, so its fetch to "itself" is same-origin.
        response = page.goto(f"http://{REBOUND}:{port}/")
        answer = page.evaluate(
            """async ([query, variables]) => {
                const r = await fetch("/graphql", {method: "POST",
                  headers: {"Content-Type": "application/json"},
                  body: JSON.stringify({query, variables})});
                return {status: r.status, body: await r.json()};
            }""",
            [MUTATION, VARIABLES],
        )
    finally:
        context.close()

    assert response is not None and response.status == 403  # even the page itself
    assert answer["status"] == 403
    assert answer["body"]["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert _attack_jobs(stack) == []


def test_the_apis_own_page_still_creates_jobs_from_the_browser(
    browser: Any, devstack: DevStack, stack: StackClient
) -> None:
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(f"{devstack.api_url}/")
        answer = page.evaluate(
            """async ([query, variables]) => {
                const r = await fetch("/graphql", {method: "POST",
                  headers: {"Content-Type": "application/json"},
                  body: JSON.stringify({query, variables})});
                return r.json();
            }""",
            [
                MUTATION,
                {"data": {**VARIABLES["data"], "displayName": "own page", "command": "true"}},
            ],
        )
    finally:
        context.close()

    job_id = answer["data"]["createPhJob"]["id"]
    assert stack.wait_finished(job_id)[job_id]["phase"] == "Succeeded"


def test_the_explorer_runs_a_query_loading_nothing_from_another_origin(
    browser: Any, devstack: DevStack
) -> None:
    context = browser.new_context()
    elsewhere: list[str] = []
    problems: list[str] = []

    def only_this_api(route: Any) -> None:
        if route.request.url.startswith(devstack.api_url + "/"):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    context.route("**/*", only_this_api)
    # GraphiQL keeps its query in localStorage: start it with ours.
    context.add_init_script("localStorage.setItem('graphiql:query', '{ viewer { name groups } }')")
    page = context.new_page()
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    try:
        page.goto(f"{devstack.api_url}/graphql")
        page.locator(".graphiql-execute-button").click()
        result = page.locator(".graphiql-response")
        expect(result).to_contain_text('"name": "dev"', timeout=15_000)
        expect(result).to_contain_text("phusers")
    finally:
        context.close()

    assert elsewhere == []
    assert problems == []  # no CSP violation, no script error
