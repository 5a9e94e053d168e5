"""The README's quick start, run as written against the `make run` stack."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest
from support.devstack import ROOT, DevStack
from support.primehub_sdk import install_sdk

pytestmark = pytest.mark.slow


def _quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [line for line in re.findall(r"^curl .*$", section, re.M)]


def _run(command: str, stack: DevStack) -> dict[str, object]:
    argv = [arg.replace("http://127.0.0.1:8080", stack.api_url) for arg in shlex.split(command)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
    document: dict[str, object] = json.loads(result.stdout)
    return document


def test_the_quick_start_curl_commands_work_as_written(devstack: DevStack, tmp_path: Path) -> None:
    create, query = _quick_start_commands()
    created = _run(create, devstack)
    job = created["data"]["createPhJob"]  # type: ignore[index]
    assert job["phase"] in {"Pending", "Preparing", "Running"}
    deadline = time.monotonic() + 60
    while True:
        answer = _run(query.replace("JOB_ID", job["id"]), devstack)
        found = answer["data"]["phJob"]  # type: ignore[index]
        if found["phase"] == "Succeeded" and found["artifact"]:
            break
        assert time.monotonic() < deadline, answer
        time.sleep(0.3)
    items = {item["name"]: item for item in found["artifact"]["items"]}
    assert {name: item["size"] for name, item in items.items()} == {
        "sub/test.txt": 6,
        "test.txt": 6,
    }
    # The README's download line, with the link the query returned.
    target = tmp_path / "test.txt"
    subprocess.run(
        ["curl", "-s", "-o", str(target), items["test.txt"]["downloadUrl"]], check=True, timeout=30
    )
    assert target.read_bytes() == b"hello\n"


def _primehub_block() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## PrimeHub's SDK and console", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```sh\n(.*?)```", section, re.S)
    return str(block)


def test_the_primehub_sdk_commands_work_as_written(devstack: DevStack, tmp_path: Path) -> None:
    sdk = install_sdk(ROOT / "tests" / "e2e" / "primehub-sdk.txt")
    script = _primehub_block().replace("http://127.0.0.1:8080", devstack.api_url)
    env = {
        "PATH": f"{sdk.parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
    }

    subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script + '\necho "$id" > job-id\n'],
        cwd=tmp_path, env=env, check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    job_id = (tmp_path / "job-id").read_text().strip()
    assert (tmp_path / "results" / job_id / "test.txt").read_bytes() == b"hello\n"
    assert (tmp_path / "results" / job_id / "sub" / "test.txt").read_bytes() == b"hello\n"
