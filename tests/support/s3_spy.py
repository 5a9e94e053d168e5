"""Real S3 clients with a window on their calls: spies at our own boundary.

``DeleteSpy``: every ``DeleteObjects`` call is recorded (the keys of each request, in
order) and forwarded to the real server. Keys chosen by ``refuse`` are not forwarded: they
come back as per-key errors, exactly as S3 reports a key it would not delete
(``AccessDenied``), so a test can make one folder undeletable on a server that has no
permissions to deny.

``S3Spy``: every request is forwarded; ``before(operation, kwargs)`` runs ahead of each
(to change the world at an exact moment of a delivery), and ``calls`` lists each
``(operation, Key)`` that succeeded, in order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from artifacts_shared.s3 import S3Client


class DeleteSpy:
    def __init__(self, s3: S3Client, *, refuse: Callable[[str], bool] = lambda key: False):
        self._s3 = s3
        self._refuse = refuse
        self.requests: list[list[str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s3, name)

    async def delete_objects(self, *, Bucket: str, Delete: dict[str, Any]) -> dict[str, Any]:
        keys = [entry["Key"] for entry in Delete["Objects"]]
        self.requests.append(keys)
        refused = [key for key in keys if self._refuse(key)]
        passed = [{"Key": key} for key in keys if not self._refuse(key)]
        response: dict[str, Any] = {}
        if passed:
            response = dict(
                await self._s3.delete_objects(Bucket=Bucket, Delete={**Delete, "Objects": passed})
            )
        errors = [*response.get("Errors", [])]
        errors += [
            {"Key": key, "Code": "AccessDenied", "Message": "Access Denied"} for key in refused
        ]
        return {**response, "Errors": errors}

    def position(self, key: str) -> int:
        """The index of the request that carried ``key``."""
        return next(i for i, keys in enumerate(self.requests) if key in keys)


class S3Spy:
    def __init__(
        self,
        s3: S3Client,
        *,
        before: Callable[[str, dict[str, Any]], None] = lambda operation, kwargs: None,
    ) -> None:
        self._s3 = s3
        self._before = before
        self.calls: list[tuple[str, str | None]] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._s3, name)
        if name.startswith("_") or name in {"meta", "get_paginator", "exceptions"}:
            return attribute

        async def call(**kwargs: Any) -> Any:
            self._before(name, kwargs)
            result = await attribute(**kwargs)
            self.calls.append((name, kwargs.get("Key")))
            return result

        return call
