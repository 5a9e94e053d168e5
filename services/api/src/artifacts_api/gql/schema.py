"""The executable schema: the SDL files of ``schema/`` bound to one module per type.

``convert_names_case`` maps camelCase fields and arguments to snake_case, so plain fields
resolve from our dataclasses' attributes and resolvers receive snake_case keywords.
"""

from __future__ import annotations

from pathlib import Path

from ariadne import load_schema_from_path, make_executable_schema
from graphql import GraphQLSchema

from artifacts_api.gql import (
    artifact,
    cleanup,
    logs,
    mutation,
    phjob,
    query,
    retention,
    storefile,
    user,
)

__all__ = ["SCHEMA_DIR", "make_schema"]

SCHEMA_DIR = Path(__file__).resolve().parent / "schema"


def make_schema() -> GraphQLSchema:
    return make_executable_schema(
        load_schema_from_path(SCHEMA_DIR),
        *query.bindables,
        *mutation.bindables,
        *phjob.bindables,
        *artifact.bindables,
        *cleanup.bindables,
        *user.bindables,
        *storefile.bindables,
        *logs.bindables,
        *retention.bindables,
        convert_names_case=True,
    )
