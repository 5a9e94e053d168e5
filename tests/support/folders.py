"""Job folders as the collector leaves them, and a clock a test can set."""

from __future__ import annotations

from collections.abc import Mapping

from artifacts_shared.layout import JobPrefix, expired_at_key, job_prefix, legacy_expired_at_key

NOW = 1_800_000_000
"""2027-01-15 08:00 UTC: "now" for every test that sets the clock."""


class FixedClock:
    def __init__(self, now: float = NOW) -> None:
        self.value = now

    def now(self) -> float:
        return self.value


def folder(
    group: str,
    job: str,
    files: Mapping[str, bytes] | None = None,
    *,
    expired_at: bytes | None = None,
    legacy_expired_at: bytes | None = None,
    manifest: bool = True,
) -> tuple[JobPrefix, dict[str, bytes]]:
    """A job folder's prefix and objects: files, then manifest and expiry as asked."""
    prefix = job_prefix(group, job)
    objects = {f"{prefix}{name}": body for name, body in (files or {"a.txt": b"hello\n"}).items()}
    if manifest:
        objects[f"{prefix}.primehub/metadata/manifest.json"] = b'{"version": 1}'
    if expired_at is not None:
        objects[expired_at_key(prefix)] = expired_at
    if legacy_expired_at is not None:
        objects[legacy_expired_at_key(prefix)] = legacy_expired_at
    return prefix, objects
