"""`python -m artifacts_api`: read and check the settings, then serve until stopped.

A bad setting, or ``API_AUTH_MODE=none`` on an address other than loopback, stops the
process before it listens, with one line on stderr naming the variable.
"""

from __future__ import annotations

import gc
import logging
import sys

from aiohttp import web

from artifacts_api.app import make_app
from artifacts_api.settings import ApiSettings, check_startup
from artifacts_shared.settings import SettingsError, load_settings


async def _freeze_startup_objects(app: web.Application) -> None:
    """Leave what start-up made (modules, the schema, botocore's service models: about
    100,000 objects) out of every later garbage collection.

    A full collection visits every tracked object; with these it took 180 ms on 2 busy
    cores, and held every request in the event loop meanwhile (the ``viewer`` latency under
    load in ``bench/bench_listing.py``). Runs after the services are up (``cleanup_ctx``
    starts first), in the process only: a test making many apps would keep their garbage.
    """
    gc.collect()
    gc.freeze()


def main() -> None:
    try:
        settings = load_settings(ApiSettings)
        check_startup(settings)
    except SettingsError as err:
        sys.exit(f"api: {err}")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Quiet per-request access lines; metrics count requests.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    app = make_app(settings)
    app.on_startup.append(_freeze_startup_objects)
    web.run_app(
        app,
        host=settings.api_host,
        port=settings.api_port,
        print=lambda _: print(
            f"api: listening on http://{settings.api_host}:{settings.api_port} "
            f"(auth: {settings.api_auth_mode}, jobs: {settings.controller_runtime})",
            flush=True,
        ),
    )


if __name__ == "__main__":
    main()
