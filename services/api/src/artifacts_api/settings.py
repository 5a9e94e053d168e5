"""The api's settings: the shared pieces plus how it listens and authenticates."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from artifacts_shared.settings import ArtifactPolicySettings, RedisSettings, S3Settings

__all__ = ["ApiSettings"]


class ApiSettings(S3Settings, RedisSettings, ArtifactPolicySettings):
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
