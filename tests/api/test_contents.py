"""The api's reader of listing pages against botocore's own parser, on real servers.

``artifacts_api.contents`` reads the ``Contents`` of ListObjectsV2 pages itself; whatever
the keys, the pages must come out exactly as botocore parses them, and a page in any form
it does not know must be left to botocore.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from botocore import handlers

from artifacts_api.contents import parse_contents_here, read_contents
from artifacts_shared.s3 import S3Client, open_s3
from artifacts_shared.settings import S3Settings

NAMES = [
    "plain.txt",
    "sub dir/a+b=c&d.txt",
    "~tilde/100%/semi;colon",
    "ünïcødé/日本語.csv",
    "quote\"apostrophe's",  # SeaweedFS stores a backslash as a slash
    "angle<brackets>&amp;entity.txt",
    "tab\there",
    "emoji-🙂.bin",
    "..%2F../?query#frag",
    "deep/er/still/x.txt",
]


def _page(response: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in response.items() if key != "ResponseMetadata"}


@pytest.fixture
async def fast_s3(s3_settings: S3Settings) -> AsyncIterator[tuple[S3Client, list[bool]]]:
    """A client with the api's reader, and whether each page went through it."""
    taken: list[bool] = []

    def watch(customized_response_dict: dict[str, Any], **_: Any) -> None:
        taken.append("Contents" in customized_response_dict)

    async with open_s3(s3_settings) as client:
        parse_contents_here(client)
        client.meta.events.register("before-parse.s3.ListObjectsV2", watch)
        yield client, taken


async def _pages(s3: S3Client, bucket: str, **kwargs: Any) -> list[dict[str, Any]]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, **kwargs)
    return [_page(page) async for page in pages]


@pytest.mark.parametrize(
    "options",
    [{}, {"MaxKeys": 3}, {"Delimiter": "/"}, {"StartAfter": "jobs/quote"}, {"Prefix": "jobs/sub"}],
    ids=["flat", "pages-of-3", "delimiter", "start-after", "prefix"],
)
async def test_pages_read_here_are_botocores_pages_whatever_the_keys(
    s3: S3Client,
    s3_settings: S3Settings,
    fast_s3: tuple[S3Client, list[bool]],
    options: dict[str, Any],
) -> None:
    bucket = s3_settings.phfs_bucket
    for name in NAMES:
        await s3.put_object(Bucket=bucket, Key=f"jobs/{name}", Body=name.encode())
    fast, taken = fast_s3
    options = {"Prefix": "jobs/", **options}

    ours, botocores = await _pages(fast, bucket, **options), await _pages(s3, bucket, **options)

    assert ours == botocores
    keys = [item["Key"] for page in ours for item in page.get("Contents", ())]
    if options.get("Delimiter") is None:
        after = options.get("StartAfter", "")
        every = (f"jobs/{name}" for name in NAMES)
        assert keys == sorted(k for k in every if k.startswith(options["Prefix"]) and k > after)
        assert all(taken), "every page with objects went through the api's reader"


async def test_a_page_with_owners_is_left_to_botocore(
    s3: S3Client, s3_settings: S3Settings, fast_s3: tuple[S3Client, list[bool]]
) -> None:
    bucket = s3_settings.phfs_bucket
    await s3.put_object(Bucket=bucket, Key="jobs/a.txt", Body=b"a")
    fast, taken = fast_s3

    ours = await fast.list_objects_v2(Bucket=bucket, FetchOwner=True)

    assert _page(ours) == _page(await s3.list_objects_v2(Bucket=bucket, FetchOwner=True))
    assert "Owner" in ours["Contents"][0] and taken == [False]


async def test_pages_in_aws_order_with_checksums_are_read_too(
    aws_keys_s3_settings: S3Settings,
) -> None:
    """moto writes AWS's order of fields, a ``ChecksumAlgorithm`` and bare quotes in ETags
    (SeaweedFS: another order, ``&#34;``): the same objects either way."""
    bucket = aws_keys_s3_settings.phfs_bucket
    taken: list[bool] = []

    def watch(customized_response_dict: dict[str, Any], **_: Any) -> None:
        taken.append("Contents" in customized_response_dict)

    async with open_s3(aws_keys_s3_settings) as plain, open_s3(aws_keys_s3_settings) as fast:
        parse_contents_here(fast)
        fast.meta.events.register("before-parse.s3.ListObjectsV2", watch)
        for name in NAMES:
            await plain.put_object(Bucket=bucket, Key=f"jobs/{name}", Body=b"x")
        assert await _pages(fast, bucket, MaxKeys=4) == await _pages(plain, bucket, MaxKeys=4)
    assert taken == [True, True, True]


