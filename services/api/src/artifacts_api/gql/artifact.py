"""Bindables of ``PhJobArtifact``, its entries, folders and items.

``PhJob.artifact`` (``gql/phjob.py``) resolves to an ``ArtifactFolder``: the job's prefix
and the reads the query needs (the manifest, ``expiredAt``), never a listing. Listings
happen here, in the field that returns them, one S3 page at a time:

- ``entries`` lists one page of one folder (a single delimiter request);
- ``items`` streams the flat listing page by page into graphql-core as an async iterator,
  yielding to the event loop every hundred files, so even 100,000 files never hold it
  for long;
- every listing and every download link is charged to the request's ``WorkBudget``
  before S3 is asked where the manifest tells the size in advance.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from ariadne import ObjectType, UnionType

from artifacts_api.artifacts import (
    MAX_PAGE,
    ArtifactFile,
    FilePage,
    FolderEntry,
    folder_path,
)
from artifacts_api.errors import BadUserInput
from artifacts_api.gql.connection import PageInfo
from artifacts_api.gql.context import Info
from artifacts_api.gql.loaders import FilePageKey
from artifacts_api.gql.selection import selected_names
from artifacts_api.manifests import ManifestIndex
from artifacts_api.times import iso_utc
from artifacts_api.viewing import may_view
from artifacts_shared.layout import (
    JobPrefix,
    UnsafeNameError,
    artifact_key,
    parse_job_prefix,
    relative_name,
)
from artifacts_shared.phjob import PhJob
from artifacts_shared.s3 import StoredObject

__all__ = ["ArtifactFolder", "bindables"]

artifact = ObjectType("PhJobArtifact")
item = ObjectType("PhJobArtifactItem")
folder_type = ObjectType("PhJobArtifactFolder")
entry = UnionType("PhJobArtifactEntry")

_YIELD_EVERY = 100
"""Files completed between two yields to the event loop in a streamed listing."""
_MAX_CURSOR = 4096


@dataclass(frozen=True, slots=True)
class ArtifactFolder:
    """What ``PhJobArtifact`` resolves from; field names are its snake_case."""

    job: PhJob
    prefix: JobPrefix
    manifest: ManifestIndex | None
    expired_at: str | None

    @property
    def job_id(self) -> str:
        return self.job.id

    @property
    def skipped(self) -> bool:
        return bool(self.manifest and self.manifest.skipped)

    @property
    def skip_reason(self) -> str | None:
        return self.manifest.skip_reason if self.manifest else None


@dataclass(frozen=True, slots=True)
class EntryConnection:
    path: str
    nodes: list[ArtifactFile | FolderEntry]
    page_info: PageInfo
    file_count: int | None
    total_size: int | None


def _file(stored: StoredObject, name: str, manifest: ManifestIndex | None) -> ArtifactFile:
    return ArtifactFile(
        name=name,
        key=stored.key,
        size=stored.size,
        last_modified=stored.last_modified,
        sha256=manifest.sha256.get(name) if manifest else None,
        mode=manifest.modes.get(name) if manifest else None,
    )


async def _links(info: Info, count: int) -> None:
    """Charge ``count`` download links when the query asks for ``downloadUrl``."""
    if count and "downloadUrl" in selected_names(info):
        info.context.budget.sign_links(count)
        await info.context.services.presigner.refresh()


@artifact.field("prefix")
def resolve_prefix(folder: ArtifactFolder, info: Info) -> str:
    """Without the trailing slash: PrimeHub's clients join ``f"{prefix}/{name}"``."""
    return folder.prefix.rstrip("/")


@artifact.field("items")
async def resolve_items(
    folder: ArtifactFolder, info: Info, *, first: int | None = None, after: str | None = None
) -> AsyncIterator[ArtifactFile]:
    context = info.context
    limit = context.services.settings.api_max_listed_objects
    if first is not None and not 0 <= first <= limit:
        raise BadUserInput(f"first must be from 0 to {limit}, got {first}", field="first")
    start_after = None
    if after is not None:
        try:
            start_after = artifact_key(folder.prefix, after)
        except UnsafeNameError as err:
            raise BadUserInput(f"after: {err}", field="after") from None
    # Charge what the manifest says before S3 is asked; then let every alias charge
    # before any lists, so a query too big for the request is refused with no listing.
    expected = folder.manifest.file_count if folder.manifest else 0
    charged = min(expected, first) if first is not None else expected
    context.budget.list_objects(charged)
    await _links(info, charged)
    await asyncio.sleep(0)
    context.budget.check()
    if first is None or first > MAX_PAGE:
        await context.turn.take()
    return _stream_files(folder, info, first=first, start_after=start_after, charged=charged)


