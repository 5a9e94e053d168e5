"""Presigned download links: a GET for exactly one object, on the public S3 endpoint.

Links are signed for ``S3_PUBLIC_ENDPOINT_URL`` (the address the browser reaches; a
signature covers the host) and carry ``response-content-disposition`` so S3 itself answers
with ``Content-Disposition: attachment``: the browser saves the file under its own name
instead of rendering it, whatever its type.

botocore's ``generate_presigned_url`` resolves the endpoint, validates parameters and
emits events on every call: most of its cost, and the same answer every time. So the
public client signs one probe link at start, which gives the bucket's base URL as botocore
would build it (path or virtual-host style), and every link after that is botocore's own
``S3SigV4QueryAuth`` applied to ``base + key``: one signer per process, rebuilt only when
the credentials change (refreshable credentials in a pod).
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest

from artifacts_shared.s3 import S3Client

__all__ = ["Presigner", "content_disposition"]

_ATTR_CHAR_EXTRA = "!#$&+^`|"
"""RFC 5987 attr-char beyond what ``urllib.parse.quote`` keeps (letters, digits, ``_.-~``)."""
_PROBE_KEY = "k"
_KEY_SAFE = "/~"
"""What botocore leaves unquoted in an S3 key path (its ``percent_encode(key, safe='/~')``)."""


def content_disposition(name: str, *, disposition: str = "attachment") -> str:
    """``attachment`` (or ``inline``) with the artifact's base name, safe for every browser.

    RFC 6266.

    ``filename`` is an ASCII quoted-string (non-ASCII and control characters become ``_``;
    ``"`` and ``\\`` are escaped) for old clients; ``filename*`` carries the exact name in
    UTF-8, which modern browsers prefer.
    """
    basename = name.rsplit("/", 1)[-1]
    fallback = "".join(char if " " <= char <= "~" else "_" for char in basename)
    quoted = fallback.replace("\\", "\\\\").replace('"', '\\"')
    exact = urllib.parse.quote(basename, safe=_ATTR_CHAR_EXTRA)
    return f"{disposition}; filename=\"{quoted}\"; filename*=UTF-8''{exact}"


class Presigner:
    """Signs download links; ``await refresh()`` before a batch, then ``download_url`` is sync."""

    def __init__(self, *, base_url: str, region: str, credentials: Any, ttl_seconds: int) -> None:
        self._base = base_url
        self._region = region
        self._credentials = credentials
        self._ttl = ttl_seconds
        self._frozen: Any = None
        self._auth: S3SigV4QueryAuth | None = None
        self._host = ""

    @classmethod
    async def for_client(
        cls, s3: S3Client, *, credentials: Any, bucket: str, ttl_seconds: int
    ) -> Presigner:
        """A presigner for ``bucket`` through ``s3``, the client for the public endpoint."""
        probe: str = await s3.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": _PROBE_KEY}, ExpiresIn=ttl_seconds
        )
        base = probe.split("?", 1)[0].removesuffix(_PROBE_KEY)
        if credentials is None:
            raise ValueError("S3 credentials are needed to sign download links")
        presigner = cls(
            base_url=base,
            region=s3.meta.region_name,
            credentials=credentials,
            ttl_seconds=ttl_seconds,
        )
        await presigner.refresh()
        return presigner

    async def refresh(self) -> None:
        """Take the current credentials (a no-op unless they were refreshed)."""
        frozen = await self._credentials.get_frozen_credentials()
        if frozen != self._frozen or self._auth is None:
            self._auth = S3SigV4QueryAuth(frozen, "s3", self._region, expires=self._ttl)
            # The signed Host header, as botocore derives it from the URL: once, not per link.
            self._host = self._auth.headers_to_sign(AWSRequest(method="GET", url=self._base))[
                "host"
            ]
            self._frozen = frozen

    def download_url(self, key: str, name: str) -> str:
        assert self._auth is not None, "refresh() first"
        request = AWSRequest(
            method="GET",
            url=self._base + urllib.parse.quote(key, safe=_KEY_SAFE),
            params={"response-content-disposition": content_disposition(name)},
            headers={"host": self._host},
        )
        self._auth.add_auth(request)
        return str(request.url)
