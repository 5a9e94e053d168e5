"""Which fields a query selects below the current one, so resolvers skip unneeded reads.

``artifact`` reads the manifest only when ``sha256``/``skipped``/``skipReason`` is asked
for and ``expiredAt`` only when that is: the common listing costs one S3 listing, nothing
more. Fragments and inline fragments are followed; names are collected at every depth.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLResolveInfo,
    InlineFragmentNode,
    SelectionSetNode,
)

__all__ = ["selected_names"]


def selected_names(info: GraphQLResolveInfo[Any]) -> frozenset[str]:
    names: set[str] = set()
    seen_fragments: set[str] = set()

    def walk(selection_set: SelectionSetNode | None) -> None:
        if selection_set is None:
            return
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                names.add(selection.name.value)
                walk(selection.selection_set)
            elif isinstance(selection, InlineFragmentNode):
                walk(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = info.fragments.get(name)
                if fragment is not None and name not in seen_fragments:
                    seen_fragments.add(name)
                    walk(fragment.selection_set)

    for node in info.field_nodes:
        walk(node.selection_set)
    return frozenset(names)
