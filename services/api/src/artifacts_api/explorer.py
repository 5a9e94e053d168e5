"""The GraphiQL explorer: ``GET /graphql`` in a browser, and its files under ``/explorer/``.

Everything the page loads is this package's own (``graphiql/``; GraphiQL and React in
``graphiql/vendor/``, fetched from the npm registry at build time by
``services/api/fetch_explorer.py``), so it works on a closed network and its Content
Security Policy allows no other origin.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

__all__ = ["EXPLORER_DIR", "explorer_page"]

EXPLORER_DIR = Path(__file__).resolve().parent / "graphiql"

_HEADERS = {
    # GraphiQL sets inline styles (CodeMirror); scripts and requests stay on this origin.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def explorer_page() -> web.FileResponse:
    return web.FileResponse(EXPLORER_DIR / "index.html", headers=_HEADERS)
