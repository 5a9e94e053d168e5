"""The identity provider's signing keys (JWKS), fetched over HTTP and cached.

Keys are fetched once and kept ``OIDC_JWKS_CACHE_SECONDS``; a token signed with a key id
we do not know triggers one early refetch (the provider rotated its keys), rate-limited so
a stream of forged key ids cannot make us hammer the provider. Concurrent requests share
one fetch. Only asymmetric keys are accepted: a JWKS is public, so a symmetric key in it
would let anyone sign tokens.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
import jwt

from artifacts_api.errors import Unauthenticated, Unavailable

__all__ = ["ASYMMETRIC_ALGORITHMS", "JwksCache"]

log = logging.getLogger(__name__)

ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_MIN_REFRESH_SECONDS = 10.0
"""At most one refetch this often for unknown key ids."""


class JwksCache:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        issuer: str,
        jwks_url: str | None,
        ttl_seconds: float,
        timeout_seconds: float = 5.0,
        min_refresh_seconds: float = _MIN_REFRESH_SECONDS,
    ) -> None:
        self._session = session
        self._issuer = issuer
        self._jwks_url = jwks_url
        self._ttl = ttl_seconds
        self._min_refresh = min_refresh_seconds
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at = float("-inf")
        self._generation = 0
        self._lock = asyncio.Lock()

    async def key_for(self, kid: str | None) -> jwt.PyJWK:
        """The key a token with key id ``kid`` must be verified with."""
        stale = self._fetched_at is None or time.monotonic() - self._fetched_at > self._ttl
        if stale and time.monotonic() - self._attempted_at >= self._min_refresh:
            await self._refresh(self._generation)
        key = self._lookup(kid)
        if key is None and time.monotonic() - self._attempted_at >= self._min_refresh:
            await self._refresh(self._generation)
            key = self._lookup(kid)
        if key is None and not self._keys:
            raise Unavailable("the identity provider's keys cannot be fetched", backend="oidc")
        if key is None:
            raise Unauthenticated(
                "the token is signed with a key the identity provider does not list"
            )
        return key

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None and len(self._keys) == 1:
            # A provider with a single key may omit key ids.
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    async def _refresh(self, generation: int) -> None:
        async with self._lock:
            if generation != self._generation:
                return  # another request fetched while this one waited for the lock
            self._generation += 1
            self._attempted_at = time.monotonic()
            try:
                url = self._jwks_url or await self._discover()
                document = await self._get_json(url)
                key_set = jwt.PyJWKSet.from_dict(document)
            except (aiohttp.ClientError, TimeoutError, ValueError, jwt.PyJWTError) as err:
                log.warning("cannot fetch the identity provider's keys: %r", err)
                if self._keys:
                    return  # keep serving with the keys we have; retry after a pause
                raise Unavailable(
                    "the identity provider's keys cannot be fetched", backend="oidc"
                ) from err
            self._keys = {
                key.key_id: key
                for key in key_set.keys
                if key.algorithm_name in ASYMMETRIC_ALGORITHMS and key.public_key_use != "enc"
            }
            self._fetched_at = time.monotonic()

    async def _discover(self) -> str:
        document = await self._get_json(f"{self._issuer}/.well-known/openid-configuration")
        url = document.get("jwks_uri")
        if not isinstance(url, str):
            raise ValueError("the OpenID configuration has no jwks_uri")
        self._jwks_url = url
        return url

    async def _get_json(self, url: str) -> dict[str, Any]:
        async with self._session.get(url, timeout=self._timeout) as response:
            response.raise_for_status()
            document = await response.json(content_type=None)
        if not isinstance(document, dict):
            raise ValueError(f"{url} did not answer with a JSON object")
        return document
