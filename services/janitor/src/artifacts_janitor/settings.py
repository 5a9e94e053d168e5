"""The janitor's settings: the shared pieces plus when it runs and what it may delete.

``JANITOR_DAILY_AT``, ``JANITOR_ORPHAN_RETENTION_SECONDS`` and ``JANITOR_RESCAN_EVERY`` are
contract names (ARCHITECTURE section 7); the others are the janitor's own operating knobs.
"""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import Field, field_validator

from artifacts_shared.input_holds import InputHoldSettings
from artifacts_shared.settings import CleanupScheduleSettings, RedisSettings, S3Settings

__all__ = ["JanitorSettings"]


class JanitorSettings(S3Settings, RedisSettings, CleanupScheduleSettings, InputHoldSettings):
    janitor_orphan_retention_seconds: int = Field(
        0,
        ge=0,
        description="whole seconds >= 0; 0 never deletes folders without a readable expiredAt",
    )
    janitor_rescan_every: timedelta = Field(
        timedelta(days=7),
        description="a duration from 1h to 365d: whole seconds, or a whole number with s, m, "
        "h or d (7d)",
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

    @field_validator("janitor_rescan_every", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        if isinstance(value, int | str):
            match = re.fullmatch(r"([0-9]{1,9})([smhd]?)", str(value).strip())
            if match is None:
                raise ValueError("expected a duration such as 7d")
            unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}[match[2]]
            value = timedelta(seconds=int(match[1]) * unit)
        if isinstance(value, timedelta) and not timedelta(hours=1) <= value <= timedelta(days=365):
            raise ValueError("out of range")
        return value
