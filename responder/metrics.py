"""Prometheus metrics, in a registry of their own so each app (and each test) has its own."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

# Threads by what they do: the event loop and the group-commit writer acknowledge webhooks;
# the worker and its action threads process them. Anything else (to_thread helpers) is other.
INTAKE_THREADS = frozenset({"MainThread", "intake-writer"})
PIPELINE_THREADS = ("worker", "action")


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
    playbook_reloads: Counter
    playbook_reload_failed: Gauge
    playbooks_loaded: Gauge

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._intake()
        self._runs()
        self._playbooks()
        self.registry.register(ThreadCpu())

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

    def _playbooks(self) -> None:
        self.playbook_reloads = Counter(
            "responder_playbooks_reloads",
            "Playbook reloads (file change or SIGHUP), by result: changed, unchanged, failed",
            ["result"],
            registry=self.registry,
        )
        self.playbook_reload_failed = Gauge(
            "responder_playbooks_reload_failed",
            "1 while the playbook folder holds a set that failed to load (the previous set"
            " keeps running), else 0",
            registry=self.registry,
        )
        self.playbooks_loaded = Gauge(
            "responder_playbooks_loaded",
            "Playbooks in the running set, labelled with the set's digest",
            ["digest"],
            registry=self.registry,
        )

    def playbook_set(self, digest: str, count: int) -> None:
        """The running set: one sample, labelled with its digest (the old one is dropped)."""
        self.playbooks_loaded.clear()
        self.playbooks_loaded.labels(digest=digest).set(count)


class ThreadCpu(Collector):
    """CPU seconds of this process's threads by role, read from /proc at each scrape.

    Intake and pipeline share one process (and one GIL) under `serve`; this tells what each
    costs per alert. Threads that have ended take their time with them; a system without
    /proc/self/task reports nothing."""

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "responder_thread_cpu_seconds",
            "CPU time (user + system) of the live threads of this process, by role "
            "(intake: event loop and group-commit writer; pipeline: worker and action threads)",
            labels=["role"],
        )
        totals = {"intake": 0.0, "pipeline": 0.0, "other": 0.0}
        for thread in threading.enumerate():
            seconds = _thread_cpu(thread.native_id)
            if seconds is None:
                continue
            if thread.name in INTAKE_THREADS:
                role = "intake"
            elif thread.name.startswith(PIPELINE_THREADS):
                role = "pipeline"
            else:
                role = "other"
            totals[role] += seconds
        for role, seconds in totals.items():
            family.add_metric([role], seconds)
        yield family


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _thread_cpu(native_id: int | None) -> float | None:
    if native_id is None:
        return None
    try:
        raw = Path(f"/proc/self/task/{native_id}/stat").read_text()
    except OSError:
        return None  # ended meanwhile, or no /proc here
    # Everything after the command name's ")" is fixed-position: utime and stime are the
    # 12th and 13th fields from there.
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
