"""The client and the CLI against the real api over loopback HTTP (``support/client.py``).

Tests put jobs in the local job store and files in the bucket, then use the library
in-process or the CLI as a subprocess.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.api import api_settings, token
from support.client import GROUP, Bucket, ThreadedApi
from support.servers import S3Server

from artifacts_api.settings import ApiSettings
from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.settings import RedisSettings, S3Settings


@pytest.fixture
def store(tmp_path_factory: pytest.TempPathFactory) -> LocalJobStore:
    """The local job store, outside ``tmp_path`` so that stays the test's own empty folder."""
    return LocalJobStore(tmp_path_factory.mktemp("jobs"))


@pytest.fixture
def bucket(s3_settings: S3Settings, s3_server: S3Server) -> Bucket:
    return Bucket(s3_settings.phfs_bucket, s3_server.client)


def _serve(settings: ApiSettings) -> Iterator[ThreadedApi]:
    api = ThreadedApi(settings).start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture
def api(
    s3_settings: S3Settings, redis_settings: RedisSettings, store: LocalJobStore
) -> Iterator[ThreadedApi]:
    """The api as the dev stack runs it: ``API_AUTH_MODE=none``, every caller the admin dev."""
    settings = api_settings(s3_settings, redis_settings.redis_url, store.root, api_auth_mode="none")
    yield from _serve(settings)


@pytest.fixture
def secured_api(
    s3_settings: S3Settings, redis_settings: RedisSettings, store: LocalJobStore
) -> Iterator[ThreadedApi]:
    """The api checking HS256 tokens (``support.api.token`` makes them)."""
    yield from _serve(api_settings(s3_settings, redis_settings.redis_url, store.root))


@pytest.fixture
def alice() -> str:
    """A token of alice, member of team-a only."""
    return token("alice", groups=[GROUP])
