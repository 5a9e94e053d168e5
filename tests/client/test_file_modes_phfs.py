"""File modes on the ``phfs`` path: run-job.sh writes the manifest, the CLI restores it.

In ``phfs`` mode the job's pod copies into the group's PHFS folder, which the services
reach as the S3 bucket through PHFS's gateway. Here run-job.sh runs for real into a
temporary PHFS root, and its group folder is put into SeaweedFS key for key (what the
gateway serves); then the api lists it and ``jobartifacts download`` restores the modes.
"""

from __future__ import annotations

import stat
from pathlib import Path

from support.api import add_job
from support.client import Bucket, ThreadedApi, run_cli
from support.jobs import GROUP, JOB, JobHome

from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.layout import group_path


def _serve_phfs(job: JobHome, bucket: Bucket) -> None:
    """The PHFS root as the gateway shows it: ``groups/<grouppath>/<path in the folder>``."""
    for path in sorted(job.phfs.rglob("*")):
        if path.is_file():
            bucket.put(
                f"groups/{group_path(GROUP)}/{path.relative_to(job.phfs)}", path.read_bytes()
            )


def test_a_0755_script_collected_to_phfs_comes_back_0755_and_setuid_never(
    tmp_path: Path, api: ThreadedApi, store: LocalJobStore, bucket: Bucket
) -> None:
    job = JobHome(tmp_path / "job")
    command = (
        "mkdir -p artifacts && printf '#!/bin/sh\\necho hi\\n' > artifacts/run.sh"
        " && chmod 755 artifacts/run.sh && cp artifacts/run.sh artifacts/suid.sh"
        " && chmod 4755 artifacts/suid.sh && echo s > artifacts/secret"
        " && chmod 600 artifacts/secret"
    )
    assert job.run(command).returncode == 0
    assert stat.S_IMODE((job.job_folder / "suid.sh").stat().st_mode) == 0o4755  # copied as is
    _serve_phfs(job, bucket)
    add_job(store, JOB, group=GROUP)

    download = run_cli("download", JOB, "-o", str(tmp_path / "out"), api_url=api.url)

    assert download.returncode == 0, download.stderr
    assert download.stdout.count("sha256 verified") == 3
    got = {name: stat.S_IMODE((tmp_path / "out" / name).stat().st_mode) for name in
           ("run.sh", "suid.sh", "secret")}  # fmt: skip
    assert got == {"run.sh": 0o755, "suid.sh": 0o755, "secret": 0o600}
