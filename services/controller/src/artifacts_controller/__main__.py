"""`python -m artifacts_controller`: read the settings, then run the controller.

Settings are read once, before the event loop starts, and passed down. The root tasks (the
probe server and the controller) share one task group: if either dies the process exits
non-zero and Kubernetes restarts it. SIGTERM cancels the group, which releases the lease.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import NoReturn

from artifacts_controller.contract import read_run_job_script, run_job_script_path
from artifacts_controller.controller import run_elected
from artifacts_controller.expiry_feed import ExpiryFeed
from artifacts_controller.kube import open_kube
from artifacts_controller.leader import LeaderElector
from artifacts_controller.local_runtime import run_local
from artifacts_controller.metrics import ControllerMetrics
from artifacts_controller.orphans import OrphanGrace
from artifacts_controller.probes import make_probe_app, serve_probes
from artifacts_controller.settings import ControllerSettings
from artifacts_shared.expiry_index import ExpiryIndex
from artifacts_shared.input_holds import InputHolds
from artifacts_shared.redis import open_redis
from artifacts_shared.s3 import open_s3
from artifacts_shared.settings import SettingsError, load_settings

log = logging.getLogger("artifacts_controller")


async def _run_kubernetes(settings: ControllerSettings, metrics: ControllerMetrics) -> NoReturn:
    script = read_run_job_script()
    user_agent = f"artifacts-controller/0.1.0 ({settings.controller_identity})"
    async with (
        open_kube(namespace=settings.kube_namespace, user_agent=user_agent) as kube,
        open_s3(settings) as s3,  # the job logs it delivers (pod_logs.py), orphans.py's expiry
        open_redis(settings) as redis,  # the expiry index it feeds (expiry_feed.py)
        asyncio.TaskGroup() as group,
    ):
        elector = LeaderElector(
            kube,
            name=settings.controller_lease_name,
            identity=settings.controller_identity,
            lease_seconds=settings.controller_lease_seconds,
            renew_seconds=settings.controller_lease_renew_seconds,
            metrics=metrics,
        )
        app = make_probe_app(metrics=metrics, leading=elector.leading.is_set)
        group.create_task(
            serve_probes(
                app, host=settings.controller_probe_host, port=settings.controller_probe_port
            )
        )
        group.create_task(
            run_elected(
                kube=kube,
                settings=settings,
                script=script,
                metrics=metrics,
                s3=s3,
                expiry_feed=ExpiryFeed(ExpiryIndex(redis), policy=settings),
                input_holds=InputHolds(redis),  # released as its jobs start or end
                elector=elector,
            )
        )
    raise AssertionError("unreachable")


async def _run_local(settings: ControllerSettings, metrics: ControllerMetrics) -> NoReturn:
    """The dev stack: no lease (one controller), the same probes."""
    async with (
        open_redis(settings) as redis,
        open_s3(settings) as s3,  # a deleted job's expiry (orphans.py), its inputs (inputs.py)
        asyncio.TaskGroup() as group,
    ):
        app = make_probe_app(metrics=metrics, leading=lambda: True)
        group.create_task(
            serve_probes(
                app, host=settings.controller_probe_host, port=settings.controller_probe_port
            )
        )
        feed = ExpiryFeed(ExpiryIndex(redis), policy=settings)
        orphans = OrphanGrace.for_settings(settings, s3=s3, expiry_feed=feed)
        group.create_task(
            run_local(
                settings,
                metrics,
                run_job_script_path(),
                feed,
                orphans,
                s3=s3,
                input_holds=InputHolds(redis),
            )
        )
    raise AssertionError("unreachable")


async def run(settings: ControllerSettings) -> None:
    metrics = ControllerMetrics()
    main = asyncio.current_task()
    assert main is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, main.cancel)
    try:
        if settings.controller_runtime == "local":
            await _run_local(settings, metrics)
        else:
            await _run_kubernetes(settings, metrics)
    except asyncio.CancelledError:
        log.info("stopped")


def main() -> None:
    try:
        settings = load_settings(ControllerSettings)
    except SettingsError as err:
        sys.exit(f"controller: {err}")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(run(settings))
    except* Exception as failures:  # a root task died: say which, exit non-zero
        for failure in failures.exceptions:
            log.error("controller stopped: %r", failure)
        sys.exit(1)


if __name__ == "__main__":
    main()
