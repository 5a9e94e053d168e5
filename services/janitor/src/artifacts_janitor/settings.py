"""The janitor's settings: the shared pieces plus when it runs and what it may delete."""

from __future__ import annotations

import re
from datetime import time

from pydantic import Field, field_validator

from artifacts_shared.settings import RedisSettings, S3Settings

__all__ = ["JanitorSettings"]


class JanitorSettings(S3Settings, RedisSettings):
    janitor_daily_at: time = Field(
        time(3, 0), description="a UTC time of day as HH:MM (24-hour clock)"
    )
    janitor_orphan_retention_seconds: int = Field(
        0,
        ge=0,
        description="whole seconds >= 0; 0 never deletes folders without a readable expiredAt",
    )

    @field_validator("janitor_daily_at", mode="before")
    @classmethod
    def _hh_mm(cls, value: object) -> object:
        if isinstance(value, str):
            match = re.fullmatch(r"([01]?[0-9]|2[0-3]):([0-5][0-9])", value.strip())
            if match is None:
                raise ValueError("expected HH:MM")
            return time(int(match[1]), int(match[2]))
        return value
