"""Turning a request's ``Authorization`` header into an ``Identity``.

Three modes (``API_AUTH_MODE``): ``oidc`` verifies a bearer JWT against the identity
provider's JWKS with the issuer and audience checked; ``hs256`` verifies it with a shared
secret (small installs; ``OIDC_ISSUER``/``OIDC_AUDIENCE`` are checked too when set);
``none`` makes every caller the admin ``dev`` (the local dev stack; ``__main__`` refuses it
off loopback). Expiry is always required and enforced.

Group names come from ``API_GROUPS_CLAIM``, admin rights from ``API_ADMIN_ROLE`` being
among ``API_ROLES_CLAIM``; dotted claim names reach into nested claims, the way Keycloak
puts roles under ``realm_access.roles``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jwt

from artifacts_api.errors import Unauthenticated
from artifacts_api.identity import Identity, dev
from artifacts_api.jwks import JwksCache
from artifacts_api.settings import ApiSettings

__all__ = [
    "Authenticator",
    "ClaimRules",
    "JwtAuthenticator",
    "KeySource",
    "NoAuthenticator",
    "SecretKeySource",
    "bearer_token",
]


class Authenticator(Protocol):
    async def authenticate(self, authorization: str | None) -> Identity: ...


class NoAuthenticator:
    def __init__(self, groups: frozenset[str]) -> None:
        self._identity = dev(groups)

    async def authenticate(self, authorization: str | None) -> Identity:
        return self._identity


class KeySource(Protocol):
    async def key_for(self, header: Mapping[str, Any]) -> tuple[Any, list[str]]:
        """The verification key for a token with this header, and the algorithms allowed."""
        ...


class SecretKeySource:
    def __init__(self, secret: str) -> None:
        self._secret = secret

    async def key_for(self, header: Mapping[str, Any]) -> tuple[Any, list[str]]:
        return self._secret, ["HS256"]


class JwksKeySource:
    def __init__(self, cache: JwksCache) -> None:
        self._cache = cache

    async def key_for(self, header: Mapping[str, Any]) -> tuple[Any, list[str]]:
        kid = header.get("kid")
        key = await self._cache.key_for(kid if isinstance(kid, str) else None)
        # The key decides the algorithm, never the token: no algorithm confusion.
        return key.key, [key.algorithm_name]


@dataclass(frozen=True, slots=True)
class ClaimRules:
    username: str
    groups: str
    roles: str
    admin_role: str

    @classmethod
    def from_settings(cls, settings: ApiSettings) -> ClaimRules:
        return cls(
            username=settings.api_username_claim,
            groups=settings.api_groups_claim,
            roles=settings.api_roles_claim,
            admin_role=settings.api_admin_role,
        )

    def identity(self, claims: Mapping[str, Any]) -> Identity:
        name = _claim(claims, self.username) or claims.get("sub")
        if not isinstance(name, str) or not name:
            raise Unauthenticated(f"the token names no user (claim {self.username!r} or 'sub')")
        # Keycloak's group claim carries full paths ("/ML_Team"); group names have no "/".
        groups = frozenset(group.lstrip("/") for group in _names(_claim(claims, self.groups)))
        admin = self.admin_role in _names(_claim(claims, self.roles))
        return Identity(
            name=name,
            groups=groups - {""},
            admin=admin,
            email=_text(claims.get("email")),
            first_name=_text(claims.get("given_name")),
            last_name=_text(claims.get("family_name")),
        )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _claim(claims: Mapping[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _names(value: Any) -> list[str]:
    """A claim holding names: a list of strings, or one string of names."""
    if isinstance(value, str):
        return value.replace(",", " ").split()
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("this request needs an 'Authorization: Bearer <token>' header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    return token.strip()


class JwtAuthenticator:
    def __init__(
        self,
        keys: KeySource,
        rules: ClaimRules,
        *,
        issuer: str | None,
        audience: str | None,
        leeway_seconds: float,
    ) -> None:
        self._keys = keys
        self._rules = rules
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_seconds

    async def authenticate(self, authorization: str | None) -> Identity:
        token = bearer_token(authorization)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("the bearer token is not a JWT") from None
        key, algorithms = await self._keys.key_for(header)
        required = ["exp"] + (["iss"] if self._issuer else []) + (["aud"] if self._audience else [])
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway,
                options={"require": required, "verify_aud": self._audience is not None},
            )
        except jwt.PyJWTError as err:
            raise _refusal(err, algorithms) from None
        return self._rules.identity(claims)


def _refusal(err: jwt.PyJWTError, algorithms: list[str]) -> Unauthenticated:
    """Say which check a token failed, without echoing anything from the token."""
    if isinstance(err, jwt.ExpiredSignatureError):
        return Unauthenticated("the token has expired", reason="expired")
    if isinstance(err, jwt.InvalidSignatureError):
        return Unauthenticated("the token's signature is not valid", reason="signature")
    if isinstance(err, jwt.InvalidAudienceError):
        return Unauthenticated("the token is not meant for this api", reason="audience")
    if isinstance(err, jwt.InvalidIssuerError):
        return Unauthenticated("the token comes from another issuer", reason="issuer")
    if isinstance(err, jwt.InvalidAlgorithmError):
        allowed = ", ".join(algorithms)
        return Unauthenticated(f"the token must be signed with {allowed}", reason="algorithm")
    if isinstance(err, jwt.MissingRequiredClaimError):
        return Unauthenticated(f"the token lacks the {err.claim!r} claim", reason="claims")
    return Unauthenticated("the token is not valid", reason="invalid")
