"""Every failure the client reports, as a typed exception with a stable ``code``.

Errors the API returns keep the GraphQL ``extensions.code`` the API sent (``NOT_FOUND``,
``FORBIDDEN``, ``UNAUTHENTICATED``, ``BAD_USER_INPUT``, ``UNAVAILABLE``): a script can
catch ``NotFound`` or test ``err.code`` without parsing messages. Failures found on this
side (the API cannot be reached, a download does not match its checksum, a file would be
overwritten) have codes of their own, so the CLI's ``--json`` and exit codes can treat
every error alike. No error message ever contains the bearer token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from artifacts_client.models import CleanupRun, Job

__all__ = [
    "ApiError",
    "ArtifactExistsError",
    "BadUserInput",
    "ClientError",
    "ConnectionFailed",
    "DownloadError",
    "Forbidden",
    "IntegrityError",
    "NotFound",
    "ProtocolError",
    "Unauthenticated",
    "Unavailable",
    "UnsafeNameError",
    "WaitTimeout",
    "api_error",
]


class ClientError(Exception):
    """The base of every error this package raises."""

    code: str = "CLIENT_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ApiError(ClientError):
    """The API answered with a GraphQL error; ``code`` is its ``extensions.code``."""

    code_for_class: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        code: str,
        extensions: Mapping[str, Any] | None = None,
        errors: list[Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.extensions: dict[str, Any] = dict(extensions or {"code": code})
        # Every error of the response, the first of which this exception describes.
        self.errors: list[Mapping[str, Any]] = list(errors or [])


class NotFound(ApiError):
    code_for_class = "NOT_FOUND"


class Forbidden(ApiError):
    code_for_class = "FORBIDDEN"


class Unauthenticated(ApiError):
    code_for_class = "UNAUTHENTICATED"


class BadUserInput(ApiError):
    code_for_class = "BAD_USER_INPUT"


class Unavailable(ApiError):
    code_for_class = "UNAVAILABLE"


_BY_CODE: dict[str, type[ApiError]] = {
    cls.code_for_class: cls
    for cls in (NotFound, Forbidden, Unauthenticated, BadUserInput, Unavailable)
    if cls.code_for_class is not None
}


def api_error(
    message: str,
    code: str,
    *,
    extensions: Mapping[str, Any] | None = None,
    errors: list[Mapping[str, Any]] | None = None,
) -> ApiError:
    """The most specific ``ApiError`` for ``code``; unknown codes stay plain ``ApiError``."""
    cls = _BY_CODE.get(code, ApiError)
    return cls(message, code=code, extensions=extensions, errors=errors)


class ConnectionFailed(ClientError):
    """The API could not be reached, or did not answer in time."""

    code = "CONNECTION_FAILED"


class ProtocolError(ClientError):
    """Something answered, but not with the GraphQL JSON the API sends (a proxy's HTML page)."""

    code = "PROTOCOL_ERROR"


class WaitTimeout(ClientError, TimeoutError):
    """Waiting gave up; ``last`` is the job (or cleanup run) as it was last seen."""

    code = "TIMEOUT"

    def __init__(self, message: str, *, last: Job | CleanupRun) -> None:
        super().__init__(message)
        self.last = last


class DownloadError(ClientError):
    """A file could not be fetched from its download link."""

    code = "DOWNLOAD_FAILED"


class IntegrityError(DownloadError):
    """The bytes received do not match the listed size or sha256; nothing was kept."""

    code = "INTEGRITY_ERROR"

    def __init__(self, message: str, *, name: str, expected: str, actual: str) -> None:
        super().__init__(message)
        self.name = name
        self.expected = expected
        self.actual = actual


class ArtifactExistsError(ClientError, FileExistsError):
    """The destination file exists and overwriting was not asked for."""

    code = "FILE_EXISTS"


class UnsafeNameError(ClientError):
    """An artifact name that would land outside the destination folder (``..``, absolute)."""

    code = "UNSAFE_NAME"
