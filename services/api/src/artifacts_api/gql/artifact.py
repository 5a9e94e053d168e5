"""Bindables of ``PhJobArtifact`` and ``PhJobArtifactItem``.

Plain fields resolve from ``ArtifactFolder``/``ArtifactFile`` attributes by their
snake_case names; only what costs something has a resolver: ``downloadUrl`` signs a URL,
so it is computed only for items where the query selects it.
"""

from __future__ import annotations

from ariadne import ObjectType

from artifacts_api.artifacts import ArtifactFile, ArtifactFolder
from artifacts_api.errors import BadUserInput
from artifacts_api.gql.context import Info
from artifacts_shared.layout import UnsafeNameError, artifact_key

__all__ = ["bindables"]

artifact = ObjectType("PhJobArtifact")
item = ObjectType("PhJobArtifactItem")


@artifact.field("item")
def resolve_item(folder: ArtifactFolder, info: Info, *, name: str) -> ArtifactFile | None:
    try:
        artifact_key(folder.key_prefix, name)
    except UnsafeNameError as err:
        raise BadUserInput(str(err), field="name") from None
    return next((file for file in folder.items if file.name == name), None)


@artifact.field("zipUrl")
def resolve_zip_url(folder: ArtifactFolder, info: Info) -> str:
    return info.context.services.links.zip_url(folder.job_id)


@item.field("sha256")
def resolve_sha256(file: ArtifactFile, info: Info) -> str | None:
    # Bound by hand: the automatic name conversion would look for "sha_256".
    return file.sha256


@item.field("downloadUrl")
async def resolve_download_url(file: ArtifactFile, info: Info) -> str:
    return await info.context.services.presigner.download_url(file.key, file.name)


bindables = [artifact, item]
