"""The S3 compatibility matrix: the same tests against every real S3 implementation we run.

SeaweedFS is the session's own server (``s3_server``); the JuiceFS S3 gateway is MinIO's S3
layer, which is what MinIO deployments answer with (it refuses ``DeleteObjects`` without
``Content-MD5``, for one). Each test gets a new bucket on the server of its parameter.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from support.servers import JuiceFsGateway, S3Server

from artifacts_shared.s3 import S3Client, open_s3
from artifacts_shared.settings import S3Settings

SERVERS = ["seaweedfs", "juicefs"]


@pytest.fixture(scope="session")
def juicefs_gateway() -> Iterator[JuiceFsGateway]:
    gateway = JuiceFsGateway().start()
    try:
        yield gateway
    finally:
        gateway.close()


@pytest.fixture(params=SERVERS)
def any_s3_server(request: pytest.FixtureRequest) -> S3Server | JuiceFsGateway:
    """Each real S3 implementation in turn (the test runs once per server)."""
    fixture = "s3_server" if request.param == "seaweedfs" else "juicefs_gateway"
    server: S3Server | JuiceFsGateway = request.getfixturevalue(fixture)
    return server


@pytest.fixture
def matrix_settings(any_s3_server: S3Server | JuiceFsGateway) -> Iterator[S3Settings]:
    settings = any_s3_server.settings(f"compat-{uuid.uuid4().hex[:12]}")
    any_s3_server.create_bucket(settings.phfs_bucket)
    try:
        yield settings
    finally:
        any_s3_server.delete_bucket(settings.phfs_bucket)


@pytest.fixture
async def matrix_s3(matrix_settings: S3Settings) -> AsyncIterator[S3Client]:
    async with open_s3(matrix_settings) as client:
        yield client
