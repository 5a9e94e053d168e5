"""``/graphql``: the aiohttp side of GraphQL, per the GraphQL over HTTP spec.

The handler authenticates, reads the request in whichever form it came (``transport.py``:
JSON or form POST, GET), parses the query and checks it against the spec's validation
rules (both cached by query text: clients repeat the same few documents, and the spec's
rules cost more than a small query's whole execution), builds the typed
``RequestContext`` and runs ``ariadne.graphql`` with the depth and cost limits. Every
answer is a GraphQL response with an ``extensions.code`` on each error:

- a request that is not a GraphQL request (bad JSON, no query, an unsupported media type):
  400 (413 too large, 415 media type, 406 Accept), ``UNAUTHENTICATED`` 401;
- a document that cannot run (syntax, validation, limits, variables): 400 with
  ``application/graphql-response+json``, 200 with ``application/json``, never ``data``;
- a mutation sent with GET: 405, it does not run;
- executed: 200, with errors beside the data that could be resolved.

A browser opening ``GET /graphql`` (HTML wanted, no query) gets the GraphiQL explorer.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from ariadne import graphql
from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    get_operation_ast,
    parse,
    specified_rules,
    validate,
)

from artifacts_api.budget import WorkBudget
from artifacts_api.errors import ApiError, BadUserInput, classify
from artifacts_api.explorer import explorer_page
from artifacts_api.gql.context import RequestContext, Turn
from artifacts_api.gql.executor import LeafObjectExecutor, is_awaitable
from artifacts_api.gql.limits import MAX_TOKENS, validation_rules
from artifacts_api.gql.loaders import Loaders
from artifacts_api.gql.schema import make_schema
from artifacts_api.gql.transport import (
    GraphQLRequest,
    MediaType,
    read_request,
    response_type,
    wants_explorer,
)
from artifacts_api.identity import Identity
from artifacts_api.jsonbody import dumps, encode
from artifacts_api.metrics import Metrics
from artifacts_api.services import SERVICES
from artifacts_api.settings import ApiSettings

__all__ = ["GraphQLEndpoint"]

log = logging.getLogger(__name__)
_INTROSPECTION = frozenset({"__schema", "__type", "__typename"})
_PARSE_CACHE = 512


def _response(
    body: dict[str, Any], *, status: int, media: MediaType, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=dumps(body),
        status=status,
        content_type=media.value,
        charset="utf-8",
        headers=headers,
    )


async def _result_response(result: dict[str, Any], *, media: MediaType) -> web.Response:
    """An executed result: encoded a slice at a time, so a big listing never holds the loop."""
    return web.Response(
        body=await encode(result), status=200, content_type=media.value, charset="utf-8"
    )


def _nothing_ran(result: dict[str, Any]) -> bool:
    """No field was executed: validation failed, or the variables could not be coerced
    (graphql-core answers those with ``data: null`` and errors that have no path)."""
    if "data" not in result:
        return True
    errors = result.get("errors") or []
    return result["data"] is None and bool(errors) and not any("path" in e for e in errors)


class _DebugLogger(logging.LoggerAdapter[logging.Logger]):
    """Ariadne logs every GraphQL error at ERROR; ``classify`` already logs what matters."""

    def error(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self.debug(msg, *args, **kwargs)


@dataclass(frozen=True, slots=True)
class _Checked:
    """A parsed document and what the spec's rules (which read no variables) found in it."""

    document: DocumentNode
    spec_errors: tuple[GraphQLError, ...]

    def validator(self) -> Any:
        """Ariadne's ``query_validator``: the cached spec errors, then the request's own rules.

        Ariadne hands over the spec's rules followed by ours (depth, and the cost, which
        reads this request's variables); only ours run again.
        """

        def validate_query(
            schema: GraphQLSchema,
            document_ast: DocumentNode,
            rules: Collection[type[ASTValidationRule]] = specified_rules,
            max_errors: int | None = None,
            **_: Any,
        ) -> list[GraphQLError]:
            ours = [rule for rule in rules if rule not in _SPEC_RULES]
            return [*self.spec_errors, *validate(schema, document_ast, ours, max_errors=max_errors)]

        return validate_query


_SPEC_RULES = frozenset(specified_rules)


