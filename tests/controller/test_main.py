"""`python -m artifacts_controller` runs: the local runtime end to end, probes, clean stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from support.phjobs import new_phjob
from support.servers import TEST_CREDENTIALS, free_port

from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.phjob import PhJobPhase
from artifacts_shared.settings import S3Settings


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.status, response.read()


def test_the_local_controller_runs_a_job_answers_probes_and_stops_on_sigterm(
    tmp_path: Path, s3_settings: S3Settings
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "CONTROLLER_RUNTIME": "local",
        "LOCAL_JOBS_DIR": str(tmp_path / "jobs"),
        "LOCAL_RUNTIME_DIR": str(tmp_path / "runtime"),
        "LOCAL_POLL_SECONDS": "0.2",
        "CONTROLLER_PROBE_HOST": "127.0.0.1",
        "CONTROLLER_PROBE_PORT": str(port),
        "S3_ENDPOINT_URL": str(s3_settings.s3_endpoint_url),
        "S3_ACCESS_KEY_ID": TEST_CREDENTIALS.access_key_id,
        "S3_SECRET_ACCESS_KEY": TEST_CREDENTIALS.secret_access_key,
        "PHFS_BUCKET": s3_settings.phfs_bucket,
    }
    store = LocalJobStore(tmp_path / "jobs")
    job = store.create(new_phjob(command="mkdir -p artifacts; echo hi > artifacts/a.txt"))
    controller = subprocess.Popen(
        [sys.executable, "-m", "artifacts_controller"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while store.get(job.id).status.phase is not PhJobPhase.SUCCEEDED:
            assert controller.poll() is None, controller.stdout.read() if controller.stdout else ""
            assert time.monotonic() < deadline, store.get(job.id).status
            time.sleep(0.1)
        status, body = _get(f"http://127.0.0.1:{port}/healthz")
        assert status == 200 and json.loads(body) == {"status": "ok", "leader": True}
        status, body = _get(f"http://127.0.0.1:{port}/metrics")
        assert b"phjob_transitions_total" in body
        controller.send_signal(signal.SIGTERM)
        assert controller.wait(timeout=10) == 0
    finally:
        if controller.poll() is None:
            controller.kill()
            controller.wait()
        if controller.stdout:
            controller.stdout.close()
