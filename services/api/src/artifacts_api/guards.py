"""Checks every request passes before any route runs: header sizes, and ``none`` mode's rule.

``API_AUTH_MODE=none`` makes every caller an admin, and a mutation runs a command on the
developer's machine. No token stands in the way, so what keeps other web pages out is the
request's address: it must be addressed to this api by a loopback name (``Host``: a page
of a DNS-rebound domain names its own host), and a browser's ``Origin``, when it sends one,
must be this api's own origin. A page on another origin can post a form or ``text/plain``
without asking (no CORS preflight); it cannot hide its ``Origin`` or forge a ``Host``.
Programs (curl, PrimeHub's SDK, our CLI) send no ``Origin`` and pass.

Headers are capped here rather than only by aiohttp's parser: its refusal is plain text
sent before any handler runs, ours is a GraphQL-shaped 400 naming the header. aiohttp's own
limit is set higher (``handler_args``), so only headers beyond it get the plain refusal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from yarl import URL

from artifacts_api.errors import BadUserInput, Forbidden
from artifacts_api.settings import is_loopback

__all__ = ["HANDLER_ARGS", "MAX_HEADER_BYTES", "header_limits", "loopback_only"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_HEADER_BYTES = 8190
"""One header's name and value together, in bytes (aiohttp's own default limit)."""
HANDLER_ARGS = {"max_field_size": 8 * MAX_HEADER_BYTES, "max_line_size": 8 * MAX_HEADER_BYTES}
"""aiohttp's parser limits, above ours: what lies between gets our GraphQL-shaped answer."""


@web.middleware
async def header_limits(request: web.Request, handler: Handler) -> web.StreamResponse:
    for name, value in request.raw_headers:
        if len(name) + len(value) > MAX_HEADER_BYTES:
            shown = name.decode("latin-1")[:60]
            error = BadUserInput(
                f"the {shown} header is larger than {MAX_HEADER_BYTES} bytes", header=shown
            )
            return web.json_response(error.as_json(), status=400)
    return await handler(request)


def _refusal(reason: str) -> web.Response:
    error = Forbidden(f"API_AUTH_MODE=none answers this machine's own requests only: {reason}")
    return web.json_response(error.as_json(), status=403)


@web.middleware
async def loopback_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    """``API_AUTH_MODE=none`` only: the Host is a loopback name, the Origin (if any) ours."""
    host = request.headers.get("Host", "")
    try:
        hostname = URL(f"http://{host}").host or ""
    except ValueError:
        hostname = ""
    if not is_loopback(hostname):
        return _refusal(
            f"the request is addressed to {host[:80]!r}; use http://127.0.0.1 or "
            "http://localhost (DNS rebinding is refused)"
        )
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{host}":
        return _refusal(
            f"a page of {origin[:80]!r} may not call this api; open its own pages at "
            f"{request.scheme}://{host}"
        )
    return await handler(request)
