"""Viewing an artifact in the browser: images and text inline, markup never.

What is shown is decided by the file's first bytes; a name or a stored Content-Type the
job chose (``x.png`` holding HTML, ``text/html`` on a text file) changes nothing.
"""

from __future__ import annotations

import urllib.parse

import pytest
from support.api import Api, add_job, token

from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.layout import job_prefix
from artifacts_shared.s3 import S3Client

JOB = "job-202501010000-view01"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 40
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 40
GIF = b"GIF89a" + b"\x01\x00\x01\x00" + b"\x00" * 30
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 30
HTML = b"<!DOCTYPE html><html><body><script>document.title='owned'</script></body></html>"
SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'
QUERY = """query ($id: ID!) { phJob(where: {id: $id}) {
  artifact { items { name viewUrl downloadUrl } }
} }"""


async def stored(
    s3: S3Client, api: Api, store: LocalJobStore, files: dict[str, tuple[bytes, str]]
) -> dict[str, str | None]:
    """Put ``files`` (name -> body, stored Content-Type) for a finished job; their viewUrls."""
    add_job(store, JOB)
    prefix = job_prefix("team-a", JOB)
    for name, (body, media) in files.items():
        await s3.put_object(
            Bucket=api.settings.phfs_bucket, Key=f"{prefix}{name}", Body=body, ContentType=media
        )
    listed = await api.graphql(QUERY, {"id": JOB})
    return {item["name"]: item["viewUrl"] for item in listed.data["phJob"]["artifact"]["items"]}


async def view(api: Api, url: str) -> tuple[int, dict[str, str], bytes]:
    async with api.session.get(f"{api.url}{url}") as response:
        return response.status, dict(response.headers), await response.read()


@pytest.mark.parametrize(
    ("name", "body", "media"),
    [
        ("plot.png", PNG, "image/png"),
        ("photo.jpg", JPEG, "image/jpeg"),
        ("anim.gif", GIF, "image/gif"),
        ("pic.webp", WEBP, "image/webp"),
        ("png-named.txt", PNG, "image/png"),  # the bytes decide, not the name
    ],
)
async def test_an_image_is_served_inline_as_its_own_type(
    api: Api, s3: S3Client, store: LocalJobStore, name: str, body: bytes, media: str
) -> None:
    urls = await stored(s3, api, store, {name: (body, "application/octet-stream")})

    status, headers, got = await view(api, urls[name] or "")

    assert status == 200 and got == body
    assert headers["Content-Type"] == media
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in headers["Content-Security-Policy"]
    assert headers["Content-Disposition"].startswith("inline; ")


async def test_a_text_file_is_plain_text_and_only_its_first_mebibyte(
    api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    small = "hello, wörld\n".encode()
    big = b"line\n" * 400_000  # 2,000,000 bytes
    urls = await stored(
        s3, api, store, {"log.txt": (small, "text/html"), "big.log": (big, "text/plain")}
    )

    status, headers, got = await view(api, urls["log.txt"] or "")
    big_status, big_headers, big_got = await view(api, urls["big.log"] or "")

    assert (status, got) == (200, small)
    assert headers["Content-Type"] == "text/plain; charset=utf-8"  # not the stored text/html
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Artifact-Truncated"] == "false"
    assert big_status == 200 and big_got == big[: 1024 * 1024]
    assert (big_headers["X-Artifact-Truncated"], big_headers["X-Artifact-Size"]) == (
        "true",
        str(len(big)),
    )


@pytest.mark.parametrize(
    ("name", "body", "media"),
    [
        ("x.png", HTML, "image/png"),
        ("x.png", SVG, "image/svg+xml"),
        ("notes.txt", b"\n  <html><script>alert(1)</script>", "text/plain"),
        ("page", b"<svg onload=alert(1)>", "text/plain"),
        ("data.bin", b"\x00\x01\x02binary", "text/plain"),
    ],
)
async def test_markup_or_binary_under_any_name_or_type_is_refused(
    api: Api, s3: S3Client, store: LocalJobStore, name: str, body: bytes, media: str
) -> None:
    urls = await stored(s3, api, store, {name: (body, media)})

    status, headers, got = await view(api, urls[name] or "")

    assert status == 415
    assert headers["Content-Type"].startswith("application/json")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert body not in got


async def test_html_and_svg_names_get_no_view_link_and_the_route_refuses_them(
    api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    urls = await stored(
        s3, api, store, {"report.html": (HTML, "text/html"), "logo.SVG": (SVG, "image/svg+xml")}
    )
    path = f"/jobs/{JOB}/view?name=report.html"

    response = await api.get(path)

    assert urls == {"logo.SVG": None, "report.html": None}
    assert response.status == 415


async def test_a_view_link_is_for_one_file_and_needs_a_signature_or_a_member(
    api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    urls = await stored(
        s3, api, store, {"a.txt": (b"a\n", "text/plain"), "b.txt": (b"b\n", "text/plain")}
    )
    link = urls["a.txt"] or ""
    swapped = link.replace("name=a.txt", "name=b.txt")
    bare = f"/jobs/{JOB}/view?name=a.txt"

    assert (await view(api, swapped))[0] == 401
    assert (await view(api, bare))[0] == 401
    assert (await api.get(bare, bearer=token("mallory", groups=["team-b"]))).status == 403
    assert (await api.get(bare)).status == 200


@pytest.mark.parametrize(
    "name",
    [
        "../../team-b/jobArtifacts/job-202501010000-other1/a.txt",
        ".primehub/metadata/expiredAt",
        "sub/../a.txt",
        "",
        "/etc/passwd",
    ],
)
async def test_a_name_that_leaves_the_folder_or_reaches_metadata_is_refused(
    api: Api, s3: S3Client, store: LocalJobStore, name: str
) -> None:
    await stored(s3, api, store, {"a.txt": (b"a\n", "text/plain")})

    response = await api.get(f"/jobs/{JOB}/view?name={urllib.parse.quote(name, safe='')}")

    assert response.status == 400
