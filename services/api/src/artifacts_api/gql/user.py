"""Bindables of PrimeHub's ``User``, ``Group`` and ``InstanceType``: what its SDK asks of ``me``.

There is no user or group store here: the caller, its groups and its admin role come from its
token (``Identity``), so a user's id is its name and a group's id is the group's name. The
instance types are the ``INSTANCE_TYPES`` presets each group is offered.
"""

from __future__ import annotations

from dataclasses import dataclass

from ariadne import ObjectType, ScalarType

from artifacts_api.gql.context import Info
from artifacts_api.identity import Identity
from artifacts_shared.instance_types import GPU_RESOURCE, InstanceType, Toleration

__all__ = ["Group", "bindables", "missing_instance_type"]

user = ObjectType("User")
group = ObjectType("Group")
instance_type = ObjectType("InstanceType")
toleration = ObjectType("Toleration")
json_scalar = ScalarType("JSON")


@dataclass(frozen=True, slots=True)
class Group:
    name: str


@user.field("id")
@user.field("username")
def resolve_user_name(identity: Identity, info: Info) -> str:
    return identity.name


@user.field("isAdmin")
def resolve_is_admin(identity: Identity, info: Info) -> bool:
    return identity.admin


@user.field("groups")
@user.field("effectiveGroups")
def resolve_groups(identity: Identity, info: Info) -> list[Group]:
    return [Group(name) for name in sorted(identity.groups)]


@group.field("id")
@group.field("displayName")
def resolve_group_name(found: Group, info: Info) -> str:
    return found.name


@group.field("instanceTypes")
def resolve_instance_types(found: Group, info: Info) -> list[InstanceType]:
    presets = info.context.services.settings.instance_types
    return [preset for preset in presets if preset.offered_to(found.name)]


def missing_instance_type(name: str) -> InstanceType:
    """A job's instance type that ``INSTANCE_TYPES`` no longer defines: its name, nothing else.

    PrimeHub answers the same way (the name and no resources) rather than failing the job.
    """
    return InstanceType.model_construct(name=name, groups=[])


@instance_type.field("id")
def resolve_instance_type_id(preset: InstanceType, info: Info) -> str:
    return preset.name


@instance_type.field("displayName")
def resolve_instance_type_display_name(preset: InstanceType, info: Info) -> str:
    return preset.display_name or preset.name  # PrimeHub's default


@instance_type.field("gpuResourceName")
def resolve_gpu_resource_name(preset: InstanceType, info: Info) -> str | None:
    return GPU_RESOURCE if preset.gpu_limit else None


@instance_type.field("global")
def resolve_global(preset: InstanceType, info: Info) -> bool:
    return preset.is_global


@instance_type.field("nodeSelector")
def resolve_node_selector(preset: InstanceType, info: Info) -> dict[str, str] | None:
    return dict(preset.node_selector) or None


@toleration.field("operator")
def resolve_operator(found: Toleration, info: Info) -> str:
    return found.operator


bindables = [user, group, instance_type, toleration, json_scalar]
