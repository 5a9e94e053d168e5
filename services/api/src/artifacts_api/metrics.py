"""Prometheus metrics of one api process, served on ``GET /metrics``.

One registry per application (not prometheus-client's global one), so two apps in one
process — tests, benchmarks — never share counters. Labels are bounded: GraphQL
operations are labelled by their root fields (names from our schema), never by the
client's free-text operation name; HTTP requests by route pattern, never by path.

S3 call latencies come from botocore's own ``before-call``/``after-call`` events, so every
request is timed — paginated listings page by page, presigning excluded (no network).
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from artifacts_shared.s3 import S3Client

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_STARTED = "artifacts_api_started"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.graphql_requests = Counter(
            "artifacts_api_graphql_requests",
            "GraphQL requests by operation and outcome (ok, error, rejected)",
            ["operation", "outcome"],
            registry=self.registry,
        )
        self.graphql_seconds = Histogram(
            "artifacts_api_graphql_request_seconds",
            "GraphQL request latency by operation",
            ["operation"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.graphql_errors = Counter(
            "artifacts_api_graphql_errors",
            "GraphQL errors by code",
            ["code"],
            registry=self.registry,
        )
        self.http_requests = Counter(
            "artifacts_api_http_requests",
            "HTTP requests by route and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "artifacts_api_http_request_seconds",
            "HTTP request latency by route (for streamed responses: until the last byte)",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.s3_seconds = Histogram(
            "artifacts_api_s3_call_seconds",
            "S3 API call latency by operation and outcome",
            ["operation", "outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

    def instrument_s3(self, s3: S3Client) -> None:
        """Time every call ``s3`` makes, through botocore's event hooks."""
        events = s3.meta.events
        events.register("before-call.s3", self._s3_started)
        events.register("after-call.s3", self._s3_finished)
        events.register("after-call-error.s3", self._s3_failed)

    @staticmethod
    def _s3_started(context: dict[str, Any], model: Any, **_: Any) -> None:
        context[_STARTED] = (model.name, time.perf_counter())

    def _s3_observe(self, context: dict[str, Any], outcome: str) -> None:
        started = context.pop(_STARTED, None)
        if started is not None:
            operation, at = started
            self.s3_seconds.labels(operation, outcome).observe(time.perf_counter() - at)

    def _s3_finished(self, context: dict[str, Any], http_response: Any, **_: Any) -> None:
        self._s3_observe(context, "ok" if http_response.status_code < 400 else "error")

    def _s3_failed(self, context: dict[str, Any], **_: Any) -> None:
        self._s3_observe(context, "unreachable")
