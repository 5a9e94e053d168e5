"""Fixtures for the janitor: its settings on the test servers, a clock the test sets."""

from __future__ import annotations

import pytest
from support.folders import FixedClock

from artifacts_janitor.settings import JanitorSettings


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def janitor_settings(janitor_settings: JanitorSettings) -> JanitorSettings:
    """The root conftest's, with fewer folders deleted at a time."""
    return janitor_settings.model_copy(update={"janitor_concurrency": 8})
