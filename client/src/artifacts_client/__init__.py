"""A Python client and the ``jobartifacts`` CLI for the job artifacts API.

List jobs, wait for them, and download their artifacts verified, from scripts and
notebooks, without a browser; see ``Client``. Standard library only.
"""

from artifacts_client.client import Client, JobRef
from artifacts_client.errors import (
    ApiError,
    ArtifactExistsError,
    BadUserInput,
    ClientError,
    ConnectionFailed,
    DownloadError,
    Forbidden,
    IntegrityError,
    NotFound,
    ProtocolError,
    Unauthenticated,
    Unavailable,
    UnsafeNameError,
    WaitTimeout,
)
from artifacts_client.models import (
    Artifact,
    ArtifactFolder,
    CleanupResult,
    CleanupRun,
    CleanupState,
    Download,
    InputArtifact,
    Job,
    JobPhase,
    LogPage,
    Retention,
)
from artifacts_client.progress import NoProgress, Progress, ProgressBar

__all__ = [
    "ApiError",
    "Artifact",
    "ArtifactExistsError",
    "ArtifactFolder",
    "BadUserInput",
    "CleanupResult",
    "CleanupRun",
    "CleanupState",
    "Client",
    "ClientError",
    "ConnectionFailed",
    "Download",
    "DownloadError",
    "Forbidden",
    "InputArtifact",
    "IntegrityError",
    "Job",
    "JobPhase",
    "JobRef",
    "LogPage",
    "NoProgress",
    "NotFound",
    "Progress",
    "ProgressBar",
    "ProtocolError",
    "Retention",
    "Unauthenticated",
    "Unavailable",
    "UnsafeNameError",
    "WaitTimeout",
]
