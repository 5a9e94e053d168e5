"""graphql-core's executor with a short path for objects whose selected fields are leaves.

A listing answers with up to 100,000 ``PhJobArtifactItem``s of three or four scalar
fields each. graphql-core completes every field of every one through the general path:
``execute_field``, then ``complete_value`` for the non-null wrapper, again for the
scalar, ``to_nodes``, two awaitable checks: about 3 µs a field, the largest part of what
the api spends on a file (``bench/bench_listing.py``). For a selection made only of
scalar and enum fields without arguments that path does nothing a single loop cannot,
so ``LeafObjectExecutor`` runs one: for each field the same ``GraphQLResolveInfo`` (with
its own path), the field's own resolver, the scalar's own ``coerce_output_value``, the
same errors and the same null handling (``tests/api/test_executor.py`` runs one battery
of documents through both executors and compares the answers). A field whose resolver
returns an awaitable is completed by graphql-core's own ``complete_awaitable_value``.
Everything else (objects, lists, arguments, middleware) takes graphql-core's path.

``execute_fields`` is not part of graphql-core's public API (``executor_class`` is), so
the pin in constraints.txt and that test guard it.

``is_awaitable`` is the check graphql-core makes after every resolver and every
completion; it tells the built-in types of values a resolver returns at once, without
the three attribute lookups of graphql-core's own check.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, NamedTuple, TypeGuard

from graphql import (
    FieldNode,
    GraphQLField,
    GraphQLFieldResolver,
    GraphQLLeafType,
    GraphQLObjectType,
    GraphQLResolveInfo,
    Undefined,
    get_nullable_type,
    is_leaf_type,
    is_non_null_type,
)
from graphql.execution import Executor
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.pyutils import Path, gather_with_cancel
from graphql.pyutils import is_awaitable as graphql_is_awaitable

__all__ = ["LeafObjectExecutor", "is_awaitable"]

_NEVER_AWAITABLE = frozenset({str, int, float, bool, type(None), dict, list, tuple})


def is_awaitable(value: Any) -> TypeGuard[Awaitable[Any]]:
    """graphql-core's ``is_awaitable``, answered at once for the built-in value types."""
    return type(value) not in _NEVER_AWAITABLE and graphql_is_awaitable(value)


class _LeafField(NamedTuple):
    response_name: str
    definition: GraphQLField
    details: FieldDetailsList
    nodes: list[FieldNode]
    resolve: GraphQLFieldResolver
    scalar: GraphQLLeafType
    non_null: bool


_Plan = tuple[_LeafField, ...] | None


class LeafObjectExecutor(Executor[Any]):
    """graphql-core's ``Executor``; objects of leaf fields are completed in one loop."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Keyed like graphql-core's own subfield cache, by the identity of the field set,
        # which is kept alive beside its plan so that the identity cannot be reused.
        self._plans: dict[tuple[str, int], tuple[GroupedFieldSet, _Plan]] = {}

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> Any:
        key = (parent_type.name, id(grouped_field_set))
        planned = self._plans.get(key)
        if planned is None:
            planned = (grouped_field_set, self._plan(parent_type, grouped_field_set))
            self._plans[key] = planned
        plan = planned[1]
        if plan is None:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        results: dict[str, Any] = {}
        awaited: list[str] = []
        for field in plan:
            field_path = Path(path, field.response_name, parent_type.name)
            info = self._info(field, parent_type, field_path)
            try:
                result = field.resolve(source_value, info)
                if self.is_awaitable(result):
                    results[field.response_name] = self.complete_awaitable_value(
                        field.definition.type,
                        field.details,
                        info,
                        field_path,
                        result,
                        position_context,
                    )
                    awaited.append(field.response_name)
                    continue
                results[field.response_name] = self._leaf(field, info, result)
            except Exception as raw_error:
                try:
                    self.handle_field_error(
                        raw_error, field.definition.type, field.details, field_path
                    )
                except Exception:
                    if awaited:
                        self.settle_in_background([results[name] for name in awaited])
                    raise
                results[field.response_name] = None
        if not awaited:
            return results
        return self._gathered(results, awaited)

    def _plan(self, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet) -> _Plan:
        """The fields as leaves, or None when any is not one (graphql-core's path then)."""
        if self.middleware_manager is not None:
            return None
        fields: list[_LeafField] = []
        for response_name, details in grouped_field_set.items():
            node = details[0].node
            definition = self.schema.get_field(parent_type, node.name.value)
            if definition is None:
                continue  # graphql-core leaves it out of the answer
            declared = definition.type
            scalar = get_nullable_type(declared)
            if not is_leaf_type(scalar) or definition.args or node.arguments:
                return None
            fields.append(
                _LeafField(
                    response_name=response_name,
                    definition=definition,
                    details=details,
                    nodes=[detail.node for detail in details],
                    resolve=definition.resolve or self.field_resolver,
                    scalar=scalar,
                    non_null=is_non_null_type(declared),
                )
            )
        return tuple(fields)

    def _info(
        self, field: _LeafField, parent_type: GraphQLObjectType, path: Path
    ) -> GraphQLResolveInfo[Any]:
        return GraphQLResolveInfo(
            field.nodes[0].name.value,
            field.nodes,
            field.definition.type,
            parent_type,
            path,
            self.schema,
            self.fragment_definitions,
            self.root_value,
            self.operation,
            self.variable_values,
            self.context_value,
            self.is_awaitable,
            self.abort_signal,
            self.async_helpers,
        )

    def _leaf(self, field: _LeafField, info: GraphQLResolveInfo[Any], result: Any) -> Any:
        """graphql-core's ``complete_value`` for a (non-null) leaf, step for step."""
        if isinstance(result, Exception):
            raise result
        if result is None or result is Undefined:
            if field.non_null:
                raise TypeError(
                    "Cannot return null for non-nullable field"
                    f" {info.parent_type}.{info.field_name}."
                )
            return None
        return self.complete_leaf_value(field.scalar, result)

    async def _gathered(self, results: dict[str, Any], awaited: list[str]) -> dict[str, Any]:
        values = await gather_with_cancel(*(results[name] for name in awaited))
        results.update(zip(awaited, values, strict=True))
        return results
