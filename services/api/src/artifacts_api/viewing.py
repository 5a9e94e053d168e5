"""``GET /jobs/<id>/view?name=<path>``: an artifact shown in the job page, never run as a page.

What a browser may show is decided here from the file's own first bytes, never from its
name or the ``Content-Type`` it was stored with (the job chose both):

- a PNG, JPEG, GIF or WebP signature: served whole (up to ``IMAGE_MAX_BYTES``) as that
  image type;
- anything that sniffs as markup (HTML, SVG, XML, by the WHATWG sniffing signatures) or has
  such a name: refused (415), it is only ever downloaded;
- UTF-8 text without NUL bytes: its first ``TEXT_MAX_BYTES`` as ``text/plain``;
- anything else: refused (415).

Every answer carries ``X-Content-Type-Options: nosniff`` and a sandboxing
``Content-Security-Policy``, so even a link to this route opened by hand renders nothing
active on the api's (the UI's) origin: a GIF header in front of a script stays an image
that fails to decode. README, "Viewing artifacts in the browser", says why this is a route
of ours rather than a presigned S3 link.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from aiohttp import web
from botocore.exceptions import ClientError

from artifacts_api.errors import ApiError, BadUserInput, NotFound, Unauthenticated, classify
from artifacts_api.identity import Identity
from artifacts_api.jobs import parse_job_id, visible_job
from artifacts_api.links import view_route
from artifacts_api.presign import content_disposition
from artifacts_api.services import SERVICES, Services
from artifacts_shared.layout import ObjectKey, UnsafeNameError, artifact_key, job_prefix

__all__ = ["IMAGE_MAX_BYTES", "TEXT_MAX_BYTES", "may_view", "view_artifact"]

TEXT_MAX_BYTES = 1024 * 1024
IMAGE_MAX_BYTES = 32 * 1024 * 1024
_SNIFF = 512
_CHUNK = 256 * 1024

_MARKUP_NAMES = (
    ".html", ".htm", ".xhtml", ".xht", ".shtml", ".svg", ".svgz", ".xml", ".xsl", ".xslt",
    ".mht", ".mhtml",
)  # fmt: skip
# WHATWG MIME Sniffing, "identifying a resource with an unknown MIME type": the tags that
# make a browser take bytes for HTML, plus the XML and SVG starts.
_MARKUP_STARTS = (
    b"<!doctype html", b"<html", b"<head", b"<script", b"<iframe", b"<h1", b"<div", b"<font",
    b"<table", b"<a", b"<style", b"<title", b"<b", b"<body", b"<br", b"<p", b"<!--", b"<?xml",
    b"<svg",
)  # fmt: skip
_IMAGES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "private, no-store",
    "Referrer-Policy": "no-referrer",
}


_LINK = Identity(name="signed-link", groups=frozenset(), admin=True)
"""A valid view link was made for a caller allowed to see exactly this file."""


class Unviewable(ApiError):
    code = "BAD_USER_INPUT"
    http_status = 415


def may_view(name: str) -> bool:
    """Whether the page may offer to view ``name``; the route still decides by content."""
    return not name.lower().endswith(_MARKUP_NAMES)


def image_type(head: bytes) -> str | None:
    for signature, media in _IMAGES:
        if head.startswith(signature):
            return media
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def looks_like_markup(head: bytes) -> bool:
    text = head.removeprefix(codecs.BOM_UTF8).lstrip(b" \t\n\r\x0c").lower()
    for start in _MARKUP_STARTS:
        # A tag name ends at a space or ">" (WHATWG: "tag-terminating byte").
        if text.startswith(start) and (
            start in (b"<!--", b"<?xml") or text[len(start) : len(start) + 1] in (b" ", b">")
        ):
            return True
    return False


def is_text(head: bytes, *, truncated: bool) -> bool:
    if b"\x00" in head:
        return False
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(head, final=not truncated)
    except UnicodeDecodeError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class _Target:
    job_id: str
    name: str
    key: ObjectKey


async def _target(request: web.Request, services: Services) -> _Target:
    job_id = request.match_info["id"]
    parse_job_id(job_id)
    name = request.query.get("name", "")
    signature = request.query.get("signature")
    identity: Identity | None = None
    if signature is None:
        identity = await services.authenticator.authenticate(request.headers.get("Authorization"))
    elif not services.links.valid(
        job_id, request.query.get("expires", ""), signature, route=view_route(name)
    ):
        raise Unauthenticated("the link has expired or is not valid; open the file again")
    job = await visible_job(services.jobs, identity or _LINK, job_id)
    try:
        key = artifact_key(job_prefix(job.spec.group_name, job.id), name)
    except UnsafeNameError as err:
        raise BadUserInput(f"name: {err}", field="name") from None
    if not may_view(name):
        raise Unviewable(f"{name} is HTML, SVG or XML: it is only ever downloaded")
    return _Target(job_id, name, key)


async def view_artifact(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    try:
        target = await _target(request, services)
        got = await services.s3.get_object(Bucket=services.bucket, Key=target.key)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in {"NoSuchKey", "404", "NotFound"}:
            error: ApiError = NotFound("there is no such artifact")
        else:
            error = classify(err)
        return web.json_response(error.as_json(), status=error.http_status, headers=_HEADERS)
    except Exception as err:
        error = classify(err)
        return web.json_response(error.as_json(), status=error.http_status, headers=_HEADERS)
    async with got["Body"] as body:
        size = got["ContentLength"]
        head = b""
        while len(head) < min(_SNIFF, size):
            part = await body.read(_SNIFF - len(head))
            if not part:
                break
            head += part
        media = image_type(head)
        refusal = _refusal(target.name, head, size, media)
        if refusal is not None:
            return web.json_response(
                refusal.as_json(), status=refusal.http_status, headers=_HEADERS
            )
        limit = size if media else min(size, TEXT_MAX_BYTES)
        response = web.StreamResponse(
            headers={
                **_HEADERS,
                "Content-Type": media or "text/plain; charset=utf-8",
                "Content-Disposition": content_disposition(target.name, disposition="inline"),
                "X-Artifact-Size": str(size),
                "X-Artifact-Truncated": "true" if limit < size else "false",
            }
        )
        response.content_length = limit
        await response.prepare(request)
        await response.write(head[:limit])
        sent = min(len(head), limit)
        while sent < limit:
            chunk = await body.read(min(_CHUNK, limit - sent))
            if not chunk:
                break
            await response.write(chunk)
            sent += len(chunk)
    await response.write_eof()
    return response


def _refusal(name: str, head: bytes, size: int, media: str | None) -> ApiError | None:
    if media is not None:
        if size > IMAGE_MAX_BYTES:
            return Unviewable(
                f"{name} is larger than {IMAGE_MAX_BYTES // (1024 * 1024)} MiB: download it"
            )
        return None
    if looks_like_markup(head):
        return Unviewable(f"{name} holds HTML, SVG or XML: it is only ever downloaded")
    if not is_text(head, truncated=size > len(head)):
        return Unviewable(f"{name} is neither text nor a PNG, JPEG, GIF or WebP image: download it")
    return None