async def _stream_files(
    folder: ArtifactFolder, info: Info, *, first: int | None, start_after: str | None, charged: int
) -> AsyncIterator[ArtifactFile]:
    """The files of the flat listing, one S3 page ahead of graphql-core.

    S3 prepares the next page while this one's files are completed, instead of both
    waiting in turn; at most one page is listed beyond what the query returns. A page
    leaves the loader's cache once it arrives: kept, the objects of a 100,000-file listing
    would live until the answer is sent, and every full collection of the garbage
    collector would visit them all (an alias that lists the same files later reads
    them again, and is charged for them either way).
    """
    context = info.context
    budget = context.budget
    pages = context.loaders.file_page
    links = "downloadUrl" in selected_names(info)
    listed = returned = 0
    # Objects are charged as S3 lists them, metadata included; links as files will be
    # returned: a job of as many files as a request may sign must list with its links.
    linked = charged

    def key(after: str | None, done: int) -> FilePageKey:
        size = MAX_PAGE if first is None else min(MAX_PAGE, first - done + 2)
        return (folder.prefix, after, size)

    current = key(start_after, 0)
    upcoming: asyncio.Future[FilePage] | None = pages.load(current)
    try:
        while upcoming is not None:
            page = await upcoming
            pages.clear(current)
            upcoming = None
            listed += page.listed
            if listed > charged:
                budget.list_objects(listed - charged)
                charged = listed
            ahead = returned + len(page.files)
            due = ahead if first is None else min(ahead, first)
            if links and due > linked:
                await _links(info, due - linked)
                linked = due
            if page.truncated and page.last_key is not None and (first is None or ahead < first):
                current = key(page.last_key, ahead)
                upcoming = pages.load(current)
            for stored in page.files:
                if first is not None and returned >= first:
                    return
                name = relative_name(folder.prefix, stored.key)
                if name is None:
                    continue
                yield _file(stored, name, folder.manifest)
                returned += 1
                if returned % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)
                    budget.check()
    finally:
        if upcoming is not None:
            # Left to finish, not cancelled: the loader shares the page with any alias
            # listing it too. Its outcome is taken so that a failure is not reported as
            # never retrieved.
            upcoming.add_done_callback(_outcome_taken)


def _outcome_taken(future: asyncio.Future[FilePage]) -> None:
    if not future.cancelled():
        future.exception()


@artifact.field("item")
async def resolve_item(folder: ArtifactFolder, info: Info, *, name: str) -> ArtifactFile | None:
    try:
        key = artifact_key(folder.prefix, name)
    except UnsafeNameError as err:
        raise BadUserInput(str(err), field="name") from None
    context = info.context
    context.budget.list_objects(1)
    found = await context.loaders.stored.load(key)
    if found is None:
        return None
    await _links(info, 1)
    return _file(found, name, folder.manifest)


