"""The api's own SigV4 link signer against botocore's, and against a server that checks.

``Presigner`` signs by the published algorithm instead of through botocore's
``S3SigV4QueryAuth`` (see its module docstring for why): for the same instant both must
give the same URL, byte for byte, whatever the key, the name or the credentials.
"""

from __future__ import annotations

import urllib.parse

import aiohttp
import pytest
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials
from support.api import put_files
from yarl import URL

from artifacts_api.presign import Presigner, content_disposition
from artifacts_shared.s3 import S3Client, s3_credentials
from artifacts_shared.settings import S3Settings

KEYS = [
    "groups/team-a/jobArtifacts/job-202101020304-abcdef/test.txt",
    "groups/team-a/jobArtifacts/job-202101020304-abcdef/dir3/file-000123_v1.0~final.tar.gz",
    "groups/team-a/jobArtifacts/job-202101020304-abcdef/sub dir/a+b=c&d.txt",
    "groups/team-a/jobArtifacts/job-202101020304-abcdef/~tilde/100%/semi;colon",
    "groups/team-a/jobArtifacts/job-202101020304-abcdef/ünïcødé/日本語.csv",
    "groups/team-a/jobArtifacts/job-202101020304-abcdef/quote\"back\\slash's",
    "groups/team-a/jobArtifacts/job-202101020304-abcdef/..%2F../?query#frag",
]


class _Credentials:
    def __init__(self, frozen: ReadOnlyCredentials) -> None:
        self.frozen = frozen

    async def get_frozen_credentials(self) -> ReadOnlyCredentials:
        return self.frozen


def _botocore_url(
    frozen: ReadOnlyCredentials, base: str, key: str, name: str, *, stamp: str, ttl: int
) -> str:
    """What botocore's own query signer gives for ``base + key`` at ``stamp``."""
    auth = S3SigV4QueryAuth(frozen, "s3", "us-east-1", expires=ttl)
    request = AWSRequest(
        method="GET",
        url=base + urllib.parse.quote(key, safe="/~"),
        params={"response-content-disposition": content_disposition(name)},
    )
    request.context["timestamp"] = stamp
    # add_auth reads the clock; the signing steps after it take the instant given here.
    auth._modify_request_before_signing(request)
    canonical = auth.canonical_request(request)
    to_sign = auth.string_to_sign(request, canonical)
    auth._inject_signature_to_request(request, auth.signature(to_sign, request))
    return str(request.url)


def _stamp_of(url: str) -> str:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["X-Amz-Date"][0]


@pytest.mark.parametrize("token", [None, "session/token+with=odd&chars"])
@pytest.mark.parametrize(
    "base", ["http://127.0.0.1:8333/phfs/", "https://phfs.s3.example.org/", "http://s3:80/b/"]
)
async def test_each_link_is_botocores_byte_for_byte(base: str, token: str | None) -> None:
    frozen = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    presigner = Presigner(
        base_url=base,
        region="us-east-1",
        credentials=_Credentials(frozen.get_frozen_credentials()),
        ttl_seconds=300,
    )
    await presigner.refresh()
    for key in KEYS:
        name = key.split("/", 4)[-1]
        ours = presigner.download_url(key, name)
        theirs = _botocore_url(
            frozen.get_frozen_credentials(), base, key, name, stamp=_stamp_of(ours), ttl=300
        )
        assert ours == theirs


async def test_new_credentials_sign_new_links() -> None:
    old = Credentials("AKIDOLD", "old-secret").get_frozen_credentials()
    new = Credentials("AKIDNEW", "new-secret").get_frozen_credentials()
    source = _Credentials(old)
    presigner = Presigner(
        base_url="http://127.0.0.1:8333/phfs/",
        region="us-east-1",
        credentials=source,
        ttl_seconds=60,
    )
    await presigner.refresh()
    before = presigner.download_url(KEYS[0], "test.txt")
    source.frozen = new
    await presigner.refresh()
    after = presigner.download_url(KEYS[0], "test.txt")
    assert "AKIDOLD%2F" in before and "AKIDNEW%2F" in after
    assert after == _botocore_url(
        new, "http://127.0.0.1:8333/phfs/", KEYS[0], "test.txt", stamp=_stamp_of(after), ttl=60
    )


async def test_the_s3_server_accepts_every_awkward_key_as_signed(
    s3: S3Client, s3_settings: S3Settings
) -> None:
    bucket = s3_settings.phfs_bucket
    names = {key.split("/", 4)[-1]: key.encode() for key in KEYS}
    await put_files(s3, bucket, "team-a", "job-202101020304-abcdef", names)
    presigner = await Presigner.for_client(
        s3, credentials=await s3_credentials(s3_settings), bucket=bucket, ttl_seconds=60
    )
    async with aiohttp.ClientSession() as session:
        for name, body in names.items():
            url = presigner.download_url(body.decode(), name)
            async with session.get(URL(url, encoded=True)) as answer:
                assert answer.status == 200, (name, await answer.text())
                assert await answer.read() == body
            tampered = url.replace("X-Amz-Expires=60", "X-Amz-Expires=61")
            async with session.get(URL(tampered, encoded=True)) as answer:
                assert answer.status == 403, name


async def test_no_credentials_is_one_clear_message_naming_the_settings(s3: S3Client) -> None:
    with pytest.raises(ValueError, match="set S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY"):
        await Presigner.for_client(s3, credentials=None, bucket="phfs", ttl_seconds=300)
