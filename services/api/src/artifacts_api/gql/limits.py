"""Limits on what one query may ask: size, depth and cost, checked before anything runs.

The body size is capped by aiohttp (``API_MAX_BODY_BYTES``); the parser stops at a number
of tokens; validation refuses queries nested deeper than ``API_MAX_QUERY_DEPTH`` and those
whose estimated cost exceeds ``API_MAX_QUERY_COST`` (Ariadne's cost validator: every
field costs 1, a job page multiplies by ``first`` (and ``last``), an artifact or store
listing costs more, since it is an S3 listing).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from ariadne.validation import cost_validator
from graphql import (
    ASTValidationRule,
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)

__all__ = ["COST_MAP", "MAX_TOKENS", "validation_rules"]

MAX_TOKENS = 20_000
"""The explorer's introspection query is about 300 tokens; real queries far fewer."""

COST_MAP: dict[str, dict[str, Any]] = {
    "Query": {
        "phJob": {"complexity": 2},
        "phJobs": {"complexity": 2, "multipliers": ["first"]},
        # With `page` alone a page holds 10 jobs: counted once, the cost is at most 10 times low.
        "phJobsConnection": {"complexity": 2, "multipliers": ["first", "last"]},
        "files": {"complexity": 10},  # an S3 listing
    },
    # Reading a page of a log reads the log up to its end (to count its lines).
    "PhJob": {"artifact": {"complexity": 10}, "logs": {"complexity": 20}},
    # One S3 page of `first` entries: their fields cost `first` times (items are charged
    # when they run, by the request's WorkBudget).
    "PhJobArtifact": {"entries": {"complexity": 1, "multipliers": ["first"]}},
}


class DepthLimit(ValidationRule):
    """Refuse operations nested deeper than ``max_depth`` (introspection excluded)."""

    max_depth = 10

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self._fragment_depths: dict[str, int] = {}
        self._in_progress: set[str] = set()

    def _depth(self, selection_set: SelectionSetNode | None) -> int:
        if selection_set is None:
            return 0
        return max((self._selection_depth(s) for s in selection_set.selections), default=0)

    def _selection_depth(self, selection: SelectionNode) -> int:
        if isinstance(selection, FieldNode):
            if selection.name.value.startswith("__"):
                return 0  # bounded by graphql-core's MaxIntrospectionDepthRule
            return 1 + self._depth(selection.selection_set)
        if isinstance(selection, InlineFragmentNode):
            return self._depth(selection.selection_set)
        if isinstance(selection, FragmentSpreadNode):
            return self._fragment_depth(selection.name.value)
        return 0

    def _fragment_depth(self, name: str) -> int:
        # Memoized, so fragments spread many times are measured once.
        if name in self._fragment_depths:
            return self._fragment_depths[name]
        fragment = self.context.get_fragment(name)
        if fragment is None or name in self._in_progress:
            return 0  # unknown fragments and cycles are other rules' errors
        self._in_progress.add(name)
        depth = self._depth(fragment.selection_set)
        self._in_progress.discard(name)
        self._fragment_depths[name] = depth
        return depth

    def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
        depth = self._depth(node.selection_set)
        if depth > self.max_depth:
            self.report_error(
                GraphQLError(
                    f"the query is {depth} levels deep; at most {self.max_depth} are allowed",
                    node,
                    extensions={"code": "BAD_USER_INPUT", "depth": depth},
                )
            )


def depth_limit(max_depth: int) -> type[ASTValidationRule]:
    return type("DepthLimit", (DepthLimit,), {"max_depth": max_depth})


def validation_rules(
    *, max_depth: int, max_cost: int, variables: dict[str, Any] | None
) -> Collection[type[ASTValidationRule]]:
    return (
        depth_limit(max_depth),
        cost_validator(
            maximum_cost=max_cost, default_cost=1, variables=variables, cost_map=COST_MAP
        ),
    )