def _cursor(path: str, token: str) -> str:
    raw = json.dumps({"p": path, "t": token}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _token(cursor: str, path: str) -> str:
    refused = BadUserInput(
        f"{cursor[:80]!r} is not a cursor of entries(path: {path!r})", field="after"
    )
    if len(cursor) > _MAX_CURSOR:
        raise refused
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise refused from None
    if not isinstance(data, dict) or data.get("p") != path or not isinstance(data.get("t"), str):
        raise refused
    token: str = data["t"]
    return token


def _name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


@artifact.field("entries")
async def resolve_entries(
    folder: ArtifactFolder,
    info: Info,
    *,
    path: str = "",
    first: int = 100,
    after: str | None = None,
    starts_with: str = "",
) -> EntryConnection:
    try:
        path = folder_path(path)
    except UnsafeNameError as err:
        raise BadUserInput(f"path: {err}", field="path") from None
    if "/" in starts_with or "\x00" in starts_with or len(starts_with) > 255:
        raise BadUserInput(
            "startsWith must be the start of a name in the folder: no '/' or NUL, "
            "at most 255 characters",
            field="startsWith",
        )
    if not 0 <= first <= MAX_PAGE:
        raise BadUserInput(f"first must be from 0 to {MAX_PAGE}, got {first}", field="first")
    # A cursor belongs to one listing: the folder and the filter it was made for.
    token = _token(after, path + starts_with) if after is not None else None
    context = info.context
    manifest = folder.manifest
    empty_page = PageInfo(has_next_page=False, end_cursor=None)
    totals = (
        (manifest.file_count, manifest.total_size)
        if manifest and not path
        else _folder_totals(manifest, path)
    )
    if first == 0:
        return EntryConnection(path, [], empty_page, *totals)
    context.budget.list_objects(first)
    page = await context.loaders.folder_page.load((folder.prefix, path, starts_with, token, first))
    folders = await _real_folders(folder, info, page.folders)
    nodes: list[ArtifactFile | FolderEntry] = []
    for stored in page.files:
        name = relative_name(folder.prefix, stored.key)
        if name is not None:
            nodes.append(_file(stored, name, manifest))
    for sub in folders:
        known = _folder_totals(manifest, sub)
        nodes.append(
            FolderEntry(name=_name(sub), path=sub, file_count=known[0], total_size=known[1])
        )
    nodes.sort(key=lambda node: node.path if isinstance(node, FolderEntry) else node.name)
    await _links(info, sum(isinstance(node, ArtifactFile) for node in nodes))
    return EntryConnection(
        path=path,
        nodes=nodes,
        page_info=PageInfo(
            has_next_page=page.next_token is not None,
            end_cursor=_cursor(path + starts_with, page.next_token) if page.next_token else None,
        ),
        file_count=totals[0],
        total_size=totals[1],
    )


def _folder_totals(manifest: ManifestIndex | None, path: str) -> tuple[int | None, int | None]:
    totals = manifest.folder(path) if manifest else None
    return (totals.files, totals.size) if totals else (None, None)


async def _real_folders(folder: ArtifactFolder, info: Info, paths: list[str]) -> list[str]:
    """``paths`` less the directories S3 keeps after their last object was deleted.

    A folder the manifest accounts for holds files; any other is asked about (one key,
    at most 16 requests at a time through the loader), so an emptied folder is not shown.
    """
    manifest = folder.manifest
    unknown = [path for path in paths if manifest is None or manifest.folder(path) is None]
    if not unknown:
        return paths
    info.context.budget.list_objects(len(unknown))
    found = await info.context.loaders.has_objects.load_many(
        [f"{folder.prefix}{path}" for path in unknown]
    )
    empty = {path for path, exists in zip(unknown, found, strict=True) if not exists}
    return [path for path in paths if path not in empty]


@artifact.field("fileCount")
async def resolve_file_count(folder: ArtifactFolder, info: Info) -> int:
    if folder.manifest is not None:
        return folder.manifest.file_count
    return (await _counted(folder, info))[0]


@artifact.field("totalSize")
async def resolve_total_size(folder: ArtifactFolder, info: Info) -> int:
    if folder.manifest is not None:
        return folder.manifest.total_size
    return (await _counted(folder, info))[1]


async def _counted(folder: ArtifactFolder, info: Info) -> tuple[int, int]:
    """A folder collected without a manifest (PrimeHub's own releases): count by listing."""
    files = size = 0
    async for file in await resolve_items(folder, info):
        files += 1
        size += file.size
    return files, size


@artifact.field("zipUrl")
def resolve_zip_url(folder: ArtifactFolder, info: Info) -> str:
    return info.context.services.links.zip_url(folder.job_id)


@item.field("sha256")
def resolve_sha256(file: ArtifactFile, info: Info) -> str | None:
    # Bound by hand: the automatic name conversion would look for "sha_256".
    return file.sha256


@item.field("mode")
def resolve_mode(file: ArtifactFile, info: Info) -> str | None:
    return None if file.mode is None else f"{file.mode:03o}"


@item.field("lastModified")
def resolve_last_modified(file: ArtifactFile, info: Info) -> str:
    return iso_utc(file.last_modified) or ""


@item.field("downloadUrl")
def resolve_download_url(file: ArtifactFile, info: Info) -> str:
    # The field that returned this file charged the link and refreshed the signer.
    return info.context.services.presigner.download_url(file.key, file.name)


@item.field("viewUrl")
def resolve_view_url(file: ArtifactFile, info: Info) -> str | None:
    parsed = parse_job_prefix(file.key.removesuffix(file.name))
    if parsed is None or not may_view(file.name):
        return None
    return info.context.services.links.view_url(parsed[1], file.name)


@entry.type_resolver
def resolve_entry_type(value: Any, *_: Any) -> str:
    return "PhJobArtifactFolder" if isinstance(value, FolderEntry) else "PhJobArtifactItem"


bindables = [artifact, item, folder_type, entry]
