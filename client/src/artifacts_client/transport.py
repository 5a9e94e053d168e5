"""GraphQL over HTTP with the standard library, and the HTTP opener for download links.

``urllib`` is enough for a synchronous client: one POST per call, JSON in and out. Two
choices matter for safety. The bearer token goes only to the API: redirects are not
followed (urllib would carry the ``Authorization`` header to wherever a redirect points),
and download links, which S3 signs itself, are fetched by a separate opener that never
sees the token. And every way a request can fail becomes one of the typed errors of
``errors.py``, with a message that names the API address but never the token.
"""

from __future__ import annotations

import http.client
import importlib.metadata
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any

from artifacts_client.errors import ConnectionFailed, ProtocolError, api_error

__all__ = ["USER_AGENT", "GraphQLTransport", "download_opener", "graphql_url"]

_CHUNK = 64 * 1024


def _version() -> str:
    try:
        return importlib.metadata.version("artifacts-client")
    except importlib.metadata.PackageNotFoundError:
        return "0"


USER_AGENT = f"jobartifacts/{_version()} (python urllib)"
_ERROR_BODY_LIMIT = 1 << 20


def graphql_url(api_url: str) -> str:
    """The GraphQL endpoint for ``api_url``: the api's address, with or without ``/graphql``."""
    parsed = urllib.parse.urlsplit(api_url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"the API URL must be http(s)://host[:port], got {api_url!r}")
    if parsed.username is not None or parsed.password is not None:
        # Messages show the URL; a password in it would be shown too.
        raise ValueError("the API URL must not hold credentials; pass a token instead")
    path = parsed.path.rstrip("/")
    if not path.endswith("/graphql"):
        path = f"{path}/graphql"
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, path, "", ""))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx reaches the caller as an HTTPError


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(_NoRedirect())


def download_opener() -> urllib.request.OpenerDirector:
    """The opener for presigned links: follows redirects, sends no credentials of ours."""
    return urllib.request.build_opener()


def _reason(err: urllib.error.URLError) -> str:
    reason = err.reason
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason)


class GraphQLTransport:
    """Sends GraphQL documents to one API with one token; ``repr`` never shows the token."""

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 30.0) -> None:
        self.url = graphql_url(url)
        self.timeout = timeout
        self._token = token or None
        self._opener = _opener()

    def __repr__(self) -> str:
        return f"GraphQLTransport({self.url!r}, token={'set' if self._token else 'none'})"

    def _headers(self) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def route_url(self, path: str) -> str:
        """The URL of one of the API's own routes (``/jobs/<id>/logs``), beside GraphQL."""
        return self.url.removesuffix("/graphql") + path

    def stream(
        self, path: str, params: Mapping[str, str], *, timeout: float | None
    ) -> Iterator[bytes]:
        """GET one of the API's routes with the token; its body in chunks as they arrive.

        ``timeout`` bounds each wait for bytes (None: wait as long as the API is silent,
        for a followed log). A refusal raises its GraphQL error's type.
        """
        url = f"{self.route_url(path)}?{urllib.parse.urlencode(dict(params))}"
        headers = {k: v for k, v in self._headers().items() if k != "Content-Type"}
        headers["Accept"] = "text/plain, application/json"
        request = urllib.request.Request(url, headers=headers, method="GET")
        try:
            response = self._opener.open(request, timeout=timeout)
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read(_ERROR_BODY_LIMIT)
            err.close()
            self._result(status, raw)  # raises the API's error
            raise ProtocolError(f"{url} answered HTTP {status}") from None
        except urllib.error.URLError as err:
            raise ConnectionFailed(f"cannot reach the API at {self.url}: {_reason(err)}") from None
        except (OSError, http.client.HTTPException) as err:
            raise ConnectionFailed(
                f"the connection to the API at {self.url} failed: {err}"
            ) from None
        return self._chunks(response)

    def _chunks(self, response: Any) -> Iterator[bytes]:
        with response:
            try:
                while chunk := response.read1(_CHUNK):
                    yield chunk
            except TimeoutError:
                raise ConnectionFailed(
                    f"the API at {self.url} sent nothing for {self.timeout:g} s"
                ) from None
            except (OSError, http.client.HTTPException) as err:
                raise ConnectionFailed(f"the log from {self.url} was cut short: {err}") from None

    def execute(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``data`` of the response; the first GraphQL error, if any, raised as its type."""
        body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
        request = urllib.request.Request(
            self.url, data=body, headers=self._headers(), method="POST"
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as err:
            # The API answers refused requests (401, 400, 413, 503) with GraphQL errors.
            status, raw = err.code, err.read(_ERROR_BODY_LIMIT)
            err.close()
            if 300 <= status < 400:
                where = err.headers.get("Location", "elsewhere")
                raise ProtocolError(
                    f"the API at {self.url} redirects (HTTP {status}) to {where}; use that URL"
                ) from None
        except urllib.error.URLError as err:
            raise ConnectionFailed(f"cannot reach the API at {self.url}: {_reason(err)}") from None
        except TimeoutError:
            raise ConnectionFailed(
                f"the API at {self.url} did not answer within {self.timeout:g} s"
            ) from None
        except (OSError, http.client.HTTPException) as err:
            raise ConnectionFailed(
                f"the connection to the API at {self.url} failed: {err}"
            ) from None
        return self._result(status, raw)

    def _result(self, status: int, raw: bytes) -> dict[str, Any]:
        try:
            document = json.loads(raw)
        except ValueError:
            document = None
        if not isinstance(document, dict) or not (
            "data" in document or isinstance(document.get("errors"), list)
        ):
            raise ProtocolError(
                f"{self.url} answered HTTP {status} without a GraphQL response; "
                "is this the job artifacts API?"
            )
        errors = document.get("errors")
        if errors:
            first: dict[str, Any] = (
                errors[0] if isinstance(errors[0], dict) else {"message": str(errors[0])}
            )
            extensions = first.get("extensions")
            if not isinstance(extensions, dict):
                extensions = {}
            code = str(extensions.get("code") or "INTERNAL_SERVER_ERROR")
            message = str(first.get("message") or code)
            raise api_error(message, code, extensions=extensions, errors=list(errors))
        data = document.get("data")
        if not isinstance(data, dict):
            raise ProtocolError(f"{self.url} answered HTTP {status} with no data and no errors")
        return data
