"""The api's settings: the shared pieces plus how it listens, authenticates and limits work.

Every name is its environment variable upper-cased (ARCHITECTURE section 7). Checks that
involve more than one variable (an OIDC issuer is needed in ``oidc`` mode, ``none`` mode
only on loopback) live in ``check_startup`` so they produce the same one-line
``SettingsError`` as a bad single value.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from artifacts_shared.input_holds import InputHoldSettings
from artifacts_shared.instance_types import InstanceTypeSettings
from artifacts_shared.layout import UnsafeNameError, group_path
from artifacts_shared.settings import (
    ArtifactPolicySettings,
    CleanupScheduleSettings,
    HttpUrl,
    LocalRuntimeSettings,
    RedisSettings,
    S3Settings,
    SettingsError,
)

__all__ = ["ApiSettings", "check_startup", "is_loopback"]

_HS256_MIN_SECRET = 32
"""RFC 7518 section 3.2: an HS256 key must be at least 256 bits."""


class ApiSettings(
    S3Settings,
    RedisSettings,
    ArtifactPolicySettings,
    LocalRuntimeSettings,
    InstanceTypeSettings,
    CleanupScheduleSettings,
    InputHoldSettings,
):
    api_host: str = Field("127.0.0.1", min_length=1, description="an address to listen on")
    api_port: int = Field(8080, ge=1, le=65535, description="an integer from 1 to 65535")
    api_auth_mode: Literal["oidc", "hs256", "none"] = Field(
        "oidc", description="'oidc', 'hs256' or 'none'"
    )
    download_url_ttl_seconds: int = Field(
        300, ge=1, le=7 * 86_400, description="whole seconds from 1 to 604800 (7 days)"
    )
    kube_namespace: str = Field(
        "default",
        pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
        description="a Kubernetes namespace name",
    )
    controller_runtime: Literal["kubernetes", "local"] = Field(
        "kubernetes", description="'kubernetes' or 'local'"
    )

    # Authentication: OIDC (JWKS) or a shared HS256 secret; claims name the caller's groups.
    oidc_issuer: HttpUrl | None = Field(
        None, description="the OIDC issuer URL that tokens must carry in 'iss'"
    )
    oidc_audience: str | None = Field(
        None, min_length=1, description="the audience that tokens must carry in 'aud'"
    )
    oidc_jwks_url: HttpUrl | None = Field(
        None,
        description="an http(s) URL of the issuer's JWKS (default: discovered from "
        "OIDC_ISSUER/.well-known/openid-configuration)",
    )
    oidc_jwks_cache_seconds: int = Field(
        300, ge=1, le=86_400, description="whole seconds from 1 to 86400"
    )
    api_jwt_secret: SecretStr | None = Field(
        None, description=f"an HS256 secret of at least {_HS256_MIN_SECRET} characters"
    )
    api_jwt_leeway_seconds: int = Field(
        30, ge=0, le=600, description="whole seconds of clock skew allowed, 0 to 600"
    )
    api_username_claim: str = Field(
        "preferred_username", min_length=1, description="a claim name (dots for nesting)"
    )
    api_groups_claim: str = Field(
        "groups", min_length=1, description="a claim name (dots for nesting)"
    )
    api_roles_claim: str = Field(
        "roles", min_length=1, description="a claim name (dots for nesting)"
    )
    api_admin_role: str = Field("admin", min_length=1, description="a role name")
    api_dev_groups: str = Field(
        "phusers",
        description="comma-separated group names: the groups of API_AUTH_MODE=none's user dev",
    )

    # Limits that keep one request from taking the service down.
    api_max_body_bytes: int = Field(
        256 * 1024, ge=1024, le=64 * 1024 * 1024, description="bytes from 1024 to 67108864"
    )
    api_max_query_depth: int = Field(10, ge=2, le=100, description="an integer from 2 to 100")
    api_max_query_cost: int = Field(
        5000, ge=10, le=10_000_000, description="an integer from 10 to 10000000"
    )
    api_max_listed_objects: int = Field(
        100_000,
        ge=1,
        le=100_000_000,
        description="an integer from 1 to 100000000: objects one request may list from S3",
    )
    api_max_signed_links: int = Field(
        1_000,
        ge=1,
        le=10_000_000,
        description="an integer from 1 to 10000000: download links one request may sign",
    )
    api_listing_concurrency: int = Field(
        2,
        ge=1,
        le=64,
        description="an integer from 1 to 64: big listings served at once, the rest wait",
    )
    api_max_retention_seconds: int = Field(
        365 * 86_400,
        ge=1,
        le=100 * 365 * 86_400,
        description="whole seconds from 1 to 100 years: the longest retention a job may ask",
    )
    artifact_max_retention_seconds: int = Field(
        90 * 86_400,
        ge=1,
        le=100 * 365 * 86_400,
        description="whole seconds from 1 to 100 years: how far after now a group member "
        "may set a job's artifact expiry (admins may go beyond, or keep them)",
    )
    api_max_input_artifacts: int = Field(
        16,
        ge=0,
        le=64,
        description="an integer from 0 to 64: how many inputArtifacts one job may name (0: none)",
    )
    api_s3_timeout_seconds: float = Field(
        10.0, gt=0, le=600, description="seconds above 0, at most 600"
    )
    api_kube_timeout_seconds: float = Field(
        10.0, gt=0, le=600, description="seconds above 0, at most 600"
    )
    api_public_url: HttpUrl | None = Field(
        None,
        description="the http(s) URL clients reach the api at, e.g. https://artifacts.example.com "
        "(PhJob.logEndpoint starts with it; default: the address each request came in on)",
    )
    api_log_max_streams: int = Field(
        100,
        ge=1,
        le=100_000,
        description="an integer from 1 to 100000: job logs served at once, per process",
    )
    api_link_signing_key: SecretStr | None = Field(
        None,
        description="a secret of at least 32 characters that signs zip links "
        "(default: random per process; set it when running several replicas)",
    )

    @field_validator("api_dev_groups")
    @classmethod
    def _dev_groups_are_group_names(cls, value: str) -> str:
        for name in value.split(","):
            try:
                group_path(name.strip())
            except UnsafeNameError as err:
                raise ValueError(str(err)) from None
        return value

    @property
    def dev_groups(self) -> frozenset[str]:
        return frozenset(name.strip() for name in self.api_dev_groups.split(","))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_startup(settings: ApiSettings) -> None:
    """Refuse combinations the api must not start with, in one line naming the variables."""
    mode = settings.api_auth_mode
    if mode == "none" and not is_loopback(settings.api_host):
        raise SettingsError(
            f"API_AUTH_MODE='none' makes every caller an admin: refused with "
            f"API_HOST={settings.api_host!r}; listen on a loopback address (127.0.0.1, ::1) "
            f"or set API_AUTH_MODE to 'oidc' or 'hs256'"
        )
    if mode == "oidc":
        missing = [
            name
            for name, value in (
                ("OIDC_ISSUER", settings.oidc_issuer),
                ("OIDC_AUDIENCE", settings.oidc_audience),
            )
            if not value
        ]
        if missing:
            raise SettingsError(
                f"API_AUTH_MODE='oidc' needs {' and '.join(missing)}: expected the token "
                f"issuer URL and the audience the api accepts"
            )
    if mode == "hs256":
        secret = settings.api_jwt_secret
        if secret is None or len(secret.get_secret_value()) < _HS256_MIN_SECRET:
            raise SettingsError(
                f"API_AUTH_MODE='hs256' needs API_JWT_SECRET (or API_JWT_SECRET_FILE): "
                f"expected a secret of at least {_HS256_MIN_SECRET} characters"
            )
    key = settings.api_link_signing_key
    if key is not None and len(key.get_secret_value()) < _HS256_MIN_SECRET:
        raise SettingsError(
            "API_LINK_SIGNING_KEY=***: expected a secret of at least "
            f"{_HS256_MIN_SECRET} characters"
        )
