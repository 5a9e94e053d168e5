"""The PHFS object layout (ARCHITECTURE section 3): where a job's artifacts live.

``groups/<grouppath>/jobArtifacts/<job>/<relative path>`` for the files, and the metadata
folders ``.primehub/metadata/`` (ours) and ``.metadata/`` (PrimeHub's releases) beside them.

Names come from users, so every function that builds a key refuses a name that could
escape its prefix; a refused name raises ``UnsafeNameError`` with the reason.
"""

from __future__ import annotations

import re
from typing import NewType

__all__ = [
    "GROUPS_ROOT",
    "METADATA_DIRS",
    "GroupPath",
    "JobName",
    "JobPrefix",
    "ObjectKey",
    "UnsafeNameError",
    "artifact_key",
    "check_job_name",
    "expired_at_key",
    "group_path",
    "is_metadata",
    "job_artifacts_root",
    "job_log_key",
    "job_prefix",
    "legacy_expired_at_key",
    "manifest_key",
    "parse_job_prefix",
    "relative_name",
    "retention_record_key",
]

GroupPath = NewType("GroupPath", str)
"""A group's folder name under ``groups/``: the group name lower-cased, ``_`` made ``-``."""
JobName = NewType("JobName", str)
JobPrefix = NewType("JobPrefix", str)
"""``groups/<grouppath>/jobArtifacts/<job>/``, always with the trailing slash."""
ObjectKey = NewType("ObjectKey", str)

GROUPS_ROOT = "groups/"
JOB_ARTIFACTS = "jobArtifacts"
METADATA_DIR = ".primehub/metadata/"
LEGACY_METADATA_DIR = ".metadata/"
METADATA_DIRS = frozenset({".primehub", ".metadata"})
"""First path segments that hold metadata: never listed as artifacts, never written as one."""

_MAX_NAME = 253  # a Kubernetes object name's limit, and far below S3's 1024-byte key limit
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class UnsafeNameError(ValueError):
    """A group, job or artifact name that is empty or could escape its prefix."""


def _check_segment(kind: str, name: str) -> None:
    if not name:
        raise UnsafeNameError(f"{kind} name is empty")
    if name in {".", ".."}:
        raise UnsafeNameError(f"{kind} name {name!r} is a relative path step")
    if "/" in name or "\\" in name:
        raise UnsafeNameError(f"{kind} name {name!r} contains a path separator")
    if _CONTROL.search(name):
        raise UnsafeNameError(f"{kind} name {name!r} contains a control character")
    if name != name.strip():
        raise UnsafeNameError(f"{kind} name {name!r} has leading or trailing whitespace")
    if len(name) > _MAX_NAME:
        raise UnsafeNameError(f"{kind} name is longer than {_MAX_NAME} characters")


def group_path(group_name: str) -> GroupPath:
    """PrimeHub's mapping of a group name to its folder: ``ML_Team`` -> ``ml-team``."""
    _check_segment("group", group_name)
    return GroupPath(group_name.lower().replace("_", "-"))


def check_job_name(job: str) -> JobName:
    _check_segment("job", job)
    return JobName(job)


def job_artifacts_root(group: GroupPath) -> str:
    """``groups/<grouppath>/jobArtifacts/``: the folder that holds one group's job folders."""
    _check_segment("group", group)
    return f"{GROUPS_ROOT}{group}/{JOB_ARTIFACTS}/"


def job_prefix(group_name: str, job: str) -> JobPrefix:
    """The prefix of a job's artifact folder, from the group's *name* (not its path)."""
    return JobPrefix(f"{job_artifacts_root(group_path(group_name))}{check_job_name(job)}/")


def expired_at_key(prefix: JobPrefix) -> ObjectKey:
    return ObjectKey(f"{prefix}{METADATA_DIR}expiredAt")


def legacy_expired_at_key(prefix: JobPrefix) -> ObjectKey:
    """Where PrimeHub's own releases wrote the expiry; read when ours is absent."""
    return ObjectKey(f"{prefix}{LEGACY_METADATA_DIR}expiredAt")


def manifest_key(prefix: JobPrefix) -> ObjectKey:
    return ObjectKey(f"{prefix}{METADATA_DIR}manifest.json")


def job_log_key(prefix: JobPrefix) -> ObjectKey:
    """The job's output, delivered with its artifacts: metadata, so never listed as one."""
    return ObjectKey(f"{prefix}{METADATA_DIR}job.log")


def retention_record_key(prefix: JobPrefix) -> ObjectKey:
    """Who last changed the folder's expiry, when and why: written by the api, signed."""
    return ObjectKey(f"{prefix}{METADATA_DIR}retention.json")


def is_metadata(relative: str) -> bool:
    """Whether a path relative to the job folder lies in a metadata folder."""
    return relative.split("/", 1)[0] in METADATA_DIRS


def artifact_key(prefix: JobPrefix, relative: str) -> ObjectKey:
    """The key of an artifact file, refusing paths that escape or shadow the metadata.

    Any character but NUL is allowed inside a segment (users name files with spaces,
    unicode, even newlines); what is refused is structure: absolute paths, empty, ``.``
    and ``..`` segments, and the metadata folders.
    """
    if not relative:
        raise UnsafeNameError("artifact path is empty")
    if relative.startswith("/"):
        raise UnsafeNameError(f"artifact path {relative!r} is absolute")
    if "\x00" in relative:
        raise UnsafeNameError(f"artifact path {relative!r} contains a NUL character")
    for segment in relative.split("/"):
        if segment in {"", ".", ".."}:
            raise UnsafeNameError(f"artifact path {relative!r} has an empty, '.' or '..' step")
    if is_metadata(relative):
        raise UnsafeNameError(f"artifact path {relative!r} lies in a metadata folder")
    return ObjectKey(f"{prefix}{relative}")


def relative_name(prefix: JobPrefix, key: str) -> str | None:
    """The artifact path of ``key`` under ``prefix``, or None for metadata and foreign keys."""
    if not key.startswith(prefix):
        return None
    relative = key[len(prefix) :]
    if not relative or relative.endswith("/") or is_metadata(relative):
        return None
    return relative


_JOB_PREFIX = re.compile(rf"{GROUPS_ROOT}([^/]+)/{JOB_ARTIFACTS}/([^/]+)/")


def parse_job_prefix(prefix: str) -> tuple[GroupPath, JobName] | None:
    """``groups/<g>/jobArtifacts/<job>/`` -> (g, job); None for anything else.

    Look-alikes such as ``groups/g/jobArtifactsOld/x/`` and deeper prefixes are refused,
    so whoever deletes by prefix cannot be pointed outside a job folder.
    """
    match = _JOB_PREFIX.fullmatch(prefix)
    if match is None:
        return None
    group, job = match.groups()
    try:
        _check_segment("group", group)
        _check_segment("job", job)
    except UnsafeNameError:
        return None
    return GroupPath(group), JobName(job)
