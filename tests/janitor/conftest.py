"""Fixtures for the janitor: its settings on the test servers, a clock the test sets."""

from __future__ import annotations

import pytest
from support.folders import FixedClock

from artifacts_janitor.settings import JanitorSettings
from artifacts_shared.settings import RedisSettings, S3Settings


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def janitor_settings(s3_settings: S3Settings, redis_settings: RedisSettings) -> JanitorSettings:
    return JanitorSettings(
        **s3_settings.model_dump(),
        redis_url=redis_settings.redis_url,
        janitor_metrics_port=0,
        janitor_lock_seconds=2,
        janitor_concurrency=8,
    )
