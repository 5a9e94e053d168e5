"""Settings pieces that the services compose into their own settings class.

Every field's environment variable is its name upper-cased (ARCHITECTURE section 7),
so a piece's field names *are* the contract. Each field's ``description`` says what it
accepts: ``load_settings`` puts that text in the one line a bad value produces, so an
operator learns from the log what to write instead.

Secrets may also come from files: ``S3_SECRET_ACCESS_KEY_FILE=/run/secrets/key`` is read
when ``S3_SECRET_ACCESS_KEY`` is not set (the Docker and Kubernetes secret-file habit).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import time
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings import SettingsError as SourceError

__all__ = [
    "LOCAL_JOB_LOG",
    "ArtifactPolicySettings",
    "BaseServiceSettings",
    "CleanupScheduleSettings",
    "HttpUrl",
    "LocalRuntimeSettings",
    "RedisSettings",
    "RedisUrl",
    "S3Settings",
    "SettingsError",
    "load_settings",
]


class SettingsError(Exception):
    """A setting has a value the service cannot run with; ``str()`` is one line."""


def _http_url(value: str) -> str:
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
        raise ValueError("not an http(s) URL")
    return value.rstrip("/")


def _redis_url(value: str) -> str:
    if not re.fullmatch(r"(rediss?://[^\s]+|unix://?/[^\s]+)", value):
        raise ValueError("not a redis URL")
    return value


def _bucket_name(value: str) -> str:
    # The S3 bucket naming rules, short form: 3-63 of a-z 0-9 . -, alphanumeric at both ends.
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", value) or ".." in value:
        raise ValueError("not a valid bucket name")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]
RedisUrl = Annotated[str, AfterValidator(_redis_url)]
BucketName = Annotated[str, AfterValidator(_bucket_name)]


class _SecretFiles(PydanticBaseSettingsSource):
    """``<NAME>_FILE`` variables: the value is the file's content, trailing newline dropped."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        path = os.environ.get(f"{field_name.upper()}_FILE")
        if not path:
            return None, field_name, False
        try:
            return Path(path).read_text(encoding="utf-8").strip(), field_name, False
        except OSError as err:
            raise SettingsError(
                f"{field_name.upper()}_FILE={path!r}: cannot read the file ({err.strerror})"
            ) from err

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, name)
            if value is not None:
                values[key] = value
        return values


class BaseServiceSettings(BaseSettings):
    """Common configuration of every settings piece: plain upper-case variables, no prefix."""

    model_config = SettingsConfigDict(
        env_prefix="",
        case_sensitive=False,
        extra="ignore",
        frozen=True,
        validate_default=True,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _SecretFiles(settings_cls))


class S3Settings(BaseServiceSettings):
    """Where PHFS lives as an S3 bucket, for the services and for browsers."""

    s3_endpoint_url: HttpUrl | None = Field(
        None, description="an http(s) URL of the S3 endpoint, or unset for AWS S3"
    )
    s3_public_endpoint_url: HttpUrl | None = Field(
        None,
        description="an http(s) URL of the S3 endpoint that browsers reach "
        "(defaults to S3_ENDPOINT_URL)",
    )
    s3_region: str = Field("us-east-1", min_length=1, description="an S3 region name")
    s3_access_key_id: str | None = Field(None, description="an access key id")
    s3_secret_access_key: SecretStr | None = Field(None, description="a secret access key")
    phfs_bucket: BucketName = Field(
        "phfs", description="an S3 bucket name (3-63 characters of a-z, 0-9, '.' and '-')"
    )

    @property
    def public_endpoint_url(self) -> str | None:
        return self.s3_public_endpoint_url or self.s3_endpoint_url


class RedisSettings(BaseServiceSettings):
    """The Redis server that carries the janitor's queue."""

    redis_url: RedisUrl = Field(
        "redis://127.0.0.1:6379/0",
        description="a redis://, rediss:// or unix:// URL",
    )


