"""Bindables of ``Mutation``: create, rerun and cancel jobs; queue a cleanup run."""

from __future__ import annotations

from typing import Any

from ariadne import MutationType

from artifacts_api.errors import NotFound
from artifacts_api.gql.context import Info
from artifacts_api.jobs import JobRequest, create_job, visible_job
from artifacts_shared.cleanup_queue import request_cleanup
from artifacts_shared.phjob import PhJob

__all__ = ["bindables"]

mutation = MutationType()


@mutation.field("createPhJob")
async def resolve_create_ph_job(_: None, info: Info, *, data: dict[str, Any]) -> PhJob:
    context = info.context
    return await create_job(context.services, JobRequest(**data), context.identity)


@mutation.field("rerunPhJob")
async def resolve_rerun_ph_job(_: None, info: Info, *, where: dict[str, Any]) -> PhJob:
    context = info.context
    job = await visible_job(context.services.jobs, context.identity, where["id"])
    # Checked again as a new request of the caller's: its groups and rights now, not the
    # original submitter's.
    return await create_job(context.services, JobRequest.like(job), context.identity)


@mutation.field("cancelPhJob")
async def resolve_cancel_ph_job(_: None, info: Info, *, where: dict[str, Any]) -> PhJob:
    context = info.context
    job = await visible_job(context.services.jobs, context.identity, where["id"])
    cancelled = await context.services.jobs.request_cancel(job.id)
    if cancelled is None:
        raise NotFound(f"job {job.id} was deleted")
    return cancelled


@mutation.field("cleanupPhJobArtifact")
async def resolve_cleanup_ph_job_artifact(_: None, info: Info, *, rescan: bool = False) -> str:
    context = info.context
    context.identity.require_admin("run the artifact cleanup")
    return await request_cleanup(context.services.queue, rescan=rescan)


bindables = [mutation]
