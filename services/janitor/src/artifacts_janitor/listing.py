"""Listing due folders together: neighbouring job folders from one listing.

A ``ListObjectsV2`` request costs the server about as much as deleting a small folder's
keys, and the client more than parsing a page of them; one request per due folder makes
listing the daily run's bottleneck. Job ids begin with their creation time
(``job-<YYYYMMDDHHmm>-<random>``, ARCHITECTURE section 5), and folders that expire
together were mostly created together, so they are neighbours by name: due folders of
one group whose names share their first ``SHARED`` characters (created within the same
hour) are listed together, under their longest common prefix, and each folder's objects
are taken from that one stream. Any other name is listed on its own.

Only ``Prefix`` and continuation tokens are used, whose meaning every server shares.
The order is the server's (SeaweedFS lists in the order it walks its directories and
reads ``StartAfter`` its own way; MinIO in S3's byte order), so nothing here depends on
it: the keys of one folder come together in any order, a folder is complete once a key
of another folder follows it or the listing ends, and a due folder the whole listing
never showed holds nothing. A listing that turns out to be mostly other folders, or meets
a due folder too large for one page, is given up; the folders it has not shown yet are
then listed one by one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

from artifacts_janitor.folders import FolderPage, first_page
from artifacts_shared.layout import JobPrefix
from artifacts_shared.s3 import S3Client, StoredObject

__all__ = ["SHARED", "Run", "list_due", "plan_runs"]

SHARED = len("job-") + len("YYYYMMDDHH")
"""Characters of two job names that must agree for their folders to be listed together."""
_PAGE = 1000
"""Objects of one folder held from a run's listing; a folder with more is listed alone."""


@dataclass(frozen=True, slots=True)
class Run:
    """Due folders listed together under ``listing`` (the folder itself, for one alone)."""

    listing: str
    members: tuple[JobPrefix, ...]


def plan_runs(prefixes: Iterable[JobPrefix]) -> list[Run]:
    """The due folders grouped into runs of neighbours, each group's in name order."""
    by_root: dict[str, list[JobPrefix]] = defaultdict(list)
    for prefix in prefixes:
        by_root[prefix[: prefix.rindex("/", 0, -1) + 1]].append(prefix)
    runs: list[Run] = []
    for root, members in sorted(by_root.items()):
        pending: list[JobPrefix] = []
        for prefix in sorted(members):
            if pending and not _neighbours(root, pending[0], prefix):
                runs.append(_run(root, pending))
                pending = []
            pending.append(prefix)
        if pending:
            runs.append(_run(root, pending))
    return runs


def _neighbours(root: str, first: JobPrefix, other: JobPrefix) -> bool:
    name, other_name = first[len(root) : -1], other[len(root) : -1]
    return len(name) >= SHARED and name[:SHARED] == other_name[:SHARED]


def _run(root: str, members: list[JobPrefix]) -> Run:
    if len(members) == 1:
        return Run(members[0], (members[0],))
    # Sorted: what the first and the last name share, every name between shares too.
    first, last = members[0][len(root) : -1], members[-1][len(root) : -1]
    shared = next(
        (n for n, (a, b) in enumerate(zip(first, last, strict=False)) if a != b),
        min(len(first), len(last)),
    )
    return Run(root + first[:shared], tuple(members))


async def list_due(
    s3: S3Client, bucket: str, run: Run
) -> AsyncIterator[tuple[JobPrefix, FolderPage]]:
    """Every member of ``run`` with the first page of its objects, each exactly once."""
    if len(run.members) == 1:
        yield run.members[0], await first_page(s3, bucket, run.members[0])
        return
    walk = _Walk(set(run.members))
    async for done in walk.through(s3, bucket, run.listing):
        yield done
    for prefix in sorted(walk.unseen()):
        yield prefix, await first_page(s3, bucket, prefix)


@dataclass(slots=True)
class _Walk:
    wanted: set[JobPrefix]
    given: set[JobPrefix] = field(default_factory=set)
    current: JobPrefix | None = None
    held: list[StoredObject] = field(default_factory=list)
    useful: int = 0
    seen: int = 0

    def unseen(self) -> set[JobPrefix]:
        return self.wanted - self.given

    async def through(
        self, s3: S3Client, bucket: str, listing: str
    ) -> AsyncIterator[tuple[JobPrefix, FolderPage]]:
        """The members the listing shows whole; it stops early when it is not worth it."""
        token: str | None = None
        while True:
            if token is None:
                response = await s3.list_objects_v2(Bucket=bucket, Prefix=listing)
            else:
                response = await s3.list_objects_v2(
                    Bucket=bucket, Prefix=listing, ContinuationToken=token
                )
            for item in response.get("Contents", ()):
                folder = _folder_of(item["Key"])
                self.seen += 1
                if folder != self.current:
                    if (done := self._close()) is not None:
                        yield done
                    self.current = folder
                if folder is None or folder not in self.wanted:
                    continue
                self.useful += 1
                if len(self.held) == _PAGE:
                    self.current = None  # too large to hold: listed alone, from the start
                    self.held = []
                    return
                self.held.append(StoredObject.listed(item))
            if not response.get("IsTruncated"):
                if (done := self._close()) is not None:
                    yield done
                # The whole listing was seen: a member it never showed holds nothing.
                for prefix in sorted(self.unseen()):
                    self.given.add(prefix)
                    yield prefix, FolderPage([], complete=True)
                return
            if self.seen > 2 * self.useful + _PAGE:
                return  # mostly other folders: the rest are cheaper listed one by one
            token = response["NextContinuationToken"]

    def _close(self) -> tuple[JobPrefix, FolderPage] | None:
        """The folder whose keys just ended, if it is a member; it is complete."""
        folder, held = self.current, self.held
        self.held = []
        if folder is None or folder not in self.wanted or folder in self.given:
            return None
        self.given.add(folder)
        return folder, FolderPage(held, complete=True)


def _folder_of(key: str) -> JobPrefix | None:
    """The job folder a key lies in, None for a key that lies in none (a loose file)."""
    parts = key.split("/", 4)
    if len(parts) < 5:
        return None
    return JobPrefix("/".join(parts[:4]) + "/")