class ArtifactPolicySettings(BaseServiceSettings):
    """Defaults for collection, applied to every job unless the job overrides them."""

    artifact_enabled: bool = Field(True, description="true or false")
    artifact_retention_seconds: int = Field(
        604_800,
        ge=0,
        le=100 * 365 * 86_400,
        description="whole seconds from 0 (keep until deleted by hand) to 100 years",
    )
    artifact_limit_size_mb: int = Field(
        100, ge=1, le=10_000_000, description="a whole number of megabytes, at least 1"
    )
    artifact_limit_files: int = Field(
        1000, ge=1, le=100_000_000, description="a whole number of files, at least 1"
    )
    artifact_job_log_limit_mb: int = Field(
        10,
        ge=1,
        le=10_000,
        description="a whole number of megabytes from 1 to 10000: the most of a job's log "
        "delivered with its artifacts (its end is kept, after a truncation line)",
    )


class CleanupScheduleSettings(BaseServiceSettings):
    """When the janitor's daily run starts: the janitor runs it, the api tells users when."""

    janitor_daily_at: time = Field(
        time(3, 0), description="a UTC time of day as HH:MM (24-hour clock)"
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


SettingsT = TypeVar("SettingsT", bound=BaseServiceSettings)


def load_settings(cls: type[SettingsT], **overrides: Any) -> SettingsT:
    """Build ``cls`` from the environment, or raise ``SettingsError`` with one line.

    The line names each bad variable, the value found (hidden for secrets) and what the
    variable accepts, e.g. ``API_PORT='http': expected an integer from 1 to 65535``.
    """
    try:
        return cls(**overrides)
    except ValidationError as err:
        raise SettingsError(_one_line(cls, err)) from None
    except SourceError as err:
        # A list or mapping setting whose variable is not JSON: pydantic-settings says so
        # before validating, naming the field in its message.
        found = re.search(r'field "(\w+)"', str(err))
        field = cls.model_fields.get(found.group(1)) if found else None
        if found is None or field is None:
            raise
        raise SettingsError(
            f"invalid settings: {found.group(1).upper()} is not JSON: expected "
            f"{field.description or 'a JSON value'}"
        ) from None


def _one_line(cls: type[BaseServiceSettings], err: ValidationError) -> str:
    fields: Mapping[str, FieldInfo] = cls.model_fields
    parts: list[str] = []
    for error in err.errors(include_url=False):
        name = str(error["loc"][0]) if error["loc"] else "?"
        field = fields.get(name)
        accepts = field.description if field and field.description else error["msg"]
        variable = name.upper()
        if error["type"] == "missing":
            parts.append(f"{variable} is required: expected {accepts}")
            continue
        shown = (
            "***"
            if field and field.annotation in (SecretStr, SecretStr | None)
            else (repr(error["input"]))
        )
        parts.append(f"{variable}={shown}: expected {accepts}")
    return "invalid settings: " + "; ".join(dict.fromkeys(parts))


LOCAL_JOB_LOG = "job.log"
"""The job's stdout and stderr, then run-job.sh's collection lines, in one file; delivered
with the artifacts as ``.primehub/metadata/job.log`` (the uploader's own lines go to
``uploader.log`` beside it)."""


class LocalRuntimeSettings(BaseServiceSettings):
    """Where the dev stack keeps its jobs when ``CONTROLLER_RUNTIME=local`` (no Kubernetes)."""

    local_jobs_dir: Path = Field(
        Path(".data/jobs"), description="a folder path for the local job store"
    )
    local_runtime_dir: Path = Field(
        Path(".data/runtime"), description="a folder path for local jobs' homes and logs"
    )

    def local_job_log(self, job: str) -> Path:
        """Where the local runtime writes a job's output, which the api serves while it runs.

        ``job`` must be a checked job name (``layout.check_job_name``): it is a path step.
        """
        return self.local_runtime_dir / job / LOCAL_JOB_LOG
