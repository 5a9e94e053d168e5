"""Running the real run-job.sh with bash in a temporary home, and reading what it wrote.

Every test that runs the script goes through ``JobHome``: a home folder (the script's
working directory), a PHFS root beside it, a staging folder for the ``s3`` mode, and a
clean environment holding only what the pod would get.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from artifacts_controller.contract import run_job_script_path
from artifacts_shared.manifest import Manifest
from artifacts_shared.settings import S3Settings

JOB = "job-202009250153-34s0ti"
GROUP = "ML_Team"


@dataclass(frozen=True)
class JobRun:
    returncode: int
    stdout: str
    stderr: str
    started_at: float
    ended_at: float

    @property
    def decisions(self) -> list[str]:
        """The script's own log lines (``artifacts: ...`` and ``run-job: ...``)."""
        return [
            line
            for line in self.stderr.splitlines()
            if line.startswith(("artifacts: ", "run-job: "))
        ]


@dataclass
class JobHome:
    root: Path
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.phfs.mkdir(parents=True, exist_ok=True)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(self.home),
            "PHJOB_NAME": JOB,
            "GROUP_NAME": GROUP,
            "PHJOB_PHFS_ROOT": str(self.phfs),
            **self.env,
        }

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def artifacts(self) -> Path:
        return self.home / "artifacts"

    @property
    def phfs(self) -> Path:
        return self.root / "phfs"

    @property
    def staging(self) -> Path:
        return self.root / "staging"

    @property
    def job_folder(self) -> Path:
        return self.phfs / "jobArtifacts" / self.env["PHJOB_NAME"]

    @property
    def metadata(self) -> Path:
        return self.job_folder / ".primehub" / "metadata"

    def uploader_env(self, settings: S3Settings, **extra: str) -> dict[str, str]:
        """The uploader's environment for this job's staging folder and ``settings``' bucket,
        as the controller sets it on our own container (``extra`` adds the job's policy)."""
        secret = settings.s3_secret_access_key
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "S3_ENDPOINT_URL": settings.s3_endpoint_url or "",
            "S3_REGION": settings.s3_region,
            "S3_ACCESS_KEY_ID": settings.s3_access_key_id or "",
            "S3_SECRET_ACCESS_KEY": secret.get_secret_value() if secret else "",
            "PHFS_BUCKET": settings.phfs_bucket,
            "PHJOB_NAME": self.env["PHJOB_NAME"],
            "GROUP_NAME": self.env["GROUP_NAME"],
            "PHJOB_ARTIFACT_STAGING": str(self.staging),
            **extra,
        }

    def use_s3_delivery(self) -> None:
        self.staging.mkdir(exist_ok=True)
        self.env["PHJOB_ARTIFACT_DELIVERY"] = "s3"
        self.env["PHJOB_ARTIFACT_STAGING"] = str(self.staging)

    def start(self, *command: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        """The script as a child process in a session of its own, like a container's PID 1."""
        return subprocess.Popen(
            ["bash", str(run_job_script_path()), *command],
            cwd=self.home,
            env={**self.env, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
            preexec_fn=_default_signal_dispositions,
        )

    def run(
        self, *command: str, env: Mapping[str, str] | None = None, timeout: float = 60
    ) -> JobRun:
        started = time.time()
        process = self.start(*command, env=env)
        stdout, stderr = process.communicate(timeout=timeout)
        return JobRun(process.returncode, stdout, stderr, started, time.time())

    def signal_when(
        self,
        process: subprocess.Popen[str],
        ready: Path,
        signum: signal.Signals = signal.SIGTERM,
        timeout: float = 10,
        running: str = "sleep",
    ) -> JobRun:
        """Send ``signum`` once ``ready`` exists and the command's ``running`` process runs.

        Waiting for the process too closes a race: a signal that lands while the command's
        shell is between two commands (or inside the fork of the next one) is handled by
        bash's own rules, not by the script under test, and made this flaky under load.
        """
        started = time.time()
        deadline = time.monotonic() + timeout
        while not (ready.exists() and _runs(process.pid, running)):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                out, err = process.communicate()
                raise AssertionError(
                    f"{ready} or {running!r} never appeared; stdout={out!r} stderr={err!r}"
                )
            time.sleep(0.02)
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=timeout + 30)
        return JobRun(process.returncode, stdout, stderr, started, time.time())

    def collected(self) -> dict[str, bytes]:
        """Every artifact file in the PHFS job folder, by relative path, metadata aside."""
        return tree(self.job_folder, skip={".primehub"})

    def manifest(self) -> Manifest:
        return Manifest.from_json((self.metadata / "manifest.json").read_bytes())


def _default_signal_dispositions() -> None:
    """Start the script as a container starts PID 1: SIGINT not ignored.

    A shell without job control starts background commands with SIGINT ignored, and bash
    can neither trap nor reset a signal ignored on entry; a test run started that way (as
    CI may be) would otherwise test the environment, not the script.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def _runs(pid: int, name: str) -> bool:
    """Whether a descendant of ``pid`` named ``name`` has started (exec'd, not just forked)."""
    try:
        return any(child.name() == name for child in psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return False


def tree(folder: Path, skip: frozenset[str] | set[str] = frozenset()) -> dict[str, bytes]:
    """The files under ``folder`` (no links followed), relative path -> content."""
    found: dict[str, bytes] = {}
    if not folder.exists():
        return found
    for directory, subdirs, files in os.walk(folder):
        relative_dir = Path(directory).relative_to(folder)
        if relative_dir == Path("."):
            subdirs[:] = [name for name in subdirs if name not in skip]
        for name in files:
            path = Path(directory) / name
            found[(relative_dir / name).as_posix()] = path.read_bytes()
    return found
