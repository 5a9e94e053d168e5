"""The api's errors and their stable codes (ARCHITECTURE section 5).

Resolvers and routes raise ``ApiError`` subclasses; graphql-core copies an original
error's ``extensions`` into the GraphQL error, so the code reaches the client unchanged.
Failures of a backend (S3, Redis, Kubernetes, the identity provider) arrive as the
backend's own exceptions; ``classify`` turns them into ``Unavailable`` in one place so
no code path can answer an outage with a stack trace or an HTML 500.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

import aiohttp
import botocore.exceptions
import redis.exceptions

__all__ = [
    "ApiError",
    "BadUserInput",
    "Forbidden",
    "InternalError",
    "NotFound",
    "PayloadTooLarge",
    "Unauthenticated",
    "Unavailable",
    "classify",
]

log = logging.getLogger(__name__)


class ApiError(Exception):
    code: ClassVar[str] = "INTERNAL_SERVER_ERROR"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        # graphql-core reads this attribute when it wraps the exception.
        self.extensions: dict[str, Any] = {"code": self.code, **details}

    def as_json(self) -> dict[str, Any]:
        """The error as a GraphQL response body, for routes that are not GraphQL."""
        return {"errors": [{"message": self.message, "extensions": self.extensions}]}


class NotFound(ApiError):
    code = "NOT_FOUND"
    http_status = 404


class Forbidden(ApiError):
    code = "FORBIDDEN"
    http_status = 403


class Unauthenticated(ApiError):
    code = "UNAUTHENTICATED"
    http_status = 401


class BadUserInput(ApiError):
    code = "BAD_USER_INPUT"
    http_status = 400


class PayloadTooLarge(BadUserInput):
    http_status = 413


class Unavailable(ApiError):
    code = "UNAVAILABLE"
    http_status = 503


class InternalError(ApiError):
    code = "INTERNAL_SERVER_ERROR"
    http_status = 500


def classify(error: BaseException) -> ApiError:
    """The ``ApiError`` a client should see for ``error``; unknown errors are logged."""
    if isinstance(error, ApiError):
        return error
    if isinstance(error, botocore.exceptions.ClientError):
        # S3 refusing *our* request (bad credentials, missing bucket, 5xx): from the
        # caller's view the storage is unusable, whatever the reason.
        code = error.response.get("Error", {}).get("Code", "?")
        log.warning("S3 refused a request: %s", error)
        return Unavailable(f"object storage refused the request ({code})", backend="s3")
    if isinstance(error, botocore.exceptions.BotoCoreError):
        log.warning("S3 is unreachable: %s", error)
        return Unavailable("object storage is unavailable", backend="s3")
    if isinstance(error, redis.exceptions.RedisError):
        log.warning("Redis is unreachable: %s", error)
        return Unavailable("the queue (Redis) is unavailable", backend="redis")
    if isinstance(error, aiohttp.ClientError | asyncio.TimeoutError | ConnectionError):
        log.warning("a backend is unreachable: %r", error)
        return Unavailable("a backend service is unavailable")
    log.error("unexpected error", exc_info=error)
    return InternalError("internal error")
