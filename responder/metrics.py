"""Prometheus metrics, in a registry of their own so each app (and each test) has its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    events: Counter
    intake_batch: Histogram
    events_processed: Counter
    runs: Counter
    retries: Counter
    worker_yields: Counter
    paced: Counter
    run_latency: Histogram
    run_delay: Histogram
    queue_depth: Gauge

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._intake()
        self._runs()

    def _intake(self) -> None:
        self.events = Counter(
            "responder_webhook_events",
            "Webhook deliveries by outcome (accepted, duplicate, rejected_*, unavailable)",
            ["outcome"],
            registry=self.registry,
        )
        self.intake_batch = Histogram(
            "responder_intake_batch_size",
            "Events committed together by the intake writer (group commit)",
            buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500),
            registry=self.registry,
        )
        self.events_processed = Counter(
            "responder_events_processed",
            "Stored events taken through the pipeline, by result",
            ["result"],
            registry=self.registry,
        )
        self.worker_yields = Counter(
            "responder_worker_yields",
            "Rounds after which the worker rested to leave the intake the CPU (under load)",
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "responder_queue_depth",
            "Work waiting: events not yet processed, action runs pending or running",
            ["queue"],
            registry=self.registry,
        )

    def _runs(self) -> None:
        self.runs = Counter(
            "responder_action_runs",
            "Action runs that reached a state, by action",
            ["action", "state"],
            registry=self.registry,
        )
        self.retries = Counter(
            "responder_action_retries",
            "Attempts rescheduled after a retryable failure, by action",
            ["action"],
            registry=self.registry,
        )
        self.paced = Counter(
            "responder_action_paced",
            "Due runs held back to stay under a vendor's rate limit, by action",
            ["action"],
            registry=self.registry,
        )
        self.run_latency = Histogram(
            "responder_action_call_seconds",
            "Duration of one outside call, by action",
            ["action"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.run_delay = Histogram(
            "responder_action_delay_seconds",
            "From a run becoming due to its final outcome, by action",
            ["action"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 5, 30, 120, 600, 3600),
            registry=self.registry,
        )
