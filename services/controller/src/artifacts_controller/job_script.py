"""Where run-job.sh lives: shipped as package data, put in a ConfigMap or run locally.

The script is a file of this distribution (``scripts/run-job.sh``) so that the controller
that puts it in the ``primehub-controller-job-scripts`` ConfigMap, the local runtime that
runs it as a process, and the tests all use the same bytes.
"""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path

__all__ = ["RUN_JOB_SCRIPT", "read_run_job_script", "run_job_script_path"]

RUN_JOB_SCRIPT = "run-job.sh"
"""The script's name: the ConfigMap key, and the file under ``/scripts`` in the pod."""


def read_run_job_script() -> str:
    """The script's text, for the ConfigMap."""
    return (
        files("artifacts_controller")
        .joinpath("scripts", RUN_JOB_SCRIPT)
        .read_text(encoding="utf-8")
    )


def run_job_script_path() -> Path:
    """A path to the script on the file system, to run with ``bash <path> <command>``.

    The distribution is installed as files (never zipped), so this is the installed file.
    """
    with as_file(files("artifacts_controller").joinpath("scripts", RUN_JOB_SCRIPT)) as path:
        return Path(path)
