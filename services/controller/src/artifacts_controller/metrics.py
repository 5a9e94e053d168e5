"""The controller's Prometheus metrics, in a registry of its own (no process-wide globals).

Two controllers in one test process (leader election tests) each count their own work.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["ControllerMetrics"]


class ControllerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.reconciles = Counter(
            "phjob_reconciles",
            "PhJob reconciliations, by result (ok, error).",
            ["result"],
            registry=self.registry,
        )
        self.reconcile_seconds = Histogram(
            "phjob_reconcile_seconds",
            "Time to reconcile one PhJob.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.transitions = Counter(
            "phjob_transitions",
            "PhJob status changes written, by the phase entered.",
            ["phase"],
            registry=self.registry,
        )
        self.pods_created = Counter(
            "phjob_pods_created", "Job pods (or local processes) started.", registry=self.registry
        )
        self.pods_deleted = Counter(
            "phjob_pods_deleted",
            "Job pods (or local processes) stopped, by why (cancel, timeout).",
            ["why"],
            registry=self.registry,
        )
        self.watch_restarts = Counter(
            "phjob_watch_restarts",
            "Watch streams restarted, by resource and cause (ended, gone, error).",
            ["resource", "cause"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "phjob_queue_depth",
            "PhJobs waiting for or in reconciliation.",
            registry=self.registry,
        )
        self.leader = Gauge(
            "phjob_controller_leader",
            "1 while this replica holds the lease and acts, else 0.",
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
