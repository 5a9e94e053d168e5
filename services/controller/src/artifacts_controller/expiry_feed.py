"""Feeding the expiry index when the controller sees a job's collection end.

In the ``phfs`` delivery mode the job's pod writes its own ``expiredAt`` and none of our
Python runs there, so the controller, which sees every job end in both runtimes and both
modes, indexes the job's folder (``artifacts_shared.expiry_index``) at the job's finish
time plus its retention (``job_finished``), and the folder of a deleted job at the expiry
``orphans.py`` has just written (``expiry_written``). The first is an estimate: the pod
wrote its ``expiredAt`` a moment earlier, when the command ended, and a cancelled job's
collection ends a moment later; so it is added with ``keep_earlier`` and never moves an
entry the uploader wrote from the ``expiredAt`` itself. An entry too early costs the
janitor one look; one lost (Redis down) is found by the janitor's rescan, so a failure
here is logged and nothing more.
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from artifacts_controller.contract import effective_policy
from artifacts_shared.expiry import expiry_after
from artifacts_shared.expiry_index import ExpiryIndex
from artifacts_shared.layout import JobPrefix, UnsafeNameError, job_prefix
from artifacts_shared.phjob import PhJob, PhJobStatus
from artifacts_shared.settings import ArtifactPolicySettings

__all__ = ["ExpiryFeed"]

log = logging.getLogger(__name__)


class ExpiryFeed:
    def __init__(self, index: ExpiryIndex, *, policy: ArtifactPolicySettings) -> None:
        self._index = index
        self._policy = policy

    async def job_finished(self, job: PhJob, status: PhJobStatus) -> None:
        """Index the folder of ``job``, which has just reached the finished ``status``."""
        policy = effective_policy(job, self._policy)
        if not policy.enabled or status.finish_time is None:
            return
        expired_at = expiry_after(status.finish_time.timestamp(), policy.retention_seconds)
        if expired_at is None:
            return  # retention 0: kept until deleted by hand, never due
        try:
            prefix = job_prefix(job.spec.group_name, job.metadata.name)
        except UnsafeNameError:
            return  # no folder was ever written for it
        await self._add(prefix, expired_at, keep_earlier=True)

    async def expiry_written(self, prefix: JobPrefix, expired_at: int) -> None:
        """Index ``prefix`` at the ``expiredAt`` we have just written for it (not an estimate)."""
        await self._add(prefix, expired_at, keep_earlier=False)

    async def _add(self, prefix: JobPrefix, expired_at: int, *, keep_earlier: bool) -> None:
        try:
            await self._index.add(prefix, expired_at, keep_earlier=keep_earlier)
        except (RedisError, OSError) as err:
            log.warning(
                "%s: could not index its expiry (%s); the janitor's rescan will find it",
                prefix,
                err,
            )
