"""PrimeHub's store API, for job artifacts only: the ``files`` listing and ``GET /api/files/...``.

PrimeHub's SDK downloads a job's artifacts through its general file store: it lists
``/jobArtifacts/<job>/`` with the ``files`` query, then fetches every file from
``/api/files/groups/<group folder>/jobArtifacts/<job>/<path>``. Both are served here for
job-artifact paths of the caller's groups and nothing else: every path names a job, which
goes through ``visible_job`` (so another group's job is ``FORBIDDEN``), and only keys inside
that job's folder are listed or signed. Downloads answer with a redirect to a presigned
link, so the bytes never pass through the api.

Listings follow PrimeHub's shape: names relative to the prefix asked for; without
``recursive`` one level, folders as ``name/`` with no size; a prefix that is a file's whole
path lists that file with the name ``""`` (the SDK's test for "is a file"). The metadata
folders are never listed.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import botocore.exceptions
from aiohttp import web

from artifacts_api.artifacts import artifact_name
from artifacts_api.errors import BadUserInput, NotFound, classify
from artifacts_api.identity import Identity
from artifacts_api.jobs import visible_job
from artifacts_api.services import SERVICES, Services
from artifacts_api.times import iso_utc
from artifacts_shared.layout import JobPrefix, UnsafeNameError, artifact_key, group_path, job_prefix
from artifacts_shared.phjob import PhJob
from artifacts_shared.s3 import S3Client

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "StoreFile",
    "StoreFileList",
    "file_redirect",
    "list_files",
]

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
"""PrimeHub's ``limit: 0`` means no limit; here it, and anything larger, means this many."""
_PHFS_PATH = re.compile(r"/jobArtifacts/([^/]+)(/.*)?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class StoreFile:
    name: str
    size: int | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class StoreFileList:
    items: list[StoreFile]
    phfs_prefix: str
    prefix: str


def _check_path(rest: str, shown: str) -> None:
    """Refuse steps that a store could resolve outside the job's folder (``..``), and
    control characters: listing prefixes are literal in S3, not in every S3 gateway."""
    steps = rest.strip("/").split("/") if rest.strip("/") else []
    if any(step in ("", ".", "..") for step in steps) or _CONTROL.search(rest):
        raise BadUserInput(f"{shown[:120]!r} has an empty, '.' or '..' step", field="phfsPrefix")


async def _job_for(
    services: Services, identity: Identity, group_name: str, job_id: str
) -> tuple[PhJob, JobPrefix]:
    """The visible job ``job_id`` and its folder, which must be in ``group_name``'s folder."""
    job = await visible_job(services.jobs, identity, job_id)
    try:
        same_folder = group_path(job.spec.group_name) == group_path(group_name)
        prefix = job_prefix(job.spec.group_name, job.id)
    except UnsafeNameError as err:
        raise BadUserInput(f"groupName: {err}", field="groupName") from None
    if not same_folder:
        raise NotFound(f"job {job_id} is not in the folder of group {group_name[:80]!r}")
    return job, prefix


async def _listing(
    s3: S3Client, bucket: str, prefix: str, *, recursive: bool
) -> AsyncIterator[tuple[str, int | None, str | None]]:
    """``(key, size, last modified)`` under ``prefix`` in key order; with a delimiter, folders
    come as ``(common prefix, None, None)``, merged into the order S3 gives both in."""
    paginator = s3.get_paginator("list_objects_v2")
    pages = (
        paginator.paginate(Bucket=bucket, Prefix=prefix)
        if recursive
        else paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/")
    )
    async for page in pages:
        entries: list[tuple[str, int | None, str | None]] = [
            (item["Key"], item["Size"], iso_utc(item["LastModified"]))
            for item in page.get("Contents", ())
        ]
        entries += [(item["Prefix"], None, None) for item in page.get("CommonPrefixes", ())]
        for entry in sorted(entries):
            yield entry


def _limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    if limit < 0:
        raise BadUserInput(f"limit must be 0 or more, got {limit}", field="limit")
    return MAX_LIMIT if limit == 0 else min(limit, MAX_LIMIT)


async def list_files(
    services: Services,
    identity: Identity,
    *,
    group_name: str,
    phfs_prefix: str,
    recursive: bool,
    limit: int | None,
) -> StoreFileList:
    """The ``files`` query."""
    identity.require_access(group_name, "the files asked for")
    most = _limit(limit)
    # PrimeHub's normalisation: a leading "/", and a trailing "/" unless recursive.
    asked = phfs_prefix if phfs_prefix.startswith("/") else f"/{phfs_prefix}"
    if not recursive and not asked.endswith("/"):
        asked += "/"
    match = _PHFS_PATH.fullmatch(asked)
    if match is None:
        raise BadUserInput(
            f"only job artifacts are listed here: phfsPrefix must be /jobArtifacts/<job id>"
            f"[/<path>], got {phfs_prefix[:120]!r}",
            field="phfsPrefix",
        )
    job_id, rest = match.group(1), match.group(2) or ""
    _check_path(rest, phfs_prefix)
    _, folder = await _job_for(services, identity, group_name, job_id)
    full = f"{folder.rstrip('/')}{rest}"
    # List inside the job's own folder only, even for "/jobArtifacts/<job>" without a slash.
    listed = full if full.startswith(folder) else folder
    items: list[StoreFile] = []
    async for key, size, modified in _listing(
        services.s3, services.bucket, listed, recursive=recursive
    ):
        # A folder (a common prefix) is checked as the path it names: metadata folders and
        # names with unsafe steps are left out, as their files are.
        if artifact_name(folder, key.rstrip("/") if size is None else key) is None:
            continue
        items.append(StoreFile(name=key[len(full) :], size=size, last_modified=modified))
        if len(items) >= most:
            break
    return StoreFileList(items=items, phfs_prefix=asked, prefix=full)


_DOWNLOAD_PATH = re.compile(r"groups/([^/]+)/jobArtifacts/([^/]+)/(.+)", re.DOTALL)


async def _download_url(services: Services, identity: Identity, tail: str) -> str:
    match = _DOWNLOAD_PATH.fullmatch(tail)
    if match is None:
        raise NotFound(
            "only job artifacts are served here: /api/files/groups/<group>/jobArtifacts/"
            "<job id>/<path>"
        )
    folder_name, job_id, relative = match.groups()
    job = await visible_job(services.jobs, identity, job_id)
    try:
        prefix = job_prefix(job.spec.group_name, job.id)
        if group_path(job.spec.group_name) != folder_name:
            raise NotFound(f"job {job_id} is not in the group folder {folder_name[:80]!r}")
        key = artifact_key(prefix, relative)
    except UnsafeNameError as err:
        raise BadUserInput(str(err), field="path") from None
    try:
        await services.s3.head_object(Bucket=services.bucket, Key=key)
    except botocore.exceptions.ClientError as err:
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404:
            raise NotFound(f"job {job_id} has no artifact {relative[:200]!r}") from None
        raise
    await services.presigner.refresh()
    return services.presigner.download_url(key, relative)


async def file_redirect(request: web.Request) -> web.StreamResponse:
    """``GET /api/files/groups/<group folder>/jobArtifacts/<job>/<path>``: 302 to the file."""
    services = request.app[SERVICES]
    try:
        identity = await services.authenticator.authenticate(request.headers.get("Authorization"))
        url = await _download_url(services, identity, request.match_info["tail"])
    except Exception as err:
        error = classify(err)
        return web.json_response(error.as_json(), status=error.http_status)
    return web.Response(status=302, headers={"Location": url, "Cache-Control": "no-store"})
