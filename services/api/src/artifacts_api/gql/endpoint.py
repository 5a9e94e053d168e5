"""``POST /graphql`` and the explorer on ``GET /graphql``: the aiohttp side of GraphQL.

The handler authenticates, reads a bounded JSON body, parses the query (cached: clients
repeat the same few documents), builds the typed ``RequestContext`` and runs
``ariadne.graphql`` with the depth and cost limits. Every failure, before or during
execution, leaves as a JSON GraphQL error with an ``extensions.code``:
``UNAUTHENTICATED`` answers 401, a body or query that cannot run 400 (413 when too
large), execution errors 200 beside the data that could be resolved.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from typing import Any

from aiohttp import web
from ariadne import graphql
from ariadne.explorer import ExplorerGraphiQL
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    OperationDefinitionNode,
    parse,
)

from artifacts_api.budget import WorkBudget
from artifacts_api.errors import ApiError, BadUserInput, PayloadTooLarge, classify
from artifacts_api.gql.context import RequestContext, Turn
from artifacts_api.gql.limits import MAX_TOKENS, validation_rules
from artifacts_api.gql.loaders import Loaders
from artifacts_api.gql.schema import make_schema
from artifacts_api.jsonbody import encode
from artifacts_api.metrics import Metrics
from artifacts_api.services import SERVICES
from artifacts_api.settings import ApiSettings

__all__ = ["GraphQLEndpoint"]

log = logging.getLogger(__name__)
_INTROSPECTION = frozenset({"__schema", "__type", "__typename"})
_PARSE_CACHE = 512


class _DebugLogger(logging.LoggerAdapter[logging.Logger]):
    """Ariadne logs every GraphQL error at ERROR; ``classify`` already logs what matters."""

    def error(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self.debug(msg, *args, **kwargs)


class GraphQLEndpoint:
    def __init__(self, settings: ApiSettings, metrics: Metrics) -> None:
        self.schema = make_schema()
        self._settings = settings
        self._metrics = metrics
        self._parse = functools.lru_cache(maxsize=_PARSE_CACHE)(self._parse_uncached)
        self._explorer = ExplorerGraphiQL(title="Job artifacts · GraphQL").html(None)
        self._logger = _DebugLogger(logging.getLogger("artifacts_api.gql.ariadne"), {})
        mutation = self.schema.mutation_type
        self._root_fields = {
            "query": frozenset(self.schema.query_type.fields if self.schema.query_type else ())
            | _INTROSPECTION,
            "mutation": frozenset(mutation.fields if mutation else ()) | {"__typename"},
        }

    async def explorer(self, request: web.Request) -> web.Response:
        return web.Response(text=self._explorer, content_type="text/html")

    @staticmethod
    def _parse_uncached(query: str) -> DocumentNode:
        return parse(query, max_tokens=MAX_TOKENS)

    async def _body(self, request: web.Request) -> dict[str, Any]:
        limit = self._settings.api_max_body_bytes
        too_large = PayloadTooLarge(f"the request body is larger than {limit} bytes")
        if request.content_length is not None and request.content_length > limit:
            raise too_large
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise too_large from None
        try:
            data = json.loads(raw)
        except ValueError:
            raise BadUserInput('the body must be JSON: {"query": "..."}') from None
        if not isinstance(data, dict) or not isinstance(data.get("query"), str):
            raise BadUserInput("the body must be a JSON object with a 'query' string")
        if data.get("variables") is not None and not isinstance(data["variables"], dict):
            raise BadUserInput("'variables' must be a JSON object")
        if data.get("operationName") is not None and not isinstance(data["operationName"], str):
            raise BadUserInput("'operationName' must be a string")
        return data

    def _document(self, query: str) -> DocumentNode:
        try:
            document: DocumentNode = self._parse(query)
        except GraphQLError as err:
            raise BadUserInput(f"the query cannot be parsed: {err.message}") from None
        return document

    def _operation(self, document: DocumentNode, name: str | None) -> str:
        """A bounded label: the operation type and the schema's root fields it selects."""
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        chosen = next(
            (
                op
                for op in operations
                if (name is None and len(operations) == 1) or (op.name and op.name.value == name)
            ),
            None,
        )
        if chosen is None:
            return "invalid"
        kind = chosen.operation.value
        known = self._root_fields.get(kind, frozenset())
        fields = sorted(
            {
                selection.name.value
                for selection in chosen.selection_set.selections
                if isinstance(selection, FieldNode) and selection.name.value in known
            }
        )
        return f"{kind} {','.join(fields)}" if fields else "invalid"

    def format_error(self, error: GraphQLError, debug: bool = False) -> dict[str, Any]:
        formatted: dict[str, Any] = dict(error.formatted)
        original = error.original_error
        while isinstance(original, GraphQLError) and original.original_error is not None:
            original = original.original_error
        if original is not None and not isinstance(original, GraphQLError):
            api_error = classify(original)
            formatted["message"] = api_error.message
            formatted["extensions"] = dict(api_error.extensions)
        else:
            # Parse, validation and variable errors: the query itself is at fault.
            formatted["extensions"] = {"code": "BAD_USER_INPUT", **formatted.get("extensions", {})}
        self._metrics.graphql_errors.labels(formatted["extensions"]["code"]).inc()
        return formatted

    def _reject(self, error: ApiError) -> web.Response:
        self._metrics.graphql_errors.labels(error.code).inc()
        headers = {"WWW-Authenticate": "Bearer"} if error.http_status == 401 else None
        return web.json_response(error.as_json(), status=error.http_status, headers=headers)

    async def handle(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        operation = "unknown"
        turn: Turn | None = None
        try:
            services = request.app[SERVICES]
            identity = await services.authenticator.authenticate(
                request.headers.get("Authorization")
            )
            data = await self._body(request)
            document = self._document(data["query"])
            operation = self._operation(document, data.get("operationName"))
            budget = WorkBudget(
                max_objects=self._settings.api_max_listed_objects,
                max_links=self._settings.api_max_signed_links,
            )
            turn = Turn(services.listing_slots)
            success, result = await graphql(
                self.schema,
                data,
                context_value=RequestContext(
                    request=request,
                    identity=identity,
                    services=services,
                    budget=budget,
                    loaders=Loaders(services),
                    turn=turn,
                ),
                query_document=document,
                validation_rules=validation_rules(
                    max_depth=self._settings.api_max_query_depth,
                    max_cost=self._settings.api_max_query_cost,
                    variables=data.get("variables"),
                ),
                error_formatter=self.format_error,
                logger=self._logger,
            )
            if budget.refusal is not None:
                # Refused as a whole: one error saying which limit, not a partial answer.
                raise budget.refusal
            body = await encode(result)
        except Exception as err:  # every failure must still answer in GraphQL's shape
            response = self._reject(classify(err))
            outcome = "rejected"
        else:
            outcome = "ok" if success and "errors" not in result else "error"
            # Without "data" nothing ran (validation failed): the request was bad as a whole.
            response = web.Response(
                body=body,
                status=200 if "data" in result else 400,
                content_type="application/json",
            )
        finally:
            if turn is not None:
                turn.release()
        self._metrics.graphql_requests.labels(operation, outcome).inc()
        self._metrics.graphql_seconds.labels(operation).observe(time.perf_counter() - started)
        return response
