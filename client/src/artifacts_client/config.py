"""Where the client finds the API and the caller's token when it is not told.

The environment is the usual place for both in notebooks, CI jobs and shells:
``JOBARTIFACTS_API_URL`` (default: the dev stack of ``make run``), ``JOBARTIFACTS_TOKEN``
or ``JOBARTIFACTS_TOKEN_FILE`` (a file holding the token, e.g. a mounted secret, which
keeps it out of shell history and process listings).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["DEFAULT_API_URL", "ENV_API_URL", "ENV_TOKEN", "ENV_TOKEN_FILE", "api_url", "token"]

DEFAULT_API_URL = "http://127.0.0.1:8080"
ENV_API_URL = "JOBARTIFACTS_API_URL"
ENV_TOKEN = "JOBARTIFACTS_TOKEN"
ENV_TOKEN_FILE = "JOBARTIFACTS_TOKEN_FILE"


def api_url(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return explicit or env.get(ENV_API_URL) or DEFAULT_API_URL


def read_token_file(path: str | Path) -> str:
    """The token in ``path``, without the trailing newline editors add."""
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as err:
        raise ValueError(f"cannot read the token file {path}: {err.strerror or err}") from None


def token(
    explicit: str | None = None,
    token_file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> str | None:
    """The bearer token: an explicit one, its file, the environment's, or none (dev stack)."""
    env = os.environ if env is None else env
    if explicit:
        return explicit
    if token_file:
        return read_token_file(token_file)
    if env.get(ENV_TOKEN):
        return env[ENV_TOKEN].strip()
    if env.get(ENV_TOKEN_FILE):
        return read_token_file(env[ENV_TOKEN_FILE])
    return None
