"""Fixtures for the controller's tests: a temporary job home for run-job.sh."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.jobs import JobHome


@pytest.fixture
def job(tmp_path: Path) -> JobHome:
    return JobHome(tmp_path)
