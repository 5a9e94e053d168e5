"""Short-lived signed links to the api's own zip route.

A browser following a link sends no ``Authorization`` header, so the UI cannot simply
link to ``/jobs/<id>/artifacts.zip``. Like an S3 presigned URL, a link carries its expiry
and an HMAC over job and expiry, made only for a caller allowed to see the job; the zip
route accepts either such a link or a bearer token. The key comes from
``API_LINK_SIGNING_KEY`` (shared by every replica) or is random per process.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.parse

__all__ = ["LinkSigner"]


class LinkSigner:
    def __init__(self, key: bytes, *, ttl_seconds: int) -> None:
        self._key = key
        self._ttl = ttl_seconds

    def _signature(self, job_id: str, expires: int) -> str:
        message = f"artifacts.zip\n{job_id}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def zip_url(self, job_id: str, *, now: float | None = None) -> str:
        expires = int(now if now is not None else time.time()) + self._ttl
        query = urllib.parse.urlencode(
            {"expires": expires, "signature": self._signature(job_id, expires)}
        )
        return f"/jobs/{job_id}/artifacts.zip?{query}"

    def valid(self, job_id: str, expires: str, signature: str, *, now: float | None = None) -> bool:
        if not expires.isdigit() or len(expires) > 12:
            return False
        if int(expires) < (now if now is not None else time.time()):
            return False
        return hmac.compare_digest(self._signature(job_id, int(expires)), signature)
