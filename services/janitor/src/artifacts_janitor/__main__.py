"""`python -m artifacts_janitor`: the janitor's worker, its liveness probe, and a one-off run.

- no arguments: the arq worker (daily cron plus the on-demand queue) until SIGTERM;
- ``--check``: arq's health check, for the liveness probe: exit 0 when a worker on this
  Redis recorded its health within the last ``HEALTH_CHECK_SECONDS``, else 1;
- ``--once [--rescan] [--dry-run]``: one run now, in this process, under the same run
  lock as the workers; prints the result as JSON. ``--rescan`` makes it scan the whole
  bucket into the expiry index first; ``--dry-run`` reports what would be deleted.

Settings are read before anything else, so a bad one stops it with one line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

from arq.connections import create_pool
from arq.worker import async_check_health
from redis.exceptions import ConnectionError as RedisConnectionError

from artifacts_janitor.clock import SystemClock
from artifacts_janitor.metrics import JanitorMetrics
from artifacts_janitor.settings import JanitorSettings
from artifacts_janitor.worker import Janitor, arq_redis_settings, make_worker
from artifacts_shared.cleanup_queue import CLEANUP_QUEUE
from artifacts_shared.cleanup_result import CleanupResult
from artifacts_shared.s3 import open_s3
from artifacts_shared.settings import SettingsError, load_settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m artifacts_janitor",
        description="Delete expired job artifacts: daily, on demand, or once.",
    )
    parser.add_argument("--check", action="store_true", help="liveness probe: exit 0 or 1")
    parser.add_argument("--once", action="store_true", help="run one cleanup now and exit")
    parser.add_argument(
        "--rescan", action="store_true", help="with --once: scan every job folder first"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="with --once: report, delete nothing"
    )
    args = parser.parse_args(argv)
    if args.dry_run and not args.once:
        parser.error("--dry-run goes with --once (set JANITOR_DRY_RUN=true for the worker)")
    if args.rescan and not args.once:
        parser.error("--rescan goes with --once (the worker rescans every JANITOR_RESCAN_EVERY)")
    try:
        settings = load_settings(JanitorSettings)
    except SettingsError as err:
        sys.exit(f"janitor: {err}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        if args.check:
            sys.exit(asyncio.run(_check(settings)))
        if args.once:
            if args.dry_run:
                settings = settings.model_copy(update={"janitor_dry_run": True})
            result = asyncio.run(_once(settings, rescan=args.rescan))
            print(json.dumps(result.to_stored(), indent=2))
            return
        make_worker(settings).run()
    except (RedisConnectionError, OSError) as err:
        # arq has already retried; an operator needs the address, not a traceback.
        sys.exit(f"janitor: cannot reach Redis at {_shown(settings.redis_url)}: {err}")


def _shown(url: str) -> str:
    """The URL without its password, fit for a log line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


async def _check(settings: JanitorSettings) -> int:
    code: int = await async_check_health(arq_redis_settings(settings), queue_name=CLEANUP_QUEUE)
    return code


async def _once(settings: JanitorSettings, *, rescan: bool) -> CleanupResult:
    run_id = f"once-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    redis = await create_pool(arq_redis_settings(settings))
    try:
        async with open_s3(settings, max_connections=2 * settings.janitor_concurrency + 8) as s3:
            janitor = Janitor(
                settings=settings,
                s3=s3,
                redis=redis,
                clock=SystemClock(),
                metrics=JanitorMetrics(),
            )
            return await janitor.run(run_id, rescan=rescan)
    finally:
        await redis.aclose()


if __name__ == "__main__":
    main()