class GraphQLEndpoint:
    def __init__(self, settings: ApiSettings, metrics: Metrics) -> None:
        self.schema = make_schema()
        self._settings = settings
        self._metrics = metrics
        self._check = functools.lru_cache(maxsize=_PARSE_CACHE)(self._check_uncached)
        self._logger = _DebugLogger(logging.getLogger("artifacts_api.gql.ariadne"), {})
        mutation = self.schema.mutation_type
        self._root_fields = {
            "query": frozenset(self.schema.query_type.fields if self.schema.query_type else ())
            | _INTROSPECTION,
            "mutation": frozenset(mutation.fields if mutation else ()) | {"__typename"},
        }

    def _check_uncached(self, query: str) -> _Checked:
        document = parse(query, max_tokens=MAX_TOKENS)
        return _Checked(document, tuple(validate(self.schema, document, specified_rules)))

    def _checked(self, query: str) -> _Checked:
        try:
            checked: _Checked = self._check(query)
        except GraphQLError as err:
            raise BadUserInput(f"the query cannot be parsed: {err.message}") from None
        except RecursionError:
            raise BadUserInput("the query is nested too deeply to be parsed") from None
        return checked

    def _operation(self, chosen: OperationDefinitionNode | None) -> str:
        """A bounded label: the operation type and the schema's root fields it selects."""
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

    def _reject(self, error: ApiError, media: MediaType) -> web.Response:
        self._metrics.graphql_errors.labels(error.code).inc()
        headers = {"WWW-Authenticate": "Bearer"} if error.http_status == 401 else None
        return _response(error.as_json(), status=error.http_status, media=media, headers=headers)

    def _unrunnable(self, error: ApiError, media: MediaType) -> web.Response:
        """A document that cannot run: the spec's status for the media type, no ``data``."""
        self._metrics.graphql_errors.labels(error.code).inc()
        status = 400 if media is MediaType.GRAPHQL_RESPONSE else 200
        return _response(error.as_json(), status=status, media=media)

    async def _run(
        self,
        request: web.Request,
        identity: Identity,
        asked: GraphQLRequest,
        media: MediaType,
    ) -> tuple[web.Response, str, str]:
        """Parse, check and execute: the response, the outcome and the operation label."""
        try:
            checked = self._checked(asked.query)
        except BadUserInput as err:
            return self._unrunnable(err, media), "rejected", "invalid"
        chosen = get_operation_ast(checked.document, asked.operation_name)
        operation = self._operation(chosen)
        if request.method == "GET" and chosen and chosen.operation is not OperationType.QUERY:
            refused = BadUserInput(
                f"GET runs queries only: send this {chosen.operation.value} with POST"
            )
            self._metrics.graphql_errors.labels(refused.code).inc()
            response = _response(
                refused.as_json(), status=405, media=media, headers={"Allow": "POST"}
            )
            return response, "rejected", operation
        services = request.app[SERVICES]
        budget = WorkBudget(
            max_objects=self._settings.api_max_listed_objects,
            max_links=self._settings.api_max_signed_links,
        )
        turn = Turn(services.listing_slots)
        try:
            success, result = await graphql(
                self.schema,
                asked.as_data(),
                context_value=RequestContext(
                    request=request,
                    identity=identity,
                    services=services,
                    budget=budget,
                    loaders=Loaders(services),
                    turn=turn,
                ),
                query_document=checked.document,
                query_validator=checked.validator(),
                validation_rules=validation_rules(
                    max_depth=self._settings.api_max_query_depth,
                    max_cost=self._settings.api_max_query_cost,
                    variables=asked.variables,
                ),
                error_formatter=self.format_error,
                logger=self._logger,
                execution_context_class=LeafObjectExecutor,
                is_awaitable=is_awaitable,
            )
        finally:
            turn.release()
        if budget.refusal is not None:
            # Refused as a whole: one error saying which limit, not a partial answer.
            raise budget.refusal
        if _nothing_ran(result):
            status = 400 if media is MediaType.GRAPHQL_RESPONSE else 200
            return (
                _response({"errors": result["errors"]}, status=status, media=media),
                ("error"),
                operation,
            )
        outcome = "ok" if success and "errors" not in result else "error"
        return await _result_response(result, media=media), outcome, operation

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if wants_explorer(request):
            return explorer_page()
        if request.method not in ("GET", "POST"):
            error = BadUserInput(f"{request.method} is not GraphQL here: use POST or GET")
            return _response(
                error.as_json(),
                status=405,
                media=MediaType.JSON,
                headers={"Allow": "GET, POST"},
            )
        started = time.perf_counter()
        operation = "unknown"
        media = MediaType.JSON
        try:
            media = response_type(request.headers.get("Accept"))
            services = request.app[SERVICES]
            identity = await services.authenticator.authenticate(
                request.headers.get("Authorization")
            )
            asked = await read_request(request, max_body=self._settings.api_max_body_bytes)
            response, outcome, operation = await self._run(request, identity, asked, media)
        except Exception as err:  # every failure must still answer in GraphQL's shape
            response = self._reject(classify(err), media)
            outcome = "rejected"
        self._metrics.graphql_requests.labels(operation, outcome).inc()
        self._metrics.graphql_seconds.labels(operation).observe(time.perf_counter() - started)
        return response
