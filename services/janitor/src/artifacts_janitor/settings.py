"""The janitor's settings: the shared pieces plus when it runs and what it may delete.

``JANITOR_DAILY_AT`` and ``JANITOR_ORPHAN_RETENTION_SECONDS`` are contract names
(ARCHITECTURE section 7); the others are the janitor's own operating knobs.
"""

from __future__ import annotations

from pydantic import Field

from artifacts_shared.settings import CleanupScheduleSettings, RedisSettings, S3Settings

__all__ = ["JanitorSettings"]


class JanitorSettings(S3Settings, RedisSettings, CleanupScheduleSettings):
    janitor_orphan_retention_seconds: int = Field(
        0,
        ge=0,
        description="whole seconds >= 0; 0 never deletes folders without a readable expiredAt",
    )
    janitor_dry_run: bool = Field(
        False, description="true or false; true reports what would be deleted and deletes nothing"
    )
    janitor_concurrency: int = Field(
        16, ge=1, le=256, description="how many job folders to work on at once, 1 to 256"
    )
    janitor_metrics_port: int = Field(
        9464, ge=0, le=65535, description="a port for /metrics from 1 to 65535, or 0 for none"
    )
    janitor_lock_seconds: int = Field(
        60,
        ge=2,
        le=3600,
        description="whole seconds from 2 to 3600: the run lock's lease, renewed while running",
    )
    # arq re-runs a job killed mid-way once this has passed (plus 10 s); keeping it under a
    # day means a crashed run is always resumed before the next daily run is due.
    janitor_run_timeout_seconds: int = Field(
        6 * 3600,
        ge=60,
        le=23 * 3600,
        description="whole seconds from 60 to 82800 (23 hours) a run may take",
    )
    janitor_result_ttl_seconds: int = Field(
        7 * 86_400,
        ge=60,
        le=365 * 86_400,
        description="whole seconds from 60 to 31536000 to keep each run's result",
    )
