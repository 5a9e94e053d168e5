"""Presigned download links: a GET for exactly one object, on the public S3 endpoint.

Links are made by a client configured with ``S3_PUBLIC_ENDPOINT_URL`` (the address the
browser reaches; a signature covers the host) and carry ``response-content-disposition``
so S3 itself answers with ``Content-Disposition: attachment``: the browser saves the file
under its own name instead of rendering it, whatever its type.
"""

from __future__ import annotations

import urllib.parse

from artifacts_shared.s3 import S3Client

__all__ = ["Presigner", "content_disposition"]

_ATTR_CHAR_EXTRA = "!#$&+^`|"
"""RFC 5987 attr-char beyond what ``urllib.parse.quote`` keeps (letters, digits, ``_.-~``)."""


def content_disposition(name: str) -> str:
    """``attachment`` with the artifact's base name, safe for every browser (RFC 6266).

    ``filename`` is an ASCII quoted-string (non-ASCII and control characters become ``_``;
    ``"`` and ``\\`` are escaped) for old clients; ``filename*`` carries the exact name in
    UTF-8, which modern browsers prefer.
    """
    basename = name.rsplit("/", 1)[-1]
    fallback = "".join(char if " " <= char <= "~" else "_" for char in basename)
    quoted = fallback.replace("\\", "\\\\").replace('"', '\\"')
    exact = urllib.parse.quote(basename, safe=_ATTR_CHAR_EXTRA)
    return f"attachment; filename=\"{quoted}\"; filename*=UTF-8''{exact}"


class Presigner:
    def __init__(self, s3: S3Client, *, bucket: str, ttl_seconds: int) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._ttl = ttl_seconds

    async def download_url(self, key: str, name: str) -> str:
        url: str = await self._s3.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self._bucket,
                "Key": key,
                "ResponseContentDisposition": content_disposition(name),
            },
            ExpiresIn=self._ttl,
        )
        return url
