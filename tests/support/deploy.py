"""What the deploy tests share: the chart rendered as objects, and the names each service reads.

The deployment files may only set variables that a service's settings class reads (a typo
would otherwise be ignored silently: the classes use ``extra="ignore"``), so the allowed
names come from the classes themselves, never from a list kept by hand.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, get_args

import helm_python
import yaml
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from artifacts_api.settings import ApiSettings
from artifacts_controller.settings import ControllerSettings
from artifacts_janitor.settings import JanitorSettings
from artifacts_shared.phjob import API_GROUP, PLURAL

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm"
RELEASE = "rel"
NAMESPACE = "artifacts"

# ARCHITECTURE section 7, the contract's names.
SECTION_7 = frozenset(
    {
        "S3_ENDPOINT_URL",
        "S3_PUBLIC_ENDPOINT_URL",
        "S3_REGION",
        "S3_ACCESS_KEY_ID",
        "S3_SECRET_ACCESS_KEY",
        "PHFS_BUCKET",
        "REDIS_URL",
        "ARTIFACT_ENABLED",
        "ARTIFACT_RETENTION_SECONDS",
        "ARTIFACT_LIMIT_SIZE_MB",
        "ARTIFACT_LIMIT_FILES",
        "API_HOST",
        "API_PORT",
        "API_AUTH_MODE",
        "DOWNLOAD_URL_TTL_SECONDS",
        "JANITOR_DAILY_AT",
        "JANITOR_ORPHAN_RETENTION_SECONDS",
        "JANITOR_RESCAN_EVERY",
        "KUBE_NAMESPACE",
        "CONTROLLER_RUNTIME",
        "ARTIFACT_DELIVERY",
    }
)

GrantTable = Mapping[tuple[str, str], frozenset[str]]
"""(API group, resource or resource/subresource) -> the verbs a service may use on it."""

# What each service's Role must grant: exactly the requests it makes (tests/deploy checks the
# rendered Roles against it, tests/cluster the requests a real API server saw).
GRANTS: Mapping[str, GrantTable] = {
    "controller": {
        # patch: only its finalizer (orphans.py), put on and taken off.
        (API_GROUP, PLURAL): frozenset({"get", "list", "watch", "patch"}),
        (API_GROUP, f"{PLURAL}/status"): frozenset({"patch"}),
        ("", "pods"): frozenset({"get", "list", "watch", "create", "delete"}),
        # The job container's log, delivered with the artifacts when the job ends.
        ("", "pods/log"): frozenset({"get"}),
        ("", "configmaps"): frozenset({"get", "create", "patch"}),
        ("coordination.k8s.io", "leases"): frozenset({"get", "create", "patch"}),
    },
    "api": {
        (API_GROUP, PLURAL): frozenset({"get", "list", "watch", "create", "patch"}),
        # A running job's log (GET /jobs/<id>/logs, PhJob.logs); never the pods themselves.
        ("", "pods/log"): frozenset({"get"}),
    },
}

SERVICE_SETTINGS: Mapping[str, type[BaseSettings]] = {
    "api": ApiSettings,
    "controller": ControllerSettings,
    "janitor": JanitorSettings,
}


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or SecretStr in get_args(annotation)


def settings_names(settings: type[BaseSettings]) -> frozenset[str]:
    """Every variable the class reads: its fields upper-cased, and ``<NAME>_FILE`` for secrets."""
    names: set[str] = set()
    for field_name, field in settings.model_fields.items():
        names.add(field_name.upper())
        if _is_secret(field.annotation):
            names.add(f"{field_name.upper()}_FILE")
    return frozenset(names)


def allowed_names(service: str) -> frozenset[str]:
    return settings_names(SERVICE_SETTINGS[service])


def render_chart(
    values: Mapping[str, Any] | None = None, *, namespace: str = NAMESPACE
) -> list[dict[str, Any]]:
    """The chart's objects for ``values``, as an install would create them (CRDs aside)."""
    with helm_python.Chart.load(CHART) as chart:
        manifests = chart.render(dict(values or {}), name=RELEASE, namespace=namespace)
    return [
        document
        for path, text in sorted(manifests.items())
        if not path.endswith("NOTES.txt")
        for document in yaml.safe_load_all(text)
        if document
    ]


def render_notes(values: Mapping[str, Any] | None = None) -> str:
    with helm_python.Chart.load(CHART) as chart:
        manifests = chart.render(dict(values or {}), name=RELEASE, namespace=NAMESPACE)
    (notes,) = (text for path, text in manifests.items() if path.endswith("NOTES.txt"))
    return notes


def chart_crds() -> list[dict[str, Any]]:
    with helm_python.Chart.load(CHART) as chart:
        files = chart.crds
    return [document for crd in files for document in yaml.safe_load_all(crd["data"]) if document]


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def component(obj: Mapping[str, Any]) -> str:
    return str(obj["metadata"]["labels"]["app.kubernetes.io/component"])


def deployments(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The Deployments by component: api, controller, janitor."""
    return {component(obj): obj for obj in of_kind(objects, "Deployment")}


def container(deployment: Mapping[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(only)


def env_of(deployment: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The container's variables by name (each entry has ``value`` or ``valueFrom``)."""
    entries = container(deployment).get("env", [])
    names = [entry["name"] for entry in entries]
    assert len(names) == len(set(names)), f"a variable is set twice: {names}"
    return {entry["name"]: entry for entry in entries}


def secret_data(objects: list[dict[str, Any]], name: str, namespace: str) -> dict[str, str]:
    """A rendered Secret's data, decoded."""
    for obj in of_kind(objects, "Secret"):
        if obj["metadata"]["name"] == name and obj["metadata"]["namespace"] == namespace:
            return {k: base64.b64decode(v).decode() for k, v in obj.get("data", {}).items()}
    raise AssertionError(f"no Secret {namespace}/{name} rendered")


def schema_settings(
    schema: Mapping[str, Any], path: tuple[str, ...] = ()
) -> Iterator[tuple[str, tuple[str, ...]]]:
    """``(VARIABLE, values path)`` for every schema property whose description names one.

    The convention of values.schema.json: a value that becomes a setting starts its
    description with the variable's name and a colon.
    """
    for key, prop in schema.get("properties", {}).items():
        description = str(prop.get("description", ""))
        head, colon, _ = description.partition(":")
        if colon and head.isupper() and " " not in head:
            yield head, (*path, key)
        yield from schema_settings(prop, (*path, key))
