"""The PhJob CRD and the shared pydantic model describe the same documents.

A real API server prunes fields its schema does not declare, so a field the model writes but
the CRD lacks would silently vanish on a cluster (and never in the emulator): compare them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel
from support.kube import phjob_crd

from artifacts_shared.phjob import (
    API_GROUP,
    API_VERSION,
    KIND,
    PLURAL,
    ArtifactOverrides,
    PhJob,
    PhJobMetadata,
    PhJobPhase,
    PhJobSpec,
    PhJobStatus,
)


def _version() -> dict[str, Any]:
    crd = phjob_crd()
    (version,) = crd["spec"]["versions"]
    return dict(version)


def _aliases(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def test_the_crd_names_the_resource_the_model_uses() -> None:
    crd = phjob_crd()
    assert crd["metadata"]["name"] == f"{PLURAL}.{API_GROUP}"
    assert crd["spec"]["group"] == API_GROUP
    assert crd["spec"]["names"]["kind"] == KIND and crd["spec"]["names"]["plural"] == PLURAL
    assert crd["spec"]["scope"] == "Namespaced"
    version = _version()
    assert version["name"] == API_VERSION and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    columns = {column["name"]: column["jsonPath"] for column in version["additionalPrinterColumns"]}
    assert columns["Phase"] == ".status.phase" and columns["Group"] == ".spec.groupName"


@pytest.mark.parametrize(
    ("path", "model"),
    [(("spec",), PhJobSpec), (("status",), PhJobStatus), (("spec", "artifact"), ArtifactOverrides)],
)
def test_every_model_field_is_in_the_schema_and_back(
    path: tuple[str, ...], model: type[BaseModel]
) -> None:
    schema = _version()["schema"]["openAPIV3Schema"]
    for step in path:
        schema = schema["properties"][step]
    assert set(schema["properties"]) == _aliases(model)


def test_the_schema_phases_are_the_model_phases() -> None:
    status = _version()["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status["properties"]["phase"]["enum"] == [phase.value for phase in PhJobPhase]


def test_a_full_document_from_the_model_is_valid_and_a_broken_one_is_not() -> None:
    schema = _version()["schema"]["openAPIV3Schema"]
    job = PhJob(
        metadata=PhJobMetadata(name="job-202601010000-abcdef", namespace="hub"),
        spec=PhJobSpec(
            display_name="seed",
            user_name="alice",
            group_name="ML_Team",
            image="python:3.11",
            command="echo hi",
            active_deadline_seconds=60,
            cancel=True,
            artifact=ArtifactOverrides(
                enabled=True, retention_seconds=0, limit_size_mb=5, limit_files=10
            ),
        ),
        status=PhJobStatus(
            phase=PhJobPhase.FAILED,
            pod_name="job-202601010000-abcdef",
            start_time=datetime(2026, 1, 1, tzinfo=UTC),
            finish_time=datetime(2026, 1, 1, 0, 1, tzinfo=UTC),
            reason="Error",
            message="the command exited with code 1",
        ),
    )
    jsonschema.validate(job.to_k8s(), schema)

    broken = job.to_k8s()
    del broken["spec"]["command"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
    broken = job.to_k8s()
    broken["status"]["phase"] = "Exploded"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
