"""Browser tests: Debian's chromium (Playwright, ``executable_path``) against the dev stack.

One browser per test module; each test gets a fresh context (no shared storage, cookies
or session token), pinned to en-US and UTC so dates read the same everywhere. Uncaught
errors in the page fail the test that caused them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from support.browser import CHROMIUM_ARGS, SCREENSHOTS, StackClient, chromium_path
from support.servers import RedisServer, S3Server, free_port

try:
    from playwright import sync_api
except ImportError:  # the browser tests skip, saying why
    sync_api = None  # type: ignore[assignment]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Module scope, not session: while Playwright's sync API is open it keeps an asyncio
    # loop marked as running in this thread, and every async test after it would fail.
    if sync_api is None:
        pytest.skip("playwright is not installed (pip install -r requirements-dev.txt)")
    executable = chromium_path()
    if executable is None:
        pytest.skip("no chromium: install Debian's chromium (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any, devstack: Any) -> Iterator[Any]:
    context = browser.new_context(
        base_url=devstack.api_url,
        viewport={"width": 1100, "height": 800},
        locale="en-US",
        timezone_id="UTC",
        accept_downloads=True,
    )
    context.set_default_timeout(10_000)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield opened
    finally:
        context.close()
    assert errors == [], f"uncaught errors in the page: {errors}"


@pytest.fixture(scope="session")
def stack(devstack: Any) -> StackClient:
    return StackClient(devstack.api_url)


@pytest.fixture(scope="session")
def screenshots() -> Any:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


# --- Provisional: until the lead's `devstack` fixture (issue 8) reaches main. -----------


@dataclass
class _Stack:
    api_url: str
    s3_url: str
    bucket: str
    redis_url: str
    data_dir: Path


@pytest.fixture(scope="session")
def devstack() -> Iterator[_Stack]:
    s3 = S3Server().start()
    redis = RedisServer().start()
    data = Path(tempfile.mkdtemp(prefix="e2e-stack-"))
    boto3.client(
        "s3",
        endpoint_url=s3.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket="phfs")
    port = free_port()
    env = {
        **os.environ,
        "S3_ENDPOINT_URL": s3.url,
        "S3_REGION": "us-east-1",
        "S3_ACCESS_KEY_ID": "testing",
        "S3_SECRET_ACCESS_KEY": "testing",
        "PHFS_BUCKET": "phfs",
        "REDIS_URL": redis.url,
        "LOCAL_JOBS_DIR": str(data / "jobs"),
        "LOCAL_RUNTIME_DIR": str(data / "runtime"),
        "CONTROLLER_RUNTIME": "local",
        "ARTIFACT_DELIVERY": "s3",
        "API_AUTH_MODE": "none",
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "LOCAL_POLL_SECONDS": "0.2",
        "CONTROLLER_PROBE_HOST": "127.0.0.1",
        "CONTROLLER_PROBE_PORT": "0",
    }
    logs = data / "logs"
    logs.mkdir()
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", f"artifacts_{name}"],
            env=env,
            stdout=(logs / f"{name}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        for name in ("api", "controller", "janitor")
    ]
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                break
        except OSError:
            assert time.monotonic() < deadline, (logs / "api.log").read_text()
            time.sleep(0.1)
    try:
        yield _Stack(url, s3.url, "phfs", redis.url, data)
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        redis.stop()
        s3.stop()
