"""``cleanupPhJobArtifact`` and ``phJobArtifactCleanup`` on the shared cleanup queue (real Redis).

A stand-in janitor (an arq worker with a function of the janitor's name) plays the other
side of the queue, so the status query is seen going from QUEUED to COMPLETE.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from arq.connections import ArqRedis
from arq.worker import Worker, func
from redis.asyncio import Redis
from support.api import Api, serve, token

from artifacts_api.settings import ApiSettings
from artifacts_shared.cleanup_queue import CLEANUP_QUEUE, RESCAN_REQUEST_KEY, current_run_id
from artifacts_shared.cleanup_result import CleanupResult, RunOutcome
from artifacts_shared.redis import CLEANUP_FUNCTION

ADMIN = token("root", groups=[], roles=["admin"])
RUN = "mutation { cleanupPhJobArtifact }"
STATUS = """query ($id: ID!) { phJobArtifactCleanup(id: $id) {
  id state enqueuedAt error
  result {
    outcome foldersScanned foldersDeleted objectsDeleted bytesFreed startedAt deleted
    indexDue indexChecked indexStale indexSize rescanned lastRescanAt rescanFound
  }
} }"""
RESCAN = "mutation { cleanupPhJobArtifact(rescan: true) }"


async def test_an_admin_starts_one_cleanup_run_and_asking_again_returns_the_same_id(
    api: Api, redis: Redis
) -> None:
    first = await api.graphql(RUN, bearer=ADMIN)
    second = await api.graphql(RUN, bearer=ADMIN)
    status = await api.graphql(STATUS, {"id": first.data["cleanupPhJobArtifact"]}, bearer=ADMIN)

    run_id = first.data["cleanupPhJobArtifact"]
    assert run_id.startswith("cleanup-")
    assert second.data == {"cleanupPhJobArtifact": run_id}
    assert await redis.zrange(CLEANUP_QUEUE, 0, -1) == [run_id.encode()]
    assert status.data["phJobArtifactCleanup"] | {"enqueuedAt": None} == {
        "id": run_id,
        "state": "QUEUED",
        "enqueuedAt": None,
        "error": None,
        "result": None,
    }
    assert status.data["phJobArtifactCleanup"]["enqueuedAt"].endswith("Z")


async def test_non_admins_can_neither_run_the_cleanup_nor_read_runs(api: Api, redis: Redis) -> None:
    started = await api.graphql(RUN)
    read = await api.graphql(STATUS, {"id": "cleanup-20250101T000000Z-00000000"})

    assert started.codes == ["FORBIDDEN"] and started.data is None
    assert read.codes == ["FORBIDDEN"]
    assert await current_run_id(ArqRedis(connection_pool=redis.connection_pool)) is None
    assert await redis.zcard(CLEANUP_QUEUE) == 0


async def test_a_finished_run_reports_its_result(api: Api, redis: Redis) -> None:
    async def cleanup_expired_artifacts(ctx: dict[str, Any]) -> dict[str, Any]:
        now = datetime.now(UTC)
        return CleanupResult(
            run_id=ctx["job_id"],
            outcome=RunOutcome.COMPLETED,
            started_at=now,
            finished_at=now,
            duration_seconds=0.1,
            folders_scanned=3,
            folders_deleted=1,
            objects_deleted=4,
            bytes_freed=5 * 2**30,
            deleted=["groups/team-a/jobArtifacts/job-202001010000-aaaaaa/"],
            index_due=2,
            index_checked=2,
            index_stale=1,
            index_size=40,
            rescanned=False,
            last_rescan_at=datetime(2025, 1, 5, 3, 0, tzinfo=UTC),
            rescan_found=7,
        ).to_stored()

    run_id = (await api.graphql(RUN, bearer=ADMIN)).data["cleanupPhJobArtifact"]
    pool = ArqRedis.from_url(api.settings.redis_url)
    janitor = Worker(
        functions=[func(cleanup_expired_artifacts, name=CLEANUP_FUNCTION)],
        redis_pool=pool,
        queue_name=CLEANUP_QUEUE,
        burst=True,
        handle_signals=False,
        poll_delay=0.05,
    )
    try:
        await janitor.main()  # burst: runs the queued job, then returns
    finally:
        await pool.aclose()

    status = await api.graphql(STATUS, {"id": run_id}, bearer=ADMIN)
    again = await api.graphql(RUN, bearer=ADMIN)

    run = status.data["phJobArtifactCleanup"]
    assert run["state"] == "COMPLETE"
    assert run["result"] | {"startedAt": None} == {
        "outcome": "completed",
        "foldersScanned": 3,
        "foldersDeleted": 1,
        "objectsDeleted": 4,
        "bytesFreed": 5 * 2**30,
        "startedAt": None,
        "deleted": ["groups/team-a/jobArtifacts/job-202001010000-aaaaaa/"],
        "indexDue": 2,
        "indexChecked": 2,
        "indexStale": 1,
        "indexSize": 40,
        "rescanned": False,
        "lastRescanAt": "2025-01-05T03:00:00Z",
        "rescanFound": 7,
    }
    assert again.data["cleanupPhJobArtifact"] != run_id  # the finished run frees the slot


async def test_an_admin_can_ask_for_a_rescan_and_a_non_admin_cannot(api: Api, redis: Redis) -> None:
    refused = await api.graphql(RESCAN)
    assert refused.codes == ["FORBIDDEN"]
    assert await redis.exists(RESCAN_REQUEST_KEY) == 0

    first = await api.graphql(RESCAN, bearer=ADMIN)
    # A run is queued already: asking again returns it, and the rescan waits for it.
    again = await api.graphql(RUN, bearer=ADMIN)

    assert first.data["cleanupPhJobArtifact"] == again.data["cleanupPhJobArtifact"]
    assert await redis.get(RESCAN_REQUEST_KEY) == b"1"


async def test_the_rescan_argument_must_be_a_boolean(api: Api, redis: Redis) -> None:
    result = await api.graphql('mutation { cleanupPhJobArtifact(rescan: "yes") }', bearer=ADMIN)

    assert result.data is None and result.codes
    assert await redis.exists(RESCAN_REQUEST_KEY) == 0
    assert await redis.zcard(CLEANUP_QUEUE) == 0


async def test_an_unknown_run_is_not_found(api: Api) -> None:
    result = await api.graphql(STATUS, {"id": "cleanup-20250101T000000Z-deadbeef"}, bearer=ADMIN)

    assert result.codes == ["NOT_FOUND"] and result.data == {"phJobArtifactCleanup": None}


async def test_a_redis_that_is_down_gives_unavailable(settings: ApiSettings) -> None:
    from support.servers import free_port

    gone = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    async with serve(gone) as api:
        result = await api.graphql(RUN, bearer=ADMIN)
        ready = await api.get("/readyz")

    assert result.status == 200 and result.codes == ["UNAVAILABLE"]
    assert ready.status == 503
    body = await ready.json()
    assert body["checks"]["redis"].startswith("unavailable") and body["checks"]["s3"] == "ok"
