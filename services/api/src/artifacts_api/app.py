"""``make_app(settings)``: the api's aiohttp application, its routes and its clients.

Every client (S3, the public S3 signer, Redis/arq, Kubernetes, the JWKS HTTP session) is
opened in the one ``cleanup_ctx`` entry, ``_services``, and closed there, in reverse
order. Backends are not contacted at start: the api starts, answers ``/healthz``, and
reports a dead backend on ``/readyz`` and as ``UNAVAILABLE`` errors instead of refusing to
start.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Middleware
from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool

from artifacts_api.auth import (
    Authenticator,
    ClaimRules,
    JwksKeySource,
    JwtAuthenticator,
    KeySource,
    NoAuthenticator,
    SecretKeySource,
)
from artifacts_api.contents import parse_contents_here
from artifacts_api.downloads import artifacts_zip
from artifacts_api.errors import InternalError
from artifacts_api.explorer import EXPLORER_DIR
from artifacts_api.filewatch import open_file_watcher
from artifacts_api.gql.endpoint import GraphQLEndpoint
from artifacts_api.guards import HANDLER_ARGS, header_limits, loopback_only
from artifacts_api.jobsource import JobSource, LocalJobSource
from artifacts_api.jwks import JwksCache
from artifacts_api.links import LinkSigner
from artifacts_api.logroute import LOG_STREAMS, StreamSlots, job_log
from artifacts_api.manifests import ManifestCache
from artifacts_api.metrics import Metrics
from artifacts_api.presign import Presigner
from artifacts_api.probes import healthz, metrics, readyz
from artifacts_api.services import METRICS, SERVICES, SETTINGS, Services
from artifacts_api.settings import ApiSettings
from artifacts_api.storefiles import file_redirect
from artifacts_api.viewing import view_artifact
from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.retention import RecordSigner
from artifacts_shared.s3 import open_s3, s3_credentials

__all__ = ["UI_DIR", "make_app"]

log = logging.getLogger(__name__)

UI_DIR = Path(__file__).resolve().parent / "ui"
"""The web UI's static files (issue 7); ``GET /`` serves its ``index.html``."""
REDIS_TIMEOUT = 5.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _authenticator(
    settings: ApiSettings, stack: AsyncExitStack, timeout: float
) -> Authenticator:
    if settings.api_auth_mode == "none":
        return NoAuthenticator(settings.dev_groups)
    keys: KeySource
    if settings.api_auth_mode == "hs256":
        if settings.api_jwt_secret is None:
            raise ValueError("API_AUTH_MODE=hs256 needs API_JWT_SECRET")
        keys = SecretKeySource(settings.api_jwt_secret.get_secret_value())
    else:
        if not settings.oidc_issuer:
            raise ValueError("API_AUTH_MODE=oidc needs OIDC_ISSUER")
        session = await stack.enter_async_context(aiohttp.ClientSession())
        keys = JwksKeySource(
            JwksCache(
                session,
                issuer=settings.oidc_issuer,
                jwks_url=settings.oidc_jwks_url,
                ttl_seconds=settings.oidc_jwks_cache_seconds,
                timeout_seconds=timeout,
            )
        )
    return JwtAuthenticator(
        keys,
        ClaimRules.from_settings(settings),
        issuer=settings.oidc_issuer,
        audience=settings.oidc_audience,
        leeway_seconds=settings.api_jwt_leeway_seconds,
    )


async def _job_source(settings: ApiSettings, stack: AsyncExitStack) -> JobSource:
    if settings.controller_runtime == "local":
        watcher = await stack.enter_async_context(open_file_watcher())
        return LocalJobSource(LocalJobStore(settings.local_jobs_dir), settings, watcher=watcher)
    # Imported here: kubernetes-asyncio is only loaded where it is used.
    from artifacts_api.kube import KubernetesJobSource, open_kubernetes

    api_client = await stack.enter_async_context(open_kubernetes())
    # Followed pod logs stay open as long as their jobs run: a pool of their own.
    log_client = await stack.enter_async_context(
        open_kubernetes(connections=settings.api_log_max_streams)
    )
    return await stack.enter_async_context(
        KubernetesJobSource(
            api_client,
            namespace=settings.kube_namespace,
            timeout_seconds=settings.api_kube_timeout_seconds,
            log_client=log_client,
        )
    )


