"""Bindables of PrimeHub's ``files`` query, for job-artifact paths (``storefiles.py``)."""

from __future__ import annotations

from typing import Any

from ariadne import QueryType

from artifacts_api.gql.context import Info
from artifacts_api.storefiles import StoreFileList, list_files

__all__ = ["bindables"]

query = QueryType()


@query.field("files")
async def resolve_files(
    _: None, info: Info, *, where: dict[str, Any], options: dict[str, Any] | None = None
) -> StoreFileList:
    options = options or {}
    return await list_files(
        info.context.services,
        info.context.identity,
        group_name=where["group_name"],
        phfs_prefix=where["phfs_prefix"],
        recursive=bool(options.get("recursive")),
        limit=options.get("limit"),
    )


bindables = [query]
