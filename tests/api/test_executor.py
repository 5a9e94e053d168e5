"""``LeafObjectExecutor`` gives graphql-core's own answers, and takes its short path.

One battery of documents, over a schema whose leaf fields do everything a resolver can
(return plain values, enums, None, an Exception, an awaitable; raise; read their path),
runs through graphql-core's ``Executor`` and through ours: data and errors (message,
locations, path) must be the same. A spy on graphql-core's ``execute_fields`` shows which
objects took its path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from ariadne import EnumType, ObjectType, QueryType, make_executable_schema
from graphql import ExecutionResult, GraphQLObjectType, execute, parse
from graphql.execution import Executor
from support.api import SEED_QUERY, Api, add_job, put_files

from artifacts_api.gql.executor import LeafObjectExecutor, is_awaitable
from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.s3 import S3Client

TYPE_DEFS = """
enum Colour { RED GREEN }
type Item {
  name: String!
  size: Float!
  count: Int
  colour: Colour
  nick: String
  late: String!
  broken: String
  fatal: String!
  missing: String!
  exception: String
  badFloat: Float
  where: String!
  scaled(by: Int = 2): Float!
  id: ID!
}
type Box { label: String! items: [Item!]! maybe: [Item] }
type Query { box: Box! items(n: Int!): [Item!]! maybe: [Item] }
"""


class File:
    def __init__(self, index: int) -> None:
        self.name = f"dir/file-{index}.txt"
        self.size = index  # an int for a Float, as the api's files have
        self.count = index * 10
        self.colour = "RED" if index % 2 else "GREEN"
        self.id = index


def _schema() -> Any:
    query = QueryType()
    query.set_field("box", lambda *_: {"label": "box"})
    query.set_field("items", lambda _, __, n: [File(i) for i in range(n)])
    query.set_field("maybe", lambda *_: [File(i) for i in range(3)])
    box = ObjectType("Box")
    box.set_field("items", lambda *_: [File(i) for i in range(3)])
    box.set_field("maybe", lambda *_: [File(i) for i in range(3)])
    item = ObjectType("Item")

    async def late(file: File, _: Any) -> str:
        await asyncio.sleep(0)
        return file.name.upper()

    def broken(file: File, _: Any) -> str:
        raise ValueError(f"cannot read {file.name}")

    item.set_field("nick", lambda *_: None)
    item.set_field("late", late)
    item.set_field("broken", broken)
    item.set_field("fatal", lambda file, _: broken(file, _) if file.id == 1 else "ok")
    item.set_field("missing", lambda file, _: None if file.id == 2 else "here")
    item.set_field("exception", lambda file, _: RuntimeError(f"returned for {file.id}"))
    item.set_field("badFloat", lambda *_: "not a number")
    item.set_field("where", lambda _, info: ".".join(map(str, info.path.as_list())))
    item.set_field("scaled", lambda file, _, by: file.size * by)
    return make_executable_schema(TYPE_DEFS, [query, box, item, EnumType("Colour", {})])


SCHEMA = _schema()

DOCUMENTS = {
    "plain leaves": "{ items(n: 3) { name size count colour nick id __typename } }",
    "aliases, repeats, fragments and directives": """
        query ($skip: Boolean!) { items(n: 2) { a: name b: name name ...F
          size @skip(if: $skip) } }
        fragment F on Item { count @include(if: true) colour @skip(if: true) id }""",
    "an awaitable leaf among plain ones": "{ items(n: 3) { name late size } }",
    "two awaitable leaves": "{ items(n: 2) { one: late two: late name } }",
    "a nullable leaf that raises": "{ items(n: 2) { name broken } }",
    "a non-null leaf that raises, in a nullable list": "{ maybe { name fatal } }",
    "a non-null leaf that raises, up to the root": "{ box { label items { fatal } } }",
    "a non-null leaf that raises beside an awaitable": "{ box { items { late fatal } } }",
    "a non-null leaf that returns None": "{ items(n: 3) { missing name } }",
    "a leaf that returns an Exception": "{ items(n: 2) { exception } }",
    "a value its scalar refuses": "{ items(n: 1) { badFloat name } }",
    "each leaf's own path": "{ box { items { where w2: where } } items(n: 2) { where } }",
    "a leaf with an argument (graphql-core's path)": "{ items(n: 2) { name scaled(by: 3) } }",
    "a leaf with its default argument": "{ items(n: 2) { scaled name } }",
}


def _formatted(result: ExecutionResult) -> dict[str, Any]:
    return dict(result.formatted)


async def _run(document: str, executor_class: type[Executor[Any]], **kwargs: Any) -> Any:
    result = execute(
        SCHEMA,
        parse(document),
        variable_values={"skip": False},
        executor_class=executor_class,
        **kwargs,
    )
    if is_awaitable(result):
        result = await result
    # Both settle the awaitables of an object nulled by an error in the background.
    await asyncio.sleep(0.01)
    assert isinstance(result, ExecutionResult)
    return _formatted(result)


@pytest.fixture
def general_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The types whose objects graphql-core's own ``execute_fields`` completed."""
    taken: list[str] = []
    general = Executor.execute_fields

    def spy(self: Executor[Any], parent_type: GraphQLObjectType, *args: Any) -> Any:
        taken.append(parent_type.name)
        return general(self, parent_type, *args)

    monkeypatch.setattr(Executor, "execute_fields", spy)
    yield taken


@pytest.mark.parametrize("document", DOCUMENTS.values(), ids=DOCUMENTS.keys())
async def test_the_answer_is_graphql_cores(document: str) -> None:
    theirs = await _run(document, Executor)
    ours = await _run(document, LeafObjectExecutor, is_awaitable=is_awaitable)
    assert ours == theirs
    assert "data" in ours


async def test_objects_of_leaves_take_the_short_path(general_path: list[str]) -> None:
    ours = await _run("{ box { label items { name size late } } }", LeafObjectExecutor)
    assert len(ours["data"]["box"]["items"]) == 3
    # The root and Box (it has a list field) take graphql-core's path; Box's label and
    # every Item do not.
    assert general_path == ["Query", "Box"]


async def test_a_field_with_arguments_sends_its_objects_the_general_way(
    general_path: list[str],
) -> None:
    await _run("{ items(n: 3) { name scaled } }", LeafObjectExecutor)
    assert general_path == ["Query", "Item", "Item", "Item"]


async def test_the_apis_listing_takes_the_short_path(
    api: Api, s3: S3Client, store: LocalJobStore, general_path: list[str]
) -> None:
    """Through the api's endpoint (ariadne, its middleware, its context) as well."""
    job = "job-202601010000-abcdef"
    add_job(store, job)
    await put_files(s3, api.settings.phfs_bucket, "team-a", job, {"a.txt": b"a", "b/c": b"c"})

    result = await api.graphql(SEED_QUERY, {"id": job})

    assert [item["name"] for item in result.data["phJob"]["artifact"]["items"]] == ["a.txt", "b/c"]
    assert "PhJob" in general_path and "PhJobArtifactItem" not in general_path


def test_is_awaitable_agrees_with_graphql_core() -> None:
    from graphql.pyutils import is_awaitable as theirs

    async def coroutine() -> None:
        return None

    class Str(str):
        def __await__(self) -> Any:
            yield None

    running = coroutine()
    loop = asyncio.new_event_loop()
    try:
        values = ["a", 1, 1.5, True, None, {}, [], (), loop.create_future(), running, Str("x")]
        assert [is_awaitable(value) for value in values] == [theirs(value) for value in values]
        assert is_awaitable(Str("x")) and is_awaitable(running)
    finally:
        running.close()
        loop.close()
