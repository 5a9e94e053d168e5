"""``Client.logs``, ``Client.job_logs`` and ``jobartifacts logs`` against the real api.

The job's output is where the local runtime writes it; the CLI runs as a subprocess, on a
pipe and on a pseudo-terminal (where control bytes a job printed must not reach it).
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.api import add_job, api_settings, token
from support.client import GROUP, ThreadedApi, run_cli
from support.joblogs import append, finish, runtime_log

from artifacts_client import Client, Forbidden, NotFound
from artifacts_client.cli import for_terminal
from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.phjob import PhJobPhase
from artifacts_shared.settings import RedisSettings, S3Settings

JOB = "job-202009250153-34s0ti"
OTHER = "job-202009250153-zzzzzz"
LINES = b"".join(f"line {i}\n".encode() for i in range(1, 6))


def _serve(
    s3_settings: S3Settings,
    redis_settings: RedisSettings,
    store: LocalJobStore,
    runtime: Path,
    **overrides: str,
) -> Iterator[ThreadedApi]:
    settings = api_settings(
        s3_settings, redis_settings.redis_url, store.root, local_runtime_dir=runtime, **overrides
    )
    api = ThreadedApi(settings).start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture
def api(
    s3_settings: S3Settings, redis_settings: RedisSettings, store: LocalJobStore, tmp_path: Path
) -> Iterator[ThreadedApi]:
    yield from _serve(
        s3_settings, redis_settings, store, tmp_path / "runtime", api_auth_mode="none"
    )


@pytest.fixture
def secured_api(
    s3_settings: S3Settings, redis_settings: RedisSettings, store: LocalJobStore, tmp_path: Path
) -> Iterator[ThreadedApi]:
    yield from _serve(s3_settings, redis_settings, store, tmp_path / "runtime")


def running(store: LocalJobStore, api: ThreadedApi, job_id: str = JOB, data: bytes = LINES) -> Path:
    add_job(store, job_id, group=GROUP, phase=PhJobPhase.RUNNING)
    return runtime_log(api.settings, job_id, data)


def test_logs_gives_the_whole_log_or_its_tail(api: ThreadedApi, store: LocalJobStore) -> None:
    running(store, api)
    client = Client(api.url)

    assert b"".join(client.logs(JOB)) == LINES
    assert b"".join(client.logs(JOB, tail=2)) == b"line 4\nline 5\n"
    with pytest.raises(ValueError, match="tail"):
        client.logs(JOB, tail=-1)


def test_logs_follows_until_the_job_ends(api: ThreadedApi, store: LocalJobStore) -> None:
    path = running(store, api, data=b"start\n")
    received: list[bytes] = []

    def job_writes_then_ends() -> None:
        time.sleep(0.5)
        append(path, b"middle\n")
        time.sleep(0.5)
        append(path, b"end\n")
        finish(store, JOB)

    writer = threading.Thread(target=job_writes_then_ends)
    writer.start()
    started = time.monotonic()
    for chunk in Client(api.url).logs(JOB, follow=True):
        received.append(chunk)
    writer.join()

    assert b"".join(received) == b"start\nmiddle\nend\n"
    assert time.monotonic() - started >= 1.0


def test_job_logs_pages_like_juliahubs(api: ThreadedApi, store: LocalJobStore) -> None:
    running(store, api)
    client = Client(api.url)

    tail = client.job_logs(JOB, limit=2)
    head = client.job_logs(JOB, offset=0, limit=2)

    assert (tail.offset, tail.lines, tail.total_lines, tail.has_more) == (
        3,
        ["line 4", "line 5"],
        5,
        False,
    )
    assert (head.lines, head.has_more, head.live, head.source) == (
        ["line 1", "line 2"],
        True,
        True,
        "LIVE",
    )
    assert tail.to_json()["lines"] == ["line 4", "line 5"]


def test_logs_of_another_groups_job_raise_forbidden(
    secured_api: ThreadedApi, store: LocalJobStore
) -> None:
    add_job(store, OTHER, group="team-b", phase=PhJobPhase.RUNNING)
    runtime_log(secured_api.settings, OTHER, b"secret\n")
    client = Client(secured_api.url, token("alice", groups=[GROUP]))

    with pytest.raises(Forbidden):
        b"".join(client.logs(OTHER))
    with pytest.raises(Forbidden):
        client.job_logs(OTHER)
    with pytest.raises(NotFound):
        b"".join(client.logs("job-202009250153-nosuch"))


def test_the_cli_prints_the_tail_and_says_why_it_cannot(
    secured_api: ThreadedApi, store: LocalJobStore
) -> None:
    running(store, secured_api)
    add_job(store, OTHER, group="team-b", phase=PhJobPhase.RUNNING)
    env = {"JOBARTIFACTS_TOKEN": token("alice", groups=[GROUP])}

    tail = run_cli("logs", JOB, "--tail", "2", api_url=secured_api.url, env=env)
    refused = run_cli("logs", OTHER, api_url=secured_api.url, env=env)
    bad = run_cli("logs", JOB, "--tail", "-3", api_url=secured_api.url, env=env)

    assert (tail.returncode, tail.stdout, tail.stderr) == (0, "line 4\nline 5\n", "")
    assert refused.returncode == 1
    assert refused.stderr.startswith("jobartifacts: error: job ")
    assert refused.stderr.rstrip().endswith("(FORBIDDEN)")
    assert bad.returncode == 2
    assert "expected 0 or more" in bad.stderr


def test_the_cli_follows_a_running_job_to_its_end(api: ThreadedApi, store: LocalJobStore) -> None:
    path = running(store, api, data=b"one\n")
    timer = threading.Timer(1.0, lambda: (append(path, b"two\n"), finish(store, JOB)))
    timer.start()

    result = run_cli("logs", JOB, "-f", api_url=api.url, timeout=30)
    timer.join()

    assert (result.returncode, result.stdout) == (0, "one\ntwo\n")


def test_on_a_terminal_control_bytes_a_job_printed_are_shown_as_question_marks(
    api: ThreadedApi, store: LocalJobStore
) -> None:
    hostile = b"\x1b]0;pwned\x07title \x1b[2J\x1b[31mred\x1b[0m\tok\r\n"
    running(store, api, data=hostile)
    primary, secondary = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBARTIFACTS_")}
    env["JOBARTIFACTS_API_URL"] = api.url
    process = subprocess.run(
        [sys.executable, "-m", "artifacts_client", "logs", JOB],
        stdout=secondary,
        stderr=subprocess.PIPE,
        env=env,
        timeout=30,
        check=False,
    )
    os.close(secondary)
    shown = b""
    while True:
        try:
            data = os.read(primary, 65536)
        except OSError:
            break
        if not data:
            break
        shown += data
    os.close(primary)
    piped = run_cli("logs", JOB, api_url=api.url)

    assert process.returncode == 0, process.stderr
    # The terminal turns "\n" into "\r\n" itself.
    assert shown.replace(b"\r\n", b"\n") == b"?]0;pwned?title ?[2J\x1b[31mred\x1b[0m\tok\r\n"
    assert piped.stdout.encode() == hostile  # a pipe gets the bytes as they are


def test_for_terminal_keeps_text_colours_and_layout_only() -> None:
    assert for_terminal(b"caf\xc3\xa9\t\x1b[1;32mok\x1b[0m\r\n") == (
        b"caf\xc3\xa9\t\x1b[1;32mok\x1b[0m\r\n"
    )
    assert for_terminal(b"\x00\x07\x08\x1b[H\x1bc\x7f") == b"????[H?c?"
