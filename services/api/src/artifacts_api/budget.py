"""What one request may make the api do: objects listed from S3 and download links signed.

The static cost limit (``gql/limits.py``) cannot know how many files a job holds, so a
listing is charged here when it runs: by the job's file count from the manifest before
the listing starts (a query that would list too much is refused before S3 is asked), then
by what each S3 page really returned, since a job in ``phfs`` mode can write more files
than its manifest says. Charges add up across every alias and every job of the request.

The first charge over a limit refuses the whole request: it raises ``LimitExceeded`` and
every later charge raises the same error, so listings still running stop at their next
page, and the endpoint answers with that one error instead of a partial result.
"""

from __future__ import annotations

from artifacts_api.errors import BadUserInput

__all__ = ["LimitExceeded", "WorkBudget"]

_INSTEAD = {
    "API_MAX_LISTED_OBJECTS": (
        "list a folder at a time with entries(path, first, after), page the files with "
        "items(first, after), or ask for one file with item(name)"
    ),
    "API_MAX_SIGNED_LINKS": (
        "ask for downloadUrl on a page of entries(path, first) or on item(name), and for the "
        "whole folder use zipUrl"
    ),
}


class LimitExceeded(BadUserInput):
    """A request asked for more work than one request may do."""

    def __init__(self, *, setting: str, what: str, requested: int, allowed: int) -> None:
        super().__init__(
            f"this request would {what} {requested:,}; a request may {what} at most "
            f"{allowed:,} ({setting}): {_INSTEAD[setting]}",
            limit=setting,
            requested=requested,
            allowed=allowed,
        )


class WorkBudget:
    """One request's allowance; not shared between requests."""

    def __init__(self, *, max_objects: int, max_links: int) -> None:
        self._max_objects = max_objects
        self._max_links = max_links
        self.objects = 0
        self.links = 0
        self.refusal: LimitExceeded | None = None

    def check(self) -> None:
        """Raise the refusal, if the request has already been refused."""
        if self.refusal is not None:
            raise self.refusal

    def list_objects(self, count: int) -> None:
        """Charge ``count`` objects listed from S3."""
        self.check()
        self.objects += count
        if self.objects > self._max_objects:
            self._refuse("API_MAX_LISTED_OBJECTS", "list objects", self.objects, self._max_objects)

    def sign_links(self, count: int) -> None:
        """Charge ``count`` presigned download links."""
        self.check()
        self.links += count
        if self.links > self._max_links:
            self._refuse("API_MAX_SIGNED_LINKS", "sign download links", self.links, self._max_links)

    def _refuse(self, setting: str, what: str, requested: int, allowed: int) -> None:
        self.refusal = LimitExceeded(
            setting=setting, what=what, requested=requested, allowed=allowed
        )
        raise self.refusal
