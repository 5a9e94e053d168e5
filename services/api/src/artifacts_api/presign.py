"""Presigned download links: a GET for exactly one object, on the public S3 endpoint.

Links are signed for ``S3_PUBLIC_ENDPOINT_URL`` (the address the browser reaches; a
signature covers the host) and carry ``response-content-disposition`` so S3 itself answers
with ``Content-Disposition: attachment``: the browser saves the file under its own name
instead of rendering it, whatever its type.

botocore's ``generate_presigned_url`` resolves the endpoint, validates parameters and
emits events on every call: most of its cost, and the same answer every time. So the
public client signs one probe link at start, which gives the bucket's base URL as botocore
would build it (path or virtual-host style) and the signed ``host``.

Each link is then signed here, by the published algorithm (AWS's "Authenticating
Requests: Using Query Parameters", SigV4 with ``UNSIGNED-PAYLOAD``), not by botocore's
``S3SigV4QueryAuth``: that one builds an ``AWSRequest``, splits and re-parses the URL,
re-encodes every parameter and derives the signing key anew for each link, 210 µs a link
on this machine, where a listing of 1,000 files costs the api well under that per file,
so links tripled a listing's time (issue 18 asks for at most 1.3x). The signing key is
derived once a day (it depends on the date, region and secret only), the query's fixed
part once a second, and a link costs three quotings (``str.translate`` for ASCII, none
for a plain key and name: letters, digits, ``_.-~``), one canonical request, one SHA-256
and one HMAC from a keyed copy: 2.5 µs for a plain name, 7.5 µs quoted. The output is
botocore's, byte for byte, for the same instant (tests/api/test_presign.py signs the same
keys both ways), and the S3 server checks every signature the tests use.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import string
import time
import urllib.parse
from collections.abc import Callable
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
_VALUE_SAFE = "-_.~"
"""SigV4's unreserved characters, left unquoted in a query value (RFC 3986)."""
_ALGORITHM = "AWS4-HMAC-SHA256"


def _quoter(safe: str) -> Callable[[str], str]:
    """``urllib.parse.quote(value, safe=safe)``, by one ``str.translate`` for ASCII text.

    ``quote`` encodes a string byte by byte in Python, several µs for a file name, and a
    link quotes three; the table gives the same ``%XX`` (upper-case hex) at C speed. Most
    keys need no quoting at all, which one regular expression tells faster still (the
    table costs ~20 ns a character, a key ~60 of them).
    """
    kept = set(string.ascii_letters + string.digits + "_.-~" + safe)
    table = {code: f"%{code:02X}" for code in range(128) if chr(code) not in kept}
    plain = re.compile(f"[{re.escape(''.join(sorted(kept)))}]*")

    def quote(value: str) -> str:
        if plain.fullmatch(value):
            return value
        if value.isascii():
            return value.translate(table)
        return urllib.parse.quote(value, safe=safe)

    return quote


_quote_key = _quoter(_KEY_SAFE)
_quote = _quoter(_VALUE_SAFE)
_quote_attr = _quoter(_ATTR_CHAR_EXTRA)
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.~-]+")
"""A base name that every quoting here leaves as it is (most are)."""


def content_disposition(name: str, *, disposition: str = "attachment") -> str:
    """``attachment`` (or ``inline``) with the artifact's base name, safe for every browser.

    RFC 6266.

    ``filename`` is an ASCII quoted-string (non-ASCII and control characters become ``_``;
    ``"`` and ``\\`` are escaped) for old clients; ``filename*`` carries the exact name in
    UTF-8, which modern browsers prefer.
    """
    basename = name.rsplit("/", 1)[-1]
    if basename.isascii() and basename.isprintable():
        fallback = basename
    else:
        fallback = "".join(char if " " <= char <= "~" else "_" for char in basename)
    quoted = fallback.replace("\\", "\\\\").replace('"', '\\"')
    exact = _quote_attr(basename)
    return f"{disposition}; filename=\"{quoted}\"; filename*=UTF-8''{exact}"


_ATTACHMENT_HEAD = _quote('attachment; filename="')
_ATTACHMENT_MIDDLE = _quote("\"; filename*=UTF-8''")


def _quoted_attachment(name: str) -> str:
    """``_quote(content_disposition(name))``: for a plain base name, which appears twice
    unchanged, built from the parts around it instead of quoting ~80 characters."""
    basename = name.rpartition("/")[2]
    if _PLAIN_NAME.fullmatch(basename):
        return f"{_ATTACHMENT_HEAD}{basename}{_ATTACHMENT_MIDDLE}{basename}"
    return _quote(content_disposition(name))


