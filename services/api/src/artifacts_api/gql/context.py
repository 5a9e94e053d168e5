"""The per-request context every resolver reads through ``info.context``, typed."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web
from graphql import GraphQLResolveInfo

from artifacts_api.budget import WorkBudget
from artifacts_api.gql.loaders import Loaders
from artifacts_api.identity import Identity
from artifacts_api.services import Services

__all__ = ["Info", "RequestContext", "Turn"]


@dataclass(slots=True)
class Turn:
    """A place among the big listings the process runs at once (``API_LISTING_CONCURRENCY``).

    A request that lists more than one S3 page of files waits for a free place and keeps
    it until its answer is written; small requests never wait. With few big listings
    running, each step of theirs (a page parsed, a slice of items completed, a slice of
    JSON written) is short and there are few of them queued on the event loop, so every
    other request gets its turn within milliseconds.
    """

    slots: asyncio.Semaphore
    held: bool = False

    async def take(self) -> None:
        if not self.held:
            await self.slots.acquire()
            self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.slots.release()


@dataclass(frozen=True, slots=True)
class RequestContext:
    request: web.Request
    identity: Identity
    services: Services
    budget: WorkBudget
    loaders: Loaders
    turn: Turn = field(kw_only=True)


Info = GraphQLResolveInfo[RequestContext]
"""What resolvers receive as ``info``: ``info.context`` is this request's context."""
