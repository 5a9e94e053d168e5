"""The Helm chart, rendered offline with helm-python-sdk and checked object by object.

Every object of the default install and of both delivery modes is validated against the
Kubernetes schemas bundled by kubernetes-validate (strict: an unknown field is an error), and
the facts a cluster operator relies on are asserted: probes on the ports the services listen
on, non-root read-only pods, and variables that the services' settings classes really read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

import helm_python
import kubernetes_validate
import pytest
from support.deploy import (
    CHART,
    NAMESPACE,
    RELEASE,
    SECTION_7,
    SERVICE_SETTINGS,
    allowed_names,
    chart_crds,
    container,
    deployments,
    env_of,
    of_kind,
    render_chart,
    render_notes,
    schema_settings,
    secret_data,
)

from artifacts_shared.instance_types import InstanceTypeSettings

# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest release
# whose schemas kubernetes-validate bundles: every object must be valid for both.
KUBE_VERSIONS = ("1.30.0", "1.37.0")

SECRET = f"{RELEASE}-job-artifacts-credentials"
UPLOADER_SECRET = f"{RELEASE}-job-artifacts-uploader"

# A complete install of each delivery mode, with every credential set.
CREDENTIALS: dict[str, Any] = {
    "s3": {
        "endpointUrl": "http://minio.storage.svc:9000",
        "publicEndpointUrl": "https://s3.example.com",
        "accessKeyId": "artifacts",
        "secretAccessKey": "s3cr3t-key",
    },
    "redis": {"url": "redis://redis.storage.svc:6379/2"},
    "api": {
        "auth": {
            "oidc": {"issuer": "https://id.example.com/realms/platform", "audience": "artifacts"}
        },
    },
}
VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "phfs": {**CREDENTIALS, "artifact": {"delivery": "phfs", "phfsVolumeClaim": "primehub-store"}},
    "s3": {**CREDENTIALS, "artifact": {"delivery": "s3"}},
}


@cache
def _rendered(value_set: str) -> list[dict[str, Any]]:
    return render_chart(VALUE_SETS[value_set])


def rendered(value_set: str) -> list[dict[str, Any]]:
    return _rendered(value_set)


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return schema


def _set(values: dict[str, Any], path: tuple[str, ...], value: object) -> None:
    for key in path[:-1]:
        values = values.setdefault(key, {})
    values[path[-1]] = value


# --- helm lint and Kubernetes schemas -----------------------------------------------------


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_chart_lints_clean(value_set: str) -> None:
    report = helm_python.lint(
        CHART, VALUE_SETS[value_set], strict=True, kube_version=f"v{KUBE_VERSIONS[0]}"
    )
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == []
    assert problems == []


def _validate(obj: Mapping[str, Any], version: str) -> None:
    if obj["kind"] == "PhJob":
        pytest.skip("PhJob objects are custom resources: kubernetes-validate has no schema")
    kubernetes_validate.validate(dict(obj), version, strict=True)


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_rendered_object_is_valid_kubernetes(value_set: str, version: str) -> None:
    objects = rendered(value_set)
    assert objects, "the chart rendered nothing"
    for obj in objects:
        try:
            _validate(obj, version)
        except kubernetes_validate.ValidationError as err:
            name = f"{obj['kind']}/{obj['metadata']['name']}"
            pytest.fail(f"{name} is invalid for Kubernetes {version}: {err.message} at {err.path}")


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_the_phjob_crd_ships_with_the_chart_and_is_valid(version: str) -> None:
    crds = chart_crds()
    assert [crd["metadata"]["name"] for crd in crds] == ["phjobs.primehub.io"]
    for crd in crds:
        _validate(crd, version)


def test_validation_rejects_a_misspelt_field() -> None:
    # The check above can fail: strict schemas reject fields Kubernetes does not know.
    deployment = dict(deployments(rendered("default"))["api"])
    deployment["spec"] = {**deployment["spec"], "replica": 2}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSIONS[-1], strict=True)


# --- values.schema.json ---------------------------------------------------------------------


def test_values_schema_has_a_value_for_every_section_7_setting() -> None:
    described = {name for name, _ in schema_settings(_schema())}
    assert SECTION_7 - described == set()


def test_values_schema_names_only_variables_the_services_read() -> None:
    readable = {name for service in SERVICE_SETTINGS for name in allowed_names(service)}
    described = {name for name, _ in schema_settings(_schema())}
    assert described - readable == set()


@pytest.mark.parametrize(
    "bad",
    [
        {"api": {"auth": {"mode": "none"}}},
        {"artifact": {"delivery": "nfs"}},
        {"artifact": {"retentionSeconds": -1}},
        {"artifact": {"limitFiles": 0}},
        {"s3": {"endpointUrl": "minio:9000"}},
        {"s3": {"bucket": "Not_A_Bucket"}},
        {"redis": {"url": "localhost:6379"}},
        {"janitor": {"dailyAt": "24:00"}},
        {"janitor": {"rescanEvery": "weekly"}},
        {"api": {"port": 70000}},
        {"api": {"auth": {"jwtSecret": "too-short"}}},
        {"controller": {"runtime": "local"}},
        {"kubeNamespace": "Not A Namespace"},
        {"apiReplicas": 3},
    ],
    ids=lambda bad: json.dumps(bad, separators=(",", ":")),
)
def test_values_schema_rejects(bad: dict[str, Any]) -> None:
    with helm_python.Chart.load(CHART) as chart, pytest.raises(helm_python.HelmError):
        chart.validate_schema(bad)


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_values_schema_accepts_the_documented_value_sets(value_set: str) -> None:
    with helm_python.Chart.load(CHART) as chart:
        chart.validate_schema(VALUE_SETS[value_set])


# --- settings reach the services --------------------------------------------------------------

# A distinct, valid value for every section-7 setting, keyed by variable.
DISTINCT: dict[str, object] = {
    "S3_ENDPOINT_URL": "http://s3.internal:9000",
    "S3_PUBLIC_ENDPOINT_URL": "https://s3.public.example",
    "S3_REGION": "eu-west-3",
    "S3_ACCESS_KEY_ID": "key-id-1",
    "S3_SECRET_ACCESS_KEY": "secret-key-1",
    "PHFS_BUCKET": "phfs-test",
    "REDIS_URL": "redis://queue.internal:6380/3",
    "ARTIFACT_ENABLED": False,
    "ARTIFACT_RETENTION_SECONDS": 86400,
    "ARTIFACT_LIMIT_SIZE_MB": 250,
    "ARTIFACT_LIMIT_FILES": 5000,
    "API_HOST": "::",
    "API_PORT": 8088,
    "API_AUTH_MODE": "hs256",
    "DOWNLOAD_URL_TTL_SECONDS": 120,
    "JANITOR_DAILY_AT": "04:30",
    "JANITOR_ORPHAN_RETENTION_SECONDS": 3600,
    "JANITOR_RESCAN_EVERY": "3d",
    "KUBE_NAMESPACE": "jobs",
    "CONTROLLER_RUNTIME": "kubernetes",
    "ARTIFACT_DELIVERY": "s3",
}


def _env_text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def test_every_section_7_value_reaches_the_services_that_read_it() -> None:
    paths = dict(schema_settings(_schema()))
    values: dict[str, Any] = {"api": {"auth": {"jwtSecret": "j" * 32}}}
    for name in SECTION_7:
        _set(values, paths[name], DISTINCT[name])
    objects = render_chart(values)
    found: dict[str, list[str]] = {}
    for service, deployment in deployments(objects).items():
        env = env_of(deployment)
        for name, entry in env.items():
            if "value" in entry:
                found.setdefault(name, []).append(entry["value"])
        if "S3_ACCESS_KEY_ID" in env:
            ref = env["S3_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]
            data = secret_data(objects, ref["name"], NAMESPACE)
            found.setdefault("S3_ACCESS_KEY_ID", []).append(data[ref["key"]])
            found.setdefault("S3_SECRET_ACCESS_KEY", []).append(data["S3_SECRET_ACCESS_KEY"])
            assert _mounted_file(deployment, env["S3_SECRET_ACCESS_KEY_FILE"]["value"]), service
    missing = {
        name: _env_text(DISTINCT[name])
        for name in SECTION_7
        if _env_text(DISTINCT[name]) not in found.get(name, [])
    }
    assert missing == {}


def _mounted_file(deployment: Mapping[str, Any], path: str) -> bool:
    """Whether ``path`` is a key of the credentials Secret mounted in the container."""
    pod = deployment["spec"]["template"]["spec"]
    folder, _, key = path.rpartition("/")
    mounts = {m["name"] for m in container(deployment)["volumeMounts"] if m["mountPath"] == folder}
    return any(
        volume["name"] in mounts
        and key in {item["path"] for item in volume["secret"].get("items", [])}
        for volume in pod["volumes"]
        if "secret" in volume
    )


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_deployments_set_only_variables_their_service_reads(value_set: str) -> None:
    for service, deployment in deployments(rendered(value_set)).items():
        unknown = set(env_of(deployment)) - allowed_names(service)
        assert unknown == set(), f"{service} does not read {sorted(unknown)}"


def test_a_misspelt_variable_is_caught() -> None:
    # The check above can fail: extraEnv lets a user add any name, and a typo is not read.
    objects = render_chart({"janitor": {"extraEnv": [{"name": "JANITOR_DAILY", "value": "1"}]}})
    names = set(env_of(deployments(objects)["janitor"]))
    assert names - allowed_names("janitor") == {"JANITOR_DAILY"}


def test_instance_types_reach_the_api_and_the_controller_alike() -> None:
    presets = [
        {"name": "gpu-1", "cpuLimit": 4, "memoryLimit": 16, "gpuLimit": 1, "groups": ["ml"],
         "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}]},
    ]  # fmt: skip
    found = {
        service: env_of(deployment)["INSTANCE_TYPES"]["value"]
        for service, deployment in deployments(
            render_chart({"api": {"auth": {"jwtSecret": "j" * 32}}, "instanceTypes": presets})
        ).items()
        if service in ("api", "controller")
    }
    defaults = env_of(deployments(rendered("phfs"))["api"])["INSTANCE_TYPES"]["value"]

    assert found["api"] == found["controller"]
    (parsed,) = InstanceTypeSettings(instance_types=json.loads(found["api"])).instance_types
    assert parsed.pod_resources()["limits"] == {"cpu": "4", "memory": "16G", "nvidia.com/gpu": "1"}
    default_presets = InstanceTypeSettings(instance_types=json.loads(defaults)).instance_types
    assert [preset.name for preset in default_presets] == ["cpu-1", "cpu-2"]


def test_phfs_mode_mounts_the_claim_and_gives_input_init_containers_our_image_and_keys() -> None:
    controller = deployments(rendered("phfs"))["controller"]
    env = env_of(controller)
    assert env["ARTIFACT_DELIVERY"]["value"] == "phfs"
    assert env["PHFS_VOLUME_CLAIM"]["value"] == "primehub-store"
    # No uploader in phfs mode, but a job's input artifacts come from the bucket either way.
    assert env["UPLOADER_IMAGE"]["value"] == container(controller)["image"]
    assert env["UPLOADER_S3_SECRET"]["value"] == UPLOADER_SECRET


def test_s3_mode_gives_uploaders_the_controller_image_and_the_credentials() -> None:
    objects = rendered("s3")
    controller = deployments(objects)["controller"]
    env = env_of(controller)
    assert env["ARTIFACT_DELIVERY"]["value"] == "s3"
    assert env["UPLOADER_IMAGE"]["value"] == container(controller)["image"]
    assert env["UPLOADER_S3_SECRET"]["value"] == UPLOADER_SECRET
    assert "PHFS_VOLUME_CLAIM" not in env


def test_uploaders_get_a_secret_with_the_s3_keys_only() -> None:
    # Uploader sidecars load every key of their Secret into the job pod: none of the api's.
    uploader = {"S3_ACCESS_KEY_ID": "artifacts", "S3_SECRET_ACCESS_KEY": "s3cr3t-key"}
    assert secret_data(rendered("s3"), UPLOADER_SECRET, NAMESPACE) == uploader
    objects = render_chart({**VALUE_SETS["s3"], "kubeNamespace": "jobs"})
    assert secret_data(objects, UPLOADER_SECRET, "jobs") == uploader
    assert UPLOADER_SECRET not in {
        s["metadata"]["name"]
        for s in of_kind(objects, "Secret")
        if s["metadata"]["namespace"] != "jobs"
    }
    for name in ("api", "controller"):
        assert env_of(deployments(objects)[name])["KUBE_NAMESPACE"]["value"] == "jobs"
    # phfs mode: the same S3-keys-only Secret, for the input artifacts' init containers.
    assert secret_data(rendered("phfs"), UPLOADER_SECRET, NAMESPACE) == uploader
    assert {s["metadata"]["name"] for s in of_kind(rendered("phfs"), "Secret")} == {
        SECRET,
        UPLOADER_SECRET,
    }


def test_secrets_reach_the_services_as_files_never_as_values() -> None:
    values = {**CREDENTIALS, "api": {"auth": {"mode": "hs256", "jwtSecret": "j" * 32}}}
    objects = render_chart(values)
    for service, deployment in deployments(objects).items():
        env = env_of(deployment)
        plain = {entry.get("value") for entry in env.values()}
        assert not {"s3cr3t-key", "j" * 32} & plain, service
        for name, entry in env.items():
            if name.endswith("_FILE"):
                assert _mounted_file(deployment, entry["value"]), f"{service}: {name}"
    api = env_of(deployments(objects)["api"])
    assert {"API_JWT_SECRET_FILE", "API_LINK_SIGNING_KEY_FILE"} <= set(api)
    data = secret_data(objects, SECRET, NAMESPACE)
    assert data["API_JWT_SECRET"] == "j" * 32
    assert len(data["API_LINK_SIGNING_KEY"]) >= 32


def test_hs256_mode_without_a_secret_fails_to_render() -> None:
    with pytest.raises(helm_python.HelmError, match=r"api\.auth\.jwtSecret is required"):
        render_chart({"api": {"auth": {"mode": "hs256"}}})


def test_an_existing_secret_replaces_the_charts_own() -> None:
    values = {
        "existingSecret": "my-credentials",
        "artifact": {"delivery": "s3", "uploaderExistingSecret": "my-uploader-keys"},
    }
    objects = render_chart(values)
    assert of_kind(objects, "Secret") == []
    for deployment in deployments(objects).values():
        env = env_of(deployment)
        assert env["S3_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "my-credentials"
        volumes = deployment["spec"]["template"]["spec"]["volumes"]
        assert {v["secret"]["secretName"] for v in volumes if "secret" in v} == {"my-credentials"}
    controller = env_of(deployments(objects)["controller"])
    assert controller["UPLOADER_S3_SECRET"]["value"] == "my-uploader-keys"


def test_s3_mode_with_an_existing_secret_needs_the_uploaders_own() -> None:
    with pytest.raises(helm_python.HelmError, match=r"artifact\.uploaderExistingSecret"):
        render_chart({"existingSecret": "my-credentials", "artifact": {"delivery": "s3"}})


# --- probes, ports, security -----------------------------------------------------------------


def _port(deployment: Mapping[str, Any], name: str) -> int:
    (port,) = (p["containerPort"] for p in container(deployment)["ports"] if p["name"] == name)
    return int(port)


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_probes_ask_the_services_where_they_listen(value_set: str) -> None:
    apps = deployments(rendered(value_set))
    assert set(apps) == {"api", "controller", "janitor"}

    api = container(apps["api"])
    assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert api["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert _port(apps["api"], "http") == int(env_of(apps["api"])["API_PORT"]["value"])

    controller = container(apps["controller"])
    assert controller["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "probes"}
    assert controller["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "probes"}
    probe_port = env_of(apps["controller"])["CONTROLLER_PROBE_PORT"]["value"]
    assert _port(apps["controller"], "probes") == int(probe_port)

    janitor = container(apps["janitor"])
    assert janitor["livenessProbe"]["exec"]["command"] == [
        "python",
        "-m",
        "artifacts_janitor",
        "--check",
    ]
    metrics_port = env_of(apps["janitor"])["JANITOR_METRICS_PORT"]["value"]
    assert _port(apps["janitor"], "metrics") == int(metrics_port)


def test_api_port_moves_the_container_port_and_the_probes() -> None:
    api = deployments(render_chart({"api": {"port": 9999}}))["api"]
    assert _port(api, "http") == 9999
    assert env_of(api)["API_PORT"]["value"] == "9999"


def test_the_service_and_ingress_reach_the_api_port() -> None:
    objects = render_chart(
        {"api": {"ingress": {"enabled": True, "host": "a.example.com", "tlsSecretName": "tls"}}}
    )
    (service,) = of_kind(objects, "Service")
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == "http"
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "api"
    (ingress,) = of_kind(objects, "Ingress")
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "a.example.com"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": service["metadata"]["name"], "port": {"name": "http"}}
    assert ingress["spec"]["tls"] == [{"hosts": ["a.example.com"], "secretName": "tls"}]
    assert of_kind(rendered("default"), "Ingress") == []


@pytest.mark.parametrize(
    ("api", "public_url"),
    [
        ({}, None),
        ({"ingress": {"enabled": True, "host": "a.example.com"}}, "http://a.example.com"),
        (
            {"ingress": {"enabled": True, "host": "a.example.com", "tlsSecretName": "tls"}},
            "https://a.example.com",
        ),
        (
            {"ingress": {"enabled": True, "host": "a.example.com", "path": "/artifacts/"}},
            "http://a.example.com/artifacts",
        ),
        (
            {"publicUrl": "https://logs.example.com", "ingress": {"enabled": True}},
            "https://logs.example.com",
        ),
    ],
)
def test_log_endpoints_point_at_the_public_url_or_the_ingress(
    api: dict[str, Any], public_url: str | None
) -> None:
    env = env_of(deployments(render_chart({"api": api}))["api"])
    assert env.get("API_PUBLIC_URL", {}).get("value") == public_url
    assert env["API_LOG_MAX_STREAMS"]["value"] == "100"


def _pods(value_set: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for service, deployment in deployments(rendered(value_set)).items():
        yield service, deployment["spec"]["template"]["spec"]


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_pods_run_non_root_read_only_without_capabilities(value_set: str) -> None:
    for service, pod in _pods(value_set):
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True, service
        assert security["runAsUser"] != 0, service
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}, service
        for box in pod["containers"]:
            sc = box["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, service
            assert sc["readOnlyRootFilesystem"] is True, service
            assert sc["capabilities"] == {"drop": ["ALL"]}, service
            assert box["resources"]["requests"]["memory"], service
            assert box["resources"]["limits"]["memory"], service
            # A read-only root needs a writable /tmp for Python's temporary files.
            assert "/tmp" in {m["mountPath"] for m in box["volumeMounts"]}, service


def test_each_service_has_its_own_account_and_only_the_janitor_has_no_token() -> None:
    objects = rendered("default")
    accounts = {sa["metadata"]["name"]: sa for sa in of_kind(objects, "ServiceAccount")}
    used = {s: pod["serviceAccountName"] for s, pod in _pods("default")}
    assert len(set(used.values())) == 3
    assert set(used.values()) == set(accounts)
    assert accounts[used["janitor"]]["automountServiceAccountToken"] is False
    assert dict(_pods("default"))["janitor"]["automountServiceAccountToken"] is False
    for service in ("api", "controller"):
        assert accounts[used[service]].get("automountServiceAccountToken", True) is True


def test_replicas_scale_and_the_controller_relies_on_leader_election() -> None:
    objects = render_chart({"api": {"replicas": 5}, "janitor": {"replicas": 3}})
    apps = deployments(objects)
    assert apps["api"]["spec"]["replicas"] == 5
    assert apps["janitor"]["spec"]["replicas"] == 3
    assert deployments(rendered("default"))["controller"]["spec"]["replicas"] == 2


def test_credential_changes_roll_the_pods() -> None:
    def checksum(values: dict[str, Any]) -> str:
        api = deployments(render_chart(values))["api"]
        return str(api["spec"]["template"]["metadata"]["annotations"]["checksum/credentials"])

    assert checksum(VALUE_SETS["s3"]) == checksum(VALUE_SETS["s3"])
    rotated = {**VALUE_SETS["s3"], "s3": {**CREDENTIALS["s3"], "secretAccessKey": "rotated"}}
    assert checksum(VALUE_SETS["s3"]) != checksum(rotated)


def test_notes_name_the_values_an_install_still_needs() -> None:
    notes = render_notes()
    for value in ("s3.endpointUrl", "s3.accessKeyId", "api.auth.oidc.issuer"):
        assert value in notes
    complete = render_notes(VALUE_SETS["phfs"])
    assert "Check these values" not in complete
    assert "port-forward svc/rel-job-artifacts-api" in complete
