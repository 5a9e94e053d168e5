"""A GraphQL result as JSON bytes, encoded a slice at a time, whole numbers as integers.

``json.dumps`` of a 100,000-file listing is one C call of a good part of a second that no
other request can interrupt. Long lists are encoded ``_SLICE`` items at a time, with a
yield to the event loop between slices; everything else goes through ``json.dumps`` as
before. The bytes are the same as one ``json.dumps(value)`` (compact separators).

Whole-number floats are written as integers: sizes are ``Float`` (exact beyond 2 GiB,
where ``Int`` stops) and PrimeHub's clients expect ``6``, not ``6.0``. That pass visits
every value, so it runs slice by slice too: over a whole 100,000-file answer it held
the loop for about 120 ms.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

__all__ = ["dumps", "encode"]

_SLICE = 500
_SEPARATORS = (",", ":")
_EXACT_FLOAT = 2**53


def _integral(value: dict[str, Any] | list[Any]) -> None:
    """Whole-number floats become integers, in place and by exact type: it visits every
    value of every response."""
    entries = value.items() if type(value) is dict else enumerate(value)
    for key, item in entries:
        kind = type(item)
        if kind is float:
            if item.is_integer() and -_EXACT_FLOAT <= item <= _EXACT_FLOAT:
                value[key] = int(item)  # type: ignore[index]
        elif kind is dict or kind is list:
            _integral(item)


def _dumps(value: Any) -> str:
    if type(value) is dict or type(value) is list:
        _integral(value)
    elif type(value) is float and value.is_integer() and -_EXACT_FLOAT <= value <= _EXACT_FLOAT:
        value = int(value)
    return json.dumps(value, separators=_SEPARATORS)


def dumps(value: dict[str, Any]) -> bytes:
    """A small body in one go (errors, refusals)."""
    return _dumps(value).encode()


def _large(value: Any) -> bool:
    """Whether ``value`` holds a list longer than a slice anywhere inside."""
    if isinstance(value, list):
        return len(value) > _SLICE or any(_large(item) for item in value)
    if isinstance(value, dict):
        return any(_large(item) for item in value.values())
    return False


async def _parts(value: Any) -> AsyncIterator[str]:
    if isinstance(value, list) and len(value) > _SLICE:
        yield "["
        for start in range(0, len(value), _SLICE):
            if start:
                yield ","
                await asyncio.sleep(0)
            yield _dumps(value[start : start + _SLICE])[1:-1]
        yield "]"
    elif isinstance(value, dict) and _large(value):
        yield "{"
        for index, (key, item) in enumerate(value.items()):
            yield f"{',' if index else ''}{_dumps(key)}:"
            async for part in _parts(item):
                yield part
        yield "}"
    elif isinstance(value, list) and _large(value):
        yield "["
        for index, item in enumerate(value):
            if index:
                yield ","
            async for part in _parts(item):
                yield part
        yield "]"
    else:
        yield _dumps(value)


async def encode(value: Any) -> bytes:
    return "".join([part async for part in _parts(value)]).encode()
