"""`make run` as a person uses it: in a terminal, until Ctrl-C."""

from __future__ import annotations

import json
import os
import pty
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from support.devstack import READY_MARK, ROOT, leftover_processes, stack_env

pytestmark = pytest.mark.slow


def _read_until(fd: int, mark: str, timeout: float) -> str:
    seen = b""
    deadline = time.monotonic() + timeout
    while mark.encode() not in seen:
        assert time.monotonic() < deadline, seen.decode(errors="replace")[-3000:]
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    return seen.decode(errors="replace")


def test_make_run_comes_up_answers_graphql_and_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    env = stack_env(tmp_path)
    primary, secondary = pty.openpty()
    # The terminal becomes make's controlling terminal, as in an interactive shell.
    make = subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=ROOT,
        env=env,
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        start_new_session=True,
        preexec_fn=lambda: __import__("fcntl").ioctl(0, __import__("termios").TIOCSCTTY, 0),
    )
    os.close(secondary)
    try:
        output = _read_until(primary, READY_MARK, timeout=120)
        url = f"http://127.0.0.1:{env['API_PORT']}"
        assert f"{READY_MARK}{url}" in output
        request = urllib.request.Request(
            f"{url}/graphql",
            data=json.dumps({"query": "{ phJobs { totalCount } }"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.load(response) == {"data": {"phJobs": {"totalCount": 0}}}
        assert leftover_processes(tmp_path), "the stack's processes should be running"

        os.write(primary, b"\x03")  # Ctrl-C, through the terminal driver
        assert make.wait(timeout=60) == 0
    finally:
        if make.poll() is None:
            make.kill()
        os.close(primary)
    deadline = time.monotonic() + 10
    while leftover_processes(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert leftover_processes(tmp_path) == []


def test_a_taken_port_is_named_and_nothing_starts(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        env = stack_env(tmp_path, API_PORT=str(holder.getsockname()[1]))
        result = subprocess.run(
            [sys.executable, str(ROOT / "devstack" / "run.py")],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert f"127.0.0.1:{env['API_PORT']} (API_PORT)" in result.stderr
    assert leftover_processes(tmp_path) == []
