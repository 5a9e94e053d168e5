"""Checking an S3 presigned URL the way S3 would, since moto does not (ARCHITECTURE 9).

Recomputes the AWS Signature Version 4 of a query-signed GET from the URL alone and the
secret key: a URL edited to point at another key, host or expiry no longer verifies.
"""

from __future__ import annotations

import hashlib
import hmac
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class Presigned:
    scheme: str
    host: str
    path: str
    params: dict[str, str]

    @classmethod
    def parse(cls, url: str) -> Presigned:
        parts = urllib.parse.urlsplit(url)
        params = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        return cls(parts.scheme, parts.netloc, parts.path, params)

    @property
    def key(self) -> str:
        """The object key, for path-style URLs (``/bucket/key``)."""
        return urllib.parse.unquote(self.path.split("/", 2)[2])

    @property
    def signed_at(self) -> datetime:
        return datetime.strptime(self.params["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)

    @property
    def expires_in(self) -> int:
        return int(self.params["X-Amz-Expires"])

    def expected_signature(self, secret_key: str) -> str:
        params = {k: v for k, v in self.params.items() if k != "X-Amz-Signature"}
        query = "&".join(
            f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
            for k, v in sorted(params.items())
        )
        signed_headers = params["X-Amz-SignedHeaders"]
        assert signed_headers == "host", signed_headers
        canonical = "\n".join(
            ["GET", self.path, query, f"host:{self.host}", "", "host", "UNSIGNED-PAYLOAD"]
        )
        scope = params["X-Amz-Credential"].split("/", 1)[1]
        date, region, service, _ = scope.split("/")
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256",
                params["X-Amz-Date"],
                scope,
                hashlib.sha256(canonical.encode()).hexdigest(),
            ]
        )
        key = f"AWS4{secret_key}".encode()
        for part in (date, region, service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()

    def verifies(self, secret_key: str) -> bool:
        return hmac.compare_digest(
            self.expected_signature(secret_key), self.params["X-Amz-Signature"]
        )

    def with_changes(self, *, path: str | None = None, **params: str) -> Presigned:
        return Presigned(self.scheme, self.host, path or self.path, {**self.params, **params})
