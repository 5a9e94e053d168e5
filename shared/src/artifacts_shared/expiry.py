"""The ``expiredAt`` object: decimal UNIX seconds as text, nothing else.

Parsing is tolerant of surrounding whitespace (``date +%s > expiredAt`` leaves a newline)
and strict otherwise: a sign, a fraction, a date string or anything else is refused, so a
garbled file is reported rather than guessed at. The janitor must never read garbage as
"already expired".
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

__all__ = [
    "InvalidExpiredAt",
    "expiry_after",
    "format_expired_at",
    "is_expired",
    "parse_expired_at",
    "to_datetime",
]

_DIGITS = re.compile(r"[0-9]{1,20}")
_WHITESPACE = " \t\r\n\v\f"
MAX_BYTES = 64
"""Anything longer than this is not an ``expiredAt``; readers need not fetch more."""


class InvalidExpiredAt(ValueError):
    """The content of an ``expiredAt`` object is not decimal UNIX seconds."""


def parse_expired_at(raw: bytes | str) -> int:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("ascii")
        except UnicodeDecodeError:
            raise InvalidExpiredAt(f"not ASCII text: {raw[:MAX_BYTES]!r}") from None
    text = raw.strip(_WHITESPACE)
    if not _DIGITS.fullmatch(text):
        shown = text if len(text) <= MAX_BYTES else text[:MAX_BYTES] + "..."
        reason = "empty" if not text else f"not decimal UNIX seconds: {shown!r}"
        raise InvalidExpiredAt(reason)
    return int(text)


def format_expired_at(expired_at: int) -> str:
    if expired_at < 0:
        raise ValueError(f"expiredAt must not be negative, got {expired_at}")
    return str(expired_at)


def expiry_after(ended_at: float, retention_seconds: int) -> int | None:
    """When artifacts of a job that ended at ``ended_at`` expire; None keeps them forever."""
    if retention_seconds < 0:
        raise ValueError(f"retention must not be negative, got {retention_seconds}")
    if retention_seconds == 0:
        return None
    return int(ended_at) + retention_seconds


def is_expired(expired_at: int, now: float) -> bool:
    return expired_at <= now


def to_datetime(expired_at: int) -> datetime | None:
    """The expiry as an aware UTC datetime, or None when it lies beyond year 9999."""
    try:
        return datetime.fromtimestamp(expired_at, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
