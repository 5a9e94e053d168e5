"""Instance types: named CPU, memory and GPU presets a job asks for by name (``INSTANCE_TYPES``).

PrimeHub's jobs name an instance type (``cpu-1``, ``gpu-1``...) instead of resources. The api
lists the presets (``me { effectiveGroups { instanceTypes } }``) and refuses a name that is
not offered to the job's group; the controller turns the preset into the job pod's resources.
Both read the same setting (the chart renders one value into both), so the resources a pod
gets come from our side, never from what a user wrote into a PhJob.

``INSTANCE_TYPES`` is a JSON list in PrimeHub's GraphQL names, for example
``[{"name": "cpu-1", "displayName": "CPU 1", "cpuLimit": 1, "memoryLimit": 1}]``. Memory is
in gigabytes (10^9 bytes; PrimeHub writes ``<n>G``), CPU in cores, GPUs as a whole number of
``nvidia.com/gpu``. A preset with ``groups`` is offered to those groups only; without, to
every group (PrimeHub's "global").
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from artifacts_shared.settings import BaseServiceSettings

__all__ = [
    "DEFAULT_INSTANCE_TYPES",
    "GPU_RESOURCE",
    "InstanceType",
    "InstanceTypeSettings",
    "Toleration",
    "UnknownInstanceTypeError",
]

GPU_RESOURCE = "nvidia.com/gpu"


class UnknownInstanceTypeError(LookupError):
    """A job names an instance type that ``INSTANCE_TYPES`` does not define."""


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class Toleration(_Model):
    """A Kubernetes toleration the job pod gets, so it may run on tainted (GPU) nodes."""

    key: str | None = Field(None, min_length=1, max_length=253)
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = Field(None, max_length=63)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None

    def to_k8s(self) -> dict[str, str]:
        return self.model_dump(by_alias=True, exclude_none=True)


class InstanceType(_Model):
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$")
    display_name: str | None = Field(None, min_length=1, max_length=256)
    description: str | None = Field(None, max_length=1024)
    cpu_limit: float | None = Field(None, gt=0, le=1024)
    memory_limit: float | None = Field(None, gt=0, le=65536, description="gigabytes")
    gpu_limit: int = Field(0, ge=0, le=64)
    cpu_request: float | None = Field(None, gt=0, le=1024)
    memory_request: float | None = Field(None, gt=0, le=65536, description="gigabytes")
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    groups: list[str] | None = None
    """The groups it is offered to; None offers it to every group."""

    @model_validator(mode="after")
    def _requests_fit_the_limits(self) -> InstanceType:
        for kind, request, limit in (
            ("cpu", self.cpu_request, self.cpu_limit),
            ("memory", self.memory_request, self.memory_limit),
        ):
            if request is not None and limit is not None and request > limit:
                raise ValueError(f"{self.name}: {kind}Request is above {kind}Limit")
        return self

    @property
    def is_global(self) -> bool:
        return self.groups is None

    def offered_to(self, group_name: str) -> bool:
        return self.groups is None or group_name in self.groups

    def pod_resources(self) -> dict[str, dict[str, str]]:
        """The container's ``resources``; a request left unset defaults to the limit."""
        limits: dict[str, str] = {}
        requests: dict[str, str] = {}
        if self.cpu_limit is not None:
            limits["cpu"] = _number(self.cpu_limit)
        if self.memory_limit is not None:
            limits["memory"] = f"{_number(self.memory_limit)}G"
        if self.gpu_limit:
            limits[GPU_RESOURCE] = str(self.gpu_limit)
        if self.cpu_request is not None:
            requests["cpu"] = _number(self.cpu_request)
        if self.memory_request is not None:
            requests["memory"] = f"{_number(self.memory_request)}G"
        resources: dict[str, dict[str, str]] = {}
        if limits:
            resources["limits"] = limits
        if requests:
            resources["requests"] = requests
        return resources


def _number(value: float) -> str:
    """A Kubernetes quantity's number: ``1`` rather than ``1.0``, ``0.5`` as it is."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


DEFAULT_INSTANCE_TYPES: list[dict[str, Any]] = [
    {"name": "cpu-1", "displayName": "CPU 1", "description": "1 CPU, 1 GB memory",
     "cpuLimit": 1, "memoryLimit": 1},
    {"name": "cpu-2", "displayName": "CPU 2", "description": "2 CPUs, 4 GB memory",
     "cpuLimit": 2, "memoryLimit": 4},
]  # fmt: skip
"""PrimeHub's names for its smallest presets, so its SDK's own examples (``cpu-1``) work."""


class InstanceTypeSettings(BaseServiceSettings):
    instance_types: list[InstanceType] = Field(
        default_factory=lambda: [InstanceType(**preset) for preset in DEFAULT_INSTANCE_TYPES],
        description='a JSON list of presets, e.g. [{"name": "cpu-1", "cpuLimit": 1, '
        '"memoryLimit": 1}] (names unique; cpuLimit and cpuRequest in cores, memoryLimit and '
        "memoryRequest in GB, gpuLimit, nodeSelector, tolerations, groups)",
    )

    @field_validator("instance_types")
    @classmethod
    def _names_are_unique(cls, value: list[InstanceType]) -> list[InstanceType]:
        names = [preset.name for preset in value]
        if len(set(names)) != len(names):
            raise ValueError("instance type names must be unique")
        return value

    def instance_type(self, name: str) -> InstanceType:
        """The preset called ``name``; raises ``UnknownInstanceTypeError`` naming the known ones."""
        found = next((preset for preset in self.instance_types if preset.name == name), None)
        if found is None:
            known = ", ".join(preset.name for preset in self.instance_types) or "none"
            raise UnknownInstanceTypeError(
                f"there is no instance type {name[:80]!r} (INSTANCE_TYPES defines: {known})"
            )
        return found
