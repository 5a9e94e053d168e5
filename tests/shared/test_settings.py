from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from artifacts_shared.settings import (
    ArtifactPolicySettings,
    RedisSettings,
    S3Settings,
    SettingsError,
    load_settings,
)


def test_defaults_follow_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "PHFS_BUCKET",
        "ARTIFACT_RETENTION_SECONDS",
        "ARTIFACT_LIMIT_SIZE_MB",
        "ARTIFACT_LIMIT_FILES",
        "ARTIFACT_ENABLED",
        "S3_PUBLIC_ENDPOINT_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    policy = load_settings(ArtifactPolicySettings)
    assert (
        policy.artifact_enabled,
        policy.artifact_retention_seconds,
        policy.artifact_limit_size_mb,
        policy.artifact_limit_files,
    ) == (True, 604800, 100, 1000)
    s3 = load_settings(S3Settings, s3_endpoint_url="http://minio:9000/")
    assert s3.phfs_bucket == "phfs"
    assert s3.public_endpoint_url == "http://minio:9000"


def test_settings_are_read_from_upper_case_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("S3_PUBLIC_ENDPOINT_URL", "https://s3.example.test")
    monkeypatch.setenv("PHFS_BUCKET", "my-bucket")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/2")
    monkeypatch.setenv("ARTIFACT_RETENTION_SECONDS", "0")
    s3 = load_settings(S3Settings)
    assert (s3.s3_endpoint_url, s3.public_endpoint_url, s3.phfs_bucket) == (
        "http://127.0.0.1:9000",
        "https://s3.example.test",
        "my-bucket",
    )
    assert load_settings(RedisSettings).redis_url == "redis://cache:6379/2"
    assert load_settings(ArtifactPolicySettings).artifact_retention_seconds == 0


def test_secret_is_read_from_a_file_and_never_shown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t\n")
    monkeypatch.delenv("S3_SECRET_ACCESS_KEY", raising=False)
    monkeypatch.setenv("S3_SECRET_ACCESS_KEY_FILE", str(secret))
    settings = load_settings(S3Settings)
    assert settings.s3_secret_access_key is not None
    assert settings.s3_secret_access_key.get_secret_value() == "s3cr3t"
    assert "s3cr3t" not in repr(settings)


def test_unreadable_secret_file_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("S3_SECRET_ACCESS_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(SettingsError, match=r"^S3_SECRET_ACCESS_KEY_FILE=.*cannot read"):
        load_settings(S3Settings)


@pytest.mark.parametrize(
    ("cls", "variable", "value", "accepts"),
    [
        (S3Settings, "S3_ENDPOINT_URL", "minio:9000", "an http(s) URL"),
        (S3Settings, "PHFS_BUCKET", "Bad_Bucket", "an S3 bucket name"),
        (RedisSettings, "REDIS_URL", "http://cache", "a redis://"),
        (ArtifactPolicySettings, "ARTIFACT_RETENTION_SECONDS", "-5", "whole seconds from 0"),
        (ArtifactPolicySettings, "ARTIFACT_RETENTION_SECONDS", "a week", "whole seconds from 0"),
        (ArtifactPolicySettings, "ARTIFACT_LIMIT_SIZE_MB", "0", "megabytes, at least 1"),
        (ArtifactPolicySettings, "ARTIFACT_LIMIT_FILES", "1.5", "number of files, at least 1"),
        (ArtifactPolicySettings, "ARTIFACT_ENABLED", "perhaps", "true or false"),
    ],
)
def test_a_bad_value_gives_one_line_naming_the_variable_and_what_it_accepts(
    monkeypatch: pytest.MonkeyPatch,
    cls: type[S3Settings],
    variable: str,
    value: str,
    accepts: str,
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings(cls)
    message = str(caught.value)
    assert "\n" not in message
    assert f"{variable}={value!r}: expected " in message
    assert accepts in message


def test_a_bad_secret_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3_SECRET_ACCESS_KEY", "")
    monkeypatch.setenv("PHFS_BUCKET", "x")
    with pytest.raises(SettingsError, match=r"PHFS_BUCKET='x'"):
        load_settings(S3Settings)


@pytest.mark.parametrize(
    ("module", "variable", "value"),
    [
        ("artifacts_api", "API_PORT", "http"),
        ("artifacts_api", "API_AUTH_MODE", "basic"),
        ("artifacts_api", "DOWNLOAD_URL_TTL_SECONDS", "0"),
        ("artifacts_controller", "CONTROLLER_RUNTIME", "docker"),
        ("artifacts_controller", "ARTIFACT_DELIVERY", "nfs"),
        ("artifacts_controller", "KUBE_NAMESPACE", "Not_A_Namespace"),
        ("artifacts_janitor", "JANITOR_DAILY_AT", "25:00"),
        ("artifacts_janitor", "JANITOR_ORPHAN_RETENTION_SECONDS", "-1"),
        ("artifacts_janitor", "JANITOR_RESCAN_EVERY", "weekly"),
        ("artifacts_janitor", "JANITOR_RESCAN_EVERY", "30m"),
    ],
)
def test_a_service_stops_at_start_with_one_line(module: str, variable: str, value: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", module],
        env={"PATH": "/usr/bin:/bin", variable: value},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"{variable}={value!r}: expected" in lines[0]
