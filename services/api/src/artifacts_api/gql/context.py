"""The per-request context every resolver reads through ``info.context``, typed."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from graphql import GraphQLResolveInfo

from artifacts_api.identity import Identity
from artifacts_api.services import Services

__all__ = ["Info", "RequestContext"]


@dataclass(frozen=True, slots=True)
class RequestContext:
    request: web.Request
    identity: Identity
    services: Services


Info = GraphQLResolveInfo[RequestContext]
"""What resolvers receive as ``info``: ``info.context`` is this request's context."""
