"""Prometheus figures of the janitor's runs, served on ``JANITOR_METRICS_PORT``.

The same figures as each run's result, as counters, so a dashboard can rate them and
alert on skipped folders piling up or deletions failing. A registry of its own per
process (no module-level collectors): tests build as many as they like.
A dry run counts only as a run: it deletes nothing, so it must not move the deletion
counters.
"""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from artifacts_shared.cleanup_result import CleanupResult, RunOutcome, SkipReason

__all__ = ["JanitorMetrics", "MetricsServer"]


class JanitorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.runs = Counter(
            "janitor_runs", "Cleanup runs by outcome", ["outcome", "dry_run"], registry=r
        )
        self.folders_scanned = Counter(
            "janitor_folders_scanned", "Job folders a rescan looked at", registry=r
        )
        self.folders_expired = Counter(
            "janitor_folders_expired", "Job folders found past their expiredAt", registry=r
        )
        self.folders_orphaned = Counter(
            "janitor_folders_orphaned",
            "Job folders without a readable expiredAt past the orphan retention",
            registry=r,
        )
        self.folders_deleted = Counter(
            "janitor_folders_deleted", "Job folders deleted completely", registry=r
        )
        self.folders_skipped = Counter(
            "janitor_folders_skipped",
            "Job folders kept although they hold no valid expiry or a job waits to read them, "
            "by reason",
            ["reason"],
            registry=r,
        )
        self.folders_failed = Counter(
            "janitor_folders_failed", "Job folders whose deletion failed (retried)", registry=r
        )
        self.objects_deleted = Counter("janitor_objects_deleted", "Objects deleted", registry=r)
        self.bytes_freed = Counter("janitor_bytes_freed", "Bytes of objects deleted", registry=r)
        self.last_run_finished = Gauge(
            "janitor_last_run_finished_timestamp_seconds",
            "When the last run that was not skipped finished",
            registry=r,
        )
        self.last_run_duration = Gauge(
            "janitor_last_run_duration_seconds",
            "How long the last run that was not skipped took",
            registry=r,
        )
        self.index_checked = Counter(
            "janitor_index_checked",
            "Due expiry-index entries whose folder's expiredAt was read again",
            registry=r,
        )
        self.index_stale = Counter(
            "janitor_index_stale",
            "Due expiry-index entries S3 did not confirm (re-indexed or removed)",
            registry=r,
        )
        self.index_entries = Gauge(
            "janitor_index_entries", "Entries in the expiry index after the last run", registry=r
        )
        self.rescans = Counter(
            "janitor_rescans", "Reconciling full scans of the bucket completed", registry=r
        )
        self.rescan_found = Counter(
            "janitor_rescan_found",
            "Folders a rescan added to the expiry index or corrected in it",
            registry=r,
        )
        self.last_rescan_finished = Gauge(
            "janitor_last_rescan_finished_timestamp_seconds",
            "When the last completed rescan finished",
            registry=r,
        )
        for reason in SkipReason:  # present from the start, so rate() sees the first one
            self.folders_skipped.labels(reason=reason.value)

    def failed(self, *, dry_run: bool) -> None:
        """A run that could not finish at all (its folder listing failed)."""
        self.runs.labels(outcome="failed", dry_run=str(dry_run).lower()).inc()

    def observe(self, result: CleanupResult) -> None:
        self.runs.labels(outcome=result.outcome.value, dry_run=str(result.dry_run).lower()).inc()
        if result.outcome is RunOutcome.SKIPPED:
            return
        self.last_run_finished.set(result.finished_at.timestamp())
        self.last_run_duration.set(result.duration_seconds)
        self.index_entries.set(result.index_size)
        if result.last_rescan_at is not None:
            self.last_rescan_finished.set(result.last_rescan_at.timestamp())
        if result.dry_run:
            return
        self.index_checked.inc(result.index_checked)
        self.index_stale.inc(result.index_stale)
        if result.rescanned and result.outcome is RunOutcome.COMPLETED:
            self.rescans.inc()
            self.rescan_found.inc(result.rescan_found)
        self.folders_scanned.inc(result.folders_scanned)
        self.folders_expired.inc(result.folders_expired)
        self.folders_orphaned.inc(result.folders_orphaned)
        self.folders_deleted.inc(result.folders_deleted)
        self.folders_failed.inc(result.folders_failed)
        self.objects_deleted.inc(result.objects_deleted)
        self.bytes_freed.inc(result.bytes_freed)
        for reason, count in result.skipped_by_reason.items():
            self.folders_skipped.labels(reason=reason.value).inc(count)


class MetricsServer:
    """``/metrics`` over HTTP in a background thread (prometheus_client's own server)."""

    def __init__(self, metrics: JanitorMetrics, *, port: int, host: str = "0.0.0.0") -> None:
        server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
        self._server: WSGIServer = server
        self.port: int = server.server_port

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
