"""The api served over real HTTP against the session's real S3 (moto) and Redis servers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.api import Api, api_settings, serve

from artifacts_api.settings import ApiSettings
from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.settings import RedisSettings, S3Settings


@pytest.fixture
def store(tmp_path: Path) -> LocalJobStore:
    """The local job store the api reads (CONTROLLER_RUNTIME=local)."""
    return LocalJobStore(tmp_path / "jobs")


@pytest.fixture
def settings(
    s3_settings: S3Settings, redis_settings: RedisSettings, store: LocalJobStore
) -> ApiSettings:
    return api_settings(s3_settings, redis_settings.redis_url, store.root)


@pytest.fixture
async def api(settings: ApiSettings) -> AsyncIterator[Api]:
    async with serve(settings) as running:
        yield running
