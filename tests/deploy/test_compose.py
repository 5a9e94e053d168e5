"""docker-compose.yml, as Debian's ``docker-compose config`` resolves it (no engine needed).

The resolved file is what ``docker-compose up`` would run, so the checks read it rather than
the source: every variable of our three services is one their settings class reads, each
long-running service has a health check, start-up order waits on health and on the bucket,
and the download links point at MinIO's published port.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from support.deploy import ROOT, allowed_names

DOCKER_COMPOSE = shutil.which("docker-compose")
pytestmark = pytest.mark.skipif(
    DOCKER_COMPOSE is None,
    reason="no docker-compose: apt-get install --no-install-recommends docker-compose",
)

# The variables a user must export; the file refuses to resolve without them.
REQUIRED = {
    "S3_ACCESS_KEY_ID": "artifacts",
    "S3_SECRET_ACCESS_KEY": "compose-secret-key",
    "API_JWT_SECRET": "j" * 32,
}
OURS = ("api", "controller", "janitor")


def compose_config(extra_env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    assert DOCKER_COMPOSE is not None
    # Only PATH from the caller: a variable set on this machine must not leak into the file.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **extra_env}
    return subprocess.run(
        [DOCKER_COMPOSE, "--project-directory", str(ROOT), "config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@cache
def _resolved() -> dict[str, Any]:
    result = compose_config(REQUIRED)
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def services() -> dict[str, dict[str, Any]]:
    return dict(_resolved()["services"])


def environment(service: str) -> dict[str, str]:
    env = services()[service].get("environment", {})
    assert isinstance(env, dict), f"{service}: environment is not a mapping"
    return {str(k): str(v) for k, v in env.items()}


def test_compose_file_is_valid() -> None:
    assert set(services()) == {"minio", "minio-init", "redis", *OURS}


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_compose_refuses_to_start_without_a_secret(missing: str) -> None:
    env = {k: v for k, v in REQUIRED.items() if k != missing}
    result = compose_config(env)
    assert result.returncode != 0
    assert f"set {missing}" in result.stderr


@pytest.mark.parametrize("service", OURS)
def test_services_set_only_variables_their_settings_read(service: str) -> None:
    unknown = set(environment(service)) - allowed_names(service)
    assert unknown == set(), f"{service} does not read {sorted(unknown)}"


def test_a_misspelt_variable_is_caught() -> None:
    # The check above can fail: a name no settings class reads is reported.
    env = {**environment("api"), "S3_ENDPOINT": "http://minio:9000"}
    assert set(env) - allowed_names("api") == {"S3_ENDPOINT"}


def test_our_services_build_from_the_repository_root() -> None:
    for service in OURS:
        build = services()[service]["build"]
        assert os.path.realpath(build["context"]) == os.path.realpath(ROOT), service
        assert build["dockerfile"] == f"services/{service}/Dockerfile"
        assert (ROOT / build["dockerfile"]).is_file()


def test_long_running_services_have_health_checks() -> None:
    for name, service in services().items():
        if name == "minio-init":
            assert service["restart"] == "no"
            continue
        check = service.get("healthcheck", {})
        assert check.get("test"), f"{name} has no health check"
        assert not check.get("disable", False), name


def _waits_for(service: str) -> dict[str, str]:
    depends = services()[service].get("depends_on", {})
    return {name: spec["condition"] for name, spec in depends.items()}


def test_start_up_waits_for_health_and_for_the_bucket() -> None:
    assert _waits_for("minio-init") == {"minio": "service_healthy"}
    bucket = {"minio-init": "service_completed_successfully"}
    queue = {"redis": "service_healthy"}
    assert _waits_for("api") == {**bucket, **queue}
    assert _waits_for("janitor") == {**bucket, **queue}
    assert _waits_for("controller") == bucket


def test_the_bucket_created_is_the_bucket_the_services_use() -> None:
    init = environment("minio-init")
    for service in OURS:
        assert environment(service)["PHFS_BUCKET"] == init["PHFS_BUCKET"], service
        assert environment(service)["S3_ENDPOINT_URL"] == "http://minio:9000", service
    assert "mb --ignore-existing" in " ".join(services()["minio-init"]["command"])


def test_download_links_point_at_minios_published_port() -> None:
    public = urlsplit(environment("api")["S3_PUBLIC_ENDPOINT_URL"])
    published = {
        (str(port.get("published")), str(port.get("target")))
        for port in _ports(services()["minio"])
    }
    assert (str(public.port), "9000") in published
    assert public.hostname in {"localhost", "127.0.0.1"}


def _ports(service: Mapping[str, Any]) -> list[dict[str, Any]]:
    ports: list[dict[str, Any]] = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            ports.append(port)
        else:  # docker-compose 1.x prints the short form: [host_ip:]published:target[/proto]
            parts = str(port).split("/")[0].split(":")
            ports.append({"published": parts[-2], "target": parts[-1]})
    return ports


def test_the_controller_runs_jobs_locally_in_s3_mode_sharing_the_job_store() -> None:
    controller, api = environment("controller"), environment("api")
    assert controller["CONTROLLER_RUNTIME"] == "local"
    assert controller["ARTIFACT_DELIVERY"] == "s3"
    assert api["CONTROLLER_RUNTIME"] == "local"
    jobs = controller["LOCAL_JOBS_DIR"]
    assert api["LOCAL_JOBS_DIR"] == jobs

    def volume_at(service: str) -> str:
        (volume,) = (
            str(v).split(":")[0]
            for v in services()[service]["volumes"]
            if str(v).split(":")[1] == jobs
        )
        return volume

    assert volume_at("api") == volume_at("controller")


def test_the_api_reads_running_jobs_logs_from_the_controllers_runtime_folder() -> None:
    controller, api = environment("controller"), environment("api")
    runtime = controller["LOCAL_RUNTIME_DIR"]
    assert api["LOCAL_RUNTIME_DIR"] == runtime

    def mount_at(service: str) -> tuple[str, str]:
        """(volume, mode) of the mount at the runtime folder; compose v1 writes strings."""
        (mount,) = (
            str(v).split(":")
            for v in services()[service]["volumes"]
            if str(v).split(":")[1] == runtime
        )
        return mount[0], mount[2] if len(mount) > 2 else "rw"

    assert mount_at("api")[0] == mount_at("controller")[0]
    assert mount_at("api")[1] == "ro"  # the api never writes there
    assert mount_at("controller")[1] == "rw"


def test_the_api_authenticates_off_loopback() -> None:
    api = environment("api")
    assert api["API_HOST"] == "0.0.0.0"
    assert api["API_AUTH_MODE"] == "hs256"
    assert api["API_JWT_SECRET"] == REQUIRED["API_JWT_SECRET"]


def test_published_ports_bind_to_loopback_by_default() -> None:
    for name, service in services().items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"