async def test_botocores_check_for_errors_sees_what_the_reader_leaves(
    s3: S3Client,
    s3_settings: S3Settings,
    fast_s3: tuple[S3Client, list[bool]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """botocore parses each 200 answer to see whether it is an ``<Error>``: after the
    reader, on what it leaves of a page, and on the whole answer of anything else."""
    seen: list[bytes] = []
    check = handlers._looks_like_special_case_error  # type: ignore[attr-defined]

    def spy(status_code: int, body: bytes) -> bool:
        seen.append(body)
        return bool(check(status_code, body))

    bucket = s3_settings.phfs_bucket
    for name in NAMES:
        await s3.put_object(Bucket=bucket, Key=f"jobs/{name}", Body=b"x")
    fast, taken = fast_s3
    monkeypatch.setattr(handlers, "_looks_like_special_case_error", spy)

    listed = await fast.list_objects_v2(Bucket=bucket, Prefix="jobs/")
    older = await fast.list_objects(Bucket=bucket, Prefix="jobs/")

    assert len(listed["Contents"]) == len(older["Contents"]) == len(NAMES)
    assert taken == [True]
    page, other = seen
    assert b"<ListBucketResult" in page and b"<IsTruncated>" in page
    assert b"<Contents>" not in page
    assert other.count(b"<Contents>") == len(NAMES)


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code></Error>',
        b"<ListBucketResult><Name>b</Name><Contents><Key>a</Key><Size>1</Size></Contents></Li",
    ],
    ids=["error", "truncated"],
)
async def test_an_error_in_a_200_answer_is_still_botocores_500(
    fast_s3: tuple[S3Client, list[bool]], body: bytes
) -> None:
    fast, _ = fast_s3
    response = {"status_code": 200, "body": body, "headers": {}}
    customized: dict[str, Any] = {}

    await fast.meta.events.emit(
        "before-parse.s3.ListObjectsV2",
        operation_model=fast.meta.service_model.operation_model("ListObjectsV2"),
        response_dict=response,
        customized_response_dict=customized,
    )

    assert response["status_code"] == 500, "botocore retries it as a server error"
    assert response["body"] == body and "Contents" not in customized


def _body(contents: str, head: str = '<?xml version="1.0" encoding="UTF-8"?>') -> bytes:
    return (
        f'{head}<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Name>b</Name><IsTruncated>false</IsTruncated>{contents}</ListBucketResult>"
    ).encode()


def test_escapes_are_xmls_own() -> None:
    contents = (
        "<Contents><Key>a&amp;b&lt;c&gt;&quot;&apos;&#38;&#x26;&#128;&#x1F642;</Key>"
        "<LastModified>2026-12-01T10:11:12.000Z</LastModified><ETag>&quot;e&quot;</ETag>"
        "<Size>12</Size><StorageClass>STANDARD</StorageClass>"
        "<ChecksumAlgorithm>CRC32</ChecksumAlgorithm><ChecksumAlgorithm>SHA256</ChecksumAlgorithm>"
        "</Contents>"
    )
    records, rest = read_contents(_body(contents))

    (record,) = records
    # &#128; is U+0080 in XML (HTML would read it as the euro sign).
    assert record["Key"] == "a&b<c>\"'&&\x80🙂"
    assert record["ETag"] == '"e"' and record["Size"] == 12
    assert record["ChecksumAlgorithm"] == ["CRC32", "SHA256"]
    assert record["LastModified"].isoformat() == "2026-12-01T10:11:12+00:00"
    assert b"Contents" not in rest and b"<IsTruncated>false</IsTruncated>" in rest


@pytest.mark.parametrize(
    "contents, head",
    [
        ("<Contents><Key>a</Key><Owner><ID>x</ID></Owner></Contents>", None),
        ("<Contents>\n  <Key>a</Key>\n</Contents>", None),
        ("<Contents><Key><![CDATA[a]]></Key></Contents>", None),
        ("<Contents><Key>a\rb</Key></Contents>", None),
        ("<Contents><Key>&copy;</Key></Contents>", None),
        ("<Contents><Key>&#xD800;</Key></Contents>", None),
        ("<Contents><Key>&#0;</Key></Contents>", None),
        ("<Contents><Key>&#x1b;</Key></Contents>", None),
        ("<Contents><Key>a\x01b</Key></Contents>", None),
        ("<Contents><Key>&#xFFFE;</Key></Contents>", None),
        ("<Contents><Key>a\uffffb</Key></Contents>", None),
        ("<Contents><Key>a</Key><Key>b</Key></Contents>", None),
        ("<Contents><Key>a</Key><Size>big</Size></Contents>", None),
        ("<Contents><Size>1</Size></Contents>", None),
        ("<Contents><Key>a</Key>stray text</Contents>", None),
        ('<Contents id="1"><Key>a</Key></Contents>', None),
        ("<Contents><Key>a</Key></Contents>", "<?xml version='1.0' encoding='ISO-8859-1'?>"),
    ],
    ids=[
        "owner",
        "indented",
        "cdata",
        "carriage-return",
        "html-entity",
        "surrogate",
        "nul-reference",
        "control-reference",
        "raw-control",
        "noncharacter-reference",
        "raw-noncharacter",
        "repeated-key",
        "bad-size",
        "no-key",
        "stray-text",
        "attribute",
        "latin-1",
    ],
)
def test_anything_else_is_left_to_botocore(contents: str, head: str | None) -> None:
    body = _body(contents, head) if head else _body(contents)
    with pytest.raises(ValueError):
        read_contents(body)
