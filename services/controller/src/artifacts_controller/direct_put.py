"""PutObject and UploadPart without botocore's per-call pipeline: one signer, one pool.

A job's artifacts are often thousands of small files, and there the cost is per request,
not per byte: a botocore client call builds, checks, resolves, signs and parses each one
through its event system, about four times the CPU of the request itself (bench/RESULTS.md
has the figures), on the cores the S3 server needs too. ``DirectPut`` sends the same
request -- a path-style ``PUT`` with ``Content-Type``, ``x-amz-checksum-sha256`` and an
``UNSIGNED-PAYLOAD`` -- signed by botocore's own SigV4 signer (``S3SigV4Auth``, the public
piece its clients use) over an aiohttp connection pool of its own. It retries what
botocore's standard mode retries: connection errors, 500/502/503/504, throttling.

It serves S3 endpoints given as ``S3_ENDPOINT_URL`` with keys in the settings (MinIO,
SeaweedFS, Ceph RGW... in path style, as ``open_s3`` addresses them); for anything else
(AWS itself, a pod's cloud identity) ``open_direct_put`` gives None and the client's own
``put_object`` is used. ``AWS_CA_BUNDLE`` names extra CAs for an https endpoint, as for
botocore.
"""

from __future__ import annotations

import asyncio
import os
import random
import ssl
import xml.etree.ElementTree as ElementTree
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import yarl
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.utils import percent_encode

from artifacts_shared.settings import S3Settings

__all__ = ["DirectPut", "open_direct_put"]

_RETRIED_STATUS = frozenset({500, 502, 503, 504})
_RETRIED_CODES = frozenset({"SlowDown", "Throttling", "RequestTimeout", "InternalError"})
_BACKOFF_CAP = 20.0
_SLICE = 256 * 1024
_UNSIGNED_PAYLOAD = Config(s3={"payload_signing_enabled": False})
"""What the signer reads from a request's context, as from a client's: no payload hash."""


class DirectPut:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        endpoint: str,
        bucket: str,
        signer: S3SigV4Auth,
        attempts: int,
    ) -> None:
        self._session = session
        self._endpoint = endpoint
        self._bucket = bucket
        self._signer = signer
        self._attempts = attempts

    async def put(self, key: str, body: bytes, *, sha256: str, content_type: str) -> None:
        """Store ``body`` at ``key``; ``sha256`` (base64) is checked by servers that check.

        Raises ``ClientError`` for what S3 refused, ``EndpointConnectionError`` when it
        could not be reached, as a client call would.
        """
        headers = {"Content-Type": content_type, "x-amz-checksum-sha256": sha256}
        await self._send(key, body, headers=headers, query="", operation="PutObject")

    async def put_part(self, key: str, body: bytes, *, upload_id: str, number: int) -> str:
        """``UploadPart``: ``body`` as part ``number`` of ``upload_id``; returns its ETag.

        The body goes from memory to the socket as it is, where the client's call copies
        a 16 MiB part on its way through botocore's pipeline.
        """
        query = f"?partNumber={number}&uploadId={percent_encode(upload_id, safe='')}"
        return await self._send(key, body, headers={}, query=query, operation="UploadPart")

    async def _send(
        self, key: str, body: bytes, *, headers: dict[str, str], query: str, operation: str
    ) -> str:
        url = f"{self._endpoint}/{self._bucket}/{percent_encode(key, safe='/~')}{query}"
        for attempt in range(1, self._attempts + 1):
            request = AWSRequest("PUT", url, data=body, headers=headers)
            request.context["client_config"] = _UNSIGNED_PAYLOAD  # hashed once, by the caller
            self._signer.add_auth(request)  # signed anew: the date is part of the signature
            sent = dict(request.headers.items())
            sent["Content-Length"] = str(len(body))
            try:
                async with self._session.put(
                    yarl.URL(url, encoded=True), data=_slices(body), headers=sent
                ) as response:
                    if response.status == 200:
                        await response.read()  # the connection goes back to the pool clean
                        return response.headers.get("ETag", "")
                    error = _error(response.status, await response.read(), operation)
            except (aiohttp.ClientError, OSError, TimeoutError) as err:
                if attempt == self._attempts:
                    raise EndpointConnectionError(endpoint_url=url, error=err) from None
            else:
                code = error.response["Error"]["Code"]
                if attempt == self._attempts or not (
                    response.status in _RETRIED_STATUS or code in _RETRIED_CODES
                ):
                    raise error
            # Standard mode's backoff: exponential from 100 ms, with full jitter.
            await asyncio.sleep(random.uniform(0, min(_BACKOFF_CAP, 0.1 * 2**attempt)))
        raise AssertionError("unreachable: the last attempt returns or raises")


async def _slices(body: bytes) -> AsyncIterator[memoryview]:
    """``body`` in slices, each written once the socket has taken the one before.

    Given the whole of a 16 MiB part, the event loop's transport copies what the socket
    does not take at once into its own buffer: a second copy of every part in flight
    (peak RSS 370 MiB uploading 4 x 100 MiB, eight parts at once). Slices of a memoryview
    cost no copy, and aiohttp waits for the buffer to drain between them.
    """
    view = memoryview(body)
    for start in range(0, len(view), _SLICE):
        yield view[start : start + _SLICE]


def _error(status: int, body: bytes, operation: str) -> ClientError:
    code, message = str(status), ""
    try:
        root = ElementTree.fromstring(body)
        code = root.findtext("Code") or code
        message = root.findtext("Message") or ""
    except ElementTree.ParseError:
        message = body[:200].decode("utf-8", "replace")
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


@asynccontextmanager
async def open_direct_put(
    settings: S3Settings, *, connections: int, attempts: int
) -> AsyncIterator[DirectPut | None]:
    """A ``DirectPut`` for ``settings``, or None where it does not serve (see above)."""
    secret = settings.s3_secret_access_key
    if not (settings.s3_endpoint_url and settings.s3_access_key_id and secret):
        yield None
        return
    credentials = Credentials(settings.s3_access_key_id, secret.get_secret_value())
    context: ssl.SSLContext | bool = True
    if os.environ.get("AWS_CA_BUNDLE"):
        context = ssl.create_default_context(cafile=os.environ["AWS_CA_BUNDLE"])
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections, ssl=context),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=60),
        skip_auto_headers=("User-Agent",),
        cookie_jar=aiohttp.DummyCookieJar(),  # S3 sets none; a jar costs every request
    ) as session:
        yield DirectPut(
            session,
            endpoint=settings.s3_endpoint_url,
            bucket=settings.phfs_bucket,
            signer=S3SigV4Auth(credentials, "s3", settings.s3_region),
            attempts=attempts,
        )
