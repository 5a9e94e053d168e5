"""Deleting job folders in order: artifacts, then metadata, then the ``expiredAt`` that decided.

Until that ``expiredAt`` goes the folder still says it is expired, so a run cut short
leaves a folder the next run recognises and finishes, instead of an orphan.

A job folder usually holds a handful of objects, and one ``DeleteObjects`` request per
folder and step would spend most of a run on round trips (measured on SeaweedFS: 2,000
folders of 10 objects each alone, 16 at a time, 3.3x the floor, against 1.4x grouped;
bench/results/expiry.md); so the folders of a *group*
take each step together, through the shared batched deleter (``delete_keys``): the
artifacts of all of them, then the metadata of those whose artifacts are gone, then their
``expiredAt``. A folder whose step failed stops there, keeping its metadata. A folder
whose listing did not fit in one page goes in a group of its own, its listing streamed
into the deletes, so its size never has to fit in memory.

Directories are not deleted here. Servers that sit on a file system keep a folder's
directories after its last object goes: SeaweedFS removes them itself a couple of minutes
later (its filer's ``EmptyFolderCleaner``), where deleting them here would cost as much
again as half the objects (bench/results/expiry.md); the JuiceFS gateway removes one
only through ``DeleteObject``, which the rescan does for any folder left holding nothing
(``folders.leftover_markers``). S3 itself has none.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from artifacts_janitor.folders import FolderPage
from artifacts_shared.layout import METADATA_DIRS, JobPrefix, ObjectKey, is_metadata
from artifacts_shared.s3 import (
    DELETE_BATCH_LIMIT,
    DeleteFailure,
    S3Client,
    StoredObject,
    delete_keys,
    iter_objects,
)

__all__ = ["Deletion", "Doomed", "delete_folders"]

_METADATA_KEPT = 1000
"""Metadata objects of a large folder held from its listing; past this, listed again."""


@dataclass(frozen=True, slots=True)
class Doomed:
    """A folder judged due: what its listing showed, and which ``expiredAt`` decided."""

    prefix: JobPrefix
    member: bytes
    """Its entry in the expiry index, removed once the folder is gone."""
    page: FolderPage
    last: ObjectKey | None
    why: str


@dataclass(slots=True)
class Deletion:
    """What became of one folder: objects and bytes known gone, or why it stopped."""

    folder: Doomed
    objects: int = 0
    bytes: int = 0
    failure: str | None = None


@dataclass(slots=True)
class _Steps:
    artifacts: list[StoredObject] = field(default_factory=list)
    metadata: list[StoredObject] = field(default_factory=list)
    last: list[StoredObject] = field(default_factory=list)
    overflowed: bool = False
    """More metadata than ``_METADATA_KEPT``: none is kept, it is listed again instead."""

    def sort(self, prefix: str, stored: StoredObject, last: str | None) -> StoredObject | None:
        """File ``stored`` under its step; an artifact is returned instead, for streaming."""
        relative = stored.key[len(prefix) :]
        if relative.endswith("/"):
            return None  # a directory as some gateways list it: see the module's docstring
        if stored.key == last:
            self.last.append(stored)
        elif is_metadata(relative):
            if not self.overflowed:
                self.metadata.append(stored)
                if len(self.metadata) > _METADATA_KEPT:
                    self.metadata.clear()
                    self.overflowed = True
        else:
            return stored
        return None


async def delete_folders(
    s3: S3Client,
    bucket: str,
    folders: Sequence[Doomed],
    *,
    dry_run: bool = False,
    batch_size: int = DELETE_BATCH_LIMIT,
) -> list[Deletion]:
    """Delete ``folders`` together, each in order; a dry run only counts.

    A folder whose listing is incomplete must come alone.
    """
    if any(not folder.page.complete for folder in folders):
        if len(folders) != 1:
            raise ValueError("a folder larger than one listing page is deleted alone")
        return [await _delete_large(s3, bucket, folders[0], dry_run=dry_run, batch_size=batch_size)]
    deleter = _Deleter(s3, bucket, dry_run=dry_run, batch_size=batch_size)
    going: list[tuple[_Steps, Deletion]] = []
    for folder in folders:
        steps = _Steps()
        for stored in folder.page.objects:
            artifact = steps.sort(folder.prefix, stored, folder.last)
            if artifact is not None:
                steps.artifacts.append(artifact)
        going.append((steps, Deletion(folder)))
    for step in (_artifacts, _metadata, _last):
        going = await deleter.step(going, step)
    return [deletion for _, deletion in going] + deleter.stopped


def _artifacts(steps: _Steps) -> list[StoredObject]:
    return steps.artifacts


def _metadata(steps: _Steps) -> list[StoredObject]:
    return steps.metadata


def _last(steps: _Steps) -> list[StoredObject]:
    return steps.last


class _Deleter:
    """One step at a time over the folders still going; the ones that stop are kept aside."""

    def __init__(self, s3: S3Client, bucket: str, *, dry_run: bool, batch_size: int) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._dry_run = dry_run
        self._batch_size = batch_size
        self.stopped: list[Deletion] = []

    async def step(
        self,
        going: list[tuple[_Steps, Deletion]],
        objects_of: Callable[[_Steps], list[StoredObject]],
    ) -> list[tuple[_Steps, Deletion]]:
        objects = [stored for steps, _ in going for stored in objects_of(steps)]
        refused: dict[str, list[DeleteFailure]] = defaultdict(list)
        if objects and not self._dry_run:
            try:
                outcome = await delete_keys(
                    self._s3, self._bucket, objects, batch_size=self._batch_size
                )
            except Exception as err:  # whatever went wrong, these keys are not known to be gone
                for _, deletion in going:
                    deletion.failure = f"{type(err).__name__}: {err}"
                self.stopped += [deletion for _, deletion in going]
                return []
            for failure in outcome.failures:
                refused[_folder_of(failure.key)].append(failure)
        still: list[tuple[_Steps, Deletion]] = []
        for steps, deletion in going:
            mine = refused.get(deletion.folder.prefix, [])
            listed = objects_of(steps)
            deletion.objects += len(listed) - len(mine)
            deletion.bytes += sum(s.size for s in listed) - sum(f.size for f in mine)
            if mine:
                deletion.failure = _describe(mine)
                self.stopped.append(deletion)
            else:
                still.append((steps, deletion))
        return still


async def _delete_large(
    s3: S3Client, bucket: str, folder: Doomed, *, dry_run: bool, batch_size: int
) -> Deletion:
    """One folder, its listing streamed: artifacts as they are listed, then the rest."""
    deletion = Deletion(folder)
    steps = _Steps()
    for objects in (
        _listed_artifacts(s3, bucket, folder, steps),
        _held_or_listed_metadata(s3, bucket, folder, steps),
        _each(steps.last),
    ):
        if not await _stream_step(s3, bucket, deletion, objects, dry_run, batch_size):
            return deletion
    return deletion


async def _listed_artifacts(
    s3: S3Client, bucket: str, folder: Doomed, steps: _Steps
) -> AsyncIterator[StoredObject]:
    """The folder's artifacts as listed; everything else is sorted into ``steps``."""
    async for stored in iter_objects(s3, bucket, folder.prefix):
        artifact = steps.sort(folder.prefix, stored, folder.last)
        if artifact is not None:
            yield artifact


