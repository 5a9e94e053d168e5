"""GraphQL over HTTP (the GraphQL Foundation's spec): what a request asks, and in which form.

A request is a JSON ``POST``, an ``application/x-www-form-urlencoded`` ``POST`` (``query``,
and ``variables``/``extensions`` as JSON strings: PrimeHub's SDK posts this way) or a
``GET`` with the same parameters in the URL. Anything else is refused with 415 before its
body is read: in particular ``text/plain``, which any web page may post to any address.

The answer's media type follows ``Accept``: ``application/graphql-response+json`` when the
client lists it first (or alone), else ``application/json``, the legacy type, which is also
what a client that sends no ``Accept`` gets. The two differ only in status codes: a document
that cannot run is 400 with the former and 200 with the latter, as the spec asks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from aiohttp import web

from artifacts_api.errors import BadUserInput, PayloadTooLarge

__all__ = [
    "FORM",
    "JSON",
    "GraphQLRequest",
    "MediaType",
    "NotAcceptable",
    "UnsupportedMediaType",
    "read_request",
    "response_type",
    "wants_explorer",
]

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


class MediaType(StrEnum):
    GRAPHQL_RESPONSE = "application/graphql-response+json"
    JSON = "application/json"


class UnsupportedMediaType(BadUserInput):
    http_status = 415


class NotAcceptable(BadUserInput):
    http_status = 406


@dataclass(frozen=True, slots=True)
class GraphQLRequest:
    query: str
    variables: dict[str, Any] | None
    operation_name: str | None
    via: str
    """``json``, ``form`` or ``get``: how the parameters came."""

    def as_data(self) -> dict[str, Any]:
        """The parameters as ``ariadne.graphql`` takes them."""
        return {
            "query": self.query,
            "variables": self.variables,
            "operationName": self.operation_name,
        }


def _media_ranges(accept: str) -> list[tuple[str, float]]:
    ranges = []
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media:
            ranges.append((media.lower(), quality))
    return ranges


def response_type(accept: str | None) -> MediaType:
    """The media type to answer with; raises ``NotAcceptable`` when ``Accept`` allows none."""
    if not accept or not accept.strip():
        return MediaType.JSON
    best: tuple[float, int, MediaType] | None = None
    for order, (media, quality) in enumerate(_media_ranges(accept)):
        if quality <= 0:
            continue
        if media == MediaType.GRAPHQL_RESPONSE:
            chosen = MediaType.GRAPHQL_RESPONSE
        elif media in (MediaType.JSON, "application/*", "*/*"):
            chosen = MediaType.JSON
        else:
            continue
        # Highest quality wins; on a tie, the one listed first.
        candidate = (quality, -order, chosen)
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    if best is None:
        raise NotAcceptable(
            f"the api answers {MediaType.GRAPHQL_RESPONSE} or {MediaType.JSON}; "
            f"Accept asks for {accept[:120]!r}"
        )
    return best[2]


def wants_explorer(request: web.Request) -> bool:
    """A browser opening ``/graphql``: no query, and HTML preferred over JSON."""
    if request.method != "GET" or "query" in request.query:
        return False
    ranges = dict(_media_ranges(request.headers.get("Accept", "")))
    return ranges.get("text/html", 0.0) > 0


def _loads(text: str | bytes, what: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise BadUserInput(f"{what} is nested too deeply") from None
    except (ValueError, UnicodeDecodeError):
        raise BadUserInput(f"{what} must be JSON") from None


def _json_map(value: Any, name: str) -> dict[str, Any] | None:
    """``variables``/``extensions``: a JSON object (in forms and URLs, as a JSON string)."""
    if isinstance(value, str):
        value = _loads(value, f"'{name}'") if value.strip() else None
    if value is not None and not isinstance(value, dict):
        raise BadUserInput(f"'{name}' must be a JSON object")
    return value


def _parameters(values: dict[str, Any], via: str) -> GraphQLRequest:
    query = values.get("query")
    if not isinstance(query, str):
        raise BadUserInput(
            "the request must have a 'query' string"
            if query is None
            else f"'query' must be a string, not {type(query).__name__}"
        )
    operation_name = values.get("operationName")
    if operation_name == "" and via != "json":
        operation_name = None  # an empty form field or URL parameter means none
    if operation_name is not None and not isinstance(operation_name, str):
        raise BadUserInput("'operationName' must be a string")
    variables = _json_map(values.get("variables"), "variables")
    _json_map(values.get("extensions"), "extensions")  # accepted, and checked; no use yet
    return GraphQLRequest(query, variables, operation_name, via)


def _single(pairs: Any, where: str) -> dict[str, str]:
    """Form fields or URL parameters; one of each name, as a request names one query."""
    values: dict[str, str] = {}
    for name, value in pairs.items():
        if name in values:
            raise BadUserInput(f"'{name}' is given more than once in the {where}")
        values[name] = value if isinstance(value, str) else ""
    return values


async def _body(request: web.Request, limit: int) -> bytes:
    too_large = PayloadTooLarge(f"the request body is larger than {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None


async def read_request(request: web.Request, *, max_body: int) -> GraphQLRequest:
    """The GraphQL parameters of ``request``; raises an ``ApiError`` saying what is wrong."""
    if request.method == "GET":
        return _parameters(_single(request.query, "URL"), "get")
    if "Content-Type" not in request.headers:
        raise UnsupportedMediaType(
            f"a POST needs a Content-Type: {JSON} or {FORM}", field="Content-Type"
        )
    media = request.content_type
    charset = (request.charset or "utf-8").lower()
    if media not in (JSON, FORM) or charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(
            f"the body must be {JSON} or {FORM} in UTF-8, not {request.headers['Content-Type']!r}",
            field="Content-Type",
        )
    raw = await _body(request, max_body)
    if media == FORM:
        try:
            fields = _single(await request.post(), "form")
        except (ValueError, UnicodeDecodeError):
            raise BadUserInput("the form body cannot be read as UTF-8 fields") from None
        return _parameters(fields, "form")
    if not raw.strip():
        raise BadUserInput('the body is empty: send {"query": "..."}')
    data = _loads(raw, "the body")
    if not isinstance(data, dict):
        raise BadUserInput('the body must be a JSON object: {"query": "..."}')
    return _parameters(data, "json")