class Presigner:
    """Signs download links; ``await refresh()`` before a batch, then ``download_url`` is sync."""

    def __init__(self, *, base_url: str, region: str, credentials: Any, ttl_seconds: int) -> None:
        self._base = base_url
        self._path = urllib.parse.urlsplit(base_url).path
        self._region = region
        self._credentials = credentials
        self._ttl = ttl_seconds
        self._frozen: Any = None
        self._host = ""
        self._day = ""
        self._mac = hmac.new(b"", digestmod="sha256")
        self._scope = ""
        self._second = 0
        self._auth_params: dict[str, str] = {}
        self._order: list[str] = []
        self._auth_query = ""
        self._signed_query = ""
        self._sign_head = ""
        self._canonical_end = ""

    @classmethod
    async def for_client(
        cls, s3: S3Client, *, credentials: Any, bucket: str, ttl_seconds: int
    ) -> Presigner:
        """A presigner for ``bucket`` through ``s3``, the client for the public endpoint."""
        if credentials is None:  # before botocore's probe, which would only say "Unable to locate"
            raise ValueError(
                "S3 credentials are needed to sign download links: set S3_ACCESS_KEY_ID and "
                "S3_SECRET_ACCESS_KEY, or give botocore's usual chain some"
            )
        probe: str = await s3.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": _PROBE_KEY}, ExpiresIn=ttl_seconds
        )
        base = probe.split("?", 1)[0].removesuffix(_PROBE_KEY)
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
        if frozen != self._frozen:
            # The signed Host header, as botocore derives it from the URL (a default port
            # dropped): asked of botocore once, not worked out again here.
            auth = S3SigV4QueryAuth(frozen, "s3", self._region, expires=self._ttl)
            self._host = auth.headers_to_sign(AWSRequest(method="GET", url=self._base))["host"]
            self._frozen = frozen
            self._day = ""
            self._second = 0

    def download_url(self, key: str, name: str) -> str:
        """A presigned GET of ``key`` that S3 answers as an attachment named after ``name``."""
        assert self._frozen is not None, "refresh() first"
        second = int(time.time())
        if second != self._second:  # a listing signs hundreds of links in the same second
            self._new_second(second)
        path = _quote_key(key)
        disposition = _quoted_attachment(name)
        # The canonical query sorts by name: the X-Amz-* parameters, then this one.
        canonical = (
            f"GET\n{self._path}{path}\n{self._signed_query}"
            f"&response-content-disposition={disposition}{self._canonical_end}"
        )
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        mac = self._mac.copy()
        mac.update(f"{self._sign_head}{digest}".encode())
        signature = mac.hexdigest()
        # botocore's order: the operation's parameter, then the auth parameters.
        return (
            f"{self._base}{path}?response-content-disposition={disposition}"
            f"&{self._auth_query}&X-Amz-Signature={signature}"
        )

    def _new_second(self, second: int) -> None:
        """What every link signed in this second shares: the date, in the query and the
        string to sign."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
        if stamp[:8] != self._day:
            self._new_day(stamp[:8])
        params = {**self._auth_params, "X-Amz-Date": stamp}
        self._auth_query = "&".join(f"{name}={params[name]}" for name in self._order)
        self._signed_query = "&".join(f"{name}={params[name]}" for name in sorted(params))
        self._sign_head = f"{_ALGORITHM}\n{stamp}\n{self._scope}\n"
        self._second = second

    def _new_day(self, day: str) -> None:
        """What every link of ``day`` shares: the derived key, the scope, the fixed params."""
        frozen = self._frozen
        self._mac = hmac.new(_signing_key(frozen.secret_key, day, self._region), digestmod="sha256")
        self._scope = f"{day}/{self._region}/s3/aws4_request"
        fixed = {
            "X-Amz-Algorithm": _ALGORITHM,
            "X-Amz-Credential": f"{frozen.access_key}/{self._scope}",
            "X-Amz-Expires": str(self._ttl),
            "X-Amz-SignedHeaders": "host",
        }
        if frozen.token is not None:
            fixed["X-Amz-Security-Token"] = frozen.token
        self._auth_params = {name: _quote(value) for name, value in fixed.items()}
        self._order = [
            "X-Amz-Algorithm",
            "X-Amz-Credential",
            "X-Amz-Date",
            "X-Amz-Expires",
            "X-Amz-SignedHeaders",
            *(["X-Amz-Security-Token"] if frozen.token is not None else []),
        ]
        self._canonical_end = f"\nhost:{self._host}\n\nhost\nUNSIGNED-PAYLOAD"
        self._day = day


def _signing_key(secret: str, day: str, region: str) -> bytes:
    """SigV4's derived key: the secret through the date, region, service and terminator."""
    key = f"AWS4{secret}".encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key