def _services_ctx(
    job_source: JobSource | None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def services_ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        timeout = settings.api_s3_timeout_seconds
        async with AsyncExitStack() as stack:
            # Two attempts, short timeouts: a dead S3 must turn into UNAVAILABLE quickly.
            s3 = await stack.enter_async_context(
                open_s3(
                    settings,
                    connect_timeout=timeout,
                    read_timeout=timeout,
                    max_attempts=2,
                    max_connections=64,
                )
            )
            app[METRICS].instrument_s3(s3)
            parse_contents_here(s3)
            # Signing needs no network; a second client only when browsers use another host.
            public_s3 = (
                s3
                if settings.public_endpoint_url == settings.s3_endpoint_url
                else await stack.enter_async_context(open_s3(settings, public=True))
            )
            pool = ConnectionPool.from_url(
                settings.redis_url,
                socket_timeout=REDIS_TIMEOUT,
                socket_connect_timeout=REDIS_TIMEOUT,
            )
            queue = ArqRedis(pool_or_conn=pool)
            stack.push_async_callback(pool.aclose)
            stack.push_async_callback(queue.aclose)
            link_key = settings.api_link_signing_key
            presigner = await Presigner.for_client(
                public_s3,
                credentials=await s3_credentials(settings),
                bucket=settings.phfs_bucket,
                ttl_seconds=settings.download_url_ttl_seconds,
            )
            app[SERVICES] = Services(
                settings=settings,
                s3=s3,
                presigner=presigner,
                jobs=job_source or await _job_source(settings, stack),
                queue=queue,
                authenticator=await _authenticator(settings, stack, timeout),
                links=LinkSigner(
                    link_key.get_secret_value().encode() if link_key else secrets.token_bytes(32),
                    ttl_seconds=settings.download_url_ttl_seconds,
                ),
                metrics=app[METRICS],
                manifests=ManifestCache(s3, settings.phfs_bucket),
                records=RecordSigner.for_settings(settings),
                listing_slots=asyncio.Semaphore(settings.api_listing_concurrency),
            )
            yield

    return services_ctx


@web.middleware
async def _observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count and time every request by route; answer unexpected failures with JSON."""
    started = time.perf_counter()
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return web.json_response(InternalError("internal error").as_json(), status=500)
    finally:
        metrics = request.app[METRICS]
        metrics.http_requests.labels(route, request.method, str(status)).inc()
        metrics.http_seconds.labels(route).observe(time.perf_counter() - started)


_UI_HEADERS = {
    # The UI is our own files only: no inline script, no other origin to load from or post
    # to. Downloads leave by navigation (presigned S3 links), which this does not restrict.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Small and changed by every release: always ask, the ETag makes it cheap.
    "Cache-Control": "no-cache",
}


async def _index(request: web.Request) -> web.FileResponse:
    """The UI's page, for ``/`` and for its own deep links (``/jobs/<id>``): the page routes."""
    return web.FileResponse(UI_DIR / "index.html", headers=_UI_HEADERS)


def make_app(settings: ApiSettings, *, job_source: JobSource | None = None) -> web.Application:
    """The api. ``job_source`` replaces the one ``settings`` selects (its owner closes it)."""
    middlewares: list[Middleware] = [_observe, header_limits]
    if settings.api_auth_mode == "none":
        middlewares.append(loopback_only)
    app = web.Application(
        client_max_size=settings.api_max_body_bytes,
        middlewares=middlewares,
        handler_args=HANDLER_ARGS,
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[LOG_STREAMS] = StreamSlots(settings.api_log_max_streams)
    endpoint = GraphQLEndpoint(settings, app[METRICS])
    app.cleanup_ctx.append(_services_ctx(job_source))
    # Every method: GET and POST are GraphQL (and a browser's GET the explorer), the rest
    # get a GraphQL-shaped 405.
    app.router.add_route("*", "/graphql", endpoint.handle)
    app.router.add_static("/explorer/", EXPLORER_DIR)
    app.router.add_get("/api/files/{tail:.*}", file_redirect)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/jobs/{id}/artifacts.zip", artifacts_zip)
    # No HEAD: it would read (or follow) the whole log to send nothing.
    app.router.add_get("/jobs/{id}/logs", job_log, allow_head=False)
    app.router.add_get("/jobs/{id}/view", view_artifact, allow_head=False)
    app.router.add_get("/", _index)
    app.router.add_get("/jobs", _index)
    app.router.add_get("/jobs/{id}", _index)
    # Last: every other path is a UI file, so the UI ships by adding files to ui/.
    app.router.add_static("/", UI_DIR)
    return app
