"""Short-lived signed links to the api's own routes: a job's zip, a job's log file.

A browser following a link sends no ``Authorization`` header, so the UI cannot simply
link to ``/jobs/<id>/artifacts.zip``. Like an S3 presigned URL, a link carries its expiry
and an HMAC over route, job and expiry, made only for a caller allowed to see the job;
the route accepts either such a link or a bearer token. The key comes from
``API_LINK_SIGNING_KEY`` (shared by every replica) or is random per process.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.parse

__all__ = ["LOG", "VIEW", "ZIP", "LinkSigner", "view_route"]

ZIP = "artifacts.zip"
LOG = "job.log"
VIEW = "view"
"""A view link signs ``view/<the file's name, percent-encoded>``: one file, not the job."""


def view_route(name: str) -> str:
    """The route a view link signs: the file's name is part of it."""
    return f"{VIEW}/{urllib.parse.quote(name, safe='')}"


class LinkSigner:
    def __init__(self, key: bytes, *, ttl_seconds: int) -> None:
        self._key = key
        self._ttl = ttl_seconds

    def _signature(self, route: str, job_id: str, expires: int) -> str:
        message = f"{route}\n{job_id}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def _query(self, route: str, job_id: str, now: float | None) -> str:
        expires = int(now if now is not None else time.time()) + self._ttl
        return urllib.parse.urlencode(
            {"expires": expires, "signature": self._signature(route, job_id, expires)}
        )

    def zip_url(self, job_id: str, *, now: float | None = None) -> str:
        return f"/jobs/{job_id}/artifacts.zip?{self._query(ZIP, job_id, now)}"

    def log_url(self, job_id: str, *, now: float | None = None) -> str:
        """The whole log as a file to save (``download=true``)."""
        return f"/jobs/{job_id}/logs?download=true&{self._query(LOG, job_id, now)}"

    def view_url(self, job_id: str, name: str, *, now: float | None = None) -> str:
        """One file shown in the page (``viewing.view_artifact``)."""
        query = self._query(view_route(name), job_id, now)
        return f"/jobs/{job_id}/view?name={urllib.parse.quote(name, safe='')}&{query}"

    def valid(
        self,
        job_id: str,
        expires: str,
        signature: str,
        *,
        route: str = ZIP,
        now: float | None = None,
    ) -> bool:
        if not expires.isdigit() or len(expires) > 12:
            return False
        if int(expires) < (now if now is not None else time.time()):
            return False
        return hmac.compare_digest(self._signature(route, job_id, int(expires)), signature)
