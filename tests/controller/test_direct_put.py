"""``DirectPut`` against the real S3 server: the signature, the checksum and the key it
sends are the ones the server checks, and its failures read as a client call's."""

from __future__ import annotations

import base64
import hashlib

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from pydantic import SecretStr
from support.servers import free_port

from artifacts_controller.direct_put import open_direct_put
from artifacts_shared.s3 import S3Client, iter_objects
from artifacts_shared.settings import S3Settings


def _sha256(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


async def _read(s3: S3Client, bucket: str, key: str) -> bytes:
    response = await s3.get_object(Bucket=bucket, Key=key)
    async with response["Body"] as body:
        return await body.read()


async def test_a_body_goes_up_signed_and_a_wrong_sha256_is_refused(
    s3: S3Client, s3_settings: S3Settings
) -> None:
    async with open_direct_put(s3_settings, connections=2, attempts=2) as direct:
        assert direct is not None
        await direct.put(
            "a/b.txt", b"hello\n", sha256=_sha256(b"hello\n"), content_type="text/plain"
        )
        with pytest.raises(ClientError) as refused:
            await direct.put(
                "a/c.txt", b"hello\n", sha256=_sha256(b"bye"), content_type="text/plain"
            )

    bucket = s3_settings.phfs_bucket
    assert await _read(s3, bucket, "a/b.txt") == b"hello\n"
    head = await s3.head_object(Bucket=bucket, Key="a/b.txt")
    assert head["ContentType"] == "text/plain"
    assert refused.value.response["Error"]["Code"] == "BadDigest"
    assert [item.key async for item in iter_objects(s3, bucket, "")] == ["a/b.txt"]


ODD_KEYS = [
    "with space.txt", "100% done", "a%2Fb", "plus+and&equals=", "ünïcødé 日本語 🎉",
    "new\nline", "a:b?c#d", "tilde~", "(parens)[brackets]{braces}",
]  # fmt: skip


async def test_odd_keys_are_stored_as_given(s3: S3Client, s3_settings: S3Settings) -> None:
    async with open_direct_put(s3_settings, connections=4, attempts=2) as direct:
        assert direct is not None
        for key in ODD_KEYS:
            await direct.put(f"odd/{key}", key.encode(), sha256=_sha256(key.encode()),
                             content_type="application/octet-stream")  # fmt: skip

    bucket = s3_settings.phfs_bucket
    stored = [item.key async for item in iter_objects(s3, bucket, "odd/")]
    assert sorted(stored) == sorted(f"odd/{key}" for key in ODD_KEYS)
    for key in ODD_KEYS:
        assert await _read(s3, bucket, f"odd/{key}") == key.encode()


async def test_a_wrong_secret_is_refused_at_once_as_a_client_call_would_be(
    s3_settings: S3Settings,
) -> None:
    forged = s3_settings.model_copy(update={"s3_secret_access_key": SecretStr("not-the-secret")})
    async with open_direct_put(forged, connections=1, attempts=3) as direct:
        assert direct is not None
        with pytest.raises(ClientError) as refused:
            await direct.put("x", b"x", sha256=_sha256(b"x"), content_type="text/plain")
    assert refused.value.response["Error"]["Code"] in {"SignatureDoesNotMatch", "AccessDenied"}


async def test_an_unreachable_endpoint_is_an_endpoint_connection_error(
    s3_settings: S3Settings,
) -> None:
    gone = s3_settings.model_copy(update={"s3_endpoint_url": f"http://127.0.0.1:{free_port()}"})
    async with open_direct_put(gone, connections=1, attempts=2) as direct:
        assert direct is not None
        with pytest.raises(EndpointConnectionError, match="Could not connect to the endpoint"):
            await direct.put("x", b"x", sha256=_sha256(b"x"), content_type="text/plain")


async def test_without_an_endpoint_or_keys_the_client_call_is_used(
    s3_settings: S3Settings,
) -> None:
    for missing in ({"s3_endpoint_url": None}, {"s3_access_key_id": None}):
        async with open_direct_put(
            s3_settings.model_copy(update=missing), connections=1, attempts=1
        ) as direct:
            assert direct is None