async def _held_or_listed_metadata(
    s3: S3Client, bucket: str, folder: Doomed, steps: _Steps
) -> AsyncIterator[StoredObject]:
    """The metadata held from the listing, or listed again when there was too much."""
    if not steps.overflowed:
        for stored in steps.metadata:
            yield stored
        return
    for name in sorted(METADATA_DIRS):
        async for stored in iter_objects(s3, bucket, f"{folder.prefix}{name}/"):
            if stored.key != folder.last and not stored.key.endswith("/"):
                yield stored


async def _each(items: list[StoredObject]) -> AsyncIterator[StoredObject]:
    """The items of a list that is filled in by the time the stream is read."""
    for item in items:
        yield item


async def _stream_step(
    s3: S3Client,
    bucket: str,
    deletion: Deletion,
    objects: AsyncIterator[StoredObject],
    dry_run: bool,
    batch_size: int,
) -> bool:
    """Delete (or, dry, count) a stream of one folder's objects; whether all went."""
    if dry_run:
        async for stored in objects:
            deletion.objects += 1
            deletion.bytes += stored.size
        return True
    try:
        outcome = await delete_keys(s3, bucket, objects, batch_size=batch_size)
    except Exception as err:  # whatever went wrong, these keys are not known to be gone
        deletion.failure = f"{type(err).__name__}: {err}"
        return False
    deletion.objects += outcome.deleted
    deletion.bytes += outcome.bytes
    if outcome.failures:
        deletion.failure = _describe(outcome.failures)
        return False
    return True


def _folder_of(key: str) -> str:
    """The job prefix of a key: ``groups/<g>/jobArtifacts/<job>/``, four segments."""
    return "/".join(key.split("/", 4)[:4]) + "/"


def _describe(failures: list[DeleteFailure]) -> str:
    first = failures[0]
    return (
        f"{len(failures)} objects not deleted, the next run retries; "
        f"first: {first.key}: {first.code} {first.message}".rstrip()
    )
