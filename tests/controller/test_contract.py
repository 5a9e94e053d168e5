"""run-job.sh ships inside the controller distribution, where the controller finds it."""

from __future__ import annotations

import fnmatch
import os
import tomllib
from pathlib import Path

from artifacts_controller.contract import (
    RUN_JOB_SCRIPT,
    read_run_job_script,
    run_job_script_path,
)

CONTROLLER = Path(__file__).resolve().parents[2] / "services" / "controller"


def test_the_script_is_found_through_the_package() -> None:
    path = run_job_script_path()
    assert path.name == RUN_JOB_SCRIPT
    assert read_run_job_script() == path.read_text(encoding="utf-8")
    assert read_run_job_script().startswith("#!/usr/bin/env bash\n")
    assert os.access(path, os.X_OK)


def test_setuptools_package_data_includes_the_script() -> None:
    config = tomllib.loads((CONTROLLER / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["artifacts_controller"]
    package = CONTROLLER / "src" / "artifacts_controller"
    relative = run_job_script_path().relative_to(package).as_posix()
    assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), patterns
